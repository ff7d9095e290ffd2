"""The top of the stack: the ``rntk`` console script and the processes it starts.

``cli`` dispatches one command line to the server launcher (``rntk serve``, ``rntk worker``:
``serve``), to the client of a running server (``rntk_client``) or to the library's own
commands (``rntk_core.evaluation.cli``: gram, evaluate, bench-uci). Nothing imports this
package; it may import every other one.
"""

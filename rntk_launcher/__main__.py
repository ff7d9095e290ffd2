"""``python -m rntk_launcher ARGS`` is ``rntk ARGS`` (the tests start servers this way)."""

import sys

from rntk_launcher.cli import main

sys.exit(main())

"""The one exception that stops an evaluation on request."""


class Cancelled(Exception):
    """Raised between tiles, fits or solver iterations once ``should_cancel()`` returns True.

    The service's worker catches exactly this type to mark a job cancelled.
    """

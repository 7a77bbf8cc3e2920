"""The roots of Herald's exception tree (drawn in :mod:`herald.core.errors`).

Apart from ``core.errors`` because that module imports FastAPI: the command line's
errors derive from the root without paying FastAPI's import at ``herald --help``.
"""

from __future__ import annotations


class HeraldException(Exception):
    """The root of every exception Herald defines (see the drawing above)."""


class HeraldFault(HeraldException):
    """Herald cannot do what it was asked, outside any HTTP answer: its setup, its stored
    data, a job or a bug. Reported in a job's record, on the command line or in the log."""


class ControlFlow(HeraldException):
    """Not a failure: the raiser tells its caller what to do next (wait and retry, hold).

    A marker base, kept apart from the failures as Dramatiq's ``Retry`` is."""

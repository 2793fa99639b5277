"""Errors that reach the user as one line (the CLI prints the message)."""


class ObsdbError(Exception):
    """A problem the user can fix; the message names the file or value and the problem."""

"""Errors that reach the user as one line (the CLI prints the message)."""


class ObsdbError(Exception):
    """A problem the user can fix; the message names the file or value and the problem."""


class SelectorError(ObsdbError, ValueError):
    """A frame selector or night is malformed or matches nothing (:mod:`obsdb.catalog.selectors`)."""


class NothingToProcess(ObsdbError):
    """A step found nothing it can work on: no accepted frames to align, no frame to choose a reference
    from, no aligned frame to render.

    Not a bug and not bad input: the night is as it is.  A command run alone prints the message;
    `obsdb run` records it as the step's result and carries on (:mod:`obsdb.pipeline.run`).

    Parameters
    ----------
    message : str
        The whole line for the command that stopped, advice included.
    fact : str, optional
        What was missing, without the command's advice (default ``message``).
    """

    def __init__(self, message: str, fact: str | None = None):
        super().__init__(message)
        self.fact = fact or message

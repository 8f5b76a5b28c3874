"""User-facing errors and warnings: the CLI prints each as one line, never as a traceback."""


class SplatError(Exception):
    """An error caused by the user's input or environment, with a message that names the fix."""


class InputError(SplatError):
    """Bad or missing input files (message names the file and what to do)."""


class ValidationError(SplatError, ValueError):
    """A Cameras/Gaussians object holds inconsistent or non-finite data (splat.types' validate())."""


class TrainingDiverged(SplatError):
    """The loss became NaN or infinite; the message names the saved last-good checkpoint."""


class SplatWarning(UserWarning):
    """Something the user should know that does not stop the command; printed as `splat: warning: ...`."""

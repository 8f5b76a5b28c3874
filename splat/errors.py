"""User-facing errors: the CLI prints these as one line, never as a traceback."""


class SplatError(Exception):
    """An error caused by the user's input or environment, with a message that names the fix."""


class InputError(SplatError):
    """Bad or missing input files (message names the file and what to do)."""

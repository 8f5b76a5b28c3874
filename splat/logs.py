"""What reaches the terminal: one line per warning; what other libraries print goes into RUN/fit.log.

`show_warning` replaces Python's warnings format (path, line number, source line) with one line,
`splat: warning: ...`, the format of the CLI's errors. `capture_library_output(RUN/fit.log)` is held
by `fit()` around its stages: native libraries writing to file descriptor 2 (pycolmap's glog lines,
OpenCV) and Python warnings that are not splat's own (numpy's RuntimeWarning and the like) are
appended to the run's log instead of the terminal, while splat's own lines (`sys.stderr`, progress,
`splat: warning:`) still reach it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from splat.errors import SplatWarning


def warning_line(message, category: type[Warning], filename: str, lineno: int) -> str:
    """The one line a warning prints as; a library's warning says where it came from."""
    text = " ".join(str(message).split())
    if issubclass(category, SplatWarning):
        return f"splat: warning: {text}"
    return f"splat: warning: {text} ({category.__name__} at {Path(filename).name}:{lineno})"


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A `warnings.showwarning` that prints one line on stderr."""
    print(warning_line(message, category, filename, lineno), file=file or sys.stderr, flush=True)


@contextlib.contextmanager
def capture_library_output(log_path: str | os.PathLike) -> Iterator[None]:
    """Send file descriptor 2 and other libraries' warnings into `log_path` while the block runs.

    sys.stderr keeps writing to the terminal (a copy of the old descriptor 2) when it wrote to 2;
    splat's own warnings go where they went before and into the log too.
    """
    log_path = Path(log_path)
    previous_hook = warnings.showwarning

    def routed(message, category, filename, lineno, file=None, line=None):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(log_path, "a") as f:
            f.write(f"{stamp} {warning_line(message, category, filename, lineno).removeprefix('splat: ')}\n")
        if issubclass(category, SplatWarning):
            previous_hook(message, category, filename, lineno, file, line)

    sys.stderr.flush()
    saved_fd = os.dup(2)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    python_stderr = sys.stderr
    try:
        uses_fd2 = python_stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # pytest's capture, a StringIO: not fd 2
        uses_fd2 = False
    os.dup2(log_fd, 2)
    os.close(log_fd)
    if uses_fd2:
        sys.stderr = open(
            os.dup(saved_fd), "w", buffering=1, encoding=python_stderr.encoding, errors="replace"
        )
    warnings.showwarning = routed
    try:
        yield
    finally:
        warnings.showwarning = previous_hook
        if uses_fd2:
            sys.stderr.close()
            sys.stderr = python_stderr
        os.dup2(saved_fd, 2)
        os.close(saved_fd)

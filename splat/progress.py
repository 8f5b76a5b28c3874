"""Progress of long stages: a bar with the time left on the terminal, a line per finished stage in fit.log.

A stage opens `bar(label, total)` and calls `advance()` (or `update(done)`) as it goes. Whether anything is
drawn is decided once, by whoever runs the stages (`fit()`, `splat batch`), with `showing(show, log)`: every
bar opened inside it joins one rich display (stages follow each other, so the finished bars stay above as a
summary with their times), and each finished bar writes "label: done/total in S s" through `log`. Outside
`showing`, a bar draws nothing and logs nothing, so library code and tests can always open one.

    with showing(sys.stderr.isatty(), log=run_logger(run, "progress")):
        with bar("features", len(images)) as b:
            for image in images:
                ...
                b.advance()
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass
class _Session:
    display: object | None  # a rich.progress.Progress while bars are drawn, else None
    log: Callable[[str], None] | None


_session: contextvars.ContextVar[_Session | None] = contextvars.ContextVar("splat_progress", default=None)


def _display():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )


@contextlib.contextmanager
def showing(show: bool, log: Callable[[str], None] | None = None) -> Iterator[None]:
    """Draw the bars opened inside the block (when `show`) and log each one's summary line (when `log`).

    A nested call draws into the outer display (one rich display at a time), or nothing when not `show`."""
    outer = _session.get()
    own = _display() if show and outer is None else None  # the display this call starts, if any
    if outer is None:
        session = _Session(own, log)
    else:
        session = _Session(outer.display if show else None, log or outer.log)
    token = _session.set(session)
    try:
        with own if own is not None else contextlib.nullcontext():
            yield
    finally:
        _session.reset(token)


class Bar:
    """One stage's progress: `advance(n)`, `update(done)`, `info` text beside it; `done`, `total`."""

    def __init__(self, label: str, total: int | None, session: _Session | None) -> None:
        self.label, self.total, self.done, self.info = label, total, 0, ""
        self._display = session.display if session else None
        self._task = None
        if self._display is not None:
            self._task = self._display.add_task(label, total=total, info="")
        self.t0 = time.perf_counter()
        self._lock = threading.Lock()  # stages advance from worker threads

    def advance(self, n: int = 1, info: str | None = None) -> None:
        with self._lock:
            self.update(self.done + n, info)

    def update(self, done: int, info: str | None = None, total: int | None = None) -> None:
        self.done = done
        self.total = self.total if total is None else total
        self.info = self.info if info is None else info
        if self._task is not None:
            self._display.update(self._task, completed=done, total=self.total, info=self.info)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def summary(self) -> str:
        count = f"{self.done}/{self.total}" if self.total is not None else f"{self.done}"
        return f"{self.label}: {count} in {self.seconds:.1f} s" + (f" ({self.info})" if self.info else "")


@contextlib.contextmanager
def bar(label: str, total: int | None) -> Iterator[Bar]:
    """A progress bar for one stage (total None: a count without an end); see the module docstring."""
    session = _session.get()
    b = Bar(label, total, session)
    try:
        yield b
    finally:
        if session is not None and session.log is not None:
            session.log(b.summary())


def callback(b: Bar) -> Callable[[int, int], None]:
    """A `progress(done, total)` function (the form splat.init.edgs_init takes) that moves `b`."""
    return lambda done, total: b.update(done, total=total)

"""Stage progress: bars join one display inside `showing`, log a summary line, and count from threads."""

from concurrent.futures import ThreadPoolExecutor

from splat import progress
from splat.progress import bar, callback, showing


def test_a_bar_outside_showing_counts_but_draws_and_logs_nothing():
    with bar("features", 3) as b:
        b.advance()
        b.advance(2, info="sift")
    assert (b.done, b.total, b.info) == (3, 3, "sift") and b._task is None


def test_each_finished_bar_logs_one_line_even_when_its_stage_fails():
    lines = []
    try:
        with showing(False, log=lines.append):
            with bar("features", 4) as b:
                for _ in range(4):
                    b.advance()
            with bar("matching", None) as m:
                m.advance(5)
                raise RuntimeError("stage failed")
    except RuntimeError:
        pass
    assert lines[0].startswith("features: 4/4 in ") and lines[0].endswith(" s")
    assert lines[1].startswith("matching: 5 in ")
    assert progress._session.get() is None  # the session ended with the block


def test_bars_share_one_display_and_a_quiet_nested_session_draws_nothing():
    with showing(True, log=None):
        display = progress._session.get().display
        with bar("features", 10) as b:
            b.update(4)
        with showing(False):
            with bar("inner", 2) as quiet:
                quiet.advance()
        with bar("train", 20) as t:
            callback(t)(7, 25)  # edgs_init's progress(done, total) form
        tasks = {task.description: task for task in display.tasks}
    assert set(tasks) == {"features", "train"} and quiet._task is None
    assert tasks["features"].completed == 4 and (tasks["train"].completed, tasks["train"].total) == (7, 25)


def test_advancing_from_worker_threads_loses_no_count():
    with bar("matching", 4000) as b, ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: b.advance(), range(4000)))
    assert b.done == 4000

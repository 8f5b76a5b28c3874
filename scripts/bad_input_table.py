"""Print the bad-input table of tests/test_bad_input.py: case, command, exit code, the one line it printed.

    .venv/bin/python scripts/bad_input_table.py > table.md

Runs every case the way the test does (a fresh sandbox each, one shared tiny fit) and prints a Markdown
table; a case this machine cannot set up (read-only mount, dropped bind privilege) says so.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_bad_input import CASES, REPO, run_case, tiny_run  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        run = tiny_run(root)
        print("| case | command | exit | message |")
        print("|---|---|---|---|")
        for k, case in enumerate(CASES):
            sandbox = root / f"case{k:02d}"
            sandbox.mkdir()
            try:
                result = run_case(case, sandbox, run)
            except pytest.skip.Exception as e:
                print(f"| {case.name} | `splat {case.args}` | skipped | {e} |")
                continue
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            message = lines[0] if len(lines) == 1 else f"{len(lines)} lines on stderr"
            if result.changed:
                message += f" (CHANGED OUTSIDE --out: {result.changed})"
            for path, short in ((sandbox, "{tmp}"), (run, "{run}"), (REPO, ".")):
                message = message.replace(str(path), short)
            command = case.args.replace(str(REPO) + "/", "")
            print(f"| {case.name} | `splat {command}` | {result.code} | {message.replace('|', '/')} |")


if __name__ == "__main__":
    main()

"""Bad input through the real `splat` command (issue #21): every case answers with one line, no traceback,
and changes nothing outside its --out.

Each case runs `python -m splat ...` in a fresh sandbox folder (its working directory) and asserts the
exit code, that stderr is exactly one `splat: error:` (or `splat: warning:`) line, and that no file of the
sandbox, of the shared finished run or of the scene changed, other than under the paths the case allows.
Cases that need a finished run share one tiny fit (given poses, 96 px, 4 steps); nearly every case is
refused before any work (no torch import), so the table runs in well under a minute.

What root can and cannot exercise: root writes through permission bits, so an unwritable folder is a
read-only bind mount made inside `unshare -m` (skipped where that is not allowed), plus /sys and /proc,
and a path under a file; "cannot bind a low port" runs under `setpriv` without CAP_NET_BIND_SERVICE
(skipped where setpriv is missing). `python scripts/bad_input_table.py` prints the table.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCENE = REPO / "scenes" / "garden"
IMAGES = SCENE / "images"
VIEWS = "frame_000.jpg,frame_002.jpg,frame_004.jpg"
TINY = f"--poses given:{SCENE}/sparse/0 --views {VIEWS} --max-side 96 --steps 4 --budget 2000".split()


@dataclass
class Case:
    """One bad input: `args` of `splat`, with {tmp} (the sandbox), {run} (a finished run), {images} and
    {scene} (the garden scene)."""

    name: str
    args: str
    code: int = 2
    says: str = ""  # a piece of the one line
    warning: bool = False  # the line is `splat: warning:`, not an error
    setup: str | None = None  # a name in SETUPS, run in the sandbox first
    # "readonly" (the sandbox's ro/ mounted read-only) | "no_bind_privilege" | "until_served" (Ctrl-C once
    # the viewer says where it serves)
    wrap: str | None = None
    writes: list[str] = field(default_factory=list)  # sandbox paths the command may create or change
    log: str = ""  # a piece of out/fit.log (what a library printed goes there, not to the terminal)


CASES = [
    # fit: flags, each refused before any work
    Case("fit --steps negative", "fit {images} --out out --steps -5", says="--steps"),
    Case("fit --steps not a number", "fit {images} --out out --steps many", says="--steps"),
    Case("fit --budget negative", "fit {images} --out out --budget -1", says="--budget"),
    Case("fit --max-side tiny", "fit {images} --out out --max-side 10", says="64 px"),
    Case("fit --focal zero", "fit {images} --out out --focal 0", says="--focal"),
    Case("fit --focal nan", "fit {images} --out out --focal nan", says="--focal"),
    Case("fit --seed negative", "fit {images} --out out --seed -1", says="--seed"),
    Case("fit --port out of range", "fit {images} --out out --view --port 70000", says="1 to 65535"),
    Case("fit --port zero", "fit {images} --out out --port 0", says="--port"),
    Case("fit --view unbindable host", "fit {images} --out out --view --host 192.0.2.1", says="cannot bind"),
    Case(
        "fit --view --port 1 unprivileged",
        "fit {images} --out out --view --port 1",
        says="--port 1",
        wrap="no_bind_privilege",
    ),  # fmt: skip
    Case("fit --budget-rule unknown", "fit {images} --out out --budget-rule best", says="--budget-rule"),
    Case("fit --device unknown", "fit {images} --out out --device tpu", says="--device"),
    Case("fit unknown flag", "fit {images} --out out --stepz 5", says="--stepz"),
    Case("fit no IMAGES", "fit", says="images"),
    Case("fit --poses unknown", "fit {images} --out out --poses magic", says="--poses"),
    Case("fit --poses given: no model", "fit {images} --out out --poses given:{tmp}", says="COLMAP model"),
    Case("fit --init unknown", "fit {images} --out out --init magic", says="--init"),
    Case("fit --init given: missing ply", "fit {images} --out out --init given:{tmp}/no.ply", says="no such"),
    Case(
        "fit --views unknown name", "fit {images} --out out --views frame_000.jpg,nope.jpg", says="nope.jpg"
    ),
    Case("fit --views one photo", "fit {images} --out out --views frame_000.jpg", says="at least 2"),
    # fit: input folders
    Case("fit IMAGES missing", "fit {tmp}/nowhere --out out", says="does not exist"),
    Case("fit IMAGES is a file", "fit {tmp}/notes.txt --out out", says="is a file"),
    Case("fit IMAGES empty", "fit {tmp}/empty --out out", says="0 photo(s)"),
    Case("fit IMAGES one photo", "fit {tmp}/one --out out", setup="one_photo", says="at least 2"),
    # fit: output locations
    Case("fit --out is a file", "fit {images} --out notes.txt", says="is a file"),
    Case("fit --out under a file", "fit {images} --out notes.txt/run", says="is a file, not a folder"),
    Case("fit --out read-only folder", "fit {images} --out ro/run", wrap="readonly", says="cannot write"),
    Case("fit --out in /sys", "fit {images} --out /sys/splat-run", says="cannot write"),
    Case("fit --out in /proc", "fit {images} --out /proc/splat-run", says="cannot write"),
    Case("fit --out holds a run", "fit {images} --out {run}", says="--resume"),
    Case(
        "fit --out not empty, no run", "fit {images} --out photos", setup="one_photo_folder", says="not empty"
    ),
    Case("fit --resume, nothing to resume", "fit {images} --out fresh --resume", says="holds no run"),
    Case("fit --resume with --force", "fit {images} --out {run} --resume --force", says="choose one"),
    # view
    Case("view --port out of range", "view {run} --port 70000", says="1 to 65535"),
    Case("view --port negative", "view {run} --port -1", says="--port"),
    Case("view --port 1 unprivileged", "view {run} --port 1", wrap="no_bind_privilege", says="--port 1"),
    Case("view unbindable host", "view {run} --host 192.0.2.1", says="cannot bind"),
    Case(
        "view --host on every interface",
        "view {run} --host 0.0.0.0",
        code=0,
        warning=True,
        says="reachable from the network",
        wrap="until_served",
    ),
    Case("view missing path", "view {tmp}/nowhere", says="does not exist"),
    Case("view folder without splat.ply", "view {tmp}/empty", says="splat.ply"),
    # export
    Case("export over an unrelated file", "export {run} --format spz --out notes.txt", says="--force"),
    Case("export --out is a folder", "export {run} --format spz --out empty", says="is a folder"),
    Case(
        "export --out read-only",
        "export {run} --format spz --out ro/a.spz",
        wrap="readonly",
        says="cannot write",
    ),  # fmt: skip
    Case("export --out under a file", "export {run} --format ply --out notes.txt/a.ply", says="is a file"),
    Case("export --format unknown", "export {run} --format obj", says="--format"),
    Case("export not a run", "export {tmp}/empty --format spz --out a.spz", says="splat.ply"),
    Case(
        "export colmap into a full folder",
        "export {run} --format colmap --out photos",
        setup="one_photo_folder",
        says="not empty",
    ),  # fmt: skip
    Case("export --voxel negative", "export {run} --format mesh --voxel -1", says="--voxel"),
    # render
    Case("render --video .avi", "render {run} --video fly.avi", says=".mp4"),
    Case("render over an unrelated video", "render {run} --video old.mp4", setup="old_video", says="--force"),
    Case("render --frames zero", "render {run} --frames 0", says="--frames"),
    Case("render --fps zero", "render {run} --fps 0", says="--fps"),
    Case("render --scale zero", "render {run} --scale 0", says="--scale"),
    Case("render --backend unknown", "render {run} --backend metal", says="--backend"),
    # eval
    Case("eval --gt without images", "eval {run} --gt {tmp}/empty", says="images/"),
    Case(
        "eval --gt without a model",
        "eval {run} --gt {tmp}/noscene",
        setup="scene_without_model",
        says="sparse/0",
    ),  # fmt: skip
    Case("eval --refine-steps zero", "eval {run} --gt {scene} --refine-steps 0", says="--refine-steps"),
    Case("eval not a run", "eval {tmp}/empty --gt {scene}", says="splat.ply"),
    # batch
    Case("batch ROOT missing", "batch {tmp}/nowhere", says="does not exist"),
    Case("batch ROOT without scenes", "batch {tmp}/empty", says="no scene folders"),
    Case("batch --views not numbers", "batch {tmp}/bench --views 3,x", setup="bench", says="--views"),
    Case("batch --views zero", "batch {tmp}/bench --views 0", setup="bench", says="--views"),
    Case("batch --scenes unknown", "batch {tmp}/bench --scenes garden,barn", setup="bench", says="barn"),
    Case("batch --jobs zero", "batch {tmp}/bench --jobs 0", setup="bench", says="--jobs"),
    Case("batch --layout unknown", "batch {tmp}/bench --layout llff", setup="bench", says="--layout"),
    Case("batch --address without ray", "batch {tmp}/bench --address ray://x:1", setup="bench", says="ray"),
    Case("batch --out is a file", "batch {tmp}/bench --out notes.txt", setup="bench", says="is a file"),
    Case(
        "batch --out holds other files",
        "batch {tmp}/bench --out photos",
        setup="bench+one_photo_folder",
        says="not `splat batch`",
    ),  # fmt: skip
    # info, and the command itself
    Case("info missing folder", "info {tmp}/nowhere", says="does not exist"),
    Case("info --max-side zero", "info {images} --max-side 0", says="--max-side"),
    Case("no command", "", says="required"),
    Case("unknown command", "train {images}", says="invalid choice"),
    # cases that run: the answer is one line, library output goes into RUN/fit.log
    Case(
        "fit a truncated JPEG",
        "fit trunc --out out " + " ".join(TINY),
        code=0,
        warning=True,
        setup="truncated_jpeg",
        says="truncated",
        writes=["out"],
    ),  # fmt: skip
    Case(
        "fit pycolmap fails (glog to fit.log)",
        f"fit {{images}} --out out --poses colmap --max-side 64 --views {VIEWS}",
        says="could not connect",
        writes=["out"],
        log="sfm.cc",
    ),  # fmt: skip
]


# ---- sandbox -----------------------------------------------------------------------------------


def _one_photo(tmp: Path) -> None:
    (tmp / "one").mkdir()
    shutil.copy(IMAGES / "frame_000.jpg", tmp / "one")


def _one_photo_folder(tmp: Path) -> None:
    (tmp / "photos").mkdir()
    shutil.copy(IMAGES / "frame_000.jpg", tmp / "photos")


def _truncated_jpeg(tmp: Path) -> None:
    (tmp / "trunc").mkdir()
    for name in VIEWS.split(","):
        shutil.copy(IMAGES / name, tmp / "trunc")
    (tmp / "trunc" / "frame_006.jpg").write_bytes((IMAGES / "frame_006.jpg").read_bytes()[:2000])


def _bench(tmp: Path) -> None:
    (tmp / "bench" / "garden").mkdir(parents=True)
    (tmp / "bench" / "garden" / "images").symlink_to(IMAGES)


def _scene_without_model(tmp: Path) -> None:
    (tmp / "noscene").mkdir()
    (tmp / "noscene" / "images").symlink_to(IMAGES)


SETUPS = {
    "one_photo": _one_photo,
    "one_photo_folder": _one_photo_folder,
    "truncated_jpeg": _truncated_jpeg,
    "old_video": lambda tmp: (tmp / "old.mp4").write_bytes(b"someone else's video"),
    "bench": _bench,
    "scene_without_model": _scene_without_model,
}


def make_sandbox(tmp: Path, case: Case) -> None:
    """The folder a case runs in: an unrelated notes.txt, empty/, ro/, and what its setup adds."""
    (tmp / "notes.txt").write_text("my notes, not splat's\n")
    (tmp / "empty").mkdir()
    (tmp / "ro").mkdir()
    for name in (case.setup or "").split("+"):
        if name:
            SETUPS[name](tmp)


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every path under the roots: (kind, size, mtime, sha1) of files, links and folders."""
    state = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            if path.is_symlink():
                state[str(path)] = ("link", os.readlink(path))
            elif path.is_dir():
                state[str(path)] = ("dir",)
            else:
                stat = path.stat()
                state[str(path)] = (
                    "file",
                    stat.st_size,
                    stat.st_mtime_ns,
                    hashlib.sha1(path.read_bytes()).digest(),
                )
    return state


def _wrapper(kind: str | None, tmp: Path) -> list[str]:
    """The command prefix of a case's `wrap`; pytest.skip where this machine cannot provide it."""
    if kind is None or kind == "until_served":
        return []
    if kind == "readonly":
        if os.geteuid() != 0:  # an ordinary user: a folder without write permission is read-only enough
            (tmp / "ro").chmod(0o555)
            return []
        probe = (
            subprocess.run(["unshare", "-m", "true"], capture_output=True)
            if shutil.which("unshare")
            else None
        )
        if probe is None or probe.returncode != 0:
            pytest.skip("root, and no `unshare -m` to mount a read-only folder")
        return ["unshare", "-m", "sh", "-c", 'mount -o bind,ro "$0" "$0" && exec "$@"', str(tmp / "ro")]
    if kind == "no_bind_privilege":
        if os.geteuid() != 0:
            return []  # port 1 needs a privilege an ordinary user lacks
        if not shutil.which("setpriv"):
            pytest.skip("root, and no setpriv to drop CAP_NET_BIND_SERVICE")
        return ["setpriv", "--bounding-set", "-net_bind_service"]
    raise ValueError(kind)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    changed: list[str]  # paths outside the allowed ones that appeared, vanished or changed


def run_case(case: Case, tmp: Path, run: Path) -> Result:
    """Run one case in the sandbox `tmp` against the finished run `run`."""
    make_sandbox(tmp, case)
    fields = {"tmp": tmp, "run": run, "images": IMAGES, "scene": SCENE}
    args = [a.format(**fields) for a in case.args.split()]
    cmd = _wrapper(case.wrap, tmp) + [sys.executable, "-m", "splat", *args]
    before = snapshot(tmp, run, SCENE)
    if case.wrap == "until_served":
        proc = _interrupt_when_served(cmd, tmp)
    else:
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=300)
    after = snapshot(tmp, run, SCENE)
    allowed = [str(tmp / w) for w in case.writes]
    changed = [p for p in sorted(set(before) | set(after)) if before.get(p) != after.get(p)]
    changed = [p for p in changed if not any(p == a or p.startswith(a + os.sep) for a in allowed)]
    return Result(proc.returncode, proc.stdout, proc.stderr, changed)


def _interrupt_when_served(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run a command that serves until Ctrl-C: SIGINT once it printed "(Ctrl-C to stop)"."""
    import signal
    import threading

    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    guard = threading.Timer(300, proc.kill)  # never hang the suite
    guard.start()
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C to stop" in line:
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        guard.cancel()
        if proc.poll() is None:  # it did not stop on Ctrl-C: fail, and leave no server behind
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(lines) + out, err)


def tiny_run(folder: Path) -> Path:
    """A finished run of the tiny fit, made through the CLI (every case that needs a run reads it)."""
    run = folder / "run"
    proc = subprocess.run([sys.executable, "-m", "splat", "fit", str(IMAGES), "--out", str(run), *TINY],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-3000:]
    return run


# ---- tests -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    return tiny_run(tmp_path_factory.mktemp("shared"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_answers_in_one_line(case: Case, finished_run: Path, tmp_path: Path):
    result = run_case(case, tmp_path, finished_run)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    prefix = "splat: warning: " if case.warning else "splat: error: "
    assert result.code == case.code, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 1 and lines[0].startswith(prefix), result.stderr[-3000:]
    assert case.says in lines[0]
    assert result.changed == [], f"changed outside --out: {result.changed}"
    if case.log:
        assert case.log in (tmp_path / "out" / "fit.log").read_text()


def test_capture_library_output_routes_warnings_and_fd2(tmp_path: Path, capfd):
    """Native writes to fd 2 and library warnings go to the log; splat's warnings reach the terminal too."""
    import warnings

    from splat.errors import SplatWarning
    from splat.logs import capture_library_output, show_warning

    log = tmp_path / "fit.log"
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show_warning
        with capture_library_output(log):
            os.write(2, b"I1206 native line from C++\n")
            warnings.warn("overflow encountered in subtract", RuntimeWarning, stacklevel=1)
            warnings.warn("cannot read image x.jpg", SplatWarning, stacklevel=1)
            print("our own line", file=sys.stderr)
    err = capfd.readouterr().err
    text = log.read_text()
    assert "native line" in text and "overflow encountered in subtract (RuntimeWarning" in text
    assert "warning: cannot read image x.jpg" in text
    assert err.splitlines() == ["splat: warning: cannot read image x.jpg", "our own line"]


def test_help_does_not_import_torch():
    code = (
        "import sys\nfrom splat.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
    )
    code += "print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("False"), proc.stdout + proc.stderr


def test_the_checks_lists_match_the_modules_they_mirror():
    from splat.checks import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
    from splat.export.video import CONTAINERS
    from splat.io.images import IMAGE_EXTENSIONS as LOADED

    assert IMAGE_EXTENSIONS == LOADED and VIDEO_EXTENSIONS == tuple(CONTAINERS)


def test_force_starts_a_run_over_and_replaces_an_export(finished_run: Path, tmp_path: Path):
    """--force is the way past each refusal above: a run started over, an unrelated file replaced."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "eval.json").write_text("{}")  # an old run's score must not sit next to the new splat
    splat = [sys.executable, "-m", "splat"]
    proc = subprocess.run([*splat, "fit", str(IMAGES), "--out", str(run), "--force", *TINY],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-3000:]
    assert not (run / "eval.json").exists() and (run / "splat.ply").exists()
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    proc = subprocess.run([*splat, "export", str(run), "--format", "spz", "--out", str(notes), "--force"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0 and notes.read_bytes() != b"mine", proc.stderr[-3000:]

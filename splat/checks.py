"""Every flag of every command is checked here, before any work starts.

Two layers:
- argparse types (`count`, `side`, `number`, `port`, `names`, `counts`) check one value: its type and range;
- `check(args)` checks what needs the file system, the network or several flags: input folders,
  output locations, whether the viewer's address can be bound.
Each refusal is one line (`splat: error: ...`, printed by the CLI) naming the flag and the fix.

Output locations (fit, eval, batch, export, render):
- a path under a file, or in a folder that cannot be written, is refused;
- an existing file is replaced only with --force, unless it is the command's own default output
  (RUN/export/..., RUN/<path>.mp4, RUN/eval.json);
- `splat fit --out` holding another run needs --resume (continue it) or --force (start it over); a
  non-empty folder holding no run needs --force; --resume on a folder holding no run is refused;
- `splat batch --out` holding something other than batch results needs --force.
Nothing is created or changed before the checks pass (the write probe is an unnamed temporary file).
Only the standard library is imported (torch only for --device/--backend cuda), so a refused
command answers at once.
"""

from __future__ import annotations

import argparse
import errno
import math
import socket
import tempfile
from pathlib import Path

from splat.errors import InputError
from splat.run import RunFolder

# the same lists as splat.io.images.IMAGE_EXTENSIONS and splat.export.video.CONTAINERS (tested),
# repeated because importing those modules loads torch
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov")  # said in _render's message
VIDEO_INPUTS = (".mp4", ".mov", ".webm", ".mkv", ".m4v", ".avi")  # splat.io.video.VIDEO_EXTENSIONS (tested)
MIN_SIDE = 64  # below this, images carry too little detail for matching and training
POSE_METHODS = ("auto", "sparse", "colmap")


# ---- argparse types: one value each ------------------------------------------------------------


def count(least: int, fix: str | None = None):
    """argparse type: a whole number >= least; `fix` says what to give instead."""
    fix = fix or f"give {least} or more"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; {fix}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is too small; {fix}")
        return value

    return parse


side = count(MIN_SIDE, f"give {MIN_SIDE} px or more")
"""argparse type: an image side in pixels, MIN_SIDE or more (--max-side)."""


def number(above: float | None = None, least: float | None = None, fix: str = "give a positive number"):
    """argparse type: a finite float > above (or >= least)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; {fix}") from None
        if (
            not math.isfinite(value)
            or (above is not None and value <= above)
            or (least is not None and value < least)
        ):
            raise argparse.ArgumentTypeError(f"{text} is out of range; {fix}")
        return value

    return parse


def port(text: str) -> int:
    """argparse type: a TCP port, 1-65535."""
    value = count(1, "give a port from 1 to 65535 (e.g. 8080)")(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port; give a port from 1 to 65535 (e.g. 8080)")
    return value


def names(text: str) -> list[str] | None:
    """argparse type: comma-separated names, e.g. a.jpg,b.jpg (empty: None, no names given)."""
    return text.split(",") if text else None


def counts(text: str) -> list[int]:
    """argparse type: comma-separated whole numbers >= 1, e.g. 3,6,12."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give view counts like 3,6,12") from None
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: view counts must be 1 or more, like 3,6,12")
    return values


# ---- the checks of each command ----------------------------------------------------------------


def check(args: argparse.Namespace) -> None:
    """Raise InputError for the first flag of `args` that cannot work; fill in default outputs."""
    _check_cuda(args)
    checks = {"fit": _fit, "eval": _eval, "batch": _batch, "info": _info, "view": _view,
              "export": _export, "render": _render}  # fmt: skip
    if args.command in checks:
        checks[args.command](args)


def fit_out(args: argparse.Namespace) -> Path:
    """The run folder of `splat fit`: --out, else runs/<image folder name> (a video's name without suffix)."""
    path = Path(args.images).resolve()
    return Path(args.out or f"runs/{path.stem if path.is_file() else path.name}")


def _fit(a: argparse.Namespace) -> None:
    video = _video_input(a.images)
    names = [] if video else _image_names(a.images, "IMAGES")
    if a.views:
        missing = [] if video else [v for v in a.views if v not in names]  # a video's frames: named later
        if missing:
            raise InputError(f"--views: {', '.join(missing)} not in {a.images}; give names of its photos")
        if len(set(a.views)) < 2:
            raise InputError("--views: name at least 2 different photos to train on")
    if a.poses.startswith("given:"):
        _colmap_model(a.poses[len("given:") :], "--poses given:")
    elif a.poses not in POSE_METHODS:
        raise InputError(f"--poses {a.poses!r}: use auto, sparse, colmap or given:DIR (a COLMAP model)")
    if a.init.startswith("given:"):
        if not Path(a.init[len("given:") :]).is_file():
            raise InputError(f"--init {a.init}: no such file; give a 3DGS .ply (given:PATH.ply)")
    elif a.init.startswith("prior:"):
        from splat.init.prior import load_prior

        load_prior(a.init[len("prior:") :])  # a missing or foreign file fails now, not after the pose stage
    elif a.init not in ("edgs", "sparse"):
        raise InputError(f"--init {a.init!r}: use edgs, sparse, given:PATH.ply or prior:MODEL.pt")
    _run_folder(fit_out(a), a.resume, a.force)
    if a.view:
        _bindable(a.host, a.port)
        _warn_if_reachable(a.host)


def _eval(a: argparse.Namespace) -> None:
    _finished_run(a.run)
    gt = Path(a.gt)
    root = gt / "24_views" if (gt / "24_views" / "images").is_dir() else gt
    if not (root / "images").is_dir():
        raise InputError(f"--gt {gt}: no images/ folder; give a scene folder with images/ and sparse/0")
    if not any((d / f"cameras{e}").is_file() for d in (root / "sparse" / "0", root / "sparse")
               for e in (".bin", ".txt")):  # fmt: skip
        raise InputError(f"--gt {gt}: no COLMAP model in sparse/0; give a scene with ground-truth cameras")
    _writable(Path(a.run), "RUN")  # eval.json and eval_cameras/ are written into the run


def _batch(a: argparse.Namespace) -> None:
    root = Path(a.root)
    if not root.is_dir():
        raise InputError(f"benchmark folder {root} does not exist; give a folder of <Scene>/images folders")
    scenes = [
        p.name for p in root.iterdir() if (p / "images").is_dir() or (p / "24_views" / "images").is_dir()
    ]
    if not scenes:
        raise InputError(f"{root}: no scene folders found; expected <Scene>/images (+ sparse/0)")
    missing = sorted(set(a.scenes.split(",")) - set(scenes)) if a.scenes else []
    if missing:
        raise InputError(
            f"--scenes: no scene folder {', '.join(missing)} in {root} (it has {', '.join(scenes)})"
        )
    if a.poses not in (*POSE_METHODS, "gt"):
        raise InputError(f"--poses {a.poses!r}: use auto, sparse, colmap or gt (each scene's sparse/0)")
    ray_only = {"--address": a.address, "--cpus-per-job": a.cpus_per_job, "--gpus-per-job": a.gpus_per_job}
    given = [flag for flag, value in ray_only.items() if value]
    if a.executor != "ray" and given:
        raise InputError(f"{given[0]} is for --executor ray; add --executor ray or drop it")
    out = Path(a.out)
    _not_a_file(out, "--out", "a folder for the results")
    ours = (out / "results.json").is_file() or any(out.glob("*/*views/job.json"))
    if out.is_dir() and any(out.iterdir()) and not ours and not a.force:
        raise InputError(
            f"--out {out} holds files that are not `splat batch` results; pick a new or empty folder "
            "(--force writes into it)"
        )
    _writable(out, "--out")


def _info(a: argparse.Namespace) -> None:
    _image_names(a.path, "PATH", at_least=1, subfolder=True)


def _view(a: argparse.Namespace) -> None:
    path = Path(a.path)
    if not path.exists():
        raise InputError(f"{path} does not exist; pass a `splat fit` run folder or a .ply file")
    if path.is_dir() and not RunFolder(path).splat.is_file():
        raise InputError(f"{path}: no splat.ply here; pass a `splat fit` run folder or a .ply file")
    _bindable(a.host, a.port)
    _warn_if_reachable(a.host)


def _export(a: argparse.Namespace) -> None:
    from splat.export import default_output

    if a.format == "points":
        run = RunFolder(a.run)
        if not run.init.is_file():
            raise InputError(f"{run.root}: no init.ply here; is this a `splat fit` run folder?")
        if not (run.cameras.is_dir() or run.poses.is_dir()):
            raise InputError(
                f"{run.root}: neither cameras/ nor poses/ found; is this a `splat fit` run folder?"
            )
    else:
        _finished_run(a.run)
    default = default_output(a.run, a.format)
    out = Path(a.out) if a.out else default
    if a.format in ("colmap", "points"):  # a COLMAP model folder
        _not_a_file(out, "--out", "a folder for the COLMAP model")
        if out.is_dir() and any(out.iterdir()) and out.resolve() != default.resolve() and not a.force:
            raise InputError(
                f"--out {out} is not empty; add --force to write the model into it, or pick another"
            )
        _writable(out, "--out")
    else:
        _output_file(out, "--out", a.force, default)


def _render(a: argparse.Namespace) -> None:
    _finished_run(a.run)
    default = Path(a.run) / f"{a.path}.mp4"
    video = Path(a.video) if a.video else default
    if video.suffix.lower() not in VIDEO_EXTENSIONS:
        raise InputError(f"--video {video}: the name must end in .mp4, .mkv or .mov")
    _output_file(video, "--video", a.force, default)


def _check_cuda(a: argparse.Namespace) -> None:
    for flag in ("device", "backend"):
        if getattr(a, flag, None) == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise InputError(f"--{flag} cuda: torch sees no CUDA device here; use --{flag} cpu or auto")


# ---- inputs ------------------------------------------------------------------------------------


def _image_names(folder: str, what: str, at_least: int = 2, subfolder: bool = False) -> list[str]:
    """The image file names of a photo folder (or of its images/ when `subfolder`); at least `at_least`."""
    path = Path(folder)
    for inner in ("images", "24_views/images") if subfolder else ():  # a COLMAP or Tanks & Temples scene
        if (path / inner).is_dir():
            path = path / inner
            break
    if not path.is_dir():
        kind = "is a file" if path.exists() else "does not exist"
        raise InputError(f"{what} {folder} {kind}; give a folder of photos (JPEG/PNG)")
    names = sorted(p.name for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if len(names) < at_least:
        raise InputError(
            f"{what} {folder}: {len(names)} photo(s) (.jpg/.png), need at least {at_least}; "
            "put the photos of the scene in it"
        )
    return names


def _video_input(images: str) -> bool:
    """Whether `splat fit IMAGES` is given a video, or a folder of videos and no photos."""
    path = Path(images)
    if path.is_file():
        if path.suffix.lower() in VIDEO_INPUTS:
            return True
        raise InputError(
            f"IMAGES {images} is a file, not a video ({', '.join(VIDEO_INPUTS)}); "
            "give a folder of photos (JPEG/PNG) or a video"
        )
    if not path.is_dir():
        return False
    files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
    videos = sorted(p.name for p in files if p.suffix.lower() in VIDEO_INPUTS)
    photos = sorted(p.name for p in files if p.suffix.lower() in IMAGE_EXTENSIONS)
    if videos and photos:
        raise InputError(
            f"IMAGES {images} holds both photos ({len(photos)}, e.g. {photos[0]}) and videos ({len(videos)}, "
            f"e.g. {videos[0]}); move the videos or the photos to another folder"
        )
    return bool(videos)


def _colmap_model(folder: str, flag: str) -> None:
    path = Path(folder)
    if not any((path / f"{n}{e}").is_file() for n in ("cameras", "images") for e in (".txt", ".bin")):
        raise InputError(f"{flag}{folder}: no COLMAP model (cameras.txt/.bin, images.txt/.bin) there")


def _finished_run(run: str) -> None:
    path = Path(run)
    if not RunFolder(path).splat.is_file():
        raise InputError(f"{path}: no splat.ply here; is this a finished `splat fit` run folder?")
    if not RunFolder(path).cameras.is_dir():
        raise InputError(f"{path}: no cameras/ here; is this a finished `splat fit` run folder?")


# ---- outputs -----------------------------------------------------------------------------------


def _run_folder(out: Path, resume: bool, force: bool) -> None:
    """`splat fit --out`: a new or empty folder, or a run to --resume or to start over (--force)."""
    if resume and force:
        raise InputError("--resume and --force: choose one (continue the run, or start it over)")
    _not_a_file(out, "--out", "a folder for the run")
    holds_run = is_run(out)
    if resume and not holds_run:
        raise InputError(
            f"--resume: {out} holds no run to continue (no config.json); drop --resume to start one"
        )
    if holds_run and not (resume or force):
        raise InputError(
            f"--out {out} already holds a run; add --resume to continue it, --force to start it over, "
            "or pick another --out"
        )
    if out.is_dir() and not holds_run and any(out.iterdir()) and not force:
        raise InputError(
            f"--out {out} is not empty and holds no run; pick a new or empty folder (--force writes into it)"
        )
    _writable(out, "--out")


def is_run(folder: Path) -> bool:
    """Whether `folder` holds a `splat fit` run (its config.json names the image folder)."""
    return RunFolder(folder).is_run()


def _output_file(path: Path, flag: str, force: bool, default: Path) -> None:
    """An output file: not a folder; an existing one replaced only when --force or our own default."""
    if path.is_dir():
        raise InputError(f"{flag} {path} is a folder; give a file name")
    if path.exists() and not force and path.resolve() != default.resolve():
        raise InputError(f"{flag} {path} already exists; add --force to replace it, or pick another name")
    _writable(path.parent, flag, shown=path)


def _not_a_file(path: Path, flag: str, what: str) -> None:
    if path.exists() and not path.is_dir():
        raise InputError(f"{flag} {path} is a file; give {what}")


def _writable(folder: Path, flag: str, shown: Path | None = None) -> None:
    """Refuse `folder` when it, or the nearest folder above it that exists, cannot be written in."""
    shown = shown or folder
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{flag} {shown}: {existing} is a file, not a folder; give a path under a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):  # unnamed (O_TMPFILE) where the OS supports it
            pass
    except OSError as e:
        reason = "no files can be created there" if e.errno == errno.ENOENT else e.strerror.lower()
        raise InputError(
            f"{flag} {shown}: cannot write in {existing} ({reason}); give a folder you can write to"
        ) from None


def _bindable(host: str, port: int) -> None:
    """Refuse an address the viewer cannot listen on; a port in use is fine (the next free one is taken)."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise InputError(
            f"--host {host}: unknown address ({e}); use 127.0.0.1, 0.0.0.0 or this machine's name"
        ) from None
    with socket.socket(family, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return
            if e.errno == errno.EACCES:
                raise InputError(
                    f"--port {port}: cannot bind (permission denied; ports below 1024 need privileges); "
                    "use a port from 1024 up, e.g. 8080"
                ) from None
            raise InputError(
                f"--host {host} --port {port}: cannot bind ({e.strerror.lower()}); use 127.0.0.1 or 0.0.0.0"
            ) from None


def _warn_if_reachable(host: str) -> None:
    """One warning when the viewer listens on an address other machines can reach (not loopback)."""
    import ipaddress
    import warnings

    from splat.errors import SplatWarning

    address = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0]
    if not ipaddress.ip_address(address.split("%")[0]).is_loopback:
        warnings.warn(
            f"--host {host}: the scene becomes reachable from the network (anyone who can reach this "
            "machine can open the viewer); use --host 127.0.0.1 to keep it local",
            SplatWarning,
            stacklevel=2,
        )

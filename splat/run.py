"""The run folder of `splat fit`: every artifact's name in one place, the run log, JSON writes.

    RUN/config.json        the resolved configuration (+ images_dir: what makes a folder a run)
    RUN/poses/             COLMAP text model from the pose stage (+ poses.json: method, reason, verdict)
    RUN/init.ply           initial Gaussians (3DGS layout) and RUN/init_report.json
    RUN/init_depths.npz    the init's per-view depth maps, kept for training's depth term (--depth-weight)
    RUN/checkpoints/       training checkpoints (for --resume)
    RUN/splat.ply          trained Gaussians
    RUN/cameras/           COLMAP text model of the trained (refined) cameras
    RUN/metrics.json       per-stage wall times, counts, final training loss/PSNR
    RUN/fit.log            every stage's messages, and what libraries print (pycolmap, OpenCV, warnings)
    RUN/eval.json          `splat eval`'s scores, and RUN/eval_cameras/ the aligned test cameras

Importing this module loads no torch (splat.checks uses it before any work).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from splat.errors import InputError


@dataclass(frozen=True)
class RunFolder:
    """The paths of one run folder; nothing is read or created by building one."""

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    config = property(lambda self: self.root / "config.json")
    poses = property(lambda self: self.root / "poses")
    poses_json = property(lambda self: self.root / "poses" / "poses.json")
    init = property(lambda self: self.root / "init.ply")
    init_report = property(lambda self: self.root / "init_report.json")
    init_depths = property(lambda self: self.root / "init_depths.npz")  # with --depth-weight
    checkpoints = property(lambda self: self.root / "checkpoints")
    splat = property(lambda self: self.root / "splat.ply")
    cameras = property(lambda self: self.root / "cameras")
    metrics = property(lambda self: self.root / "metrics.json")
    log = property(lambda self: self.root / "fit.log")
    eval = property(lambda self: self.root / "eval.json")
    eval_cameras = property(lambda self: self.root / "eval_cameras")

    # what `--force` removes to start a run over (fit.log stays: it is the run's history)
    ARTIFACTS = ("poses", "init.ply", "init_report.json", "init_depths.npz", "checkpoints", "splat.ply",
                 "cameras", "metrics.json", "eval.json", "eval_cameras")  # fmt: skip

    def is_run(self) -> bool:
        """Whether the folder holds a `splat fit` run (its config.json names the image folder)."""
        try:
            return "images_dir" in json.loads(self.config.read_text())
        except (OSError, ValueError, TypeError):
            return False

    def read_config(self) -> dict:
        """RUN/config.json as a dict."""
        return json.loads(self.config.read_text())

    def read_metrics(self) -> dict:
        """RUN/metrics.json as a dict ({} when the run has not finished)."""
        return json.loads(self.metrics.read_text()) if self.metrics.exists() else {}

    def read_poses(self) -> dict:
        """RUN/poses/poses.json as a dict ({} for given poses or an older run)."""
        return json.loads(self.poses_json.read_text()) if self.poses_json.exists() else {}

    def pose_verdict(self) -> str | None:
        """The verification verdict in RUN/poses/poses.json (None: given poses or an older run)."""
        return self.read_poses().get("verification", {}).get("verdict")

    def start_over(self) -> None:
        """Remove an earlier fit's artifacts (fit.log stays), so nothing of it is resumed or kept."""
        for name in self.ARTIFACTS:
            path = self.root / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def logger(self, stage: str, echo: bool = False):
        """A log function for one stage; see run_logger."""
        return run_logger(self.root, stage, echo)


def run_logger(run: str | Path, stage: str, echo: bool = False):
    """A log function for one stage: appends timestamped lines to RUN/fit.log (kept across resumes, so
    batch runs, whose output nobody watches, can be diagnosed) and prints them too when `echo`."""
    path = RunFolder(run).log

    def log(*parts, **_):
        msg = " ".join(str(p) for p in parts)
        with open(path, "a") as f:
            for line in msg.splitlines() or [""]:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {stage}: {line}\n")
        if echo:
            print(msg, flush=True)

    return log


def write_json(path: str | Path, data: dict) -> None:
    """Write `data` as indented JSON, atomically; numpy scalars and paths are written as plain values."""
    from splat.io.atomic import atomic_write_text  # splat.io loads torch; this module must not

    atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(obj):
    if hasattr(obj, "item") and getattr(obj, "shape", None) == ():  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def load_run(run_dir: str | Path):
    """The trained Gaussians and cameras of a finished run: (Gaussians, Cameras)."""
    from splat.io.colmap import read_model
    from splat.io.ply import read_ply

    run = RunFolder(run_dir)
    if not run.splat.exists():
        raise InputError(f"{run.root}: no splat.ply here; is this a finished `splat fit` run folder?")
    return read_ply(run.splat), read_model(run.cameras).cameras

"""What `splat view` shows: a run folder (splat.ply + cameras/) or a bare 3DGS .ply."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from splat.errors import InputError, ValidationError
from splat.run import RunFolder
from splat.types import Cameras, Gaussians

THUMBNAIL_SIDE = 160


@dataclass
class ViewInput:
    """Gaussians to show, optional cameras and per-camera thumbnails (None where not found)."""

    gaussians: Gaussians
    ply_path: Path
    cameras: Cameras | None = None
    images: list[np.ndarray | None] | None = None


def _read_gaussians(ply: Path) -> Gaussians:
    from splat.io.ply import read_ply

    g = read_ply(ply)
    if len(g) == 0:
        raise InputError(f"{ply} holds no Gaussians; pass a trained splat.ply")
    try:
        return g.validate()
    except ValidationError as e:
        raise InputError(f"{ply} is malformed ({e}); re-export it with `splat fit`") from None


def _read_cameras(run: Path) -> Cameras | None:
    from splat.io.colmap import read_model

    for folder in (RunFolder(run).cameras, RunFolder(run).poses):
        if (folder / "images.txt").exists() or (folder / "images.bin").exists():
            return read_model(folder).cameras
    return None


def _image_folder(run: Path) -> Path | None:
    """The training image folder named in RUN/config.json, if any and if it still exists."""
    try:
        config = RunFolder(run).read_config()
    except (OSError, ValueError):
        return None
    for key in ("images", "images_dir", "image_dir"):
        value = config.get(key) if isinstance(config, dict) else None
        if isinstance(value, str) and Path(value).is_dir():
            return Path(value)
    return None


def _thumbnails(folder: Path | None, names: list[str]) -> list[np.ndarray | None] | None:
    from splat.io.images import read_image

    if folder is None:
        return None
    thumbs: list[np.ndarray | None] = []
    for name in names:
        path = folder / name
        try:
            thumbs.append(read_image(path, max_side=THUMBNAIL_SIDE) if path.is_file() else None)
        except InputError:
            thumbs.append(None)
    return thumbs if any(t is not None for t in thumbs) else None


def load_view_input(path: str | os.PathLike) -> ViewInput:
    """Read a run folder (RUN/splat.ply, RUN/cameras/) or a .ply file (cameras/ beside it if present).

    Raises InputError (one line) for a missing or malformed input.
    """
    path = Path(path)
    if path.is_dir():
        run, ply = path, RunFolder(path).splat
        if not ply.is_file():
            raise InputError(f"{path}: no splat.ply here; pass a `splat fit` run folder or a .ply file")
    elif path.is_file():
        run, ply = path.parent, path
    else:
        raise InputError(f"{path} does not exist; pass a `splat fit` run folder or a .ply file")
    gaussians = _read_gaussians(ply)
    cameras = _read_cameras(run)
    images = _thumbnails(_image_folder(run), cameras.names) if cameras is not None else None
    return ViewInput(gaussians, ply, cameras, images)

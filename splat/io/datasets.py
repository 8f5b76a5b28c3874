"""Scene folders: detect their layout, load images and (when present) known cameras.

Layouts:
- "images": a plain folder of photos (or a folder whose images/ has no sparse model beside it).
- "colmap": <root>/images + <root>/sparse/0 (or <root>/sparse) holding a COLMAP model.
- "tnt": Tanks & Temples as InstantSplat uses it: <Scene>/24_views/images + sparse/0, or a
  COLMAP layout whose images/ holds exactly 24 images. Its train/test split is `tnt_split`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from splat.errors import InputError
from splat.io.colmap import ColmapModel, check_names, read_model
from splat.io.images import ImageSet, list_images, load_image_folder
from splat.types import Cameras

TNT_FRAMES = 24
TNT_SUBFOLDER = "24_views"


@dataclass
class Scene:
    """Images of a scene, with their cameras when the layout provides them.

    Attributes:
        images: the loaded images, in name order.
        cameras: one camera per loaded image (same order and names, K scaled to the loaded
            size), or None for a plain image folder.
        root: the folder holding images/ (and sparse/), or the image folder itself.
        layout: "images", "colmap" or "tnt".
        model: the COLMAP model as read (full resolution, all its views), or None.
    """

    images: ImageSet
    cameras: Cameras | None
    root: Path
    layout: str
    model: ColmapModel | None = None


def _sparse_dir(root: Path) -> Path | None:
    for d in (root / "sparse" / "0", root / "sparse"):
        if any((d / f"cameras{ext}").is_file() for ext in (".bin", ".txt")):
            return d
    return None


def _scene_root(path: Path) -> Path:
    """The folder holding images/: path/24_views when present, else path."""
    sub = path / TNT_SUBFOLDER
    return sub if (sub / "images").is_dir() else path


def detect_layout(path: str | os.PathLike) -> str:
    """ "images", "colmap" or "tnt" (see module docstring); InputError when path is missing."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"scene folder {path} does not exist; pass a folder of photos or a COLMAP scene")
    root = _scene_root(path)
    if not ((root / "images").is_dir() and _sparse_dir(root)):
        return "images"
    if root.name == TNT_SUBFOLDER or len(list_images(root / "images")) == TNT_FRAMES:
        return "tnt"
    return "colmap"


def cameras_for_images(
    model: ColmapModel, names: list[str], sizes: list[tuple[int, int]], root=None
) -> Cameras:
    """The model's cameras for images `names` of (width, height) `sizes`, K scaled to those sizes."""
    cams = model.cameras[check_names(model, names)]
    size = torch.tensor(sizes, dtype=torch.float64)  # (V, 2) loaded width, height
    sx, sy = size[:, 0] / cams.width, size[:, 1] / cams.height
    bad = ((sx / sy - 1).abs() > 0.01).nonzero().reshape(-1).tolist()
    if bad:
        v = bad[0]
        raise InputError(
            f"image {names[v]} in {root} is {sizes[v][0]}x{sizes[v][1]} but COLMAP model {model.path} has "
            f"{int(cams.width[v])}x{int(cams.height[v])} (other aspect ratio); "
            "use the model made from these images"
        )
    K = cams.K.clone()
    K[:, 0] *= sx[:, None]
    K[:, 1] *= sy[:, None]
    return Cameras(K, cams.w2c.clone(), size[:, 0].long(), size[:, 1].long(), list(names))


def _fit_cameras(model: ColmapModel, images: ImageSet) -> Cameras:
    """The model's cameras for the loaded images, in their order, K scaled to the loaded sizes."""
    return cameras_for_images(model, images.names, images.sizes, images.root)


def load_scene(path: str | os.PathLike, max_side: int | None = None) -> Scene:
    """Load a scene folder of any layout; images downscaled so the longer side <= max_side.

    For COLMAP and Tanks & Temples layouts the model's views are matched to the image names
    (InputError when an image has no pose) and K is rescaled to each loaded image's size.
    """
    path = Path(path)
    layout = detect_layout(path)
    if layout == "images":
        folder = path / "images" if (path / "images").is_dir() and not list_images(path) else path
        return Scene(load_image_folder(folder, max_side), None, path, layout)
    root = _scene_root(path)
    images = load_image_folder(root / "images", max_side)
    model = read_model(_sparse_dir(root))
    return Scene(images, _fit_cameras(model, images), root, layout, model)


def tnt_split(n_frames: int = TNT_FRAMES, n_train: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx) of the InstantSplat Tanks & Temples protocol.

    For 24 frames: test = linspace(1, 22, 12) as int = [1, 2, 4, ..., 22]; the other 12 frames form
    the pool and train = pool[linspace(0, 11, n_train) as int] (3 views: [0, 11, 23]).
    Other frame counts use the same rule scaled: test = linspace(1, n-2, n // 2) as int (every
    other frame, first and last kept for training), train spread evenly over the rest.
    """
    if n_frames < 3:
        raise ValueError(f"tnt_split needs at least 3 frames, got {n_frames}")
    test = np.unique(np.linspace(1, n_frames - 2, n_frames // 2).astype(int))
    pool = np.setdiff1d(np.arange(n_frames), test)
    if not 1 <= n_train <= len(pool):
        raise ValueError(f"n_train must be in 1..{len(pool)} for {n_frames} frames, got {n_train}")
    train = pool[np.linspace(0, len(pool) - 1, n_train).astype(int)]
    return train.astype(np.int64), test.astype(np.int64)

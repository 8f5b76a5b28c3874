"""nerfstudio `transforms.json`: OpenGL camera-to-world poses plus pinhole intrinsics.

OpenGL cameras look down -z with y up, so c2w_gl = c2w_cv @ diag(1, -1, -1, 1). Intrinsics
(fl_x, fl_y, cx, cy, w, h) may be global or per frame (per frame wins); a Blender-style
`camera_angle_x` is accepted when fl_x is absent. Distortion keys (k1.., p1, p2) are ignored.
The world frame is kept as stored: a nerfstudio `applied_transform` is not undone.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from splat.errors import InputError
from splat.io.atomic import atomic_write_text
from splat.types import Cameras

GL_FROM_CV = np.diag([1.0, -1.0, -1.0, 1.0])  # flips the camera's y and z axes
INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h")
UNSUPPORTED_MODELS = ("OPENCV_FISHEYE", "EQUIRECTANGULAR")


def _invert_rigid(T: np.ndarray) -> np.ndarray:
    """(..., 4, 4) rigid transforms -> their inverses [R^T, -R^T t]."""
    out = np.zeros_like(T)
    Rt = np.swapaxes(T[..., :3, :3], -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -(Rt @ T[..., :3, 3:])[..., 0]
    out[..., 3, 3] = 1
    return out


def _intrinsics(frame: dict, meta: dict, path: Path) -> tuple[float, float, float, float, int, int]:
    get = lambda k: frame.get(k, meta.get(k))  # noqa: E731
    w, h = get("w"), get("h")
    if w is None or h is None:
        raise InputError(f"{path} gives no image size (w, h) for {frame.get('file_path')}; add w and h")
    fx = get("fl_x")
    if fx is None and get("camera_angle_x") is not None:
        fx = 0.5 * w / math.tan(0.5 * get("camera_angle_x"))
    if fx is None:
        raise InputError(f"{path} gives no focal length (fl_x) for {frame.get('file_path')}; add fl_x")
    fy = get("fl_y") if get("fl_y") is not None else fx
    cx = get("cx") if get("cx") is not None else w / 2
    cy = get("cy") if get("cy") is not None else h / 2
    return float(fx), float(fy), float(cx), float(cy), int(w), int(h)


def _strip_folder(file_path: str, image_folder: str | None) -> str:
    p = PurePosixPath(file_path.replace("\\", "/"))
    p = PurePosixPath(*[part for part in p.parts if part != "."])
    if (
        image_folder
        and p.parts[: len(PurePosixPath(image_folder).parts)] == PurePosixPath(image_folder).parts
    ):
        p = p.relative_to(image_folder)
    return str(p)


def read_transforms(path: str | os.PathLike, image_folder: str | None = "images") -> Cameras:
    """Read transforms.json into float64 OpenCV `Cameras`, frames in file order.

    Names are the frames' file_path with a leading `image_folder/` removed.
    """
    path = Path(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        frames = meta["frames"]
        c2w_gl = np.array([f["transform_matrix"] for f in frames], np.float64).reshape(-1, 4, 4)
        names = [_strip_folder(f["file_path"], image_folder) for f in frames]
    except FileNotFoundError:
        raise InputError(f"{path} does not exist; pass a nerfstudio transforms.json") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise InputError(f"cannot read {path}: {reason}; expected nerfstudio transforms.json") from None
    if meta.get("camera_model", "OPENCV") in UNSUPPORTED_MODELS:
        raise InputError(
            f"{path} uses camera_model {meta['camera_model']}; only pinhole/OPENCV are supported"
        )
    intr = np.array([_intrinsics(f, meta, path) for f in frames], np.float64).reshape(-1, 6)
    K = np.zeros((len(frames), 3, 3))
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = *intr[:, :4].T, 1.0
    w2c = _invert_rigid(c2w_gl @ GL_FROM_CV)
    return Cameras(torch.from_numpy(K), torch.from_numpy(w2c), intr[:, 4], intr[:, 5], names)


def write_transforms(path: str | os.PathLike, cameras: Cameras, image_folder: str | None = "images") -> Path:
    """Write `cameras` as transforms.json (atomic); file_path = image_folder/name.

    Intrinsics go to the top level when all views share them, else into each frame.
    """
    path = Path(path)
    K = cameras.K.detach().cpu().double().numpy()
    w2c = cameras.w2c.detach().cpu().double().numpy()
    c2w_gl = _invert_rigid(w2c) @ GL_FROM_CV
    intr = [
        dict(zip(INTRINSIC_KEYS, (K[v, 0, 0], K[v, 1, 1], K[v, 0, 2], K[v, 1, 2], w, h)))
        for v, (w, h) in enumerate(zip(cameras.width.tolist(), cameras.height.tolist()))
    ]
    intr = [{k: (int(x) if k in ("w", "h") else float(x)) for k, x in d.items()} for d in intr]
    shared = all(d == intr[0] for d in intr)
    meta: dict = {"camera_model": "OPENCV", **(intr[0] if shared and intr else {})}
    meta["frames"] = [
        {
            "file_path": f"{image_folder}/{name}" if image_folder else name,
            "transform_matrix": c2w_gl[v].tolist(),
            **({} if shared else intr[v]),
        }
        for v, name in enumerate(cameras.names)
    ]
    atomic_write_text(path, json.dumps(meta, indent=2) + "\n")
    return path

"""Fly-through videos: camera paths along the training cameras (or an orbit) rendered to .mp4.

Paths are `Cameras` (OpenCV w2c). `interpolate_path` goes through the cameras in name order,
slerping rotations (roma) and moving centres and intrinsics linearly; `orbit_path` circles the
scene centre (the point nearest to all optical axes) at the cameras' median radius and height,
about the cameras' mean up direction. Frames are encoded with imageio-ffmpeg (its wheel ships an
ffmpeg binary), H.264 in yuv420p so every player opens them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import roma
import torch
from torch import Tensor

from splat.errors import InputError
from splat.geometry.se3 import look_at_w2c
from splat.io.atomic import atomic_path
from splat.io.images import to_uint8
from splat.types import Cameras, Gaussians

CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}


def scene_up(cameras: Cameras) -> Tensor:
    """Mean 'up' (minus camera y axis) of the cameras in world coordinates, (3,) unit."""
    return torch.nn.functional.normalize(-cameras.w2c[:, 1, :3].double().mean(0), dim=0)


def scene_center(cameras: Cameras) -> Tensor:
    """The point nearest (least squares) to all optical axes, (3,); the centres' mean if ill-posed."""
    c = cameras.centers.double()
    d = cameras.w2c[:, 2, :3].double()  # optical axes in world coordinates
    P = torch.eye(3, dtype=torch.float64) - d[:, :, None] * d[:, None, :]  # (V, 3, 3) projectors
    A, b = P.sum(0), (P @ c[..., None]).sum(0)[:, 0]
    if len(cameras) < 2 or float(torch.linalg.cond(A)) > 1e6:
        return c.mean(0)
    return torch.linalg.solve(A, b)


def orbit_path(cameras: Cameras, frames: int, center: Tensor | None = None) -> Cameras:
    """`frames` views on a circle around the scene, starting at the first camera; K of the first camera."""
    up = scene_up(cameras)
    center = scene_center(cameras) if center is None else torch.as_tensor(center, dtype=torch.float64)
    rel = cameras.centers.double() - center
    height = float((rel @ up).median())
    flat = rel - (rel @ up)[:, None] * up
    radius = float(flat.norm(dim=1).median())
    e1 = torch.nn.functional.normalize(flat[0], dim=0) if float(flat[0].norm()) > 1e-9 else _perpendicular(up)
    e2 = torch.linalg.cross(up, e1)
    angles = torch.arange(frames, dtype=torch.float64) * (2 * math.pi / frames)
    eyes = center + height * up + radius * (angles.cos()[:, None] * e1 + angles.sin()[:, None] * e2)
    w2c = look_at_w2c(eyes, center.expand_as(eyes), up)
    return _path_cameras(cameras[0], w2c, cameras.K[:1].double().expand(frames, 3, 3))


def interpolate_path(cameras: Cameras, frames: int) -> Cameras:
    """`frames` views through the cameras in name order: slerp rotations, lerp centres and K."""
    if len(cameras) < 2:
        raise InputError("an interpolated path needs at least 2 cameras; use --path orbit")
    cams = cameras[sorted(range(len(cameras)), key=lambda i: cameras.names[i])]
    s = torch.linspace(0, len(cams) - 1, frames, dtype=torch.float64)
    i = s.floor().long().clamp_max(len(cams) - 2)
    t = s - i
    R = cams.w2c[:, :3, :3].double()
    R_t = torch.stack([roma.rotmat_slerp(R[a], R[a + 1], w.reshape(1))[0] for a, w in zip(i.tolist(), t)])
    c = cams.centers.double()
    centers = c[i] + t[:, None] * (c[i + 1] - c[i])
    K = cams.K.double()
    K_t = K[i] + t[:, None, None] * (K[i + 1] - K[i])
    w2c = torch.eye(4, dtype=torch.float64).repeat(frames, 1, 1)
    w2c[:, :3, :3] = R_t
    w2c[:, :3, 3] = -(R_t @ centers[..., None])[..., 0]
    return _path_cameras(cams[0], w2c, K_t)


def _perpendicular(v: Tensor) -> Tensor:
    a = (
        torch.tensor([1.0, 0, 0], dtype=torch.float64)
        if abs(float(v[0])) < 0.9
        else torch.tensor([0.0, 1, 0])
    )
    return torch.nn.functional.normalize(torch.linalg.cross(v, a.double()), dim=0)


def _path_cameras(first: Cameras, w2c: Tensor, K: Tensor) -> Cameras:
    n = len(w2c)
    return Cameras(K.clone(), w2c, first.width.expand(n).clone(), first.height.expand(n).clone(),
                   [f"frame_{k:05d}" for k in range(n)])  # fmt: skip


def camera_path(cameras: Cameras, kind: str, frames: int) -> Cameras:
    """'orbit' or 'interpolate' path of `frames` views."""
    if frames < 1:
        raise InputError(f"--frames must be positive, got {frames}")
    if kind == "orbit":
        return orbit_path(cameras, frames)
    if kind == "interpolate":
        return interpolate_path(cameras, frames)
    raise InputError(f"unknown --path {kind!r}: use orbit or interpolate")


def render_frames(gaussians: Gaussians, path: Cameras, backend: str = "auto", background=None):
    """Yield (H, W, 3) uint8 frames of `gaussians` seen from each camera of `path`."""
    from splat.render import render

    cams = path.to(device=gaussians.device, dtype=gaussians.dtype)
    with torch.no_grad():
        for v in range(len(cams)):
            image = render(gaussians, cams[v], background=background, backend=backend).image
            yield to_uint8(image).cpu().numpy()


def write_video(path: str | os.PathLike, frames, fps: int = 24) -> Path:
    """Encode an iterable of (H, W, 3) uint8 frames as H.264 (atomic write); returns the path."""
    import imageio_ffmpeg

    path = Path(path)
    container = CONTAINERS.get(path.suffix.lower())
    if container is None:
        raise InputError(f"{path}: video must end in {', '.join(CONTAINERS)}")
    writer = None
    with atomic_path(path) as tmp:
        try:
            for frame in frames:
                frame = _even(np.ascontiguousarray(frame, np.uint8))
                if writer is None:
                    size = (frame.shape[1], frame.shape[0])
                    writer = imageio_ffmpeg.write_frames(
                        str(tmp), size, fps=fps, codec="libx264", macro_block_size=1,
                        output_params=["-f", container],
                    )  # fmt: skip
                    writer.send(None)
                writer.send(frame.tobytes())
            if writer is None:
                raise InputError(f"{path}: no frames to write")
        finally:
            if writer is not None:
                writer.close()
    return path


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad to even width and height (yuv420p needs them) by repeating the last row/column."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def render_run_video(
    run: str | os.PathLike,
    video: str | os.PathLike | None = None,
    kind: str = "orbit",
    frames: int = 120,
    fps: int = 24,
    scale: float = 1.0,
    backend: str = "auto",
) -> Path:
    """Render a fly-through of a finished run (splat.ply, cameras/) to `video` (default RUN/<kind>.mp4)."""
    from splat.config import resolve_device
    from splat.run import load_run

    gaussians, cameras = load_run(run)
    path = camera_path(cameras, kind, frames)
    if scale != 1.0:
        path.K[:, :2] *= scale
        path.width = (path.width * scale).round().long().clamp_min(1)
        path.height = (path.height * scale).round().long().clamp_min(1)
    gaussians = gaussians.to(resolve_device("auto"))
    out = Path(video) if video else Path(run) / f"{kind}.mp4"
    return write_video(out, render_frames(gaussians, path, backend), fps)

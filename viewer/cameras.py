"""Camera conversions at the viser border.

Our cameras are OpenCV world-to-camera `w2c` + pinhole `K`. viser describes a camera (a frustum,
or a browser's view) by its camera-to-world rotation (wxyz) and position, also in the OpenCV axis
convention (looks along +z, image up is -y), plus a vertical field of view. Positions on the
viser side live in the display frame (see viewer/splats.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from splat.geometry.se3 import invert_rigid, make_w2c, quat_wxyz_to_rotmat, rotmat_to_quat_wxyz
from viewer.splats import DisplayFrame


def vertical_fov(fy: float, height: int) -> float:
    """Vertical field of view in radians of a pinhole camera with focal fy (pixels) and image height."""
    return 2.0 * math.atan(0.5 * height / fy)


def w2c_to_viser(w2c: np.ndarray, frame: DisplayFrame) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV world-to-camera (4,4) -> (wxyz (4,), position (3,)) of the camera in display units."""
    c2w = invert_rigid(torch.as_tensor(np.asarray(w2c), dtype=torch.float64))
    wxyz = rotmat_to_quat_wxyz(c2w[:3, :3]).numpy()
    return wxyz, frame.to_display(c2w[:3, 3].numpy())


def viser_to_w2c(
    wxyz: np.ndarray, position: np.ndarray, fov: float, width: int, height: int, frame: DisplayFrame
) -> tuple[np.ndarray, np.ndarray]:
    """A viser camera (display frame, vertical fov in radians) -> world w2c (4,4) and K (3,3).

    Square pixels and the principal point at the image centre (COLMAP pixel convention).
    """
    R_c2w = quat_wxyz_to_rotmat(torch.as_tensor(np.asarray(wxyz), dtype=torch.float64))
    centre = torch.as_tensor(frame.to_world(position), dtype=torch.float64)
    w2c = make_w2c(R_c2w.T, -(R_c2w.T @ centre)).numpy()
    f = 0.5 * height / math.tan(0.5 * fov)
    K = np.array([[f, 0.0, 0.5 * width], [0.0, f, 0.5 * height], [0.0, 0.0, 1.0]])
    return w2c, K


def scaled_intrinsics(K: np.ndarray, width: int, height: int, max_side: int) -> tuple[np.ndarray, int, int]:
    """Shrink a camera so its longer side is at most max_side; returns (K, width, height)."""
    s = min(1.0, max_side / max(width, height))
    w, h = max(1, round(width * s)), max(1, round(height * s))
    K = np.asarray(K, np.float64).copy()
    K[0] *= w / width
    K[1] *= h / height
    return K, w, h

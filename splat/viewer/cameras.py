"""Camera conversions at the viser border.

Our cameras are OpenCV world-to-camera `w2c` + pinhole `K`. viser describes a camera (a frustum,
or a browser's view) by its camera-to-world rotation (wxyz) and position, also in the OpenCV axis
convention (looks along +z, image up is -y), plus a vertical field of view. Positions on the
viser side live in the display frame (see splat/viewer/splats.py).
"""

from __future__ import annotations

import math

import numpy as np
import viser.transforms as vtf

from splat.viewer.splats import DisplayFrame

# viser's own SO3 (wxyz) does the quaternion maths here: splat.geometry.se3 imports roma, which
# pulls in torch._dynamo and adds seconds to `splat view` start-up.


def rotation(wxyz: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix of a wxyz quaternion (normalised first)."""
    q = np.asarray(wxyz, np.float64)
    return vtf.SO3(q / np.linalg.norm(q)).as_matrix()


def vertical_fov(fy: float, height: int) -> float:
    """Vertical field of view in radians of a pinhole camera with focal fy (pixels) and image height."""
    return 2.0 * math.atan(0.5 * height / fy)


def w2c_to_viser(w2c: np.ndarray, frame: DisplayFrame) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV world-to-camera (4,4) -> (wxyz (4,), position (3,)) of the camera in display units."""
    R, t = np.asarray(w2c, np.float64)[:3, :3], np.asarray(w2c, np.float64)[:3, 3]
    wxyz = vtf.SO3.from_matrix(R.T).wxyz
    return wxyz, frame.to_display(-R.T @ t)


def viser_to_w2c(
    wxyz: np.ndarray, position: np.ndarray, fov: float, width: int, height: int, frame: DisplayFrame
) -> tuple[np.ndarray, np.ndarray]:
    """A viser camera (display frame, vertical fov in radians) -> world w2c (4,4) and K (3,3).

    Square pixels and the principal point at the image centre (COLMAP pixel convention).
    """
    R_c2w = rotation(wxyz)
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = R_c2w.T, -R_c2w.T @ frame.to_world(position)
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

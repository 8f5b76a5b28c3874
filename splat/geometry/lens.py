"""One radial lens term, as COLMAP's SIMPLE_RADIAL camera: a point with normalised pinhole coordinates x
(x = X/Z, y = Y/Z) is seen at the pixel u = f (1 + k1 r^2) x + c, r^2 = x^2 + y^2.

Photos with such distortion are undistorted once, so everything downstream (dense init, training, the
viewer) keeps pinhole cameras: the undistorted image samples the photo at the distorted position of each
of its pixels.
"""

from __future__ import annotations

import cv2
import numpy as np


def undistort_pixels(uv: np.ndarray, f: float, c: np.ndarray, k1: float, iters: int = 10) -> np.ndarray:
    """(N,2) distorted pixels -> (N,2) pinhole pixels of the same camera (Newton on the radius:
    r_d = r (1 + k1 r^2))."""
    xd = (np.asarray(uv, np.float64) - c) / f
    rd = np.linalg.norm(xd, axis=1)
    r = rd.copy()
    for _ in range(iters):
        r = r - (r * (1.0 + k1 * r**2) - rd) / (1.0 + 3.0 * k1 * r**2)
    scale = np.divide(r, rd, out=np.ones_like(rd), where=rd > 0)
    return f * xd * scale[:, None] + c


def _distorted(p: np.ndarray, f: float, c: np.ndarray, k1: float, f_out: float) -> np.ndarray:
    """Where (N,2) pixels of a pinhole image of focal f_out fall in the photo (focal f, term k1)."""
    x = (p - c) / f_out
    return f * x * (1.0 + k1 * (x**2).sum(-1, keepdims=True)) + c


def undistorted_focal(f: float, c: np.ndarray, size: tuple[int, int], k1: float) -> float:
    """The focal (>= f) of an undistorted image of the same size (W, H) whose every pixel lies inside the
    photo: f itself for barrel distortion (k1 < 0), larger (a small zoom) for pincushion."""
    W, H = size
    t = np.linspace(0.0, 1.0, 17)
    border = np.concatenate(
        [np.stack([t * W, np.zeros_like(t)], 1), np.stack([t * W, np.full_like(t, H)], 1)]
        + [np.stack([np.zeros_like(t), t * H], 1), np.stack([np.full_like(t, W), t * H], 1)]
    )
    f_out = f
    for _ in range(50):  # a border pixel samples the photo at c + s (p - c): inside when s <= 1
        x = (border - c) / f_out
        s = f / f_out * (1.0 + k1 * (x**2).sum(1))
        if s.max() <= 1.0 + 1e-9:
            break
        f_out *= float(s.max())
    return float(f_out)


def undistort_image(image: np.ndarray, f: float, c: np.ndarray, k1: float, f_out: float) -> np.ndarray:
    """(H,W,C) photo -> (H,W,C) pinhole image of focal f_out and principal point c (pixel centres at
    +0.5, as the cameras; bilinear)."""
    H, W = image.shape[:2]
    gx, gy = np.meshgrid(np.arange(W, dtype=np.float64) + 0.5, np.arange(H, dtype=np.float64) + 0.5)
    q = _distorted(np.stack([gx, gy], -1), f, np.asarray(c, np.float64), k1, f_out) - 0.5
    q = q.astype(np.float32)
    out = cv2.remap(image, q[..., 0], q[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(image.shape)

"""antimatter15 `.splat`: 32 bytes per Gaussian, no header, no SH rest (view-independent colour).

Each record: position float32 x3, scale float32 x3 (linear, exp of the log-scale), colour RGBA
uint8 x4 (RGB = clamp(0.5 + SH_C0 * dc) * 255, A = sigmoid(opacity) * 255), rotation uint8 x4
(normalised wxyz quaternion q as round(q * 128 + 128), clamped to 0..255). Records are sorted by
decreasing exp(sum of log-scales) * opacity, as antimatter15's converter does, so that a streaming
viewer draws the big opaque Gaussians first.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from splat.errors import InputError
from splat.io.atomic import atomic_write_bytes
from splat.render.sh import SH_C0
from splat.types import Gaussians

RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rotation", "u1", 4)])


def splat_order(gaussians: Gaussians) -> np.ndarray:
    """Record order (N,) int64: decreasing volume x opacity, ties by index."""
    g = gaussians.detach().to("cpu", torch.float64)
    key = torch.exp(g.log_scales.sum(1)) * torch.sigmoid(g.opacity_logits)
    return np.argsort(-key.numpy(), kind="stable")


def encode_splat(gaussians: Gaussians) -> bytes:
    """The .splat bytes of `gaussians` (records in splat_order)."""
    g = gaussians.detach().to("cpu", torch.float64)[torch.from_numpy(splat_order(gaussians))]
    rec = np.zeros(len(g), RECORD)
    rec["position"] = g.means.numpy()
    rec["scale"] = g.log_scales.exp().numpy()
    rgb = (0.5 + SH_C0 * g.sh_dc).clamp(0, 1) * 255
    alpha = torch.sigmoid(g.opacity_logits)[:, None] * 255
    rec["rgba"] = torch.cat([rgb, alpha], 1).round().clamp(0, 255).numpy().astype(np.uint8)
    q = torch.nn.functional.normalize(g.quats, dim=-1)
    rec["rotation"] = (q * 128 + 128).round().clamp(0, 255).numpy().astype(np.uint8)
    return rec.tobytes()


def decode_splat(data: bytes, source: str = "<bytes>") -> Gaussians:
    """Gaussians (SH degree 0, float32) from .splat bytes."""
    if len(data) % RECORD.itemsize:
        raise InputError(f"{source}: {len(data)} bytes is not a whole number of 32-byte .splat records")
    rec = np.frombuffer(data, RECORD)
    rgba = rec["rgba"].astype(np.float64) / 255
    alpha = np.clip(rgba[:, 3], 1e-6, 1 - 1e-6)
    q = (rec["rotation"].astype(np.float64) - 128) / 128
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    with np.errstate(divide="ignore"):
        log_scales = np.log(rec["scale"].astype(np.float64))
    f = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))  # noqa: E731
    return Gaussians(
        means=f(rec["position"]), log_scales=f(np.maximum(log_scales, -80)), quats=f(q),
        opacity_logits=f(np.log(alpha / (1 - alpha))), sh_dc=f((rgba[:, :3] - 0.5) / SH_C0),
        sh_rest=torch.zeros(len(rec), 0, 3),
    )  # fmt: skip


def write_splat(path: str | os.PathLike, gaussians: Gaussians) -> Path:
    """Write an antimatter15 .splat file atomically; returns the path."""
    path = Path(path)
    atomic_write_bytes(path, encode_splat(gaussians))
    return path


def read_splat(path: str | os.PathLike) -> Gaussians:
    """Read an antimatter15 .splat file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist; pass a .splat file")
    return decode_splat(path.read_bytes(), str(path))

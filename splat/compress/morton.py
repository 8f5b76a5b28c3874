"""Morton (Z-order) sorting: neighbours in space become neighbours in the file, so the byte
streams of quantized attributes repeat locally and compress well."""

from __future__ import annotations

import numpy as np


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Insert two zero bits between each of the low 21 bits of v (uint64)."""
    v = v.astype(np.uint64) & np.uint64(0x1FFFFF)
    for shift, mask in ((32, 0x1F00000000FFFF), (16, 0x1F0000FF0000FF), (8, 0x100F00F00F00F00F),
                        (4, 0x10C30C30C30C30C3), (2, 0x1249249249249249)):  # fmt: skip
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def morton_codes(points: np.ndarray, lo: np.ndarray, hi: np.ndarray, bits: int = 21) -> np.ndarray:
    """Interleaved-bit codes (P,) uint64 of points (P, 3) quantized to `bits` per axis in [lo, hi]."""
    scale = (2**bits - 1) / np.maximum(np.asarray(hi, np.float64) - lo, 1e-30)
    q = np.clip(np.floor((np.asarray(points, np.float64) - lo) * scale), 0, 2**bits - 1)
    return (
        _spread_bits(q[:, 0])
        | (_spread_bits(q[:, 1]) << np.uint64(1))
        | (_spread_bits(q[:, 2]) << np.uint64(2))
    )


def morton_order(
    points: np.ndarray, lo: np.ndarray | None = None, hi: np.ndarray | None = None
) -> np.ndarray:
    """Permutation (P,) int64 that sorts points (P, 3) along the Z-order curve of their box (stable)."""
    points = np.asarray(points, np.float64)
    if len(points) == 0:
        return np.zeros(0, np.int64)
    lo = points.min(0) if lo is None else lo
    hi = points.max(0) if hi is None else hi
    return np.argsort(morton_codes(points, lo, hi), kind="stable")

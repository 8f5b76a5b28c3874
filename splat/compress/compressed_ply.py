"""PlayCanvas / SuperSplat compressed .ply (`*.compressed.ply`).

Elements, in file order:
- `chunk` (one per 256 Gaussians, float32): min_x min_y min_z max_x max_y max_z, min/max_scale_x/y/z
  (log-scales, clamped to [-20, 20]), min_r min_g min_b max_r max_g max_b (colour 0.5 + SH_C0 * dc).
- `vertex` (uint32): packed_position (11-10-11 bits of x, y, z within the chunk box, x highest),
  packed_rotation (2 bits: index of the largest |component| of the normalised wxyz quaternion, made
  positive; then the other three in order, 10 bits each of q * sqrt(2)/2 + 0.5), packed_scale
  (11-10-11 within the chunk's scale box), packed_color (8 bits each of r, g, b within the chunk's
  colour box, then sigmoid(opacity), r highest).
- `sh` (only when SH degree > 0, uint8): f_rest_0.. in the 3DGS .ply order, trunc((v / 8 + 0.5) 256).
Unit values are packed as floor(v * (2^bits - 1) + 0.5). Gaussians are stored in Morton order.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import plyfile
import torch

from splat.compress.morton import morton_order
from splat.errors import InputError
from splat.io.atomic import atomic_path
from splat.render.sh import SH_C0
from splat.types import Gaussians

CHUNK = 256
CHUNK_PROPS = [f"{m}_{a}" for m in ("min", "max") for a in "xyz"]
CHUNK_PROPS += [f"{m}_scale_{a}" for m in ("min", "max") for a in "xyz"]
CHUNK_PROPS += [f"{m}_{c}" for m in ("min", "max") for c in "rgb"]
VERTEX_PROPS = ["packed_position", "packed_rotation", "packed_scale", "packed_color"]


def _unorm(v: np.ndarray, bits: int) -> np.ndarray:
    t = (1 << bits) - 1
    return np.clip(np.floor(v * t + 0.5), 0, t).astype(np.uint32)


def _chunk_minmax(x: np.ndarray, n_chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-chunk min and max of x (N, C) -> (n_chunks, C) each (last chunk may be short)."""
    pad = n_chunks * CHUNK - len(x)
    xp = np.concatenate([x, np.repeat(x[-1:], pad, 0)]).reshape(n_chunks, CHUNK, -1)
    return xp.min(1), xp.max(1)


def _normalise(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(x - lo) / (hi - lo) per row's chunk box, 0 for empty boxes, clamped to [0, 1]."""
    rows = np.arange(len(x)) // CHUNK
    lo, span = lo[rows], (hi - lo)[rows]
    t = np.where(span < 1e-5, 0.0, (x - lo) / np.where(span < 1e-5, 1, span))
    return np.clip(t, 0, 1)


def _pack3(t: np.ndarray) -> np.ndarray:
    return _unorm(t[:, 0], 11) << np.uint32(21) | _unorm(t[:, 1], 10) << np.uint32(11) | _unorm(t[:, 2], 11)


def _pack_rotation(q: np.ndarray) -> np.ndarray:
    """(N, 4) wxyz -> 2-10-10-10 smallest three."""
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
    largest = np.abs(q).argmax(1)
    q = np.where(q[np.arange(len(q)), largest][:, None] < 0, -q, q)
    others = np.array([[j for j in range(4) if j != i] for i in range(4)])[largest]
    rest = np.take_along_axis(q, others, 1) * (math.sqrt(2) * 0.5) + 0.5
    return largest.astype(np.uint32) << np.uint32(30) | _pack3_10(rest)


def _pack3_10(t: np.ndarray) -> np.ndarray:
    return _unorm(t[:, 0], 10) << np.uint32(20) | _unorm(t[:, 1], 10) << np.uint32(10) | _unorm(t[:, 2], 10)


def write_compressed_ply(path: str | os.PathLike, gaussians: Gaussians) -> Path:
    """Write a SuperSplat compressed .ply atomically (Morton order); returns the path."""
    g = gaussians.detach().to("cpu", torch.float64)
    if len(g) == 0:
        raise InputError(f"{path}: no Gaussians to write")
    g = g[torch.from_numpy(morton_order(g.means.numpy()))]
    N, K = len(g), g.sh_rest.shape[1]
    C = math.ceil(N / CHUNK)
    xyz = g.means.numpy()
    scale = np.clip(g.log_scales.numpy(), -20, 20)
    rgb = g.sh_dc.numpy() * SH_C0 + 0.5
    boxes = [_chunk_minmax(a, C) for a in (xyz, scale, rgb)]
    chunk = np.zeros(C, [(p, "<f4") for p in CHUNK_PROPS])
    for (lo, hi), names in zip(boxes, ("xyz", ("scale_x", "scale_y", "scale_z"), "rgb")):
        for i, n in enumerate(names):
            chunk[f"min_{n}"], chunk[f"max_{n}"] = lo[:, i], hi[:, i]
    # Pack against the float32 boxes the file stores, so a reader reproduces the same values.
    f32 = [
        (lo.astype(np.float32).astype(np.float64), hi.astype(np.float32).astype(np.float64))
        for lo, hi in boxes
    ]
    vertex = np.zeros(N, [(p, "<u4") for p in VERTEX_PROPS])
    vertex["packed_position"] = _pack3(_normalise(xyz, *f32[0]))
    vertex["packed_rotation"] = _pack_rotation(g.quats.numpy())
    vertex["packed_scale"] = _pack3(_normalise(scale, *f32[1]))
    colour = np.concatenate([_normalise(rgb, *f32[2]), torch.sigmoid(g.opacity_logits).numpy()[:, None]], 1)
    vertex["packed_color"] = sum(_unorm(colour[:, i], 8) << np.uint32(24 - 8 * i) for i in range(4))
    elements = [plyfile.PlyElement.describe(chunk, "chunk"), plyfile.PlyElement.describe(vertex, "vertex")]
    if K:
        rest = g.sh_rest.numpy().transpose(0, 2, 1).reshape(N, 3 * K)  # channel-major, as in the .ply
        sh = np.zeros(N, [(f"f_rest_{i}", "u1") for i in range(3 * K)])
        sh.view("u1").reshape(N, 3 * K)[:] = np.clip(np.trunc((rest / 8 + 0.5) * 256), 0, 255)
        elements.append(plyfile.PlyElement.describe(sh, "sh"))
    path = Path(path)
    with atomic_path(path) as tmp:
        plyfile.PlyData(elements, byte_order="<", comments=["splat compressed ply"]).write(str(tmp))
    return path


def _unpack_unorm(v: np.ndarray, shift: int, bits: int) -> np.ndarray:
    t = (1 << bits) - 1
    return ((v >> np.uint32(shift)) & np.uint32(t)).astype(np.float64) / t


def read_compressed_ply(path: str | os.PathLike) -> Gaussians:
    """Read a SuperSplat compressed .ply into float32 Gaussians (file order)."""
    path = Path(path)
    try:
        ply = plyfile.PlyData.read(str(path))
        chunk, v = ply["chunk"].data, ply["vertex"].data
        packed = {p: np.asarray(v[p], np.uint32) for p in VERTEX_PROPS}
        box = {p: np.asarray(chunk[p], np.float64) for p in CHUNK_PROPS}
    except FileNotFoundError:
        raise InputError(f"{path} does not exist; pass a .compressed.ply file") from None
    except (KeyError, ValueError, plyfile.PlyParseError, plyfile.PlyHeaderParseError, EOFError, OSError) as e:
        raise InputError(f"{path} is not a readable compressed .ply ({' '.join(str(e).split())})") from None
    N = len(v)
    if len(chunk) != math.ceil(N / CHUNK):
        raise InputError(f"{path}: {len(chunk)} chunks for {N} Gaussians; expected {math.ceil(N / CHUNK)}")
    rows = np.arange(N) // CHUNK

    def lerp(prefix: str, axes: str, word: np.ndarray, layout) -> np.ndarray:
        cols = []
        for a, (shift, bits) in zip(axes, layout):
            lo, hi = box[f"min_{prefix}{a}"][rows], box[f"max_{prefix}{a}"][rows]
            cols.append(lo + (hi - lo) * _unpack_unorm(word, shift, bits))
        return np.stack(cols, 1)

    l11 = [(21, 11), (11, 10), (0, 11)]
    means = lerp("", "xyz", packed["packed_position"], l11)
    log_scales = lerp("scale_", "xyz", packed["packed_scale"], l11)
    rgb = lerp("", "rgb", packed["packed_color"], [(24, 8), (16, 8), (8, 8)])
    alpha = np.clip(_unpack_unorm(packed["packed_color"], 0, 8), 1e-6, 1 - 1e-6)
    r = packed["packed_rotation"]
    largest = (r >> np.uint32(30)).astype(np.int64)
    rest = np.stack([(_unpack_unorm(r, s, 10) - 0.5) / (math.sqrt(2) * 0.5) for s in (20, 10, 0)], 1)
    q = np.zeros((N, 4))
    others = np.array([[j for j in range(4) if j != i] for i in range(4)])[largest]
    np.put_along_axis(q, others, rest, 1)
    q[np.arange(N), largest] = np.sqrt(np.clip(1 - (rest * rest).sum(1), 0, None))
    K = 0
    sh_rest = np.zeros((N, 0, 3))
    if "sh" in ply:
        sh = ply["sh"].data
        K = len(sh.dtype.names) // 3
        u = np.stack([np.asarray(sh[f"f_rest_{i}"], np.float64) for i in range(3 * K)], 1)
        n = np.where(u == 0, 0, np.where(u == 255, 1, (u + 0.5) / 256))
        sh_rest = ((n - 0.5) * 8).reshape(N, 3, K).transpose(0, 2, 1)
    f = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))  # noqa: E731
    return Gaussians(
        means=f(means), log_scales=f(log_scales), quats=f(q), opacity_logits=f(np.log(alpha / (1 - alpha))),
        sh_dc=f((rgb - 0.5) / SH_C0), sh_rest=f(sh_rest),
    )  # fmt: skip

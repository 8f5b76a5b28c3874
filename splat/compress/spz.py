"""Niantic SPZ (version 3): a gzip stream of a 16-byte header and attribute-major packed fields.

Header (little endian): u32 magic 0x5053474e ("NGSP"), u32 version (3), u32 number of points,
u8 SH degree, u8 fractional bits, u8 flags (0x1 antialiased), u8 reserved. Then, for all points,
each field in turn: positions (24-bit signed fixed point, x y z), alphas (u8 sigmoid * 255),
colours (u8 dc * 0.15 * 255 + 127.5), scales (u8 (log-scale + 10) * 16), rotations (u32: 2 bits
index of the largest |component| of the xyzw quaternion, then for the other three in order a sign
bit and 9 bits of |q_i| / sqrt(1/2)), SH rest (u8 round(128 x) + 128, coefficient-major with the
colour channel inner; band 1 rounded to 5 bits and higher bands to 4, as Niantic's packer does).

SPZ stores RUB axes (x right, y up, z back); a 3DGS .ply is read as RDF (x right, y down, z
forward). Like Niantic's ply-to-spz and PlayCanvas splat-transform we convert RDF <-> RUB: a
rotation by 180 degrees about x, which negates y and z of positions, the y and z components of
quaternions, and the SH coefficients whose basis function is odd in (y, z) (`SH_FLIP`).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from splat.errors import InputError
from splat.io.atomic import atomic_write_bytes
from splat.types import Gaussians

MAGIC = 0x5053474E
VERSION = 3
COLOR_SCALE = 0.15
# Sign of each SH rest basis function (3DGS order, bands 1-3) under (x, y, z) -> (x, -y, -z).
SH_FLIP = np.array([-1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1], np.float32)
POS_FLIP = np.array([1, -1, -1], np.float32)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _fractional_bits(means: np.ndarray) -> int:
    """12 (0.24 mm) unless the scene is too large for 24-bit fixed point at that resolution."""
    biggest = float(np.abs(means).max()) if means.size else 0.0
    return int(np.clip(22 - math.ceil(math.log2(biggest + 1)), 0, 12))


def _pack_rotations(q: np.ndarray) -> np.ndarray:
    """(N, 4) unit xyzw quaternions -> (N,) uint32 "smallest three"."""
    largest = np.abs(q).argmax(1)
    q = np.where(q[np.arange(len(q)), largest][:, None] < 0, -q, q)  # largest component positive
    others = np.array([[j for j in range(4) if j != i] for i in range(4)])[largest]  # (N, 3)
    rest = np.take_along_axis(q, others, 1)
    mag = np.minimum(np.floor(511 * np.abs(rest) / math.sqrt(0.5) + 0.5), 511).astype(np.uint32)
    comp = largest.astype(np.uint32)
    for k in range(3):
        comp = (comp << np.uint32(10)) | (rest[:, k] < 0).astype(np.uint32) << np.uint32(9) | mag[:, k]
    return comp


def _unpack_rotations(comp: np.ndarray) -> np.ndarray:
    """(N,) uint32 -> (N, 4) xyzw quaternions."""
    largest = (comp >> np.uint32(30)).astype(np.int64)
    others = np.array([[j for j in range(4) if j != i] for i in range(4)])[largest]
    q = np.zeros((len(comp), 4))
    for k in (2, 1, 0):  # the last component sits in the lowest bits
        shift = np.uint32(10 * (2 - k))
        mag = ((comp >> shift) & np.uint32(511)).astype(np.float64) * math.sqrt(0.5) / 511
        sign = np.where((comp >> (shift + np.uint32(9))) & np.uint32(1), -1.0, 1.0)
        np.put_along_axis(q, others[:, k : k + 1], (sign * mag)[:, None], 1)
    q[np.arange(len(q)), largest] = np.sqrt(np.clip(1 - (q * q).sum(1), 0, None))
    return q


def encode_spz(gaussians: Gaussians, antialiased: bool = False) -> bytes:
    """SPZ v3 bytes (gzip) of `gaussians` (SH degree 0-3)."""
    g = gaussians.detach().to("cpu", torch.float64)
    N, K = len(g), g.sh_rest.shape[1]
    means = g.means.numpy() * POS_FLIP
    bits = _fractional_bits(means)
    fixed = np.round(means * (1 << bits)).astype(np.int64) & 0xFFFFFF
    positions = np.stack([(fixed >> s) & 0xFF for s in (0, 8, 16)], -1).astype(np.uint8)  # (N, 3, 3)
    alphas = _u8(torch.sigmoid(g.opacity_logits).numpy() * 255)
    colors = _u8(g.sh_dc.numpy() * (COLOR_SCALE * 255) + 127.5)
    scales = _u8((g.log_scales.numpy() + 10) * 16)
    wxyz = torch.nn.functional.normalize(g.quats, dim=-1).numpy()
    xyzw = np.concatenate([wxyz[:, 1:], wxyz[:, :1]], 1) * np.array([1, -1, -1, 1])
    rotations = _pack_rotations(xyzw).astype("<u4")
    sh = np.round(g.sh_rest.numpy() * SH_FLIP[:K, None] * 128) + 128  # (N, K, 3)
    bucket = np.where(np.arange(K) < 3, 1 << 3, 1 << 4)[None, :, None]  # 5 bits band 1, 4 bits above
    sh = _u8(np.minimum((sh + bucket // 2) // bucket * bucket, 255))
    header = struct.pack("<IIIBBBB", MAGIC, VERSION, N, g.sh_degree, bits, int(antialiased), 0)
    body = b"".join(a.tobytes() for a in (positions, alphas, colors, scales, rotations, sh))
    return gzip.compress(header + body, compresslevel=9, mtime=0)


def decode_spz(data: bytes, source: str = "<bytes>") -> Gaussians:
    """Gaussians (float32) from SPZ bytes of version 2 or 3 (gzip'd or not)."""
    try:
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except (OSError, EOFError, zlib.error) as e:
        raise InputError(f"{source}: not a readable SPZ file (gzip: {e}); re-export it") from None
    if len(raw) < 16 or struct.unpack_from("<I", raw)[0] != MAGIC:
        raise InputError(f"{source}: not an SPZ file (no NGSP magic)")
    _, version, N, degree, bits, flags, _ = struct.unpack_from("<IIIBBBB", raw)
    if version not in (2, 3) or degree > 3 or flags & 0x2:
        raise InputError(
            f"{source}: SPZ version {version}, SH degree {degree}, flags {flags} unsupported (v2/v3, SH <= 3)"
        )
    K = (degree + 1) ** 2 - 1
    rot_size = 4 if version == 3 else 3
    sizes = [9 * N, N, 3 * N, 3 * N, rot_size * N, 3 * K * N]
    if len(raw) < 16 + sum(sizes):
        raise InputError(f"{source}: SPZ file is truncated ({len(raw)} bytes, need {16 + sum(sizes)})")
    parts, at = [], 16
    for size in sizes:
        parts.append(np.frombuffer(raw, np.uint8, size, at))
        at += size
    pos, alphas, colors, scales, rot, sh = parts
    b = pos.reshape(N, 3, 3).astype(np.int64)
    fixed = b[..., 0] | b[..., 1] << 8 | b[..., 2] << 16
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    means = fixed / float(1 << bits) * POS_FLIP
    if version == 3:
        xyzw = _unpack_rotations(rot.view("<u4").astype(np.uint32))
    else:
        xyz = rot.reshape(N, 3) / 127.5 - 1
        xyzw = np.concatenate([xyz, np.sqrt(np.clip(1 - (xyz * xyz).sum(1, keepdims=True), 0, None))], 1)
    xyzw = xyzw * np.array([1, -1, -1, 1])
    alpha = np.clip(alphas / 255.0, 1e-6, 1 - 1e-6)
    f = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))  # noqa: E731
    return Gaussians(
        means=f(means), log_scales=f(scales.reshape(N, 3) / 16.0 - 10), quats=f(np.roll(xyzw, 1, 1)),
        opacity_logits=f(np.log(alpha / (1 - alpha))),
        sh_dc=f((colors.reshape(N, 3) / 255.0 - 0.5) / COLOR_SCALE),
        sh_rest=f((sh.reshape(N, K, 3) - 128.0) / 128 * SH_FLIP[:K, None]),
    )  # fmt: skip


def write_spz(path: str | os.PathLike, gaussians: Gaussians) -> Path:
    """Write an SPZ v3 file atomically; returns the path."""
    path = Path(path)
    atomic_write_bytes(path, encode_spz(gaussians))
    return path


def read_spz(path: str | os.PathLike) -> Gaussians:
    """Read an SPZ file (v2 or v3)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist; pass a .spz file")
    return decode_spz(path.read_bytes(), str(path))

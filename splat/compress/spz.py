"""Niantic SPZ: version 4 written (version 3 on request), versions 2-4 read.

Version 4 (nianticlabs/spz README, "File format"): a plaintext 32-byte header (little endian:
u32 magic 0x5053474e "NGSP", u32 version 4, u32 number of points, u8 SH degree, u8 fractional bits,
u8 flags (0x1 antialiased, 0x2 extension records follow the header), u8 number of streams, u32 byte
offset of the table of contents, 12 reserved zero bytes), optional extension records up to that
offset (skipped here), the table of contents (per stream: u64 compressed size, u64 uncompressed
size), then one zstd frame per non-empty field, in field order (so 5 streams at SH degree 0).
Versions 2-3: one gzip stream of a 16-byte header (magic, version, points, SH degree, fractional
bits, flags, reserved) followed by the same fields back to back.

The fields, each for all points in turn: positions (24-bit signed fixed point, x y z), alphas
(u8 sigmoid * 255), colours (u8 dc * 0.15 * 255 + 127.5), scales (u8 (log-scale + 10) * 16),
rotations (u32: 2 bits index of the largest |component| of the xyzw quaternion, then for the
other three in order a sign bit and 9 bits of |q_i| / sqrt(1/2)), SH rest (u8 round(128 x) + 128,
coefficient-major with the colour channel inner; band 1 rounded to 5 bits and higher bands to 4,
as Niantic's packer does).

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
import zstandard

from splat.errors import InputError
from splat.io.atomic import atomic_write_bytes
from splat.types import Gaussians

MAGIC = 0x5053474E
VERSION = 4
ZSTD_LEVEL = 12  # what Niantic's packer uses
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


def encode_spz(gaussians: Gaussians, antialiased: bool = False, version: int = VERSION) -> bytes:
    """SPZ bytes of `gaussians` (SH degree 0-3): version 4 (zstd streams) or 3 (gzip)."""
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
    fields = [a.tobytes() for a in (positions, alphas, colors, scales, rotations, sh)]
    if version == 3:
        header = struct.pack("<IIIBBBB", MAGIC, 3, N, g.sh_degree, bits, int(antialiased), 0)
        return gzip.compress(header + b"".join(fields), compresslevel=9, mtime=0)
    if version != 4:
        raise ValueError(f"SPZ version {version} cannot be written; use 3 or 4")
    streams = [f for f in fields if f]
    packer = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    frames = [packer.compress(f) for f in streams]
    header = struct.pack("<IIIBBBBI12x", MAGIC, 4, N, g.sh_degree, bits, int(antialiased), len(frames), 32)
    toc = b"".join(struct.pack("<QQ", len(c), len(u)) for c, u in zip(frames, streams))
    return header + toc + b"".join(frames)


def _v4_fields(data: bytes, source: str) -> tuple[tuple, bytes]:
    """(header fields, the decompressed streams back to back) of an SPZ v4 file."""
    if len(data) < 32:
        raise InputError(f"{source}: SPZ file is truncated ({len(data)} bytes, header needs 32)")
    _, version, N, degree, bits, flags, n_streams, toc_at = struct.unpack_from("<IIIBBBBI", data)
    if toc_at < 32 or len(data) < toc_at + 16 * n_streams:
        raise InputError(f"{source}: SPZ v4 table of contents is missing or truncated")
    toc = struct.unpack_from(f"<{2 * n_streams}Q", data, toc_at)
    at, body = toc_at + 16 * n_streams, []
    unpacker = zstandard.ZstdDecompressor()
    for packed, size in zip(toc[::2], toc[1::2]):
        try:
            stream = unpacker.decompress(data[at : at + packed], max_output_size=size)
        except zstandard.ZstdError as e:
            raise InputError(f"{source}: SPZ v4 stream is damaged ({e}); re-export it") from None
        if len(stream) != size:
            raise InputError(f"{source}: SPZ v4 stream is truncated ({len(stream)} of {size} bytes)")
        body.append(stream)
        at += packed
    return (version, N, degree, bits, flags & ~0x2), b"".join(body)


def decode_spz(data: bytes, source: str = "<bytes>") -> Gaussians:
    """Gaussians (float32) from SPZ bytes of version 2, 3 (gzip'd or not) or 4 (zstd streams)."""
    if data[:4] == struct.pack("<I", MAGIC) and len(data) >= 8 and struct.unpack_from("<I", data, 4)[0] >= 4:
        (version, N, degree, bits, flags), raw = _v4_fields(data, source)
        at = 0
    else:
        try:
            raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        except (OSError, EOFError, zlib.error) as e:
            raise InputError(f"{source}: not a readable SPZ file (gzip: {e}); re-export it") from None
        if len(raw) < 16 or struct.unpack_from("<I", raw)[0] != MAGIC:
            raise InputError(f"{source}: not an SPZ file (no NGSP magic)")
        _, version, N, degree, bits, flags, _ = struct.unpack_from("<IIIBBBB", raw)
        at = 16
    if version not in (2, 3, 4) or degree > 3 or flags & 0x2:
        raise InputError(
            f"{source}: SPZ version {version}, SH degree {degree}, flags {flags} unsupported (v2-v4, SH <= 3)"
        )
    K = (degree + 1) ** 2 - 1
    rot_size = 3 if version == 2 else 4
    sizes = [9 * N, N, 3 * N, 3 * N, rot_size * N, 3 * K * N]
    if len(raw) < at + sum(sizes):
        raise InputError(f"{source}: SPZ file is truncated ({len(raw)} bytes, need {at + sum(sizes)})")
    parts = []
    for size in sizes:
        parts.append(np.frombuffer(raw, np.uint8, size, at))
        at += size
    pos, alphas, colors, scales, rot, sh = parts
    b = pos.reshape(N, 3, 3).astype(np.int64)
    fixed = b[..., 0] | b[..., 1] << 8 | b[..., 2] << 16
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    means = fixed / float(1 << bits) * POS_FLIP
    if version >= 3:
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


def write_spz(
    path: str | os.PathLike, gaussians: Gaussians, version: int = VERSION, antialiased: bool = False
) -> Path:
    """Write an SPZ file (version 4, or 3 for older readers) atomically; returns the path. antialiased: the
    header's flag that the scene was trained with the anti-aliased rasterizer."""
    path = Path(path)
    atomic_write_bytes(path, encode_spz(gaussians, antialiased=antialiased, version=version))
    return path


def read_spz(path: str | os.PathLike) -> Gaussians:
    """Read an SPZ file (v2, v3 or v4)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist; pass a .spz file")
    return decode_spz(path.read_bytes(), str(path))

"""PlayCanvas SOG (version 2): lossless-WebP textures plus a meta.json, bundled in one zip (.sog).

The layout, as PlayCanvas documents it and splat-transform reads it: every Gaussian owns one texel
(row-major, all textures `width` x `height`, width = ceil(sqrt(N) / 4) * 4 and height =
ceil(N / width / 4) * 4); textures are RGBA8 and lossless WebP.
- means_l / means_u: per axis the low / high byte of a 16-bit value spread over [mins, maxs] of
  sign(x) log(|x| + 1) (the log keeps near detail fine and far background coarse).
- quats: the three smaller components of the unit wxyz quaternion (largest made positive) times
  sqrt(2), mapped from [-1, 1] to bytes, and in alpha 252 + the index of the largest component.
- scales: per axis an index into `scales.codebook`, 256 log-scales shared by the three axes.
- sh0: per channel an index into `sh0.codebook` (256 DC coefficients), alpha = sigmoid(opacity).
- shN (SH degree >= 1): `labels` holds a 16-bit palette index per Gaussian (red low byte, green
  high byte); `centroids` is 64 palette entries per row, each entry `coeffs` texels wide (one per
  SH coefficient, RGB = the colour channels) whose bytes index `shN.codebook` (256 values).

Axes are the 3DGS .ply's (splat-transform converts to its PLY space before writing). Our codebooks
are Lloyd-Max scalar quantizers, the SH palette k-means on the 3K coefficient vectors;
Gaussians are stored in Morton order so neighbouring texels hold neighbouring splats, which is what
makes the WebP images small. The reader returns them in that stored order.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from splat.compress.kmeans import assign_1d, assign_vq, kmeans_vq
from splat.compress.morton import morton_order
from splat.errors import InputError
from splat.io.atomic import atomic_path
from splat.types import Gaussians

SH_PALETTE = 4096  # most SH palette entries (SOG allows 65536); k-means cost grows with it
FILES = {
    "means": ["means_l.webp", "means_u.webp"],
    "scales": ["scales.webp"],
    "quats": ["quats.webp"],
    "sh0": ["sh0.webp"],
    "shN": ["shN_centroids.webp", "shN_labels.webp"],
}


def _webp(rgba: np.ndarray) -> bytes:
    """Lossless WebP of an (H, W, 4) uint8 image; `exact` keeps RGB under alpha 0 (opacity 0)."""
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, "WEBP", lossless=True, quality=100, method=4, exact=True)
    return out.getvalue()


def _texture(columns: list[np.ndarray], width: int, height: int, alpha: int = 255) -> np.ndarray:
    """(H, W, 4) uint8 image with texel i = (columns[0][i], ...); missing channels 0, alpha `alpha`."""
    img = np.zeros((width * height, 4), np.uint8)
    img[:, 3] = alpha
    for c, col in enumerate(columns):
        img[: len(col), c] = col
    return img.reshape(height, width, 4)


def _codebook(values: np.ndarray, iters: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """256-level scalar codebook of `values` (any shape) and their uint8 codes (same shape).

    Lloyd iterations from an even grid over the range: the quantile start that kmeans_1d uses
    crowds the levels into the bulk and leaves the tails coarse, which here doubled the RMS error.
    """
    x = np.sort(values.reshape(-1).astype(np.float64))
    levels = np.linspace(x[0], x[-1], 256) if len(x) else np.zeros(256)
    for _ in range(iters):
        codes = np.searchsorted(0.5 * (levels[1:] + levels[:-1]), x)
        mass = np.bincount(codes, minlength=256)
        levels = np.where(mass > 0, np.bincount(codes, x, 256) / np.maximum(mass, 1), levels)
        levels = np.maximum.accumulate(levels)  # keep them sorted for searchsorted
    return levels.astype(np.float32), assign_1d(values, levels).astype(np.uint8)


def _log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def encode_sog(gaussians: Gaussians, sh_palette: int = SH_PALETTE) -> bytes:
    """.sog (zip) bytes of `gaussians` (SH degree 0-3), stored in Morton order."""
    g = gaussians.detach().to("cpu", torch.float64)
    g = g[torch.from_numpy(morton_order(g.means.numpy()))]
    N, K = len(g), g.sh_rest.shape[1]
    width = max(4, math.ceil(math.sqrt(N) / 4) * 4)
    height = max(4, math.ceil(N / width / 4) * 4)
    images = {}
    logged = _log(g.means.numpy())
    lo, hi = logged.min(0) if N else np.zeros(3), logged.max(0) if N else np.zeros(3)
    q16 = np.round(65535 * (logged - lo) / np.where(hi > lo, hi - lo, 1)).astype(np.uint16)
    images["means_l.webp"] = _texture(list((q16 & 0xFF).T), width, height)
    images["means_u.webp"] = _texture(list((q16 >> 8).T), width, height)

    q = torch.nn.functional.normalize(g.quats, dim=-1).numpy()
    largest = np.abs(q).argmax(1)
    q = np.where(np.take_along_axis(q, largest[:, None], 1) < 0, -q, q)
    others = np.array([[j for j in range(4) if j != i] for i in range(4)])[largest]
    small = np.take_along_axis(q, others, 1) * math.sqrt(2)
    quat_bytes = np.clip(np.round(255 * (small * 0.5 + 0.5)), 0, 255).astype(np.uint8)
    images["quats.webp"] = _texture([*quat_bytes.T, (252 + largest).astype(np.uint8)], width, height)

    scale_book, scale_codes = _codebook(g.log_scales.numpy())
    images["scales.webp"] = _texture(list(scale_codes.T), width, height)
    dc_book, dc_codes = _codebook(g.sh_dc.numpy())
    alpha = np.clip(np.round(torch.sigmoid(g.opacity_logits).numpy() * 255), 0, 255).astype(np.uint8)
    images["sh0.webp"] = _texture([*dc_codes.T, alpha], width, height)
    meta = {
        "version": 2,
        "asset": {"generator": "splat"},
        "count": N,
        "means": {"mins": lo.tolist(), "maxs": hi.tolist(), "files": FILES["means"]},
        "scales": {"codebook": scale_book.tolist(), "files": FILES["scales"]},
        "quats": {"files": FILES["quats"]},
        "sh0": {"codebook": dc_book.tolist(), "files": FILES["sh0"]},
    }
    if K and N:
        rest = g.sh_rest.numpy().transpose(0, 2, 1).reshape(N, 3 * K)  # channel-major, as in the .ply
        palette = kmeans_vq(rest, min(sh_palette, N, 65536), iters=8)
        labels = assign_vq(rest, palette)
        book, codes = _codebook(palette)  # (P, 3K) bytes
        P = len(palette)
        rows = math.ceil(P / 64)
        cells = np.zeros((rows * 64, K, 4), np.uint8)
        cells[..., 3] = 255
        cells[:P, :, :3] = codes.reshape(P, 3, K).transpose(0, 2, 1)
        images["shN_centroids.webp"] = cells.reshape(rows, 64 * K, 4)
        images["shN_labels.webp"] = _texture([labels & 0xFF, labels >> 8], width, height)
        degree = g.sh_degree
        meta["shN"] = {"count": P, "bands": degree, "codebook": book.tolist(), "files": FILES["shN"]}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:  # WebP is compressed already
        z.writestr("meta.json", json.dumps(meta))
        for name, img in images.items():
            z.writestr(name, _webp(img))
    return out.getvalue()


def _image(files: dict[str, bytes], name: str, count: int, source: str) -> np.ndarray:
    """(texels, 4) uint8 of WebP `name`, at least `count` texels."""
    if name not in files:
        raise InputError(f"{source}: SOG file lacks {name}")
    try:
        img = np.asarray(Image.open(io.BytesIO(files[name])).convert("RGBA"))
    except OSError as e:
        raise InputError(f"{source}: {name} is not a readable WebP image ({e})") from None
    texels = img.reshape(-1, 4)
    if len(texels) < count:
        raise InputError(f"{source}: {name} holds {len(texels)} texels, fewer than the {count} needed")
    return texels


def decode_sog(files: dict[str, bytes], source: str = "<sog>") -> Gaussians:
    """Gaussians (float32) from the members of a SOG v2 bundle (name -> bytes, meta.json among them)."""
    try:
        meta = json.loads(files["meta.json"])
        N = int(meta["count"])
        if meta.get("version") != 2:
            raise InputError(f"{source}: SOG meta version {meta.get('version')} unsupported (version 2)")
        lo, hi = np.array(meta["means"]["mins"], np.float64), np.array(meta["means"]["maxs"], np.float64)
        scale_book = np.array(meta["scales"]["codebook"], np.float64)
        dc_book = np.array(meta["sh0"]["codebook"], np.float64)
        names = {k: meta[k]["files"] for k in ("means", "scales", "quats", "sh0")}
        shn = meta.get("shN")
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{source}: SOG meta.json is missing or incomplete ({e})") from None
    if len(scale_book) != 256 or len(dc_book) != 256:
        raise InputError(f"{source}: SOG codebooks must hold 256 values")
    img = lambda name: _image(files, name, N, source)[:N]  # noqa: E731
    low, high = img(names["means"][0]), img(names["means"][1])
    q16 = low[:, :3].astype(np.float64) + 256.0 * high[:, :3]
    logged = lo + np.where(hi > lo, hi - lo, 1) * q16 / 65535
    means = np.sign(logged) * np.expm1(np.abs(logged))

    quat = img(names["quats"][0])
    largest = quat[:, 3].astype(np.int64) - 252
    if ((largest < 0) | (largest > 3)).any():
        raise InputError(f"{source}: SOG quats.webp has alpha tags outside 252-255")
    others = np.array([[j for j in range(4) if j != i] for i in range(4)])[largest]
    q = np.zeros((N, 4))
    np.put_along_axis(q, others, (quat[:, :3] / 255.0 * 2 - 1) / math.sqrt(2), 1)
    q[np.arange(N), largest] = np.sqrt(np.clip(1 - (q * q).sum(1), 0, None))

    log_scales = scale_book[img(names["scales"][0])[:, :3]]
    sh0 = img(names["sh0"][0])
    alpha = np.clip(sh0[:, 3] / 255.0, 1e-6, 1 - 1e-6)
    K, rest = 0, np.zeros((N, 0, 3))
    if shn:
        try:
            K, P = [0, 3, 8, 15][int(shn["bands"])], int(shn["count"])
            book = np.array(shn["codebook"], np.float64)
            cent_name, label_name = shn["files"]
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise InputError(f"{source}: SOG meta.json shN entry is incomplete ({e})") from None
        cells = _image(files, cent_name, 0, source).reshape(-1, K, 4) if K else None
        labels = img(label_name)[:, :2].astype(np.int64) @ np.array([1, 256])
        if K and (labels.max(initial=0) >= min(P, len(cells)) or len(book) != 256):
            raise InputError(f"{source}: SOG SH labels point past the palette or the codebook is not 256")
        rest = book[cells[labels, :, :3]] if K else rest  # (N, K, 3)
    f = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))  # noqa: E731
    return Gaussians(
        means=f(means), log_scales=f(log_scales), quats=f(q),
        opacity_logits=f(np.log(alpha / (1 - alpha))), sh_dc=f(dc_book[sh0[:, :3]]), sh_rest=f(rest),
    )  # fmt: skip


def write_sog(path: str | os.PathLike, gaussians: Gaussians) -> Path:
    """Write a bundled .sog atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(encode_sog(gaussians))
    return path


def read_sog(path: str | os.PathLike) -> Gaussians:
    """Read a bundled .sog, or an unbundled SOG's meta.json with its WebP files beside it."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist; pass a .sog file or a SOG meta.json")
    if path.name.lower().endswith("meta.json"):
        files = {p.name: p.read_bytes() for p in path.parent.glob("*.webp")}
        return decode_sog(files | {"meta.json": path.read_bytes()}, str(path))
    try:
        with zipfile.ZipFile(path) as z:
            files = {name: z.read(name) for name in z.namelist()}
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise InputError(f"{path}: not a readable SOG bundle (zip: {e}); re-export it") from None
    return decode_sog(files, str(path))

"""Quantized splats: a compact, exactly decodable container for Gaussians (`.splatq`).

Per attribute group (choices measured with scripts/bench_compress.py on full 12-view fits):
- means: per-axis uniform 18-bit codes in a robust bounding box (0.1% / 99.9% quantiles); points
  outside the box (far background) are kept sparse at float32. Delta-coded along the Morton order.
- log_scales (8 bits, one codebook per axis), quats (normalised, w >= 0; 6 bits per component),
  opacity (8 bits, clustered as sigmoid(logit), stored as logits), SH DC (7 bits per channel) and
  SH rest (one codebook per band; the fewest bits, at most 3, 2 and 2 for bands 1, 2, 3, whose
  RMS error is <= sh_tolerance): non-uniform 1D k-means codebooks (Lloyd-Max levels),
  dense-and-sparse as in SqueezeLLM: the `outliers` fraction of entries with the largest error is
  kept sparse at float32.
- `sh_mode="vq"` instead codes each SH band's 3x(2b+1) coefficients with one vector codebook
  (float16; 2^sh_vq_bits rows): 1.1x smaller files at the same held-out PSNR on the trained
  scenes, but 1.6 dB lower render PSNR on a synthetic scene with strong view dependence.
Every Gaussian weighs the same in the codebooks. `weighting="importance"` (opacity times footprint
area, SqueezeLLM's sensitivity idea) spends the levels on the large Gaussians instead; on trained
scenes that was 12 dB worse (render PSNR vs the original, garden 12 views: 30.8 vs 42.5 dB at the
same settings), because the many small Gaussians carry most of the image.

Gaussians are stored in Morton order of their means (neighbours in space are neighbours in the
byte streams, which zstd then squeezes). `decode()` returns them in that order, unless the file was
written with `keep_order=True`, which stores the permutation (about 2-3 bytes per Gaussian) and
restores the original order. Decoding is exact: `quantize()` builds its reconstruction by running
the decoder on the very arrays it stores, so decode(encode(x)) equals that reconstruction bit for bit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from splat.compress.container import Section, pack, unpack
from splat.compress.kmeans import assign_1d, assign_vq, kmeans_1d, kmeans_vq
from splat.compress.morton import morton_order
from splat.errors import InputError
from splat.io.atomic import atomic_write_bytes
from splat.types import Gaussians

FORMAT = "splat-quantized"


@dataclass(frozen=True)
class QuantizeConfig:
    """Bits per attribute group and the sparse-outlier fractions; the defaults are the measured choice."""

    position_bits: int = 18
    position_tail: float = 0.001  # per axis and side: points beyond these quantiles are stored exactly
    scale_bits: int = 8
    rotation_bits: int = 6
    opacity_bits: int = 8
    dc_bits: int = 7
    sh_mode: str = "scalar"  # "scalar": 1D codebook per band; "vq": vector codebook per band
    sh_bits: tuple[int, ...] = (3, 2, 2)  # scalar mode: most bits per value of SH bands 1, 2, 3
    sh_tolerance: float = 0.006  # scalar mode: fewest bits whose RMS error is below this
    weighting: str = "uniform"  # codebook weights: "uniform" or "importance" (see module docstring)
    sh_vq_bits: int = 0  # vq mode: 2^sh_vq_bits codebook rows per band; 0: about N/64 (8..16 bits)
    outliers: float = 0.005  # fraction of scalar entries (or, in vq mode, SH rows) kept sparse
    keep_order: bool = False
    level: int = 19  # zstd level
    seed: int = 0

    def __post_init__(self) -> None:
        ranges = {"position_bits": (1, 24), "scale_bits": (1, 16), "rotation_bits": (1, 16),
                  "opacity_bits": (1, 16), "dc_bits": (1, 16), "sh_vq_bits": (0, 16)}  # fmt: skip
        for name, (lo, hi) in ranges.items():
            if not lo <= getattr(self, name) <= hi:
                raise ValueError(f"{name} must be in [{lo}, {hi}], got {getattr(self, name)}")
        if self.weighting not in ("uniform", "importance"):
            raise ValueError(f"weighting must be 'uniform' or 'importance', got {self.weighting!r}")
        if not self.sh_bits or not all(1 <= b <= 8 for b in self.sh_bits):
            raise ValueError(f"sh_bits must be 1..8 bits per band, got {self.sh_bits}")


@dataclass
class Quantized:
    """The encoded bytes, the exact decoded Gaussians (file order) and `order`: file row -> input row."""

    data: bytes
    gaussians: Gaussians
    order: np.ndarray


# ------------------------------------------------------------------ group encoders


def _uniform(name: str, x: np.ndarray, bits: int, tail: float) -> tuple[dict, list[Section]]:
    """Per-column uniform codes in a box [lo, hi]; rows outside the box kept at float32."""
    lo = np.quantile(x, tail, axis=0) if tail > 0 else x.min(0)
    hi = np.quantile(x, 1 - tail, axis=0) if tail > 0 else x.max(0)
    lo, hi = lo.astype(np.float32), np.maximum(hi, lo).astype(np.float32)
    levels = 2**bits - 1
    span = np.where(hi > lo, hi - lo, 1).astype(np.float64)
    dtype = np.uint16 if bits <= 16 else np.uint32
    codes = np.clip(np.round((x - lo.astype(np.float64)) / span * levels), 0, levels).astype(dtype)
    rows = np.nonzero(((x < lo) | (x > hi)).any(1))[0].astype(np.uint32)
    sections = [
        Section(f"{name}.box", np.stack([lo, hi])),
        Section(f"{name}.codes", codes, delta=True, shuffle=True),
    ]
    sections += _sparse_rows(name, rows, x)
    return {"kind": "uniform", "bits": bits}, sections


def _scalar(
    name: str, x: np.ndarray, bits: int, w: np.ndarray, frac: float, share: int = 1, domain: str = "identity"
) -> tuple[dict, list[Section]]:
    """1D k-means codebooks, one per `share` adjacent columns; worst weighted entries kept sparse."""
    fwd = _sigmoid if domain == "sigmoid" else (lambda v: v)
    y = fwd(x.astype(np.float64))
    groups = [np.arange(c, min(c + share, x.shape[1])) for c in range(0, x.shape[1], share)]
    codes = np.zeros(x.shape, np.uint8 if bits <= 8 else np.uint16)
    books, err = [], np.zeros(x.shape)
    for cols in groups:
        wcols = np.repeat(w[:, None], len(cols), 1)
        levels = kmeans_1d(y[:, cols], 2**bits, wcols).astype(np.float64)
        c = assign_1d(y[:, cols], levels).reshape(len(x), len(cols))
        codes[:, cols] = c
        err[:, cols] = wcols * (y[:, cols] - levels[c]) ** 2
        books.append(levels)
    stored = [_logit(b) if domain == "sigmoid" else b for b in books]
    sections = [Section(f"{name}.codebook", np.concatenate(stored).astype(np.float32)),
                Section(f"{name}.codes", codes, shuffle=True)]  # fmt: skip
    n_out = int(frac * x.size)
    if n_out:
        flat = np.sort(np.argsort(-err.reshape(-1), kind="stable")[:n_out]).astype(np.uint32)
        sections += [Section(f"{name}.outlier_index", flat, delta=True, shuffle=True),
                     Section(f"{name}.outlier_value", x.reshape(-1)[flat].astype(np.float32))]  # fmt: skip
    meta = {"kind": "scalar", "bits": bits, "columns": [c.tolist() for c in groups],
            "levels": [len(b) for b in books]}  # fmt: skip
    return meta, sections


def _vq(
    name: str, x: np.ndarray, bits: int, w: np.ndarray, frac: float, seed: int
) -> tuple[dict, list[Section]]:
    """Vector codebook (float16) over rows; the rows of largest weighted error kept at float16.

    float16 is SqueezeLLM's "full precision" and ample for SH rest (relative error 5e-4).
    """
    book = kmeans_vq(x, 2**bits, w, seed=seed).astype(np.float16)
    codes = assign_vq(x, book.astype(np.float32))
    err = w * ((x - book[codes].astype(np.float32)) ** 2).sum(1)
    rows = np.sort(np.argsort(-err, kind="stable")[: int(frac * len(x))]).astype(np.uint32)
    dtype = np.uint8 if len(book) <= 256 else np.uint16
    sections = [
        Section(f"{name}.codebook", book, shuffle=True),
        Section(f"{name}.codes", codes.astype(dtype)),
    ]
    return {"kind": "vq", "bits": bits}, sections + _sparse_rows(name, rows, x, np.float16)


def _sh_bits(x: np.ndarray, w: np.ndarray, most: int, tolerance: float) -> int:
    """Fewest bits (1..most) whose k-means levels reach a weighted RMS error <= tolerance."""
    wx = np.repeat(w[:, None], x.shape[1], 1).reshape(-1)
    for bits in range(1, most):
        levels = kmeans_1d(x, 2**bits, wx).astype(np.float64)
        err = (x.reshape(-1) - levels[assign_1d(x.reshape(-1), levels)]) ** 2
        if np.sqrt((wx * err).sum() / wx.sum()) <= tolerance:
            return bits
    return most


def _vq_bits(n: int, bits: int) -> int:
    return bits if bits > 0 else int(np.clip(np.ceil(np.log2(max(n, 1) / 64)), 8, 16))


def _sparse_rows(name: str, rows: np.ndarray, x: np.ndarray, dtype=np.float32) -> list[Section]:
    if not len(rows):
        return []
    return [Section(f"{name}.outlier_rows", rows, delta=True, shuffle=True),
            Section(f"{name}.outlier_values", x[rows].astype(dtype), shuffle=True)]  # fmt: skip


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-v))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


# ------------------------------------------------------------------ group decoder (shared by both sides)


def _decode_group(name: str, meta: dict, arrays: dict, n: int, width: int, source: str) -> np.ndarray:
    """(n, width) float32 values of one group from its stored arrays."""
    get = lambda key: _get(arrays, f"{name}.{key}", source)  # noqa: E731
    kind = meta.get("kind")
    if kind == "uniform":
        box, codes = get("box"), get("codes")
        _check_shape(codes, (n, width), f"{name}.codes", source)
        lo, hi = box[0], box[1]
        out = lo + codes.astype(np.float32) * ((hi - lo) / np.float32(2 ** meta["bits"] - 1))
    elif kind == "scalar":
        book, codes = get("codebook"), get("codes").astype(np.int64)
        _check_shape(codes, (n, width), f"{name}.codes", source)
        out = np.empty((n, width), np.float32)
        start = 0
        for cols, size in zip(meta["columns"], meta["levels"]):
            levels = book[start : start + size]
            start += size
            _check_index(codes[:, cols], size, f"{name}.codes", source)
            out[:, cols] = levels[codes[:, cols]]
        index = arrays.get(f"{name}.outlier_index")
        if index is not None:
            _check_index(index, n * width, f"{name}.outlier_index", source)
            out.reshape(-1)[index.astype(np.int64)] = get("outlier_value")
    elif kind == "vq":
        book, codes = get("codebook"), get("codes").astype(np.int64)
        _check_shape(codes, (n,), f"{name}.codes", source)
        _check_shape(book, (len(book), width), f"{name}.codebook", source)
        _check_index(codes, len(book), f"{name}.codes", source)
        out = book[codes].astype(np.float32)
    else:
        raise InputError(f"{source}: group {name} has unknown kind {kind!r}; the file is corrupt or newer")
    rows = arrays.get(f"{name}.outlier_rows")
    if rows is not None:
        _check_index(rows, n, f"{name}.outlier_rows", source)
        out[rows.astype(np.int64)] = get("outlier_values").astype(np.float32)
    return out.astype(np.float32, copy=False)


def _get(arrays: dict, key: str, source: str) -> np.ndarray:
    if key not in arrays:
        raise InputError(f"{source}: section {key} is missing; the file is corrupt")
    return arrays[key]


def _check_shape(a: np.ndarray, shape: tuple, key: str, source: str) -> None:
    if a.shape != shape:
        raise InputError(
            f"{source}: section {key} has shape {a.shape}, expected {shape}; the file is corrupt"
        )


def _check_index(idx: np.ndarray, size: int, key: str, source: str) -> None:
    if idx.size and int(idx.max()) >= size:
        raise InputError(f"{source}: section {key} indexes past its table; the file is corrupt")


# ------------------------------------------------------------------ whole Gaussians


def sh_bands(sh_degree: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of each SH band (1..degree) in sh_rest's coefficient axis."""
    return [(b * b - 1, (b + 1) * (b + 1) - 1) for b in range(1, sh_degree + 1)]


def importance(g: Gaussians) -> np.ndarray:
    """(N,) float64 weights: opacity x footprint area, clipped to [1e-3, 1e3] x the median."""
    opacity = _sigmoid(g.opacity_logits.double().numpy())
    area = np.exp(np.clip(g.log_scales.double().numpy().sum(1) * (2 / 3), -60, 60))
    w = opacity * area
    med = max(float(np.median(w)), 1e-30) if len(w) else 1.0
    return np.clip(w, 1e-3 * med, 1e3 * med)


def _groups(g: Gaussians) -> dict[str, np.ndarray]:
    """Arrays to code, (N, width) float32 each, quaternions normalised with w >= 0."""
    q = torch.nn.functional.normalize(g.quats.double(), dim=-1)
    q = torch.where(q[:, :1] < 0, -q, q)
    out = {
        "means": g.means, "log_scales": g.log_scales, "quats": q,
        "opacity_logits": g.opacity_logits[:, None], "sh_dc": g.sh_dc,
    }  # fmt: skip
    for b, (lo, hi) in enumerate(sh_bands(g.sh_degree), 1):
        out[f"sh_rest.band{b}"] = g.sh_rest[:, lo:hi].reshape(len(g), -1)
    return {k: np.ascontiguousarray(v.detach().cpu().numpy(), np.float32) for k, v in out.items()}


def _encode_groups(groups: dict, w: np.ndarray, cfg: QuantizeConfig) -> tuple[dict, list[Section]]:
    metas, sections = {}, []
    for name, x in groups.items():
        if name == "means":
            meta, sec = _uniform(name, x, cfg.position_bits, cfg.position_tail)
        elif name == "opacity_logits":
            meta, sec = _scalar(name, x, cfg.opacity_bits, w, cfg.outliers, domain="sigmoid")
        elif name in ("log_scales", "quats", "sh_dc"):  # one codebook per column
            bits = {"log_scales": cfg.scale_bits, "quats": cfg.rotation_bits, "sh_dc": cfg.dc_bits}[name]
            meta, sec = _scalar(name, x, bits, w, cfg.outliers)
        elif cfg.sh_mode == "scalar":  # one codebook per SH band
            band = int(name[len("sh_rest.band") :])
            bits = _sh_bits(x, w, cfg.sh_bits[min(band, len(cfg.sh_bits)) - 1], cfg.sh_tolerance)
            meta, sec = _scalar(name, x, bits, w, cfg.outliers, share=x.shape[1])
        elif cfg.sh_mode == "vq":
            meta, sec = _vq(name, x, _vq_bits(len(x), cfg.sh_vq_bits), w, cfg.outliers, cfg.seed)
        else:
            raise ValueError(f"sh_mode must be 'scalar' or 'vq', got {cfg.sh_mode!r}")
        metas[name] = {**meta, "width": x.shape[1]}
        sections += sec
    return metas, sections


def _assemble(meta: dict, arrays: dict, source: str) -> tuple[Gaussians, np.ndarray | None]:
    """Gaussians (file order) and the stored order (file row -> input row) or None."""
    try:
        n, degree, groups = int(meta["count"]), int(meta["sh_degree"]), meta["groups"]
        cols = {
            name: _decode_group(name, m, arrays, n, int(m["width"]), source) for name, m in groups.items()
        }
        K = (degree + 1) ** 2 - 1
        bands = [cols[f"sh_rest.band{b}"].reshape(n, -1, 3) for b in range(1, degree + 1)]
        sh_rest = np.concatenate(bands, 1) if bands else np.zeros((n, 0, 3), np.float32)
        t = {k: torch.from_numpy(v) for k, v in cols.items()}
        g = Gaussians(
            t["means"], t["log_scales"], t["quats"], t["opacity_logits"][:, 0], t["sh_dc"],
            torch.from_numpy(sh_rest.reshape(n, K, 3)),
        )  # fmt: skip
    except InputError:
        raise
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise InputError(
            f"{source}: inconsistent quantized header ({type(exc).__name__}: {exc}); corrupt file"
        ) from None
    order = arrays.get("order")
    if order is not None:
        _check_shape(order, (n,), "order", source)
        if not np.array_equal(np.sort(order), np.arange(n, dtype=order.dtype)):
            raise InputError(f"{source}: section order is not a permutation; the file is corrupt")
    return g, order


def quantize(gaussians: Gaussians, cfg: QuantizeConfig = QuantizeConfig()) -> Quantized:  # noqa: B008
    """Encode Gaussians; returns the bytes and their exact decoding (see module docstring)."""
    g = gaussians.detach().to("cpu", torch.float32)
    bad = [k for k, t in g.tensors().items() if not bool(torch.isfinite(t).all())]
    if bad:
        raise InputError(f"cannot quantize Gaussians with non-finite values in {', '.join(bad)}")
    means = g.means.double().numpy()
    order = morton_order(means) if len(g) else np.zeros(0, np.int64)
    g = g[torch.from_numpy(order)]
    w = importance(g) if cfg.weighting == "importance" else np.ones(len(g))
    metas, sections = _encode_groups(_groups(g), w, cfg)
    if cfg.keep_order:
        sections.append(Section("order", order.astype(np.uint32), shuffle=True))
    meta = {"format": FORMAT, "count": len(g), "sh_degree": g.sh_degree, "groups": metas,
            "order": "original" if cfg.keep_order else "morton"}  # fmt: skip
    data = pack(meta, sections, level=cfg.level)
    decoded, _ = _assemble(meta, {s.name: s.array for s in sections}, "<encoder>")
    return Quantized(data, decoded, order)


def encode(gaussians: Gaussians, cfg: QuantizeConfig = QuantizeConfig()) -> bytes:  # noqa: B008
    """The quantized container of `gaussians` (bytes)."""
    return quantize(gaussians, cfg).data


def decode(data: bytes, source: str = "<bytes>") -> Gaussians:
    """Gaussians from a quantized container: file (Morton) order, or the original order if stored."""
    meta, arrays = unpack(data, source)
    if meta.get("format") != FORMAT:
        raise InputError(f"{source}: container holds {meta.get('format')!r}, not {FORMAT}")
    g, order = _assemble(meta, arrays, source)
    if order is None:
        return g
    inverse = np.empty_like(order, dtype=np.int64)
    inverse[order.astype(np.int64)] = np.arange(len(order))
    return g[torch.from_numpy(inverse)]


def write_quantized(
    path: str | os.PathLike, gaussians: Gaussians, cfg: QuantizeConfig = QuantizeConfig()
) -> Path:  # noqa: B008
    """Write the quantized container atomically; returns the path."""
    path = Path(path)
    atomic_write_bytes(path, encode(gaussians, cfg))
    return path


def read_quantized(path: str | os.PathLike) -> Gaussians:
    """Read a quantized container written by write_quantized (InputError naming the file if unreadable)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(
            f"{path} does not exist; pass a .splatq file from `splat export --format quantized`"
        ) from None
    return decode(data, str(path))

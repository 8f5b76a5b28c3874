"""A self-describing, checksummed container of named numpy arrays ("sections").

Layout (all integers little endian):

    0   8 bytes   MAGIC = b"SPLATQ\\r\\n" (the CR LF catches text-mode mangling, as in PNG)
    8   u32       container version (1)
    12  u32       H, length of the header
    16  H bytes   header: UTF-8 JSON (see below)
    16+H u32      CRC-32 of the header bytes
    20+H ...      section payloads, back to back, in header order

The header JSON holds `meta` (free-form, written by the caller) and `sections`, a list of
{name, dtype, shape, codec, filter, offset, size, crc32}: `offset` counts from the first payload
byte, `size` is the stored (compressed) size and `crc32` is taken over the stored bytes. `codec` is
"zstd", "zlib" or "raw". `filter` is applied before compressing and undone after decompressing:
"delta" (integer arrays: differences along axis 0, modulo the integer width) and/or "shuffle"
(bytes grouped by their position in each element, as in blosc), which makes slowly varying
numbers compress far better. Every failure to read a container raises `InputError` naming it.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from splat.errors import InputError

MAGIC = b"SPLATQ\r\n"
VERSION = 1
DTYPES = ("uint8", "uint16", "uint32", "int32", "float16", "float32")

try:  # zstd compresses these sections ~10-20% smaller than zlib and much faster
    import zstandard
except ImportError:  # pragma: no cover - zstandard is a declared dependency
    zstandard = None


@dataclass
class Section:
    """One named array and how to store it."""

    name: str
    array: np.ndarray
    delta: bool = False
    shuffle: bool = False


def _apply_filters(a: np.ndarray, delta: bool, shuffle: bool) -> bytes:
    a = np.ascontiguousarray(a)
    if delta and a.size:
        a = np.diff(a, axis=0, prepend=np.zeros_like(a[:1]))  # unsigned wrap-around is exact
    raw = a.tobytes()
    if shuffle and a.itemsize > 1:
        raw = np.frombuffer(raw, np.uint8).reshape(-1, a.itemsize).T.tobytes()
    return raw


def _undo_filters(raw: bytes, dtype: np.dtype, shape: tuple, delta: bool, shuffle: bool) -> np.ndarray:
    if shuffle and dtype.itemsize > 1:
        raw = np.frombuffer(raw, np.uint8).reshape(dtype.itemsize, -1).T.tobytes()
    a = np.frombuffer(raw, dtype).reshape(shape).copy()
    if delta and a.size:
        a = np.cumsum(a, axis=0, dtype=dtype)
    return a


def _compress(raw: bytes, level: int) -> tuple[str, bytes]:
    if zstandard is not None:
        return "zstd", zstandard.ZstdCompressor(level=level).compress(raw)
    return "zlib", zlib.compress(raw, 9)


def _decompress(codec: str, stored: bytes, raw_size: int, where: str) -> bytes:
    if codec == "raw":
        return stored
    if codec == "zlib":
        return zlib.decompress(stored)
    if codec == "zstd":
        if zstandard is None:
            raise InputError(f"{where} is zstd-compressed; install zstandard (pip install zstandard)")
        return zstandard.ZstdDecompressor().decompress(stored, max_output_size=raw_size)
    raise InputError(f"{where}: unknown section codec {codec!r}; the file is corrupt or from a newer splat")


def pack(meta: dict, sections: list[Section], level: int = 19) -> bytes:
    """Serialise `meta` (JSON-able) and the sections into one container (bytes)."""
    entries, payloads, offset = [], [], 0
    for s in sections:
        if s.array.dtype.name not in DTYPES:
            raise ValueError(f"section {s.name}: dtype {s.array.dtype} not in {DTYPES}")
        codec, stored = _compress(_apply_filters(s.array, s.delta, s.shuffle), level)
        filters = [f for f, on in (("delta", s.delta), ("shuffle", s.shuffle)) if on]
        entries.append({
            "name": s.name, "dtype": s.array.dtype.name, "shape": list(s.array.shape), "codec": codec,
            "filter": filters, "offset": offset, "size": len(stored), "crc32": zlib.crc32(stored),
        })  # fmt: skip
        payloads.append(stored)
        offset += len(stored)
    header = json.dumps({"meta": meta, "sections": entries, "payload_size": offset}).encode("utf-8")
    head = MAGIC + struct.pack("<II", VERSION, len(header)) + header + struct.pack("<I", zlib.crc32(header))
    return head + b"".join(payloads)


def _fail(source: str, what: str) -> InputError:
    return InputError(
        f"{source} is not a readable splat quantized file: {what}; re-export it with `splat export`"
    )


def unpack(data: bytes, source: str = "<bytes>") -> tuple[dict, dict[str, np.ndarray]]:
    """Parse a container: (meta, {section name: array}). Raises InputError naming `source`."""
    if len(data) < 16 or data[:8] != MAGIC:
        raise _fail(source, "wrong magic bytes (not written by `splat export --format quantized`)")
    version, hlen = struct.unpack_from("<II", data, 8)
    if version != VERSION:
        raise InputError(
            f"{source}: quantized container version {version}; this splat reads version {VERSION}"
        )
    if len(data) < 20 + hlen:
        raise _fail(source, f"truncated inside the header ({len(data)} bytes)")
    header = data[16 : 16 + hlen]
    if zlib.crc32(header) != struct.unpack_from("<I", data, 16 + hlen)[0]:
        raise _fail(source, "header checksum mismatch (the file is corrupt)")
    try:
        head = json.loads(header)
        meta, entries, total = head["meta"], head["sections"], int(head["payload_size"])
    except (ValueError, KeyError, TypeError):
        raise _fail(source, "malformed header") from None
    start = 20 + hlen
    if len(data) != start + total:
        kind = "truncated" if len(data) < start + total else "has trailing bytes"
        raise _fail(source, f"{kind}: {len(data)} bytes, the header says {start + total}")
    return meta, {e["name"]: _read_section(data, start, e, source) for e in entries}


def _read_section(data: bytes, start: int, e: dict, source: str) -> np.ndarray:
    name = e.get("name", "?")
    try:
        dtype, shape = np.dtype(e["dtype"]), tuple(int(n) for n in e["shape"])
        if e["dtype"] not in DTYPES or any(n < 0 for n in shape):
            raise ValueError
        lo, size = start + int(e["offset"]), int(e["size"])
        stored = data[lo : lo + size]
        if len(stored) != size:
            raise _fail(source, f"section {name} runs past the end of the file")
        if zlib.crc32(stored) != e["crc32"]:
            raise _fail(source, f"section {name} checksum mismatch (the file is corrupt)")
        raw_size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        raw = _decompress(e["codec"], stored, raw_size, f"{source} section {name}")
        if len(raw) != raw_size:
            raise _fail(source, f"section {name} has {len(raw)} bytes, expected {raw_size}")
        return _undo_filters(raw, dtype, shape, "delta" in e["filter"], "shuffle" in e["filter"])
    except InputError:
        raise
    except (KeyError, ValueError, TypeError, zlib.error) as exc:
        raise _fail(source, f"section {name} is malformed ({type(exc).__name__})") from None
    except Exception as exc:  # zstd raises its own error type
        if zstandard is not None and isinstance(exc, zstandard.ZstdError):
            raise _fail(source, f"section {name} does not decompress") from None
        raise

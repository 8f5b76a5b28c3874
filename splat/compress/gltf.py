"""glTF binary (.glb) with the Khronos `KHR_gaussian_splatting` extension (release candidate).

What the extension asks (KhronosGroup/glTF, extensions/2.0/Khronos/KHR_gaussian_splatting): one
mesh primitive in POINTS mode (0) whose `extensions.KHR_gaussian_splatting` object names the
required `kernel` ("ellipse") and `colorSpace` ("srgb_rec709_display": what 3DGS trains in), and the
attributes POSITION (VEC3), `KHR_gaussian_splatting:ROTATION` (VEC4 unit quaternion in glTF's xyzw
order), `:SCALE` (VEC3, linear, not log), `:OPACITY` (SCALAR in [0, 1], sigmoid already applied),
`:SH_DEGREE_0_COEF_0` (VEC3, the raw DC coefficients) and, per SH degree l >= 1 in full, 2l + 1
VEC3 attributes `:SH_DEGREE_l_COEF_n` ordered from m = -l to m = l (the 3DGS order; the basis
carries the Condon-Shortley phase, as 3DGS's does). We write float32 throughout plus COLOR_0
(RGBA8, normalized) so viewers without the extension still show a coloured point cloud. The reader
also takes the normalized integer encodings the extension allows.

Axes: glTF is LUF (x left, y up, z forward), a 3DGS .ply RDF. Like splat-transform we convert with
a rotation by 180 degrees about z: x and y of positions and quaternions negate, and so do the SH
coefficients whose basis function is odd in (x, y) (`SH_FLIP_Z`). Node transforms are not applied
on reading (our writer and splat-transform's put the splats on an untransformed node).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import torch

from splat.errors import InputError
from splat.io.atomic import atomic_write_bytes
from splat.render.sh import SH_C0
from splat.types import Gaussians

EXTENSION = "KHR_gaussian_splatting"
GLB_MAGIC, JSON_CHUNK, BIN_CHUNK = 0x46546C67, 0x4E4F534A, 0x004E4942
FLOAT, ARRAY_BUFFER = 5126, 34962
# Sign of each SH rest basis function (3DGS order, bands 1-3) under (x, y, z) -> (-x, -y, z).
SH_FLIP_Z = np.array([-1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1], np.float32)
POS_FLIP = np.array([-1, -1, 1], np.float32)
COMPONENTS = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}
# componentType -> (numpy dtype, divisor when normalized)
COMPONENT_TYPES = {
    5120: ("<i1", 127.0),
    5121: ("<u1", 255.0),
    5122: ("<i2", 32767.0),
    5123: ("<u2", 65535.0),
    5125: ("<u4", None),
    5126: ("<f4", None),
}


def _sh_names(degree: int) -> list[str]:
    return [f"{EXTENSION}:SH_DEGREE_{l}_COEF_{n}" for l in range(1, degree + 1) for n in range(2 * l + 1)]


def encode_glb(gaussians: Gaussians) -> bytes:
    """GLB bytes of `gaussians` (SH degree 0-3), float32 attributes, in glTF (LUF) axes."""
    g = gaussians.detach().to("cpu", torch.float64)
    N, K = len(g), g.sh_rest.shape[1]
    means = g.means.numpy() * POS_FLIP
    wxyz = torch.nn.functional.normalize(g.quats, dim=-1).numpy() * np.array([1, -1, -1, 1])
    opacity = torch.sigmoid(g.opacity_logits).numpy()
    rgba = np.concatenate([g.sh_dc.numpy() * SH_C0 + 0.5, opacity[:, None]], 1)
    attributes = {
        "POSITION": means,
        "COLOR_0": np.clip(np.round(rgba * 255), 0, 255).astype(np.uint8),
        f"{EXTENSION}:ROTATION": np.roll(wxyz, -1, 1),
        f"{EXTENSION}:SCALE": np.exp(g.log_scales.numpy()),
        f"{EXTENSION}:OPACITY": opacity,
        f"{EXTENSION}:SH_DEGREE_0_COEF_0": g.sh_dc.numpy(),
    }
    rest = g.sh_rest.numpy() * SH_FLIP_Z[:K, None]
    attributes |= {name: rest[:, k] for k, name in enumerate(_sh_names(g.sh_degree))}
    views, accessors, blobs, at = [], [], [], 0
    for i, (name, values) in enumerate(attributes.items()):
        values = values if values.dtype == np.uint8 else values.astype("<f4")
        blob = np.ascontiguousarray(values).tobytes()
        views.append({"buffer": 0, "byteOffset": at, "byteLength": len(blob), "target": ARRAY_BUFFER})
        kind = "SCALAR" if values.ndim == 1 else f"VEC{values.shape[1]}"
        accessor = {"bufferView": i, "componentType": FLOAT, "count": N, "type": kind}
        if values.dtype == np.uint8:
            accessor |= {"componentType": 5121, "normalized": True}
        if name == "POSITION" and N:  # glTF requires the bounds of POSITION
            accessor |= {"min": values.min(0).tolist(), "max": values.max(0).tolist()}
        accessors.append(accessor)
        blobs.append(blob + b"\0" * (-len(blob) % 4))
        at += len(blobs[-1])
    primitive = {
        "mode": 0,
        "attributes": {name: i for i, name in enumerate(attributes)},
        "extensions": {EXTENSION: {"kernel": "ellipse", "colorSpace": "srgb_rec709_display"}},
    }
    doc = {
        "asset": {"version": "2.0", "generator": "splat"},
        "extensionsUsed": [EXTENSION],
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [primitive]}],
        "buffers": [{"byteLength": at}],
        "bufferViews": views,
        "accessors": accessors,
    }
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    body = b"".join(blobs)
    total = 12 + 8 + len(text) + 8 + len(body)
    return b"".join(
        [
            struct.pack("<III", GLB_MAGIC, 2, total),
            struct.pack("<II", len(text), JSON_CHUNK),
            text,
            struct.pack("<II", len(body), BIN_CHUNK),
            body,
        ]
    )


def _chunks(data: bytes, source: str) -> tuple[dict, bytes]:
    if len(data) < 20 or struct.unpack_from("<I", data)[0] != GLB_MAGIC:
        raise InputError(f"{source}: not a binary glTF (.glb) file (no glTF magic)")
    _, version, total = struct.unpack_from("<III", data)
    if version != 2 or total > len(data):
        raise InputError(f"{source}: glTF version {version}, {total} bytes declared, {len(data)} present")
    doc, binary, at = None, b"", 12
    while at + 8 <= total:
        size, kind = struct.unpack_from("<II", data, at)
        chunk = data[at + 8 : at + 8 + size]
        if len(chunk) < size:
            raise InputError(f"{source}: glTF chunk is truncated")
        if kind == JSON_CHUNK:
            try:
                doc = json.loads(chunk)
            except ValueError as e:
                raise InputError(f"{source}: glTF JSON chunk is not valid JSON ({e})") from None
        elif kind == BIN_CHUNK and not binary:
            binary = chunk
        at += 8 + size + (-size % 4)
    if not isinstance(doc, dict):
        raise InputError(f"{source}: no glTF JSON chunk")
    return doc, binary


def _accessor(doc: dict, binary: bytes, index: int, source: str) -> np.ndarray:
    """(count, components) float64 values of accessor `index` (normalized integers scaled)."""
    try:
        acc = doc["accessors"][index]
        dtype, divisor = COMPONENT_TYPES[acc["componentType"]]
        width, count = COMPONENTS[acc["type"]], int(acc["count"])
        view = doc["bufferViews"][acc["bufferView"]]
        if view.get("buffer", 0) != 0:
            raise KeyError("an external buffer")
    except (KeyError, IndexError, TypeError) as e:
        raise InputError(f"{source}: glTF accessor {index} is not readable here ({e})") from None
    item = np.dtype(dtype).itemsize
    stride = view.get("byteStride") or item * width
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    if count and start + stride * (count - 1) + item * width > len(binary):
        raise InputError(f"{source}: glTF accessor {index} runs past the end of the binary chunk")
    rows = np.frombuffer(binary, np.uint8, stride * (count - 1) + item * width if count else 0, start)
    rows = np.lib.stride_tricks.as_strided(rows, (count, item * width), (stride, 1)) if count else rows
    values = np.ascontiguousarray(rows).view(dtype).reshape(count, width).astype(np.float64)
    if acc.get("normalized") and divisor:
        values = np.maximum(values / divisor, -1.0)
    return values


def decode_glb(data: bytes, source: str = "<bytes>") -> Gaussians:
    """Gaussians (float32) from the first KHR_gaussian_splatting primitive of a .glb."""
    doc, binary = _chunks(data, source)
    prims = [p for m in doc.get("meshes", []) for p in m.get("primitives", [])]
    prims = [p for p in prims if EXTENSION in p.get("extensions", {})]
    if not prims:
        raise InputError(f"{source}: no mesh primitive with the {EXTENSION} extension in this glTF")
    attrs = prims[0].get("attributes", {})
    required = ["POSITION"] + [
        f"{EXTENSION}:{a}" for a in ("ROTATION", "SCALE", "OPACITY", "SH_DEGREE_0_COEF_0")
    ]
    missing = [a for a in required if a not in attrs]
    if missing:
        raise InputError(f"{source}: {EXTENSION} primitive lacks {', '.join(missing)}")
    read = lambda name: _accessor(doc, binary, attrs[name], source)  # noqa: E731
    means, dc = read("POSITION"), read(required[4])
    xyzw, scales, opacity = read(required[1]), read(required[2]), read(required[3])[:, 0]
    degree = 0
    while degree < 3 and all(n in attrs for n in _sh_names(degree + 1)):
        degree += 1
    K = (degree + 1) ** 2 - 1
    rest = np.stack([read(n) for n in _sh_names(degree)], 1) if K else np.zeros((len(means), 0, 3))
    if not all(len(a) == len(means) for a in (dc, xyzw, scales, opacity, rest)):
        raise InputError(f"{source}: {EXTENSION} attributes differ in length")
    alpha = np.clip(opacity, 1e-6, 1 - 1e-6)
    f = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))  # noqa: E731
    return Gaussians(
        means=f(means * POS_FLIP), log_scales=f(np.log(np.maximum(scales, 1e-30))),
        quats=f(np.roll(xyzw, 1, 1) * np.array([1, -1, -1, 1])),
        opacity_logits=f(np.log(alpha / (1 - alpha))), sh_dc=f(dc),
        sh_rest=f(rest * SH_FLIP_Z[:K, None]),
    )  # fmt: skip


def write_glb(path: str | os.PathLike, gaussians: Gaussians) -> Path:
    """Write a .glb with the KHR_gaussian_splatting extension atomically; returns the path."""
    path = Path(path)
    atomic_write_bytes(path, encode_glb(gaussians))
    return path


def read_glb(path: str | os.PathLike) -> Gaussians:
    """Read the Gaussians of a .glb written with the KHR_gaussian_splatting extension."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist; pass a .glb file")
    return decode_glb(path.read_bytes(), str(path))

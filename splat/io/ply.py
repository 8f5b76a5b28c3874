"""The standard 3DGS .ply, and plain coloured point clouds.

A 3DGS file is binary little endian with one `vertex` element whose float32 properties are, in
this order: x, y, z, nx, ny, nz, f_dc_0..2, f_rest_0..(3K-1), opacity, scale_0..2, rot_0..3.
f_rest is channel-major: f_rest_{c*K + k} = sh_rest[:, k, c] (all red coefficients first).
Scales are logs, opacity is a logit, rot is a wxyz quaternion (stored as given, not normalised).
This is what SuperSplat, gsplat, nerfstudio and the Inria viewers read.

A scene trained with the anti-aliased rasterizer (splat.train.TrainConfig.antialias) must be rendered the
same way: its header carries the comment line `comment splat antialiased` (`ply_render_settings` reads it;
other tools ignore comments).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import plyfile
import torch

from splat.errors import InputError
from splat.io.atomic import atomic_path
from splat.types import Gaussians


def gaussian_properties(K: int) -> list[str]:
    """Vertex property names of a 3DGS .ply with K SH rest coefficients per channel, in file order."""
    return (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(3 * K)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )


ANTIALIASED = "splat antialiased"  # the header comment of a scene to render anti-aliased


def _write_vertices(path: Path, vertices: np.ndarray, comments: tuple[str, ...] = ()) -> None:
    """Binary little-endian .ply with one vertex element from a structured array (atomic)."""
    kinds = {"f4": "float", "u1": "uchar", "f8": "double", "i4": "int"}
    header = ["ply", "format binary_little_endian 1.0", *(f"comment {c}" for c in comments)]
    header.append(f"element vertex {len(vertices)}")
    header += [f"property {kinds[vertices.dtype[n].str[1:]]} {n}" for n in vertices.dtype.names]
    header.append("end_header\n")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write("\n".join(header).encode("ascii"))
        f.write(vertices.tobytes())


def write_ply(path: str | os.PathLike, gaussians: Gaussians, antialiased: bool = False) -> Path:
    """Write Gaussians as a standard 3DGS .ply (float32, normals zero); returns the path. antialiased: the
    scene was trained with the anti-aliased rasterizer (said in the header, see the module docstring)."""
    g = gaussians.detach().to("cpu", torch.float32)
    N, K = len(g), g.sh_rest.shape[1]
    columns = [
        g.means,
        torch.zeros(N, 3),
        g.sh_dc,
        g.sh_rest.transpose(1, 2).reshape(N, 3 * K),  # (N, 3, K): channel-major
        g.opacity_logits.reshape(N, 1),
        g.log_scales,
        g.quats,
    ]
    data = torch.cat(columns, 1).numpy()
    vertices = np.empty(N, [(n, "<f4") for n in gaussian_properties(K)])
    vertices.view("<f4").reshape(N, data.shape[1])[:] = data
    path = Path(path)
    _write_vertices(path, vertices, (ANTIALIASED,) if antialiased else ())
    return path


def ply_render_settings(path: str | os.PathLike):
    """The RenderSettings a .ply's scene is rendered with: anti-aliased when its header says so."""
    from splat.render import RenderSettings

    with open(path, "rb") as f:
        head = f.read(4096).split(b"end_header", 1)[0].decode("ascii", "replace").splitlines()
    return RenderSettings(antialias=f"comment {ANTIALIASED}" in (line.strip() for line in head))


def _read_vertices(path: Path) -> np.ndarray:
    try:
        ply = plyfile.PlyData.read(str(path))
        return ply["vertex"].data
    except FileNotFoundError:
        raise InputError(f"{path} does not exist; pass a .ply file") from None
    except (plyfile.PlyParseError, plyfile.PlyHeaderParseError, KeyError, ValueError, OSError, EOFError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise InputError(
            f"cannot read {path}: {reason}; expected a binary 3DGS or point-cloud .ply"
        ) from None


def read_ply(path: str | os.PathLike) -> Gaussians:
    """Read a 3DGS .ply (any SH degree, normals optional) into float32 Gaussians."""
    path = Path(path)
    v = _read_vertices(path)
    names = set(v.dtype.names)
    rest = sorted((n for n in names if re.fullmatch(r"f_rest_\d+", n)), key=lambda n: int(n[7:]))
    missing = [n for n in gaussian_properties(0) if n not in names and n not in ("nx", "ny", "nz")]
    if missing:
        raise InputError(f"{path} is not a 3DGS .ply: vertex lacks {', '.join(missing)}")
    if (
        len(rest) % 3
        or len(rest) // 3 not in (0, 3, 8, 15)
        or rest != [f"f_rest_{i}" for i in range(len(rest))]
    ):
        raise InputError(f"{path} has {len(rest)} f_rest properties; expected 0, 9, 24 or 45 (SH degree 0-3)")
    N, K = len(v), len(rest) // 3
    col = lambda *ns: torch.from_numpy(np.stack([np.asarray(v[n], np.float32) for n in ns], 1))  # noqa: E731
    sh_rest = col(*rest) if K else torch.zeros(N, 3 * K)
    return Gaussians(
        means=col("x", "y", "z"),
        log_scales=col("scale_0", "scale_1", "scale_2"),
        quats=col("rot_0", "rot_1", "rot_2", "rot_3"),
        opacity_logits=col("opacity")[:, 0],
        sh_dc=col("f_dc_0", "f_dc_1", "f_dc_2"),
        sh_rest=sh_rest.reshape(N, 3, K).transpose(1, 2).contiguous(),
    )


def write_points_ply(path: str | os.PathLike, xyz, rgb) -> Path:
    """Write a coloured point cloud: float32 x,y,z,nx,ny,nz (zero) and uchar red,green,blue.

    Args:
        xyz: (P, 3) positions (numpy or torch).
        rgb: (P, 3) uint8 colours, or floats in [0, 1].
    """
    xyz = _numpy(xyz).reshape(-1, 3)
    rgb = _numpy(rgb).reshape(-1, 3)
    if rgb.dtype != np.uint8:
        rgb = np.clip(np.round(rgb.astype(np.float64) * 255), 0, 255).astype(np.uint8)
    names = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    vertices = np.zeros(len(xyz), names + [("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for i, c in enumerate("xyz"):
        vertices[c] = xyz[:, i]
    for i, c in enumerate(("red", "green", "blue")):
        vertices[c] = rgb[:, i]
    path = Path(path)
    _write_vertices(path, vertices)
    return path


def read_points_ply(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(P, 3) float32 positions and (P, 3) uint8 colours (grey when the file has none)."""
    path = Path(path)
    v = _read_vertices(path)
    if not {"x", "y", "z"} <= set(v.dtype.names):
        raise InputError(f"{path} has no x, y, z vertex properties; expected a point cloud .ply")
    xyz = np.stack([v[c] for c in "xyz"], 1).astype(np.float32)
    if {"red", "green", "blue"} <= set(v.dtype.names):
        rgb = np.stack([v[c] for c in ("red", "green", "blue")], 1).astype(np.uint8)
    else:
        rgb = np.full((len(v), 3), 128, np.uint8)
    return xyz, rgb


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

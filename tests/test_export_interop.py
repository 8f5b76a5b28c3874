"""Interoperability with an independent implementation: PlayCanvas splat-transform (npm) reads our
.ply, compressed .ply, SPZ (v3 and v4) and SOG, and writes files our readers decode (SPZ v3/v4, SOG
and .glb with KHR_gaussian_splatting: splat-transform writes .glb but cannot read it, so our .glb is
held to the file it writes); plyfile reads our .ply.

splat-transform is installed once with npm into $SPLAT_NODE_DIR (default ~/.cache/splat/node,
about 40 s the first time). The test is skipped only when node or npm is missing.
"""

import csv
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import plyfile
import pytest
import torch
from conftest import make_gaussians
from scipy.spatial import cKDTree

from splat.compress.compressed_ply import read_compressed_ply, write_compressed_ply
from splat.compress.gltf import read_glb, write_glb
from splat.compress.morton import morton_order
from splat.compress.sog import read_sog, write_sog
from splat.compress.spz import read_spz, write_spz
from splat.io.ply import write_ply

PACKAGE = "@playcanvas/splat-transform@2.7.1"


@pytest.fixture(scope="module")
def splat_transform() -> Path:
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are not installed; cannot run @playcanvas/splat-transform")
    root = Path(os.environ.get("SPLAT_NODE_DIR", Path.home() / ".cache" / "splat" / "node"))
    tool = root / "node_modules" / ".bin" / "splat-transform"
    if not tool.exists():
        root.mkdir(parents=True, exist_ok=True)
        cmd = [
            "npm",
            "install",
            "--prefix",
            str(root),
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            PACKAGE,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"npm install {PACKAGE} failed:\n{done.stderr[-2000:]}"
    return tool


def convert(tool: Path, src: Path, dst: Path, *flags: str) -> None:
    done = subprocess.run(
        [str(tool), "-q", "-w", *flags, str(src), str(dst)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"splat-transform {src.name} -> {dst.name} failed:\n{done.stderr[-2000:]}"


def read_csv(path: Path) -> dict[str, np.ndarray]:
    with open(path) as f:
        rows = list(csv.reader(f))
    values = np.array(rows[1:], dtype=np.float64)
    return {name: values[:, i] for i, name in enumerate(rows[0])}


def columns(g) -> dict[str, np.ndarray]:
    """Gaussians as 3DGS .ply columns (quaternions normalised, w >= 0)."""
    q = torch.nn.functional.normalize(g.quats.double(), dim=-1)
    q = torch.where(q[:, :1] < 0, -q, q)
    rest = g.sh_rest.double().transpose(1, 2).reshape(len(g), -1)
    out = {c: g.means[:, i].double().numpy() for i, c in enumerate("xyz")}
    out |= {f"scale_{i}": g.log_scales[:, i].double().numpy() for i in range(3)}
    out |= {f"f_dc_{i}": g.sh_dc[:, i].double().numpy() for i in range(3)}
    out |= {f"rot_{i}": q[:, i].numpy() for i in range(4)}
    out |= {f"f_rest_{i}": rest[:, i].numpy() for i in range(rest.shape[1])}
    return out | {"opacity": g.opacity_logits.double().numpy()}


def max_errors(got: dict, want: dict) -> dict[str, float]:
    """Largest |difference| per column; quaternions compared up to sign."""
    q = np.stack([got[f"rot_{i}"] for i in range(4)], 1)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    q = np.where(q[:, :1] < 0, -q, q)
    got = got | {f"rot_{i}": q[:, i] for i in range(4)}
    return {k: float(np.abs(got[k] - want[k]).max()) for k in want}


def scene():
    g = make_gaussians(700, 3)
    g.sh_rest *= 0.2
    g.sh_dc *= 0.5
    g.quats[:, 0] = g.quats[:, 0].abs() + 0.05  # keep w clear of 0 so the sign convention is unambiguous
    return g


def test_splat_transform_reads_our_files(splat_transform, tmp_path):
    g = scene()
    ply, cply, spz = tmp_path / "a.ply", tmp_path / "a.compressed.ply", tmp_path / "a.spz"
    write_ply(ply, g), write_compressed_ply(cply, g), write_spz(spz, g)
    for src in (ply, cply, spz):
        convert(splat_transform, src, tmp_path / f"{src.name}.csv")
    want = columns(g)
    err = max_errors(read_csv(tmp_path / "a.ply.csv"), want)
    assert max(err.values()) < 1e-6, err
    # Compressed .ply: splat-transform decodes exactly what our reader decodes.
    got = read_csv(tmp_path / "a.compressed.ply.csv")
    err = max_errors(got, columns(read_compressed_ply(cply)))
    assert max(err.values()) < 1e-5, err
    err = max_errors(got, columns(g[torch.from_numpy(morton_order(g.means.double().numpy()))]))
    assert max(err[c] for c in "xyz") < 0.01 and max(err[f"rot_{i}"] for i in range(4)) < 2e-3
    # SPZ: Niantic's own decoder (inside splat-transform) gets our positions, rotations and SH back.
    got = read_csv(tmp_path / "a.spz.csv")
    err = max_errors(got, want)
    assert max(err[c] for c in "xyz") <= 2.0**-13 + 1e-6, err
    assert max(err[f"rot_{i}"] for i in range(4)) < 3e-3, err
    assert max(err[f"scale_{i}"] for i in range(3)) <= 1 / 32 + 1e-5
    inside = np.abs(np.stack([want[f"f_rest_{i}"] for i in range(45)])) < 0.9
    rest_err = np.abs(np.stack([got[f"f_rest_{i}"] - want[f"f_rest_{i}"] for i in range(45)]))
    assert rest_err[inside].max() <= 8.5 / 128, "SH rest signs or layout differ from Niantic's decoder"
    assert max_errors(got, columns(read_spz(spz))).keys()  # and our reader agrees with theirs:
    assert max(max_errors(got, columns(read_spz(spz))).values()) < 1e-4


def test_our_readers_decode_splat_transform_files(splat_transform, tmp_path):
    g = scene()
    write_ply(tmp_path / "a.ply", g)
    convert(splat_transform, tmp_path / "a.ply", tmp_path / "b.spz", "--spz-version", "3")
    convert(splat_transform, tmp_path / "a.ply", tmp_path / "b.compressed.ply")
    d = read_spz(tmp_path / "b.spz")
    assert len(d) == len(g)
    match = cKDTree(g.means.numpy()).query(d.means.numpy())[1]  # splat-transform may reorder
    assert len(set(match.tolist())) == len(g)
    err = max_errors(columns(d), columns(g[torch.from_numpy(match)]))
    assert max(err[c] for c in "xyz") <= 2.0**-13 + 1e-6 and max(err[f"rot_{i}"] for i in range(4)) < 3e-3, (
        err
    )
    c = read_compressed_ply(tmp_path / "b.compressed.ply")
    a, b = np.sort(c.means.numpy(), 0), np.sort(g.means.numpy(), 0)
    assert len(c) == len(g) and np.abs(a - b).max() < 0.01


def matched(got, want):
    """`want` reordered to `got` by nearest centre (splat-transform and SOG reorder), checked 1:1."""
    match = cKDTree(want.means.double().numpy()).query(got.means.double().numpy())[1]
    assert len(set(match.tolist())) == len(want), "centres do not pair up one to one"
    return want[torch.from_numpy(match)]


def covariances(g) -> torch.Tensor:
    """(N, 3, 3): a quaternion and its turn by 180 degrees about a local axis give the same Gaussian."""
    q = torch.nn.functional.normalize(g.quats.double(), dim=-1)
    w, x, y, z = q.unbind(-1)
    R = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ], -1,
    ).reshape(-1, 3, 3)  # fmt: skip
    return R @ torch.diag_embed(torch.exp(2 * g.log_scales.double())) @ R.transpose(1, 2)


def test_splat_transform_reads_our_sog_and_spz_v3(splat_transform, tmp_path):
    g = scene()
    sog, spz3 = write_sog(tmp_path / "a.sog", g), write_spz(tmp_path / "a3.spz", g, version=3)
    for src in (sog, spz3):
        convert(splat_transform, src, tmp_path / f"{src.name}.csv")
    # SOG: their decoder and ours read the same values from our textures and codebooks.
    got = read_csv(tmp_path / "a.sog.csv")
    ours = read_sog(sog)
    err = max_errors(got, columns(ours))
    assert max(err.values()) < 1e-5, err
    # ... and those are the scene within SOG's precision (16-bit log positions, 8-bit quaternions and
    # opacities, 256-level codebooks for scales and colours, an SH palette).
    want = columns(matched(ours, g))
    err = max_errors(got, want)
    assert max(err[c] for c in "xyz") < 2e-4 * (1 + np.abs(want["x"]).max()), err
    assert max(err[f"rot_{i}"] for i in range(4)) < 8e-3, err
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    assert np.abs(sig(got["opacity"]) - sig(want["opacity"])).max() <= 0.5 / 255 + 1e-6
    for c in ("scale_0", "scale_1", "scale_2", "f_dc_0", "f_dc_1", "f_dc_2"):
        assert np.sqrt(np.mean((got[c] - want[c]) ** 2)) < 0.02, c
    rest = np.stack([got[f"f_rest_{i}"] - want[f"f_rest_{i}"] for i in range(45)])
    assert np.sqrt(np.mean(rest**2)) < 0.01  # 700 Gaussians fit a palette of up to 4096 entries
    # SPZ v3 (gzip) still reads in Niantic's decoder exactly as in ours.
    assert max(max_errors(read_csv(tmp_path / "a3.spz.csv"), columns(read_spz(spz3))).values()) < 1e-4


def test_our_readers_decode_splat_transform_sog_spz4_glb(splat_transform, tmp_path):
    g = scene()
    write_ply(tmp_path / "a.ply", g)
    convert(splat_transform, tmp_path / "a.ply", tmp_path / "b.spz", "--spz-version", "4")
    convert(splat_transform, tmp_path / "a.ply", tmp_path / "b.sog", "-g", "cpu")
    convert(splat_transform, tmp_path / "a.ply", tmp_path / "b.glb")
    assert (tmp_path / "b.spz").read_bytes()[:8] == b"NGSP\x04\0\0\0"  # v4: plaintext header
    d = read_spz(tmp_path / "b.spz")
    err = max_errors(columns(d), columns(matched(d, g)))
    assert max(err[c] for c in "xyz") <= 2.0**-13 + 1e-6 and max(err[f"rot_{i}"] for i in range(4)) < 3e-3, (
        err
    )
    assert max(err[f"scale_{i}"] for i in range(3)) <= 1 / 32 + 1e-5, err
    # Their SOG (their k-means, Morton order, truncating byte casts) decodes to the scene.
    d = read_sog(tmp_path / "b.sog")
    want = columns(matched(d, g))
    err = max_errors(columns(d), want)
    assert max(err[c] for c in "xyz") < 2e-4 * (1 + np.abs(want["x"]).max()), err
    assert max(err[f"rot_{i}"] for i in range(4)) < 1.2e-2, err
    for c in ("scale_0", "f_dc_0"):
        assert np.sqrt(np.mean((columns(d)[c] - want[c]) ** 2)) < 0.03, c
    # Their .glb: positions, linear scales, sigmoid opacities and SH coefficients in glTF axes come back
    # to float32 precision; their quaternion is ours turned about a local axis, the same Gaussian.
    d = read_glb(tmp_path / "b.glb")
    h = matched(d, g)
    assert (d.means - h.means).abs().max() < 1e-6 and (d.sh_rest - h.sh_rest).abs().max() < 1e-6
    assert (d.sh_dc - h.sh_dc).abs().max() < 1e-6 and (d.opacity_logits - h.opacity_logits).abs().max() < 1e-3
    assert (covariances(d) - covariances(h)).abs().max() < 1e-5 * covariances(h).abs().max()
    ours = read_glb(write_glb(tmp_path / "a.glb", g))
    assert (covariances(ours) - covariances(g)).abs().max() < 1e-5 * covariances(g).abs().max()


def test_plyfile_reads_our_ply(tmp_path):
    g = make_gaussians(50, 3)
    ply = plyfile.PlyData.read(str(write_ply(tmp_path / "x.ply", g)))
    v = ply["vertex"].data
    assert len(v) == 50 and len(v.dtype.names) == 62
    assert np.array_equal(np.stack([v["x"], v["y"], v["z"]], 1), g.means.numpy())
    assert np.array_equal(v["f_rest_44"], g.sh_rest[:, 14, 2].numpy())  # channel-major f_rest

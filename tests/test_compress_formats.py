"""SPZ (v3, v4), SOG, glTF KHR_gaussian_splatting, antimatter15 .splat and SuperSplat compressed .ply:
round trips within each format's precision."""

import gzip
import json
import struct
import zipfile

import numpy as np
import pytest
import roma
import torch
from conftest import make_gaussians

from splat.compress import gltf
from splat.compress.compressed_ply import read_compressed_ply, write_compressed_ply
from splat.compress.dotsplat import decode_splat, encode_splat, read_splat, splat_order
from splat.compress.gltf import read_glb, write_glb
from splat.compress.morton import morton_order
from splat.compress.sog import decode_sog, read_sog, write_sog
from splat.compress.spz import SH_FLIP, decode_spz, encode_spz, read_spz
from splat.errors import InputError
from splat.render.sh import sh_basis


def scene(n: int, degree: int = 3):
    g = make_gaussians(n, degree)
    g.sh_rest *= 0.2
    g.sh_dc *= 0.5
    return g


def quat_error(a, b):
    a, b = torch.nn.functional.normalize(a, dim=-1), torch.nn.functional.normalize(b, dim=-1)
    return 1 - (a * b).sum(-1).abs()


def test_spz_round_trip():
    g = scene(2000)
    d = decode_spz(encode_spz(g))
    assert d.sh_degree == 3 and len(d) == len(g)
    assert (d.means - g.means).abs().max() <= 2.0**-13 + 1e-6  # 12 fractional bits
    assert (d.log_scales - g.log_scales).abs().max() <= 1 / 32 + 1e-5
    assert quat_error(d.quats, g.quats).max() < 1e-4
    assert (torch.sigmoid(d.opacity_logits) - torch.sigmoid(g.opacity_logits)).abs().max() < 0.5 / 255 + 1e-4
    assert (d.sh_dc - g.sh_dc).abs().max() < 0.5 / (0.15 * 255) + 1e-4
    inside = g.sh_rest.abs() < 0.9
    assert ((d.sh_rest - g.sh_rest).abs()[inside] <= 8.5 / 128).all()  # bands 2-3 rounded to 4 bits
    far = g.clone()
    far.means *= 5000  # too big for 12 fractional bits in 24-bit fixed point
    assert (decode_spz(encode_spz(far)).means - far.means).abs().max() < 0.5


def test_spz_sh_flip_is_the_basis_symmetry_of_rub_axes():
    dirs = torch.nn.functional.normalize(torch.randn(100, 3, dtype=torch.float64), dim=-1)
    flipped = dirs * torch.tensor([1.0, -1, -1], dtype=torch.float64)
    ratio = sh_basis(3, flipped)[:, 1:] / sh_basis(3, dirs)[:, 1:]
    assert torch.allclose(ratio, torch.from_numpy(SH_FLIP).double().expand(100, 15), atol=1e-6)


def test_spz_rejects_damaged_files(tmp_path):
    data = encode_spz(scene(50, 1))
    for bad in (b"", b"garbage", gzip.compress(b"NGSPxxxx"), data[: len(data) // 2]):
        (tmp_path / "x.spz").write_bytes(bad)
        with pytest.raises(InputError, match="x.spz"):
            read_spz(tmp_path / "x.spz")


def test_splat_round_trip(tmp_path):
    g = scene(1000, 2)
    data = encode_splat(g)
    assert len(data) == 32 * len(g)
    ref = g[torch.from_numpy(splat_order(g))]
    d = decode_splat(data)
    assert d.sh_degree == 0
    assert torch.equal(d.means, ref.means)
    assert (d.log_scales - ref.log_scales).abs().max() < 1e-5
    assert quat_error(d.quats, ref.quats).max() < 1e-3
    rgb = (0.5 + 0.28209479177387814 * ref.sh_dc).clamp(0, 1)
    assert ((0.5 + 0.28209479177387814 * d.sh_dc) - rgb).abs().max() < 0.5 / 255 + 1e-5
    volume = (ref.log_scales.double().sum(1).exp() * torch.sigmoid(ref.opacity_logits.double())).numpy()
    assert np.all(np.diff(volume) <= 0)  # biggest, most opaque first
    (tmp_path / "bad.splat").write_bytes(data[:-5])
    with pytest.raises(InputError, match="bad.splat"):
        read_splat(tmp_path / "bad.splat")


@pytest.mark.parametrize("degree", [0, 3])
def test_compressed_ply_round_trip(tmp_path, degree):
    g = scene(700, degree)  # 3 chunks, the last one short
    path = write_compressed_ply(tmp_path / "x.compressed.ply", g)
    d = read_compressed_ply(path)
    ref = g[torch.from_numpy(morton_order(g.means.double().numpy()))]
    chunk_extent = torch.stack([(c.amax(0) - c.amin(0)) for c in ref.means.split(256)])
    step = chunk_extent.repeat_interleave(256, 0)[: len(g)] / torch.tensor([2047.0, 1023, 2047])
    assert ((d.means - ref.means).abs() <= 0.51 * step + 1e-5).all()
    assert quat_error(d.quats, ref.quats).max() < 2e-5
    assert (
        torch.sigmoid(d.opacity_logits) - torch.sigmoid(ref.opacity_logits)
    ).abs().max() < 0.5 / 255 + 1e-4
    assert (d.log_scales - ref.log_scales).abs().max() < 0.01
    assert (d.sh_dc - ref.sh_dc).abs().max() < 0.05
    assert d.sh_degree == degree
    if degree:
        assert (d.sh_rest - ref.sh_rest).abs()[ref.sh_rest.abs() < 3.9].max() <= 1 / 32 + 1e-5
    (tmp_path / "bad.compressed.ply").write_bytes(path.read_bytes()[:300])
    with pytest.raises(InputError, match="bad.compressed.ply"):
        read_compressed_ply(tmp_path / "bad.compressed.ply")


def test_spz_v4_header_streams_and_v3_still_written():
    g = scene(300, 2)
    v4, v3 = encode_spz(g), encode_spz(g, version=3)
    magic, version, n, degree, bits, flags, streams, toc = struct.unpack_from("<IIIBBBBI", v4)
    assert (magic, version, n, degree, flags, streams, toc) == (0x5053474E, 4, 300, 2, 0, 6, 32)
    assert v4[20:32] == bytes(12) and v3[:2] == b"\x1f\x8b" and gzip.decompress(v3)[4] == 3
    a, b = decode_spz(v4), decode_spz(v3)
    for x, y in zip(a.tensors().values(), b.tensors().values()):
        assert torch.equal(x, y)  # same fields, another container
    flat = decode_spz(encode_spz(scene(40, 0)))  # SH degree 0: five streams, no empty sixth
    assert flat.sh_degree == 0 and struct.unpack_from("<B", encode_spz(scene(40, 0)), 15)[0] == 5
    for bad in (v4[:31], v4[:60], v4[:-10], v4[:40] + bytes(len(v4) - 40)):
        with pytest.raises(InputError):
            decode_spz(bad)


def covariances(g) -> torch.Tensor:
    R = roma.unitquat_to_rotmat(
        roma.quat_wxyz_to_xyzw(torch.nn.functional.normalize(g.quats.double(), dim=-1))
    )
    return R @ torch.diag_embed(torch.exp(2 * g.log_scales.double())) @ R.transpose(1, 2)


def test_glb_round_trip_and_khr_gaussian_splatting_layout(tmp_path):
    g = scene(500, 3)
    d = read_glb(write_glb(tmp_path / "a.glb", g))
    assert d.sh_degree == 3 and torch.equal(d.means, g.means) and torch.equal(d.sh_rest, g.sh_rest)
    assert quat_error(d.quats, g.quats).max() < 1e-6 and (d.log_scales - g.log_scales).abs().max() < 1e-5
    assert (d.opacity_logits - g.opacity_logits).abs().max() < 1e-4
    data = (tmp_path / "a.glb").read_bytes()
    doc, _ = gltf._chunks(data, "a.glb")
    prim = doc["meshes"][0]["primitives"][0]
    assert prim["mode"] == 0 and prim["extensions"]["KHR_gaussian_splatting"]["kernel"] == "ellipse"
    assert prim["extensions"]["KHR_gaussian_splatting"]["colorSpace"] == "srgb_rec709_display"
    raw = {
        name: gltf._accessor(doc, gltf._chunks(data, "")[1], i, "") for name, i in prim["attributes"].items()
    }
    assert np.allclose(raw["KHR_gaussian_splatting:SCALE"], g.log_scales.exp().numpy(), rtol=1e-6)  # linear
    assert np.allclose(raw["KHR_gaussian_splatting:OPACITY"][:, 0], torch.sigmoid(g.opacity_logits).numpy())
    assert np.allclose(np.linalg.norm(raw["KHR_gaussian_splatting:ROTATION"], axis=1), 1, atol=1e-6)
    assert len([a for a in prim["attributes"] if "SH_DEGREE" in a]) == 16
    # The glTF axes (LUF) are the .ply's turned 180 degrees about z; the SH flip is that symmetry.
    dirs = torch.nn.functional.normalize(torch.randn(100, 3, dtype=torch.float64), dim=-1)
    turned = dirs * torch.tensor([-1.0, -1, 1], dtype=torch.float64)
    ratio = sh_basis(3, turned)[:, 1:] / sh_basis(3, dirs)[:, 1:]
    assert torch.allclose(ratio, torch.from_numpy(gltf.SH_FLIP_Z).double().expand(100, 15), atol=1e-6)
    for bad in (
        b"",
        data[:100],
        data[:-8],
        data.replace(b"KHR_gaussian_splatting", b"KHR_gaussian_splattinX"),
    ):
        (tmp_path / "x.glb").write_bytes(bad)
        with pytest.raises(InputError, match="x.glb"):
            read_glb(tmp_path / "x.glb")


@pytest.mark.parametrize("degree", [0, 3])
def test_sog_round_trip(tmp_path, degree):
    g = scene(3000, degree)
    d = read_sog(write_sog(tmp_path / "a.sog", g))
    order = torch.from_numpy(morton_order(g.means.double().numpy()))
    g = g[order]  # SOG stores Morton order
    assert d.sh_degree == degree and len(d) == len(g)
    span = g.means.abs().max()
    assert ((d.means - g.means).abs() <= 1e-4 * (1 + g.means.abs()) * span.log1p()).all()  # 16-bit log
    assert quat_error(d.quats, g.quats).max() < 5e-5
    alpha = lambda x: torch.sigmoid(x.opacity_logits)  # noqa: E731
    assert (alpha(d) - alpha(g)).abs().max() <= 0.5 / 255 + 1e-6
    for got, want in ((d.log_scales, g.log_scales), (d.sh_dc, g.sh_dc)):  # 256-level codebooks
        assert (got - want).pow(2).mean().sqrt() < 0.02
    if degree:  # a 3000-entry palette of 4096 max: SH rest nearly exact, bar the 256-level codebook
        assert (d.sh_rest - g.sh_rest).pow(2).mean().sqrt() < 0.01
    with zipfile.ZipFile(tmp_path / "a.sog") as z:
        files = {n: z.read(n) for n in z.namelist()}
    meta = json.loads(files["meta.json"])
    assert meta["version"] == 2 and meta["count"] == 3000 and ("shN" in meta) == bool(degree)
    broken = files | {"quats.webp": files["means_l.webp"][:50]}
    for bad in (files | {"meta.json": b"{}"}, {k: v for k, v in files.items() if k != "sh0.webp"}, broken):
        with pytest.raises(InputError, match="x.sog"):
            decode_sog(bad, "x.sog")
    (tmp_path / "x.sog").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="x.sog"):
        read_sog(tmp_path / "x.sog")

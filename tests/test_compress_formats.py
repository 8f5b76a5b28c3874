"""SPZ, antimatter15 .splat and SuperSplat compressed .ply: round trips within each format's precision."""

import gzip

import numpy as np
import pytest
import torch
from conftest import make_gaussians

from splat.compress.compressed_ply import read_compressed_ply, write_compressed_ply
from splat.compress.dotsplat import decode_splat, encode_splat, read_splat, splat_order
from splat.compress.morton import morton_order
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

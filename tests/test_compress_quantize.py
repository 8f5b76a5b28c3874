"""The quantized container: exact decoding, accuracy, order, and clear errors on damaged files."""

import dataclasses

import numpy as np
import pytest
import torch
from conftest import make_gaussians

from splat.compress.container import MAGIC
from splat.compress.kmeans import assign_1d, kmeans_1d, kmeans_vq
from splat.compress.morton import morton_order
from splat.compress.quantize import QuantizeConfig, decode, quantize, read_quantized, write_quantized
from splat.errors import InputError


def scene(n: int, degree: int = 3):
    g = make_gaussians(n, degree)
    g.sh_rest *= 0.1
    g.means[: n // 50] *= 30  # a few far-away Gaussians, as a sky would have
    return g


def quat_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = torch.nn.functional.normalize(a, dim=-1), torch.nn.functional.normalize(b, dim=-1)
    return 1 - (a * b).sum(-1).abs()


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_decode_reproduces_the_encoder_reconstruction_exactly(degree):
    q = quantize(scene(3000, degree))
    decoded = decode(q.data)
    for name, t in q.gaussians.tensors().items():
        assert t.dtype == torch.float32
        assert torch.equal(decoded.tensors()[name], t), name
    assert decoded.sh_degree == degree
    assert quantize(scene(10, degree)).data != q.data
    # Deterministic: the same input gives the same bytes.
    g = scene(500, degree)
    assert quantize(g).data == quantize(g.clone()).data


def test_decoded_values_are_close_to_the_input():
    g = scene(4000)
    q = quantize(g)
    ref = g[torch.from_numpy(q.order)]
    d = q.gaussians
    # Means: uniform steps in the 0.1%-99.9% box; the points outside it are stored exactly.
    lo, hi = (torch.quantile(ref.means.double(), p, dim=0).float() for p in (0.001, 0.999))
    inside = ((ref.means >= lo) & (ref.means <= hi)).all(1)
    step = (hi - lo) / (2 ** QuantizeConfig().position_bits - 1)
    assert ((d.means - ref.means)[inside].abs() <= 0.51 * step + 1e-6).all()
    assert torch.equal(d.means[~inside], ref.means[~inside]) and (~inside).sum() >= 4
    assert (d.log_scales - ref.log_scales).abs().median() < 0.01
    assert quat_error(d.quats, ref.quats).median() < 1e-3
    assert (torch.sigmoid(d.opacity_logits) - torch.sigmoid(ref.opacity_logits)).abs().median() < 0.01
    assert (d.sh_dc - ref.sh_dc).abs().median() < 0.05
    assert (d.sh_rest - ref.sh_rest).abs().mean() < 0.03
    assert len(q.data) < 0.15 * len(g) * 59 * 4  # well under a seventh of the float32 .ply payload


def test_file_order_is_morton_and_keep_order_restores_the_input_order(tmp_path):
    g = scene(2000, 1)
    q = quantize(g)
    assert np.array_equal(q.order, morton_order(g.means.double().numpy()))
    cfg = QuantizeConfig(keep_order=True)
    path = write_quantized(tmp_path / "x.splatq", g, cfg)
    back = read_quantized(path)
    assert (back.means - g.means).abs().max() < 1e-3 * g.means.abs().max()
    assert quat_error(back.quats, g.quats).max() < 0.01


def test_vq_mode_and_tiny_inputs():
    g = scene(1500, 2)
    q = quantize(g, QuantizeConfig(sh_mode="vq", sh_vq_bits=6))
    assert torch.equal(decode(q.data).sh_rest, q.gaussians.sh_rest)
    for n in (1, 3):
        tiny = scene(n, 1)
        d = decode(quantize(tiny).data)
        assert len(d) == n
        assert (
            d.means - tiny.means[torch.from_numpy(morton_order(tiny.means.double().numpy()))]
        ).abs().max() < 1e-4


def test_small_gaussians_keep_their_precision_next_to_large_ones():
    # A trained scene is mostly small Gaussians plus a few large ones (ground, sky); the many small
    # ones carry most of the image, so the codebooks must not spend their levels on the large ones.
    g = scene(6000, 0)
    g.log_scales[:] = torch.empty_like(g.log_scales).uniform_(-7, -4)
    g.log_scales[:300] = torch.empty(300, 3).uniform_(-1, 1)
    g.opacity_logits[:300] = 6.0
    q = quantize(g)
    ref, d = g[torch.from_numpy(q.order)], q.gaussians
    small = ref.log_scales.max(1).values < -3
    err = (d.log_scales - ref.log_scales)[small].abs()
    assert err.median() < 0.01 and err.quantile(0.99) < 0.03


@pytest.mark.parametrize("bits", [17, 20])
def test_positions_beyond_16_bits_round_trip(bits):
    g = scene(2000, 0)
    q = quantize(g, QuantizeConfig(position_bits=bits))
    ref = g[torch.from_numpy(q.order)]
    span = ref.means.max(0).values - ref.means.min(0).values
    assert torch.equal(decode(q.data).means, q.gaussians.means)
    assert ((q.gaussians.means - ref.means).abs() <= span / 2**bits + 1e-6).all()


@pytest.mark.parametrize(
    "kw", [{"position_bits": 25}, {"scale_bits": 0}, {"sh_bits": (9, 2, 2)}, {"weighting": "area"}]
)
def test_settings_out_of_range_are_refused(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        QuantizeConfig(**kw)


def test_sh_bits_follow_the_tolerance():
    from splat.compress.container import unpack

    g = scene(2000, 2)
    loud = unpack(quantize(g).data)[0]["groups"]
    g.sh_rest *= 0.01  # nearly view-independent colour: one bit per value is within tolerance
    quiet = unpack(quantize(g).data)[0]["groups"]
    assert (loud["sh_rest.band1"]["bits"], loud["sh_rest.band2"]["bits"]) == QuantizeConfig().sh_bits[:2]
    assert quiet["sh_rest.band1"]["bits"] == quiet["sh_rest.band2"]["bits"] == 1


def test_non_finite_input_is_refused():
    g = scene(100, 1)
    g.sh_dc[3, 1] = float("nan")
    with pytest.raises(InputError, match="sh_dc"):
        quantize(g)


def test_kmeans_codebooks():
    x = np.random.randn(5000)
    levels = kmeans_1d(x, 16)
    assert len(levels) == 16 and np.all(np.diff(levels) > 0)
    err = np.abs(x - levels[assign_1d(x, levels)])
    assert np.mean(err**2) < 0.012  # Lloyd-Max for 16 levels of N(0, 1): MSE 0.0095
    assert np.array_equal(kmeans_1d(np.array([3.0, 1.0, 3.0]), 8), np.array([1.0, 3.0], np.float32))
    rows = np.random.randn(2000, 4).astype(np.float32)
    book = kmeans_vq(rows, 64, seed=1)
    assert book.shape == (64, 4) and np.isfinite(book).all()
    assert np.array_equal(kmeans_vq(rows[:10], 64), np.unique(rows[:10], axis=0))


@pytest.fixture(scope="module")
def encoded():
    return quantize(scene(800, 1), dataclasses.replace(QuantizeConfig(), level=3)).data


def test_damaged_files_raise_input_error_naming_the_file(tmp_path, encoded):
    path = tmp_path / "scene.splatq"
    rng = np.random.default_rng()
    cases = {"wrong magic": b"NOTSPLAT" + encoded[8:], "empty": b"", "text": b"ply\nformat ascii\n"}
    for cut in sorted(rng.choice(np.arange(1, len(encoded)), 6, replace=False)):
        cases[f"truncated at {cut}"] = encoded[:cut]
    for at in sorted(rng.choice(np.arange(8, len(encoded)), 12, replace=False)):
        flipped = bytearray(encoded)
        flipped[at] ^= 1 << int(rng.integers(8))
        cases[f"bit flip at {at}"] = bytes(flipped)
    cases["trailing bytes"] = encoded + b"\0"
    for label, data in cases.items():
        path.write_bytes(data)
        with pytest.raises(InputError, match="scene.splatq") as info:
            read_quantized(path)
        assert "\n" not in str(info.value), label
    assert encoded[:8] == MAGIC
    with pytest.raises(InputError, match="does not exist"):
        read_quantized(tmp_path / "missing.splatq")

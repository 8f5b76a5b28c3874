"""3DGS .ply: bit-exact round trip, the exact property list and order, lenient reading, bad files."""

import numpy as np
import plyfile
import pytest
import torch

from splat.errors import InputError
from splat.io.ply import (
    gaussian_properties,
    ply_render_settings,
    read_ply,
    read_points_ply,
    write_ply,
    write_points_ply,
)


def expected_properties(K):
    return (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(3 * K)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_is_bit_exact(tmp_path, random_gaussians, degree):
    g = random_gaussians(257, degree)
    write_ply(tmp_path / "g.ply", g)
    back = read_ply(tmp_path / "g.ply")
    for name, t in g.tensors().items():
        got = getattr(back, name)
        assert got.dtype == torch.float32 and torch.equal(got, t), name
    back.validate()


def test_property_list_order_and_channel_major_sh(tmp_path, random_gaussians):
    g = random_gaussians(50, 3)
    write_ply(tmp_path / "g.ply", g)
    ply = plyfile.PlyData.read(str(tmp_path / "g.ply"))
    assert ply.byte_order == "<" and not ply.text
    assert [e.name for e in ply.elements] == ["vertex"]
    v = ply["vertex"]
    assert [p.name for p in v.properties] == expected_properties(15) == gaussian_properties(15)
    assert all(p.val_dtype == "f4" for p in v.properties)
    K = 15
    for k, c in [(0, 0), (3, 1), (14, 2), (7, 0)]:  # f_rest index = c*K + k holds sh_rest[:, k, c]
        assert np.array_equal(v[f"f_rest_{c * K + k}"], g.sh_rest[:, k, c].numpy())
    assert np.array_equal(v["rot_0"], g.quats[:, 0].numpy())  # w first
    assert np.array_equal(v["opacity"], g.opacity_logits.numpy())
    assert np.array_equal(v["scale_2"], g.log_scales[:, 2].numpy())
    assert not np.any(v["nx"]) and not np.any(v["nz"])


def test_reads_files_without_normals_in_any_order_and_precision(tmp_path, random_gaussians):
    g = random_gaussians(30, 1)
    cols = {"x": g.means[:, 0], "y": g.means[:, 1], "z": g.means[:, 2], "opacity": g.opacity_logits}
    cols |= {f"f_dc_{i}": g.sh_dc[:, i] for i in range(3)}
    cols |= {f"scale_{i}": g.log_scales[:, i] for i in range(3)}
    cols |= {f"rot_{i}": g.quats[:, i] for i in range(4)}
    cols |= {f"f_rest_{c * 3 + k}": g.sh_rest[:, k, c] for k in range(3) for c in range(3)}
    names = list(cols)[::-1]  # reversed order, float64, no normals
    arr = np.empty(30, [(n, "f8") for n in names])
    for n in names:
        arr[n] = cols[n].double().numpy()
    plyfile.PlyData([plyfile.PlyElement.describe(arr, "vertex")]).write(str(tmp_path / "o.ply"))
    back = read_ply(tmp_path / "o.ply")
    for name, t in g.tensors().items():
        assert torch.equal(getattr(back, name), t), name


def test_bad_files_raise_input_error(tmp_path, random_gaussians):
    (tmp_path / "junk.ply").write_bytes(b"this is not a ply file at all")
    with pytest.raises(InputError) as e:
        read_ply(tmp_path / "junk.ply")
    assert "junk.ply" in str(e.value) and "\n" not in str(e.value)

    write_ply(tmp_path / "g.ply", random_gaussians(100, 1))
    data = (tmp_path / "g.ply").read_bytes()
    (tmp_path / "cut.ply").write_bytes(data[: len(data) - 500])
    with pytest.raises(InputError, match="cut.ply"):
        read_ply(tmp_path / "cut.ply")

    write_points_ply(tmp_path / "pts.ply", np.random.randn(5, 3), np.random.rand(5, 3))
    with pytest.raises(InputError, match="lacks f_dc_0") as e:
        read_ply(tmp_path / "pts.ply")
    assert "pts.ply" in str(e.value)

    arr = np.zeros(3, [(n, "f4") for n in gaussian_properties(0) + ["f_rest_0", "f_rest_1"]])
    plyfile.PlyData([plyfile.PlyElement.describe(arr, "vertex")]).write(str(tmp_path / "odd.ply"))
    with pytest.raises(InputError, match="2 f_rest"):
        read_ply(tmp_path / "odd.ply")
    with pytest.raises(InputError, match="does not exist"):
        read_ply(tmp_path / "missing.ply")


def test_points_ply_round_trip(tmp_path):
    xyz = np.random.randn(40, 3).astype(np.float32)
    rgb = np.random.randint(0, 256, (40, 3), dtype=np.uint8)
    write_points_ply(tmp_path / "p.ply", torch.from_numpy(xyz), rgb)
    v = plyfile.PlyData.read(str(tmp_path / "p.ply"))["vertex"]
    assert [p.name for p in v.properties] == ["x", "y", "z", "nx", "ny", "nz", "red", "green", "blue"]
    assert v["red"].dtype == np.uint8
    got_xyz, got_rgb = read_points_ply(tmp_path / "p.ply")
    assert np.array_equal(got_xyz, xyz) and np.array_equal(got_rgb, rgb)
    write_points_ply(tmp_path / "f.ply", xyz, np.array([[0.0, 0.5, 1.0]] * 40))
    assert read_points_ply(tmp_path / "f.ply")[1][0].tolist() == [0, 128, 255]


def test_empty_gaussians_round_trip(tmp_path, random_gaussians):
    write_ply(tmp_path / "e.ply", random_gaussians(0, 2))
    back = read_ply(tmp_path / "e.ply")
    assert len(back) == 0 and back.sh_rest.shape == (0, 8, 3)


def test_an_antialiased_scene_says_so_in_its_header(tmp_path, random_gaussians):
    """The rasterizer mode travels with the file (a header comment other tools skip); the data is the same."""
    g = random_gaussians(50, 2)
    plain, aa = write_ply(tmp_path / "plain.ply", g), write_ply(tmp_path / "aa.ply", g, antialiased=True)
    assert not ply_render_settings(plain).antialias and ply_render_settings(aa).antialias
    assert "splat antialiased" in plyfile.PlyData.read(str(aa)).comments
    for name, t in read_ply(aa).tensors().items():
        assert torch.equal(t, getattr(read_ply(plain), name)), name

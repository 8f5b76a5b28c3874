"""transforms.json: OpenGL c2w convention, intrinsics, COLMAP agreement, bad files."""

import json
import math

import numpy as np
import pytest
import torch

from splat.errors import InputError
from splat.io.colmap import read_model, write_model
from splat.io.nerfstudio import read_transforms, write_transforms


def test_round_trip_and_opengl_convention(tmp_path, random_cameras):
    cams = random_cameras(5)
    write_transforms(tmp_path / "transforms.json", cams)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    assert "fl_x" not in meta  # intrinsics differ per view, so they go into the frames
    for v, frame in enumerate(meta["frames"]):
        assert frame["file_path"] == f"images/{cams.names[v]}"
        assert frame["fl_x"] == cams.K[v, 0, 0].item() and frame["w"] == 64
        c2w = np.array(frame["transform_matrix"])
        assert np.allclose(c2w[:3, 3], cams.centers[v].numpy(), atol=1e-12)  # position
        forward = cams.w2c[v, 2, :3].numpy()  # OpenCV +z (viewing direction) in world
        down = cams.w2c[v, 1, :3].numpy()  # OpenCV +y in world
        assert np.allclose(c2w[:3, 2], -forward, atol=1e-12)  # OpenGL looks down -z
        assert np.allclose(c2w[:3, 1], -down, atol=1e-12)  # OpenGL y is up
    back = read_transforms(tmp_path / "transforms.json")
    assert back.names == cams.names
    assert torch.equal(back.K, cams.K)
    assert torch.allclose(back.w2c, cams.w2c, atol=1e-12, rtol=0)
    assert torch.equal(back.width, cams.width) and torch.equal(back.height, cams.height)


def test_shared_intrinsics_go_to_the_top_level(tmp_path, random_cameras):
    cams = random_cameras(3)
    cams.K[:] = cams.K[0]
    write_transforms(tmp_path / "t.json", cams, image_folder=None)
    meta = json.loads((tmp_path / "t.json").read_text())
    assert meta["fl_x"] == cams.K[0, 0, 0].item() and meta["h"] == 48
    assert "fl_x" not in meta["frames"][0] and meta["frames"][0]["file_path"] == cams.names[0]
    assert torch.equal(read_transforms(tmp_path / "t.json", image_folder=None).K, cams.K)


@pytest.mark.parametrize("binary", [False, True])
def test_transforms_and_colmap_agree(tmp_path, random_cameras, binary):
    cams = random_cameras(6)
    write_model(tmp_path / "sparse", cams, binary=binary)
    from_colmap = read_model(tmp_path / "sparse").cameras
    write_transforms(tmp_path / "transforms.json", from_colmap)
    from_json = read_transforms(tmp_path / "transforms.json")
    write_model(tmp_path / "again", from_json, binary=not binary)
    again = read_model(tmp_path / "again").cameras
    for c in (from_colmap, from_json, again):
        assert c.names == cams.names
        assert torch.allclose(c.w2c, cams.w2c, atol=1e-9, rtol=0)
        assert torch.allclose(c.K, cams.K, atol=1e-12, rtol=0)


def test_blender_style_camera_angle_and_defaults(tmp_path):
    meta = {
        "camera_angle_x": 0.8,
        "w": 100,
        "h": 80,
        "frames": [{"file_path": "./images/r_0.png", "transform_matrix": np.eye(4).tolist()}],
    }
    (tmp_path / "t.json").write_text(json.dumps(meta))
    cams = read_transforms(tmp_path / "t.json")
    f = 50 / math.tan(0.4)
    assert cams.names == ["r_0.png"]
    assert torch.allclose(cams.K[0], torch.tensor([[f, 0, 50], [0, f, 40], [0, 0, 1]], dtype=torch.float64))
    assert torch.equal(cams.w2c[0], torch.diag(torch.tensor([1.0, -1, -1, 1], dtype=torch.float64)))


def test_bad_files_raise_input_error(tmp_path):
    (tmp_path / "bad.json").write_text("{ not json")
    with pytest.raises(InputError) as e:
        read_transforms(tmp_path / "bad.json")
    assert "bad.json" in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "nosize.json").write_text(
        json.dumps({"fl_x": 10, "frames": [{"file_path": "a", "transform_matrix": np.eye(4).tolist()}]})
    )
    with pytest.raises(InputError, match="nosize.json gives no image size"):
        read_transforms(tmp_path / "nosize.json")
    (tmp_path / "noframes.json").write_text(json.dumps({"fl_x": 10}))
    with pytest.raises(InputError, match="noframes.json"):
        read_transforms(tmp_path / "noframes.json")
    with pytest.raises(InputError, match="does not exist"):
        read_transforms(tmp_path / "missing.json")

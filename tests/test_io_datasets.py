"""Scene layouts: detection, loading with matched and rescaled cameras, the Tanks & Temples split."""

import numpy as np
import pytest
import torch
from PIL import Image

from splat.errors import InputError
from splat.io.colmap import write_model
from splat.io.datasets import detect_layout, load_scene, tnt_split


def make_images(folder, names, size=(32, 24)):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        Image.fromarray(np.random.randint(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / n)


def test_plain_image_folder(tmp_path):
    make_images(tmp_path, ["b.png", "a.png"])
    assert detect_layout(tmp_path) == "images"
    scene = load_scene(tmp_path)
    assert scene.cameras is None and scene.images.names == ["a.png", "b.png"] and scene.layout == "images"
    make_images(tmp_path / "s" / "images", ["c.png"])  # images/ without a model: still a plain folder
    assert detect_layout(tmp_path / "s") == "images"
    assert load_scene(tmp_path / "s").images.names == ["c.png"]


def test_colmap_scene_matches_names_and_rescales_K(tmp_path, random_cameras):
    cams = random_cameras(4, width=64, height=48)  # model made at twice the image size
    make_images(tmp_path / "images", cams.names[::-1], size=(32, 24))
    write_model(tmp_path / "sparse" / "0", cams[[2, 0, 3, 1]], binary=True)  # model order differs
    assert detect_layout(tmp_path) == "colmap"
    scene = load_scene(tmp_path, max_side=16)
    assert scene.images.names == cams.names
    c = scene.cameras
    assert c.names == cams.names
    assert c.width.tolist() == [16] * 4 and c.height.tolist() == [12] * 4
    assert torch.allclose(c.K[:, :2], cams.K[:, :2] / 4, atol=1e-12)  # 64 -> 16 pixels wide
    assert torch.allclose(c.w2c, cams.w2c, atol=1e-13, rtol=0)
    assert len(scene.model.cameras) == 4


def test_colmap_scene_with_unposed_or_misshapen_images(tmp_path, random_cameras):
    cams = random_cameras(3)
    make_images(tmp_path / "images", [*cams.names, "extra.png"])
    write_model(tmp_path / "sparse" / "0", cams)
    with pytest.raises(InputError) as e:
        load_scene(tmp_path)
    assert "extra.png" in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "images" / "extra.png").unlink()
    make_images(tmp_path / "images", cams.names[:1], size=(30, 30))  # square image, 4:3 model
    with pytest.raises(InputError, match="aspect ratio") as e:
        load_scene(tmp_path)
    assert cams.names[0] in str(e.value)


def test_tnt_layouts(tmp_path, random_cameras):
    cams = random_cameras(24)
    for root in (tmp_path / "Family" / "24_views", tmp_path / "Barn"):
        make_images(root / "images", cams.names, size=(16, 12))
        write_model(root / "sparse" / "0", cams)
    assert detect_layout(tmp_path / "Family") == "tnt"
    assert detect_layout(tmp_path / "Barn") == "tnt"
    scene = load_scene(tmp_path / "Family")
    assert scene.layout == "tnt" and scene.root == tmp_path / "Family" / "24_views"
    assert len(scene.cameras) == 24 and scene.cameras.width[0] == 16
    train, test = tnt_split(len(scene.cameras), 3)
    assert [scene.cameras.names[i] for i in train] == ["img_000.png", "img_011.png", "img_023.png"]


def test_missing_scene_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        detect_layout(tmp_path / "nowhere")


def test_tnt_split_values():
    train, test = tnt_split(24, 3)
    assert train.tolist() == [0, 11, 23]
    assert test.tolist() == [1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22]
    assert tnt_split(24, 6)[0].tolist() == [0, 5, 9, 13, 17, 23]
    train12, _ = tnt_split(24, 12)
    assert train12.tolist() == [0, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23]
    for n in (3, 5, 10, 24, 37):
        train, test = tnt_split(n, 2)
        assert not set(train) & set(test) and train[0] == 0 and train[-1] == n - 1
        assert len(test) == n // 2
    with pytest.raises(ValueError):
        tnt_split(24, 13)
    with pytest.raises(ValueError):
        tnt_split(2, 1)

"""Image folders: formats, orientation, downscaling, and clear errors for bad folders."""

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from splat.errors import InputError
from splat.io.images import (
    UnreadableImageWarning,
    _orient,
    list_images,
    load_image_folder,
    read_image,
    require_views,
)


def assert_one_line(err, *parts):
    msg = str(err.value)
    assert "\n" not in msg
    for p in parts:
        assert p in msg


def rand_u8(*shape):
    return np.random.randint(0, 256, shape, dtype=np.uint8)


def save_png(path, a):
    Image.fromarray(a).save(path)
    return path


def test_8bit_rgb_png_exact(tmp_path):
    a = rand_u8(12, 17, 3)
    im = read_image(save_png(tmp_path / "a.png", a))
    assert im.dtype == np.float32 and im.shape == (12, 17, 3)
    assert np.array_equal(im, a.astype(np.float32) / 255)


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_colour_png_keeps_full_precision(tmp_path, channels):
    a = np.random.randint(0, 65536, (9, 11, channels), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "a.png"), a)  # OpenCV writes BGR(A)
    im = read_image(tmp_path / "a.png")
    rgb = a[..., 2::-1].astype(np.float32) / 65535
    assert im.shape == (9, 11, 3)
    assert np.abs(im - rgb).max() < 1e-6  # far below the 8-bit step of 1/255


def test_16bit_grayscale_png(tmp_path):
    g = np.random.randint(0, 65536, (8, 10), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "g.png"), g)
    im = read_image(tmp_path / "g.png")
    assert im.shape == (8, 10, 3)
    assert np.abs(im - (g.astype(np.float32) / 65535)[..., None]).max() < 1e-6


def test_rgba_drops_alpha_and_grayscale_repeats(tmp_path):
    a = rand_u8(6, 7, 4)
    a[..., 3] = np.random.randint(0, 256, (6, 7))
    im = read_image(save_png(tmp_path / "rgba.png", a))
    assert np.array_equal(im, a[..., :3].astype(np.float32) / 255)
    g = rand_u8(6, 7)
    im = read_image(save_png(tmp_path / "gray.png", g))
    assert im.shape == (6, 7, 3) and np.array_equal(im, np.repeat(g[..., None], 3, 2) / np.float32(255))


def test_palette_png(tmp_path):
    a = rand_u8(5, 6, 3)
    Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE, colors=8).save(tmp_path / "p.png")
    ref = np.asarray(Image.open(tmp_path / "p.png").convert("RGB")) / np.float32(255)
    assert np.array_equal(read_image(tmp_path / "p.png"), ref)


def test_exif_rotated_jpeg_loads_upright(tmp_path):
    upright = np.zeros((40, 24, 3), np.uint8)  # portrait: red top half, blue bottom half
    upright[:20, :, 0] = 255
    upright[20:, :, 2] = 255
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # a camera stores it sideways...
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6  # ...and tags "rotate 90 degrees clockwise to view"
    img.save(tmp_path / "r.jpg", exif=exif, quality=95)
    im = read_image(tmp_path / "r.jpg")
    assert im.shape == (40, 24, 3)
    assert im[5, 12, 0] > 0.9 and im[5, 12, 2] < 0.1
    assert im[35, 12, 2] > 0.9 and im[35, 12, 0] < 0.1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_array_orientation_matches_pillow(orientation):
    a = rand_u8(4, 6, 3)
    img = Image.fromarray(a)
    img.getexif()[0x0112] = orientation
    assert np.array_equal(_orient(a, orientation), np.asarray(ImageOps.exif_transpose(img)))


def test_downscale_by_area(tmp_path):
    a = np.zeros((60, 100), np.uint8)
    a[::2, ::2] = a[1::2, 1::2] = 255  # checkerboard: area averaging by 2 gives grey
    save_png(tmp_path / "c.png", a)
    im = read_image(tmp_path / "c.png", max_side=50)
    assert im.shape == (30, 50, 3)
    assert np.allclose(im, 0.5, atol=1e-6)
    assert read_image(tmp_path / "c.png", max_side=500).shape == (60, 100, 3)  # never upscales


def test_load_folder_keeps_sizes_names_and_scales(tmp_path):
    save_png(tmp_path / "b.PNG", rand_u8(20, 40, 3))
    save_png(tmp_path / "a.png", rand_u8(30, 10, 3))
    Image.fromarray(rand_u8(16, 16, 3)).save(tmp_path / "c.JPEG")
    (tmp_path / "notes.txt").write_text("x")
    save_png(tmp_path / ".hidden.png", rand_u8(4, 4, 3))
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.PNG", "c.JPEG"]
    s = load_image_folder(tmp_path, max_side=20)
    assert s.names == ["a.png", "b.PNG", "c.JPEG"]
    assert [im.shape for im in s.images] == [(20, 7, 3), (10, 20, 3), (16, 16, 3)]
    assert s.original_sizes == [(10, 30), (40, 20), (16, 16)]
    assert s.scales == [0.7, 0.5, 1.0]
    assert s.sizes == [(7, 20), (20, 10), (16, 16)]


def test_missing_empty_and_imageless_folders(tmp_path):
    with pytest.raises(InputError) as e:
        load_image_folder(tmp_path / "nope")
    assert_one_line(e, str(tmp_path / "nope"), "does not exist")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError) as e:
        load_image_folder(tmp_path / "empty")
    assert_one_line(e, str(tmp_path / "empty"), "is empty", ".jpg")
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "readme.txt").write_text("hello")
    with pytest.raises(InputError) as e:
        load_image_folder(tmp_path / "txt")
    assert_one_line(e, str(tmp_path / "txt"), "no .jpg/.png images", "readme.txt")


def test_corrupt_jpeg_among_good_is_skipped_with_warning(tmp_path):
    for i in range(3):
        Image.fromarray(rand_u8(8, 8, 3)).save(tmp_path / f"good{i}.jpg")
    good = (tmp_path / "good0.jpg").read_bytes()
    (tmp_path / "bad.jpg").write_bytes(good[: len(good) // 3])  # truncated JPEG
    with pytest.warns(UnreadableImageWarning, match="bad.jpg") as rec:
        s = load_image_folder(tmp_path)
    assert len(rec) == 1 and "\n" not in str(rec[0].message)
    assert s.names == ["good0.jpg", "good1.jpg", "good2.jpg"] and s.skipped == ["bad.jpg"]


def test_only_unreadable_images(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.warns(UnreadableImageWarning), pytest.raises(InputError) as e:
        load_image_folder(tmp_path)
    assert_one_line(e, str(tmp_path), "none of the 2 images", "a.jpg")
    with pytest.raises(InputError) as e:
        read_image(tmp_path / "a.jpg")
    assert_one_line(e, "a.jpg", "cannot read image")


def test_single_image_loads_but_require_views_refuses(tmp_path):
    save_png(tmp_path / "only.png", rand_u8(5, 5, 3))
    s = load_image_folder(tmp_path)
    assert len(s) == 1
    assert require_views(s, 1) is s
    with pytest.raises(InputError) as e:
        require_views(s)
    assert_one_line(e, f"need at least 2 images, found 1 in {tmp_path}")

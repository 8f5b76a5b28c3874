"""EXIF focal priors: the three sources, orientation, downscaling, nonsense, camera groups, real photos."""

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational as Rational

from splat.io.exif import (
    DIAGONAL_35MM,
    FocalPrior,
    focal_prior,
    focal_prior_or_reason,
    intrinsics_groups,
    read_camera_exif,
    sensor_width_mm,
)
from splat.io.images import UnreadableImageWarning, load_image_folder

SCEAUX = Path(__file__).resolve().parents[2] / "shared" / "data" / "sceaux-castle"  # ../shared, beside

EXIF_IFD = 0x8769
MAKE, MODEL, ORIENTATION = 0x010F, 0x0110, 0x0112
FOCAL_LENGTH, FOCAL_35MM = 0x920A, 0xA405
FOCAL_PLANE_X_RES, FOCAL_PLANE_UNIT = 0xA20E, 0xA210
PIXEL_X, PIXEL_Y = 0xA002, 0xA003


def write_jpeg(path, width=60, height=40, *, orientation=None, make=None, model=None, **sub_tags):
    """A random JPEG of width x height stored pixels with the given IFD0 and Exif sub-IFD tags."""
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))
    exif = img.getexif()
    for tag, value in ((ORIENTATION, orientation), (MAKE, make), (MODEL, model)):
        if value is not None:
            exif[tag] = value
    sub = exif.get_ifd(EXIF_IFD)
    for tag, value in sub_tags.items():
        sub[int(tag[1:], 16)] = value
    img.save(path, exif=exif, quality=90)
    return path


def tags(**kw):
    """Keyword names for write_jpeg's sub-IFD tags: tags(focal=...) -> {'x920A': ...}."""
    names = {
        "focal": FOCAL_LENGTH,
        "f35": FOCAL_35MM,
        "plane_res": FOCAL_PLANE_X_RES,
        "plane_unit": FOCAL_PLANE_UNIT,
        "px": PIXEL_X,
        "py": PIXEL_Y,
    }
    return {f"x{names[k]:04X}": v for k, v in kw.items()}


def diag_focal(f35, w, h):
    return f35 / math.hypot(36, 24) * math.hypot(w, h)


def test_35mm_full_size_and_downscaled(tmp_path):
    p = write_jpeg(tmp_path / "a.jpg", 60, 40, make="Acme", model="Cam 1", **tags(f35=28, focal=4.0))
    prior = focal_prior(p, (60, 40))
    assert prior.focal_px == pytest.approx(28 / DIAGONAL_35MM * math.hypot(60, 40), rel=1e-12)
    assert prior.source == "EXIF FocalLengthIn35mmFilm 28 mm"
    assert prior.camera_key == "Acme|Cam 1|60x40"
    half = focal_prior(p, (30, 20))
    assert half.focal_px == pytest.approx(prior.focal_px / 2, rel=1e-12)
    assert "scaled x0.5" in half.source
    s = load_image_folder(tmp_path, max_side=45)
    assert s.sizes == [(45, 30)]
    assert s.focal_priors[0].focal_px == pytest.approx(prior.focal_px * 45 / 60, rel=1e-12)


@pytest.mark.parametrize("orientation", [6, 8, 5, 3])
def test_orientation_keeps_the_focal_of_the_upright_image(tmp_path, orientation):
    p = write_jpeg(tmp_path / "r.jpg", 60, 40, orientation=orientation, **tags(f35=50))
    s = load_image_folder(tmp_path, max_side=30)
    upright = (20, 30) if orientation >= 5 else (30, 20)
    assert s.sizes == [upright]
    expected = diag_focal(50, 60, 40) / 2
    assert s.focal_priors[0].focal_px == pytest.approx(expected, rel=1e-12)
    assert focal_prior(p, upright).focal_px == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="orientation"):  # the stored, unturned size is not what loads
        focal_prior(p, (30, 20) if orientation >= 5 else (20, 30))


def test_focal_plane_resolution(tmp_path):
    # 6000 px over a 24 mm wide sensor = 250 px/mm = 6350 px/inch (unit 2) = 2500 px/cm (unit 3)
    for unit, res in ((2, Rational(6350)), (3, Rational(2500)), (None, Rational(6350))):
        kw = tags(focal=Rational(35, 2), plane_res=res, px=6000, py=4000)
        if unit is not None:
            kw |= tags(plane_unit=unit)
        p = write_jpeg(tmp_path / "fp.jpg", 300, 200, **kw)  # resized to 1/20 of the recorded 6000 x 4000
        prior = focal_prior(p, (300, 200))
        assert prior.focal_px == pytest.approx(17.5 * 250 / 20, rel=1e-9), unit
        assert "FocalPlaneXResolution (sensor width 24.00 mm)" in prior.source
    p = write_jpeg(tmp_path / "nounit.jpg", 300, 200, **tags(focal=17.5, plane_res=6350, plane_unit=1))
    assert "no usable FocalPlaneXResolution" in focal_prior_or_reason(p, (300, 200))


def test_sensor_table(tmp_path):
    assert sensor_width_mm("NIKON CORPORATION", "NIKON D750") == 35.9
    assert sensor_width_mm("eastman kodak company", "Kodak  Z612 zoom digital camera") == 5.75
    assert sensor_width_mm("Apple", "iPhone 6") == sensor_width_mm("APPLE", "IPHONE 6") == 4.89
    assert sensor_width_mm("Apple", "iPhone 99") is None
    p = write_jpeg(tmp_path / "t.jpg", 80, 60, make="Apple", model="iPhone 6", **tags(focal=Rational(83, 20)))
    prior = focal_prior(p, (80, 60))
    assert prior.focal_px == pytest.approx(4.15 / 4.89 * 80, rel=1e-12)
    assert prior.source == "EXIF FocalLength 4.15 mm + sensor width 4.89 mm (table: Apple iPhone 6)"
    assert prior.camera_key == "Apple|iPhone 6|80x60"


def test_35mm_comes_first_then_plane_then_table(tmp_path):
    both = tags(f35=30, focal=4.15, plane_res=Rational(500), plane_unit=4)
    p = write_jpeg(tmp_path / "a.jpg", 80, 60, make="Apple", model="iPhone 6", **both)
    assert "FocalLengthIn35mmFilm" in focal_prior(p, (80, 60)).source
    plane_and_table = tags(focal=4.15, plane_res=Rational(20), plane_unit=4)  # 80 px / 20 px/mm = 4 mm wide
    p = write_jpeg(tmp_path / "b.jpg", 80, 60, make="Apple", model="iPhone 6", **plane_and_table)
    assert focal_prior(p, (80, 60)).focal_px == pytest.approx(4.15 * 20)


@pytest.mark.parametrize(
    "kw, reason",
    [
        (tags(f35=5), "FocalLengthIn35mmFilm 5 mm is outside 8-1200 mm; no FocalLength"),
        (tags(f35=5000), "outside 8-1200 mm"),
        (tags(f35=0), "no FocalLength"),  # 0 means unknown
        (tags(focal=0), "FocalLength 0 mm is not a lens focal"),
        (tags(focal=Rational(0, 1), f35=0), "not a lens focal"),
        (tags(focal=-3.0), "not a lens focal"),
        (tags(focal=4.0), "not in the sensor table"),
        (tags(focal=4.0, plane_res=Rational(1), plane_unit=4), "sensor width outside 1-60 mm"),  # 80 mm
        (tags(focal=1000.0, plane_res=Rational(20), plane_unit=4), "35 mm equivalent 8653 mm is outside"),
        (tags(f35=35, px=800, py=800), "cropped"),  # a square crop of a 4:3 photo
    ],
)
def test_nonsense_is_rejected_with_a_reason(tmp_path, kw, reason):
    p = write_jpeg(tmp_path / "n.jpg", 80, 60, make="Acme", model="X", **kw)
    assert focal_prior(p, (80, 60)) is None
    got = focal_prior_or_reason(p, (80, 60))
    assert reason in got and "\n" not in got


def test_nonsense_35mm_falls_back_to_the_focal_length(tmp_path):
    p = write_jpeg(tmp_path / "f.jpg", 80, 60, make="Apple", model="iPhone 6", **tags(f35=2, focal=4.15))
    assert focal_prior(p, (80, 60)).source.startswith("EXIF FocalLength 4.15 mm + sensor width")


def test_no_exif(tmp_path):
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "plain.jpg")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "plain.png")
    for name in ("plain.jpg", "plain.png"):
        assert read_camera_exif(tmp_path / name) is None
        assert focal_prior(tmp_path / name, (30, 20)) is None
        assert focal_prior_or_reason(tmp_path / name, (30, 20)) == "no EXIF"
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    assert focal_prior(tmp_path / "broken.jpg", (30, 20)) is None
    with pytest.warns(UnreadableImageWarning):
        s = load_image_folder(tmp_path)
    assert s.focal_priors == [None, None] and s.focal_notes == ["no EXIF", "no EXIF"]


def test_two_cameras_two_groups(tmp_path):
    write_jpeg(tmp_path / "a1.jpg", 60, 40, make="Acme", model="One", **tags(f35=28))
    write_jpeg(tmp_path / "a2.jpg", 60, 40, make="Acme", model="One", orientation=6, **tags(f35=28))
    write_jpeg(tmp_path / "b1.jpg", 60, 40, make="Acme", model="Two", **tags(f35=50))
    write_jpeg(tmp_path / "c1.jpg", 60, 40)  # EXIF without a focal
    write_jpeg(tmp_path / "c2.jpg", 80, 40, make="Other", model="Three")
    write_jpeg(tmp_path / "d1.jpg", 30, 20, make="Acme", model="One", **tags(f35=28))  # same camera, smaller
    s = load_image_folder(tmp_path)
    assert [p is None for p in s.focal_priors] == [False, False, False, True, True, False]
    assert intrinsics_groups(s.focal_priors) == [0, 0, 1, 2, 2, 3]
    assert s.focal_priors[0].focal_px == s.focal_priors[1].focal_px  # portrait: same focal, turned size
    assert intrinsics_groups([]) == []
    assert intrinsics_groups([None, None]) == [0, 0]
    assert intrinsics_groups([FocalPrior(1.0, "x", "k2"), None, FocalPrior(2.0, "y", "k1")]) == [0, 1, 2]


def read_k(path):
    K = np.loadtxt(path)
    assert K.shape == (3, 3)
    return K


def test_sceaux_castle_exif_focal_matches_the_calibration():
    if not (SCEAUX / "K.txt").exists():
        pytest.skip(f"real photos not here: {SCEAUX} (shared data, not in the repository)")
    K = read_k(SCEAUX / "K.txt")
    s = load_image_folder(SCEAUX / "images", max_side=1000)
    assert len(s) == 11
    full = {p.camera_key for p in s.focal_priors}
    assert full == {"EASTMAN KODAK COMPANY|KODAK Z612 ZOOM DIGITAL CAMERA|2832x2128"}
    # K.txt is at full size: its principal point (1416, 1064) is the centre of 2832 x 2128
    assert set(s.original_sizes) == {(2832, 2128)}
    assert K[0, 2] * 2 == 2832 and K[1, 2] * 2 == 2128
    for prior, (w, _) in zip(s.focal_priors, s.sizes):
        fx = K[0, 0] * w / 2832
        assert prior.source.startswith("EXIF FocalLengthIn35mmFilm 35 mm")
        assert abs(prior.focal_px / fx - 1) < 0.02  # measured: -1.39 %
    assert intrinsics_groups(s.focal_priors) == [0] * 11

"""COLMAP models: text <-> binary <-> Cameras round trips, pycolmap agreement, bad input."""

import numpy as np
import pycolmap
import pytest
import torch

from splat.errors import InputError
from splat.io.atomic import atomic_path, atomic_write_text
from splat.io.colmap import check_names, qvec_to_rotmat, read_model, rotmat_to_qvec, write_model


def assert_one_line(err: pytest.ExceptionInfo, *parts: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg
    for p in parts:
        assert p in msg


def _r(x) -> str:
    return repr(float(x))


def write_tracked_text_model(folder, V=3, P=20, rng=None):
    """A consistent text model with an OPENCV camera, 2D points and tracks; returns the truth."""
    rng = rng or np.random.default_rng()
    folder.mkdir(parents=True, exist_ok=True)
    params = [100 + rng.random(), 101 + rng.random(), 32.5, 24.25, *(0.01 * rng.standard_normal(4))]
    (folder / "cameras.txt").write_text("# c\n1 OPENCV 64 48 " + " ".join(map(_r, params)) + "\n")
    qv = rng.standard_normal((V, 4))
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    tv = rng.standard_normal((V, 3))
    xyz, rgb, err = rng.standard_normal((P, 3)), rng.integers(0, 256, (P, 3)), rng.random(P)
    obs = [[] for _ in range(V)]  # per image: (x, y, point id)
    tracks = []
    for p in range(P):
        views = rng.choice(V, size=2, replace=False)
        tracks.append([(int(v) + 1, len(obs[v])) for v in views])
        for v in views:
            obs[v].append((rng.random() * 64, rng.random() * 48, p + 1))
    lines = ["# images"]
    for v in range(V):
        lines.append(" ".join([str(v + 1), *map(_r, qv[v]), *map(_r, tv[v]), "1", f"view_{v}.jpg"]))
        lines.append(" ".join(f"{_r(x)} {_r(y)} {i}" for x, y, i in obs[v]))
    (folder / "images.txt").write_text("\n".join(lines) + "\n")
    lines = [
        " ".join(
            [str(p + 1), *map(_r, xyz[p]), *map(str, rgb[p]), _r(err[p])] + [f"{a} {b}" for a, b in tracks[p]]
        )
        for p in range(P)
    ]
    (folder / "points3D.txt").write_text("\n".join(lines) + "\n")
    return dict(params=params, qvec=qv, tvec=tv, xyz=xyz, rgb=rgb, err=err, tracks=tracks, obs=obs)


def test_quaternion_helpers_round_trip_and_use_wxyz():
    q = np.array([np.cos(0.3), 0, 0, np.sin(0.3)])  # rotation by 0.6 rad about z, wxyz
    R = qvec_to_rotmat(q)
    assert np.allclose(R[:2, :2], [[np.cos(0.6), -np.sin(0.6)], [np.sin(0.6), np.cos(0.6)]], atol=1e-15)
    qs = np.random.default_rng().standard_normal((50, 4))
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    back = rotmat_to_qvec(qvec_to_rotmat(qs))
    assert np.all(back[:, 0] >= 0)
    assert np.allclose(back, qs * np.sign(qs[:, :1]), atol=1e-14)


@pytest.mark.parametrize("binary", [False, True])
def test_write_read_round_trip(tmp_path, random_cameras, binary):
    cams = random_cameras(7)
    pts = np.random.randn(40, 3) * 5
    cols = np.random.randint(0, 256, (40, 3), dtype=np.uint8)
    write_model(tmp_path, cams, pts, cols, binary=binary)
    ext = ".bin" if binary else ".txt"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f + ext for f in ("cameras", "images", "points3D")
    )
    m = read_model(tmp_path)
    assert m.cameras.names == cams.names
    assert m.cameras.K.dtype == torch.float64 and m.cameras.w2c.dtype == torch.float64
    assert torch.equal(m.cameras.K, cams.K)
    assert torch.allclose(m.cameras.w2c, cams.w2c, atol=1e-13, rtol=0)
    assert torch.equal(m.cameras.width, cams.width) and torch.equal(m.cameras.height, cams.height)
    assert np.array_equal(m.points, pts) and np.array_equal(m.colors, cols)
    assert m.points.dtype == np.float64 and m.colors.dtype == np.uint8
    assert [im.id for im in m.raw_images] == list(range(1, 8))
    assert [im.camera_id for im in m.raw_images] == list(range(1, 8))
    assert all(c.model == "PINHOLE" for c in m.raw_cameras.values())
    m.cameras.validate()


def test_text_and_binary_read_back_bit_identical(tmp_path, random_cameras):
    cams = random_cameras(5)
    pts, errs = np.random.randn(30, 3), np.random.rand(30)
    write_model(tmp_path / "t", cams, pts, binary=False, point_errors=errs)
    write_model(tmp_path / "b", cams, pts, binary=True, point_errors=errs)
    t, b = read_model(tmp_path / "t"), read_model(tmp_path / "b")
    assert torch.equal(t.cameras.w2c, b.cameras.w2c) and torch.equal(t.cameras.K, b.cameras.K)
    for field in ("points", "colors", "point_errors", "point_ids"):
        assert np.array_equal(getattr(t, field), getattr(b, field))
    for it, ib in zip(t.raw_images, b.raw_images):
        assert np.array_equal(it.qvec, ib.qvec) and np.array_equal(it.tvec, ib.tvec)
    # and once more through the other format: still the same bits
    write_model(tmp_path / "t2", b.cameras, b.points, b.colors, binary=False, point_errors=b.point_errors)
    write_model(tmp_path / "b2", t.cameras, t.points, t.colors, binary=True, point_errors=t.point_errors)
    assert torch.equal(read_model(tmp_path / "t2").cameras.w2c, read_model(tmp_path / "b2").cameras.w2c)
    assert np.array_equal(read_model(tmp_path / "t2").points, pts)


def test_reads_tracks_distortion_and_agrees_with_pycolmap_binary(tmp_path):
    truth = write_tracked_text_model(tmp_path / "txt")
    m = read_model(tmp_path / "txt")
    assert m.cameras.names == ["view_0.jpg", "view_1.jpg", "view_2.jpg"]
    p = truth["params"]
    assert torch.equal(
        m.cameras.K[0], torch.tensor([[p[0], 0, p[2]], [0, p[1], p[3]], [0, 0, 1]], dtype=torch.float64)
    )
    assert np.array_equal(m.distortion["view_1.jpg"], p[4:]) and m.camera_models["view_1.jpg"] == "OPENCV"
    assert np.array_equal(m.points, truth["xyz"]) and np.array_equal(m.colors, truth["rgb"])
    assert np.array_equal(m.point_errors, truth["err"])
    assert [t.tolist() for t in m.tracks] == [[[a - 1, b] for a, b in tr] for tr in truth["tracks"]]
    for v, im in enumerate(m.raw_images):
        assert np.array_equal(im.xys, np.array([o[:2] for o in truth["obs"][v]]).reshape(-1, 2))
    R = qvec_to_rotmat(truth["qvec"])
    assert np.allclose(m.cameras.w2c[:, :3, :3].numpy(), R, atol=1e-15)

    rec = pycolmap.Reconstruction(str(tmp_path / "txt"))  # independent reader and binary writer
    (tmp_path / "bin").mkdir()
    rec.write_binary(str(tmp_path / "bin"))
    mb = read_model(tmp_path / "bin")
    assert mb.cameras.names == m.cameras.names
    assert torch.equal(mb.cameras.K, m.cameras.K)
    assert torch.allclose(mb.cameras.w2c, m.cameras.w2c, atol=1e-12, rtol=0)
    order = np.argsort(mb.point_ids)
    assert np.array_equal(mb.points[order], m.points) and np.array_equal(mb.colors[order], m.colors)
    assert sorted(map(sorted, (t.tolist() for t in mb.tracks))) == sorted(
        map(sorted, (t.tolist() for t in m.tracks))
    )
    assert np.array_equal(mb.distortion["view_2.jpg"], m.distortion["view_2.jpg"])


@pytest.mark.parametrize("binary", [False, True])
def test_pycolmap_reads_our_model(tmp_path, random_cameras, binary):
    cams = random_cameras(6)
    pts = np.random.randn(25, 3)
    write_model(tmp_path, cams, pts, binary=binary)
    rec = pycolmap.Reconstruction(str(tmp_path))
    assert len(rec.images) == 6 and len(rec.points3D) == 25
    for image_id, image in rec.images.items():
        v = cams.names.index(image.name)
        assert image_id == v + 1
        pose = image.cam_from_world()
        assert np.allclose(pose.matrix(), cams.w2c[v, :3].numpy(), atol=1e-9, rtol=0)
        cam = rec.cameras[image.camera_id]
        assert cam.model_name == "PINHOLE" and (cam.width, cam.height) == (64, 48)
        assert np.allclose(cam.calibration_matrix(), cams.K[v].numpy(), atol=1e-12, rtol=0)
    got = np.array([rec.points3D[i].xyz for i in range(1, 26)])
    assert np.array_equal(got, pts)


@pytest.mark.parametrize("model, params, fx, fy, cx, cy", [
    ("SIMPLE_PINHOLE", [50, 31, 23], 50, 50, 31, 23),
    ("SIMPLE_RADIAL", [50, 31, 23, 0.1], 50, 50, 31, 23),
    ("RADIAL", [50, 31, 23, 0.1, 0.2], 50, 50, 31, 23),
    ("PINHOLE", [50, 52, 31, 23], 50, 52, 31, 23),
])  # fmt: skip
def test_camera_models_give_pinhole_K(tmp_path, model, params, fx, fy, cx, cy):
    (tmp_path / "cameras.txt").write_text(f"3 {model} 64 48 " + " ".join(map(str, params)) + "\n")
    (tmp_path / "images.txt").write_text("7 1 0 0 0 0 0 0 3 a.png\n\n")
    m = read_model(tmp_path)
    assert m.cameras.K[0].tolist() == [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
    assert m.distortion["a.png"].tolist() == [
        float(x) for x in params[len(params) - len(m.distortion["a.png"]) :]
    ]
    assert len(m.points) == 0  # points3D is optional


def test_fisheye_camera_is_refused_with_a_fix(tmp_path):
    (tmp_path / "cameras.txt").write_text("1 OPENCV_FISHEYE 64 48 50 50 32 24 0 0 0 0\n")
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 1 a.png\n\n")
    with pytest.raises(InputError) as e:
        read_model(tmp_path)
    assert_one_line(e, "OPENCV_FISHEYE", "cameras.txt", "undistort")


def test_binary_wins_and_stale_files_of_the_other_format_are_removed(tmp_path, random_cameras):
    a, b = random_cameras(2), random_cameras(3)
    write_model(tmp_path, a, binary=True)
    write_model(tmp_path, b, binary=False)
    assert not list(tmp_path.glob("*.bin"))
    assert read_model(tmp_path).cameras.names == b.names


def test_corrupt_files_raise_input_error_naming_the_file(tmp_path, random_cameras):
    write_model(tmp_path / "b", random_cameras(3), np.random.randn(5, 3), binary=True)
    data = (tmp_path / "b" / "images.bin").read_bytes()
    (tmp_path / "b" / "images.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as e:
        read_model(tmp_path / "b")
    assert_one_line(e, str(tmp_path / "b" / "images.bin"))

    write_model(tmp_path / "t", random_cameras(2), binary=False)
    (tmp_path / "t" / "cameras.txt").write_text("1 PINHOLE sixty-four 48 1 1 1 1\n")
    with pytest.raises(InputError) as e:
        read_model(tmp_path / "t")
    assert_one_line(e, str(tmp_path / "t" / "cameras.txt"), "cannot read")

    (tmp_path / "t" / "cameras.txt").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError) as e:
        read_model(tmp_path / "t")
    assert_one_line(e, "cameras.txt")


def test_missing_model_raises_input_error(tmp_path):
    with pytest.raises(InputError) as e:
        read_model(tmp_path)
    assert_one_line(e, str(tmp_path), "sparse/0")


def test_check_names(tmp_path, random_cameras):
    cams = random_cameras(4)
    write_model(tmp_path, cams)
    m = read_model(tmp_path)
    assert check_names(m, ["img_003.png", "img_001.png"]) == [3, 1]  # extra model views are fine
    with pytest.raises(InputError) as e:
        check_names(m, ["img_000.png", "other.jpg", "img_9.png"])
    assert_one_line(e, "other.jpg", "img_9.png", "2 of 3", str(tmp_path))
    assert "img_000.png" not in str(e.value)


def test_atomic_path_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.txt"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and len(list(target.parent.iterdir())) == 1


def test_image_names_with_spaces_survive_our_text_format(tmp_path, random_cameras):
    cams = random_cameras(2)
    cams.names = ["my photo 1.jpg", "sub dir/b.jpg"]
    write_model(tmp_path, cams)
    assert read_model(tmp_path).cameras.names == cams.names

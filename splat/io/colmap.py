"""COLMAP sparse models (cameras, images, points3D) in text and binary, to and from `Cameras`.

Reading keeps every camera model's parameters (distortion included) in `ColmapModel.raw_cameras`
and `ColmapModel.distortion`, but builds pinhole intrinsics K from f/fx/fy/cx/cy only.
Writing always uses one PINHOLE camera per image, ids 1..V in the order of `cameras`
(skew in K is dropped: PINHOLE cannot hold it).

Poses: COLMAP stores world-to-camera as qvec (w, x, y, z) + tvec, the same OpenCV convention as
`Cameras.w2c`. Floats are written with repr() (shortest exact decimal), so text and binary files
of the same cameras read back bit-identical; a pose passing through a quaternion (matrix -> qvec ->
matrix) agrees to ~1e-15. Principal points are kept as COLMAP writes them (pixel centres at +0.5).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from splat.errors import InputError
from splat.geometry.se3 import quat_wxyz_to_rotmat, rotmat_to_quat_wxyz
from splat.io.atomic import atomic_path, atomic_write_text
from splat.types import Cameras

# name -> (binary model id, number of params); from COLMAP's camera model list.
CAMERA_MODELS: dict[str, tuple[int, int]] = {
    "SIMPLE_PINHOLE": (0, 3),
    "PINHOLE": (1, 4),
    "SIMPLE_RADIAL": (2, 4),
    "RADIAL": (3, 5),
    "OPENCV": (4, 8),
    "OPENCV_FISHEYE": (5, 8),
    "FULL_OPENCV": (6, 12),
    "FOV": (7, 5),
    "SIMPLE_RADIAL_FISHEYE": (8, 4),
    "RADIAL_FISHEYE": (9, 5),
    "THIN_PRISM_FISHEYE": (10, 12),
    "RAD_TAN_THIN_PRISM_FISHEYE": (11, 16),
}
MODEL_BY_ID = {mid: name for name, (mid, _) in CAMERA_MODELS.items()}
# Models we turn into pinhole K: name -> (index of fx, index of fy, index of cx); cy follows cx.
PINHOLE_LIKE = {"SIMPLE_PINHOLE": (0, 0, 1), "PINHOLE": (0, 1, 2), "SIMPLE_RADIAL": (0, 0, 1),
                "RADIAL": (0, 0, 1), "OPENCV": (0, 1, 2)}  # fmt: skip
FILES = ("cameras", "images", "points3D")
CAMERAS_HEADER = [
    "# Camera list with one line of data per camera:",
    "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
]
IMAGES_HEADER = [
    "# Image list with two lines of data per image:",
    "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
    "#   POINTS2D[] as (X, Y, POINT3D_ID)",
]
POINTS_HEADER = [
    "# 3D point list with one line of data per point:",
    "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
]


@dataclass
class ColmapCamera:
    """One line of cameras.txt: params as COLMAP orders them for `model`."""

    id: int
    model: str
    width: int
    height: int
    params: np.ndarray  # (n,) float64


@dataclass
class ColmapImage:
    """One image entry: world-to-camera qvec (w,x,y,z) + tvec, and its 2D points."""

    id: int
    qvec: np.ndarray  # (4,) float64
    tvec: np.ndarray  # (3,) float64
    camera_id: int
    name: str
    xys: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (M, 2) float64
    point3d_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (M,), -1 = none


@dataclass
class ColmapModel:
    """A COLMAP sparse model, views in image-id order.

    Attributes:
        cameras: V pinhole views (float64), names from images.txt.
        points: (P, 3) float64 point positions.
        colors: (P, 3) uint8 RGB.
        point_errors: (P,) float64 reprojection errors.
        point_ids: (P,) int64 COLMAP point ids.
        tracks: P arrays (L, 2) int64 of (view index or -1, point2D index).
        distortion: image name -> distortion params after f/cx/cy (empty for pinhole models).
        camera_models: image name -> COLMAP camera model name.
        raw_cameras: camera id -> the camera entry as stored.
        raw_images: V image entries as stored, in view order.
        path: the folder read.
    """

    cameras: Cameras
    points: np.ndarray
    colors: np.ndarray
    point_errors: np.ndarray
    point_ids: np.ndarray
    tracks: list[np.ndarray]
    distortion: dict[str, np.ndarray]
    camera_models: dict[str, str]
    raw_cameras: dict[int, ColmapCamera]
    raw_images: list[ColmapImage]
    path: Path


# ---------------------------------------------------------------- rotations


def qvec_to_rotmat(qvec: np.ndarray) -> np.ndarray:
    """(..., 4) wxyz quaternions (normalised here) -> (..., 3, 3) float64 rotations."""
    return quat_wxyz_to_rotmat(torch.as_tensor(np.asarray(qvec, np.float64))).numpy()


def rotmat_to_qvec(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 4) float64 wxyz unit quaternions with w >= 0."""
    return rotmat_to_quat_wxyz(torch.as_tensor(np.asarray(R, np.float64))).numpy()


# ---------------------------------------------------------------- text format


def _data_lines(path: Path) -> list[str]:
    """All lines of a text file with comments removed; blank lines kept (images.txt needs them)."""
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if not ln.startswith("#")]


def _read_cameras_text(path: Path) -> dict[int, ColmapCamera]:
    cams = {}
    for ln in _data_lines(path):
        if not ln:
            continue
        tok = ln.split()
        cams[int(tok[0])] = ColmapCamera(
            int(tok[0]), tok[1], int(tok[2]), int(tok[3]), np.array(tok[4:], float)
        )
    return cams


def _read_images_text(path: Path) -> list[ColmapImage]:
    lines, images, i = _data_lines(path), [], 0
    while i < len(lines):
        if not lines[i]:  # blank lines between entries; the line after an image line is its points
            i += 1
            continue
        tok = lines[i].split(maxsplit=9)
        if len(tok) < 10:
            raise ValueError(f"image line {tok[0]} has {len(tok)} fields, expected 10")
        pts = np.array(lines[i + 1].split() if i + 1 < len(lines) else [], float).reshape(-1, 3)
        v = np.array(tok[1:8], float)
        images.append(
            ColmapImage(
                int(tok[0]), v[:4], v[4:], int(tok[8]), tok[9], pts[:, :2], pts[:, 2].astype(np.int64)
            )
        )
        i += 2
    return images


def _read_points_text(path: Path) -> dict:
    ids, xyz, rgb, err, tracks = [], [], [], [], []
    for ln in _data_lines(path):
        if not ln:
            continue
        tok = ln.split()
        ids.append(int(tok[0]))
        xyz.append([float(t) for t in tok[1:4]])
        rgb.append([int(t) for t in tok[4:7]])
        err.append(float(tok[7]))
        tracks.append(np.array(tok[8:], np.int64).reshape(-1, 2))
    return _points_dict(ids, xyz, rgb, err, tracks)


def _points_dict(ids, xyz, rgb, err, tracks) -> dict:
    return dict(
        point_ids=np.array(ids, np.int64),
        points=np.array(xyz, np.float64).reshape(-1, 3),
        colors=np.array(rgb, np.uint8).reshape(-1, 3),
        point_errors=np.array(err, np.float64),
        tracks=tracks,
    )


def _f(x) -> str:
    return repr(float(x))


def _write_text(folder: Path, cams: list[ColmapCamera], images: list[ColmapImage], pts: dict) -> None:
    lines = [*CAMERAS_HEADER, f"# Number of cameras: {len(cams)}"]
    lines += [" ".join([str(c.id), c.model, str(c.width), str(c.height), *map(_f, c.params)]) for c in cams]
    atomic_write_text(folder / "cameras.txt", "\n".join(lines) + "\n")

    n_obs = sum(len(im.xys) for im in images)
    mean_obs = n_obs / max(len(images), 1)
    lines = [*IMAGES_HEADER, f"# Number of images: {len(images)}, mean observations per image: {mean_obs}"]
    for im in images:
        lines.append(" ".join([str(im.id), *map(_f, im.qvec), *map(_f, im.tvec), str(im.camera_id), im.name]))
        lines.append(" ".join(f"{_f(x)} {_f(y)} {int(p)}" for (x, y), p in zip(im.xys, im.point3d_ids)))
    atomic_write_text(folder / "images.txt", "\n".join(lines) + "\n")

    P = len(pts["point_ids"])
    mean_track = sum(len(t) for t in pts["tracks"]) / max(P, 1)
    lines = [*POINTS_HEADER, f"# Number of points: {P}, mean track length: {mean_track}"]
    for i in range(P):
        track = " ".join(f"{a} {b}" for a, b in pts["tracks"][i])
        fields = [str(pts["point_ids"][i]), *map(_f, pts["points"][i]), *map(str, pts["colors"][i])]
        lines.append(" ".join([*fields, _f(pts["point_errors"][i]), track]).rstrip())
    atomic_write_text(folder / "points3D.txt", "\n".join(lines) + "\n")


# ---------------------------------------------------------------- binary format


class _Reader:
    """Little-endian cursor over a byte string."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def read(self, fmt: str) -> tuple:
        out = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return out

    def array(self, dtype, count: int) -> np.ndarray:
        dtype = np.dtype(dtype)
        if self.pos + dtype.itemsize * count > len(self.data):
            raise ValueError("file ends early")
        out = np.frombuffer(self.data, dtype, count, self.pos).copy()
        self.pos += dtype.itemsize * count
        return out

    def name(self) -> str:
        end = self.data.index(b"\0", self.pos)
        out = self.data[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return out

    def done(self) -> None:
        if self.pos != len(self.data):
            raise ValueError(f"{len(self.data) - self.pos} unexpected bytes at the end")


def _read_cameras_bin(path: Path) -> dict[int, ColmapCamera]:
    r, cams = _Reader(path.read_bytes()), {}
    for _ in range(r.read("Q")[0]):
        cid, mid, w, h = r.read("iiQQ")
        if mid not in MODEL_BY_ID:
            raise ValueError(f"unknown camera model id {mid}")
        model = MODEL_BY_ID[mid]
        cams[cid] = ColmapCamera(cid, model, w, h, r.array("<f8", CAMERA_MODELS[model][1]))
    r.done()
    return cams


_POINT2D = np.dtype([("xy", "<f8", 2), ("id", "<i8")])


def _read_images_bin(path: Path) -> list[ColmapImage]:
    r, images = _Reader(path.read_bytes()), []
    for _ in range(r.read("Q")[0]):
        iid, *v, cid = r.read("i7di")
        name = r.name()
        pts = r.array(_POINT2D, r.read("Q")[0])
        images.append(ColmapImage(iid, np.array(v[:4]), np.array(v[4:]), cid, name, pts["xy"], pts["id"]))
    r.done()
    return images


def _read_points_bin(path: Path) -> dict:
    r = _Reader(path.read_bytes())
    ids, xyz, rgb, err, tracks = [], [], [], [], []
    for _ in range(r.read("Q")[0]):
        pid, x, y, z, cr, cg, cb, e, n = r.read("Q3d3BdQ")
        ids.append(pid), xyz.append((x, y, z)), rgb.append((cr, cg, cb)), err.append(e)
        tracks.append(r.array("<i4", 2 * n).astype(np.int64).reshape(-1, 2))
    r.done()
    return _points_dict(ids, xyz, rgb, err, tracks)


def _write_bin(folder: Path, cams: list[ColmapCamera], images: list[ColmapImage], pts: dict) -> None:
    out = [struct.pack("<Q", len(cams))]
    for c in cams:
        out += [
            struct.pack("<iiQQ", c.id, CAMERA_MODELS[c.model][0], c.width, c.height),
            c.params.astype("<f8").tobytes(),
        ]
    _write_bytes(folder / "cameras.bin", out)

    out = [struct.pack("<Q", len(images))]
    for im in images:
        out.append(
            struct.pack("<i7di", im.id, *im.qvec, *im.tvec, im.camera_id) + im.name.encode("utf-8") + b"\0"
        )
        pts2d = np.zeros(len(im.xys), _POINT2D)
        pts2d["xy"], pts2d["id"] = im.xys, im.point3d_ids
        out += [struct.pack("<Q", len(pts2d)), pts2d.tobytes()]
    _write_bytes(folder / "images.bin", out)

    out = [struct.pack("<Q", len(pts["point_ids"]))]
    for i, pid in enumerate(pts["point_ids"]):
        track = np.asarray(pts["tracks"][i], "<i4").reshape(-1)
        head = struct.pack(
            "<Q3d3BdQ", pid, *pts["points"][i], *pts["colors"][i], pts["point_errors"][i], len(track) // 2
        )
        out += [head, track.tobytes()]
    _write_bytes(folder / "points3D.bin", out)


def _write_bytes(path: Path, chunks: list[bytes]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"".join(chunks))


# ---------------------------------------------------------------- public API


def find_model_files(folder: str | os.PathLike) -> tuple[Path, str]:
    """(folder, ".bin" or ".txt") of the COLMAP model in `folder`; binary wins when both exist."""
    folder = Path(folder)
    for ext in (".bin", ".txt"):
        if (folder / f"cameras{ext}").is_file() and (folder / f"images{ext}").is_file():
            return folder, ext
    raise InputError(
        f"no COLMAP model in {folder}: expected cameras and images (.bin or .txt); pass the sparse/0 folder"
    )


def _parse(path: Path, reader):
    try:
        return reader(path)
    except (ValueError, IndexError, KeyError, struct.error, UnicodeDecodeError, OverflowError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise InputError(
            f"cannot read COLMAP file {path}: {reason}; re-export the model with COLMAP"
        ) from None


def read_model(folder: str | os.PathLike) -> ColmapModel:
    """Read a COLMAP model (text or binary, autodetected) into pinhole `Cameras` plus points.

    points3D may be missing (no points). Views are ordered by image id.
    """
    folder, ext = find_model_files(folder)
    text = ext == ".txt"
    cams = _parse(folder / f"cameras{ext}", _read_cameras_text if text else _read_cameras_bin)
    images = _parse(folder / f"images{ext}", _read_images_text if text else _read_images_bin)
    pts_path = folder / f"points3D{ext}"
    pts = _points_dict([], [], [], [], [])
    if pts_path.exists():
        pts = _parse(pts_path, _read_points_text if text else _read_points_bin)
    images = sorted(images, key=lambda im: im.id)
    return _build_model(folder, ext, cams, images, pts)


def _build_model(folder, ext, cams, images, pts) -> ColmapModel:
    V = len(images)
    K, w2c = np.zeros((V, 3, 3)), np.tile(np.eye(4), (V, 1, 1))
    sizes, distortion, models = np.zeros((V, 2), np.int64), {}, {}
    if V:
        w2c[:, :3, :3] = qvec_to_rotmat(np.stack([im.qvec for im in images]))
    for v, im in enumerate(images):
        cam = cams.get(im.camera_id)
        if cam is None:
            raise InputError(
                f"cannot read COLMAP file {folder / ('images' + ext)}: image {im.name} uses missing camera "
                f"{im.camera_id}; re-export the model with COLMAP"
            )
        if cam.model not in PINHOLE_LIKE:
            raise InputError(
                f"camera {cam.id} in {folder / ('cameras' + ext)} uses {cam.model}, which is not supported; "
                "undistort the images first (colmap image_undistorter) or use PINHOLE/OPENCV cameras"
            )
        ifx, ify, icx = PINHOLE_LIKE[cam.model]
        p = cam.params
        K[v] = [[p[ifx], 0, p[icx]], [0, p[ify], p[icx + 1]], [0, 0, 1]]
        w2c[v, :3, 3] = im.tvec
        sizes[v] = cam.width, cam.height
        distortion[im.name], models[im.name] = p[icx + 2 :].copy(), cam.model
    cameras = Cameras(
        torch.from_numpy(K), torch.from_numpy(w2c), sizes[:, 0], sizes[:, 1], [im.name for im in images]
    )
    view_of = {im.id: v for v, im in enumerate(images)}
    tracks = [
        np.stack([[view_of.get(int(i), -1) for i in t[:, 0]], t[:, 1]], -1).reshape(-1, 2)
        for t in pts["tracks"]
    ]
    return ColmapModel(
        cameras=cameras, points=pts["points"], colors=pts["colors"], point_errors=pts["point_errors"],
        point_ids=pts["point_ids"], tracks=tracks, distortion=distortion, camera_models=models,
        raw_cameras=cams, raw_images=images, path=folder,
    )  # fmt: skip


def write_model(
    folder: str | os.PathLike,
    cameras: Cameras,
    points=None,
    colors=None,
    binary: bool = False,
    *,
    point_errors=None,
) -> Path:
    """Write `cameras` (one PINHOLE camera each, ids 1..V) and optional points as a COLMAP model.

    Args:
        folder: output folder (created); each file is written atomically, and the other format's
            cameras/images/points3D files there are removed so they cannot shadow the new ones.
        cameras: V views; names become image names.
        points: (P, 3) positions (numpy or torch) or None for an empty points3D file.
        colors: (P, 3) uint8 RGB, or floats in [0, 1]; grey when None.
        binary: write .bin instead of .txt.
        point_errors: (P,) reprojection errors; 0 when None.
    Returns:
        the folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    K = cameras.K.detach().cpu().double().numpy()
    w2c = cameras.w2c.detach().cpu().double().numpy()
    width, height = cameras.width.cpu().tolist(), cameras.height.cpu().tolist()
    cams = [
        ColmapCamera(v + 1, "PINHOLE", width[v], height[v], K[v, [0, 1, 0, 1], [0, 1, 2, 2]])
        for v in range(len(K))
    ]
    qvecs = rotmat_to_qvec(w2c[:, :3, :3]) if len(K) else np.zeros((0, 4))
    images = [ColmapImage(v + 1, qvecs[v], w2c[v, :3, 3], v + 1, n) for v, n in enumerate(cameras.names)]
    pts = _points_for_writing(points, colors, point_errors)
    (_write_bin if binary else _write_text)(folder, cams, images, pts)
    for name in FILES:
        (folder / (name + (".txt" if binary else ".bin"))).unlink(missing_ok=True)
    return folder


def _as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _points_for_writing(points, colors, errors) -> dict:
    xyz = np.zeros((0, 3)) if points is None else _as_numpy(points).astype(np.float64).reshape(-1, 3)
    P = len(xyz)
    if colors is None:
        rgb = np.full((P, 3), 128, np.uint8)
    else:
        rgb = _as_numpy(colors).reshape(P, 3)
        if rgb.dtype != np.uint8:
            rgb = np.clip(np.round(rgb.astype(np.float64) * 255), 0, 255).astype(np.uint8)
    err = np.zeros(P) if errors is None else _as_numpy(errors).astype(np.float64).reshape(P)
    return _points_dict(np.arange(1, P + 1), xyz, rgb, err, [np.zeros((0, 2), np.int64)] * P)


def check_names(model: ColmapModel, image_names: list[str]) -> list[int]:
    """Index into `model.cameras` for each image name (exact match, else unique basename match).

    Raises InputError listing the images the model has no pose for. Model views without an image
    are allowed (they are simply not selected).
    """
    names = model.cameras.names
    exact = {n: i for i, n in enumerate(names)}
    base: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        base.setdefault(Path(n).name, []).append(i)
    index, missing = [], []
    for n in image_names:
        hit = exact.get(n)
        if hit is None and len(base.get(Path(n).name, [])) == 1:
            hit = base[Path(n).name][0]
        (missing.append(n) if hit is None else index.append(hit))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(
            f"COLMAP model {model.path} has no pose for {len(missing)} of {len(image_names)} images "
            f"({shown}); use the model made from these images or remove those images"
        )
    return index

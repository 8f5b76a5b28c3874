"""Sparse SfM points from known cameras with pycolmap: the input of the standard 3DGS start."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pycolmap

from splat.io.colmap import read_model
from splat.types import Cameras


def triangulate_images(images: list[np.ndarray], cameras: Cameras) -> tuple[np.ndarray, np.ndarray]:
    """triangulate_known_poses on images in memory: (H,W,3) float [0,1] or uint8, one per camera.

    They are written as PNG (lossless, so pycolmap sees exactly these pixels) into a temp folder."""
    import cv2

    from splat.io.images import to_uint8

    names = [f"{k:05d}_{Path(name).stem}.png" for k, name in enumerate(cameras.names)]
    with tempfile.TemporaryDirectory() as tmp:
        for image, name in zip(images, names):
            cv2.imwrite(str(Path(tmp) / name), cv2.cvtColor(to_uint8(np.asarray(image)), cv2.COLOR_RGB2BGR))
        return triangulate_known_poses(tmp, replace(cameras, names=names))


def triangulate_known_poses(image_dir: str | Path, cameras: Cameras) -> tuple[np.ndarray, np.ndarray]:
    """SIFT features, exhaustive matching and triangulation with pycolmap, poses held fixed.

    Args:
        image_dir: folder holding the images named by `cameras.names`, at the size `cameras` says.
        cameras: V posed views (K, w2c).
    Returns:
        points (P,3) float64 and colours (P,3) uint8.
    """
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        db = tmp / "database.db"
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = "PINHOLE"
        pycolmap.extract_features(
            db,
            image_dir,
            image_names=list(cameras.names),
            camera_mode=pycolmap.CameraMode.PER_IMAGE,
            reader_options=reader,
            device=pycolmap.Device.cpu,
        )
        pycolmap.match_exhaustive(db, device=pycolmap.Device.cpu)
        recon = _known_reconstruction(db, cameras)
        out = tmp / "triangulated"
        out.mkdir()
        pycolmap.triangulate_points(recon, db, image_dir, out)
        model = read_model(out)
        return model.points, model.colors


def _known_reconstruction(db: Path, cameras: Cameras) -> pycolmap.Reconstruction:
    """A reconstruction with the given poses, using the database's own camera and image ids."""
    recon = pycolmap.Reconstruction()
    with pycolmap.Database.open(db) as database:
        db_images = database.read_all_images()
    for db_image in db_images:
        v = cameras.index(db_image.name)
        fx, fy, cx, cy = (float(cameras.K[v, a, b]) for a, b in [(0, 0), (1, 1), (0, 2), (1, 2)])
        camera = pycolmap.Camera(
            model="PINHOLE",
            width=int(cameras.width[v]),
            height=int(cameras.height[v]),
            params=[fx, fy, cx, cy],
            camera_id=db_image.camera_id,
        )
        recon.add_camera_with_trivial_rig(camera)
        w2c = cameras.w2c[v].double().numpy()
        pose = pycolmap.Rigid3d(pycolmap.Rotation3d(w2c[:3, :3]), w2c[:3, 3])
        image = pycolmap.Image(name=db_image.name, camera_id=db_image.camera_id, image_id=db_image.image_id)
        recon.add_image_with_trivial_frame(image, pose)
    return recon

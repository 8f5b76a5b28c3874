"""Incremental structure-from-motion with pycolmap: the method for larger view sets (and the
reference on small ones).

Images are written losslessly to a work folder, SIFT is extracted with one shared SIMPLE_PINHOLE
camera (principal point at the image centre, as in our solver), the view graph's pairs are matched
(every pair for small sets; for large ones name-order neighbours at doubling strides and neighbours under
a global image descriptor, splat.match.graph), and the largest model is kept. Views outside it are
reported as unregistered.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from splat.geometry.lens import undistort_pixels
from splat.match.graph import select_pairs
from splat.poses.tracks import Tracks
from splat.poses.verify import tracks_from_reconstruction
from splat.progress import bar


@dataclass
class ColmapResult:
    K: np.ndarray  # (V,3,3)
    w2c: np.ndarray  # (V,4,4), identity for unregistered views
    registered: np.ndarray  # (V,) bool
    points: np.ndarray  # (P,3)
    colors: np.ndarray  # (P,3) float32 in [0,1]
    diagnostics: dict = field(default_factory=dict)
    tracks: Tracks | None = None  # observations of the points, pinhole pixels (for the verification)


def _write_images(
    images: list[np.ndarray], names: list[str], folder: Path, groups: list[int] | None = None
) -> list[str]:
    """PNG files (names relative to folder); with groups, one subfolder (one COLMAP camera) per group."""
    files = []
    for k, (im, name) in enumerate(zip(images, names)):
        fname = f"{k:05d}_{'_'.join(Path(name).stem.split())}.png"  # no spaces: the pair list splits on them
        if groups is not None:
            fname = f"camera{groups[k]}/{fname}"
            (folder / fname).parent.mkdir(exist_ok=True)
        u8 = im if im.dtype == np.uint8 else (np.clip(im, 0, 1) * 255 + 0.5).astype(np.uint8)
        cv2.imwrite(str(folder / fname), cv2.cvtColor(u8, cv2.COLOR_RGB2BGR))
        files.append(fname)
    return files


def _camera_groups(images: list[np.ndarray], focals: np.ndarray) -> list[int]:
    """One group per distinct (known focal, image size)."""
    keys = [(round(float(f), 6), im.shape[:2]) for f, im in zip(focals, images)]
    first = {k: i for i, k in reversed(list(enumerate(keys)))}
    order = {k: g for g, k in enumerate(sorted(first, key=first.get))}
    return [order[k] for k in keys]


def _set_known_focals(db: Path, files: list[str], focals: np.ndarray) -> None:
    """Give each camera of the database its images' known focal (a prior that BA refines)."""
    import pycolmap

    focal_of = {Path(f).parent.name: float(focal) for f, focal in zip(files, focals)}
    database = pycolmap.Database.open(str(db))
    try:
        for image in database.read_all_images():
            camera = database.read_camera(image.camera_id)
            params = np.array(camera.params)
            params[0] = focal_of[Path(image.name).parent.name]
            camera.params = params
            camera.has_prior_focal_length = True
            database.update_camera(camera)
    finally:
        database.close()


def colmap_poses(
    images: list[np.ndarray],
    names: list[str] | None = None,
    focal: float | np.ndarray | None = None,
    exhaustive_max: int = 60,
    num_threads: int = 2,
    workdir: str | None = None,
    camera_model: str = "SIMPLE_PINHOLE",
) -> ColmapResult:
    """Run pycolmap SfM on in-memory images (H,W,3); returns cameras in our conventions.

    focal: None (COLMAP's default start), one value in pixels for all views, or (V,) per view: views of
    one focal and size share a camera. A given focal is the start of COLMAP's refinement, not fixed.
    camera_model: SIMPLE_PINHOLE, or SIMPLE_RADIAL (one radial term k1 per camera, in diagnostics["k1"]).
    """
    import pycolmap

    V = len(images)
    names = names or [f"view_{k:04d}" for k in range(V)]
    focals = None if focal is None else np.broadcast_to(np.asarray(focal, np.float64), (V,))
    sizes = {im.shape[:2] for im in images}
    groups = None
    if focals is not None and (len(sizes) > 1 or focals.max() - focals.min() > 1e-9 * focals.max()):
        groups = _camera_groups(images, focals)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        (tmp / "images").mkdir()
        files = _write_images(images, names, tmp / "images", groups)
        db = tmp / "database.db"
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = camera_model
        if focals is not None and groups is None:
            h, w = images[0].shape[:2]
            extra = ",0" if camera_model == "SIMPLE_RADIAL" else ""
            reader.camera_params = f"{focals[0]},{w / 2},{h / 2}{extra}"
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.num_threads = num_threads
        # one call: each call would open a camera of its own. pycolmap reports no progress inside it,
        # so the bar shows the time spent only
        with bar("features", None):
            pycolmap.extract_features(
                db,
                tmp / "images",
                image_names=files,
                camera_mode=pycolmap.CameraMode.SINGLE if groups is None else pycolmap.CameraMode.PER_FOLDER,
                reader_options=reader,
                extraction_options=extraction,
                device=pycolmap.Device.cpu,
            )
        if groups is not None:
            _set_known_focals(db, files, focals)
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = num_threads
        n_pairs = _match(pycolmap, db, images, files, exhaustive_max, matching, tmp)
        opts = pycolmap.IncrementalPipelineOptions()
        opts.num_threads = num_threads
        opts.ba_refine_principal_point = False
        opts.random_seed = 0
        if camera_model != "SIMPLE_PINHOLE" and focals is not None:
            opts.ba_refine_focal_length = False  # a known focal (EXIF) is kept; only k1 is found
        (tmp / "sparse").mkdir()
        with bar("mapping", V) as mapping_bar:  # a view registered (or tried) per callback
            models = pycolmap.incremental_mapping(
                db,
                tmp / "images",
                tmp / "sparse",
                options=opts,
                next_image_callback=lambda: mapping_bar.update(min(V, mapping_bar.done + 1)),
            )
    result = _convert(models, files, V, radial=camera_model == "SIMPLE_RADIAL")
    result.diagnostics["pairs_matched"] = n_pairs
    return result


def _match(pycolmap, db: Path, images, files: list[str], exhaustive_max: int, matching, folder: Path) -> int:
    """Match the view graph's pairs (all of them for small sets; splat.match.graph.select_pairs for larger:
    name-order neighbours at doubling strides and global-descriptor neighbours) in blocks, so the bar can
    say how long is left. Returns the number of pairs."""
    pairs = select_pairs(images, exhaustive_max, window=10, knn=10, quadratic=True)
    block = max(50, len(pairs) // 20)
    with bar("matching", len(pairs)) as matching_bar:
        for start in range(0, len(pairs), block):
            chunk = pairs[start : start + block]
            listing = folder / "pairs.txt"
            listing.write_text("".join(f"{files[i]} {files[j]}\n" for i, j in chunk))
            pairing = pycolmap.ImportedPairingOptions()
            pairing.match_list_path = str(listing)
            pycolmap.match_image_pairs(
                db, matching_options=matching, pairing_options=pairing, device=pycolmap.Device.cpu
            )
            matching_bar.advance(len(chunk))
    return len(pairs)


def _convert(models, files: list[str], V: int, radial: bool = False) -> ColmapResult:
    """The largest model in our conventions; with radial cameras, the tracks are undistorted to pinhole
    pixels and each view's k1 is in diagnostics["k1"]."""
    K = np.tile(np.eye(3), (V, 1, 1))
    k1 = np.zeros(V) if radial else None
    w2c = np.tile(np.eye(4), (V, 1, 1))
    reg = np.zeros(V, bool)
    if not models:
        return ColmapResult(K, w2c, reg, np.zeros((0, 3)), np.zeros((0, 3), np.float32), {"models": 0})
    rec = max(models.values(), key=lambda r: r.num_reg_images())
    index = {f: k for k, f in enumerate(files)}
    for image in rec.images.values():
        if not image.has_pose:
            continue
        k = index[image.name]
        w2c[k, :3, :] = image.cam_from_world().matrix()
        K[k] = image.camera.calibration_matrix()
        if radial:
            k1[k] = float(image.camera.params[3])  # SIMPLE_RADIAL: f, cx, cy, k
        reg[k] = True
    pts = rec.points3D.values()
    xyz = np.array([p.xyz for p in pts]).reshape(-1, 3)
    rgb = (np.array([p.color for p in pts]).reshape(-1, 3) / 255.0).astype(np.float32)
    diag = {
        "models": len(models),
        "model_sizes": sorted((r.num_reg_images() for r in models.values()), reverse=True),
        "mean_reprojection_error": float(rec.compute_mean_reprojection_error()),
    }
    tracks = tracks_from_reconstruction(rec, index)
    if radial:
        uv = tracks.uv.copy()
        for v in np.unique(tracks.view):
            m = tracks.view == v
            uv[m] = undistort_pixels(uv[m], K[v, 0, 0], K[v, :2, 2], k1[v])
        tracks = Tracks(tracks.track, tracks.view, tracks.kp, uv, tracks.num_tracks)
        diag["k1"] = k1.tolist()
    return ColmapResult(K, w2c, reg, xyz, rgb, diag, tracks)

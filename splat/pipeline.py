"""`fit()`: images -> cameras -> initial Gaussians -> trained Gaussians, one stage at a time.

Every stage writes its artifact into the run folder (splat.run.RunFolder names them all), so a run
can be inspected, resumed (`resume=True` skips stages whose artifact exists) and re-entered
(`poses="given:DIR"`, `init="given:PLY"`).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

from splat.config import FitConfig, resolve_device
from splat.errors import InputError
from splat.logs import capture_library_output
from splat.memory import peak_rss_bytes
from splat.progress import bar, callback, showing
from splat.run import RunFolder, run_logger
from splat.run import write_json as _write_json
from splat.types import Cameras, Gaussians


class Stopwatch:
    """Collects per-stage wall times, and the process's peak RSS at the end of each stage (GB), into dicts."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.peaks: dict[str, float] = {}

    def __call__(self, name: str):
        watch = self

        class _Lap:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                watch.times[name] = round(time.perf_counter() - self.t0, 3)
                watch.peaks[name] = round(peak_rss_bytes() / 1e9, 3)

        return _Lap()


def config_to_dict(cfg: FitConfig) -> dict:
    return dataclasses.asdict(cfg)


def _select_views(names: list[str], views: list[str] | None) -> list[int]:
    if not views:
        return list(range(len(names)))
    missing = [v for v in views if v not in names]
    if missing:
        raise InputError(f"views not found in the image folder: {', '.join(missing)}")
    return [names.index(v) for v in views]


def _cameras_from_given(path: str, names: list[str], sizes: list[tuple[int, int]]) -> Cameras:
    from splat.io.colmap import read_model
    from splat.io.datasets import cameras_for_images

    return cameras_for_images(read_model(Path(path)), names, sizes, path)


def choose_focal(cfg: FitConfig, priors: list) -> tuple[float | np.ndarray | None, dict]:
    """The focal the pose stage starts from, and where it came from.

    priors: per image a splat.io.exif.FocalPrior or None. Returns (None: to be estimated | one value |
    (V,) per image, {"source": "flag" | "exif" | "estimated", "detail": one line for fit.log}).
    """
    if cfg.focal is not None:
        return float(cfg.focal), {"source": "flag", "detail": f"--focal {cfg.focal:g} px (held fixed)"}
    known = [p for p in priors if p is not None]
    if not cfg.exif or not known:
        why = "--no-exif" if not cfg.exif else "no photo carries an EXIF focal"
        return None, {"source": "estimated", "detail": f"estimated from the images ({why})"}
    if len(known) < len(priors):
        detail = (
            f"estimated from the images (only {len(known)} of {len(priors)} photos carry an EXIF focal; "
            "one focal is searched for all)"
        )
        return None, {"source": "estimated", "detail": detail}
    from splat.io.exif import intrinsics_groups

    groups = intrinsics_groups(priors)
    parts = []
    for g in sorted(set(groups)):
        members = [p for p, k in zip(priors, groups) if k == g]
        camera = members[0].camera_key.strip("|") or "camera"
        parts.append(f"{camera} ({len(members)} photos): {members[0].source}")
    focals = np.array([p.focal_px for p in priors])
    detail = "EXIF, " + "; ".join(parts)
    return focals, {"source": "exif", "detail": detail, "groups": groups}


def stage_poses(
    run: Path,
    images: list[np.ndarray],
    names: list[str],
    cfg: FitConfig,
    resume: bool,
    progress=None,
    priors: list | None = None,
) -> tuple[Cameras, list[np.ndarray]]:
    """Cameras for the training images: given, resumed from RUN/poses, or estimated; and the images, which
    are undistorted when the pose stage found lens distortion (RUN/poses/poses.json says how).

    priors: per image an EXIF FocalPrior or None (see choose_focal)."""
    from splat.io.colmap import write_model

    folder = RunFolder(run)
    sizes = [(im.shape[1], im.shape[0]) for im in images]
    if cfg.poses.startswith("given:"):
        return _cameras_from_given(cfg.poses[len("given:") :], names, sizes), images
    if resume and (folder.poses / "images.txt").exists():
        lens = folder.read_poses().get("undistortion")
        return _cameras_from_given(str(folder.poses), names, sizes), _undistort(images, lens)
    from splat.poses import estimate_poses

    show = sys.stderr.isatty() if progress is None else progress
    log = run_logger(run, "poses", echo=show)
    focal, focal_info = choose_focal(cfg, priors or [None] * len(images))
    log(f"focal: {focal_info['detail']}")
    try:
        result = estimate_poses(
            images,
            names,
            method=cfg.poses,
            focal=focal,
            log=log,
            accept_unverified=cfg.accept_unverified,
        )
    except InputError as e:
        log(f"error: {e}")
        raise
    log(f"{result.reason}; {result.diagnostics.get('learned_matches', 0)} learned matches")
    check = result.verification
    if check.verdict != "verified":
        kept = "kept on request (--accept-unverified)" if check.verdict == "failed" else "kept"
        warn(f"cameras {check.verdict.replace('_', ' ')} ({kept}): {check.reason}", log)
    info = {"method": result.method, "reason": result.reason, "seconds": result.timings}
    info["learned_matches"] = result.diagnostics.get("learned_matches", 0)  # DISK + LightGlue, 4-8 views
    info["verification"] = check.to_json()
    fx = result.cameras.K[:, 0, 0].numpy()
    focal_info["focal_px"] = [round(float(f), 3) for f in fx]
    values = ", ".join(f"{f:.1f}" for f in sorted(set(fx.round(1).tolist())))
    log(f"focal: {values} px ({focal_info['source']})")
    info["focal"] = focal_info
    cameras = result.cameras
    if result.k1 is not None and np.any(result.k1 != 0):
        cameras, info["undistortion"] = _lens_model(cameras, result.k1)
        images = _undistort(images, info["undistortion"])
        focal_out = ", ".join(
            f"{f:.1f}" for f in sorted({round(d["focal_out_px"], 1) for d in info["undistortion"]})
        )
        log(
            f"lens: radial k1 {float(np.median(result.k1)):+.4f}; "
            f"the photos are undistorted (focal {focal_out} px)"
        )
    # poses.json first: a resumed run finds images.txt only once its verdict is on disk
    folder.poses.mkdir(parents=True, exist_ok=True)
    _write_json(folder.poses_json, info)
    write_model(folder.poses, cameras, result.points, result.colors)
    return cameras, images


def _lens_model(cameras: Cameras, k1: np.ndarray) -> tuple[Cameras, list[dict]]:
    """Pinhole cameras of the undistorted photos and, per view, what undistorts it (k1 (V,))."""
    from splat.geometry.lens import undistorted_focal

    K = cameras.K.clone()
    spec = []
    for v in range(len(k1)):
        f, c = float(K[v, 0, 0]), K[v, :2, 2].numpy().astype(np.float64)
        size = (int(cameras.width[v]), int(cameras.height[v]))
        f_out = undistorted_focal(f, c, size, float(k1[v]))
        spec.append({"k1": float(k1[v]), "focal_px": f, "focal_out_px": f_out, "principal_point": c.tolist()})
        K[v, 0, 0] = K[v, 1, 1] = f_out
    return Cameras(K, cameras.w2c, cameras.width, cameras.height, cameras.names), spec


def _undistort(images: list[np.ndarray], spec: list[dict] | None) -> list[np.ndarray]:
    """The photos as pinhole images (spec: poses.json's "undistortion"; None: unchanged)."""
    if not spec:
        return images
    from splat.geometry.lens import undistort_image

    return [
        undistort_image(im, d["focal_px"], np.asarray(d["principal_point"]), d["k1"], d["focal_out_px"])
        for im, d in zip(images, spec)
    ]


def warn(message: str, log=None) -> None:
    """One warning line on stderr (`splat: warning: ...`), and into the stage log when given."""
    print(f"splat: warning: {message}", file=sys.stderr, flush=True)
    if log is not None:
        log(f"warning: {message}")


def _sparse_points(run: Path, images, cameras: Cameras, cfg: FitConfig) -> tuple[np.ndarray, np.ndarray]:
    """(P,3) points and (P,3) colours for the 3DGS sparse start: those of the pose model, or, when the
    model has none (e.g. given poses without points), triangulated from the images with those poses."""
    from splat.io.colmap import read_model

    model_dir = Path(cfg.poses[len("given:") :]) if cfg.poses.startswith("given:") else RunFolder(run).poses
    points = read_model(model_dir)
    if len(points.points) >= 4:
        return points.points, points.colors
    from splat.init.colmap_points import triangulate_images

    return triangulate_images(images, cameras)


def stage_init(
    run: Path, images: list[np.ndarray], cameras: Cameras, cfg: FitConfig, resume: bool
) -> Gaussians:
    """Initial Gaussians: given, resumed from RUN/init.ply, or built (EDGS or sparse), pruned to budget."""
    from splat.init.budget import prune_to_budget
    from splat.io.ply import read_ply, write_ply

    if cfg.init.startswith("given:"):
        return read_ply(Path(cfg.init[len("given:") :]))
    folder = RunFolder(run)
    if resume and folder.init.exists():
        return read_ply(folder.init)
    if cfg.init == "edgs":
        from splat.init.edgs import EdgsConfig, edgs_init

        with bar("init", None) as init_bar:  # dense matching, pair by pair
            gaussians, conf, report = edgs_init(
                images,
                cameras.to(dtype=torch.float64),
                EdgsConfig(seed=cfg.seed),
                progress=callback(init_bar),
            )
    elif cfg.init == "sparse":
        from splat.init.sparse import sparse_init

        gaussians, conf = sparse_init(*_sparse_points(run, images, cameras, cfg)), None
        report = {"gaussians": len(gaussians)}
    elif cfg.init.startswith("prior:"):
        from splat.init.prior import prior_init

        points, _ = _sparse_points(run, images, cameras, cfg)
        model = cfg.init[len("prior:") :]
        gaussians, conf, report = prior_init(model, images, cameras.to(dtype=torch.float64), points)
        for name in report["dropped"]:
            warn(f"--init {cfg.init}: the model's depth of {name} does not fit the triangulated points; "
                 "that view adds no Gaussians", run_logger(run, "init"))  # fmt: skip
    else:
        raise InputError(f"unknown --init {cfg.init!r}: use edgs, sparse, given:PATH.ply or prior:MODEL.pt")
    budget = cfg.budget_limit()
    if budget and len(gaussians) > budget:
        gaussians = prune_to_budget(gaussians, budget, cfg.budget_rule, conf, cfg.seed)
    report["after_budget"] = len(gaussians)
    depth_maps = report.pop(
        "depth_maps", None
    )  # (depths, confidences) where the init has them (edgs, prior:)
    if n_far := cfg.far_field_count():
        from splat.init.far_field import far_field

        shell = far_field(
            images, cameras, gaussians.means.double().numpy(), n_far, sh_degree=gaussians.sh_degree
        )
        gaussians = Gaussians.cat([gaussians, shell.to(dtype=gaussians.dtype)])
        report["far_field"] = len(shell)
    run_logger(run, "init")(
        f"{cfg.init}: {report.get('gaussians')} Gaussians"
        + (
            f", {report['confident_fraction']:.1%} of pixels confident"
            if "confident_fraction" in report
            else ""
        )
        + f", {report['after_budget']} after the budget"
        + (f", {report['far_field']} far-field" if "far_field" in report else "")
    )
    if depth_maps is not None and cfg.train.get("depth_weight"):
        save_depth_maps(folder.init_depths, *depth_maps)
    write_ply(folder.init, gaussians)
    _write_json(folder.init_report, report)
    return gaussians


def save_depth_maps(path: Path, depths: list[np.ndarray], confidences: list[np.ndarray]) -> None:
    """The init's per-view depth maps (H,W) (NaN where unknown) and confidences as float16, atomically."""
    from splat.io.atomic import atomic_path

    arrays = {}
    for v, (d, c) in enumerate(zip(depths, confidences)):
        arrays[f"depth_{v}"] = np.asarray(d, np.float16)
        arrays[f"confidence_{v}"] = np.asarray(c, np.float16)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_depth_maps(path: Path) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """What save_depth_maps wrote, (depth, confidence) float16 per view; None when there is no file."""
    if not path.exists():
        return None
    with np.load(path) as data:
        n = sum(k.startswith("depth_") for k in data.files)
        return [(data[f"depth_{v}"], data[f"confidence_{v}"]) for v in range(n)]


def _depth_targets(run: Path, cfg: FitConfig, n_views: int, log=None):
    """The init's depth maps for TrainConfig.depth_weight, or None (a warning when asked for but absent)."""
    if not cfg.train.get("depth_weight"):
        return None
    maps = load_depth_maps(RunFolder(run).init_depths)
    if maps is None or len(maps) != n_views:
        warn("--depth-weight: the initial Gaussians came without depth maps (use --init edgs or prior:); "
             "training without the depth term", log)  # fmt: skip
        return None
    return maps


def _check_memory(run: Path, images: list[np.ndarray], cfg: FitConfig) -> dict:
    """Estimate the fit's peak memory, say it in fit.log, refuse a fit the machine cannot hold."""
    from splat.memory import available_bytes, check_memory, estimate_peak  # looked up per call (tests patch)

    sizes = [(im.shape[1], im.shape[0]) for im in images]
    pixels = sum(w * h for w, h in sizes)
    budget = cfg.budget_limit()
    gaussians = min(budget, pixels) if budget else pixels // 2  # no budget: about half the pixels are kept
    estimate = estimate_peak(sizes, gaussians, dense_init=cfg.init == "edgs")
    available = available_bytes()
    run_logger(run, "memory")(check_memory(estimate, available, len(images), cfg.max_side))
    return {
        "estimated_peak_gb": round(estimate.total / 1e9, 3),
        "available_gb": None if available is None else round(available / 1e9, 3),
    }


def _video_frames(videos: list[Path], run: Path, cfg: FitConfig, progress) -> tuple[Path, dict]:
    """A video input's training frames, extracted into RUN/frames/ (reused while its frames.json matches):
    the folder, and what metrics.json records of them."""
    from splat.io.video import extract_frames, frame_files, read_frames_json

    show = sys.stderr.isatty() if progress is None else progress
    log = run_logger(run, "video", echo=show)
    frames = extract_frames(videos, run / "frames", cfg.frames, max_side=cfg.max_side, progress=show, log=log)
    record = read_frames_json(frames)
    sources = record["sources"]
    return frames, {
        "sources": [s["path"] for s in sources],
        "frames": len(frame_files(record)),
        "frames_total": sum(s["frames_total"] for s in sources),
    }


def fit(
    images_dir: str | Path,
    out_dir: str | Path,
    cfg: FitConfig,
    *,
    resume: bool = False,
    on_train_start=None,
    progress: bool | None = None,
) -> dict:
    """Run the whole pipeline; returns the metrics dict also written to OUT/metrics.json.

    `on_train_start(gaussians, cameras, images) -> list of callbacks` lets a caller (the live viewer)
    watch training: each callback receives a splat.train.StepReport after every step.
    `progress`: show progress bars (default: when stderr is a terminal).
    """
    from splat.io.colmap import write_model
    from splat.io.images import load_image_folder, require_views
    from splat.io.ply import write_ply
    from splat.io.video import video_sources
    from splat.train import train

    folder = RunFolder(out_dir)
    run = folder.root
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    videos = video_sources(images_dir)  # None: a folder of photos
    # a video's frames go to RUN/frames/; "images" names the folder the viewer takes thumbnails from
    video = {"input": "video", "images": str((run / "frames").resolve())} if videos else {}
    _write_json(
        folder.config, {**config_to_dict(cfg), "images_dir": str(Path(images_dir).resolve()), **video}
    )
    run_logger(run, "fit")(f"{'resume' if resume else 'start'}: {images_dir} -> {run}")
    clock = Stopwatch()
    show = sys.stderr.isatty() if progress is None else progress
    # pycolmap/OpenCV output and library warnings go into fit.log, not the terminal; every long stage
    # draws a bar with the time left, and says in fit.log how long it took
    with capture_library_output(folder.log), showing(show, log=run_logger(run, "progress")):
        with clock("load"):
            photos, video = _video_frames(videos, run, cfg, progress) if videos else (Path(images_dir), {})
            imageset = load_image_folder(photos, max_side=cfg.max_side)
            keep = _select_views(imageset.names, cfg.views)
            images = [imageset.images[i] for i in keep]
            names = [imageset.names[i] for i in keep]
            require_views(imageset, 2)
            memory = _check_memory(run, images, cfg)
        with clock("poses"):
            priors = [imageset.focal_priors[i] for i in keep] if imageset.focal_priors else None
            cameras, images = stage_poses(run, images, names, cfg, resume, progress, priors)
        with clock("init"):
            gaussians = stage_init(run, images, cameras, cfg, resume)
        with clock("train"):
            callbacks = on_train_start(gaussians, cameras, images) if on_train_start else []
            train_cfg = cfg.train_config(device)
            result = train(
                gaussians,
                cameras,
                images,
                train_cfg,
                depth_targets=_depth_targets(run, cfg, len(images), run_logger(run, "train")),
                callbacks=callbacks,
                checkpoint_dir=folder.checkpoints,
                resume=resume,
                progress=progress,
            )
        with clock("export"):
            write_ply(folder.splat, result.gaussians, antialiased=train_cfg.antialias)
            write_model(folder.cameras, result.cameras.to(device="cpu", dtype=torch.float64))
    given = cfg.poses.startswith("given:")
    verification = {} if given else folder.read_poses().get("verification", {})
    metrics = {
        "views": len(images),
        "names": names,
        "gaussians_init": len(gaussians),
        "gaussians_final": len(result.gaussians),
        "seconds": clock.times,
        "seconds_total": round(sum(clock.times.values()), 3),
        "train": result.summary(),
        # 'verified' | 'low_confidence' | 'failed' (kept with --accept-unverified) | 'given' (--poses given:)
        "cameras_verdict": "given" if given else verification.get("verdict"),
        # the poses alone, and the focal: 'verified' | 'uncertain' | 'unchecked' | 'given' (EXIF, --focal)
        "poses_verdict": "given" if given else verification.get("poses_verdict"),
        "focal_verdict": "given" if given else verification.get("focal_verdict"),
        # the estimate made before the heavy stages, and the peak this process reached
        "memory": {**memory, "peak_rss_gb": round(peak_rss_bytes() / 1e9, 3), "peak_after_gb": clock.peaks},
        **({"video": video} if video else {}),  # the clips and how many frames were taken (RUN/frames/)
    }
    _write_json(folder.metrics, metrics)
    run_logger(run, "fit")(
        f"done: {len(result.gaussians)} Gaussians, final train PSNR {result.final_psnr:.2f} dB, "
        + "stage seconds "
        + ", ".join(f"{k} {v:.1f}" for k, v in clock.times.items())
    )
    return metrics


def start_over(run_dir: str | Path) -> None:
    """Remove an earlier fit's artifacts from RUN (fit.log stays), so nothing of it is resumed or kept."""
    RunFolder(run_dir).start_over()

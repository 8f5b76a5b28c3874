"""Camera estimation: intrinsics and poses from images alone.

`estimate_poses(images, names)` picks the method:
- 'sparse' (splat.poses.sparse_view): the whole view set at once, wide-baseline features, several
  hypotheses per pair, rotation averaging, bundle adjustment. For small sets.
- 'colmap' (splat.poses.colmap_sfm): pycolmap incremental SfM. For large sets.
- 'auto': 'sparse' below `SPARSE_MAX_VIEWS` views, else 'colmap'; when the chosen method does not
  register every view the other one is tried, and the result that registers more views (then the
  lower reprojection error) is kept. `PoseResult.method` and `.reason` say what happened.

Failure is explicit: if some views cannot be connected to the rest, InputError names them. A
partial reconstruction is never returned as if it were complete.

Every complete solution is verified before it is accepted (splat.poses.verify: each view re-posed from
the points of the others). A failed one is repaired by the other method when `auto`, else refused with
an InputError naming the views, unless `accept_unverified`; `PoseResult.verification` holds the verdict
and its evidence ('verified', 'low_confidence': kept with a warning, 'failed': kept on request only).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from splat.errors import InputError
from splat.poses.tracks import Tracks
from splat.poses.verify import Verification, verify_solution
from splat.types import Cameras

SPARSE_MAX_VIEWS = 40


@dataclass
class PoseResult:
    """Cameras (float64, names set) and sparse points (P,3) with colours (P,3) in [0,1]."""

    cameras: Cameras
    points: np.ndarray
    colors: np.ndarray
    method: str
    reason: str
    timings: dict[str, float] = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)
    verification: Verification | None = None
    k1: np.ndarray | None = None  # (V,) radial term of each photo (splat.geometry.lens); None: pinholes


@dataclass
class Solution:
    """One method's cameras before verification (what sparse_view and colmap_sfm both return).

    K (V,3,3), w2c (V,4,4) (identity where not registered), registered (V,) bool, points (P,3),
    colors (P,3) in [0,1], diagnostics, tracks (the observations, None: nothing to verify with).
    """

    K: np.ndarray
    w2c: np.ndarray
    registered: np.ndarray
    points: np.ndarray
    colors: np.ndarray
    diagnostics: dict
    tracks: Tracks | None = None

    @classmethod
    def of(cls, r) -> Solution:
        return cls(r.K, r.w2c, r.registered, r.points, r.colors, r.diagnostics, r.tracks)


def _cameras(K: np.ndarray, w2c: np.ndarray, images: list[np.ndarray], names: list[str]) -> Cameras:
    sizes = [(im.shape[1], im.shape[0]) for im in images]
    return Cameras(
        torch.from_numpy(np.asarray(K, np.float64)),
        torch.from_numpy(np.asarray(w2c, np.float64)),
        [w for w, _ in sizes],
        [h for _, h in sizes],
        list(names),
    )


def _run(method: str, images, names, focal, log):
    t0 = time.perf_counter()
    if method == "sparse":
        from splat.poses.sparse_view import solve_sparse_views

        out = Solution.of(solve_sparse_views(images, focal, log=log))
    elif method in ("colmap", "colmap_radial"):
        from splat.poses.colmap_sfm import colmap_poses

        model = "SIMPLE_RADIAL" if method == "colmap_radial" else "SIMPLE_PINHOLE"
        out = Solution.of(colmap_poses(images, names, focal, camera_model=model))
    else:
        raise ValueError(f"unknown pose method {method!r}: use auto, sparse or colmap")
    return out, time.perf_counter() - t0


def _verify(out: Solution, names, log, focal_known: bool) -> Verification:
    K, w2c, reg, diag, tracks = out.K, out.w2c, out.registered, out.diagnostics, out.tracks
    if tracks is None:
        return Verification(
            "failed",
            "this method returned no feature tracks to verify its cameras with",
            focal_known=focal_known,
        )
    multiview = diag.get("focal_multiview") or {}
    all_tracks = multiview.get("focal_all_px") if multiview.get("used") else None
    v = verify_solution(
        tracks, K, w2c, reg, names, focal_known=focal_known, focal_all_tracks=all_tracks,
        stability=diag.get("pose_stability"),
    )  # fmt: skip
    log(f"verification: {v.verdict}: {v.reason}")
    return v


def estimate_poses(
    images: list[np.ndarray],
    names: list[str] | None = None,
    method: str = "auto",
    focal: float | None = None,
    progress: bool = True,
    log=None,
    accept_unverified: bool = False,
) -> PoseResult:
    """Estimate intrinsics and world-to-camera poses for every image, and verify them.

    Args:
        images: V arrays (H,W,3), float in [0,1] or uint8.
        names: V image names (used in messages and Cameras.names).
        method: 'auto' | 'sparse' | 'colmap'.
        focal: shared focal length in pixels at the given image size, if known (EXIF).
        progress: print what each stage does.
        log: a callable taking the messages instead (overrides `progress`).
        accept_unverified: keep a solution whose verification failed (marked so) instead of refusing it.
    Raises:
        InputError: fewer than 2 images, views that cannot be connected to the others, or a solution that
            fails its verification (unless `accept_unverified`).
    """
    V = len(images)
    names = list(names) if names else [f"view_{k:04d}" for k in range(V)]
    if V < 2:
        raise InputError(f"need at least 2 images to estimate cameras, got {V}; add more photos of the scene")
    if log is None:
        log = print if progress else (lambda *a, **k: None)
    if method == "auto":
        first = "sparse" if V < SPARSE_MAX_VIEWS else "colmap"
        why = f"{V} views {'<' if first == 'sparse' else '>='} {SPARSE_MAX_VIEWS}"
    else:
        first, why = method, "requested"
    tried: dict = {}
    checks: dict[str, Verification] = {}
    log(f"poses: {first} ({why})")
    try:
        tried[first] = _run(first, images, names, focal, log)
    except Exception as e:  # noqa: BLE001 - a failing method is reported, and the other one tried
        if method != "auto":
            raise
        log(f"poses: {first} failed ({e})")
        tried[first] = None
    reason = f"{first}: {why}"
    best = first
    complete = tried[first] is not None and tried[first][0].registered.all()
    if complete:
        checks[first] = _verify(tried[first][0], names, log, focal is not None)
    if method == "auto" and (not complete or checks[first].verdict == "failed"):
        other = "colmap" if first == "sparse" else "sparse"
        n_first = 0 if tried[first] is None else int(tried[first][0].registered.sum())
        if complete:
            log(f"poses: the {first} solution failed its verification; trying {other}")
        else:
            log(f"poses: {first} registered {n_first}/{V} views; trying {other}")
        try:
            tried[other] = _run(other, images, names, focal, log)
            n_other = int(tried[other][0].registered.sum())
            if n_other == V:
                checks[other] = _verify(tried[other][0], names, log, focal is not None)
            if complete and checks.get(other) and checks[other].verdict != "failed":
                best, reason = other, f"{other}: the {first} solution failed its verification"
            elif not complete and n_other > n_first:
                best, reason = other, f"{other}: {first} registered only {n_first}/{V} views"
        except Exception as e:  # noqa: BLE001
            log(f"poses: {other} failed ({e})")
    if tried.get(best) is None:
        raise InputError(f"camera estimation failed on all {V} images; check that the photos overlap")
    reg = tried[best][0].registered
    if not reg.all():
        missing = [names[k] for k in np.flatnonzero(~reg)]
        raise InputError(
            f"could not connect {len(missing)} of {V} images to the others: {', '.join(missing[:10])}"
            f"{' ...' if len(missing) > 10 else ''}; remove them or add photos that overlap with them"
        )
    check = checks[best]
    k1 = None
    if method == "auto" and check.verdict != "failed" and _distorted(check):
        # a pinhole fit of distorted photos biases the focal by several % (sceaux-castle: +5 to +12 %)
        lens = _radial_repair(images, names, focal, best, log)
        if lens is not None:
            name, out, lens_check, k1 = lens
            tried[name], checks[name] = out, lens_check
            reason = f"{name}: the {best} solution's pinhole cameras did not fit the lens"
            best, check = name, lens_check
            log(f"poses: radial term k1 {float(np.median(k1)):+.4f}")
    if check.verdict == "failed" and not accept_unverified:
        raise InputError(
            f"the cameras could not be verified: {check.reason}; {check.fix}, "
            "or pass --accept-unverified to keep this solution anyway"
        )
    solution, seconds = tried[best]
    K, w2c, diag = solution.K, solution.w2c, solution.diagnostics
    timings = {f"{best}_total": seconds, **diag.get("times", {})}
    cams = _cameras(K, w2c, images, names)
    return PoseResult(cams, solution.points, solution.colors, best, reason, timings, diag, check, k1)


def _radial_repair(images, names, focal, pinhole: str, log):
    """Distorted photos: pycolmap with one radial term per camera (SIMPLE_RADIAL). A model of every view
    that verifies is taken as it is; one of 3+ views lends its k1 to the pinhole method, which solves every
    view again on the undistorted photos (the focal estimated again unless given: a partial model's focal
    is not trusted) and must verify without lens distortion left.
    Returns (method name, raw solution, its Verification, k1 (V,)) or None (the pinhole solution stays)."""
    from splat.geometry.lens import undistort_image

    V = len(images)
    log("poses: the photos show lens distortion; solving again with a radial term (SIMPLE_RADIAL)")
    try:
        radial = _run("colmap_radial", images, names, focal, log)
    except Exception as e:  # noqa: BLE001 - the pinhole solution stays, with its warning
        log(f"poses: colmap_radial failed ({e})")
        return None
    K, reg, diag = radial[0].K, radial[0].registered, radial[0].diagnostics
    if reg.all():
        check = _verify(radial[0], names, log, focal is not None)
        if check.verdict == "failed" or _distorted(check):
            return None
        return "colmap_radial", radial, check, np.asarray(diag["k1"], np.float64)
    sizes = {im.shape[:2] for im in images}
    if reg.sum() < 3 or len(sizes) > 1:
        log(f"poses: colmap_radial registered {int(reg.sum())}/{V} views; the pinhole solution stays")
        return None
    k1 = float(np.median(np.asarray(diag["k1"])[reg]))
    f = float(np.median(K[reg, 0, 0])) if focal is None else float(np.median(focal))
    H, W = images[0].shape[:2]
    c = np.array([W / 2, H / 2])
    log(
        f"poses: colmap_radial placed {int(reg.sum())}/{V} views (k1 {k1:+.4f}, focal {f:.1f} px); "
        f"{pinhole} solves every view again on the undistorted photos"
    )
    flat = [undistort_image(np.asarray(im), f, c, k1, f) for im in images]
    try:
        out = _run(pinhole, flat, names, focal, log)
    except Exception as e:  # noqa: BLE001
        log(f"poses: {pinhole} on the undistorted photos failed ({e})")
        return None
    if not out[0].registered.all():
        return None
    check = _verify(out[0], names, log, focal is not None)
    if check.verdict == "failed" or _distorted(check):
        return None
    return f"{pinhole}+radial", out, check, np.full(V, k1)


def _distorted(check: Verification) -> bool:
    return check.distortion is not None and check.distortion.status == "distorted"

"""Pose-trust benchmark: how often does the pose stage return a wrong camera solution without saying so?

For every committed scene with ground-truth cameras, draws seeded random view subsets (default 20 each of
3, 4, 5 and 8 views) and runs the pose stage as `splat fit` does (`splat.poses.estimate_poses`, method
auto). Each outcome is one of:

- correct: accepted, ATE <= 2 % of the camera spread and mean pairwise relative-rotation error <= 2 deg
- refused: a clear InputError (no cameras returned)
- flagged: accepted but marked low-confidence by the verification (counted apart; its accuracy is shown)
- imprecise: accepted, not flagged, between the correct and the wrong bounds
- WRONG: accepted, not flagged, ATE > 5 % or rotation error > 5 deg (silently wrong: the case to avoid)

"flagged" reads the verdict on the poses (`Verification.poses_verdict`): an estimated focal that the
verification calls uncertain makes the run low-confidence too (one warning), but says nothing about the poses,
so the focal is counted apart: of the accepted rows, how many carry a focal flag ("focal?") and how many
have a focal more than 2 % off without one ("focal off": a focal silently wrong). `--strict` classifies by
the whole verdict instead (focal flags count as flagged), as the session-10 tables did.

    python scripts/bench_pose_trust.py --json /tmp/trust_new.json
    python scripts/bench_pose_trust.py --scenes garden --sizes 3 4 --subsets 5
    python scripts/bench_pose_trust.py --compare /tmp/trust_old.json /tmp/trust_new.json

Features, DISK keypoints and matches depend only on the images (and the view count's keypoint budget), so
they are cached on disk (`--cache`, default /tmp/splat_trust_cache) and shared between subsets and between
runs of two commits: the second sweep spends its time in the solver only. Nothing is cached between scenes
except by content. The script runs unchanged on the commits before the verification was added (their
results carry no verdict, so nothing is ever "flagged" there).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from splat.geometry.align import ate  # noqa: E402

CORRECT_ATE, CORRECT_ROT = 0.02, 2.0  # fraction of the camera spread, degrees
WRONG_ATE, WRONG_ROT = 0.05, 5.0


def _digest(*arrays) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        if isinstance(a, np.ndarray):
            h.update(str((a.shape, a.dtype)).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        else:
            h.update(repr(a).encode())
    return h.hexdigest()


class DiskCache:
    """Memoises a function's result on disk by a content key."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0

    def get(self, key: str, compute):
        path = self.folder / f"{key}.pkl"
        if path.exists():
            try:
                value = pickle.loads(path.read_bytes())
                self.hits += 1
                return value
            except Exception:  # noqa: BLE001 - a broken cache entry is recomputed
                pass
        value = compute()
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(value))
        tmp.replace(path)
        self.misses += 1
        return value


def install_cache(cache: DiskCache) -> None:
    """Wrap feature detection and matching of the sparse-view solver with the disk cache."""
    from splat.match import learned
    from splat.poses import sparse_view

    detect, match, disk, glue = (
        sparse_view._detect,
        sparse_view.match_descriptors,
        learned.disk_features,
        learned.lightglue_matches,
    )

    def cached_detect(images, cfg, n_kp, tilt, pool, log):
        if len(images) > cfg.asift_max_views:  # the feature kind depends on the whole set there
            return detect(images, cfg, n_kp, tilt, pool, log)
        keys = ["det" + _digest(im, n_kp, tilt, cfg.feature) for im in images]
        missing = [k for k, key in enumerate(keys) if not (cache.folder / f"{key}.pkl").exists()]
        fresh = (
            dict(zip(missing, detect([images[k] for k in missing], cfg, n_kp, tilt, pool, log)))
            if missing
            else {}
        )
        return [cache.get(key, lambda k=k: fresh[k]) for k, key in enumerate(keys)]

    def cached_match(d0, d1, ratio=0.85, mutual=True, with_ratio=False):
        return cache.get(
            "mat" + _digest(d0, d1, ratio, mutual, with_ratio),
            lambda: match(d0, d1, ratio, mutual, with_ratio),
        )

    def cached_disk(image, max_keypoints=4096, max_side=640):
        return cache.get(
            "disk" + _digest(image, max_keypoints, max_side), lambda: disk(image, max_keypoints, max_side)
        )

    def cached_glue(xy0, d0, size0, xy1, d1, size1):
        return cache.get(
            "glue" + _digest(xy0, d0, size0, xy1, d1, size1), lambda: glue(xy0, d0, size0, xy1, d1, size1)
        )

    sparse_view._detect = cached_detect
    sparse_view.match_descriptors = cached_match
    learned.disk_features = cached_disk
    learned.lightglue_matches = cached_glue


def load_scene_with_gt(name: str, max_side: int | None = None):
    """(images (V,H,W,3) list, names, ground-truth Cameras) of a committed scene, its longer side at most
    max_side (None: as stored)."""
    from splat.io.colmap import read_model
    from splat.io.datasets import _fit_cameras, load_scene
    from splat.io.images import load_image_folder

    folder = ROOT / "scenes" / name
    if (ROOT / "scenes" / f"{name}_gt" / "sparse" / "0").is_dir():  # the demo: photos + ground truth beside
        images = load_image_folder(folder, max_side)
        cams = _fit_cameras(read_model(ROOT / "scenes" / f"{name}_gt" / "sparse" / "0"), images)
        return images.images, images.names, cams
    scene = load_scene(folder, max_side)
    return scene.images.images, scene.images.names, scene.cameras


def committed_scenes() -> list[str]:
    out = []
    for p in sorted((ROOT / "scenes").iterdir()):
        if (p / "sparse" / "0").is_dir() and not p.name.endswith("_gt"):
            out.append(p.name)
        elif p.name.endswith("_gt") and (ROOT / "scenes" / p.name[:-3]).is_dir():
            out.append(p.name[:-3])
    return sorted(set(out))


def subsets(n_frames: int, size: int, count: int) -> list[list[int]]:
    """`count` distinct sorted random subsets of `size` frames, seeded by (size, k)."""
    out, k = [], 0
    while len(out) < count and k < 50 * count:
        s = sorted(np.random.default_rng([size, k]).choice(n_frames, size, replace=False).tolist())
        k += 1
        if s not in out:
            out.append(s)
    return out


def rotation_error_deg(w2c: np.ndarray, gt_w2c: np.ndarray) -> float:
    """Mean over view pairs of the angle between estimated and true relative rotations (degrees)."""
    errs = []
    V = len(w2c)
    for i in range(V):
        for j in range(i + 1, V):
            r = w2c[j, :3, :3] @ w2c[i, :3, :3].T
            g = gt_w2c[j, :3, :3] @ gt_w2c[i, :3, :3].T
            c = (np.trace(r @ g.T) - 1) / 2
            errs.append(np.degrees(np.arccos(np.clip(c, -1, 1))))
    return float(np.mean(errs))


def verdict_of(result) -> str | None:
    """The verification verdict of a PoseResult (None on commits without verification)."""
    v = getattr(result, "verification", None)
    if v is None:
        v = (getattr(result, "diagnostics", None) or {}).get("verification")
    if v is None:
        return None
    return v.get("verdict") if isinstance(v, dict) else getattr(v, "verdict", None)


FOCAL_OFF_PCT = 2.0


def _focal_only(reason: str | None) -> bool:
    """A low-confidence reason that names only the estimated focal (rows of sweeps before poses_verdict)."""
    concerns = (reason or "").split("; ")
    return bool(reason) and all(c.startswith(("the estimated focal", "give the focal")) for c in concerns)


def poses_verdict(row: dict) -> str | None:
    if "poses_verdict" in row:
        return row["poses_verdict"]
    v = row.get("verdict")
    return "verified" if v == "low_confidence" and _focal_only(row.get("reason")) else v


def focal_flagged(row: dict) -> bool:
    if "focal_verdict" in row:
        return row["focal_verdict"] in ("uncertain", "unchecked")
    return "the estimated focal" in (row.get("reason") or "")


def classify(row: dict, strict: bool = False) -> str:
    if row.get("error"):
        return "refused"
    wrong = row["ate_rel"] > WRONG_ATE or row["rot_err_deg"] > WRONG_ROT
    if (row.get("verdict") if strict else poses_verdict(row)) not in (None, "verified"):
        return "flagged"
    if row["ate_rel"] <= CORRECT_ATE and row["rot_err_deg"] <= CORRECT_ROT:
        return "correct"
    return "WRONG" if wrong else "imprecise"


def run_one(images, names, gt, views, log_dir: Path | None) -> dict:
    from splat.errors import InputError
    from splat.poses import estimate_poses

    sub_images = [images[k] for k in views]
    sub_names = [names[k] for k in views]
    lines: list[str] = []
    t0 = time.perf_counter()
    row: dict = {"views": [int(v) for v in views]}
    try:
        res = estimate_poses(sub_images, sub_names, log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    except InputError as e:
        row.update(error=str(e), seconds=time.perf_counter() - t0)
        return row
    row["seconds"] = time.perf_counter() - t0
    cams = res.cameras
    g = gt[list(views)]
    est_c, gt_c = cams.centers.double(), g.centers.double()
    row["ate_rel"] = float(ate(est_c, gt_c)["rel"])
    row["rot_err_deg"] = rotation_error_deg(cams.w2c.double().numpy(), g.w2c.double().numpy())
    row["focal_err_pct"] = float(100 * (cams.K[0, 0, 0] / g.K[0, 0, 0] - 1))
    row["method"] = res.method
    row["verdict"] = verdict_of(res)
    v = getattr(res, "verification", None)
    row["reason"] = getattr(v, "reason", None)  # what a flag says (kept in the JSON, not printed)
    if hasattr(v, "poses_verdict"):
        row["poses_verdict"], row["focal_verdict"] = v.poses_verdict, v.focal_verdict
    if hasattr(v, "to_json"):  # the evidence, so a new rule can be tried on the rows without re-running them
        row["evidence"] = {
            k: x
            for k, x in v.to_json().items()
            if k in ("views", "links", "focal", "distortion", "distinct", "stability")
        }
    if log_dir is not None:
        (log_dir / f"{'-'.join(map(str, views))}.log").write_text("\n".join(lines) + "\n")
    return row


def summarise(rows: list[dict], strict: bool = False) -> dict:
    kinds = ["correct", "refused", "flagged", "imprecise", "WRONG"]
    out = {k: 0 for k in kinds}
    outcomes = [classify(r, strict) for r in rows]
    for o in outcomes:
        out[o] += 1
    flagged = [r for r, o in zip(rows, outcomes) if o == "flagged"]
    out["flagged_wrong"] = sum(r["ate_rel"] > WRONG_ATE or r["rot_err_deg"] > WRONG_ROT for r in flagged)
    accepted = [r for r in rows if not r.get("error")]
    out["focal_flagged"] = sum(focal_flagged(r) for r in accepted)
    out["focal_off"] = sum(not focal_flagged(r) and abs(r["focal_err_pct"]) > FOCAL_OFF_PCT for r in accepted)
    return out


def print_table(results: dict[str, list[dict]], label: str, strict: bool = False) -> None:
    print(f"\n{label}" + (" (strict: focal flags count as flagged)" if strict else ""))
    print(
        f"{'scene':<11} {'views':>5} {'n':>3} {'correct':>7} {'refused':>7} {'flagged':>12} "
        f"{'imprecise':>9} {'WRONG':>5} {'focal?':>6} {'focal off':>9}"
    )
    tot: dict[str, int] = {}

    def line(scene, size, n, s):
        fl = f"{s['flagged']} ({s['flagged_wrong']} wrong)"
        print(
            f"{scene:<11} {size:>5} {n:>3} {s['correct']:>7} {s['refused']:>7} {fl:>12} "
            f"{s['imprecise']:>9} {s['WRONG']:>5} {s['focal_flagged']:>6} {s['focal_off']:>9}"
        )

    for key, rows in results.items():
        scene, size = key.split("/")
        s = summarise(rows, strict)
        for k, v in s.items():
            tot[k] = tot.get(k, 0) + v
        line(scene, size, len(rows), s)
    line("all", "", sum(len(r) for r in results.values()), tot)


def compare(old_path: str, new_path: str, strict: bool = False) -> None:
    old, new = json.loads(Path(old_path).read_text()), json.loads(Path(new_path).read_text())
    print(
        f"{'scene':<11} {'views':>5} | "
        f"{'before: correct/refused/flagged/imprecise/WRONG':>48} | {'after':>28}"
    )
    for key in new["results"]:
        a = summarise(old["results"].get(key, []), strict)
        b = summarise(new["results"][key], strict)

        def fmt(s):
            return f"{s['correct']}/{s['refused']}/{s['flagged']}/{s['imprecise']}/{s['WRONG']}"

        scene, size = key.split("/")
        print(f"{scene:<11} {size:>5} | {fmt(a):>48} | {fmt(b):>28}")
    for label, data in (("before", old), ("after", new)):
        print_table(data["results"], f"{label}: {data.get('commit', '?')}", strict)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--scenes", nargs="*", help="scene names (default: every committed scene with ground truth)"
    )
    ap.add_argument("--sizes", nargs="*", type=int, default=[3, 4, 5, 8])
    ap.add_argument("--subsets", type=int, default=20, help="random subsets per scene and size")
    ap.add_argument("--cache", default="/tmp/splat_trust_cache")
    ap.add_argument("--json", help="write every row here (updated after each run)")
    ap.add_argument("--logs", help="folder for each run's pose-stage log")
    ap.add_argument(
        "--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="print two JSON sweeps side by side"
    )
    ap.add_argument("--strict", action="store_true", help="a focal flag counts as flagged (see above)")
    args = ap.parse_args()
    if args.compare:
        compare(*args.compare, strict=args.strict)
        return

    os.environ.setdefault("GLOG_minloglevel", "2")
    torch.set_num_threads(2)
    cache = DiskCache(Path(args.cache))
    install_cache(cache)
    import subprocess

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    data = {"commit": commit.stdout.strip(), "results": {}}
    log_root = Path(args.logs) if args.logs else None
    scenes = args.scenes or committed_scenes()
    print(f"scenes {scenes}, sizes {args.sizes}, {args.subsets} subsets each; load {os.getloadavg()[0]:.1f}")
    t_all = time.perf_counter()
    for scene in scenes:
        images, names, gt = load_scene_with_gt(scene)
        for size in args.sizes:
            rows = []
            log_dir = None
            if log_root is not None:
                log_dir = log_root / scene / str(size)
                log_dir.mkdir(parents=True, exist_ok=True)
            for views in subsets(len(images), size, args.subsets):
                row = run_one(images, names, gt, views, log_dir)
                row["outcome"] = classify(row, args.strict)
                rows.append(row)
                extra = (
                    f"ATE {100 * row['ate_rel']:6.2f}%  rot {row['rot_err_deg']:6.2f} deg  "
                    f"focal {row['focal_err_pct']:+6.2f}%  {row['method']} verdict={row['verdict']}"
                    if "ate_rel" in row
                    else row["error"][:90]
                )
                print(
                    f"{scene:<11} {size} {str(views):<28} {row['outcome']:<9} "
                    f"{row['seconds']:5.1f}s  {extra}",
                    flush=True,
                )
                data["results"][f"{scene}/{size}"] = rows
                if args.json:
                    Path(args.json).write_text(json.dumps(data, indent=1, default=float))
    print(
        f"\nwall {time.perf_counter() - t_all:.0f} s; "
        f"feature/match cache {cache.hits} hits, {cache.misses} misses"
    )
    print_table(data["results"], f"commit {data['commit']}", args.strict)


if __name__ == "__main__":
    main()

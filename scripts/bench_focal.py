"""Focal benchmark: how far is the pose stage's focal from the truth, without EXIF and with it?

For every committed scene with ground-truth cameras, the training views of a 6- and a 12-view fit
(`tnt_split`, as `splat fit` on a Tanks & Temples layout chooses them; all frames when a scene has only
12), loaded at `splat fit`'s size (--max-side), go through the pose stage as `splat fit` sends them
(`estimate_poses`, method auto):

- no EXIF: the focal is estimated from the images;
- EXIF: lossless PNG copies of the same pixels carry an EXIF focal equal to the ground truth
  (`splat.io.exif.focal_exif`), read back by `load_image_folder` and chosen by `choose_focal` as in a
  fit, so the whole path (write, read, convert, hold fixed) is measured.

Then ../shared/data/sceaux-castle (real photos, calibrated K.txt): all 11 and three seeded 6-view sets,
with its own EXIF and with it ignored (`--no-exif`). Each row prints the focal error in percent of the
truth, the verification verdict (or "refused") and the seconds.

    python scripts/bench_focal.py
    python scripts/bench_focal.py --scenes garden demo --sizes 12 --no-sceaux

Features and matches are cached on disk as in bench_pose_trust.py (--cache), so a rerun costs the
solver only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_pose_trust import DiskCache, committed_scenes, install_cache, load_scene_with_gt  # noqa: E402

SCEAUX = ROOT.parent / "shared" / "data" / "sceaux-castle"


def views_for(n_frames: int, size: int) -> list[int]:
    from splat.io.datasets import tnt_split

    if size >= n_frames:
        return list(range(n_frames))
    return [int(k) for k in tnt_split(n_frames, size)[0]]


def solve(images, names, focal) -> tuple[float | None, str, float]:
    """(solved focal of view 0 or None, verdict or 'refused: ...', seconds)."""
    from splat.errors import InputError
    from splat.poses import estimate_poses

    t0 = time.perf_counter()
    try:
        r = estimate_poses(images, names, focal=focal, log=lambda *a, **k: None)
    except InputError as e:
        return None, f"refused: {str(e)[:70]}", time.perf_counter() - t0
    return float(r.cameras.K[0, 0, 0]), r.verification.verdict, time.perf_counter() - t0


def exif_copies(images, names, focal_px: float, folder: Path) -> list[Path]:
    """Lossless PNG copies of the images carrying an EXIF focal of focal_px (pixels at this size)."""
    from splat.io.exif import focal_exif

    out = []
    for im, name in zip(images, names):
        arr = np.asarray(im)
        if arr.dtype != np.uint8:
            arr = np.clip(np.round(arr * 255), 0, 255).astype(np.uint8)
        path = folder / (Path(name).stem + ".png")
        h, w = arr.shape[:2]
        Image.fromarray(arr).save(path, exif=focal_exif(focal_px, w, h, "POV-Ray", "render"))
        out.append(path)
    return out


def row(label: str, views, truth: float, focal, verdict: str, seconds: float) -> None:
    err = "      -" if focal is None else f"{100 * (focal / truth - 1):+6.2f}%"
    print(f"{label:34s} {len(views):3d} views  focal {err}  {verdict:16s} {seconds:6.1f}s", flush=True)


def bench_scene(name: str, sizes: list[int], max_side: int) -> None:
    from splat.io.images import load_image_folder
    from splat.pipeline import FitConfig, choose_focal

    images, names, gt = load_scene_with_gt(name, max_side)
    for size in sizes:
        views = views_for(len(images), size)
        sub, sub_names = [images[k] for k in views], [names[k] for k in views]
        truth = float(gt.K[views[0], 0, 0])
        f, verdict, s = solve(sub, sub_names, None)
        row(f"{name} no EXIF", views, truth, f, verdict, s)
        with tempfile.TemporaryDirectory() as tmp:
            exif_copies(sub, sub_names, truth, Path(tmp))
            loaded = load_image_folder(tmp)
            focal, info = choose_focal(FitConfig(), loaded.focal_priors)
            assert info["source"] == "exif", info
            f, verdict, s = solve(loaded.images, loaded.names, focal)
        row(f"{name} EXIF (ground truth)", views, truth, f, verdict, s)


def bench_sceaux(max_side: int = 512) -> None:
    from splat.io.images import load_image_folder
    from splat.pipeline import FitConfig, choose_focal

    ims = load_image_folder(SCEAUX / "images", max_side)
    K = np.loadtxt(SCEAUX / "K.txt")
    full_w = 2832  # K.txt is for the full-size photos (2832 x 2128)
    truth = float(K[0, 0]) * max(ims.images[0].shape[:2]) / full_w
    rng = np.random.default_rng(0)
    sets = [list(range(11))] + [sorted(rng.choice(11, 6, replace=False).tolist()) for _ in range(3)]
    for use_exif in (True, False):
        for views in sets:
            focal, _ = choose_focal(FitConfig(exif=use_exif), [ims.focal_priors[k] for k in views])
            f, verdict, s = solve([ims.images[k] for k in views], [ims.names[k] for k in views], focal)
            row(f"sceaux {'EXIF' if use_exif else 'no EXIF'} {views}", views, truth, f, verdict, s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", nargs="*", help="committed scenes (default: all with ground truth)")
    ap.add_argument("--sizes", nargs="*", type=int, default=[6, 12])
    ap.add_argument("--no-sceaux", action="store_true", help="skip ../shared/data/sceaux-castle")
    ap.add_argument("--cache", default="/tmp/splat_trust_cache")
    ap.add_argument("--max-side", type=int, help="load size (default: splat fit's)")
    args = ap.parse_args()
    from splat.pipeline import FitConfig

    max_side = args.max_side or FitConfig().max_side
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    install_cache(DiskCache(Path(args.cache)))
    scenes = args.scenes or committed_scenes()
    print(f"scenes {scenes}, sizes {args.sizes}, max side {max_side} px; focal error in % of the truth")
    for name in scenes:
        bench_scene(name, args.sizes, max_side)
    if not args.no_sceaux and SCEAUX.is_dir():
        bench_sceaux(max_side)


if __name__ == "__main__":
    main()

"""Anti-aliased training (issue #18 item 3): scenes rendered at half, the same and double their training size.

    python scripts/bench_antialias.py [--scenes garden] [--views 12] [--quality preview] [--out DIR]

For each scene, two `splat batch` fits of the same views (Tanks & Temples split, pose-free: the pose stage
is deterministic, so both get the same cameras): one trained with the classic rasterizer, one with
`--antialias` (Mip-Splatting's 2D filter with opacity compensation). Each is then scored on the held-out
views by `splat eval` at 0.5x, 1x and 2x the training size (evaluate_run's `scale`: the aligned test view
rendered at that size against the ground-truth photo resized alike, area averaging down, bicubic up),
rendered in its own mode and in the other one. Prints one row per scene, training mode and render mode.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from splat.batch import run_batch
from splat.eval.evaluate import evaluate_run

ROOT = Path(__file__).resolve().parent.parent
SCALES = (0.5, 1.0, 2.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="*", default=["garden"])
    ap.add_argument("--views", type=int, default=12)
    ap.add_argument("--quality", default="default", choices=["preview", "default", "high"])
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_antialias"))
    args = ap.parse_args()
    load = os.getloadavg()[0]
    print(f"scenes {args.scenes}, {args.views} views, --quality {args.quality}; load {load:.1f}")
    rows = []
    for trained_aa in (False, True):
        fit = {"quality": args.quality, "train": {"antialias": True} if trained_aa else {}}
        records = run_batch(
            ROOT / "scenes",
            args.out / ("antialias" if trained_aa else "classic"),
            [args.views],
            fit=fit,
            scenes=args.scenes,
            progress=False,
            say=lambda line: None,
        )
        for r in records:
            if r["status"] != "ok":
                print(f"{r['scene']}: {r['status']}: {r.get('error')}")
                continue
            gt = ROOT / "scenes" / r["scene"]
            for render_aa in (trained_aa, not trained_aa):
                scores = {}
                for scale in SCALES:
                    t0 = time.perf_counter()
                    e = evaluate_run(r["run"], gt, scale=scale, antialias=render_aa, write=False)
                    scores[scale] = (e["psnr"], e["ssim"], e["views_flagged"], time.perf_counter() - t0)
                rows.append((r["scene"], trained_aa, render_aa, r["fit_seconds"]["train"], scores))
    print(f"\n{'scene':<11} {'trained':<9} {'rendered':<9} {'train s':>7} "
          + " ".join(f"{f'{s:g}x PSNR':>9} {'SSIM':>6}" for s in SCALES))  # fmt: skip
    for scene, trained_aa, render_aa, train_s, scores in rows:
        cells = " ".join(
            f"{p:9.2f} {q:6.3f}" if p is not None else f"{'-':>9} {'-':>6}" for p, q, _, _ in scores.values()
        )
        flagged = sum(f for _, _, f, _ in scores.values())
        print(
            f"{scene:<11} {'antialias' if trained_aa else 'classic':<9} "
            f"{'antialias' if render_aa else 'classic':<9} {train_s:7.1f} {cells}"
            + (f"  ({flagged} view scores flagged)" if flagged else "")
        )


if __name__ == "__main__":
    main()

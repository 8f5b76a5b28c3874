"""`splat fit --quality` presets side by side: held-out PSNR/SSIM and time of each, one run, same views.

    python scripts/bench_quality.py [--scenes garden] [--views 12] [--presets preview default high]

Each preset runs the whole `splat batch` protocol (Tanks & Temples split of the committed scene, pose-free
fit, `splat eval` of the held-out views) into OUT/<preset>/, so poses and init come out the same for every
preset (the presets change training steps and the Gaussian budget only: splat.config.QUALITY). Prints
one row per scene and preset: steps, budget, the fit's stage seconds, held-out PSNR/SSIM, and the time and
PSNR against the default preset.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from splat.batch import run_batch
from splat.config import QUALITY

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="*", default=["garden"])
    ap.add_argument("--views", type=int, default=12)
    ap.add_argument("--presets", nargs="*", default=list(QUALITY), choices=list(QUALITY))
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_quality"))
    args = ap.parse_args()
    print(f"scenes {args.scenes}, {args.views} views, presets {args.presets}; load {os.getloadavg()[0]:.1f}")
    rows = {}
    for preset in args.presets:
        records = run_batch(
            ROOT / "scenes",
            args.out / preset,
            [args.views],
            fit={"quality": preset},
            scenes=args.scenes,
            progress=False,
            say=lambda line: None,
        )
        for r in records:
            rows[r["scene"], preset] = r
    print(f"\n{'scene':<11} {'preset':<8} {'steps':>5} {'budget':>7} {'poses':>6} {'init':>5} {'train':>6} "
          f"{'total s':>7} {'PSNR':>6} {'SSIM':>6} {'time':>6} {'dPSNR':>6}")  # fmt: skip
    for (scene, preset), r in rows.items():
        if r["status"] != "ok" or r.get("psnr") is None:
            print(f"{scene:<11} {preset:<8} {r['status']}: {r.get('error', 'no test view aligned')}")
            continue
        s, base = r["fit_seconds"], rows.get((scene, "default"))
        ratio = f"{r['seconds'] / base['seconds']:5.2f}x" if base and base.get("psnr") is not None else "-"
        gain = f"{r['psnr'] - base['psnr']:+6.2f}" if base and base.get("psnr") is not None else "-"
        q = QUALITY[preset]
        print(
            f"{scene:<11} {preset:<8} {q['steps']:5d} {q['budget']:7d} {s['poses']:6.1f} {s['init']:5.1f} "
            f"{s['train']:6.1f} {r['seconds']:7.1f} {r['psnr']:6.2f} {r['ssim']:6.3f} {ratio:>6} {gain:>6}"
            + (f"  ({r['views_flagged']} test views flagged)" if r.get("views_flagged") else "")
        )


if __name__ == "__main__":
    main()

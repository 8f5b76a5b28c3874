"""Benchmark the classical dense matcher on the Middlebury "Aloe" stereo pair.

    python scripts/bench_dense_match.py [--data /work/shared/data/middlebury-aloe] [--scales 1 0.5]
                                        [--min-conf 0.5] [--max-side 1024]

The pair is rectified and aloeGT.png holds the left image's disparity in pixels (0 = unknown):
left (x, y) matches right (x - d, y). At an image scale s the images are resized by s and the
disparity multiplied by s. Prints, per scale: median end-point error (px, at that scale) on the
pixels reported confident, the share of confident pixels with error > 3 px, coverage (confident
share of the pixels with known disparity), and the runtime. The matcher is not told the pair is
rectified (no F is given) unless --given-f: it estimates F itself.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from splat.match.dense import DenseMatchConfig, dense_match

DEFAULT_DATA = Path("/work/shared/data/middlebury-aloe")


def load_aloe(data: Path, scale: float = 1.0):
    """(left (H,W,3), right (H,W,3) float32 RGB in [0,1], disparity (H,W) float32 px, 0 = unknown)."""
    imgs = []
    for name in ("aloeL.jpg", "aloeR.jpg"):
        bgr = cv2.imread(str(data / name), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"cannot read {data / name}")
        imgs.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)
    disp = cv2.imread(str(data / "aloeGT.png"), cv2.IMREAD_UNCHANGED).astype(np.float32)
    if scale != 1.0:
        H, W = imgs[0].shape[:2]
        size = (round(W * scale), round(H * scale))
        imgs = [cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in imgs]
        disp = cv2.resize(disp, size, interpolation=cv2.INTER_NEAREST) * scale
    return imgs[0], imgs[1], disp


def stereo_errors(match_xy: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """(H,W) end-point error of matches against a left disparity map (NaN where it is unknown)."""
    H, W = disp.shape
    gx, gy = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    err = np.hypot(match_xy[..., 0] - (gx - disp), match_xy[..., 1] - gy)
    return np.where(disp > 0, err, np.nan)


def evaluate(match_xy: np.ndarray, confidence: np.ndarray, disp: np.ndarray, min_conf: float) -> dict:
    err = stereo_errors(match_xy, disp)
    known = disp > 0
    conf = known & (confidence >= min_conf)
    e = err[conf]
    return {
        "median_epe": float(np.median(e)) if e.size else float("nan"),
        "bad3": float(np.mean(e > 3)) if e.size else float("nan"),
        "coverage": float(conf.sum() / max(known.sum(), 1)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.5, 0.4])
    ap.add_argument("--min-conf", type=float, default=0.5)
    ap.add_argument("--max-side", type=int, default=1024)
    ap.add_argument("--finest-scale", type=int, default=0, help="DIS finest level (1 is faster)")
    ap.add_argument(
        "--given-f", action="store_true", help="pass the rectified-stereo F instead of estimating it"
    )
    args = ap.parse_args()
    F = np.array([[0, 0, 0], [0, 0, -1], [0, 1, 0]], np.float64) if args.given_f else None  # y1 = y0
    cfg = DenseMatchConfig(finest_scale=args.finest_scale)
    for s in args.scales:
        left, right, disp = load_aloe(args.data, s)
        t = time.perf_counter()
        m = dense_match(left, right, F=F, max_side=args.max_side, cfg=cfg)
        secs = time.perf_counter() - t
        r = evaluate(m.match_xy, m.confidence, disp, args.min_conf)
        H, W = disp.shape
        print(
            f"scale {s:.2f} ({W}x{H}, working {m.stats['working_size'][0]}x{m.stats['working_size'][1]}): "
            f"median EPE {r['median_epe']:.3f} px, >3px {100 * r['bad3']:.1f}%, "
            f"coverage {100 * r['coverage']:.1f}%, {secs:.2f} s, "
            f"(sparse guide {m.stats['seconds_sparse']:.2f} s), "
            f"sparse {m.stats['verified_matches']}/{m.stats['sparse_matches']}, F {m.stats['F']}, "
            f"rectified {m.stats['rectified']}"
        )


if __name__ == "__main__":
    main()

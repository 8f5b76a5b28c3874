"""Will the fit fit in memory? An estimate of the peak before the heavy stages, stated in fit.log.

The estimate adds what a fit holds at its peak: the interpreter with torch, pycolmap and OpenCV loaded; the
training images (float32, held by the loader and again as training tensors); then the larger of the pose and
dense-init working set (features, pycolmap's database and model, the EDGS match fields: per pixel) and
training's (the Gaussians with their gradients and Adam moments, the rasterizer's per-pixel buffers of one
view), which do not coincide. The constants are fitted to measured peaks of garden at 512 px (RSS 0.83, 0.90,
1.20, 1.67 GB at 12, 21, 42, 84 views; estimated 0.91, 0.96, 1.23, 1.76: docs/PERF.md, session 13), so
larger captures are extrapolated. `check_memory` refuses a fit whose estimate exceeds the memory available
now, naming the flags that shrink it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from splat.errors import InputError

BASE_BYTES = 0.7e9  # python + torch + pycolmap + OpenCV + rich (fitted, see above)
IMAGE_COPIES = 2  # the loaded float32 images and the training tensors
FIELD_BYTES_PER_PIXEL = 40  # poses and dense init per pixel (EDGS fields: x, y, confidence float32, ~2 pairs)
GAUSSIAN_BYTES = 59 * 4 * 4  # 59 floats: parameter, gradient and two Adam moments
RASTER_BYTES_PER_PIXEL = 400  # per-pixel compositing state forward and backward (one view at a time)


@dataclass
class MemoryEstimate:
    """Estimated peak resident memory of a fit, in bytes, by part."""

    base: float
    images: float
    init_fields: float
    gaussians: float
    raster: float

    @property
    def total(self) -> float:
        return self.base + self.images + max(self.init_fields, self.gaussians + self.raster)

    def line(self) -> str:
        gb = lambda b: f"{b / 1e9:.1f}"  # noqa: E731
        return (
            f"estimated peak {gb(self.total)} GB (images {gb(self.images)}, "
            f"poses and dense init {gb(self.init_fields)}, Gaussians {gb(self.gaussians)}, "
            f"rasterizer {gb(self.raster)}, libraries {gb(self.base)})"
        )


def estimate_peak(sizes: list[tuple[int, int]], gaussians: int, dense_init: bool = True) -> MemoryEstimate:
    """The estimate for training images of `sizes` (width, height) and a budget of `gaussians`."""
    pixels = float(sum(w * h for w, h in sizes))
    largest = float(max(w * h for w, h in sizes)) if sizes else 0.0
    return MemoryEstimate(
        base=BASE_BYTES,
        images=IMAGE_COPIES * 12 * pixels,
        init_fields=FIELD_BYTES_PER_PIXEL * pixels if dense_init else 0.0,
        gaussians=GAUSSIAN_BYTES * gaussians,
        raster=RASTER_BYTES_PER_PIXEL * largest,
    )


def available_bytes() -> float | None:
    """Memory the system can give now (Linux MemAvailable; None where it cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def peak_rss_bytes() -> float:
    """The largest resident set this process has had so far."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0  # kilobytes on Linux


def check_memory(estimate: MemoryEstimate, available: float | None, views: int, max_side: int | None) -> str:
    """The fit.log line; raises InputError when the estimate exceeds what is available."""
    line = estimate.line()
    if available is None:
        return line + "; the memory available could not be read"
    line += f" of {available / 1e9:.1f} GB available"
    if estimate.total <= available:
        return line
    side = f"--max-side {max(64, int(max_side * 0.7))}" if max_side else "--max-side 1024"
    raise InputError(
        f"this fit needs about {estimate.total / 1e9:.1f} GB and {available / 1e9:.1f} GB are available "
        f"({views} views): lower the resolution ({side} halves the pixels), train on fewer views "
        "(--views, or --frames for a video), or lower --budget"
    )

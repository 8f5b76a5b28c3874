"""Learning rates and the SH degree over training.

Defaults follow 3DGS (Kerbl et al. 2023, and gsplat's simple_trainer): means decay exponentially
from 1.6e-4 to 1.6e-6 times the scene extent over the run; the other Gaussian parameters use fixed
rates. Opacity uses 0.05, the rate of the original 3DGS release and of gsplat, rather than the
0.025 of the later 3DGS update: our method never densifies, so Gaussians the data do not support
must fade (and be pruned) by their opacity alone, and the ADC baseline then matches the published
3DGS numbers it is compared with. sh_rest learns 20x slower than sh_dc, as in 3DGS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from splat.types import Cameras


@dataclass
class LearningRates:
    """Adam learning rates; means and pose rates decay exponentially from `x` to `x_final`.

    means and means_final are multiplied by the scene extent (see `scene_extent`).
    The pose rate applies to the twist [translation / scene extent, rotation in radians].
    """

    means: float = 1.6e-4
    means_final: float = 1.6e-6
    log_scales: float = 5e-3
    quats: float = 1e-3
    opacity_logits: float = 5e-2
    sh_dc: float = 2.5e-3
    sh_rest: float = 2.5e-3 / 20
    pose: float = 1e-4
    pose_final: float = 1e-6
    focal: float = 1e-4
    appearance: float = 1e-3  # the per-view colour maps (TrainConfig.appearance)


def exponential_lr(step: int, lr_init: float, lr_final: float, max_steps: int) -> float:
    """Log-linear interpolation from lr_init (step 0) to lr_final (step max_steps), then constant."""
    if lr_init <= 0 or lr_final <= 0:
        return lr_init
    t = min(max(step / max(max_steps, 1), 0.0), 1.0)
    return math.exp((1 - t) * math.log(lr_init) + t * math.log(lr_final))


def gaussian_lrs(step: int, lrs: LearningRates, max_steps: int, extent: float) -> dict[str, float]:
    """Per-parameter rates at `step` for the keys of `splat.types.Gaussians`."""
    return {
        "means": exponential_lr(step, lrs.means * extent, lrs.means_final * extent, max_steps),
        "log_scales": lrs.log_scales,
        "quats": lrs.quats,
        "opacity_logits": lrs.opacity_logits,
        "sh_dc": lrs.sh_dc,
        "sh_rest": lrs.sh_rest,
    }


def pose_lr(step: int, lrs: LearningRates, max_steps: int) -> float:
    return exponential_lr(step, lrs.pose, lrs.pose_final, max_steps)


def sh_degree_at(step: int, max_degree: int, every: int = 1000) -> int:
    """Active SH degree: 0 at the start, one more band every `every` steps, up to max_degree."""
    if every <= 0:
        return max_degree
    return min(max_degree, step // every)


def scene_extent(cameras: Cameras) -> float:
    """3DGS's scene scale: 1.1 x the largest distance of a camera centre from their mean (1 if degenerate)."""
    centers = cameras.centers.double()
    radius = float((centers - centers.mean(0)).norm(dim=-1).max()) if len(cameras) else 0.0
    return 1.1 * radius if radius > 1e-9 and math.isfinite(radius) else 1.0


def focal_lr(step: int, lrs: LearningRates, max_steps: int) -> float:
    """The focal rate decays by the same factor as the pose rate."""
    ratio = lrs.pose_final / lrs.pose if lrs.pose > 0 else 1.0
    return exponential_lr(step, lrs.focal, lrs.focal * ratio, max_steps)


__all__ = [
    "LearningRates",
    "exponential_lr",
    "focal_lr",
    "gaussian_lrs",
    "pose_lr",
    "scene_extent",
    "sh_degree_at",
]

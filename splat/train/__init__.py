"""Training: losses, visible-only (sparse) Adam, pose deltas, schedules, strategies, the loop."""

from splat.train.adam import GaussianAdam, stochastic_round_bf16
from splat.train.losses import photometric_loss
from splat.train.poses import PoseDeltas, refine_poses
from splat.train.schedule import LearningRates, exponential_lr, scene_extent, sh_degree_at
from splat.train.strategy import ClassicADC, NoDensify, StrategyInfo, make_strategy
from splat.train.trainer import (
    StepReport,
    TrainConfig,
    TrainingDiverged,
    TrainResult,
    checkpoint_gaussians,
    load_checkpoint,
    train,
)

__all__ = [
    "ClassicADC",
    "GaussianAdam",
    "LearningRates",
    "NoDensify",
    "PoseDeltas",
    "StepReport",
    "StrategyInfo",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "checkpoint_gaussians",
    "exponential_lr",
    "load_checkpoint",
    "make_strategy",
    "photometric_loss",
    "refine_poses",
    "scene_extent",
    "sh_degree_at",
    "stochastic_round_bf16",
    "train",
]

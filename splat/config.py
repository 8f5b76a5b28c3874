"""The settings `splat fit`, `splat batch` and `splat eval` share, with the defaults the CLI shows.

The dataclasses here are the one source of every default: splat.cli reads its flag defaults from
them, splat.pipeline runs them. Training settings are splat.train.TrainConfig (its defaults are our
method's schedule); FitConfig.train holds the user's overrides of its fields.

Importing this module loads no torch (`splat --help` reads it; tests/test_wheel.py checks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

BACKENDS = ("auto", "torch", "cpu", "cuda")
"""The one compute vocabulary of render, Adam, SSIM: `torch` the PyTorch reference twin, `cpu` our
native C++ kernels (splat/native), `cuda` gsplat on the GPU, `auto` by tensor device and what is built."""

DEVICES = ("auto", "cpu", "cuda")

REFINE_STEPS = 400
"""`splat eval --refine-steps`: the step cap of each test view's alignment (garden 192 px, 1 degree
and 4 % focal off: 130-250 steps; splat.eval.align.AlignSettings.max_steps)."""


@dataclass
class FitConfig:
    """Everything `splat fit` can change; the defaults do the right thing."""

    max_side: int | None = 512  # images are downscaled so the longer side is at most this
    poses: str = "auto"  # auto | sparse | colmap | given:DIR (a COLMAP model)
    focal: float | None = None  # focal in pixels at the loaded size, if known (held fixed; beats EXIF)
    exif: bool = True  # use the photos' EXIF focal when every photo carries one
    accept_unverified: bool = False  # keep a camera solution that fails its verification (marked so)
    init: str = "edgs"  # edgs | sparse | given:PLY
    budget: int | None = 80_000  # garden 12 views: 80k beat 130k in held-out PSNR (docs/PERF.md)
    budget_rule: str = "random"  # random | confidence | voxel
    views: list[str] | None = None  # train on these image names only (others are held out)
    device: str = "auto"  # one of DEVICES
    seed: int = 0
    train: dict = field(default_factory=dict)  # overrides of splat.train.TrainConfig fields

    def train_config(self, device):
        """The training settings: TrainConfig's defaults, the user's overrides, this fit's device and seed."""
        from splat.train import TrainConfig

        return TrainConfig(**{**self.train, "device": str(device), "seed": self.seed})


def resolve_device(device: str):
    """The torch.device for a DEVICES word ("auto": CUDA when torch sees one, else the CPU).

    Raises InputError for "cuda" on a machine where torch sees no CUDA device."""
    import torch

    from splat.errors import InputError

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    return torch.device(device)

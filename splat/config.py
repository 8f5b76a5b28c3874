"""The settings `splat fit`, `splat batch` and `splat eval` share, with the defaults the CLI shows.

The dataclasses here are the one source of every default and of the flags that set them: each field
made by `setting()` carries its flag's help, argparse type or choices and, where it is not --field-name,
the flag's name; splat.cli.add_flags turns them into the flags of fit, batch and eval (tests/test_config.py
fails when a field has no flag or a flag no field). Training settings are splat.train.TrainConfig (its
defaults are our method's schedule); FitConfig.train holds the user's overrides of its fields, and
TrainFlags names the ones the CLI offers.

Importing this module loads no torch (`splat --help` reads it; tests/test_wheel.py checks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from splat.checks import count, names, number, side

BACKENDS = ("auto", "torch", "cpu", "cuda")
"""The one compute vocabulary of render, Adam, SSIM: `torch` the PyTorch reference twin, `cpu` our
native C++ kernels (splat/native), `cuda` gsplat on the GPU, `auto` by tensor device and what is built."""

DEVICES = ("auto", "cpu", "cuda")

REFINE_STEPS = 400
"""`splat eval --refine-steps`: the step cap of each test view's alignment (garden 192 px, 1 degree
and 4 % focal off: 130-250 steps; splat.eval.align.AlignSettings.max_steps)."""


QUALITY = {
    # `splat fit --quality`: the training steps and Gaussian budget of each preset, where --steps and
    # --budget are not given (measured: docs/PERF.md, session 13)
    "preview": {"steps": 500, "budget": 40_000},
    "default": {"steps": 1500, "budget": 80_000},
    "high": {"steps": 3000, "budget": 160_000},
}


def setting(default, help: str, *, flag: str | None = None, type=None, choices=None):
    """A dataclass field with what its `splat` flag needs (splat.cli.add_flags reads it).

    help: the flag's help (argparse expands %(default)s); flag: its name where it is not --field-name;
    type: the argparse type that parses and checks the value (splat.checks); a bool field's flag takes
    no value and sets the field to the opposite of its default."""
    return field(default=default, metadata={"help": help, "flag": flag, "type": type, "choices": choices})


@dataclass
class FitConfig:
    """Everything `splat fit` can change; the defaults do the right thing."""

    max_side: int | None = setting(  # images are downscaled so the longer side is at most this
        512,
        "downscale images to this longer side (default %(default)s)",
        type=side,
    )
    frames: int = setting(  # a video input: how many frames to train on (splat.io.video)
        48,
        "a video's training frames: the sharpest of each of N equal stretches (default %(default)s)",
        type=count(2, "give 2 or more frames"),
    )
    poses: str = setting("auto", "auto | sparse | colmap | given:DIR (COLMAP model)")
    focal: float | None = setting(  # known focal (held fixed; beats EXIF)
        None,
        "focal length in pixels at the loaded size, if known",
        type=number(0, fix="give the focal in pixels, > 0"),
    )
    exif: bool = setting(  # use the photos' EXIF focal when every photo carries one
        True, "ignore the photos' EXIF focal and estimate it from the images", flag="--no-exif"
    )
    accept_unverified: bool = setting(
        False, "keep a camera solution that fails its verification (marked in poses.json and metrics.json)"
    )
    init: str = setting(
        "edgs", "edgs | sparse | given:PATH.ply | prior:MODEL.pt2 (a local depth or point-map model)"
    )
    quality: str = setting(
        "default",
        "training steps and Gaussian budget: "
        + "; ".join(f"{k} {v['steps']} steps, {v['budget'] // 1000}k" for k, v in QUALITY.items())
        + " (--steps, --budget override)",
        choices=tuple(QUALITY),
    )
    budget: int | None = setting(  # None: the --quality preset's (garden 12 views: 80k beat 130k, PERF.md)
        None,
        "max initial Gaussians (default: --quality's; 0: no limit)",
        type=count(0, "give 0 (no limit) or more Gaussians"),
    )
    far_field: int | None = setting(  # None: a tenth of the budget (6 views: +0.4..+1.8 dB held out, PERF.md)
        None,
        "Gaussians on a far shell for the sky and distant background, beyond the budget (default: a tenth "
        "of the budget, 8000 at --quality default; 0: none)",
        type=count(0, "give 0 (none) or more Gaussians"),
    )
    budget_rule: str = setting(
        "random",
        "which Gaussians the budget keeps (default %(default)s)",
        choices=("random", "confidence", "voxel"),
    )
    views: list[str] | None = setting(
        None, "comma-separated image names to train on (others held out)", type=names
    )
    device: str = setting("auto", "where to compute (auto: CUDA when torch sees one)", choices=DEVICES)
    seed: int = setting(0, "random seed (default %(default)s)", type=count(0, "give 0 or more"))
    train: dict = field(default_factory=dict)  # overrides of splat.train.TrainConfig fields (TrainFlags')

    def budget_limit(self) -> int:
        """The initial Gaussians kept: --budget, else the --quality preset's (0: no limit)."""
        return QUALITY[self.quality]["budget"] if self.budget is None else self.budget

    def far_field_count(self) -> int:
        """Far-field Gaussians: --far-field, else a tenth of the budget (8000 when it is unlimited)."""
        if self.far_field is not None:
            return self.far_field
        budget = self.budget_limit()
        return budget // 10 if budget else 8000

    def train_config(self, device):
        """The training settings: TrainConfig's defaults, the --quality preset's steps, the user's
        overrides, this fit's device and seed."""
        from splat.train import TrainConfig

        preset = {"steps": QUALITY[self.quality]["steps"]}
        return TrainConfig(**{**preset, **self.train, "device": str(device), "seed": self.seed})


@dataclass
class TrainFlags:
    """The splat.train.TrainConfig fields the CLI can override (FitConfig.train); None: TrainConfig's."""

    steps: int | None = setting(None, "training steps", type=count(1, "give 1 or more training steps"))
    backend: str | None = setting(None, "rasterizer backend", choices=BACKENDS)
    antialias: bool = setting(
        False,
        "train with the anti-aliased rasterizer (Mip-Splatting filter; splat.ply says so, and `splat eval` / "
        "`splat view` render it that way)",
    )
    depth_weight: float | None = setting(
        None,
        "weight of the depth term: rendered depth against the init's depth maps (edgs or prior: init)",
        type=number(0, fix="give a weight > 0"),
    )
    appearance: bool = setting(
        False,
        "learn a colour correction per photo (exposure, white balance) so it stays out of the scene",
    )


@dataclass
class EvalConfig:
    """What `splat eval` can change (splat.eval.evaluate.evaluate_run's arguments); `splat batch` shares
    refine_steps."""

    refine_steps: int | None = setting(  # None: splat.eval.align.AlignSettings.max_steps
        None,
        f"step cap of each test view's alignment (default {REFINE_STEPS})",
        type=count(1, f"give 1 or more alignment steps (default {REFINE_STEPS})"),
    )
    backend: str = setting("auto", "rasterizer backend of the alignment", choices=BACKENDS)


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

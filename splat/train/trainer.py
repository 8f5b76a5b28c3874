"""The training loop: one random view per step, photometric loss, sparse Adam, optional pose deltas.

    for each step:  pick a view (seeded) -> render -> loss -> backward
                    -> Adam on the visible Gaussians (+ pose deltas) -> strategy (prune / densify)

Checkpoints hold everything the next step depends on (parameters, Adam moments and step counts,
pose deltas and their Adam, strategy state, the RNG, the step), so `resume=True` continues exactly
where an interrupted run stopped: with the same seed it reproduces the uninterrupted run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from splat.config import resolve_device
from splat.errors import SplatWarning, TrainingDiverged
from splat.io.atomic import atomic_path
from splat.progress import bar, showing
from splat.train.adam import GaussianAdam
from splat.train.appearance import Appearance, appearance_optimizer
from splat.train.data import check_sizes, image_tensors, limit_side, psnr_value, resolution_levels
from splat.train.losses import anisotropy_loss, depth_loss, pack_depth, photometric_loss
from splat.train.poses import PoseDeltas, pose_optimizer, scene_depths
from splat.train.schedule import LearningRates, focal_lr, gaussian_lrs, pose_lr, scene_extent, sh_degree_at
from splat.train.strategy import ClassicADC, NoDensify, StrategyInfo, make_strategy
from splat.types import Cameras, Gaussians

CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_CHECKPOINT_NAME = "checkpoint.prev.pt"  # the one before, kept in case the newest is unreadable
SH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class TrainConfig:
    """Training settings; the defaults are our method's (`splat fit`: short schedule, pose refinement,
    no densification); splat.config.FitConfig.train overrides them for `splat fit`.

    Attributes:
        steps: optimisation steps (one view each).
        lrs: learning rates (a LearningRates or a dict of its fields).
        lambda_dssim: weight of 1 - SSIM in the loss.
        sh_degree: highest SH degree trained; sh_degree_every: steps per added degree.
        backend: render backend ("auto", "torch", "cpu", "cuda"); device: "auto", "cpu", "cuda".
        seed: seeds the view order, split sampling and stochastic rounding.
        background: RGB behind the Gaussians.
        pose_refine: learn per-view pose deltas (view 0 fixed); focal_refine: also per-view focal.
        strategy: "none" (NoDensify: prune only) or "adc" (3DGS densification), or an instance;
            strategy_options: field overrides for the named strategy.
        sparse_adam: update only visible Gaussians each step (see adam.py); else dense Adam.
        adam_rescale_cap: with sparse_adam, scale a visible Gaussian's step by
            min(cap, sqrt(steps / its updates)) so it moves as far as dense Adam would (0 = off).
        sh_rest_dtype: storage of sh_rest: "float32", "float16" or "bfloat16" (computed in fp32).
        eval_every: every N steps log the mean PSNR over all training views (0 = only at the end).
        log_every: steps per history record (mean loss/PSNR since the previous record).
        checkpoint_every: steps between checkpoints when a checkpoint_dir is given (0 = only at the end).
        max_side: downscale views so the longer side is at most this many pixels.
        resolution_schedule: coarse-to-fine ((fraction, factor), ...): steps before fraction x steps
            render at 1/factor of the size (first matching entry), later steps at full size; e.g.
            ((0.3, 4), (0.6, 2)). A level whose longer side would fall under 64 px is skipped.
        antialias: train with the anti-aliased rasterizer (Mip-Splatting's 2D filter with opacity
            compensation, gsplat's 'antialiased' mode); the scene must then be rendered that way too
            (RunFolder.render_settings).
        depth_weight: weight of the depth term, the mean relative difference between the rendered depth and
            the init's depth maps (`train(depth_targets=)`), confidence-weighted, where the render is
            opaque (alpha > 0.5); 0: off. It holds the Gaussians near the surfaces the views agreed on.
        max_anisotropy: with anisotropy_weight > 0, penalise visible Gaussians whose longest axis is more than
            this many times their shortest (PhysGaussian's ratio term: the needles a view sees end-on and no
            other view constrains become floaters elsewhere); anisotropy_weight: its weight (0: off).
        appearance: learn a per-view affine colour map applied to the render before the loss
            (splat.train.appearance; exposure and white balance then stay out of the Gaussians);
            its learning rate is lrs.appearance.
    """

    steps: int = 1500
    lrs: LearningRates | dict = field(default_factory=LearningRates)
    lambda_dssim: float = 0.2
    sh_degree: int = 3
    sh_degree_every: int = 300
    backend: str = "auto"
    device: str = "auto"
    seed: int = 0
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pose_refine: bool = True
    focal_refine: bool = False
    strategy: str | NoDensify | ClassicADC = "none"
    strategy_options: dict = field(default_factory=dict)
    sparse_adam: bool = True
    # visible-only Adam with visibility rescaling: +0.27..0.73 dB held-out over plain visible-only
    # Adam, level with dense Adam (docs/PERF.md)
    adam_rescale_cap: float = 4.0
    sh_rest_dtype: str = "float32"
    eval_every: int = 0
    log_every: int = 50
    checkpoint_every: int = 250
    max_side: int | None = None
    # 30% of the steps at 1/4 size, 30% at 1/2: a third less time, same held-out PSNR (docs/PERF.md)
    resolution_schedule: tuple = ((0.3, 4), (0.6, 2))
    antialias: bool = False
    appearance: bool = False
    depth_weight: float = 0.0
    max_anisotropy: float = 10.0
    anisotropy_weight: float = 0.0

    @property
    def render_settings(self):
        from splat.render import RenderSettings

        return RenderSettings(antialias=self.antialias)

    def __post_init__(self) -> None:
        if isinstance(self.lrs, dict):
            self.lrs = LearningRates(**self.lrs)
        if self.sh_rest_dtype not in SH_DTYPES:
            raise ValueError(f"sh_rest_dtype {self.sh_rest_dtype!r} not in {sorted(SH_DTYPES)}")
        if isinstance(self.strategy, str):
            make_strategy(self.strategy, **self.strategy_options)  # validate early
        self.resolution_schedule = tuple((float(f), int(k)) for f, k in self.resolution_schedule)
        if any(k < 1 for _, k in self.resolution_schedule):
            raise ValueError(f"resolution_schedule factors must be >= 1, got {self.resolution_schedule}")


def resolution_factor(step: int, cfg: TrainConfig) -> int:
    """Downscale factor of the views at `step` (1 = full size) from cfg.resolution_schedule."""
    for fraction, factor in cfg.resolution_schedule:
        if step < fraction * cfg.steps:
            return factor
    return 1


@dataclass
class StepReport:
    """Passed to callbacks after every step (params is the live dict: callbacks may edit it)."""

    step: int
    loss: float
    psnr: float
    view: int
    n_gaussians: int
    params: dict[str, Tensor]

    def gaussians(self) -> Gaussians:
        """A detached view of the live parameters as the renderer sees them (for the live viewer)."""
        return params_to_gaussians({k: v.detach() for k, v in self.params.items()})


@dataclass
class TrainResult:
    """Trained Gaussians (float32, unit quaternions), refined cameras and the logged history."""

    gaussians: Gaussians
    cameras: Cameras
    history: list[dict]
    steps: int
    seconds: float
    final_psnr: float
    appearance: list[dict] | None = None  # per view Appearance.summary() (TrainConfig.appearance)

    @property
    def final_loss(self) -> float:
        losses = [h["loss"] for h in self.history if "loss" in h]
        return losses[-1] if losses else float("nan")

    def summary(self) -> dict:
        return {
            "steps": self.steps,
            "seconds": round(self.seconds, 3),
            "final_loss": self.final_loss,
            "final_train_psnr": self.final_psnr,
            "gaussians": len(self.gaussians),
            **({"appearance": self.appearance} if self.appearance is not None else {}),
        }


@dataclass
class _Run:
    """Everything that changes during training (all of it goes into a checkpoint)."""

    opt: GaussianAdam
    deltas: PoseDeltas | None
    pose_opt: torch.optim.Adam | None
    strategy: NoDensify | ClassicADC
    strategy_state: dict
    generator: torch.Generator
    extent: float
    appearance: Appearance | None = None
    appearance_opt: torch.optim.Adam | None = None
    step: int = 0
    rng_state: Tensor | None = None  # generator state after the last completed step
    elapsed: float = 0.0
    history: list[dict] = field(default_factory=list)
    window: list[float] = field(default_factory=lambda: [0.0, 0.0, 0])  # loss sum, psnr sum, steps


def initial_params(gaussians: Gaussians, cfg: TrainConfig, device) -> dict[str, Tensor]:
    """Gaussian tensors as float32 training parameters (sh_rest in cfg.sh_rest_dtype, cfg.sh_degree bands)."""
    g = gaussians.with_sh_degree(cfg.sh_degree).to(device=device, dtype=torch.float32)
    params = {k: v.detach().clone() for k, v in g.tensors().items()}
    params["sh_rest"] = params["sh_rest"].to(SH_DTYPES[cfg.sh_rest_dtype])
    return params


def params_to_gaussians(params: dict[str, Tensor]) -> Gaussians:
    """The Gaussians the renderer sees: sh_rest upcast to float32 (differentiable)."""
    return Gaussians(**{k: v.float() if k == "sh_rest" else v for k, v in params.items()})


def export_gaussians(params: dict[str, Tensor]) -> Gaussians:
    """Detached float32 Gaussians with unit quaternions."""
    g = params_to_gaussians({k: v.detach() for k, v in params.items()}).clone()
    g.quats = torch.nn.functional.normalize(g.quats, dim=-1)
    return g


def _setup(gaussians: Gaussians, cameras: Cameras, cfg: TrainConfig, device) -> _Run:
    extent = scene_extent(cameras)
    opt = GaussianAdam(initial_params(gaussians, cfg, device), gaussian_lrs(0, cfg.lrs, cfg.steps, extent),
                       sparse=cfg.sparse_adam, seed=cfg.seed, rescale_cap=cfg.adam_rescale_cap)  # fmt: skip
    deltas = pose_opt = None
    if cfg.pose_refine or cfg.focal_refine:
        fixed = (0,) if cfg.pose_refine else tuple(range(len(cameras)))  # focal only: poses stay put
        pivot = scene_depths(gaussians.means.to(device), cameras)
        deltas = PoseDeltas.create(
            len(cameras), extent=extent, fixed=fixed, focal=cfg.focal_refine, pivot=pivot, device=device
        )
        pose_opt = pose_optimizer(deltas, cfg.lrs.pose, cfg.lrs.focal)
    strategy = (
        cfg.strategy
        if not isinstance(cfg.strategy, str)
        else make_strategy(cfg.strategy, **cfg.strategy_options)
    )
    generator = torch.Generator(device="cpu").manual_seed(int(cfg.seed))
    state = strategy.initialize_state(len(opt), device=device)
    appearance = Appearance.create(len(cameras), device=device) if cfg.appearance else None
    appearance_opt = appearance_optimizer(appearance, cfg.lrs.appearance) if appearance is not None else None
    return _Run(opt, deltas, pose_opt, strategy, state, generator, extent, appearance, appearance_opt,
                rng_state=generator.get_state())  # fmt: skip


def _step(run: _Run, levels: dict, cfg: TrainConfig, guard: _InterruptGuard, depths=None) -> tuple:
    """One training step; returns (loss, psnr, view). Raises _NonFinite before changing anything.
    depths: factor -> packed depth targets per view (pack_depth) for cfg.depth_weight; None: no term."""
    from splat.render import render

    i = run.step
    factor = resolution_factor(i, cfg)
    cameras, targets = levels.get(factor, levels[1])
    run.opt.lr.update(gaussian_lrs(i, cfg.lrs, cfg.steps, run.extent))
    v = int(torch.randint(len(cameras), (1,), generator=run.generator))
    cam = run.deltas.camera(cameras, v) if run.deltas is not None else cameras[v]
    degree = sh_degree_at(i, cfg.sh_degree, cfg.sh_degree_every)
    out = render(params_to_gaussians(run.opt.params), cam, sh_degree=degree, background=cfg.background,
                 backend=cfg.backend, settings=cfg.render_settings)  # fmt: skip
    image = run.appearance.apply(out.image, v) if run.appearance is not None else out.image
    loss = photometric_loss(image, targets[v], cfg.lambda_dssim)
    if depths is not None:
        loss = loss + cfg.depth_weight * depth_loss(out.depth, out.alpha, depths.get(factor, depths[1])[v])
    if cfg.anisotropy_weight:
        loss = loss + cfg.anisotropy_weight * anisotropy_loss(run.opt.params["log_scales"], out.visible,
                                                              cfg.max_anisotropy)  # fmt: skip
    if not bool(torch.isfinite(loss)):
        raise _NonFinite(float(loss.detach()))
    loss.backward()
    with guard.updating():
        run.opt.step(out.visible)
        run.opt.zero_grad()
        if run.pose_opt is not None:
            run.deltas.zero_fixed_grads()
            run.pose_opt.param_groups[0]["lr"] = pose_lr(i, cfg.lrs, cfg.steps)
            if len(run.pose_opt.param_groups) > 1:
                run.pose_opt.param_groups[1]["lr"] = focal_lr(i, cfg.lrs, cfg.steps)
            run.pose_opt.step()
            run.pose_opt.zero_grad(set_to_none=True)
        if run.appearance_opt is not None:
            run.appearance_opt.step()
            run.appearance_opt.zero_grad(set_to_none=True)
            run.appearance.project_gauge()
        info = StrategyInfo(
            i + 1, out, int(cameras.width[v]), int(cameras.height[v]), run.extent, run.generator
        )
        run.strategy.step_post_backward(run.opt, run.strategy_state, info)
        run.step = i + 1
        run.rng_state = run.generator.get_state()
    return float(loss.detach()), psnr_value(image, targets[v]), v


@torch.no_grad()
def mean_psnr(
    params: dict[str, Tensor], cameras: Cameras, targets: list[Tensor], cfg: TrainConfig, run=None
) -> float:
    """Mean PSNR over all views at the current state (with a run: its pose deltas, appearance maps and
    the SH degree of its last step; without: the cameras as given and every stored SH band)."""
    from splat.render import render

    g = params_to_gaussians(params)
    cams, degree = cameras, None
    if run is not None:
        cams = run.deltas.apply(cameras) if run.deltas is not None else cameras
        degree = sh_degree_at(max(run.step - 1, 0), cfg.sh_degree, cfg.sh_degree_every)
    values = []
    for v in range(len(cams)):
        image = render(g, cams[v], sh_degree=degree, background=cfg.background, backend=cfg.backend,
                       settings=cfg.render_settings).image  # fmt: skip
        if run is not None and run.appearance is not None:
            image = run.appearance.apply(image, v).clamp(0, 1)
        values.append(psnr_value(image, targets[v]))
    return sum(values) / len(values)


def _log(run: _Run, loss: float, psnr: float, cfg: TrainConfig) -> dict | None:
    w = run.window
    w[0], w[1], w[2] = w[0] + loss, w[1] + psnr, w[2] + 1
    if run.step % max(cfg.log_every, 1) and run.step != cfg.steps:
        return None
    rec = {"step": run.step, "loss": w[0] / w[2], "psnr": w[1] / w[2], "n_gaussians": len(run.opt),
           "time": run.elapsed}  # fmt: skip
    run.history.append(rec)
    run.window = [0.0, 0.0, 0]
    return rec


def train(
    gaussians: Gaussians,
    cameras: Cameras,
    images: Tensor | Sequence,
    cfg: TrainConfig | None = None,
    *,
    depth_targets: Sequence[tuple] | None = None,
    callbacks: Sequence[Callable[[StepReport], None]] = (),
    progress: bool | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Optimise `gaussians` (and optionally the camera poses) to reproduce `images`.

    Args:
        gaussians: initial Gaussians (not modified).
        cameras: V training views; images: V images (H, W, 3) in [0, 1] (or uint8) of those sizes.
        cfg: TrainConfig.
        depth_targets: per view (depth (H,W), confidence (H,W)) at the image's size, for cfg.depth_weight
            (the init's depth maps); ignored when the weight is 0.
        callbacks: called with a StepReport after every step.
        progress: show a rich progress bar (default: when stderr is a terminal).
        checkpoint_dir: folder for checkpoint.pt (written every cfg.checkpoint_every steps, at the
            end, on Ctrl-C and on divergence).
        resume: continue from checkpoint_dir/checkpoint.pt when it exists (an unreadable one is skipped
            with a warning for the one before it, checkpoint.prev.pt; neither readable: from the start).

    Returns:
        TrainResult (Gaussians and cameras on the training device; cameras keep their dtype and
        the input resolution).

    Raises:
        TrainingDiverged: the loss became NaN/inf (after saving the last good state).
    """
    cfg = cfg or TrainConfig()
    device = resolve_device(cfg.device)
    cams_full = cameras.to(device=device)
    cams, targets = limit_side(cams_full, image_tensors(images, device), cfg.max_side)
    check_sizes(cams, targets)
    run = _setup(gaussians, cams, cfg, device)
    factors = [k for _, k in cfg.resolution_schedule]
    levels = resolution_levels(cams, targets, factors, min_side=64)
    depths = None
    if cfg.depth_weight and depth_targets is not None:
        if len(depth_targets) != len(cams):
            raise ValueError(f"{len(depth_targets)} depth maps for {len(cams)} views")
        packed = limit_side(cams_full, [pack_depth(d, c, device) for d, c in depth_targets], cfg.max_side)[1]
        check_sizes(cams, packed)
        depths = {k: level[1] for k, level in resolution_levels(cams, packed, factors, min_side=64).items()}
    ckpt = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    state = _readable_checkpoint(ckpt) if resume and ckpt is not None else None
    if state is not None:
        _restore(run, state, device)
    show = sys.stderr.isatty() if progress is None else progress
    tick = time.perf_counter()
    try:
        with _InterruptGuard() as guard, showing(show), bar("train", cfg.steps) as steps_bar:
            steps_bar.update(run.step)
            while run.step < cfg.steps:
                try:
                    loss, psnr, v = _step(run, levels, cfg, guard, depths)
                except _NonFinite as e:
                    path = _save_last_good(run, cfg, ckpt)
                    raise TrainingDiverged(
                        f"training diverged at step {run.step + 1}: the loss is {e.value}; the last good "
                        f"state is saved in {path} (lower the learning rates or check the images and cameras)"
                    ) from None
                run.elapsed += time.perf_counter() - tick
                rec = _log(run, loss, psnr, cfg)
                if cfg.eval_every and run.step % cfg.eval_every == 0 and rec is not None:
                    rec["train_psnr"] = mean_psnr(run.opt.params, cams, targets, cfg, run)
                steps_bar.update(run.step, f"loss {loss:.4f}  PSNR {psnr:.2f}  N {len(run.opt)}")
                if ckpt is not None and cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0:
                    _save(run, cfg, ckpt)
                for cb in callbacks:
                    cb(StepReport(run.step, loss, psnr, v, len(run.opt), run.opt.params))
                tick = time.perf_counter()  # time counts steps only, not evaluation/checkpoints/callbacks
    except KeyboardInterrupt:
        if ckpt is not None:
            _save(run, cfg, ckpt)
        raise
    final_psnr = mean_psnr(run.opt.params, cams, targets, cfg, run)
    if ckpt is not None:
        _save(run, cfg, ckpt)
    seconds = run.elapsed
    out_cams = run.deltas.apply(cams_full) if run.deltas is not None else cams_full
    appearance = run.appearance.summary() if run.appearance is not None else None
    return TrainResult(export_gaussians(run.opt.params), out_cams, run.history, run.step, seconds, final_psnr,
                       appearance)  # fmt: skip


# ---- checkpoints -------------------------------------------------------------------------------


def _checkpoint(run: _Run, cfg: TrainConfig) -> dict:
    return {
        "version": 1,
        "step": run.step,
        "params": {k: v.detach().clone() for k, v in run.opt.params.items()},
        "optimizer": run.opt.state_dict(),
        "poses": None if run.deltas is None else run.deltas.state_dict(),
        "pose_optimizer": None if run.pose_opt is None else run.pose_opt.state_dict(),
        "appearance": None if run.appearance is None else run.appearance.state_dict(),
        "appearance_optimizer": None if run.appearance_opt is None else run.appearance_opt.state_dict(),
        "strategy": run.strategy_state,
        "generator": run.rng_state,
        "extent": run.extent,
        "elapsed": run.elapsed,
        "history": run.history,
        "window": run.window,
        "config": asdict(cfg),
    }


def _save(run: _Run, cfg: TrainConfig, path: Path) -> Path:
    """Atomic torch.save of the run (temp file in the same folder, then os.replace); the checkpoint it
    replaces becomes PREVIOUS_CHECKPOINT_NAME. Killed at any point, one complete checkpoint is left."""
    data = _checkpoint(run, cfg)
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
        if path.exists():
            os.replace(path, path.with_name(PREVIOUS_CHECKPOINT_NAME))
    return path


def _readable_checkpoint(path: Path) -> dict | None:
    """The newest checkpoint at `path` (then its previous one) that loads and holds a training state;
    each unreadable one is skipped with a SplatWarning naming it. None: nothing to resume from."""
    skipped = []
    for candidate in (path, path.with_name(PREVIOUS_CHECKPOINT_NAME)):
        if not candidate.exists():
            continue
        try:
            state = load_checkpoint(candidate)
            missing = {"step", "params", "optimizer", "generator"} - set(state)
            if missing:
                raise ValueError(f"no {', '.join(sorted(missing))}")
            return state
        except Exception as e:  # noqa: BLE001 - truncated, corrupted or foreign: skipped, said
            why = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
            skipped.append(candidate)
            warnings.warn(f"checkpoint {candidate} is unreadable ({why}); skipped", SplatWarning, 2)
    if skipped:
        warnings.warn(f"no readable checkpoint in {path.parent}: training starts over", SplatWarning, 2)
    return None


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by train() (tensors on the CPU)."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def checkpoint_gaussians(path: str | Path) -> Gaussians:
    """The Gaussians stored in a checkpoint (float32, unit quaternions)."""
    return export_gaussians(load_checkpoint(path)["params"])


def _restore(run: _Run, ck: dict, device) -> None:
    params = {k: v.to(device) for k, v in ck["params"].items()}
    opt = GaussianAdam(params, ck["optimizer"]["lr"], sparse=run.opt.sparse)
    opt.load_state_dict(ck["optimizer"])
    opt.sparse, opt.rescale_cap = run.opt.sparse, run.opt.rescale_cap  # the config in force decides
    run.opt = opt
    if run.deltas is not None and ck["poses"] is not None:
        run.deltas.load_state_dict(ck["poses"])
        run.pose_opt.load_state_dict(ck["pose_optimizer"])
    if run.appearance is not None and ck.get("appearance") is not None:
        run.appearance.load_state_dict(ck["appearance"])
        run.appearance_opt.load_state_dict(ck["appearance_optimizer"])
    run.strategy_state = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in ck["strategy"].items()}
    run.generator.set_state(ck["generator"])
    run.rng_state = ck["generator"]
    run.step, run.elapsed, run.extent = int(ck["step"]), float(ck["elapsed"]), float(ck["extent"])
    run.history, run.window = list(ck["history"]), list(ck["window"])


def _save_last_good(run: _Run, cfg: TrainConfig, path: Path | None) -> Path:
    """Save the state before the failed step, without Gaussians holding non-finite values."""
    finite = torch.ones(len(run.opt), dtype=torch.bool, device=run.opt.params["means"].device)
    for v in run.opt.params.values():
        finite &= torch.isfinite(v.detach().float()).reshape(len(v), -1).all(-1)
    if not bool(finite.all()) and bool(finite.any()):
        run.opt.keep(finite)
        run.strategy_state = run.strategy.initialize_state(len(run.opt), device=finite.device)
    if run.deltas is not None:
        with torch.no_grad():
            for p in run.deltas.parameters():
                p.nan_to_num_(0.0, 0.0, 0.0)
    if path is None:
        path = Path(tempfile.mkdtemp(prefix="splat-diverged-")) / CHECKPOINT_NAME
    return _save(run, cfg, path)


class _NonFinite(Exception):
    def __init__(self, value: float) -> None:
        super().__init__(value)
        self.value = value


# ---- interruption ------------------------------------------------------------------------------


class _InterruptGuard:
    """Ctrl-C (SIGINT) and SIGTERM (`kill`, a scheduler stopping the job) during a parameter update are
    held back until the update is complete, then raise KeyboardInterrupt, so the checkpoint saved on the way
    out is always the state after a whole number of steps. Handlers are only taken over from their
    defaults (Python's Ctrl-C handler; for SIGTERM SIG_DFL, which would kill the process unsaved, or with a
    stack dump when pycolmap's glog handler sits beneath it, or the Ctrl-C handler the CLI gives it)."""

    def __init__(self) -> None:
        self.busy = self.pending = False
        self._old: dict = {}

    def __enter__(self) -> _InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            defaults = {
                signal.SIGINT: (signal.default_int_handler,),
                signal.SIGTERM: (signal.SIG_DFL, signal.default_int_handler),
            }
            for sig, default in defaults.items():
                if signal.getsignal(sig) in default:
                    self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}

    def _handler(self, signum, frame) -> None:
        if self.busy:
            self.pending = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def updating(self):
        self.busy = True
        try:
            yield
        finally:
            self.busy = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "StepReport",
    "checkpoint_gaussians",
    "load_checkpoint",
    "train",
]

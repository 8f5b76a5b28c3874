"""Strategies: 3DGS densification grows under-reconstructed scenes; NoDensify only ever prunes."""

import math
import os

import pytest
import torch

from splat.render.render import RenderOutput
from splat.train import ClassicADC, NoDensify, TrainConfig, train
from splat.train.adam import GaussianAdam
from splat.train.strategy import StrategyInfo, split_children
from splat.train.synthetic import arc_cameras, fastest_cpu_backend, random_gaussians, render_views

BACKEND = os.environ.get("SPLAT_TEST_TRAIN_BACKEND") or fastest_cpu_backend()


pytestmark = pytest.mark.usefixtures("one_thread")


def optimizer(n: int, log_scale: float = -5.0, opacity: float = 0.5) -> GaussianAdam:
    g = random_gaussians(n, sh_degree=1)
    g.log_scales = torch.full((n, 3), log_scale)
    g.opacity_logits = torch.full((n,), math.log(opacity / (1 - opacity)))
    lr = dict.fromkeys(g.tensors(), 1e-3)
    return GaussianAdam(g.tensors(), lr)


def info(step: int, grad2d: torch.Tensor, visible: torch.Tensor, width=64, height=48) -> StrategyInfo:
    means2d = torch.zeros(len(visible), 2, requires_grad=True)
    means2d.grad = grad2d
    z = torch.zeros(height, width)
    out = RenderOutput(z[..., None].expand(-1, -1, 3), z, z, visible.int(), visible, means2d, "torch")
    return StrategyInfo(step, out, width, height, 1.0, torch.Generator().manual_seed(0))


def test_adc_clones_small_and_splits_large_high_gradient_gaussians():
    opt = optimizer(6)
    with torch.no_grad():
        opt.params["log_scales"][3:] = math.log(0.5)  # large (> percent_dense x extent)
    adc = ClassicADC(refine_start=0, refine_every=1, reset_every=1000)
    state = adc.initialize_state(6)
    # pixel gradients; x 32 (width/2) gives NDC norms 3.2e-4 (high) or 3.2e-5 (low)
    g = torch.tensor([[1e-5, 0], [1e-6, 0], [1e-5, 0], [1e-5, 0], [1e-6, 0], [0, 0]])
    visible = torch.tensor([True, True, True, True, True, False])
    before = {k: v.detach().clone() for k, v in opt.params.items()}
    adc.step_post_backward(opt, state, info(1, g, visible))
    # originals 0,1,2,4,5 stay (3 split away); clones of 0 and 2; two children of 3
    assert len(opt) == 5 + 2 + 2
    assert state["cloned"] == 2 and state["split"] == 1
    means = opt.params["means"].detach()
    assert torch.equal(means[5:7], before["means"][[0, 2]])
    children_scales = opt.params["log_scales"].detach()[7:]
    torch.testing.assert_close(children_scales, (before["log_scales"][3] - math.log(1.6)).expand(2, 3))
    assert ((means[7:] - before["means"][3]).norm(dim=-1) < 4 * 0.5 * math.sqrt(3)).all()
    assert not opt.state["means"]["exp_avg"][5:].any()
    assert len(state["grad2d"]) == len(opt) and not state["grad2d"].any()


def test_adc_prunes_transparent_and_resets_opacity():
    opt = optimizer(5)
    with torch.no_grad():
        opt.params["opacity_logits"][:2] = -8.0  # opacity 3e-4
    adc = ClassicADC(refine_start=0, refine_every=2, reset_every=4)
    state = adc.initialize_state(5)
    zeros, visible = torch.zeros(5, 2), torch.ones(5, dtype=torch.bool)
    adc.step_post_backward(opt, state, info(1, zeros, visible))
    assert len(opt) == 5  # not a refine step
    adc.step_post_backward(opt, state, info(2, zeros, visible))
    assert len(opt) == 3
    adc.step_post_backward(opt, state, info(4, torch.zeros(3, 2), visible[:3]))
    assert torch.sigmoid(opt.params["opacity_logits"]).max().item() == pytest.approx(0.01, rel=1e-4)


def test_split_children_sample_inside_the_parent():
    g = {k: v for k, v in random_gaussians(1000, sh_degree=0).tensors().items()}
    g["log_scales"] = torch.log(torch.tensor([[0.2, 0.01, 0.01]])).expand(1000, 3).clone()
    g["quats"] = torch.tensor([[1.0, 0, 0, 0]]).expand(1000, 4).clone()
    kids = split_children(g, torch.Generator().manual_seed(1))
    offset = kids["means"] - torch.cat([g["means"], g["means"]])
    assert offset[:, 0].std() == pytest.approx(0.2, rel=0.1)  # along the long axis
    assert offset[:, 1:].std() < 0.02


def test_no_densify_prunes_after_warmup_and_never_grows():
    opt = optimizer(8)
    with torch.no_grad():
        opt.params["opacity_logits"][:3] = -7.0
        opt.params["log_scales"][3] = 2.0
    strategy = NoDensify(warmup=2, prune_every=2, prune_scale3d=1.0)
    state = strategy.initialize_state(8)
    g, visible = torch.ones(8, 2), torch.ones(8, dtype=torch.bool)
    for step in (1, 2, 3):
        strategy.step_post_backward(opt, state, info(step, g, visible))
        assert len(opt) == 8
    strategy.step_post_backward(opt, state, info(4, g, visible))
    assert len(opt) == 4 and state["pruned"] == 4


def test_no_densify_opacity_decay():
    opt = optimizer(4, opacity=0.5)
    strategy = NoDensify(warmup=0, prune_every=1, opacity_decay=0.5)
    strategy.step_post_backward(
        opt, strategy.initialize_state(4), info(1, torch.zeros(4, 2), torch.ones(4, dtype=torch.bool))
    )
    torch.testing.assert_close(torch.sigmoid(opt.params["opacity_logits"]), torch.full((4,), 0.25))


def test_adc_grows_an_under_reconstructed_scene_and_no_densify_does_not():
    gen = torch.Generator().manual_seed(int(torch.randint(1 << 30, ())))
    cams = arc_cameras(3, 32, 24)
    images = render_views(random_gaussians(200, generator=gen, log_scale=-3.0), cams, BACKEND)
    init = random_gaussians(20, generator=gen, log_scale=-1.5)  # too few, too large
    base = dict(steps=16, backend=BACKEND, log_every=1, sh_degree=1, seed=int(torch.randint(1000, ())))
    base |= dict(pose_refine=False, resolution_schedule=(), adam_rescale_cap=0.0, sh_degree_every=1000)
    adc = TrainConfig(**base, strategy="adc", strategy_options=dict(refine_start=3, refine_every=5))
    counts = [h["n_gaussians"] for h in train(init, cams, images, adc, progress=False).history]
    assert counts[-1] > 2 * len(init)
    none = TrainConfig(**base, strategy="none", strategy_options=dict(warmup=3, prune_every=5))
    counts = [h["n_gaussians"] for h in train(init, cams, images, none, progress=False).history]
    assert max(counts) <= len(init)

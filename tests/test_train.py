"""The training loop on tiny synthetic scenes: it learns, it stops cleanly, it resumes exactly."""

import os
from pathlib import Path

import pytest
import torch

from splat.errors import SplatError, SplatWarning
from splat.train import TrainConfig, TrainingDiverged, checkpoint_gaussians, load_checkpoint, train
from splat.train.losses import anisotropy_loss, depth_loss, pack_depth, photometric_loss
from splat.train.synthetic import arc_cameras, fastest_cpu_backend, random_gaussians, render_views
from splat.train.trainer import initial_params, mean_psnr

BACKEND = os.environ.get("SPLAT_TEST_TRAIN_BACKEND") or fastest_cpu_backend()
FAST_LRS = {"means": 1e-3, "means_final": 1e-4, "sh_dc": 2e-2, "log_scales": 1e-2}


pytestmark = pytest.mark.usefixtures("one_thread")


def scene(n: int = 120, views: int = 4, seed: int | None = None):
    """Ground-truth images of random Gaussians, and a perturbed copy to start training from."""
    gen = torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(1 << 30, ())))
    cams = arc_cameras(views, 32, 24)
    gt = random_gaussians(n, generator=gen)
    images = render_views(gt, cams, BACKEND)
    init = random_gaussians(n, generator=gen)
    init.means = gt.means + 0.1 * torch.randn(n, 3, generator=gen)
    return init, cams, images


def config(**kw) -> TrainConfig:
    base = dict(steps=40, backend=BACKEND, log_every=10, sh_degree=1, sh_degree_every=20, lrs=FAST_LRS)
    # the trainer alone: fixed poses, one resolution, plain visible-only Adam
    base |= dict(pose_refine=False, resolution_schedule=(), adam_rescale_cap=0.0, checkpoint_every=1000)
    return TrainConfig(**{**base, **kw})


def test_photometric_loss_is_l1_ssim_blend():
    a, b = torch.rand(20, 24, 3), torch.rand(20, 24, 3)
    assert photometric_loss(a, a).item() == pytest.approx(0.0, abs=1e-6)
    assert photometric_loss(a, b, 0.0).item() == pytest.approx((a - b).abs().mean().item(), rel=1e-6)


def test_training_lowers_loss_and_raises_psnr():
    init, cams, images = scene()
    cfg = config(seed=int(torch.randint(1000, ())))
    before = mean_psnr(initial_params(init, cfg, "cpu"), cams, images, cfg)
    result = train(init, cams, images, cfg, progress=False)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.85 * losses[0]
    assert result.final_psnr > before + 1.5
    assert len(result.gaussians) == len(init) and result.steps == 40
    result.gaussians.validate()
    assert torch.equal(result.cameras.w2c, cams.w2c)  # no pose refinement asked for


def test_same_seed_same_result():
    init, cams, images = scene(n=60)
    a = train(init, cams, images, config(steps=8, seed=5), progress=False)
    b = train(init, cams, images, config(steps=8, seed=5), progress=False)
    assert torch.equal(a.gaussians.means, b.gaussians.means)


def test_nan_stops_with_clear_error_and_loadable_checkpoint(tmp_path):
    init, cams, images = scene()

    def inject(report):
        if report.step == 5:
            with torch.no_grad():
                report.params["sh_dc"][:10] = float("nan")

    with pytest.raises(TrainingDiverged, match="diverged at step 6") as err:
        train(init, cams, images, config(), callbacks=[inject], checkpoint_dir=tmp_path, progress=False)
    assert isinstance(err.value, SplatError) and str(tmp_path) in str(err.value)
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ck["step"] == 5
    g = checkpoint_gaussians(tmp_path / "checkpoint.pt")
    assert len(g) == len(init) - 10  # the poisoned Gaussians were dropped
    g.validate()


@pytest.mark.parametrize("appearance", [False, True])
def test_interrupt_then_resume_matches_uninterrupted_run(tmp_path, appearance):
    init, cams, images = scene(n=80)
    cfg = config(
        appearance=appearance,
        steps=24,
        seed=int(torch.randint(1000, ())),
        pose_refine=True,
        sh_rest_dtype="bfloat16",
        strategy="adc",
        strategy_options=dict(refine_start=4, refine_every=6, reset_every=15, grad_threshold=1e-4),
        checkpoint_every=5,
    )
    full = train(init, cams, images, cfg, checkpoint_dir=tmp_path / "a", progress=False)

    def stop(report):
        if report.step == 11:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(init, cams, images, cfg, callbacks=[stop], checkpoint_dir=tmp_path / "b", progress=False)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 11
    resumed = train(init, cams, images, cfg, checkpoint_dir=tmp_path / "b", resume=True, progress=False)
    assert resumed.steps == 24 and len(resumed.gaussians) == len(full.gaussians)
    assert resumed.final_loss == pytest.approx(full.final_loss, rel=1e-5)
    torch.testing.assert_close(resumed.gaussians.means, full.gaussians.means)
    torch.testing.assert_close(resumed.cameras.w2c, full.cameras.w2c)
    assert [h["step"] for h in resumed.history] == [h["step"] for h in full.history]
    assert resumed.appearance == full.appearance and (full.appearance is not None) == appearance


def test_sigterm_saves_a_checkpoint_and_resume_finishes(tmp_path):
    """`kill` (SIGTERM, how schedulers stop jobs) during training: the trainer stops at a step boundary,
    saves its checkpoint and raises KeyboardInterrupt; without the handler the process dies unsaved."""
    import subprocess
    import sys

    seed = int(torch.randint(1 << 30, ()))
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_train import scene, config
from splat.train import train
init, cams, images = scene(n=60, seed={seed})
cfg = config(steps=30, checkpoint_every=100)
def stop(report):
    if report.step == 7:
        os.kill(os.getpid(), signal.SIGTERM)
try:
    train(init, cams, images, cfg, callbacks=[stop], checkpoint_dir={str(tmp_path)!r}, progress=False)
except KeyboardInterrupt:
    sys.exit(42)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 42, proc.stderr[-2000:]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 7
    init, cams, images = scene(n=60)
    resumed = train(
        init, cams, images, config(steps=30), checkpoint_dir=tmp_path, resume=True, progress=False
    )
    assert resumed.steps == 30


def test_config_rejects_unknown_choices():
    with pytest.raises(ValueError, match="sh_rest_dtype"):
        TrainConfig(sh_rest_dtype="int8")
    with pytest.raises(ValueError, match="strategy"):
        TrainConfig(strategy="mcmc")


def test_resolution_schedule_trains_coarse_steps_at_reduced_size(monkeypatch):
    import splat.render

    gen = torch.Generator().manual_seed(int(torch.randint(1 << 30, ())))
    cams = arc_cameras(3, 128, 96)
    gt = random_gaussians(150, generator=gen)
    images = render_views(gt, cams, BACKEND)
    widths, real_render = [], splat.render.render

    def recording_render(g, cam, **kw):
        widths.append(int(cam.width[0]) if cam.width.dim() else int(cam.width))
        return real_render(g, cam, **kw)

    monkeypatch.setattr(splat.render, "render", recording_render)
    cfg = config(steps=20, resolution_schedule=[(0.25, 4), (0.5, 2)], seed=int(torch.randint(1000, ())))
    result = train(gt, cams, images, cfg, progress=False)
    # 128 / 4 = 32 px is under the 64 px floor, so that level falls back to full size
    assert widths[:5] == [128] * 5 and widths[5:10] == [64] * 5 and widths[10:20] == [128] * 10
    assert torch.equal(result.cameras.K, cams.K) and result.final_psnr > 25  # the full-size scene still fits


@pytest.mark.parametrize("antialias", [False, True])
def test_training_renders_with_the_configured_rasterizer_mode(monkeypatch, antialias):
    """TrainConfig.antialias reaches every render of the training loop and of its PSNR (the scene is then
    fitted in that mode: a scene trained anti-aliased is rendered anti-aliased everywhere after)."""
    import splat.render

    init, cams, images = scene()
    modes, real_render = [], splat.render.render

    def recording_render(g, cam, **kw):
        modes.append(kw.get("settings", splat.render.RenderSettings()).antialias)
        return real_render(g, cam, **kw)

    monkeypatch.setattr(splat.render, "render", recording_render)
    train(init, cams, images, config(antialias=antialias), progress=False)
    assert len(modes) >= 40 and set(modes) == {antialias}


@pytest.mark.parametrize("broken", ["newest", "both"])
def test_an_unreadable_checkpoint_is_skipped_with_a_warning(tmp_path, broken, monkeypatch):
    """A checkpoint cut short (a disk that filled up, a copy interrupted) is not loaded: resume takes the
    one before it, or starts over when none is readable, says so, and ends as the uninterrupted run."""
    import splat.train.trainer as trainer

    init, cams, images = scene()
    cfg = config(steps=10, checkpoint_every=3)
    full = train(init, cams, images, cfg, progress=False)

    def stop(report):
        if report.step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(init, cams, images, cfg, callbacks=[stop], checkpoint_dir=tmp_path, progress=False)
    newest, previous = tmp_path / "checkpoint.pt", tmp_path / "checkpoint.prev.pt"
    assert load_checkpoint(newest)["step"] == 7 and load_checkpoint(previous)["step"] == 6
    for path in [newest] + ([previous] if broken == "both" else []):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    restored = []
    restore = trainer._restore
    monkeypatch.setattr(
        trainer, "_restore", lambda run, ck, dev: (restored.append(ck["step"]), restore(run, ck, dev))
    )
    with pytest.warns(SplatWarning) as caught:
        resumed = train(init, cams, images, cfg, checkpoint_dir=tmp_path, resume=True, progress=False)
    messages = [str(w.message) for w in caught]
    assert any(str(newest) in m and "unreadable" in m for m in messages)
    assert restored == ([] if broken == "both" else [6])
    assert any("starts over" in m for m in messages) == (broken == "both")
    assert resumed.steps == 10 and resumed.final_loss == pytest.approx(full.final_loss, rel=1e-5)
    assert load_checkpoint(newest)["step"] == 10  # a readable checkpoint again


def test_step_report_gives_watchers_detached_gaussians():
    init, cams, images = scene(n=40, views=2)
    seen = []
    watch = [lambda r: seen.append((r.gaussians(), r))]
    train(init, cams, images, config(steps=2), callbacks=watch, progress=False)
    g, report = seen[-1]  # the last step's: nothing changes the live parameters after it
    assert len(seen) == 2 and len(g) == report.n_gaussians
    assert not g.means.requires_grad and torch.equal(g.means, report.params["means"].detach())
    assert g.sh_rest.dtype == torch.float32


def tinted(images, generator):
    """The images with a random per-view, per-channel gain (0.75-1.25) and offset (+-0.04), both
    normalised to the identity on average over the views (the appearance model's gauge)."""
    V = len(images)
    gains = 1 + 0.25 * (2 * torch.rand(V, 3, generator=generator) - 1)
    gains = gains / gains.mean(0)
    offsets = 0.04 * (2 * torch.rand(V, 3, generator=generator) - 1)
    offsets = offsets - offsets.mean(0)
    return [im * g + o for im, g, o in zip(images, gains, offsets)], gains, offsets


def test_appearance_maps_recover_each_photos_exposure():
    """The scene held at the truth: the learned per-view colour maps are the applied ones."""
    gen = torch.Generator().manual_seed(int(torch.randint(1 << 30, ())))
    cams = arc_cameras(6, 32, 24)
    gt = random_gaussians(120, generator=gen)
    images, gains, offsets = tinted(render_views(gt, cams, BACKEND), gen)
    frozen = {
        k: 0.0 for k in ("means", "means_final", "log_scales", "quats", "opacity_logits", "sh_dc", "sh_rest")
    }
    cfg = config(
        steps=600, appearance=True, lrs={**frozen, "appearance": 3e-3}, sh_degree=3, sh_degree_every=0
    )
    result = train(gt, cams, images, cfg, progress=False)
    learned = torch.tensor([a["gain"] for a in result.appearance])
    assert torch.allclose(learned, gains.mean(1), atol=0.02), (learned, gains.mean(1))
    assert result.final_psnr > 35
    assert "appearance" in result.summary() and len(result.summary()["appearance"]) == 6


def test_appearance_keeps_exposure_out_of_the_scene():
    """Trained on photos of differing exposure, the scene with appearance maps renders the untinted
    truth better than the scene without them (which bakes each photo's tint into the Gaussians)."""
    init, cams, images = scene(n=120, views=6)
    gen = torch.Generator().manual_seed(int(torch.randint(1 << 30, ())))
    photos, _, _ = tinted(images, gen)
    lrs = {**FAST_LRS, "appearance": 1e-2}
    clean = {}
    for appearance in (False, True):
        cfg = config(steps=300, appearance=appearance, lrs=lrs, seed=1)
        result = train(init, cams, photos, cfg, progress=False)
        clean[appearance] = mean_psnr(initial_params(result.gaussians, cfg, "cpu"), cams, images, cfg)
    assert clean[True] > clean[False] + 0.1, clean


def test_depth_loss_counts_confident_opaque_pixels_relative_to_the_target():
    target = 1 + torch.rand(6, 8)
    conf = torch.ones(6, 8)
    conf[0] = 0.2  # below min_confidence: ignored
    alpha = torch.ones(6, 8)
    alpha[1] = 0.3  # transparent in the render: ignored
    packed = pack_depth(target, conf)
    rendered = target.clone()
    assert float(depth_loss(rendered * alpha, alpha, packed)) == pytest.approx(0.0, abs=1e-6)
    wrong = rendered.clone()
    wrong[0] *= 5
    wrong[1] *= 5
    assert float(depth_loss(wrong * alpha, alpha, packed)) == pytest.approx(0.0, abs=1e-6)
    wrong[2:] *= 1.1
    assert float(depth_loss(wrong * alpha, alpha, packed)) == pytest.approx(0.1, rel=1e-4)
    unknown = pack_depth(torch.full((6, 8), float("nan")), conf)
    assert float(depth_loss(wrong * alpha, alpha, unknown)) == 0.0


def test_the_depth_term_pulls_the_gaussians_to_the_target_depth():
    """Trained against the true depth maps, the scene's rendered depth ends closer to the truth."""
    gen = torch.Generator().manual_seed(int(torch.randint(1 << 30, ())))
    cams = arc_cameras(4, 32, 24)
    gt = random_gaussians(120, generator=gen)
    images = render_views(gt, cams, BACKEND)
    from splat.render import render

    truth = [render(gt, cams[v], backend=BACKEND) for v in range(4)]
    targets = [(o.normalized_depth(), (o.alpha > 0.9).float()) for o in truth]
    init = random_gaussians(120, generator=gen)
    init.means = gt.means + 0.15 * torch.randn(120, 3, generator=gen)
    errors = {}
    for weight in (0.0, 1.0):
        cfg = config(steps=200, depth_weight=weight, seed=3)
        g = train(init, cams, images, cfg, depth_targets=targets, progress=False).gaussians
        err = []
        for v, (d, c) in enumerate(targets):
            out = render(g, cams[v], backend=BACKEND)
            mask = (c > 0) & (out.alpha > 0.5)
            err.append(((out.normalized_depth() - d).abs() / d.clamp_min(1e-6))[mask].mean())
        errors[weight] = float(torch.stack(err).mean())
    assert errors[1.0] < 0.8 * errors[0.0], errors  # 8 draws: 0.20-0.37x


def test_anisotropy_loss_charges_only_visible_needles_beyond_the_ratio():
    scales = [[1.0, 1.0, 1.0], [1.0, 1.0, 20.0], [0.1, 1.0, 3.0], [1.0, 1.0, 50.0]]
    log_scales = torch.log(torch.tensor(scales))
    log_scales.requires_grad_(True)
    visible = torch.tensor([True, True, True, False])
    loss = anisotropy_loss(log_scales, visible, 10.0)
    assert float(loss) == pytest.approx((0 + 10 + 20) / 3, rel=1e-5)  # ratios 1, 20, 30; hidden 50: free
    loss.backward()
    g = log_scales.grad
    assert torch.all(g[0] == 0) and torch.all(g[3] == 0)  # within the ratio / not visible
    assert g[1, 2] > 0 and g[1, :2].sum() < 0  # shrink the long axis, widen the short ones
    assert float(anisotropy_loss(log_scales, torch.zeros(4, dtype=torch.bool), 10.0)) == 0.0

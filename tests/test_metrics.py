import numpy as np
import pytest
import torch
from scipy import ndimage

from splat.eval import metrics
from splat.eval.metrics import lpips, psnr, ssim


def ssim_reference(img: np.ndarray, gt: np.ndarray) -> float:
    """The 3DGS SSIM in float64 with scipy: full 11x11 window, zero padding, per channel, mean."""
    x = np.arange(11) - 5.0
    g = np.exp(-(x**2) / (2 * 1.5**2))
    g /= g.sum()
    win = np.outer(g, g)

    def blur(a):
        return np.stack([ndimage.correlate(a[..., c], win, mode="constant", cval=0.0) for c in range(3)], -1)

    mu_x, mu_y = blur(img), blur(gt)
    var_x = blur(img * img) - mu_x**2
    var_y = blur(gt * gt) - mu_y**2
    cov = blur(img * gt) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    m = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(m.mean())


def test_ssim_matches_float64_reference():
    gt = torch.rand(2, 37, 53, 3, dtype=torch.float64)
    img = (gt + 0.2 * torch.randn_like(gt)).clamp(0, 1)
    img[1] = torch.rand(37, 53, 3, dtype=torch.float64)  # an unrelated image: low SSIM
    ref = [ssim_reference(img[b].numpy(), gt[b].numpy()) for b in range(2)]
    got = ssim(img, gt)
    assert got.shape == (2,)
    assert np.allclose(got.numpy(), ref, atol=1e-6, rtol=0)
    assert abs(float(ssim(img[0], gt[0])) - ref[0]) < 1e-6  # unbatched gives a 0-d tensor
    assert abs(float(ssim(img[0].float(), gt[0].float())) - ref[0]) < 1e-5


def test_ssim_identity_and_symmetry():
    x = torch.rand(24, 31, 3)
    assert abs(float(ssim(x, x)) - 1) < 1e-6
    y = torch.rand(24, 31, 3)
    assert abs(float(ssim(x, y)) - float(ssim(y, x))) < 1e-6
    assert float(ssim(x, y)) < 0.5


def test_ssim_is_differentiable():
    gt = torch.rand(20, 20, 3, dtype=torch.float64)
    img = (gt + 0.1 * torch.randn_like(gt)).requires_grad_(True)
    (1 - ssim(img, gt)).backward()
    assert torch.isfinite(img.grad).all() and img.grad.abs().sum() > 0
    small = torch.rand(8, 9, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: ssim(a, gt[:8, :9]), (small,), fast_mode=True)


def test_psnr_known_values():
    gt = torch.rand(2, 16, 16, 3) * 0.8
    out = psnr(gt + 0.1, gt)
    assert out.shape == (2,) and torch.allclose(out, torch.tensor([20.0, 20.0]), atol=1e-4)
    assert abs(float(psnr(gt[0] + 0.01, gt[0])) - 40.0) < 1e-3
    assert float(psnr(gt[0], gt[0])) == float("inf")
    # per image, not of the pooled MSE
    img = gt.clone()
    img[0] += 0.1
    img[1] += 0.01
    assert torch.allclose(psnr(img, gt), torch.tensor([20.0, 40.0]), atol=1e-3)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        psnr(torch.rand(4, 4, 3), torch.rand(4, 5, 3))
    with pytest.raises(ValueError):
        ssim(torch.rand(3, 4, 4), torch.rand(3, 4, 4))
    with pytest.raises(ValueError):  # uint8 images would give silently wrong numbers
        psnr(torch.zeros(4, 4, 3, dtype=torch.uint8), torch.zeros(4, 4, 3, dtype=torch.uint8))


def test_lpips_is_none_without_weights(monkeypatch, tmp_path):
    monkeypatch.delenv(metrics.LPIPS_ENV, raising=False)
    x = torch.rand(16, 16, 3)
    assert lpips(x, x) is None
    missing = tmp_path / "nope.pth"
    with pytest.warns(UserWarning):
        assert lpips(x, x, weights=str(missing)) is None
    monkeypatch.setenv(metrics.LPIPS_ENV, str(missing))
    with pytest.warns(UserWarning):
        assert lpips(x, x) is None


def test_lpips_is_none_when_package_or_file_unusable(monkeypatch, tmp_path):
    bogus = tmp_path / "bogus.pth"
    bogus.write_bytes(b"not a state dict")
    monkeypatch.setenv(metrics.LPIPS_ENV, str(bogus))
    x = torch.rand(16, 16, 3)
    with pytest.warns(UserWarning):
        assert lpips(x, x) is None


def test_ssim_blur_opencv_matches_torch_reference_values_and_gradients():
    """The CPU blur (OpenCV, self-adjoint backward) equals the conv2d reference, values and gradients."""
    from splat.eval.metrics import _blur, blur_torch

    for dtype, tol in ((torch.float32, 1e-6), (torch.float64, 1e-12)):
        x = torch.rand(2, 5, 37, 53, dtype=dtype, requires_grad=True)
        w = torch.randn(2, 5, 37, 53, dtype=dtype)
        (_blur(x) * w).sum().backward()
        g_fast = x.grad.clone()
        x.grad = None
        ref = blur_torch(x)
        (ref * w).sum().backward()
        assert torch.allclose(_blur(x), ref, atol=tol, rtol=0)
        assert torch.allclose(g_fast, x.grad, atol=tol, rtol=0)
    x = torch.rand(1, 2, 9, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_blur, (x,))


def test_ssim_gradient_matches_reference_blur():
    from splat.eval import metrics

    img = torch.rand(24, 31, 3, dtype=torch.float64, requires_grad=True)
    gt = torch.rand(24, 31, 3, dtype=torch.float64)
    metrics.ssim(img, gt).backward()
    fast = img.grad.clone()
    img.grad = None
    original = metrics._blur
    try:
        metrics._blur = metrics.blur_torch
        metrics.ssim(img, gt).backward()
    finally:
        metrics._blur = original
    assert torch.allclose(fast, img.grad, atol=1e-12, rtol=0)


def test_the_per_view_colour_fit_undoes_an_exposure_and_white_balance_change_and_nothing_else():
    """eval.json's psnr_colour_fit: an affine colour change of the photo (gain, offset, channel mix) is fitted
    away; a geometric difference (the image shifted) is not, and the fit never scores below the raw PSNR."""
    from splat.eval.evaluate import colour_fitted

    gen = torch.Generator().manual_seed(int(torch.randint(1 << 30, ())))
    noise = torch.rand(1, 3, 64, 80, generator=gen)
    image = torch.nn.functional.avg_pool2d(noise, 3, 1, 1)[0].permute(1, 2, 0)
    mix = torch.diag(torch.tensor([0.6, 0.75, 0.9])) + 0.05 * torch.rand(3, 3, generator=gen)
    photo = (image @ mix.T + 0.1 + 0.05 * torch.rand(3, generator=gen)).clamp(0, 1)
    assert float(psnr(image, photo)) < 30 and float(psnr(colour_fitted(image, photo), photo)) > 50
    shifted = torch.roll(photo, 3, dims=1)
    raw, fitted = float(psnr(image, shifted)), float(psnr(colour_fitted(image, shifted), shifted))
    assert raw <= fitted + 1e-6 and fitted < 30

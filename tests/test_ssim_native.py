"""The native SSIM kernel (splat/native/csrc/ssim_cpu.cpp) against its PyTorch twin (metrics.ssim_torch).

Fresh random images every run, sizes from smaller than the 11-pixel window to 512x384, batched and
not. Values agree within 2e-6 absolute (float32 sums of 121 taps in another order), gradients within
1e-4 of the largest gradient entry; results are bit-identical across thread counts. Values against
an independent float64 reference live in tests/test_metrics.py (which goes through the kernel).
"""

import pytest
import torch

from splat.eval import metrics
from splat.eval.metrics import ssim, ssim_torch
from splat.native import build

if not build.available():
    pytest.skip(f"native kernel unavailable: {build.status()}", allow_module_level=True)


def _images(shape, gen):
    img = torch.rand(shape, generator=gen)
    gt = (img + 0.2 * torch.randn(shape, generator=gen)).clamp(0, 1)  # correlated, as in training
    return img.requires_grad_(), gt


@pytest.mark.parametrize("shape", [(7, 9, 3), (37, 53, 3), (2, 20, 31, 3), (384, 512, 3)])
def test_values_and_gradients_match_the_torch_twin(shape):
    gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31, ())))
    img, gt = _images(shape, gen)
    weights = torch.rand(shape[:-3], generator=gen) + 0.5  # a different upstream gradient per image
    got = ssim(img, gt)
    (g_got,) = torch.autograd.grad((got * weights).sum(), img)
    ref = ssim_torch(img, gt)
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), img)
    assert got.shape == ref.shape == shape[:-3]
    assert (got - ref).abs().max() < 2e-6
    assert (g_got - g_ref).abs().max() <= 1e-4 * g_ref.abs().max()


def test_the_kernel_is_used_and_is_bit_identical_across_thread_counts(monkeypatch):
    calls = []
    monkeypatch.setattr(metrics, "ssim_torch", lambda *a: calls.append(a))
    img, gt = _images((2, 96, 128, 3), torch.Generator().manual_seed(3))
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            value = ssim(img, gt)
            (grad,) = torch.autograd.grad(value.sum(), img)
            results.append((value, grad))
    finally:
        torch.set_num_threads(before)
    assert not calls  # float32 CPU images never took the torch path
    for value, grad in results[1:]:
        assert torch.equal(value, results[0][0]) and torch.equal(grad, results[0][1])


def test_identical_and_constant_images_and_a_gt_that_needs_a_gradient():
    img = torch.rand(40, 50, 3, requires_grad=True)
    same = ssim(img, img.detach())
    assert abs(float(same) - 1) < 1e-6
    (g,) = torch.autograd.grad(same, img)
    assert g.abs().max() < 1e-4  # SSIM is at its maximum
    flat = torch.full((30, 30, 3), 0.5)
    assert abs(float(ssim(flat, flat)) - 1) < 1e-6
    # A gt that needs a gradient takes the torch path, which differentiates both images.
    gt = torch.rand(40, 50, 3, requires_grad=True)
    value = ssim(img, gt)
    g_img, g_gt = torch.autograd.grad(value, [img, gt])
    assert g_gt.abs().sum() > 0 and torch.allclose(value, ssim_torch(img, gt))

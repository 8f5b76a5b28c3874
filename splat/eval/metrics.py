"""Image metrics as the 3DGS papers compute them: PSNR, SSIM, LPIPS (only with local weights).

Images are (H, W, 3) or (B, H, W, 3) float tensors in [0, 1]; every metric returns one value per
image: a 0-d tensor for (H, W, 3), (B,) for (B, H, W, 3). Average per-image values for a scene.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2
LPIPS_ENV = "SPLAT_LPIPS_WEIGHTS"


def _check_pair(img: Tensor, gt: Tensor) -> None:
    if img.shape != gt.shape or img.ndim not in (3, 4) or img.shape[-1] != 3:
        raise ValueError(f"metrics need two (H,W,3) or (B,H,W,3) images, got {img.shape} and {gt.shape}")
    if not (img.is_floating_point() and gt.is_floating_point()):
        raise ValueError(f"metrics need float images in [0, 1], got {img.dtype} and {gt.dtype}")


def psnr(img: Tensor, gt: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB for data range 1: -10 log10(MSE) per image (inf if equal)."""
    _check_pair(img, gt)
    mse = (img - gt).square().mean((-3, -2, -1))
    return -10 * torch.log10(mse)


def gaussian_window(dtype=torch.float32, device=None) -> Tensor:
    """The 1D SSIM window (11,): exp(-(i-5)^2 / (2 1.5^2)), normalised to sum 1."""
    x = torch.arange(SSIM_WINDOW, dtype=torch.float64) - SSIM_WINDOW // 2
    g = torch.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def blur_torch(x: Tensor) -> Tensor:
    """Per-channel 11x11 Gaussian filter of (B, C, H, W), zero padding, same size (separable).

    The PyTorch reference of `_blur`; used on GPUs.
    """
    C = x.shape[1]
    g = gaussian_window(x.dtype, x.device)
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(C, 1, 1, -1), padding=(0, SSIM_WINDOW // 2), groups=C)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(C, 1, -1, 1), padding=(SSIM_WINDOW // 2, 0), groups=C)


def _blur_opencv(x: Tensor) -> Tensor:
    """`blur_torch` on the CPU with OpenCV's separable filter, plane by plane (~20x faster)."""
    import cv2

    B, C, H, W = x.shape
    planes = x.detach().contiguous().reshape(B * C, H, W).numpy()
    g = gaussian_window(x.dtype).numpy()
    out = np.empty_like(planes)
    for i in range(B * C):
        cv2.sepFilter2D(planes[i], -1, g, g, dst=out[i], borderType=cv2.BORDER_CONSTANT)
    return torch.from_numpy(out).reshape(B, C, H, W)


class _BlurCPU(torch.autograd.Function):
    """The zero-padded blur with a symmetric window is self-adjoint: its backward is the same blur."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return _blur_opencv(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return _blur_opencv(grad)


def _blur(x: Tensor) -> Tensor:
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        return _BlurCPU.apply(x)
    return blur_torch(x)


def ssim(img: Tensor, gt: Tensor) -> Tensor:
    """Structural similarity per image, exactly the 3DGS definition; differentiable in `img`.

    11x11 Gaussian window (sigma 1.5), C1 = 0.01^2, C2 = 0.03^2, statistics per colour channel
    with zero padding ('same' size, like F.conv2d(padding=5, groups=3)), then the mean of the
    SSIM map over channels and pixels. float32 CPU images take the native kernel
    (splat/native/csrc/ssim_cpu.cpp, ~5x faster forward+backward at 512x384) when it is
    built; everything else, and a `gt` that needs a gradient, takes `ssim_torch`, its reference twin.
    """
    _check_pair(img, gt)
    if _native_ssim_applies(img, gt):
        batch = img.shape[:-3]
        x = img.reshape(-1, *img.shape[-3:])
        return _SSIMCPU.apply(x, gt.reshape(-1, *gt.shape[-3:])).reshape(batch)
    return ssim_torch(img, gt)


def ssim_torch(img: Tensor, gt: Tensor) -> Tensor:
    """`ssim` in PyTorch ops (any device and dtype; gradients for both images by autograd).

    The 2D window is separable, so two 1D passes give the same values as the 11x11 convolution.
    """
    _check_pair(img, gt)
    batch = img.shape[:-3]
    x = img.reshape(-1, *img.shape[-3:]).permute(0, 3, 1, 2)
    y = gt.reshape(-1, *gt.shape[-3:]).permute(0, 3, 1, 2).to(x.dtype)
    stats = _blur(torch.cat([x, y, x * x, y * y, x * y], 1))
    mu_x, mu_y, e_xx, e_yy, e_xy = stats.chunk(5, dim=1)
    var_x, var_y, cov = e_xx - mu_x**2, e_yy - mu_y**2, e_xy - mu_x * mu_y
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)
    den = (mu_x**2 + mu_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)
    return (num / den).mean((1, 2, 3)).reshape(batch)


def _native_ssim_applies(img: Tensor, gt: Tensor) -> bool:
    if not (img.device.type == gt.device.type == "cpu" and img.dtype == gt.dtype == torch.float32):
        return False
    if gt.requires_grad:
        return False
    from splat.native import build

    return build.available()


class _SSIMCPU(torch.autograd.Function):
    """SSIM of (B, H, W, C) float32 images with the native kernel; gradient for the first image."""

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor) -> Tensor:
        from splat.native.build import load as load_native

        x, y = x.detach().contiguous(), y.detach().contiguous()
        window = gaussian_window(torch.float32)
        value, stats = load_native().ssim_forward(x, y, window, torch.get_num_threads())
        ctx.save_for_backward(x, y, stats, window)
        return value

    @staticmethod
    def backward(ctx, grad: Tensor):
        from splat.native.build import load as load_native

        x, y, stats, window = ctx.saved_tensors
        g = grad.detach().to(torch.float32).contiguous()
        return load_native().ssim_backward(g, x, y, stats, window, torch.get_num_threads()), None


_LPIPS_MODELS: dict = {}


def _lpips_model(path: str, device: torch.device):
    key = (os.path.abspath(path), str(device))
    if key not in _LPIPS_MODELS:
        import lpips as lpips_pkg  # optional; needs torchvision

        net = lpips_pkg.LPIPS(net="vgg", pretrained=False, pnet_rand=True, verbose=False)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        _LPIPS_MODELS[key] = net.eval().requires_grad_(False).to(device)
    return _LPIPS_MODELS[key]


def lpips(img: Tensor, gt: Tensor, weights: str | None = None, normalize: bool = False) -> Tensor | None:
    """LPIPS (VGG) per image, or None when it cannot be computed honestly (report "n/a").

    Needs the `lpips` package importable and a local file with the full state dict of
    `lpips.LPIPS(net="vgg")` (backbone and linear layers), made once on a machine with internet by
    `torch.save(lpips.LPIPS(net="vgg").state_dict(), "lpips_vgg.pth")`; its path comes from
    `weights` or the SPLAT_LPIPS_WEIGHTS environment variable. Nothing is downloaded.

    normalize=False feeds the [0, 1] images to the network unchanged, as the 3DGS evaluation code
    does, so values compare with 3DGS-family papers; normalize=True maps them to [-1, 1] first,
    as the lpips authors intend.
    """
    _check_pair(img, gt)
    path = weights or os.environ.get(LPIPS_ENV)
    if not path:
        return None
    if not os.path.isfile(path):
        warnings.warn(f"LPIPS weights {path} not found: LPIPS reported as n/a", stacklevel=2)
        return None
    try:
        net = _lpips_model(path, img.device)
    except Exception as e:  # missing/broken package or a file of the wrong kind: no number at all
        warnings.warn(f"LPIPS unavailable ({type(e).__name__}: {e}): reported as n/a", stacklevel=2)
        return None
    batch = img.shape[:-3]
    x = img.reshape(-1, *img.shape[-3:]).permute(0, 3, 1, 2).float()
    y = gt.reshape(-1, *gt.shape[-3:]).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        d = net(x, y, normalize=normalize)
    return d.reshape(batch)

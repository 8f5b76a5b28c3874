"""Optional learned dense matcher: RoMa (Edstedt et al., CVPR 2024) from local weights only.

Nothing is downloaded. `load_roma` needs the `romatch` package and two local checkpoints, the RoMa
outdoor weights and the DINOv2 ViT-L/14 weights RoMa builds on, given as arguments or through the
environment variables SPLAT_ROMA_WEIGHTS and SPLAT_DINOV2_WEIGHTS. Anything missing raises
InputError naming what is missing and how to supply it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from splat.errors import InputError
from splat.match.dense import DenseMatches

ENV_WEIGHTS = "SPLAT_ROMA_WEIGHTS"
ENV_DINOV2 = "SPLAT_DINOV2_WEIGHTS"


def _import_romatch():
    try:
        import romatch
    except ImportError:
        return None
    return romatch


def _missing(path: str | os.PathLike | None, what: str, env: str, file_name: str) -> str | None:
    if not path:
        return f"no {what} given (pass its path or set {env} to a local {file_name})"
    if not Path(path).is_file():
        return f"{what} file {path} does not exist (set {env} to a local {file_name})"
    return None


@dataclass
class RomaMatcher:
    """A loaded RoMa model; call it like dense_match: matcher(img0, img1) -> DenseMatches."""

    model: object
    device: str

    def __call__(self, img0: np.ndarray, img1: np.ndarray) -> DenseMatches:
        return roma_match(self, img0, img1)


def load_roma(
    weights_path: str | os.PathLike | None = None,
    dinov2_path: str | os.PathLike | None = None,
    device: str = "cpu",
) -> RomaMatcher:
    """Load RoMa (outdoor) from local checkpoints, or raise InputError saying what is missing."""
    weights_path = weights_path or os.environ.get(ENV_WEIGHTS)
    dinov2_path = dinov2_path or os.environ.get(ENV_DINOV2)
    romatch = _import_romatch()
    problems = [
        None if romatch else "the Python package romatch is not installed (pip install romatch)",
        _missing(weights_path, "RoMa weights", ENV_WEIGHTS, "roma_outdoor.pth"),
        _missing(dinov2_path, "DINOv2 weights", ENV_DINOV2, "dinov2_vitl14_pretrain.pth"),
    ]
    problems = [p for p in problems if p]
    if problems:
        raise InputError(f"RoMa matcher unavailable: {'; '.join(problems)}; or use the classical matcher")
    import torch

    weights = torch.load(weights_path, map_location=device, weights_only=True)
    dinov2 = torch.load(dinov2_path, map_location=device, weights_only=True)
    model = romatch.roma_outdoor(device=device, weights=weights, dinov2_weights=dinov2)
    return RomaMatcher(model, device)


def roma_match(matcher: RomaMatcher, img0: np.ndarray, img1: np.ndarray) -> DenseMatches:
    """Dense matches img0 -> img1 (float32 (H,W,3) in [0,1]) from RoMa, at img0's resolution.

    RoMa returns a warp in normalised coordinates ([-1,1] spans the image edges), which is the
    pixel-centre convention once scaled: x = (u + 1) / 2 * W.
    """
    from PIL import Image

    from splat.io.images import to_uint8

    pil = [Image.fromarray(to_uint8(im)) for im in (img0, img1)]
    warp, certainty = matcher.model.match(pil[0], pil[1], device=matcher.device)
    warp, certainty = _numpy(warp), _numpy(certainty)
    if warp.ndim == 4:  # batched output with a batch of one
        warp, certainty = warp[0], certainty[0]
    # A symmetric model stacks A->B and B->A side by side; A->B rows hold [xA, yA, xB, yB].
    width = warp.shape[1] // 2 if getattr(matcher.model, "symmetric", False) else warp.shape[1]
    xy, conf = warp[:, :width, 2:4], certainty[:, :width]
    (H0, W0), (H1, W1) = img0.shape[:2], img1.shape[:2]
    match = np.stack([(xy[..., 0] + 1) / 2 * W1, (xy[..., 1] + 1) / 2 * H1], -1).astype(np.float32)
    match = cv2.resize(match, (W0, H0), interpolation=cv2.INTER_LINEAR)
    conf = np.clip(cv2.resize(conf.astype(np.float32), (W0, H0), interpolation=cv2.INTER_LINEAR), 0, 1)
    return DenseMatches(match, conf, None, {"backend": "roma"})


def _numpy(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x, np.float32)

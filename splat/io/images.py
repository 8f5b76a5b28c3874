"""Image folders: read photos as float32 RGB arrays, upright, optionally downscaled.

- Formats: .jpg/.jpeg/.png (extension case-insensitive). 8- and 16-bit PNG keep their full
  precision; grayscale becomes 3 equal channels.
- Alpha (RGBA, LA, transparent palettes) is dropped, not composited: the colour under a
  transparent pixel is used as is. Cut-out objects on transparent backgrounds are not handled.
- EXIF orientation is applied, so portrait phone photos load upright.
- Each image's EXIF focal prior (splat.io.exif) is read with it, in pixels of the loaded image.
- Unreadable files among good ones are skipped with an `UnreadableImageWarning` (warnings.warn)
  naming the file; a folder with no readable image raises InputError.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from splat.errors import InputError, SplatWarning
from splat.io.exif import ORIENTATION, FocalPrior, focal_prior_or_reason

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


class UnreadableImageWarning(SplatWarning):
    """An image file in the folder could not be decoded and was skipped."""


@dataclass
class ImageSet:
    """Images loaded from a folder, in name order.

    Attributes:
        images: V arrays (H_i, W_i, 3) float32 in [0, 1]; views may differ in size.
        names: V file names relative to `root` (posix style).
        scales: V downscale factors (loaded width / original width; 1.0 when not downscaled).
        original_sizes: V (width, height) of the upright images before downscaling.
        root: the folder read.
        skipped: names of unreadable files that were skipped.
        focal_priors: V EXIF focal priors at the loaded size, None where EXIF gives none
            (empty when the set was not read by load_image_folder).
        focal_notes: V lines for logs: the prior's source, or why there is none.
    """

    images: list[np.ndarray]
    names: list[str]
    scales: list[float]
    original_sizes: list[tuple[int, int]]
    root: Path
    skipped: list[str] = field(default_factory=list)
    focal_priors: list[FocalPrior | None] = field(default_factory=list)
    focal_notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """(width, height) of each loaded image."""
        return [(im.shape[1], im.shape[0]) for im in self.images]


def _png_bit_depth(path: Path) -> int:
    with open(path, "rb") as f:
        head = f.read(25)
    return head[24] if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) == 25 else 8


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an (H, W, C) array, as ImageOps.exif_transpose does."""
    ops = {
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: x.transpose(1, 0, 2),
        6: lambda x: np.rot90(x, -1),
        7: lambda x: np.rot90(x, 2).transpose(1, 0, 2),
        8: lambda x: np.rot90(x, 1),
    }
    return np.ascontiguousarray(ops.get(orientation, lambda x: x)(a))


def _read_png16(path: Path, orientation: int) -> np.ndarray:
    """16-bit PNG via OpenCV (Pillow truncates 16-bit colour to 8 bits)."""
    a = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    if a is None:
        raise ValueError("OpenCV could not decode it")
    a = a.reshape(a.shape[0], a.shape[1], -1)
    a = a[..., :1] if a.shape[2] <= 2 else a[..., 2::-1]  # drop alpha; BGR -> RGB
    rgb = np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a
    return _orient(rgb.astype(np.float32) / np.float32(np.iinfo(a.dtype).max), orientation)


def _read_pil(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        orientation = im.getexif().get(ORIENTATION, 1)
        if path.suffix.lower() == ".png" and _png_bit_depth(path) == 16 and im.mode not in ("I;16", "I"):
            return _read_png16(path, orientation)
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            a = np.asarray(im).astype(np.float32) / 65535.0
            return np.repeat(np.clip(a, 0, 1)[..., None], 3, axis=2)
        if im.mode == "P" and "transparency" in im.info:
            im = im.convert("RGBA")
        a = np.asarray(im.convert("RGB"))
    return a.astype(np.float32) / 255.0


def to_uint8(image):
    """An image with values in [0, 1] as uint8: clipped, rounded to nearest; uint8 passes through.

    numpy arrays stay numpy arrays, torch tensors stay tensors on their device (any shape)."""
    if isinstance(image, np.ndarray):
        return image if image.dtype == np.uint8 else (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    import torch

    return image if image.dtype == torch.uint8 else (image.clamp(0, 1) * 255 + 0.5).to(torch.uint8)


def downscale(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Area-downscale (H, W, 3) so the longer side is <= max_side (never upscales)."""
    H, W = image.shape[:2]
    if not max_side or max(H, W) <= max_side:
        return image
    s = max_side / max(H, W)
    size = (max(1, round(W * s)), max(1, round(H * s)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def read_image(path: str | os.PathLike, max_side: int | None = None) -> np.ndarray:
    """Read one photo as float32 (H, W, 3) RGB in [0, 1], upright, longer side <= max_side.

    Raises InputError naming the file when it cannot be decoded.
    """
    path = Path(path)
    try:
        image = _read_pil(path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise InputError(f"cannot read image {path}: {reason}; replace or remove the file") from None
    return downscale(image, max_side)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The .jpg/.jpeg/.png files directly in `folder` (any case, hidden files skipped), sorted by name."""
    folder = Path(folder)
    found = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(found, key=lambda p: p.name)


def _check_folder(folder: Path) -> list[Path]:
    if not folder.exists():
        raise InputError(f"image folder {folder} does not exist; pass a folder of .jpg/.png photos")
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder; pass the folder that holds the .jpg/.png photos")
    paths = list_images(folder)
    if not paths:
        others = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        if not others:
            raise InputError(f"image folder {folder} is empty; put the .jpg/.png photos of the scene in it")
        raise InputError(
            f"no .jpg/.png images in {folder} (found {len(others)} other entries, e.g. {others[0]}); "
            "put the photos of the scene in it"
        )
    return paths


def load_image_folder(folder: str | os.PathLike, max_side: int | None = None) -> ImageSet:
    """Load every image of a folder (see list_images), skipping unreadable ones with a warning.

    Raises InputError when the folder is missing, empty, has no images, or none can be read.
    A single image is allowed here; use `require_views` where several are needed.
    """
    folder = Path(folder)
    out = ImageSet([], [], [], [], folder)
    errors = []
    for path in _check_folder(folder):
        try:
            full = read_image(path)
        except InputError as e:
            warnings.warn(str(e), UnreadableImageWarning, stacklevel=2)
            errors.append(str(e))
            out.skipped.append(path.name)
            continue
        image = downscale(full, max_side)
        out.images.append(image)
        out.names.append(path.name)
        out.scales.append(image.shape[1] / full.shape[1])
        out.original_sizes.append((full.shape[1], full.shape[0]))
        try:
            prior = focal_prior_or_reason(path, (image.shape[1], image.shape[0]))
        except ValueError as e:  # EXIF that disagrees with the decoded pixels: no prior, not a failed load
            prior = str(e)
        out.focal_priors.append(prior if isinstance(prior, FocalPrior) else None)
        out.focal_notes.append(prior.source if isinstance(prior, FocalPrior) else prior)
    if not out.images:
        raise InputError(f"none of the {len(errors)} images in {folder} could be read (first: {errors[0]})")
    return out


def require_views(images: ImageSet, n: int = 2) -> ImageSet:
    """Raise InputError unless the set holds at least n images; returns the set."""
    if len(images) < n:
        raise InputError(
            f"need at least {n} images, found {len(images)} in {images.root}; add more photos of the scene"
        )
    return images

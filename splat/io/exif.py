"""Focal length priors and camera identity from a photo's EXIF.

The focal in pixels comes from the first of these that the file carries and that makes sense:

1. FocalLengthIn35mmFilm (0xA405). CIPA DC-008 (Exif 2.3) only calls it "the equivalent focal
   length assuming a 35mm film camera"; the equivalence cameras use is the one of CIPA DCG-001:
   equal *diagonal* angle of view. So the image diagonal maps onto the 36 x 24 mm frame's
   diagonal, 43.27 mm: f_px = f35 / 43.27 * hypot(W, H). (Mapping the image width onto 36 mm
   instead would be 5 % short on a 4:3 sensor: the Kodak Z612 in sceaux-castle writes 35 for
   5.85 mm on a 5.75 mm wide sensor, which is diagonal 35.2, width-based 36.6.) The tag is an
   integer, so it carries up to +-0.5 mm of rounding: 1.4 % at 35 mm, 2 % at 26 mm.
2. FocalLength (0x920A) with FocalPlaneXResolution / FocalPlaneResolutionUnit (0xA20E, 0xA210):
   pixels per unit length on the sensor, referred to PixelXDimension (0xA002) when present.
3. FocalLength with the sensor width of a known camera (SENSOR_WIDTH_MM below), spanning the
   image's longer side.

Paths 2 and 3 multiply by DigitalZoomRatio (0xA404) when it is above 1 (FocalLength is the
optical focal; the image is a crop of the sensor). Every path assumes square pixels, so the
focal in pixels does not change when EXIF orientation turns the image: it scales with the longer
side, from the file's stored size to the loaded one. A file whose aspect ratio differs from its
PixelXDimension x PixelYDimension was cropped after capture and gets no prior.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from PIL import Image

EXIF_IFD = 0x8769
MAKE, MODEL, ORIENTATION = 0x010F, 0x0110, 0x0112
FOCAL_LENGTH, FOCAL_35MM, DIGITAL_ZOOM = 0x920A, 0xA405, 0xA404
PIXEL_X, PIXEL_Y = 0xA002, 0xA003
FOCAL_PLANE_X_RES, FOCAL_PLANE_UNIT = 0xA20E, 0xA210

DIAGONAL_35MM = math.hypot(36.0, 24.0)  # 43.27 mm
FOCAL_35MM_RANGE = (8.0, 1200.0)  # equivalent focals outside this are not a rectilinear photo lens
FOCAL_MM_MAX = 2000.0
SENSOR_WIDTH_RANGE_MM = (1.0, 60.0)  # phone sensors to 645 medium format
# FocalPlaneResolutionUnit: 2 inch (the default), 3 cm per Exif 2.3; 4 mm and 5 um as TIFF/EP writers use.
PLANE_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}

# Sensor widths (mm, the longer side) from the openMVG Camera Sensor Size Database, MIT licence,
# github.com/openMVG/CameraSensorSizeDatabase sensor_database.csv at 07da7ac (2019), which takes
# them from digicamdb.com. Keys are "brand model" as `_table_key` normalises the EXIF Make and Model
# (the database's own names are marketing names; these are what the cameras write).
SENSOR_WIDTH_MM = {
    "apple iphone 4": 4.54,
    "apple iphone 4s": 4.54,
    "apple iphone 5": 4.54,
    "apple iphone 5s": 4.89,
    "apple iphone 6": 4.89,
    "apple iphone 6 plus": 4.89,
    "canon eos 5d mark ii": 36.0,
    "canon eos 5d mark iii": 36.0,
    "canon eos 5d mark iv": 36.0,
    "canon eos 6d": 35.8,
    "canon eos 7d": 22.3,
    "canon eos 70d": 22.5,
    "canon eos 550d": 22.3,
    "canon eos rebel t2i": 22.3,
    "canon eos 600d": 22.3,
    "canon eos rebel t3i": 22.3,
    "canon powershot g7 x": 13.2,
    "nikon d750": 35.9,
    "nikon d800": 35.9,
    "nikon d7000": 23.6,
    "nikon d7100": 23.5,
    "nikon d3300": 23.5,
    "nikon d5300": 23.5,
    "sony ilce-6000": 23.5,
    "sony nex-7": 23.5,
    "sony dsc-rx100": 13.2,
    "sony dsc-rx100m3": 13.2,
    "fujifilm x-t1": 23.6,
    "fujifilm x100s": 23.6,
    "olympus e-m5": 17.3,
    "olympus e-m1": 17.3,
    "panasonic dmc-gh4": 17.3,
    "panasonic dmc-lx100": 17.3,
    "kodak z612 zoom digital camera": 5.75,
    "dji fc6310": 6.17,  # Phantom 4 Pro
    "dji fc300s": 6.16,  # Phantom 3 Professional
}
_BRAND_ALIASES = {"eastman": "kodak"}  # "EASTMAN KODAK COMPANY"


@dataclass(frozen=True)
class CameraExif:
    """What a photo's EXIF says about its camera, as stored (before orientation and resizing).

    Attributes:
        make, model: EXIF Make and Model, stripped ("" when absent).
        width, height: size of the image stored in the file, in pixels, before EXIF orientation.
        orientation: EXIF Orientation 1..8 (1 when absent or invalid).
        focal_mm: FocalLength in mm, None when absent.
        focal_35mm: FocalLengthIn35mmFilm in mm, None when absent or 0 ("unknown").
        plane_px_per_mm: FocalPlaneXResolution converted to pixels per mm, None when absent.
        exif_width, exif_height: PixelXDimension, PixelYDimension (the size the camera recorded).
        digital_zoom: DigitalZoomRatio, None when absent or 0.
    """

    make: str
    model: str
    width: int
    height: int
    orientation: int = 1
    focal_mm: float | None = None
    focal_35mm: float | None = None
    plane_px_per_mm: float | None = None
    exif_width: int | None = None
    exif_height: int | None = None
    digital_zoom: float | None = None

    @property
    def camera_key(self) -> str:
        """make|model|WxH: photos sharing it share intrinsics."""
        return f"{self.make}|{self.model}|{self.width}x{self.height}"


@dataclass(frozen=True)
class FocalPrior:
    """A focal length from EXIF, in pixels of the image as loaded.

    Attributes:
        focal_px: fx = fy in pixels of the loaded image (upright, downscaled).
        source: where it came from, for logs, e.g. "EXIF FocalLengthIn35mmFilm 35 mm".
        camera_key: make|model|WxH of the stored image (see CameraExif.camera_key).
    """

    focal_px: float
    source: str
    camera_key: str


def _number(value) -> float | None:
    """A finite float from an EXIF value (int, IFDRational, 1-tuple), None otherwise."""
    if isinstance(value, tuple):
        value = value[0] if len(value) == 1 else None
    try:
        x = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return x if math.isfinite(x) else None


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return str(value).replace("\x00", " ").strip() if value is not None else ""


def read_camera_exif(path: str | os.PathLike) -> CameraExif | None:
    """Read the camera tags of a photo (the header only, no pixel decoding).

    Returns None when the file has no EXIF or cannot be opened.
    """
    try:
        with Image.open(path) as im:
            exif = im.getexif()
            width, height = im.size
            sub = exif.get_ifd(EXIF_IFD) if exif else {}
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    if not exif:
        return None

    def tag(t):  # Exif sub-IFD first; some writers put these tags in IFD0
        return sub.get(t, exif.get(t))

    orientation = _number(exif.get(ORIENTATION))
    f35 = _number(tag(FOCAL_35MM))
    res, unit = _number(tag(FOCAL_PLANE_X_RES)), _number(tag(FOCAL_PLANE_UNIT))
    unit_mm = PLANE_UNIT_MM.get(int(unit) if unit is not None else 2)
    px, py = _number(tag(PIXEL_X)), _number(tag(PIXEL_Y))
    zoom = _number(tag(DIGITAL_ZOOM))
    return CameraExif(
        make=_text(exif.get(MAKE)),
        model=_text(exif.get(MODEL)),
        width=width,
        height=height,
        orientation=int(orientation) if orientation in range(1, 9) else 1,
        focal_mm=_number(tag(FOCAL_LENGTH)),
        focal_35mm=f35 if f35 else None,
        plane_px_per_mm=res / unit_mm if res and unit_mm else None,
        exif_width=int(px) if px and px > 0 else None,
        exif_height=int(py) if py and py > 0 else None,
        digital_zoom=zoom if zoom else None,
    )


def _table_key(make: str, model: str) -> str:
    """'brand model', lower case, brand not repeated: ('NIKON CORPORATION', 'NIKON D750') -> 'nikon d750'."""
    words = make.lower().split()
    brand = _BRAND_ALIASES.get(words[0], words[0]) if words else ""
    model = " ".join(model.lower().split())
    if brand and model.startswith(brand + " "):
        model = model[len(brand) + 1 :]
    return f"{brand} {model}".strip()


def sensor_width_mm(make: str, model: str) -> float | None:
    """The sensor width of a camera in SENSOR_WIDTH_MM (case-insensitive on make and model), else None."""
    return SENSOR_WIDTH_MM.get(_table_key(make, model))


def _stored_focal_px(cam: CameraExif) -> tuple[float | None, str, list[str]]:
    """(focal in pixels of the stored image, its source, reasons each rejected path gave)."""
    long_side, diag = max(cam.width, cam.height), math.hypot(cam.width, cam.height)
    lo, hi = FOCAL_35MM_RANGE
    rejected = []
    if cam.focal_35mm is not None:
        if lo <= cam.focal_35mm <= hi:
            source = f"EXIF FocalLengthIn35mmFilm {cam.focal_35mm:g} mm"
            return cam.focal_35mm / DIAGONAL_35MM * diag, source, []
        rejected.append(f"FocalLengthIn35mmFilm {cam.focal_35mm:g} mm is outside {lo:g}-{hi:g} mm")
    f = cam.focal_mm
    if f is None:
        return None, "", rejected + ["no FocalLength"]
    if not 0 < f <= FOCAL_MM_MAX:
        return None, "", rejected + [f"FocalLength {f:g} mm is not a lens focal"]
    zoom = cam.digital_zoom if cam.digital_zoom and cam.digital_zoom > 1 else 1.0
    zoom_note = f" x DigitalZoomRatio {zoom:g}" if zoom > 1 else ""
    candidates = []
    if cam.plane_px_per_mm is not None:
        ref = max(cam.exif_width or 0, cam.exif_height or 0) or long_side  # resolution refers to this size
        width_mm = ref / cam.plane_px_per_mm
        source = f"EXIF FocalLength {f:g} mm + FocalPlaneXResolution (sensor width {width_mm:.2f} mm)"
        candidates.append((width_mm, source))
    table = sensor_width_mm(cam.make, cam.model)
    if table is not None:
        source = f"EXIF FocalLength {f:g} mm + sensor width {table:g} mm (table: {cam.make} {cam.model})"
        candidates.append((table, source))
    if not candidates:
        camera = f"{cam.make} {cam.model}".strip() or "an unnamed camera"
        rejected.append(
            f"FocalLength {f:g} mm, but no usable FocalPlaneXResolution and {camera} not in the sensor table"
        )
    for width_mm, source in candidates:
        focal_px = f * zoom / width_mm * long_side
        f35 = focal_px / diag * DIAGONAL_35MM
        wlo, whi = SENSOR_WIDTH_RANGE_MM
        if not wlo <= width_mm <= whi:
            rejected.append(f"{source}: sensor width outside {wlo:g}-{whi:g} mm")
        elif not lo <= f35 <= hi:
            rejected.append(f"{source}: 35 mm equivalent {f35:.0f} mm is outside {lo:g}-{hi:g} mm")
        else:
            return focal_px, source + zoom_note, rejected
    return None, "", rejected


def focal_prior_or_reason(path: str | os.PathLike, loaded_size: tuple[int, int]) -> FocalPrior | str:
    """The EXIF focal prior of a photo, or one line saying why there is none.

    Args:
        path: the photo file.
        loaded_size: (width, height) of the image as loaded (upright, downscaled; see read_image).

    Raises ValueError when loaded_size is not the stored image, turned and scaled.
    """
    cam = read_camera_exif(path)
    if cam is None:
        return "no EXIF"
    w, h = loaded_size
    upright = (cam.height, cam.width) if cam.orientation >= 5 else (cam.width, cam.height)
    scale = max(w, h) / max(upright)
    if abs(upright[0] * scale - w) > 1 or abs(upright[1] * scale - h) > 1:
        raise ValueError(
            f"loaded size {w}x{h} is not {path}'s stored {cam.width}x{cam.height} "
            f"with orientation {cam.orientation}, scaled"
        )
    if cam.exif_width and cam.exif_height:
        a, b = sorted((cam.width, cam.height)), sorted((cam.exif_width, cam.exif_height))
        if abs(a[0] / a[1] - b[0] / b[1]) > 0.01:
            return (
                f"image {cam.width}x{cam.height} has another aspect ratio than the camera's "
                f"{cam.exif_width}x{cam.exif_height}: cropped, so its EXIF focal does not apply"
            )
    focal_px, source, rejected = _stored_focal_px(cam)
    if focal_px is None:
        return "; ".join(rejected)
    if scale != 1.0:
        source += f", scaled x{scale:.4g}"
    return FocalPrior(focal_px * scale, source, cam.camera_key)


def focal_prior(path: str | os.PathLike, loaded_size: tuple[int, int]) -> FocalPrior | None:
    """The EXIF focal prior of a photo at its loaded size, None when EXIF gives none that makes sense.

    See focal_prior_or_reason for the reason, and the module docstring for the conventions.
    """
    prior = focal_prior_or_reason(path, loaded_size)
    return prior if isinstance(prior, FocalPrior) else None


def intrinsics_groups(priors: list[FocalPrior | None]) -> list[int]:
    """Group index per image, by camera_key, numbered in order of first appearance.

    Images without a prior form one group together (one shared unknown focal, as the pose solvers
    assume without EXIF).
    """
    index: dict[str | None, int] = {}
    return [index.setdefault(p.camera_key if p else None, len(index)) for p in priors]


def focal_exif(focal_px: float, width: int, height: int, make: str = "", model: str = "") -> Image.Exif:
    """EXIF that states a focal of `focal_px` pixels for a width x height image, exactly (FocalLength 10 mm
    with FocalPlaneXResolution in pixels per cm; no rounded 35 mm tag): for copies of renders in tests and
    benchmarks. Save with `image.save(path, exif=focal_exif(...))`."""
    from PIL.TiffImagePlugin import IFDRational

    exif = Image.Exif()
    if make:
        exif[MAKE] = make
    if model:
        exif[MODEL] = model
    sub = exif.get_ifd(EXIF_IFD)
    sub[FOCAL_LENGTH] = IFDRational(10, 1)
    sub[FOCAL_PLANE_X_RES] = IFDRational(round(focal_px * 1000), 1000)  # px per cm = focal_px / 10 mm * 10
    sub[FOCAL_PLANE_UNIT] = 3  # centimetre
    sub[PIXEL_X], sub[PIXEL_Y] = int(width), int(height)
    return exif

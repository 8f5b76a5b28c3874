"""Video in: the sharpest frame of each stretch of a clip, written as photos for `splat fit`.

A clip is decoded by the ffmpeg binary that imageio-ffmpeg ships (`imageio_ffmpeg.read_frames`), one
frame at a time through a pipe: only the current window's sharpest frame is held, never the clip. The
clip's decoded frames are split into `n_frames` equal windows (equal in time at a constant frame rate)
and each window gives its sharpest frame (variance of the Laplacian of the grey image), so the frames
cover the clip evenly and motion-blurred frames lose to their sharper neighbours.

Frames are scored at `score_side` (ffmpeg scales while decoding); when the output is larger, a second
pass decodes only the chosen frames at the output size. `extract_frames` writes them as PNG into one
folder (RUN/frames/ in `splat fit`), named `<clip>_<source frame index>.png` so that name order is time
order, and last frames.json: the sources (path, size, mtime), the settings, the chosen indices and their
sharpness. A folder whose frames.json matches the sources and settings is reused without decoding.
Several clips share `n_frames` in proportion to their durations.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

from splat.errors import InputError
from splat.io.atomic import atomic_write_bytes
from splat.io.images import IMAGE_EXTENSIONS, list_images
from splat.progress import bar, showing

VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv", ".m4v", ".avi")
DEFAULT_FRAMES = 48  # FitConfig.frames: enough overlap for the pose stage on a walk-around clip
SCORE_SIDE = 512  # frames are scored at this longer side (blur shows at any size; decoding is cheaper)
FRAMES_JSON = "frames.json"
_FORMAT = 1  # frames.json layout version
REEXPORT = "re-export it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4) or remove it"


@dataclass
class ChosenFrame:
    """One window's sharpest frame."""

    index: int  # source frame index, in decoding order from 0
    sharpness: float  # variance of the Laplacian of the grey frame at the scoring size
    image: np.ndarray | None  # (H, W, 3) uint8 RGB at the output size


@dataclass
class VideoInfo:
    """What one demuxing pass (no decoding) tells about a clip."""

    frames: int  # video packets: the frames ffmpeg will decode
    duration: float  # seconds; 0 when the container does not say


def is_video(path: str | os.PathLike) -> bool:
    """Whether `path` names a video splat reads (by its suffix, any case)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def list_videos(folder: str | os.PathLike) -> list[Path]:
    """The video files directly in `folder` (hidden files skipped), sorted by name."""
    found = [p for p in Path(folder).iterdir() if is_video(p) and not p.name.startswith(".") and p.is_file()]
    return sorted(found, key=lambda p: p.name)


def video_sources(path: str | os.PathLike) -> list[Path] | None:
    """The videos `splat fit PATH` reads: PATH when it is a video, or a folder's videos when it holds no
    photos; None otherwise (a folder of photos, a missing path: load_image_folder says what is wrong).

    Raises InputError for a file that is not a video, and for a folder of both photos and videos."""
    path = Path(path)
    if path.is_file():
        _check_video(path)
        return [path]
    if not path.is_dir():
        return None
    videos, photos = list_videos(path), list_images(path)
    if videos and photos:
        raise InputError(
            f"{path} holds both photos ({len(photos)}, e.g. {photos[0].name}) and videos ({len(videos)}, "
            f"e.g. {videos[0].name}); move the videos or the photos to another folder"
        )
    return videos or None


def _check_video(path: Path) -> None:
    """Raise InputError unless `path` is an existing file with a video suffix."""
    if is_video(path):
        if not path.is_file():
            raise InputError(f"video {path} does not exist; give the path of a video file")
        return
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise InputError(f"{path} is one photo; pass the folder that holds the photos, or a video")
    raise InputError(
        f"{path}: {path.suffix or 'no suffix'} is not a video splat reads ({', '.join(VIDEO_EXTENSIONS)}); "
        f"give a video or a folder of photos (ffmpeg -i {path.name} {path.stem}.mp4 converts a video)"
    )


def probe(path: str | os.PathLike) -> VideoInfo:
    """Count a clip's video frames by demuxing it (fast: nothing is decoded).

    Raises InputError naming the file when ffmpeg finds no readable video stream in it."""
    path = Path(path)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path)]
    cmd += ["-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    counts = re.findall(r"frame=\s*(\d+)", proc.stderr)
    if proc.returncode != 0 or not counts:
        raise InputError(f"cannot read video {path}: {_reason(proc.stderr)}; {REEXPORT}")
    hms = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", proc.stderr)
    duration = 3600 * int(hms[1]) + 60 * int(hms[2]) + float(hms[3]) if hms else 0.0
    return VideoInfo(int(counts[-1]), duration)


def _reason(text: str) -> str:
    """ffmpeg's last complaint in `text` (its stderr, or imageio-ffmpeg's error), on one short line."""
    lines = [re.sub(r"^\[[^\]]*\]\s*", "", " ".join(line.split())) for line in re.split(r"[\r\n]+", text)]
    lines = [line for line in lines if line and not line.startswith(("frame=", "size=", "==="))]
    return lines[-1][:200] if lines else "ffmpeg gave no reason"


def _decode(path: Path, side: int | None, select: list[int] | None = None) -> Iterator[np.ndarray]:
    """Yield (H, W, 3) uint8 RGB frames, longer side <= side (None: as stored); only `select`'s indices
    when given. Every decoded frame comes out once, in order (no frame-rate conversion)."""
    filters = []
    if select is not None:
        filters.append("select='" + "+".join(f"eq(n,{i})" for i in select) + "'")
    if side:
        filters.append(f"scale=w='min(iw,{side})':h='min(ih,{side})':force_original_aspect_ratio=decrease"
                       ":flags=area")  # fmt: skip
    params = ["-map", "0:v:0", "-an", "-sn", "-dn", "-fps_mode", "passthrough"]
    frames = imageio_ffmpeg.read_frames(
        str(path), output_params=params + (["-vf", ",".join(filters)] if filters else [])
    )
    quiet = logging.getLogger("imageio_ffmpeg")  # it warns whenever the output size differs from the source's
    level = quiet.level
    try:
        quiet.setLevel(logging.ERROR)
        try:
            meta = next(frames)
        except (OSError, RuntimeError, IndexError, AttributeError) as e:
            raise InputError(f"cannot read video {path}: {_reason(str(e))}; {REEXPORT}") from None
        finally:
            quiet.setLevel(level)
        width, height = meta["size"]
        try:
            for raw in frames:
                yield np.frombuffer(raw, np.uint8).reshape(height, width, 3)
        except RuntimeError as e:
            raise InputError(f"cannot decode video {path}: {_reason(str(e))}; {REEXPORT}") from None
    finally:
        frames.close()


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of a (H, W, 3) uint8 RGB image's grey values: low when blurred."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def _window_best(frames: Iterable[np.ndarray], n: int, total: int, keep: bool, advance, path: Path):
    """Yield the sharpest frame of each of n equal windows of `total` frames, as each window closes."""
    best, window, decoded = None, 0, 0
    for i, image in enumerate(frames):
        w = min(i * n // total, n - 1)
        if w != window and best is not None:
            yield best
            best = None
        window = w
        score = sharpness(image)
        if best is None or score > best.sharpness:
            best = ChosenFrame(i, score, image if keep else None)
        decoded += 1
        advance()
    if decoded < 2:
        raise InputError(f"video {path}: {decoded} decodable frame(s), need at least 2; give a longer clip")
    yield best


def select_frames(
    path: str | os.PathLike,
    n_frames: int = DEFAULT_FRAMES,
    max_side: int | None = None,
    *,
    score_side: int | None = SCORE_SIDE,
) -> Iterator[ChosenFrame]:
    """Yield the sharpest frame of each of `n_frames` equal windows of the clip, in time order.

    Args:
        path: the video.
        n_frames: windows (all frames when the clip has fewer).
        max_side: longer side of the yielded images (None: as stored; never upscaled).
        score_side: longer side the frames are scored at (None: at max_side); when smaller than
            max_side, a second pass decodes only the chosen frames at max_side.

    Scoring advances a "frames" bar (splat.progress: drawn inside `showing`).

    Raises InputError for a file that is not a video, cannot be read or has fewer than 2 frames."""
    path = Path(path)
    _check_video(path)
    yield from _select(path, probe(path), n_frames, max_side, score_side)


def _select(path: Path, info: VideoInfo, n_frames, max_side, score_side) -> Iterator[ChosenFrame]:
    if info.frames < 2:
        raise InputError(f"video {path}: {info.frames} frame(s), need at least 2; give a longer clip")
    if n_frames < 1:
        raise InputError(f"{n_frames} frames asked of {path}; give 1 or more")
    n = min(n_frames, info.frames)
    two_pass = score_side is not None and (max_side is None or max_side > score_side)
    with bar("frames", info.frames) as frames_bar:
        frames_bar.info = path.name
        side = score_side if two_pass else max_side
        best = _window_best(_decode(path, side), n, info.frames, not two_pass, frames_bar.advance, path)
        if not two_pass:
            yield from best
            return
        chosen = list(best)
    with contextlib.closing(_decode(path, max_side, select=[c.index for c in chosen])) as images:
        for frame in chosen:
            image = next(images, None)
            if image is None:
                raise InputError(f"video {path} decoded differently on a second pass; {REEXPORT}")
            yield ChosenFrame(frame.index, frame.sharpness, image)


def extract_frames(
    videos: str | os.PathLike | Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    n_frames: int = DEFAULT_FRAMES,
    *,
    max_side: int | None = None,
    score_side: int | None = SCORE_SIDE,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Write the sharpest frame of each window of one or more clips as PNG into out_dir; returns out_dir.

    Several clips share n_frames in proportion to their durations (at least 1 each). Files are
    `<clip>_<source frame index:06d>.png`, written atomically, then out_dir/frames.json. An out_dir whose
    frames.json matches the clips (path, size, mtime) and the settings is reused without decoding.
    `log` receives one line saying what was chosen or reused."""
    paths = [Path(videos)] if isinstance(videos, (str, os.PathLike)) else [Path(v) for v in videos]
    for path in paths:
        _check_video(path)
    out_dir, log = Path(out_dir), log or (lambda line: None)
    settings = {"n_frames": n_frames, "max_side": max_side, "score_side": score_side}
    sources = [_identity(p) for p in paths]
    old = read_frames_json(out_dir)
    if _matches(old, settings, sources, out_dir):
        log(f"reused {len(frame_files(old))} frames in {out_dir} (frames.json matches {_names(paths)})")
        return out_dir
    (out_dir / FRAMES_JSON).unlink(missing_ok=True)  # what follows is incomplete until frames.json is back
    infos = [probe(p) for p in paths]
    weights = [i.duration for i in infos] if all(i.duration > 0 for i in infos) else [i.frames for i in infos]
    with showing(progress):
        records = [
            _extract_one(path, info, share, prefix, source, out_dir, max_side, score_side)
            for path, info, share, prefix, source in zip(
                paths, infos, _shares(n_frames, weights), _prefixes(paths), sources
            )
        ]
    record = {"format": _FORMAT, **settings, "sources": records}
    _remove_stale(out_dir, set(frame_files(record)), set(frame_files(old)), _prefixes(paths))
    from splat.run import write_json

    write_json(out_dir / FRAMES_JSON, record)
    total, chosen = sum(i.frames for i in infos), len(frame_files(record))
    log(f"{chosen} frames of {total} from {_names(paths)} (the sharpest of each stretch) -> {out_dir}")
    return out_dir


def _extract_one(path, info, share, prefix, source, out_dir, max_side, score_side) -> dict:
    """Write one clip's chosen frames into out_dir; its frames.json record."""
    chosen = []
    for frame in _select(path, info, share, max_side, score_side):
        name = f"{prefix}_{frame.index:06d}.png"
        _, png = cv2.imencode(".png", cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
        atomic_write_bytes(out_dir / name, png.tobytes())
        chosen.append({"index": frame.index, "sharpness": round(frame.sharpness, 3), "file": name})
    return {**source, "frames_total": info.frames, "duration": info.duration, "chosen": chosen}


def read_frames_json(out_dir: str | os.PathLike) -> dict:
    """out_dir/frames.json as a dict ({} when missing or unreadable)."""
    try:
        record = json.loads((Path(out_dir) / FRAMES_JSON).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def frame_files(record: dict) -> list[str]:
    """The frame file names a frames.json record lists, in time order per source."""
    return [c["file"] for s in record.get("sources", []) for c in s.get("chosen", [])]


def _identity(path: Path) -> dict:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _matches(record: dict, settings: dict, sources: list[dict], out_dir: Path) -> bool:
    """Whether frames.json records a complete extraction of these sources with these settings."""
    if record.get("format") != _FORMAT or any(record.get(k) != v for k, v in settings.items()):
        return False
    keys = ("path", "size", "mtime_ns")
    if [{k: s.get(k) for k in keys} for s in record.get("sources", [])] != sources:
        return False
    return all((out_dir / name).is_file() for name in frame_files(record))


def _shares(n: int, weights: list[float]) -> list[int]:
    """n split in proportion to weights (largest remainders), at least 1 each."""
    raw = [n * w / sum(weights) for w in weights]
    shares = [max(1, int(r)) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda k: raw[k] - int(raw[k]), reverse=True)
    for k in by_remainder[: max(0, n - sum(shares))]:
        shares[k] += 1
    return shares


def _prefixes(paths: list[Path]) -> list[str]:
    """The file-name prefix of each clip: its stem, with its suffix where two clips share a stem."""
    stems = [p.stem for p in paths]
    return [p.stem if stems.count(p.stem) == 1 else f"{p.stem}_{p.suffix[1:].lower()}" for p in paths]


def _remove_stale(out_dir: Path, keep: set[str], listed: set[str], prefixes: list[str]) -> None:
    """Remove frames of an earlier extraction: those its frames.json listed and any `<prefix>_<index>.png`
    of these clips (left by an interrupted one) that this extraction did not write."""
    ours = re.compile(f"({'|'.join(map(re.escape, prefixes))})_\\d{{6,}}\\.png")
    for path in out_dir.iterdir():
        if path.name not in keep and (path.name in listed or ours.fullmatch(path.name)):
            path.unlink(missing_ok=True)


def _names(paths: list[Path]) -> str:
    return ", ".join(p.name for p in paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")

"""Video in: the sharpest frame of each stretch of a clip, written once as photos and reused after."""

import json
import random
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from splat import checks
from splat.cli import build_parser, fit_config, main
from splat.config import FitConfig
from splat.errors import InputError
from splat.io import video
from splat.io.images import load_image_folder
from splat.io.video import extract_frames, read_frames_json, select_frames, video_sources

PHOTOS = sorted(Path("scenes/garden/images").glob("*.jpg"))
SIZE = (128, 96)  # (width, height): small enough to encode and decode in a blink


def write_clip(path: Path, windows: int, per_window: int = 3) -> list[int]:
    """A clip of `windows` stretches of `per_window` frames: one photo each, sharp in one random frame and
    blurred in the others. Returns the index of each stretch's sharp frame."""
    writer = imageio_ffmpeg.write_frames(str(path), SIZE, fps=12, quality=8, macro_block_size=1)
    writer.send(None)
    sharp = []
    for w, photo in enumerate(random.sample(PHOTOS, windows)):
        image = cv2.resize(cv2.imread(str(photo))[..., ::-1], SIZE, interpolation=cv2.INTER_AREA)
        blurred = cv2.GaussianBlur(image, (0, 0), random.uniform(1.5, 3.0))
        at = random.randrange(per_window)
        for k in range(per_window):
            writer.send(np.ascontiguousarray(image if k == at else blurred))
        sharp.append(w * per_window + at)
    writer.close()
    return sharp


def test_the_sharpest_frame_of_each_stretch_is_taken_in_time_order(tmp_path):
    windows = random.randint(3, 6)
    sharp = write_clip(tmp_path / "clip.mp4", windows)
    chosen = list(select_frames(tmp_path / "clip.mp4", windows))
    assert [f.index for f in chosen] == sharp  # one per stretch, the sharp one, in order
    assert all(f.image.shape == (SIZE[1], SIZE[0], 3) for f in chosen)
    scored_small = list(select_frames(tmp_path / "clip.mp4", windows, score_side=64))  # two passes
    assert [f.index for f in scored_small] == sharp
    assert all(np.array_equal(a.image, b.image) for a, b in zip(chosen, scored_small))
    assert len(list(select_frames(tmp_path / "clip.mp4", 100))) == 3 * windows  # fewer frames: all


def test_extract_writes_ordered_frames_and_frames_json_then_reuses_them(tmp_path, monkeypatch):
    clip, out = tmp_path / "walk.mp4", tmp_path / "run" / "frames"
    sharp = write_clip(clip, 4)
    logged = []
    assert extract_frames(clip, out, 4, max_side=96, log=logged.append) == out
    files = [f"walk_{i:06d}.png" for i in sharp]
    assert sorted(p.name for p in out.glob("*.png")) == files
    assert load_image_folder(out).names == files and max(load_image_folder(out).sizes[0]) == 96
    record = json.loads((out / "frames.json").read_text())
    (source,) = record["sources"]
    assert source["path"] == str(clip.resolve()) and source["size"] == clip.stat().st_size
    assert source["mtime_ns"] == clip.stat().st_mtime_ns and source["frames_total"] == 12
    assert record["n_frames"] == 4 and [c["index"] for c in source["chosen"]] == sharp
    assert all(c["sharpness"] > 0 for c in source["chosen"]) and "4 frames of 12" in logged[0]

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(imageio_ffmpeg, "read_frames", no_decoding)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", no_decoding)
    written = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert extract_frames(clip, out, 4, max_side=96, log=logged.append) == out  # resumed
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == written and "reused" in logged[1]
    with pytest.raises(AssertionError, match="decoded again"):  # other settings: extracted anew
        extract_frames(clip, out, 3, max_side=96)
    monkeypatch.undo()
    extract_frames(clip, out, 2, max_side=96)  # fewer frames: the earlier ones go
    assert sorted(p.name for p in out.glob("*.png")) == [f"walk_{i:06d}.png" for i in read_chosen(out)]
    assert len(read_chosen(out)) == 2


def read_chosen(out: Path) -> list[int]:
    return [c["index"] for s in read_frames_json(out)["sources"] for c in s["chosen"]]


def test_a_folder_of_clips_shares_the_frames_by_duration(tmp_path):
    (tmp_path / "clips").mkdir()
    short, long = tmp_path / "clips" / "a.mov", tmp_path / "clips" / "b.mkv"
    write_clip(short, 2)  # 6 frames, 0.5 s
    write_clip(long, 4)  # 12 frames, 1 s
    videos = video_sources(tmp_path / "clips")
    assert videos == [short, long] and video_sources(short) == [short]
    assert video_sources("scenes/garden/images") is None  # photos: not ours to load
    extract_frames(videos, tmp_path / "frames", 6)
    record = read_frames_json(tmp_path / "frames")
    assert [len(s["chosen"]) for s in record["sources"]] == [2, 4]
    names = sorted(p.name for p in (tmp_path / "frames").glob("*.png"))
    assert [n.split("_")[0] for n in names] == ["a"] * 2 + ["b"] * 4


def test_bad_videos_are_one_line_input_errors_naming_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng().integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match="corrupt.mp4") as e:
        extract_frames(corrupt, tmp_path / "frames", 8)
    assert "\n" not in str(e.value) and "re-export" in str(e.value)
    one = tmp_path / "one.mp4"
    write_clip(one, 1, per_window=1)
    with pytest.raises(InputError, match="one.mp4.*at least 2"):
        list(select_frames(one, 8))
    gif = tmp_path / "clip.gif"
    gif.write_bytes(b"GIF89a")
    with pytest.raises(InputError, match=r"clip.gif: \.gif is not a video"):
        extract_frames(gif, tmp_path / "frames", 8)


def test_a_folder_of_photos_and_videos_is_refused(tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_clip(folder / "clip.mp4", 1)
    cv2.imwrite(str(folder / "photo.png"), np.zeros((96, 128, 3), np.uint8))
    with pytest.raises(InputError, match="photo.png.*clip.mp4.*move the videos or the photos"):
        video_sources(folder)
    assert main(["fit", str(folder), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("splat: error:") and "\n" not in err and "move the videos" in err
    assert not (tmp_path / "run").exists()  # refused before any work


def test_fit_takes_a_video_and_the_frames_flag(tmp_path, monkeypatch, capsys):
    """`splat fit clip.mp4 --frames N`: N frames extracted into RUN/frames/ and loaded (the pose stage is
    stopped here: a whole fit is tests/test_pipeline.py's)."""
    import splat.pipeline

    parser = build_parser()
    default = fit_config(parser.parse_args(["fit", "clip.mp4"])).frames
    assert default == FitConfig().frames == video.DEFAULT_FRAMES
    assert fit_config(parser.parse_args(["fit", "clip.mp4", "--frames", "12"])).frames == 12
    with pytest.raises(SystemExit):
        parser.parse_args(["fit", "clip.mp4", "--frames", "1"])
    assert set(checks.VIDEO_INPUTS) == set(video.VIDEO_EXTENSIONS)

    class Loaded(Exception):
        pass

    def stop(run, images, names, *args):
        raise Loaded(names, [im.shape for im in images])

    monkeypatch.setattr(splat.pipeline, "stage_poses", stop)
    clip, run = tmp_path / "clip.m4v", tmp_path / "run"
    sharp = write_clip(clip, 5, per_window=2)
    with pytest.raises(Loaded) as loaded:
        main(["fit", str(clip), "--out", str(run), "--frames", "5", "--max-side", "64", "--poses", "sparse"])
    names, shapes = loaded.value.args
    assert names == [f"clip_{i:06d}.png" for i in sharp] and shapes[0] == (48, 64, 3)
    config = json.loads((run / "config.json").read_text())
    assert config["input"] == "video" and config["frames"] == 5
    assert config["images_dir"] == str(clip.resolve())
    assert Path(config["images"]) == (run / "frames").resolve()
    assert "video: 5 frames of 10" in (run / "fit.log").read_text()
    capsys.readouterr()
    (tmp_path / "notes.txt").write_text("x")
    assert main(["fit", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "r2")]) == 2
    assert "is a file, not a video" in capsys.readouterr().err

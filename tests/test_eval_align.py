"""Test-view alignment in `splat eval`: pose and focal brought back, flags, refused ground truth.

One small garden fit (12 Tanks & Temples views, ground-truth poses, 192 px) serves every test;
each evaluation scores a few of the held-out views only.
"""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from splat.cli import main
from splat.errors import InputError
from splat.eval.align import AlignSettings, align_views
from splat.eval.evaluate import GroundTruthMismatch, evaluate_run
from splat.geometry.se3 import rotation_angle_deg, se3_exp
from splat.io.colmap import read_model, write_model
from splat.io.datasets import load_scene, tnt_split
from splat.io.ply import read_ply, write_ply
from splat.pipeline import FitConfig, fit
from splat.render import render
from splat.run import load_run
from splat.types import Cameras

SCENES = Path(__file__).resolve().parents[1] / "scenes"
GARDEN = SCENES / "garden"
SIDE = 192
TRAIN = [f"frame_{i:03d}.jpg" for i in tnt_split(24, 12)[0]]
TEST = ["frame_004.jpg", "frame_012.jpg", "frame_018.jpg"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("garden_run")
    train = {"steps": 1000, "sh_degree": 1, "pose_refine": False, "checkpoint_every": 0}
    # no far field: the lens test's margins (a double resampling of the photos) were set without one
    poses = f"given:{GARDEN}/sparse/0"
    cfg = FitConfig(max_side=SIDE, poses=poses, budget=20000, far_field=0, views=TRAIN, train=train)
    fit(GARDEN / "images", out, cfg, progress=False)
    return out


def copy_run(run: Path, dest: Path, focal_scale: float = 1.0) -> Path:
    """The run's outputs (not its eval) in `dest`, its cameras' fx, fy scaled by `focal_scale`."""
    dest.mkdir()
    for name in ("splat.ply", "config.json", "metrics.json"):
        shutil.copy(run / name, dest / name)
    cams = read_model(run / "cameras").cameras
    K = cams.K.clone()
    K[:, :2, :2] *= focal_scale
    write_model(dest / "cameras", Cameras(K, cams.w2c, cams.width, cams.height, cams.names))
    return dest


def perturbed(cams: Cameras, degrees: float, shift: float, focal_scale: float, seed: int) -> Cameras:
    """Each view rotated by `degrees` about a random axis through its centre, moved by `shift`
    (world units) in a random direction, its focal scaled by `focal_scale`."""
    gen = torch.Generator().manual_seed(seed)
    w2c, K = cams.w2c.clone(), cams.K.clone()
    for v in range(len(cams)):
        axis = torch.nn.functional.normalize(torch.randn(3, generator=gen, dtype=w2c.dtype), dim=0)
        R = se3_exp(torch.cat([torch.zeros(3, dtype=w2c.dtype), math.radians(degrees) * axis]))
        w2c[v] = R @ w2c[v]
        step = shift * torch.nn.functional.normalize(torch.randn(3, generator=gen, dtype=w2c.dtype), dim=0)
        w2c[v, :3, 3] -= w2c[v, :3, :3] @ step  # centre moved by `step`
    K[:, :2, :2] *= focal_scale
    return Cameras(K, w2c, cams.width, cams.height, cams.names)


def test_alignment_brings_back_a_perturbed_pose_and_a_4_percent_focal(run):
    """Targets rendered from the Gaussians at the true cameras, so the answer is known exactly."""
    gaussians, _ = load_run(run)
    scene = load_scene(GARDEN, max_side=SIDE)
    truth = scene.cameras[[scene.cameras.index(n) for n in TEST]]
    with torch.no_grad():
        images = [render(gaussians, truth[v]).image.clamp(0, 1) for v in range(len(truth))]
    radius = float(truth.centers.norm(dim=-1).mean())
    start = perturbed(truth, degrees=1.0, shift=0.01 * radius, focal_scale=1.04, seed=0)
    before = {k: v.clone() for k, v in gaussians.tensors().items()}

    # two stages (96 and 192 px): the default min_side would leave the full size only
    aligned, reports = align_views(gaussians, start, images, AlignSettings(min_side=64))

    for v, r in enumerate(reports):
        assert r["converged"], r
        focal_error = float(aligned.K[v, 0, 0] / truth.K[v, 0, 0]) - 1
        assert abs(focal_error) < 0.005, (TEST[v], focal_error)
        assert float(rotation_angle_deg(aligned.w2c[v, :3, :3], truth.w2c[v, :3, :3])) < 0.1
        assert float((aligned.centers[v] - truth.centers[v]).norm()) < 0.002 * radius
        assert abs(r["focal_ratio"] - 1 / 1.04) < 0.005 and r["moved_deg"] > 0.5
    assert torch.equal(aligned.K[:, :2, 2], start.K[:, :2, 2])  # principal point kept
    assert all(torch.equal(before[k], v) for k, v in gaussians.tensors().items())  # Gaussians frozen


def test_a_run_whose_focal_is_4_percent_off_scores_as_with_the_true_focal(run, tmp_path):
    """The run's cameras say focal * 1.04, its Gaussians the true one: evaluation starts every
    test view at the run's focal and must find the true one again."""
    base = evaluate_run(copy_run(run, tmp_path / "base"), GARDEN, test_names=TEST, start_focal="gt")
    off = evaluate_run(copy_run(run, tmp_path / "off", 1.04), GARDEN, test_names=TEST)
    assert base["views_scored"] == off["views_scored"] == len(TEST) and not off["flagged"]
    assert abs(off["psnr"] - base["psnr"]) < 0.5
    for name in TEST:
        a = off["per_view"][name]["align"]
        assert a["converged"] and abs(a["focal_ratio"] * 1.04 - 1) < 0.005, (name, a)
        assert 0 < a["loss"] < 1 and a["motion_px"] < 0.2
        assert off["per_view"][name]["flag"] is None
    saved = json.loads((tmp_path / "off" / "eval.json").read_text())
    assert saved["views_flagged"] == 0 and saved["start_focal"] == "run"
    aligned = read_model(tmp_path / "off" / "eval_cameras").cameras
    truth = load_scene(GARDEN, max_side=SIDE).cameras
    for v, name in enumerate(aligned.names):
        assert abs(float(aligned.K[v, 0, 0] / truth.K[truth.index(name), 0, 0]) - 1) < 0.005


def _gt_copy(dest: Path, replace: dict[str, Path] | None = None, images_from: Path = GARDEN) -> Path:
    """A ground-truth folder: garden's cameras, the images of `images_from`, some replaced."""
    shutil.copytree(images_from / "images", dest / "images")
    shutil.copytree(GARDEN / "sparse", dest / "sparse")
    for name, source in (replace or {}).items():
        shutil.copy(source, dest / "images" / name)
    return dest


def test_a_view_that_does_not_align_is_flagged_and_left_out_of_the_means(run, tmp_path, capsys, monkeypatch):
    import splat.eval.evaluate

    stranger = SCENES / "statues" / "images" / "frame_012.jpg"  # not a photo of this garden
    gt = _gt_copy(tmp_path / "gt", {"frame_012.jpg": stranger})
    out = copy_run(run, tmp_path / "run")
    full = splat.eval.evaluate.evaluate_run  # `splat eval` on the three test views only, for time
    monkeypatch.setattr(splat.eval.evaluate, "evaluate_run", lambda *a, **kw: full(*a, **kw, test_names=TEST))
    assert main(["eval", str(out), "--gt", str(gt)]) == 0
    printed = capsys.readouterr().out
    r = json.loads((out / "eval.json").read_text())
    assert list(r["flagged"]) == ["frame_012.jpg"] and r["views_flagged"] == 1
    assert r["per_view"]["frame_012.jpg"]["flag"] == r["flagged"]["frame_012.jpg"]
    scored = [v["psnr"] for n, v in r["per_view"].items() if n != "frame_012.jpg"]
    assert r["views_scored"] == len(scored) == len(r["per_view"]) - 1
    assert r["psnr"] == pytest.approx(sum(scored) / len(scored))  # the flagged view is not averaged in
    assert r["all_views_mean"]["psnr"] < r["psnr"]
    assert f"{len(scored)} scored, 1 flagged" in printed and "flagged frame_012.jpg:" in printed


def test_a_step_cap_too_small_to_converge_flags_every_view(run, tmp_path):
    out = copy_run(run, tmp_path / "run")
    r = evaluate_run(out, GARDEN, refine_steps=3, test_names=TEST)
    assert r["views_scored"] == 0 and r["views_flagged"] == len(TEST) and r["psnr"] is None
    assert all("did not converge in 3 steps" in reason for reason in r["flagged"].values())
    assert r["all_views_mean"]["psnr"] > 0  # still there, for reference


def test_ground_truth_of_another_scene_is_refused(run, tmp_path):
    out = copy_run(run, tmp_path / "run")
    with pytest.raises(InputError, match="does not fit this run"):
        evaluate_run(out, SCENES / "statues", test_names=TEST)
    # garden's cameras with another scene's images: only the images tell
    gt = _gt_copy(tmp_path / "gt", images_from=SCENES / "statues")
    with pytest.raises(InputError, match="not the images it was trained on"):
        evaluate_run(out, gt, test_names=TEST)
    assert not (out / "eval.json").exists()


def _distorted_gt_copy(dest: Path, k1: float) -> Path:
    """garden's ground truth with every photo barrel-distorted by one radial term k1 (as a compact
    camera's), about the image centre, at garden's own focal."""
    import cv2
    import numpy as np

    from splat.geometry.lens import undistort_pixels

    gt = _gt_copy(dest)
    truth = load_scene(GARDEN).cameras
    for v, name in enumerate(truth.names):
        path = gt / "images" / name
        image = cv2.imread(str(path))
        H, W = image.shape[:2]
        f, c = float(truth.K[v, 0, 0]), np.array([W / 2, H / 2])
        gx, gy = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
        q = np.stack([gx.ravel(), gy.ravel()], 1)
        p = undistort_pixels(q, f, c, k1).reshape(H, W, 2).astype(np.float32) - 0.5  # the pinhole pixel seen
        cv2.imwrite(
            str(path),
            cv2.remap(image, p[..., 0], p[..., 1], cv2.INTER_LINEAR),
            [cv2.IMWRITE_JPEG_QUALITY, 97],
        )
    return gt


def test_ground_truth_photos_are_undistorted_with_the_runs_lens(run, tmp_path):
    """A run that found lens distortion trained on undistorted photos: the ground truth's photos (as taken,
    distorted) are undistorted with the run's k1 before they are scored, else the score measures the lens."""
    k1 = -0.12
    base = evaluate_run(copy_run(run, tmp_path / "base"), GARDEN, test_names=TEST)
    gt = _distorted_gt_copy(tmp_path / "gt", k1)
    try:  # told of no lens: refused (its training views do not match) or scored lower
        plain = evaluate_run(copy_run(run, tmp_path / "plain"), gt, test_names=TEST)
    except GroundTruthMismatch:
        plain = {"psnr": None, "undistorted_k1": None}
    out = copy_run(run, tmp_path / "lens")
    cams = read_model(out / "cameras").cameras
    f, W, H = float(cams.K[0, 0, 0]), int(cams.width[0]), int(cams.height[0])
    spec = {"k1": k1, "focal_px": f, "focal_out_px": f, "principal_point": [W / 2, H / 2]}
    (out / "poses").mkdir()
    (out / "poses" / "poses.json").write_text(json.dumps({"undistortion": [spec] * len(cams)}))
    lens = evaluate_run(out, gt, test_names=TEST)
    print(f"PSNR base {base['psnr']:.2f}, distorted GT {plain['psnr']}, undistorted {lens['psnr']:.2f}")
    assert lens["undistorted_k1"] == k1 and plain["undistorted_k1"] is None
    # distorting the test's photos and undistorting them resamples twice: the round trip alone scores
    # 28.5 dB at 192 px (frame_004), so the corrected score is about 1 dB below the base; the distorted
    # photos unlike the renders score 14.5 dB, and their training views fail the ground-truth check
    assert lens["views_scored"] == len(TEST) and base["psnr"] - 1.5 < lens["psnr"] < base["psnr"] + 0.5
    assert plain["psnr"] is None or plain["psnr"] < lens["psnr"] - 3.0


def test_views_scored_at_half_and_double_size_and_in_the_scenes_rasterizer_mode(run, tmp_path):
    """`scale` scores the aligned views rendered at another size against the ground truth resized alike (with
    the intrinsics left unscaled a half-size view shows a quarter of the scene: ~12 dB), and a splat.ply that
    says it was trained anti-aliased is rendered so unless told otherwise."""
    base = evaluate_run(copy_run(run, tmp_path / "base"), GARDEN, test_names=TEST, write=False)
    half = evaluate_run(copy_run(run, tmp_path / "half"), GARDEN, test_names=TEST, scale=0.5, write=False)
    double = evaluate_run(copy_run(run, tmp_path / "double"), GARDEN, test_names=TEST, scale=2, write=False)
    assert (base["scale"], half["scale"], double["scale"]) == (1.0, 0.5, 2)
    # rendered without the anti-aliasing filter, the half-size views lose ~3 dB to the dilated Gaussians
    assert half["psnr"] > base["psnr"] - 6 and double["psnr"] > base["psnr"] - 3, (base, half, double)
    assert not (tmp_path / "base" / "eval.json").exists()  # write=False
    aa = copy_run(run, tmp_path / "aa")
    write_ply(aa / "splat.ply", read_ply(aa / "splat.ply"), antialiased=True)
    marked = evaluate_run(aa, GARDEN, test_names=TEST, write=False)
    told = evaluate_run(aa, GARDEN, test_names=TEST, antialias=False, write=False)
    assert (base["antialias"], marked["antialias"], told["antialias"]) == (False, True, False)
    assert abs(told["psnr"] - base["psnr"]) < 1e-6 and abs(marked["psnr"] - base["psnr"]) > 1e-3

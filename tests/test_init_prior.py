"""Learned priors from a local model file (`--init prior:MODEL.pt2` or `.pt`): loading, scale fitting, init.

No weights can be downloaded here, so the models are tiny exported modules of the same interface:
"oracles" that read a depth encoded in the image (so the right answer is known), and a randomly
initialised convolution (whose depth fits no scene: refused with a clear error)."""

import inspect
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from splat.errors import InputError
from splat.init.prior import MAX_FIT_ERROR, fit_depth_scale, load_prior, prior_depths, prior_init
from splat.train.synthetic import arc_cameras


class RedIsDepth(torch.nn.Module):
    """Depth model: the red channel is the depth (up to the scale and shift the test encodes)."""

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return image[:, 0], torch.ones_like(image[:, 0])


class RedIsPointmap(torch.nn.Module):
    """Point-map model: image1's camera-frame points with z from its red channel (x, y unused here)."""

    def forward(self, image1: torch.Tensor, image2: torch.Tensor):
        z = image1[:, 0]
        pts = torch.stack([torch.zeros_like(z), torch.zeros_like(z), z], -1)
        return pts, torch.ones_like(z), pts, torch.ones_like(z)


class RandomDepth(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.softplus(self.conv(image))


def save(module, path):
    """TorchScript (.pt), or a torch.export program with dynamic image sizes (.pt2)."""
    if str(path).endswith(".pt2"):
        n = len(inspect.signature(module.forward).parameters)
        H, W = torch.export.Dim("H", min=2, max=4096), torch.export.Dim("W", min=2, max=4096)
        example = tuple(torch.rand(1, 3, 30, 40) for _ in range(n))
        dims = tuple({2: H, 3: W} for _ in range(n))
        torch.export.save(torch.export.export(module, example, dynamic_shapes=dims), str(path))
        return path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(module).save(str(path))
    return path


def plane_scene(views: int = 4, seed: int = 0):
    """Cameras on an arc looking at the plane n.x = d, images whose red channel holds each view's true
    z-depth under a random per-view affine map (depth = s_v * red + t_v), and points on the plane."""
    gen = np.random.default_rng(seed)
    cams = arc_cameras(views, 40, 30).to(dtype=torch.float64)
    n = np.array([0.5, 0.15, -0.85])  # facing the arc (the cameras sit at n.x ~ 3)
    n /= np.linalg.norm(n)
    d = -0.3  # just behind the origin the cameras look at
    images, truth = [], []
    for v in range(views):
        cam = cams[v]
        K, w2c = cam.K[0].numpy(), cam.w2c[0].numpy()
        R, t = w2c[:3, :3], w2c[:3, 3]
        centre = -R.T @ t
        u, w = np.meshgrid(np.arange(40) + 0.5, np.arange(30) + 0.5)
        rays_cam = np.stack([(u - K[0, 2]) / K[0, 0], (w - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
        rays = rays_cam @ R  # world directions with unit z-depth
        z = (d - centre @ n) / (rays @ n)
        assert (z > 0).all()
        s, off = gen.uniform(2, 5), gen.uniform(-0.5, 0.5)
        red = (z - off) / s
        images.append(np.stack([red, np.full_like(red, 0.5), np.full_like(red, 0.5)], -1).astype(np.float32))
        truth.append(z)
    # points on the plane, in view of the cameras
    a, b = np.linalg.svd(n[None])[2][1:]
    coords = gen.uniform(-0.6, 0.6, (400, 2))
    points = d * n + coords[:, :1] * a + coords[:, 1:] * b
    return cams, images, truth, points, (n, d)


def test_fit_depth_scale_recovers_scale_and_shift_despite_outliers():
    gen = np.random.default_rng(int(torch.randint(1 << 30, ())))
    pred = gen.uniform(0.5, 3.0, 300)
    s, t = gen.uniform(0.5, 4.0), gen.uniform(-1.0, 1.0)
    target = s * pred + t + gen.normal(0, 1e-3, 300)
    bad = gen.choice(300, 60, replace=False)
    target[bad] = gen.uniform(0.1, 20.0, 60)  # 20 % wild
    fs, ft, err = fit_depth_scale(pred, target)
    assert fs == pytest.approx(s, rel=1e-2) and ft == pytest.approx(t, abs=1e-2 * max(1, abs(t)) + 1e-2)
    assert err < 0.01


@pytest.mark.parametrize("model", [RedIsDepth, RedIsPointmap])
@pytest.mark.parametrize("suffix", [".pt2", ".pt"])
def test_a_prior_places_the_initial_gaussians_on_the_true_surface(tmp_path, model, suffix):
    cams, images, truth, points, (n, d) = plane_scene(seed=int(torch.randint(1 << 30, ())))
    path = save(model(), tmp_path / f"model{suffix}")
    prior = load_prior(path)
    assert prior.kind == ("depth" if model is RedIsDepth else "pointmap")
    depths, confs, report = prior_depths(prior, images, cams, points)
    assert report["dropped"] == []
    for depth, z in zip(depths, truth):
        np.testing.assert_allclose(depth, z, rtol=1e-3)
    g, conf, report = prior_init(path, images, cams, points)
    X = g.means.double().numpy()
    assert len(X) > 100 and np.abs(X @ n - d).max() < 1e-3


def test_a_view_whose_depth_does_not_fit_the_points_adds_nothing(tmp_path):
    cams, images, truth, points, (n, d) = plane_scene(seed=int(torch.randint(1 << 30, ())))
    images[2][..., 0] = np.random.default_rng().uniform(0.1, 1.0, images[2].shape[:2])  # noise, not depth
    depths, _, report = prior_depths(load_prior(save(RedIsDepth(), tmp_path / "m.pt")), images, cams, points)
    assert report["dropped"] == [cams.names[2]]
    fit = report["fits"][2]
    assert np.isnan(depths[2]).all() and (
        fit["error"] > MAX_FIT_ERROR or fit["error"] > 0.5 * fit["constant_error"]
    )
    g, _, _ = prior_init(tmp_path / "m.pt", images, cams, points)
    assert np.abs(g.means.double().numpy() @ n - d).max() < 1e-3  # the noise placed no Gaussian


def test_a_random_model_is_refused_with_a_clear_error(tmp_path):
    cams, images, _, points, (n, _) = plane_scene()
    gen = np.random.default_rng()
    images = [gen.uniform(0, 1, im.shape).astype(np.float32) for im in images]  # a texture, not a depth code
    points = points + gen.uniform(-0.8, 0.8, (len(points), 1)) * n  # a deep scene: no constant depth fits it
    with pytest.raises(InputError, match="fit the triangulated points in none of the views"):
        prior_init(save(RandomDepth(), tmp_path / "random.pt"), images, cams, points)


def test_files_that_are_not_a_usable_model_are_refused(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_prior(tmp_path / "missing.pt")
    torch.save(RandomDepth().state_dict(), tmp_path / "weights.pth")
    with pytest.raises(InputError, match="not an exported model"):
        load_prior(tmp_path / "weights.pth")
    (tmp_path / "broken.pt2").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError, match="not an exported model"):
        load_prior(tmp_path / "broken.pt2")

    class ThreeInputs(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return a

    with pytest.raises(InputError, match="forward takes 3 inputs"):
        load_prior(save(ThreeInputs(), tmp_path / "three.pt"))

    class WrongShape(torch.nn.Module):
        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return image[:, :, :2]

    cams, images, _, points, _ = plane_scene()
    with pytest.raises(InputError, match="does not fit its interface"):
        prior_depths(load_prior(save(WrongShape(), tmp_path / "wrong.pt")), images, cams, points)


SCENE = "scenes/garden"
VIEWS = "frame_000.jpg,frame_002.jpg,frame_004.jpg"


def fit_cli(tmp_path, init: str):
    cmd = [sys.executable, "-m", "splat.cli", "fit", f"{SCENE}/images", "--out", str(tmp_path / "run")]
    cmd += ["--max-side", "96", "--poses", f"given:{SCENE}/sparse/0", "--views", VIEWS, "--steps", "4"]
    return subprocess.run(cmd + ["--init", init], capture_output=True, text=True, timeout=600)


def test_splat_fit_with_a_random_prior_says_the_model_does_not_suit_the_photos(tmp_path):
    """End to end: the model is loaded, run on each view, fitted to the pose model's points, refused."""
    out = fit_cli(tmp_path, f"prior:{save(RandomDepth(), tmp_path / 'random.pt')}")
    assert out.returncode == 2, out.stderr[-2000:]  # splat's exit status for bad input
    assert "does not suit these photos" in out.stderr and "Traceback" not in out.stderr


def test_splat_fit_refuses_a_foreign_prior_file_before_any_work(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "ckpt.pth")
    out = fit_cli(tmp_path, f"prior:{tmp_path / 'ckpt.pth'}")
    assert out.returncode != 0 and "not an exported model" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "run" / "config.json").exists()

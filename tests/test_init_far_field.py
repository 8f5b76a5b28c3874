"""Far-field Gaussians (`--far-field N`): the sky and distant background around the scene."""

import numpy as np
import torch

from splat.geometry.se3 import look_at_w2c
from splat.init.far_field import far_field, fibonacci_sphere
from splat.render import render
from splat.train.synthetic import arc_cameras, fastest_cpu_backend
from splat.types import Cameras

BACKEND = fastest_cpu_backend()


def test_fibonacci_directions_are_unit_and_cover_the_sphere_evenly():
    d = fibonacci_sphere(2000)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1, atol=1e-12)
    probes = fibonacci_sphere(50) @ np.diag([1.0, -1.0, 1.0])  # other directions
    nearest = np.degrees(np.arccos(np.clip((probes @ d.T).max(1), -1, 1)))
    assert nearest.max() < 4.0  # spacing sqrt(4 pi / 2000) ~ 4.5 degrees


def test_the_far_shell_fills_a_new_view_beyond_the_training_views_with_the_sky_colour():
    gen = torch.Generator().manual_seed(int(torch.randint(1 << 30, ())))
    cams = arc_cameras(4, 48, 36)
    sky = torch.rand(3, generator=gen).numpy() * 0.8 + 0.1
    images = [np.broadcast_to(sky, (36, 48, 3)).astype(np.float32) for _ in range(4)]
    scene = torch.randn(200, 3, generator=gen).numpy() * 0.5
    shell = far_field(images, cams, scene, n=3000)
    centroid = cams.centers.double().numpy().mean(0)
    radius = np.linalg.norm(shell.means.double().numpy() - centroid, axis=1)
    assert len(shell) == 3000 and np.ptp(radius) < 1e-3 * radius.mean() and radius.mean() > 5 * 3.0
    # a camera turned 40 degrees past the end of the arc sees directions no training view saw
    eye = torch.tensor([[3 * np.sin(1.9), 0.3, -3 * np.cos(1.9)]], dtype=torch.float32)
    w2c = look_at_w2c(eye, torch.zeros(1, 3), torch.tensor([[0.0, -1.0, 0.0]]))
    new = Cameras(cams.K[:1].clone(), w2c, [48], [36])
    out = render(shell, new, backend=BACKEND)
    assert float(out.alpha.min()) > 0.97  # no hole: the background colour shows nowhere
    seen = out.image.reshape(-1, 3).mean(0).numpy()
    np.testing.assert_allclose(seen, sky * out.alpha.mean().item(), atol=0.03)


def test_directions_take_the_colour_of_the_views_that_see_them():
    cams = arc_cameras(2, 48, 36, arc=2.5)  # two views ~140 degrees apart: disjoint skies
    red, blue = np.zeros((36, 48, 3), np.float32), np.zeros((36, 48, 3), np.float32)
    red[..., 0], blue[..., 2] = 1, 1
    shell = far_field([red, blue], cams, np.zeros((0, 3)), n=2000)
    for v, channel in ((0, 0), (1, 2)):
        out = render(shell, cams[v], backend=BACKEND)
        mean = out.image.reshape(-1, 3).mean(0).numpy()
        assert mean[channel] > 0.8 and mean.sum() - mean[channel] < 0.1, (v, mean)

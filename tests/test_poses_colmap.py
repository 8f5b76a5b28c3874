"""The pycolmap path: the view graph's pairs are matched (not every pair once a set is large), and it says
how far it is."""

from pathlib import Path

import numpy as np
import torch

from splat.geometry.align import ate
from splat.io.datasets import load_scene
from splat.match.graph import select_pairs
from splat.poses.colmap_sfm import colmap_poses
from splat.progress import showing

SCENES = Path(__file__).resolve().parents[1] / "scenes"


def test_a_large_set_matches_sequence_neighbours_at_doubling_strides_and_look_alikes():
    V = int(np.random.randint(100, 300))
    pairs = set(select_pairs(V, exhaustive_max=60, window=10, knn=0, quadratic=True))
    assert all((i, i + s) in pairs for i in range(V - 10) for s in range(1, 11))
    strides = [s for s in (16, 32, 64, 128, 256) if s < V]
    assert all((i, i + s) in pairs for s in strides for i in range(V - s))
    assert (0, 11) not in pairs and len(pairs) < 20 * V  # linear in the views, not quadratic
    assert len(select_pairs(V, exhaustive_max=V)) == V * (V - 1) // 2


def test_pycolmap_on_a_reduced_view_graph_registers_every_view():
    """garden's 24 views in no particular order, matched as a large set would be (not every pair): all
    registered, ATE under 1 %, and the matching bar counts the pairs."""
    scene = load_scene(SCENES / "garden", max_side=256)
    views = np.random.permutation(24).tolist()  # no order: the global descriptor must find the neighbours
    images = [scene.images.images[k] for k in views]
    lines = []
    with showing(False, log=lines.append):
        res = colmap_poses(images, [scene.images.names[k] for k in views], exhaustive_max=6)
    V = len(views)
    assert res.registered.all(), res.registered
    assert res.diagnostics["pairs_matched"] < V * (V - 1) // 2  # the graph, not every pair
    centres = -np.einsum("vji,vj->vi", res.w2c[:, :3, :3], res.w2c[:, :3, 3])

    err = ate(torch.from_numpy(centres), scene.cameras[views].centers.double())["rel"]
    assert err < 0.01, err
    matched = [line for line in lines if line.startswith("matching: ")]
    n = res.diagnostics["pairs_matched"]
    assert matched and matched[0].startswith(f"matching: {n}/{n} in ")

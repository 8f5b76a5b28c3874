"""Rotation averaging: recovers random rotations from noisy, partly corrupted relative rotations."""

import numpy as np
import roma
import torch

from splat.poses.rotations import average_rotations, relative_rotations, rotation_angle_deg, select_hypotheses


def _aligned_errors(R_est, R_true):
    """Angles (deg) after removing the global rotation (both gauges put view 0 at the identity)."""
    R_true = R_true @ R_true[0].T
    return rotation_angle_deg(R_est, R_true)


def _noisy(R_rel, deg):
    rv = torch.randn(len(R_rel), 3, dtype=torch.float64)
    rv = (
        rv
        / rv.norm(dim=-1, keepdim=True)
        * torch.deg2rad(torch.randn(len(R_rel), 1, dtype=torch.float64).abs() * deg)
    )
    return roma.rotvec_to_rotmat(rv) @ R_rel


def _identifiable_outliers(V, edges, bad):
    """Keep only corruptions that leave every view a clear majority of good edges (good >= 2 bad + 2);
    a view seen mostly through wrong edges cannot be recovered by any averaging method.
    """
    bad = bad.clone()
    for v in range(V):
        touches = (edges == v).any(dim=1)
        if int((touches & ~bad).sum()) < 2 * int((touches & bad).sum()) + 2:
            bad[touches] = False
    return bad


def test_average_rotations_noise_and_outliers():
    V = int(np.random.randint(8, 16))
    R = roma.random_rotmat(V, dtype=torch.float64)
    edges = torch.tensor(
        [(i, j) for i in range(V) for j in range(i + 1, V) if np.random.rand() < 0.6 or j == i + 1]
    )
    R_rel = _noisy(relative_rotations(R, edges), 1.0)
    bad = _identifiable_outliers(V, edges, torch.rand(len(edges)) < 0.15)
    R_rel[bad] = roma.random_rotmat(int(bad.sum()), dtype=torch.float64)
    R_est, resid = average_rotations(V, edges, R_rel)
    err = _aligned_errors(R_est, R)
    assert float(err.max()) < 3.0, err  # 1 deg noise per edge; few edges per view
    assert torch.allclose(R_est[0], torch.eye(3, dtype=torch.float64))
    if bad.any():  # corrupted edges are flagged by large residuals
        assert float(resid[bad].min()) > 5.0


def test_select_hypotheses_picks_consistent_ones():
    V = 5
    R = roma.random_rotmat(V, dtype=torch.float64)
    hyps = {}
    for i in range(V):
        for j in range(i + 1, V):
            true = relative_rotations(R, torch.tensor([[i, j]]))[0]
            wrong = roma.random_rotmat(dtype=torch.float64)
            # the wrong hypothesis often scores higher than the right one, as on ambiguous pairs
            hyps[(i, j)] = [(wrong, 120.0), (_noisy(true[None], 0.5)[0], 100.0)]
    R_est, picked = select_hypotheses(V, hyps)
    assert float(_aligned_errors(R_est, R).max()) < 1.5
    assert all(k == 1 for k in picked.values()) and len(picked) == len(hyps)

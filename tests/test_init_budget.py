"""Pruning the initial set to a budget."""

import pytest
import torch

from splat.init.budget import budget_indices


@pytest.mark.parametrize("rule", ["random", "confidence", "voxel"])
def test_budget_is_exact_and_unique(rule):
    means, conf = torch.randn(5000, 3), torch.rand(5000)
    keep = budget_indices(means, 1234, rule, conf, seed=3)
    assert keep.numel() == 1234 and keep.unique().numel() == 1234
    assert torch.equal(keep, torch.sort(keep).values)
    assert torch.equal(budget_indices(means, 10_000, rule, conf), torch.arange(5000))


def test_confidence_rule_keeps_the_most_confident():
    conf = torch.rand(1000)
    keep = budget_indices(torch.randn(1000, 3), 100, "confidence", conf)
    assert conf[keep].min() >= torch.topk(conf, 100).values.min()


def test_voxel_rule_spreads_points_evenly():
    # 90% of the points in a tiny cluster, 10% spread out: random keeps mostly the cluster,
    # the voxel rule keeps the spread-out points.
    cluster = torch.randn(9000, 3) * 0.01
    spread = torch.rand(1000, 3) * 10
    means = torch.cat([cluster, spread])
    keep_voxel = budget_indices(means, 500, "voxel")
    keep_random = budget_indices(means, 500, "random", seed=1)
    assert (keep_voxel >= 9000).float().mean() > 0.8
    assert (keep_random >= 9000).float().mean() < 0.2


def test_random_rule_depends_on_seed_only():
    means = torch.randn(300, 3)
    assert torch.equal(budget_indices(means, 50, seed=7), budget_indices(means, 50, seed=7))
    assert not torch.equal(budget_indices(means, 50, seed=7), budget_indices(means, 50, seed=8))


def test_unknown_rule_is_rejected():
    with pytest.raises(ValueError, match="unknown budget rule"):
        budget_indices(torch.randn(10, 3), 5, "best")

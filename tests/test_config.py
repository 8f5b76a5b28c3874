"""One source for every default: the config dataclasses, the CLI flags and the library agree."""

import dataclasses

import pytest
import torch

from splat.cli import build_parser
from splat.config import BACKENDS, REFINE_STEPS, FitConfig
from splat.eval.align import AlignSettings
from splat.render import render
from splat.train import TrainConfig
from splat.train.adam import GaussianAdam
from splat.train.synthetic import arc_cameras, random_gaussians


def test_fit_trains_with_the_train_config_defaults_plus_its_overrides():
    plain = dataclasses.asdict(TrainConfig())
    fitted = dataclasses.asdict(FitConfig(seed=7).train_config(torch.device("cpu")))
    assert fitted == {**plain, "device": "cpu", "seed": 7}
    steps = int(torch.randint(1, 5000, ()))
    assert FitConfig(train={"steps": steps}).train_config("cpu").steps == steps


def test_the_cli_shows_the_config_defaults():
    parser = build_parser()
    fit, batch = parser.parse_args(["fit", "photos"]), parser.parse_args(["batch", "scenes"])
    default = FitConfig()
    for args in (fit, batch):
        assert (args.budget, args.max_side, args.poses, args.device) == (
            default.budget,
            default.max_side,
            default.poses,
            default.device,
        )
    assert (fit.init, fit.budget_rule, fit.seed) == (default.init, default.budget_rule, default.seed)
    assert AlignSettings().max_steps == REFINE_STEPS
    eval_help = parser._subparsers._group_actions[0].choices["eval"].format_help()
    assert f"(default {REFINE_STEPS})" in " ".join(eval_help.split())


def test_one_backend_vocabulary():
    assert BACKENDS == ("auto", "torch", "cpu", "cuda")
    for backend in ("auto", "torch"):
        GaussianAdam({"x": torch.zeros(3, 2)}, {"x": 1e-3}, backend=backend)
    with pytest.raises(ValueError, match="auto, cpu or torch"):
        GaussianAdam({"x": torch.zeros(3, 2)}, {"x": 1e-3}, backend="native")
    with pytest.raises(ValueError, match="unknown render backend"):
        render(random_gaussians(4), arc_cameras(1, 16, 12)[0], backend="native")

"""One source for every default: the config dataclasses, the CLI flags and the library agree."""

import dataclasses
import random

import pytest
import torch

from splat.cli import BATCH_FIT, build_parser, fit_config
from splat.config import BACKENDS, QUALITY, REFINE_STEPS, EvalConfig, FitConfig, TrainFlags
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


def test_a_quality_preset_sets_steps_and_budget_unless_the_flags_give_them():
    parser = build_parser()
    default = fit_config(parser.parse_args(["fit", "photos"]))
    assert default.train_config("cpu").steps == TrainConfig().steps == QUALITY["default"]["steps"]
    assert default.budget_limit() == QUALITY["default"]["budget"]
    high = fit_config(parser.parse_args(["fit", "photos", "--quality", "high"]))
    preview = fit_config(parser.parse_args(["fit", "photos", "--quality", "preview"]))
    assert (
        preview.train_config("cpu").steps < default.train_config("cpu").steps < high.train_config("cpu").steps
    )
    assert preview.budget_limit() < default.budget_limit() < high.budget_limit()
    steps, budget = random.randint(1, 9999), random.randint(0, 10**6)
    given = fit_config(
        parser.parse_args(f"fit photos --quality high --steps {steps} --budget {budget}".split())
    )
    assert (given.train_config("cpu").steps, given.budget_limit()) == (steps, budget)
    assert fit_config(parser.parse_args("fit photos --quality high --budget 0".split())).budget_limit() == 0


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


COMMAND_ARGS = {  # the arguments of a command that are not settings: inputs, outputs, the live viewer
    "fit": {"images", "out", "resume", "force", "view", "host", "port"},
    "eval": {"run", "gt"},
}


def _dests(command: str) -> set[str]:
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    return {a.dest for a in sub._actions if a.dest != "help"}


def _names(settings) -> set[str]:
    return {f.name for f in dataclasses.fields(settings)}


def test_every_setting_has_a_flag_and_every_flag_a_setting():
    fit_settings = _names(FitConfig) - {"train"}  # train: the overrides TrainFlags offers
    assert not (fit_settings | _names(TrainFlags)) & COMMAND_ARGS["fit"]
    assert _dests("fit") == fit_settings | _names(TrainFlags) | COMMAND_ARGS["fit"]
    assert _dests("eval") == _names(EvalConfig) | COMMAND_ARGS["eval"]
    assert _names(TrainFlags) <= _names(TrainConfig)
    assert set(BATCH_FIT) <= fit_settings and set(BATCH_FIT) <= _dests("batch")


def test_fit_flags_reach_the_fit_config():
    parser = build_parser()
    assert fit_config(parser.parse_args(["fit", "photos"])) == FitConfig()
    side, budget, seed, steps = (
        random.randint(64, 4096),
        random.randint(0, 10**6),
        random.randint(0, 99),
        random.randint(1, 9999),
    )
    focal = round(random.uniform(10, 2000), 3)
    flags = (
        f"fit photos --max-side {side} --poses sparse --focal {focal} --no-exif --accept-unverified "
        f"--init sparse --budget {budget} --budget-rule voxel --views a.jpg,b.jpg --device cpu --seed {seed} "
        f"--steps {steps} --backend torch --antialias"
    )
    assert fit_config(parser.parse_args(flags.split())) == FitConfig(
        max_side=side,
        poses="sparse",
        focal=focal,
        exif=False,
        accept_unverified=True,
        init="sparse",
        budget=budget,
        budget_rule="voxel",
        views=["a.jpg", "b.jpg"],
        device="cpu",
        seed=seed,
        train={"steps": steps, "backend": "torch", "antialias": True},
    )


def test_one_backend_vocabulary():
    assert BACKENDS == ("auto", "torch", "cpu", "cuda")
    for backend in ("auto", "torch"):
        GaussianAdam({"x": torch.zeros(3, 2)}, {"x": 1e-3}, backend=backend)
    with pytest.raises(ValueError, match="auto, cpu or torch"):
        GaussianAdam({"x": torch.zeros(3, 2)}, {"x": 1e-3}, backend="native")
    with pytest.raises(ValueError, match="unknown render backend"):
        render(random_gaussians(4), arc_cameras(1, 16, 12)[0], backend="native")

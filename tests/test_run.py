"""The run folder module: artifact names, run detection, starting over, JSON writes, loading a run."""

import json
import subprocess
import sys

import numpy as np
import pytest

from splat.errors import InputError
from splat.run import RunFolder, load_run, run_logger, write_json


def test_a_folder_is_a_run_once_its_config_names_the_images(tmp_path):
    run = RunFolder(tmp_path)
    assert not run.is_run()
    run.config.write_text("{not json")
    assert not run.is_run()
    write_json(run.config, {"images_dir": "/photos", "seed": np.int64(3), "side": np.float32(0.5)})
    assert run.is_run() and run.read_config() == {"images_dir": "/photos", "seed": 3, "side": 0.5}
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write leaves no temp file behind


def test_start_over_removes_every_artifact_and_keeps_the_log(tmp_path):
    run = RunFolder(tmp_path)
    for path in (run.poses, run.checkpoints, run.cameras, run.eval_cameras):
        path.mkdir()
        (path / "x.txt").write_text("x")
    for path in (run.init, run.init_report, run.splat, run.metrics, run.eval):
        path.write_text("x")
    run_logger(tmp_path, "fit")("first line\nsecond line")
    run.start_over()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.log"]
    lines = run.log.read_text().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == ["fit: first line", "fit: second line"]


def test_pose_verdict_and_metrics_read_back(tmp_path):
    run = RunFolder(tmp_path)
    assert run.pose_verdict() is None and run.read_metrics() == {}
    run.poses.mkdir()
    run.poses_json.write_text(json.dumps({"verification": {"verdict": "low_confidence"}}))
    assert run.pose_verdict() == "low_confidence"


def test_load_run_refuses_a_folder_without_splat_ply(tmp_path):
    with pytest.raises(InputError, match="no splat.ply"):
        load_run(tmp_path)


def test_the_run_and_config_modules_load_no_torch():
    code = "import sys, splat.run, splat.config, splat.checks; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr

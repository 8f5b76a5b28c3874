"""`splat fit` killed with SIGKILL at a random moment, then `--resume`: the run ends as one that was never
interrupted (scripts/bench_sigkill.py does this 20 times and more)."""

import json
import random
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GARDEN = ROOT / "scenes" / "garden"


def fit(out: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "splat", "fit", str(GARDEN / "images"), "--out", str(out)]
    cmd += ["--views", "frame_000.jpg,frame_008.jpg,frame_016.jpg", "--poses", f"given:{GARDEN}/sparse/0"]
    return cmd + ["--max-side", "96", "--steps", "200", "--budget", "3000", "--backend", "cpu", *extra]


def summary(run: Path) -> tuple[int, float]:
    m = json.loads((run / "metrics.json").read_text())
    return m["gaussians_final"], m["train"]["final_train_psnr"]


def test_sigkill_at_random_moments_then_resume_ends_as_an_uninterrupted_run(tmp_path):
    reference = subprocess.run(fit(tmp_path / "ref"), cwd=ROOT, capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr
    out, resumed, kills = tmp_path / "run", False, 0
    rng = random.Random()
    for _attempt in range(40):  # a machine fast enough to finish before every kill ends the loop too
        if kills >= 2:
            break
        extra = ("--resume",) if resumed else (("--force",) if out.exists() and any(out.iterdir()) else ())
        proc = subprocess.Popen(fit(out, *extra), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            proc.wait(timeout=rng.uniform(0.5, 8.0))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            assert proc.returncode == 0, proc.stderr.read().decode()
            n, psnr = summary(out)  # a run that ended before the kill must be right too
            assert n == summary(tmp_path / "ref")[0] and abs(psnr - summary(tmp_path / "ref")[1]) <= 0.01
        proc.stderr.close()
        resumed = (out / "config.json").exists()
    end = subprocess.run(
        fit(out, "--resume") if resumed else fit(out, "--force"), cwd=ROOT, capture_output=True, text=True
    )
    assert end.returncode == 0, end.stderr
    assert "Traceback" not in end.stderr
    n, psnr = summary(out)
    n_ref, psnr_ref = summary(tmp_path / "ref")
    assert n == n_ref and abs(psnr - psnr_ref) <= 0.01

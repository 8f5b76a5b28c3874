"""Kill `splat fit` with SIGKILL at random moments, resume it each time, and compare the end with a run
that was never interrupted.

A small fit (garden, 3 views, given poses, 96 px, 300 steps, checkpoints every 250 steps as `splat fit`
writes them) is first run through once for the reference. Then a fresh run is started and killed after a
random delay (uniform over the reference's wall time, so kills land in loading, init, training and the
checkpoint and export writes), resumed with `--resume` and killed again, `--kills` times, then resumed to the
end. Every resume must start (exit 0 or be killed), and the end must match the reference: the same number
of Gaussians and the final training PSNR within 0.01 dB (training resumes exactly from a checkpoint).

    python scripts/bench_sigkill.py --kills 20
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from splat.run import RunFolder

ROOT = Path(__file__).resolve().parents[1]
GARDEN = ROOT / "scenes" / "garden"


def fit_command(out: Path, resume: bool) -> list[str]:
    """The fit; a start over a folder that a killed start left behind (no run in it yet) needs --force."""
    cmd = [sys.executable, "-m", "splat", "fit", str(GARDEN / "images"), "--out", str(out)]
    if not resume and out.exists() and any(out.iterdir()):
        cmd.append("--force")
    cmd += ["--views", "frame_000.jpg,frame_008.jpg,frame_016.jpg", "--poses", f"given:{GARDEN}/sparse/0"]
    cmd += ["--max-side", "96", "--steps", "300", "--budget", "3000", "--backend", "cpu", "--seed", "3"]
    return cmd + (["--resume"] if resume else [])


def run(cmd: list[str], kill_after: float | None) -> tuple[int, float, str]:
    """(exit code, -9 when killed; seconds; stderr)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
    return proc.returncode, time.perf_counter() - t0, err


def summary(run_dir: Path) -> tuple[int, float]:
    metrics = RunFolder(run_dir).read_metrics()
    return int(metrics["gaussians_final"]), float(metrics["train"]["final_train_psnr"])


def matches(a: tuple[int, float], b: tuple[int, float]) -> bool:
    return a[0] == b[0] and abs(a[1] - b[1]) <= 0.01


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="splat-sigkill-"))
    try:
        code, wall, err = run(fit_command(work / "reference", False), None)
        if code != 0:
            sys.exit(f"the reference fit failed ({code}): {err.strip()[-300:]}")
        ref = summary(work / "reference")
        print(f"reference: {ref[0]} Gaussians, final train PSNR {ref[1]:.3f} dB, {wall:.1f} s", flush=True)
        out, kills, resumed, ends = work / "killed", 0, False, []
        while kills < args.kills:
            delay = rng.uniform(0.5, wall)
            code, seconds, err = run(fit_command(out, resumed), delay)
            if code == -signal.SIGKILL:
                kills += 1
                how = "resume" if resumed else "start"
                print(f"kill {kills:2d} after {seconds:5.1f} s ({how})", flush=True)
            elif code == 0:  # the run ended before the kill: check it, then start over to kill again
                ends.append(matches(summary(out), ref))
                how = "resumed run" if resumed else "fresh run"
                verdict = "same" if ends[-1] else "DIFFERENT"
                print(f"{how} finished before the kill at {delay:.1f} s: {verdict} as the reference")
                shutil.rmtree(out)
                resumed = False
                continue
            else:
                sys.exit(f"a resume failed (exit {code}) after {kills} kills: {err.strip()[-300:]}")
            resumed = RunFolder(out).config.exists()
        code, seconds, err = run(fit_command(out, resumed), None)
        if code != 0:
            sys.exit(f"the final resume failed ({code}): {err.strip()[-300:]}")
        end = summary(out)
        same = matches(end, ref)
        print(
            f"after {kills} kills: {end[0]} Gaussians, final train PSNR {end[1]:.3f} dB "
            f"({end[1] - ref[1]:+.3f} dB vs the reference): {'SAME' if same else 'DIFFERENT'}; "
            f"runs that ended between kills: {len(ends)}, {sum(ends)} the same as the reference"
        )
        sys.exit(0 if same and all(ends) else 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

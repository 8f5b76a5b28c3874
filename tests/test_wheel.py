"""The wheel works outside the checkout: `splat doctor` finds the CPU kernel in the installed package
(its sources ship as package data and build there on first use), and a tiny fit runs on it.

The wheel is built from a copy of the package (setuptools' build/ folder keeps files of earlier builds,
which would land in the wheel) and installed without its dependencies into a fresh venv that reuses
this environment's packages through a .pth file, so nothing is downloaded. Everything runs from a
temporary folder, and the test checks that the `splat` imported there is the installed one.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from splat.native import build

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / "scenes" / "garden"
VIEWS = "frame_000.jpg,frame_002.jpg,frame_004.jpg"  # as tests/test_pipeline.py: enough overlap at 96 px


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _site_dirs() -> list[str]:
    """This environment's package folders (not the checkout), for the fresh venv's .pth file."""
    found = [p for p in sys.path if p and Path(p).name in ("site-packages", "dist-packages")]
    return [p for p in dict.fromkeys(found) if Path(p).is_dir()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, venv bin folder, work folder, environment) with the wheel installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env |= {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1", "COLUMNS": "300"}
    src = tmp / "src"
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "*.so")
    shutil.copytree(ROOT / "splat", src / "splat", ignore=junk)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", ".", "-w", str(tmp / "dist")], src, env, 300)
    (wheel,) = (tmp / "dist").glob("splat-*.whl")

    venv = tmp / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", "--without-pip", str(venv)], tmp, env, 120)
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = _run([str(python), "-c", purelib], tmp, env, 60).strip()
    (Path(site) / "splat_test_deps.pth").write_text("\n".join(_site_dirs()) + "\n")
    # pip comes from this environment through the .pth file and installs into the running venv;
    # --ignore-installed: the checkout's editable splat is visible there and must not be touched.
    install = [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed"]
    _run([*install, str(wheel)], tmp, env, 300)
    work = tmp / "work"
    work.mkdir()
    return python, venv / "bin", work, env


def test_the_installed_package_has_its_data_files_and_shares_the_kernel_build(installed):
    python, _, work, env = installed
    code = "import splat, splat.native.build as b; print(splat.__file__, b.SOURCE_DIR, b.build_key())"
    module, sources, key = _run([str(python), "-c", code], work, env, 60).split()
    venv = python.parent.parent
    assert Path(module).is_relative_to(venv), f"imported {module}, not the installed package"
    assert (Path(module).parent / "data" / "instantsplat_tnt.json").is_file()  # batch's reference table
    assert Path(sources).is_relative_to(venv)
    assert {p.name for p in Path(sources).iterdir()} >= set(build.SOURCES)
    assert key == build.build_key()  # the key names content: the checkout and the install share one build


def test_doctor_reports_the_native_kernel_and_a_tiny_fit_runs_on_it(installed, tmp_path):
    python, bin_dir, work, env = installed
    out = _run([str(bin_dir / "splat"), "doctor"], work, env, 1200)  # builds here on a cold cache
    line = next(row for row in out.splitlines() if "native cpu kernel" in row)
    assert "ok (sources" in line and str(python.parent.parent) in line, out

    run = tmp_path / "run"
    cmd = [str(bin_dir / "splat"), "fit", str(SCENE / "images"), "--out", str(run), "--max-side", "96"]
    cmd += ["--poses", f"given:{SCENE / 'sparse' / '0'}", "--views", VIEWS, "--budget", "3000"]
    cmd += ["--steps", "12", "--backend", "cpu"]
    _run(cmd, work, env, 600)
    assert (run / "splat.ply").stat().st_size > 0

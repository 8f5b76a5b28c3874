#!/usr/bin/env bash
# One short check on a lent GPU machine (no internet): environment, native build, gsplat (JIT) build,
# the CUDA parity tests and the raster benchmark. Each step has its own time limit (about 5 min in all,
# most of it gsplat's JIT build); a failed step is reported and the script goes on.
# Log: $OUT/device_check.log when $OUT is set. Run: `bash scripts/device_check.sh` (PY=... to pick python).
#
# Offline installs: put wheels in wheels/ (e.g. `pip download gsplat pytest ninja -d wheels` on a
# machine with the registry; keep wheels/ out of git) and they are installed from there; otherwise
# a plain `pip install` is tried once.
set -u
cd "$(dirname "$0")/.."
LOG="${OUT:-/tmp}/device_check.log"
exec > >(tee "$LOG") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" MAX_JOBS="${MAX_JOBS:-$(nproc)}"
PY="${PY:-python3}"
step() { echo; echo "== $1 ($(date +%T))"; }

step "machine"
nvidia-smi || echo "nvidia-smi not found"
command -v nvcc && nvcc --version | tail -1 || echo "nvcc not found (gsplat's JIT build needs it)"
$PY -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__,
         "cuda", torch.version.cuda, "available", torch.cuda.is_available())' || { echo "no torch: stop"; exit 1; }

HAS_CUDA=$($PY -c 'import torch; print(int(torch.cuda.is_available()))')

step "install (pytest, ninja, gsplat)"
PIP="$PY -m pip install -q --disable-pip-version-check --retries 0 --timeout 10"
if [ "$HAS_CUDA" != 1 ]; then
    echo "no CUDA device: nothing installed"  # and gsplat is never touched without CUDA
elif [ -d wheels ]; then
    timeout 90 $PIP --no-index --find-links wheels pytest ninja gsplat || echo "install from wheels/ failed"
fi
for pkg in pytest ninja gsplat; do
    [ "$HAS_CUDA" = 1 ] || break
    $PY -c "import $pkg" 2>/dev/null || timeout 30 $PIP "$pkg" || echo "could not install $pkg (offline?)"
done

step "native CPU kernel build"
timeout 90 $PY -c 'from splat.native import build; build.load(); print("native kernel loaded")' \
    || echo "native kernel build failed"

step "gsplat CUDA build (JIT, Hopper only)"
export SPLAT_SKIP_GSPLAT=1
if [ "$HAS_CUDA" = 1 ] && FAST_COMPILE=1 timeout 210 $PY -c 'import gsplat
from gsplat.cuda._backend import _C
assert _C is not None, "gsplat CUDA extension missing"
print("gsplat", gsplat.__version__, "built")'; then
    unset SPLAT_SKIP_GSPLAT
else
    echo "gsplat unavailable or its build did not finish: the gsplat tests will skip"
fi

step "CUDA parity tests"
timeout 120 $PY -m pytest -q -rs tests/test_render_cuda.py
rc=$?
[ $rc = 0 ] || echo "CUDA tests: rc $rc (1 = failures, 5 = all skipped, 124 = timed out)"

step "raster benchmark"
if [ -f scripts/bench_raster.py ]; then
    timeout 90 $PY scripts/bench_raster.py --backends cuda,cpu,torch || echo "benchmark failed (rc $?)"
else
    echo "scripts/bench_raster.py not present: skipped"
fi
step "done"

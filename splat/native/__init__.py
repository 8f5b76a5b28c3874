"""splat's own C++/OpenMP CPU kernels (the GPU path is gsplat).

csrc/     the C++ sources, shipped in the package: compositing (rasterize_cpu.cpp, simd8.h),
          projection + SH (project_cpu.cpp), the fused visible-only Adam step (adam_cpu.cpp, used by
          splat/train/adam.py) and SSIM forward and backward (ssim_cpu.cpp, used by splat/eval/metrics.py).
build.py  builds them as one extension on first use, caches it, and is the one place that says
          whether the kernels are available (`available()`, `load()`, `status()`).
ops.py    the autograd wrappers: composite_cpu, project_cpu.

Semantics: docs/RASTER_CONTRACT.md.
"""

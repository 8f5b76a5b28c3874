"""`splat export`: write a finished run in another format.

| format          | default output             | what                                                    |
|-----------------|----------------------------|---------------------------------------------------------|
| ply             | RUN/export/splat.ply       | standard 3DGS .ply                                       |
| ply-compressed  | RUN/export/splat.compressed.ply | SuperSplat / PlayCanvas compressed .ply             |
| splat           | RUN/export/splat.splat     | antimatter15 .splat (32 bytes per Gaussian, no SH rest)  |
| spz             | RUN/export/splat.spz       | Niantic SPZ v4 (zstd streams; v2-v4 read)                |
| sog             | RUN/export/splat.sog       | PlayCanvas SOG v2 (WebP textures in a zip; SuperSplat)   |
| glb             | RUN/export/splat.glb       | glTF binary with Khronos KHR_gaussian_splatting (float)  |
| quantized       | RUN/export/splat.splatq    | our quantized container (splat.compress.quantize)        |
| colmap          | RUN/export/colmap/         | the optimised cameras as a COLMAP text model             |
| points          | RUN/export/points/         | cameras + the initial cloud (RUN/init.ply) as points3D   |
| mesh            | RUN/export/mesh.ply        | TSDF fusion of rendered depths (Open3D)                  |

Every file is written atomically. Importing this module loads no torch (`splat --help` imports it).
The package also holds the run's other outputs: `mesh.py` (TSDF mesh) and `video.py` (`splat render`'s
fly-through videos); the compressed formats are in splat.compress.
"""

from __future__ import annotations

from pathlib import Path

from splat.errors import InputError

DEFAULT_NAMES = {
    "ply": "splat.ply",
    "ply-compressed": "splat.compressed.ply",
    "splat": "splat.splat",
    "spz": "splat.spz",
    "sog": "splat.sog",
    "glb": "splat.glb",
    "quantized": "splat.splatq",
    "colmap": "colmap",
    "points": "points",
    "mesh": "mesh.ply",
}
FORMATS = tuple(DEFAULT_NAMES)


def default_output(run: str | Path, fmt: str) -> Path:
    return Path(run) / "export" / DEFAULT_NAMES[fmt]


def export(run: str | Path, fmt: str, out: str | Path | None = None, **options) -> Path:
    """Export the run folder `run` as `fmt` (one of FORMATS) to `out`; returns the written path.

    Options: mesh takes voxel, max_depth, backend; quantized takes a QuantizeConfig as `config`.
    """
    if fmt not in DEFAULT_NAMES:
        raise InputError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    run = Path(run)
    out = Path(out) if out else default_output(run, fmt)
    if fmt == "points":
        return _export_points(run, out)
    from splat.run import load_run

    gaussians, cameras = load_run(run)
    if fmt in ("ply", "spz"):  # the formats that can say the scene renders anti-aliased
        from splat.io.ply import ply_render_settings

        options.setdefault("antialiased", ply_render_settings(run / "splat.ply").antialias)
    if fmt == "colmap":
        from splat.io.colmap import write_model

        return write_model(out, cameras)
    if fmt == "mesh":
        from splat.config import resolve_device
        from splat.export.mesh import tsdf_mesh, write_mesh

        device = resolve_device("auto")
        mesh = tsdf_mesh(gaussians.to(device), cameras, **options)
        return write_mesh(out, mesh)
    return write_gaussians(out, gaussians, fmt, **options)


def write_gaussians(out: str | Path, gaussians, fmt: str, **options) -> Path:
    """Write Gaussians in a splat file format: ply, ply-compressed, splat, spz, sog, glb or quantized."""
    if fmt == "ply":
        from splat.io.ply import write_ply

        return write_ply(out, gaussians, antialiased=bool(options.get("antialiased")))
    if fmt == "ply-compressed":
        from splat.compress.compressed_ply import write_compressed_ply

        return write_compressed_ply(out, gaussians)
    if fmt == "splat":
        from splat.compress.dotsplat import write_splat

        return write_splat(out, gaussians)
    if fmt == "spz":
        from splat.compress.spz import write_spz

        return write_spz(out, gaussians, antialiased=bool(options.get("antialiased")))
    if fmt == "sog":
        from splat.compress.sog import write_sog

        return write_sog(out, gaussians)
    if fmt == "glb":
        from splat.compress.gltf import write_glb

        return write_glb(out, gaussians)
    if fmt == "quantized":
        from splat.compress.quantize import QuantizeConfig, write_quantized

        return write_quantized(out, gaussians, options.get("config") or QuantizeConfig())
    raise InputError(
        f"{fmt!r} is not a Gaussian file format; use ply, ply-compressed, splat, spz, sog, glb or quantized"
    )


def read_gaussians(path: str | Path):
    """Read Gaussians from any of the formats above, chosen by the file name."""
    name = Path(path).name.lower()
    if name.endswith(".compressed.ply"):
        from splat.compress.compressed_ply import read_compressed_ply as reader
    elif name.endswith(".ply"):
        from splat.io.ply import read_ply as reader
    elif name.endswith(".splat"):
        from splat.compress.dotsplat import read_splat as reader
    elif name.endswith(".spz"):
        from splat.compress.spz import read_spz as reader
    elif name.endswith(".sog") or name.endswith("meta.json"):
        from splat.compress.sog import read_sog as reader
    elif name.endswith(".glb"):
        from splat.compress.gltf import read_glb as reader
    elif name.endswith(".splatq"):
        from splat.compress.quantize import read_quantized as reader
    else:
        raise InputError(
            f"{path}: unknown splat file type; use .ply, .compressed.ply, .splat, .spz, .sog, .glb or .splatq"
        )
    return reader(path)


def _export_points(run: Path, out: Path) -> Path:
    """COLMAP model: the run's cameras and RUN/init.ply's means as coloured points3D."""
    from splat.io.colmap import read_model, write_model
    from splat.io.ply import read_ply
    from splat.render.sh import sh_to_rgb
    from splat.run import RunFolder

    folder = RunFolder(run)
    if not folder.init.exists():
        raise InputError(f"{run}: no init.ply here; is this a `splat fit` run folder?")
    init = read_ply(folder.init)
    cam_dir = folder.cameras if folder.cameras.exists() else folder.poses
    if not cam_dir.exists():
        raise InputError(f"{run}: neither cameras/ nor poses/ found; is this a `splat fit` run folder?")
    cameras = read_model(cam_dir).cameras
    return write_model(out, cameras, init.means, sh_to_rgb(init.sh_dc).clamp(0, 1))

"""Render the committed test scenes with POV-Ray and write their exact COLMAP models.

    python scripts/render_scenes.py [--scene NAME] [--out scenes] [--threads 2]

Each scene is a POV-Ray source in scenes/pov/<name>.pov (no camera in it). This script orbits a
camera around the scene centre, renders every view (PNG from POV-Ray, stored as JPEG quality 95)
and writes the ground-truth cameras as a COLMAP text model:

    <out>/<name>/images/frame_000.jpg ...      Tanks & Temples layout
    <out>/<name>/sparse/0/{cameras,images,points3D}.txt
    <out>/demo/frame_000.jpg ...                 the demo: a bare folder of photos
    <out>/demo_gt/sparse/0/...                  its ground truth, kept beside it

World frame. POV-Ray is left-handed (x right, y up, z away from a default camera). The splat world
is the POV world with z negated: p_world = (x, y, -z)_pov. It is right-handed with y up and the
ground at y = 0; lengths are unchanged.

Camera. Every view is `camera { perspective location L right x*W/H up y angle A sky y look_at C }`.
POV-Ray builds direction d = C - L, right r = sky x d and up u = d x r (plain cross products on POV
coordinates) and keeps |right| = W/H, |up| = 1, |d| = (|right|/2) / tan(A/2) with A the horizontal
field of view. A pixel (i, j) (column, row) is traced through the image-plane point at
((i + 0.5)/W - 0.5) r + (0.5 - (j + 0.5)/H) u, so in COLMAP's convention (pixel centres at +0.5):
    fx = fy = (W/2) / tan(A/2),  cx = W/2,  cy = H/2,
and the OpenCV rotation in POV coordinates is rows (r, -u, d) (unit vectors), i.e. in the splat
world R = [r; -u; d] diag(1, 1, -1) and t = -[r; -u; d] L. Both reflections cancel: det R = +1.
tests/test_scenes.py checks this by projecting the emissive marker spheres of every scene.

Markers. Scenes place small emissive spheres with `Marker(<x, y, z>, <r, g, b>)` (scenes/pov/
common.inc); `read_markers()` returns them in the splat world frame.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
POV_DIR = REPO / "scenes" / "pov"
POV_INCLUDE = Path("/usr/share/povray-3.7/include")
POV_TO_WORLD = np.diag([1.0, 1.0, -1.0])  # p_world = POV_TO_WORLD @ p_pov (and back: it is its own inverse)


@dataclass(frozen=True)
class Orbit:
    """A camera path around a scene, in POV coordinates.

    Views sit on a circle of `radius` around `center` (the look-at point), at azimuths spread evenly
    over `span_deg` starting at `start_deg` (0 = in front, on the -z side; positive turns towards +x),
    at heights center.y + `rise` + `rise_swing` * sin(2 pi s) with s in [0, 1] along the orbit.
    """

    center: tuple[float, float, float]
    radius: float
    rise: float
    rise_swing: float
    start_deg: float
    span_deg: float
    fov_deg: float = 55.0
    views: int = 24
    width: int = 512
    height: int = 384
    radius_swing: float = 0.0


@dataclass(frozen=True)
class Scene:
    name: str
    orbit: Orbit
    demo: bool = False  # bare image folder + <name>_gt/sparse/0 instead of the Tanks & Temples layout


SCENES = {
    s.name: s
    for s in [
        Scene("garden", Orbit((0.0, 0.6, 0.3), 6.0, 2.0, 0.35, -90.0, 180.0, radius_swing=0.3)),
        Scene("still_life", Orbit((0.0, 1.05, 0.0), 3.3, 1.0, 0.2, -60.0, 120.0, radius_swing=0.15)),
        Scene("statues", Orbit((0.0, 0.9, 0.2), 6.2, 1.7, 0.45, -80.0, 160.0, radius_swing=0.35)),
        Scene("tablecloth", Orbit((0.0, 0.95, 0.0), 2.8, 1.0, 0.2, -80.0, 160.0, radius_swing=0.15)),
        Scene(
            "demo",
            Orbit((0.0, 0.35, 0.0), 2.6, 1.1, 0.2, -75.0, 150.0, views=12, width=640, height=480),
            demo=True,
        ),
    ]
}


def image_names(scene: Scene) -> list[str]:
    """Image file names of a scene's views, sorted along the orbit."""
    return [f"frame_{i:03d}.jpg" for i in range(scene.orbit.views)]


def orbit_locations(orbit: Orbit) -> np.ndarray:
    """Camera locations in POV coordinates, (V, 3), in orbit order."""
    s = np.linspace(0.0, 1.0, orbit.views)
    az = np.radians(orbit.start_deg + orbit.span_deg * s)
    radius = orbit.radius + orbit.radius_swing * np.cos(3 * np.pi * s)
    cx, cy, cz = orbit.center
    y = cy + orbit.rise + orbit.rise_swing * np.sin(2 * np.pi * s)
    return np.stack([cx + radius * np.sin(az), y, cz - radius * np.cos(az)], -1)


def pov_w2c(location, look_at, sky=(0.0, 1.0, 0.0)) -> np.ndarray:
    """OpenCV world-to-camera (4, 4) in the splat world for a POV look_at camera given in POV coordinates."""
    location, look_at, sky = (np.asarray(v, dtype=np.float64) for v in (location, look_at, sky))
    d = look_at - location
    d /= np.linalg.norm(d)
    r = np.cross(sky, d)
    r /= np.linalg.norm(r)
    u = np.cross(d, r)
    R_pov = np.stack([r, -u, d])
    w2c = np.eye(4)
    w2c[:3, :3] = R_pov @ POV_TO_WORLD
    w2c[:3, 3] = -R_pov @ location
    return w2c


def intrinsics(width: int, height: int, fov_deg: float) -> np.ndarray:
    """Pinhole K (3, 3) of a POV camera with `right x*W/H`, `up y` and horizontal `angle fov_deg`."""
    f = (width / 2) / math.tan(math.radians(fov_deg) / 2)
    return np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def orbit_cameras(scene: Scene):
    """The exact cameras of a scene as splat.types.Cameras (float64)."""
    import torch

    from splat.types import Cameras

    o = scene.orbit
    w2c = np.stack([pov_w2c(loc, o.center) for loc in orbit_locations(o)])
    K = np.broadcast_to(intrinsics(o.width, o.height, o.fov_deg), (o.views, 3, 3)).copy()
    V = o.views
    return Cameras(
        K=torch.from_numpy(K),
        w2c=torch.from_numpy(w2c),
        width=torch.full((V,), o.width, dtype=torch.int64),
        height=torch.full((V,), o.height, dtype=torch.int64),
        names=image_names(scene),
    ).validate()


_MARKER = re.compile(r"\bMarker\(\s*<([^>]*)>\s*,\s*<([^>]*)>\s*\)")


def read_markers(pov_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Marker spheres of a scene source: centres in the splat world (M, 3) and their RGB colours (M, 3)."""
    text = re.sub(r"//[^\n]*", "", Path(pov_path).read_text())
    found = [
        ([float(v) for v in p.split(",")], [float(v) for v in c.split(",")]) for p, c in _MARKER.findall(text)
    ]
    if not found:
        return np.zeros((0, 3)), np.zeros((0, 3))
    pov, rgb = (np.array(a, dtype=np.float64) for a in zip(*found))
    return pov @ POV_TO_WORLD.T, rgb


def scene_dirs(scene: Scene, out: Path) -> tuple[Path, Path]:
    """(image folder, COLMAP model folder) of a scene under the output root."""
    if scene.demo:
        return out / scene.name, out / f"{scene.name}_gt" / "sparse" / "0"
    return out / scene.name / "images", out / scene.name / "sparse" / "0"


def pov_camera(location, look_at, orbit: Orbit) -> str:
    """The camera block of one view (right before angle: angle sets |direction| from |right|)."""
    v = lambda p: "<{:.12f}, {:.12f}, {:.12f}>".format(*p)  # noqa: E731
    return (
        "camera {\n  perspective\n"
        f"  location {v(location)}\n"
        f"  right x*{orbit.width}/{orbit.height}\n  up y\n"
        f"  angle {orbit.fov_deg:.12f}\n  sky y\n"
        f"  look_at {v(look_at)}\n}}\n"
    )


def render_view(source: Path, camera: str, orbit: Orbit, png: Path, threads: int) -> None:
    """Write a wrapper .pov and .ini next to `png` and run POV-Ray on them."""
    wrapper = png.with_suffix(".pov")
    wrapper.write_text(f'#version 3.7;\n#include "{source}"\n{camera}')
    ini = png.with_suffix(".ini")
    ini.write_text(
        "\n".join(
            [
                f"Input_File_Name={wrapper}",
                f"Output_File_Name={png}",
                "Output_File_Type=N",
                f"Width={orbit.width}",
                f"Height={orbit.height}",
                "Antialias=on",
                "Antialias_Threshold=0.3",
                "Sampling_Method=1",
                "Antialias_Depth=3",
                "Jitter=off",
                f"Library_Path={POV_DIR}",
                f"Library_Path={POV_INCLUDE}",
                "Display=off",
                "Verbose=off",
                f"Work_Threads={threads}",
                "",
            ]
        )
    )
    proc = subprocess.run(["povray", str(ini)], capture_output=True, text=True)
    if proc.returncode != 0 or not png.exists():
        raise RuntimeError(f"povray failed on {wrapper}:\n{proc.stderr[-800:]}")


def save_jpeg(png: Path, jpg: Path) -> None:
    """PNG -> JPEG quality 95, written atomically."""
    from PIL import Image

    from splat.io.atomic import atomic_path

    with atomic_path(jpg) as tmp:
        Image.open(png).convert("RGB").save(tmp, format="JPEG", quality=95)


def write_cameras(scene: Scene, model_dir: Path) -> None:
    from splat.io.colmap import write_model

    model_dir.mkdir(parents=True, exist_ok=True)
    write_model(model_dir, orbit_cameras(scene))


def render_scene(scene: Scene, out: Path, threads: int = 2) -> None:
    """Render every view of a scene into `out` and write its COLMAP model."""
    source = POV_DIR / f"{scene.name}.pov"
    image_dir, model_dir = scene_dirs(scene, out)
    if image_dir.exists():
        for old in image_dir.glob("frame_*.jpg"):
            old.unlink()
    image_dir.mkdir(parents=True, exist_ok=True)
    o = scene.orbit
    with tempfile.TemporaryDirectory(prefix=f"render_{scene.name}_") as tmp:
        for i, (loc, name) in enumerate(zip(orbit_locations(o), image_names(scene))):
            t0 = time.perf_counter()
            png = Path(tmp) / name.replace(".jpg", ".png")
            render_view(source, pov_camera(loc, o.center, o), o, png, threads)
            save_jpeg(png, image_dir / name)
            took = time.perf_counter() - t0
            print(f"[{scene.name}] {i + 1}/{o.views} {name} {took:.1f}s", flush=True)
    write_cameras(scene, model_dir)
    print(f"[{scene.name}] model -> {model_dir}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scene", choices=sorted(SCENES), action="append", help="scene(s) to render (default: all)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "scenes", help="output root (default: scenes/)")
    parser.add_argument("--threads", type=int, default=2, help="POV-Ray work threads")
    parser.add_argument("--model-only", action="store_true", help="only write the COLMAP models")
    args = parser.parse_args(argv)
    if shutil.which("povray") is None and not args.model_only:
        print("povray not found: install it (apt-get install povray)", file=sys.stderr)
        return 1
    for name in args.scene or list(SCENES):
        scene = SCENES[name]
        if args.model_only:
            write_cameras(scene, scene_dirs(scene, args.out)[1])
        else:
            render_scene(scene, args.out, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())

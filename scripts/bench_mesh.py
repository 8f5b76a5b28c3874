"""How well the TSDF mesh export (`splat export RUN --format mesh`) follows the splats; prints a table.

    python scripts/bench_mesh.py RUN [RUN ...] [--voxel V]

For each run: the mesh fused from renders at the training cameras, then, per camera, every mesh
vertex that projects inside the image onto a pixel with rendered alpha > 0.5 and lies in front of
the rendered surface's far side is compared with the rendered expected depth there:
|vertex depth - rendered depth|, reported as the median and 90th percentile in voxels and in % of
the scene extent (distance from the cameras to the scene centre). Watertightness: the share of
edges with exactly two triangles (closed surface = 100 %), boundary edges, connected components.
Vertices hidden behind a nearer surface in a view are counted in the views that see them, not
that one: a vertex whose depth exceeds the rendered depth by more than 10 voxels is occluded there.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from splat.export.mesh import default_voxel, fuse_tsdf, rendered_depths
from splat.export.video import scene_center
from splat.run import load_run


def vertex_depth_errors(vertices: np.ndarray, frames: list, cameras, occluded: float) -> np.ndarray:
    """|depth of each visible vertex - rendered depth at its pixel|, over all views (1D array)."""
    K, w2c = cameras.K.double().numpy(), cameras.w2c.double().numpy()
    errors = []
    for v, (_, depth) in enumerate(frames):
        cam = vertices @ w2c[v][:3, :3].T + w2c[v][:3, 3]
        z = cam[:, 2]
        front = z > 1e-6
        uv = (cam[front] @ K[v].T)[:, :2] / z[front, None]
        col, row = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
        h, w = depth.shape
        inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        d = depth[row[inside], col[inside]]
        zi = z[front][inside]
        seen = (d > 0) & (zi - d < occluded)
        errors.append(np.abs(zi[seen] - d[seen]))
    return np.concatenate(errors)


def edge_stats(mesh) -> tuple[float, int, int]:
    """(share of edges shared by exactly two triangles, boundary edges, connected components)."""
    tris = np.asarray(mesh.triangles)
    edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    clusters = np.asarray(mesh.cluster_connected_triangles()[0])
    components = int(clusters.max() + 1) if len(clusters) else 0
    return float((counts == 2).mean()), int((counts == 1).sum()), components


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="finished run folders (splat.ply + cameras/)")
    ap.add_argument("--voxel", type=float, help="TSDF voxel (default 1/256 of the median rendered depth)")
    args = ap.parse_args()
    head = f"{'run':<40}{'verts':>9}{'tris':>9}{'voxel':>8}{'med vox':>8}{'p90 vox':>8}"
    head += f"{'med %':>7}{'2-edges':>8}{'bound':>7}{'comps':>6}{'s':>6}"
    print(head + "\n" + "-" * len(head), flush=True)
    for run in args.runs:
        g, cameras = load_run(run)
        g = g.to(dtype=torch.float32)
        t = time.perf_counter()
        frames = rendered_depths(g, cameras)
        voxel = args.voxel or default_voxel(frames)
        mesh = fuse_tsdf(frames, cameras, voxel)  # what `splat export --format mesh` does
        seconds = time.perf_counter() - t
        vertices = np.asarray(mesh.vertices)
        err = vertex_depth_errors(vertices, frames, cameras.to(dtype=torch.float64), 10 * voxel)
        extent = float((cameras.centers.double() - scene_center(cameras)).norm(dim=1).median())
        two, boundary, comps = edge_stats(mesh)
        med, p90 = np.median(err), np.quantile(err, 0.9)
        row = f"{str(run)[-40:]:<40}{len(mesh.vertices):>9,}{len(mesh.triangles):>9,}{voxel:>8.4f}"
        row += f"{med / voxel:>8.2f}{p90 / voxel:>8.2f}{100 * med / extent:>7.2f}{100 * two:>7.1f}%"
        row += f"{boundary:>7,}{comps:>6,}{seconds:>6.1f}"
        print(row, flush=True)


if __name__ == "__main__":
    sys.exit(main())

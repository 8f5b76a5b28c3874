"""Learned priors from a local file: a depth or point-map model's output as the initial Gaussians.

`splat fit --init prior:MODEL.pt2` loads a local model file, a torch.export program (.pt2) or a
TorchScript module (.pt), so no model code is needed and no weights are ever downloaded. It has one
of two interfaces, told apart by how many images `forward` takes:

    depth     forward(image)        image (1,3,H,W) float RGB in [0,1]
              -> depth (1,H,W) or (1,1,H,W), or (depth, confidence)
              depth up to an unknown scale and shift per image (relative depth models: Depth
              Anything in its depth mode, MiDaS-like); larger = farther.
    pointmap  forward(image1, image2)  two (1,3,H,W) images
              -> (points1, confidence1, points2, confidence2), points (1,H,W,3), confidence (1,H,W)
              both point maps in image1's camera frame, up to scale (DUSt3R / MASt3R's pair output)

Each training view gets a z-depth map: the depth model's output, or the point-map model's z of
the view paired with its nearest neighbour (splat.init.edgs.select_neighbors). The map is fitted to
the scene's scale with a robust scale and shift (`fit_depth_scale`) against the depths of the pose
stage's triangulated points seen in that view, then `splat.init.pointmap.pointmap_init` turns the
maps into Gaussians as for the EDGS init. A view whose map does not fit the points (fewer than
MIN_POINTS, or a median relative error above MAX_FIT_ERROR after the fit) gets no Gaussians and
is named in the report, so a model that is wrong about a view cannot place a wrong surface; nor
is a map kept that fits no better than one constant depth would (under half its error, unless
within GOOD_FIT).

Export a model where its code lives: `torch.export.save(torch.export.export(model, (example,),
dynamic_shapes=...), "model.pt2")` (give H and W dynamic dimensions, or export at the size splat
trains at, --max-side), or `torch.jit.trace(model, example).save("model.pt")`; the file is the only
thing splat needs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from splat.errors import InputError
from splat.init.pointmap import PointmapConfig, pointmap_init
from splat.types import Cameras, Gaussians

MIN_POINTS = 8  # triangulated points a view needs to fit its depth map's scale and shift
MAX_FIT_ERROR = 0.1  # median |fitted - triangulated| / triangulated beyond which a view's map is dropped
GOOD_FIT = 0.02  # a fit this close is kept even where one constant depth fits nearly as well (a flat wall)


@dataclass
class DepthPrior:
    """A loaded TorchScript model and its interface ("depth" or "pointmap")."""

    module: torch.nn.Module  # a TorchScript module or an exported program's module()
    kind: str
    path: Path

    def depth(self, image: np.ndarray, other: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(H,W,3) image (and for a point-map model its partner) -> (depth (H,W), confidence (H,W))."""
        x = _tensor(image)
        with torch.no_grad():
            out = self.module(x) if self.kind == "depth" else self.module(x, _tensor(other))
        H, W = image.shape[:2]
        try:
            if self.kind == "depth":
                depth, conf = (out if isinstance(out, (tuple, list)) else (out, None))[:2]
                depth = depth.reshape(H, W)
            else:
                depth, conf = out[0].reshape(H, W, 3)[..., 2], out[1]
            conf = torch.ones(H, W) if conf is None else conf.reshape(H, W)
        except (RuntimeError, IndexError, TypeError, ValueError) as e:
            raise InputError(
                f"{self.path}: the {self.kind} model's output does not fit its interface ({e}); "
                "see `splat.init.prior` for the shapes it must return"
            ) from None
        return depth.double().numpy(), np.clip(conf.double().numpy(), 0.0, 1.0)


def _tensor(image: np.ndarray) -> torch.Tensor:
    x = np.asarray(image, np.float32)
    x = x / 255.0 if np.asarray(image).dtype == np.uint8 else x
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def load_prior(path: str | Path) -> DepthPrior:
    """The model at `path`: a torch.export program (.pt2, `torch.export.save`) or a TorchScript file;
    InputError when it is missing, neither of those, or takes neither one image nor two."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"--init prior:{path}: no such file; give the path of an exported model (.pt2 or .pt)"
        )
    try:
        if path.suffix == ".pt2":
            program = torch.export.load(str(path))
            module, inputs = program.module(), len(program.graph_signature.user_inputs)
        else:
            with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.export, still read
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(path), map_location="cpu").eval()
            inputs = len(module.forward.schema.arguments) - 1  # without self
    except Exception as e:  # noqa: BLE001 - a state dict, a pickle, a truncated file: said in one line
        why = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise InputError(
            f"{path}: not an exported model ({why}); export it with torch.export.save (.pt2) or as "
            "TorchScript (.pt) where the model's code lives"
        ) from None
    kinds = {1: "depth", 2: "pointmap"}
    if inputs not in kinds:
        raise InputError(
            f"{path}: forward takes {inputs} inputs; a depth model takes 1 image, a point-map model 2"
        )
    return DepthPrior(module, kinds[inputs], path)


def fit_depth_scale(pred: np.ndarray, target: np.ndarray, iters: int = 5) -> tuple[float, float, float]:
    """Scale and shift (s, t) with s * pred + t ~ target, robust to outliers (least squares on the
    points within 3 median absolute deviations, repeated); returns (s, t, median relative error)."""
    pred, target = np.asarray(pred, float), np.asarray(target, float)
    keep = np.ones(len(pred), bool)
    s, t = 1.0, 0.0
    for _ in range(iters):
        A = np.stack([pred[keep], np.ones(keep.sum())], 1)
        (s, t), *_ = np.linalg.lstsq(A, target[keep], rcond=None)
        r = np.abs(s * pred + t - target)
        mad = np.median(r[keep]) + 1e-12
        new = r <= 3.0 * 1.4826 * mad
        if new.sum() < 3 or np.array_equal(new, keep):
            break
        keep = new
    err = float(np.median(np.abs(s * pred + t - target) / np.maximum(np.abs(target), 1e-12)))
    return float(s), float(t), err


def _point_depths(points: np.ndarray, camera: Cameras) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions (n,2) (u, v; pixel centres at +0.5) and z-depths (n,) of the world points (P,3)
    that lie in front of a one-view camera and inside its image."""
    w2c = camera.w2c[0].double().numpy()
    K = camera.K[0].double().numpy()
    Xc = points @ w2c[:3, :3].T + w2c[:3, 3]
    z = Xc[:, 2]
    front = z > 1e-9
    uv = ((Xc[front] / z[front, None]) @ K.T)[:, :2]
    W, H = int(camera.width[0]), int(camera.height[0])
    inside = (uv[:, 0] >= 0.5) & (uv[:, 0] <= W - 0.5) & (uv[:, 1] >= 0.5) & (uv[:, 1] <= H - 0.5)
    return uv[inside], z[front][inside]


def _bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """(H,W) map sampled at (n,2) pixel positions (centres at +0.5) inside the image."""
    x, y = uv[:, 0] - 0.5, uv[:, 1] - 0.5
    x0 = np.clip(np.floor(x).astype(int), 0, image.shape[1] - 2)
    y0 = np.clip(np.floor(y).astype(int), 0, image.shape[0] - 2)
    fx, fy = x - x0, y - y0
    top = image[y0, x0] * (1 - fx) + image[y0, x0 + 1] * fx
    bottom = image[y0 + 1, x0] * (1 - fx) + image[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def prior_depths(
    prior: DepthPrior, images: list[np.ndarray], cameras: Cameras, points: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    """Per view a z-depth map at the scene's scale (NaN for a view whose map fits no points) and its
    confidence, from the model's output fitted to the triangulated points (P,3); and a report."""
    from splat.init.edgs import select_neighbors

    partner = None
    if prior.kind == "pointmap":
        if len(cameras) < 2:
            raise InputError("a point-map prior needs 2 or more views")
        near = select_neighbors(cameras, 1, 0.0, 180.0)
        partner = [n[0] if n else (v + 1) % len(cameras) for v, n in enumerate(near)]
    depths, confs, fits, dropped = [], [], [], []
    for v, image in enumerate(images):
        depth, conf = prior.depth(image, images[partner[v]] if partner else None)
        uv, z = _point_depths(np.asarray(points, float), cameras[v])
        pred = _bilinear(depth, uv) if len(z) and min(depth.shape) >= 2 else np.zeros(0)
        ok = np.isfinite(pred)
        s, t, err = fit_depth_scale(pred[ok], z[ok]) if ok.sum() >= MIN_POINTS else (0.0, 0.0, np.inf)
        flat = float(np.median(np.abs(z[ok] - np.median(z[ok])) / z[ok])) if ok.any() else np.inf
        fits.append({"view": v, "points": int(ok.sum()), "scale": round(s, 6), "shift": round(t, 6),
                     "error": round(err, 4) if np.isfinite(err) else None,
                     "constant_error": round(flat, 4) if np.isfinite(flat) else None})  # fmt: skip
        # the map must explain the points' depths: a small error, and well under that of one constant depth
        # (a model that knows nothing fits a shallow scene within MAX_FIT_ERROR by its shift alone)
        if not (s > 0 and err <= MAX_FIT_ERROR and (err <= GOOD_FIT or err <= 0.5 * flat)):
            dropped.append(cameras.names[v])
            depth = np.full_like(depth, np.nan)
        else:
            depth = s * depth + t
            depth[depth <= 0] = np.nan
        depths.append(depth)
        confs.append(conf)
    return depths, confs, {"model": str(prior.path), "kind": prior.kind, "fits": fits, "dropped": dropped}


def prior_init(
    path: str | Path,
    images: list[np.ndarray],
    cameras: Cameras,
    points: np.ndarray,
    cfg: PointmapConfig | None = None,
) -> tuple[Gaussians, torch.Tensor, dict]:
    """Initial Gaussians from the model at `path` (see the module docstring), their confidence and a report
    (its "depth_maps": the fitted (depths, confidences), for the training's depth term); raises InputError
    when no view's depth map fits the triangulated points."""
    depths, confs, report = prior_depths(load_prior(path), images, cameras, points)
    if len(report["dropped"]) == len(images):
        raise InputError(
            f"{path}: the model's depth maps fit the triangulated points in none of the views (median error "
            f"above {MAX_FIT_ERROR:.0%}, no better than one constant depth, or too few points): the model "
            "does not suit these photos; use --init edgs"
        )
    g, conf, pm_report = pointmap_init(images, cameras, depths, confs, cfg)
    return g, conf, {**report, **pm_report, "depth_maps": (depths, confs)}

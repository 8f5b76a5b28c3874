"""The one data model every stage speaks: `Cameras` and `Gaussians`.

Conventions (see docs/ARCHITECTURE.md):
- Cameras are OpenCV pinhole cameras: x right, y down, z forward; `w2c` maps world to camera.
- Gaussians store exactly what the standard 3DGS .ply stores: means, log-scales, unit wxyz
  quaternions, opacity logits, SH DC and SH rest coefficients.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

import torch
from torch import Tensor

from splat.errors import ValidationError
from splat.geometry.camera import camera_centers


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValidationError(msg)


def _index(x: Tensor, idx) -> Tensor:
    if isinstance(idx, int):
        idx = slice(idx, idx + 1) if idx != -1 else slice(-1, None)
    return x[idx]


@dataclass
class Cameras:
    """A set of V pinhole views.

    Attributes:
        K: intrinsics, (V, 3, 3).
        w2c: world-to-camera rigid transforms in OpenCV convention, (V, 4, 4).
        width: image widths in pixels, (V,) int64.
        height: image heights in pixels, (V,) int64.
        names: image file names (relative to the image folder), length V.
    """

    K: Tensor
    w2c: Tensor
    width: Tensor
    height: Tensor
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.width = torch.as_tensor(self.width, dtype=torch.int64, device=self.K.device).reshape(-1)
        self.height = torch.as_tensor(self.height, dtype=torch.int64, device=self.K.device).reshape(-1)
        self.names = list(self.names) if self.names else [f"view_{i:04d}" for i in range(len(self.K))]

    def __len__(self) -> int:
        return self.K.shape[0]

    @property
    def device(self) -> torch.device:
        return self.K.device

    @property
    def dtype(self) -> torch.dtype:
        return self.K.dtype

    @property
    def c2w(self) -> Tensor:
        """Camera-to-world transforms, (V, 4, 4)."""
        return torch.linalg.inv(self.w2c)

    @property
    def centers(self) -> Tensor:
        """Camera centres in world coordinates, (V, 3): C = -R^T t."""
        return camera_centers(self.w2c)

    @property
    def focal(self) -> Tensor:
        """(V, 2) fx, fy."""
        return torch.stack([self.K[:, 0, 0], self.K[:, 1, 1]], -1)

    def to(self, device=None, dtype: torch.dtype | None = None) -> Cameras:
        """Move K and w2c to a device and/or floating dtype (sizes stay int64)."""
        return replace(
            self,
            K=self.K.to(device=device, dtype=dtype),
            w2c=self.w2c.to(device=device, dtype=dtype),
            width=self.width.to(device=device),
            height=self.height.to(device=device),
            names=list(self.names),
        )

    def __getitem__(self, idx) -> Cameras:
        """Subset by int, slice, list of indices or boolean mask; always returns Cameras."""
        if isinstance(idx, Tensor) and idx.dtype == torch.bool:
            idx = idx.nonzero().reshape(-1)
        if isinstance(idx, int):
            idx = idx % len(self)
            sel = [idx]
        elif isinstance(idx, slice):
            sel = list(range(len(self)))[idx]
        else:
            sel = [int(i) for i in (idx.tolist() if isinstance(idx, Tensor) else idx)]
        t = torch.as_tensor(sel, dtype=torch.long, device=self.device)
        return Cameras(self.K[t], self.w2c[t], self.width[t], self.height[t], [self.names[i] for i in sel])

    def index(self, name: str) -> int:
        """Position of the view with this image name."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no camera named {name!r}") from None

    @staticmethod
    def cat(items: Sequence[Cameras]) -> Cameras:
        return Cameras(
            torch.cat([c.K for c in items]),
            torch.cat([c.w2c for c in items]),
            torch.cat([c.width for c in items]),
            torch.cat([c.height for c in items]),
            [n for c in items for n in c.names],
        )

    def validate(self) -> Cameras:
        """Check shapes, finiteness and that each rotation is orthonormal; returns self."""
        V = len(self)
        _check(self.K.shape == (V, 3, 3), f"Cameras.K must be (V,3,3), got {tuple(self.K.shape)}")
        _check(self.w2c.shape == (V, 4, 4), f"Cameras.w2c must be (V,4,4), got {tuple(self.w2c.shape)}")
        _check(self.width.shape == (V,) and self.height.shape == (V,), "Cameras.width/height must be (V,)")
        _check(len(self.names) == V, f"Cameras.names has {len(self.names)} entries for {V} views")
        _check(len(set(self.names)) == V, "Cameras.names must be unique")
        _check(bool(torch.isfinite(self.K).all()), "Cameras.K has non-finite values")
        _check(bool(torch.isfinite(self.w2c).all()), "Cameras.w2c has non-finite values")
        _check(bool((self.width > 0).all() and (self.height > 0).all()), "image sizes must be positive")
        _check(bool((self.K[:, 0, 0] > 0).all() and (self.K[:, 1, 1] > 0).all()), "focal lengths must be > 0")
        R = self.w2c[:, :3, :3].double()
        eye = torch.eye(3, dtype=R.dtype, device=R.device)
        err = (R @ R.transpose(1, 2) - eye).abs().amax() if V else torch.tensor(0.0)
        _check(float(err) < 1e-4, f"Cameras.w2c rotations are not orthonormal (max error {float(err):.2e})")
        bottom = torch.tensor([0, 0, 0, 1], dtype=self.w2c.dtype, device=self.device)
        _check(bool((self.w2c[:, 3] == bottom).all()), "Cameras.w2c last row must be [0,0,0,1]")
        return self


@dataclass
class Gaussians:
    """N anisotropic 3D Gaussians with spherical-harmonics colour.

    Attributes:
        means: centres, (N, 3).
        log_scales: log standard deviations along the local axes, (N, 3).
        quats: unit rotation quaternions, scalar first (w, x, y, z), (N, 4).
        opacity_logits: pre-sigmoid opacities, (N,).
        sh_dc: degree-0 SH coefficients, (N, 3).
        sh_rest: higher-order SH coefficients, (N, K, 3), K in {0, 3, 8, 15}.
    """

    means: Tensor
    log_scales: Tensor
    quats: Tensor
    opacity_logits: Tensor
    sh_dc: Tensor
    sh_rest: Tensor

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    @property
    def sh_degree(self) -> int:
        """Highest SH degree the stored coefficients support."""
        return int(round(math.sqrt(self.sh_rest.shape[1] + 1))) - 1

    @property
    def scales(self) -> Tensor:
        return self.log_scales.exp()

    @property
    def opacities(self) -> Tensor:
        return torch.sigmoid(self.opacity_logits)

    def tensors(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def map(self, fn) -> Gaussians:
        """Apply fn to every tensor, returning new Gaussians."""
        return Gaussians(**{k: fn(v) for k, v in self.tensors().items()})

    def to(self, device=None, dtype: torch.dtype | None = None) -> Gaussians:
        return self.map(lambda t: t.to(device=device, dtype=dtype))

    def detach(self) -> Gaussians:
        return self.map(lambda t: t.detach())

    def clone(self) -> Gaussians:
        return self.map(lambda t: t.clone())

    def __getitem__(self, idx) -> Gaussians:
        """Subset by int, slice, index tensor/list or boolean mask."""
        return self.map(lambda t: _index(t, idx))

    @staticmethod
    def cat(items: Sequence[Gaussians]) -> Gaussians:
        names = [f.name for f in fields(Gaussians)]
        return Gaussians(**{n: torch.cat([getattr(g, n) for g in items]) for n in names})

    @staticmethod
    def empty(sh_degree: int = 0, device=None, dtype: torch.dtype = torch.float32) -> Gaussians:
        K = (sh_degree + 1) ** 2 - 1
        z = lambda *s: torch.zeros(*s, device=device, dtype=dtype)  # noqa: E731
        return Gaussians(z(0, 3), z(0, 3), z(0, 4), z(0), z(0, 3), z(0, K, 3))

    @staticmethod
    def from_points(
        points: Tensor, colors: Tensor, scales: Tensor, opacity: float = 0.5, sh_degree: int = 0
    ) -> Gaussians:
        """Isotropic Gaussians at points (N,3) with RGB colours in [0,1] (N,3) and scales (N,) or (N,3)."""
        from splat.render.sh import rgb_to_sh  # local import: render depends on types

        N = points.shape[0]
        scales = scales.reshape(N, -1).expand(N, 3)
        quats = torch.zeros(N, 4, dtype=points.dtype, device=points.device)
        quats[:, 0] = 1
        K = (sh_degree + 1) ** 2 - 1
        o = torch.full((N,), opacity, dtype=points.dtype, device=points.device)
        return Gaussians(
            means=points.clone(),
            log_scales=scales.clamp_min(1e-8).log(),
            quats=quats,
            opacity_logits=torch.logit(o),
            sh_dc=rgb_to_sh(colors.to(points.dtype)),
            sh_rest=torch.zeros(N, K, 3, dtype=points.dtype, device=points.device),
        )

    def with_sh_degree(self, degree: int) -> Gaussians:
        """Pad with zeros or truncate the SH rest coefficients to the given degree."""
        K = (degree + 1) ** 2 - 1
        rest = self.sh_rest[:, :K]
        if rest.shape[1] < K:
            pad = rest.new_zeros(len(self), K - rest.shape[1], 3)
            rest = torch.cat([rest, pad], 1)
        return replace(self, sh_rest=rest)

    def validate(self) -> Gaussians:
        """Check shapes, finiteness and unit quaternions; returns self."""
        N = len(self)
        for name, shape in [
            ("means", (N, 3)),
            ("log_scales", (N, 3)),
            ("quats", (N, 4)),
            ("opacity_logits", (N,)),
            ("sh_dc", (N, 3)),
        ]:
            t = getattr(self, name)
            _check(tuple(t.shape) == shape, f"Gaussians.{name} must be {shape}, got {tuple(t.shape)}")
        _check(
            self.sh_rest.ndim == 3 and self.sh_rest.shape[0] == N and self.sh_rest.shape[2] == 3,
            f"Gaussians.sh_rest must be (N,K,3), got {tuple(self.sh_rest.shape)}",
        )
        _check(self.sh_rest.shape[1] in (0, 3, 8, 15), f"SH rest K={self.sh_rest.shape[1]} not in 0,3,8,15")
        for name, t in self.tensors().items():
            bad = (~torch.isfinite(t)).reshape(N, -1).any(-1) if N else torch.zeros(0, dtype=torch.bool)
            _check(not bool(bad.any()), f"Gaussians.{name} has non-finite values in {int(bad.sum())} rows")
        if N:
            norm_err = (self.quats.norm(dim=-1) - 1).abs().max()
            _check(
                float(norm_err) < 1e-3,
                f"Gaussians.quats are not unit length (max |q|-1 = {float(norm_err):.2e})",
            )
        return self

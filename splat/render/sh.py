"""Spherical harmonics colour: constants and conversions (evaluation lives here too)."""

from __future__ import annotations

from torch import Tensor

SH_C0 = 0.28209479177387814


def rgb_to_sh(rgb: Tensor) -> Tensor:
    """RGB in [0,1] (...,3) -> SH DC coefficients (...,3)."""
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(sh_dc: Tensor) -> Tensor:
    """SH DC coefficients (...,3) -> view-independent RGB (...,3), not clamped."""
    return sh_dc * SH_C0 + 0.5

"""Rendering: projection, SH colour and tiled alpha compositing behind one render() API."""

from splat.render.composite_torch import composite_torch
from splat.render.project import Projected, project_gaussians
from splat.render.render import RenderOutput, RenderSettings, render
from splat.render.sh import eval_sh

__all__ = [
    "Projected",
    "RenderOutput",
    "RenderSettings",
    "composite_torch",
    "eval_sh",
    "project_gaussians",
    "render",
]

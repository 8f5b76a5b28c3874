"""The browser viewer (viser): `ViewerApp`, `LiveView` for training, `serve` for `splat view`.

Importing this package pulls in viser; the rest of splat never imports it at module level.
"""

from splat.viewer.app import ViewerApp
from splat.viewer.live import LiveView
from splat.viewer.load import ViewInput, load_view_input
from splat.viewer.serve import serve

__all__ = ["LiveView", "ViewInput", "ViewerApp", "load_view_input", "serve"]

"""End to end: the viewer in a real headless Chromium draws the splats our renderer draws.

Also writes docs/viewer.png (the screenshot shown in the docs).
"""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from splat.viewer.browser import browser_missing, centre, covered, headless_page, wait_for_splats
from splat.viewer.render_bridge import render_rgb

MISSING = browser_missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"headless browser unavailable: {MISSING}")

DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "viewer.png"


def _match(shot: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-channel mean colour difference (3,) and luminance correlation of the centre regions."""
    small = np.asarray(Image.fromarray(shot).resize(reference.shape[1::-1], Image.BILINEAR))
    a = centre(small).reshape(-1, 3).astype(np.float64)
    b = centre(reference).reshape(-1, 3).astype(np.float64)
    return np.abs(a.mean(0) - b.mean(0)) / 255, float(np.corrcoef(a.mean(1), b.mean(1))[0, 1])


def _dismiss_notifications(page) -> None:
    """Close viser's "software WebGL" notice so the screenshot shows the scene."""
    for button in page.locator(".mantine-Notification-closeButton").all():
        button.click()


def _thumbnails(scene, cameras) -> list[np.ndarray]:
    """Each camera's view of the scene, rendered small by our renderer (frustum images)."""
    from splat.viewer.cameras import scaled_intrinsics
    from splat.viewer.render_bridge import one_view, render_rgb

    thumbs = []
    for v in range(len(cameras)):
        W, H = int(cameras.width[v]), int(cameras.height[v])
        K, w, h = scaled_intrinsics(cameras.K[v].numpy(), W, H, 96)
        thumbs.append(render_rgb(scene, one_view(cameras.w2c[v].numpy(), K, w, h)))
    return thumbs


def test_browser_draws_the_splats_our_renderer_draws():
    from splat.viewer import ViewerApp
    from splat.viewer.demo import demo_cameras, demo_scene

    seed = int(np.random.default_rng().integers(1 << 16))
    scene, cameras = demo_scene(4000, seed=seed), demo_cameras()
    app = ViewerApp(scene, cameras, _thumbnails(scene, cameras), port=0)
    try:
        app.gui_cameras.value = False  # frustum lines would sit in the compared region
        app.server.gui.main_panel.minimize()
        with headless_page(app.url) as page:
            shot, _ = wait_for_splats(page)
            (client,) = app.server.get_clients().values()
            view = app.client_view(client, max_side=160)
            # The screenshot for the docs: a denser scene, cameras and the panel shown.
            app.update(demo_scene(20000, seed=seed))
            app.gui_cameras.value = True
            app.server.gui.main_panel.expand()
            _dismiss_notifications(page)
            docs_shot, _ = wait_for_splats(page, changed_from=shot)
        reference = render_rgb(scene, view)
    finally:
        app.stop()
    assert covered(shot) > 0.3, "the centre of the browser view is blank: splats not drawn"
    assert covered(reference) > 0.3, "the server render of the client's camera is blank"
    colour_diff, corr = _match(shot, reference)
    assert colour_diff.max() < 0.08, f"mean colours differ by {colour_diff} (browser vs our renderer)"
    assert corr > 0.7, f"browser and server images do not correlate (r={corr:.2f})"
    DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
    Image.fromarray(docs_shot).save(DOCS_SCREENSHOT)

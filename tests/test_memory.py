"""The fit's peak memory is estimated before the heavy stages; a fit the machine cannot hold is refused."""

import json

import pytest

from splat.errors import InputError
from splat.memory import available_bytes, check_memory, estimate_peak
from splat.pipeline import FitConfig, fit

SCENE = "scenes/garden"


def test_the_estimate_grows_with_pixels_views_and_gaussians():
    small = estimate_peak([(512, 384)] * 12, 80_000)
    assert estimate_peak([(512, 384)] * 24, 80_000).total > small.total
    assert estimate_peak([(1024, 768)] * 12, 80_000).images == pytest.approx(4 * small.images)
    assert estimate_peak([(512, 384)] * 12, 160_000).gaussians == pytest.approx(2 * small.gaussians)
    assert estimate_peak([(512, 384)] * 12, 80_000, dense_init=False).init_fields == 0


def test_a_fit_larger_than_the_memory_available_is_refused_with_the_flags_that_shrink_it():
    estimate = estimate_peak([(4000, 3000)] * 300, 80_000)  # 300 12-megapixel photos
    with pytest.raises(InputError, match="--max-side 358") as e:
        check_memory(estimate, 8e9, 300, 512)
    assert "300 views" in str(e.value) and "--budget" in str(e.value)
    assert "of 999.0 GB available" in check_memory(estimate, 999e9, 300, 512)
    assert available_bytes() is None or available_bytes() > 0


def test_fit_states_the_estimate_and_refuses_before_the_heavy_stages(tmp_path, monkeypatch):
    import splat.memory

    views = ["frame_000.jpg", "frame_002.jpg", "frame_004.jpg"]
    cfg = FitConfig(
        max_side=96, poses=f"given:{SCENE}/sparse/0", budget=3000, views=views, train={"steps": 4}
    )
    monkeypatch.setattr(splat.memory, "available_bytes", lambda: 1e8)  # 100 MB
    with pytest.raises(InputError, match="needs about .* GB and 0.1 GB are available"):
        fit(f"{SCENE}/images", tmp_path / "small", cfg, progress=False)
    assert not (tmp_path / "small" / "init.ply").exists()  # refused before the init
    monkeypatch.undo()
    metrics = fit(f"{SCENE}/images", tmp_path / "run", cfg, progress=False)
    log = (tmp_path / "run" / "fit.log").read_text()
    assert " memory: estimated peak " in log and "GB available" in log
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())["memory"]
    assert saved == metrics["memory"] and 0 < saved["estimated_peak_gb"] and 0 < saved["peak_rss_gb"]
    after = saved["peak_after_gb"]  # the peak so far at the end of each stage: never falls
    assert list(after) == list(metrics["seconds"]) and list(after.values()) == sorted(after.values())

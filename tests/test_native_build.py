"""splat.native.build: the one availability check, its remembered failure, the cache key and its lock."""

import pytest

from splat.errors import SplatError
from splat.native import build


def test_missing_sources_are_reported_once_and_remembered(monkeypatch, tmp_path):
    monkeypatch.setattr(build, "SOURCE_DIR", tmp_path)
    monkeypatch.setattr(build, "_state", {})
    with pytest.raises(SplatError, match="kernel sources missing") as first:
        build.load()
    assert not build.available()
    assert build.status().startswith("not available (kernel sources missing")
    with pytest.raises(SplatError) as again:
        build.load()
    assert again.value is first.value  # not retried: every caller gets the same answer


def test_a_torch_lock_left_by_a_killed_build_is_removed(tmp_path):
    build_dir = tmp_path / "key"
    build_dir.mkdir()
    (build_dir / "lock").touch()  # torch.utils.cpp_extension would wait on this forever
    with build._build_lock(build_dir):
        assert not (build_dir / "lock").exists()
    with build._build_lock(build_dir):  # released on exit: taken again at once
        pass


@pytest.mark.skipif(not build.available(), reason="native kernel unavailable")
def test_the_cache_key_stays_the_same_after_loading():
    key = build.build_key()
    build.load()
    assert build.build_key() == key
    assert str(build.cache_root() / key) in build.status()

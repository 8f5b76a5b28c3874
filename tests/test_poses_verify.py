"""Camera solutions are verified before they are accepted: leave-one-out re-registration of every view."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from splat.errors import InputError
from splat.geometry.se3 import look_at_w2c
from splat.poses import estimate_poses
from splat.poses.bundle import Observations, bundle_adjust
from splat.poses.tracks import Tracks
from splat.poses.verify import verify_solution

SCENES = Path(__file__).resolve().parents[1] / "scenes"
W, H, F = 512, 384, 490.0


def _look_at(centre: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(4,4) OpenCV world-to-camera looking from centre at target, y down."""
    eye, target = torch.as_tensor(centre, dtype=torch.float64), torch.as_tensor(target, dtype=torch.float64)
    return look_at_w2c(eye, target, torch.tensor([0.0, -1.0, 0.0])).numpy()


def _scene(rng, views: int = 5, points: int = 400, arc_deg: float = 60.0):
    """Cameras on an arc around random points; returns K (V,3,3), w2c (V,4,4), X (P,3)."""
    angles = np.radians(np.linspace(-arc_deg / 2, arc_deg / 2, views)) + rng.normal(0, 0.02, views)
    centres = np.stack([4 * np.sin(angles), rng.normal(-1, 0.1, views), -4 * np.cos(angles)], 1)
    w2c = np.stack([_look_at(c, np.zeros(3)) for c in centres])
    K = np.tile(np.array([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]]), (views, 1, 1))
    X = rng.uniform(-1, 1, (points, 3)) * [1.5, 1.0, 1.5]
    return K, w2c, X


def _tracks(K, w2c, X, seen: np.ndarray, rng, noise_px: float = 0.3) -> Tracks:
    """Tracks of the points X (P,3) in the views where seen (P,V) is True, with pixel noise."""
    track, view, uv = [], [], []
    for p in range(len(X)):
        for v in np.flatnonzero(seen[p]):
            xc = w2c[v, :3, :3] @ X[p] + w2c[v, :3, 3]
            px = (K[v] @ xc)[:2] / xc[2] + rng.normal(0, noise_px, 2)
            track.append(p)
            view.append(v)
            uv.append(px)
    n = len(track)
    return Tracks(np.array(track), np.array(view), np.arange(n), np.array(uv), len(X))


def _rotate(w2c: np.ndarray, deg: float) -> np.ndarray:
    a = np.radians(deg)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    out = w2c.copy()
    out[:3, :3] = R @ w2c[:3, :3]
    out[:3, 3] = R @ w2c[:3, 3]
    return out


def test_a_right_solution_is_verified():
    rng = np.random.default_rng()
    K, w2c, X = _scene(rng)
    tracks = _tracks(K, w2c, X, np.ones((len(X), len(w2c)), bool), rng)
    check = verify_solution(tracks, K, w2c, np.ones(len(w2c), bool))
    assert check.verdict == "verified", check.reason
    assert all(v.status == "pass" and v.rotation_deg < 0.5 for v in check.views)
    assert check.distortion.status == "ok" and abs(check.distortion.k1) < 0.01


@pytest.mark.parametrize("deg", [6.0, 15.0])
def test_a_view_posed_wrong_is_named(deg):
    """The observations are those of the true cameras; one solved pose is rotated away from them."""
    rng = np.random.default_rng()
    K, w2c, X = _scene(rng)
    tracks = _tracks(K, w2c, X, np.ones((len(X), len(w2c)), bool), rng)
    wrong = w2c.copy()
    wrong[2] = _rotate(w2c[2], deg)
    check = verify_solution(tracks, K, wrong, np.ones(len(w2c), bool), [f"v{k}.jpg" for k in range(5)])
    assert check.verdict == "failed"
    assert check.views[2].status == "fail" and "v2.jpg" in check.reason


def test_views_linked_by_two_view_relations_only_fail():
    """A chain 0-1, 1-2 with no point seen by all three: nothing confirms either relative pose (and the
    scale of the second baseline is not even determined)."""
    rng = np.random.default_rng()
    K, w2c, X = _scene(rng, views=3)
    seen = np.zeros((len(X), 3), bool)
    half = len(X) // 2
    seen[:half, [0, 1]] = True
    seen[half:, [1, 2]] = True
    check = verify_solution(_tracks(K, w2c, X, seen, rng), K, w2c, np.ones(3, bool))
    assert check.verdict == "failed"
    assert {v.status for v in check.views} == {"fail"}


def test_few_three_view_points_are_only_low_confidence():
    rng = np.random.default_rng()
    K, w2c, X = _scene(rng, views=3)
    seen = np.zeros((len(X), 3), bool)
    seen[:, [0, 1]] = True
    seen[:20, 2] = True  # 20 points tie view 2 to the others: a real but thin confirmation
    seen[20:200, 2] = True
    seen[20:200, 0] = False
    check = verify_solution(_tracks(K, w2c, X, seen, rng), K, w2c, np.ones(3, bool))
    assert check.verdict == "low_confidence", check.reason


def test_two_views_cannot_be_verified():
    rng = np.random.default_rng()
    K, w2c, X = _scene(rng, views=2)
    check = verify_solution(_tracks(K, w2c, X, np.ones((len(X), 2), bool), rng), K, w2c, np.ones(2, bool))
    assert check.verdict == "low_confidence"


def _two_groups(rng, ties: int, planar: bool):
    """8 views on a 120 degree arc: views 0-3 share 300 points, views 4-7 another 300, and `ties` points
    (on one plane, or spread through the volume) are seen by views 2, 3 (one group) and 4, 5 (the other)."""
    K, w2c, _ = _scene(rng, views=8, arc_deg=120.0)
    inner = rng.uniform(-1, 1, (600, 3)) * [1.5, 1.0, 1.5]
    tie = rng.uniform(-1, 1, (ties, 3)) * [1.5, 1.0, 1.5]
    if planar:
        tie[:, 1] = 0.8  # the ground
    X = np.concatenate([inner, tie])
    seen = np.zeros((len(X), 8), bool)
    seen[:300, :4] = True
    seen[300:600, 4:] = True
    seen[600:, [2, 3, 4, 5]] = True
    return K, w2c, _tracks(K, w2c, X, seen, rng)


def test_two_groups_tied_by_a_few_points_on_a_plane_are_low_confidence():
    """Each group is re-posed from itself, so leave-one-out passes; the link between them rests on a
    plane, whose matches can fit a wrong relative pose (garden: two groups joined 124 degrees wrong)."""
    rng = np.random.default_rng()
    K, w2c, tracks = _two_groups(rng, ties=30, planar=True)
    check = verify_solution(tracks, K, w2c, np.ones(8, bool))
    assert all(v.status == "pass" for v in check.views)
    assert check.verdict == "low_confidence", check.reason
    assert "by 30 points on one plane" in check.reason
    assert check.reason.startswith(("view 0, view 1, view 2, view 3 ", "view 4, view 5, view 6, view 7 "))
    (link,) = [k for k in check.links if k.status == "planar"]
    assert {tuple(link.side_a), tuple(link.side_b)} == {
        tuple(f"view {k}" for k in range(4)),
        tuple(f"view {k}" for k in range(4, 8)),
    }
    assert check.to_json()["links"][0]["tie_tracks"] == 30


@pytest.mark.parametrize("ties, planar", [(30, False), (150, True)])
def test_two_groups_tied_by_points_in_depth_or_by_many_are_verified(ties, planar):
    rng = np.random.default_rng()
    K, w2c, tracks = _two_groups(rng, ties=ties, planar=planar)
    check = verify_solution(tracks, K, w2c, np.ones(8, bool))
    assert check.verdict == "verified", check.reason
    assert [k.tie_tracks for k in check.links] == [ties]


@pytest.mark.parametrize("shift", [0.0, 1e-4])
def test_views_from_one_spot_fail(shift):
    """Copies of one photo (or a camera turning in place): every view 'agrees', but nothing has depth."""
    rng = np.random.default_rng()
    K, w2c, X = _scene(rng, views=4)
    same = np.repeat(w2c[:1], 4, axis=0)
    same[:, :3, 3] += shift * rng.normal(size=(4, 3))
    tracks = _tracks(K, same, X, np.ones((len(X), 4), bool), rng, noise_px=0.1)
    check = verify_solution(tracks, K, same, np.ones(4, bool))
    assert check.verdict == "failed" and "from one spot" in check.reason, check.reason


def test_an_estimated_focal_the_multi_view_points_disagree_with_is_low_confidence():
    """A solver biased to a focal 3 % long (as two-view matches sliding along epipolar lines make it): the
    poses fit that focal, every view re-poses, but the points seen in 3+ views alone bring it back."""
    rng = np.random.default_rng()
    K, w2c, X = _scene(rng, views=5)
    tracks = _tracks(K, w2c, X, np.ones((len(X), len(w2c)), bool), rng)
    obs = Observations(
        torch.from_numpy(tracks.view), torch.from_numpy(tracks.track), torch.from_numpy(tracks.uv)
    )
    biased = bundle_adjust(
        torch.from_numpy(w2c), 1.03 * F, torch.from_numpy(K[:, :2, 2]), torch.from_numpy(X), obs,
        optimize_focal=False,
    )  # fmt: skip
    K_b = K.copy()
    K_b[:, 0, 0] = K_b[:, 1, 1] = 1.03 * F
    reg = np.ones(len(w2c), bool)
    check = verify_solution(tracks, K_b, biased.w2c.numpy(), reg)
    assert check.verdict == "low_confidence" and "focal is uncertain" in check.reason, check.reason
    assert check.focal.status == "uncertain" and abs(check.focal.focal_other_px / F - 1) < 0.01  # from 3 %
    # the poses fit the biased focal and every view re-poses: only the focal is in doubt
    assert (check.poses_verdict, check.focal_verdict) == ("verified", "uncertain")
    assert check.to_json()["poses_verdict"] == "verified" and check.to_json()["focal_verdict"] == "uncertain"
    given = verify_solution(tracks, K_b, biased.w2c.numpy(), reg, focal_known=True)
    assert (given.verdict, given.poses_verdict, given.focal_verdict) == ("verified", "verified", "given")
    right = verify_solution(tracks, K, w2c, reg)
    assert right.verdict == "verified" and right.focal.status == "ok", right.reason
    assert (right.poses_verdict, right.focal_verdict) == ("verified", "verified")


def test_an_estimated_focal_one_view_drags_is_low_confidence():
    """One view's matches err together (here: its observations magnified 6-8 % about the image centre, as
    matches one texture period off or on a texture's edges can): the joint focal follows them by ~4-7 %,
    every view still re-poses and all the points agree on that focal, but leaving that view out moves it
    back: the leave-one-view-out spread says the focal is not pinned."""
    rng = np.random.default_rng()
    K, w2c, X = _scene(rng, views=6)
    tracks = _tracks(K, w2c, X, np.ones((len(X), len(w2c)), bool), rng)
    centre = np.array([W / 2, H / 2])
    m = tracks.view == int(rng.integers(2, 4))  # a middle view of the arc (an end one moves instead)
    tracks.uv[m] = (tracks.uv[m] - centre) * rng.uniform(1.06, 1.08) + centre
    obs = Observations(
        torch.from_numpy(tracks.view), torch.from_numpy(tracks.track), torch.from_numpy(tracks.uv)
    )
    dragged = bundle_adjust(torch.from_numpy(w2c), F, torch.from_numpy(K[:, :2, 2]), torch.from_numpy(X), obs)
    assert dragged.focal / F - 1 > 0.02  # the failure the check is for: a focal a few % off
    K_d = K.copy()
    K_d[:, 0, 0] = K_d[:, 1, 1] = dragged.focal
    check = verify_solution(tracks, K_d, dragged.w2c.numpy(), np.ones(6, bool))
    verdicts = (check.verdict, check.poses_verdict, check.focal_verdict)
    assert verdicts == ("low_confidence", "verified", "uncertain")
    assert "leaving one view out moves it" in check.reason, check.reason
    assert abs(check.focal.disagreement) < 0.01  # the other check cannot see it
    assert check.focal.jackknife_se > 0.015
    assert check.to_json()["focal"]["jackknife_se"] == check.focal.jackknife_se


def test_an_estimated_focal_that_too_few_multi_view_points_can_check_is_low_confidence():
    """3 views whose pairs share many points but only 32 are seen by all three: every view re-poses (32
    points each), but 96 observations cannot confirm a focal that the pairs alone would let slide."""
    rng = np.random.default_rng()
    K, w2c, X = _scene(rng, views=3, points=332)
    seen = np.zeros((len(X), 3), bool)
    seen[:100, [0, 1]] = seen[100:200, [1, 2]] = seen[200:300, [0, 2]] = True
    seen[300:] = True
    tracks = _tracks(K, w2c, X, seen, rng)
    check = verify_solution(tracks, K, w2c, np.ones(3, bool))
    assert all(v.status == "pass" for v in check.views), check.views
    assert check.verdict == "low_confidence" and "could not be checked" in check.reason, check.reason
    assert check.focal.status == "unchecked"
    assert (check.poses_verdict, check.focal_verdict) == ("verified", "unchecked")
    assert verify_solution(tracks, K, w2c, np.ones(3, bool), focal_known=True).verdict == "verified"


def test_a_view_confirmed_only_by_look_alike_matches_is_low_confidence():
    """View 2 sees half the points, and all but 8 of them are on repeated texture (not distinct); the other
    views also share the other half, all distinct. Every view re-poses from all the tracks, but nothing
    independent confirms view 2: the poses are low confidence. With every track distinct the same solution
    is verified; without the flags (pycolmap's tracks) the check is not run."""
    rng = np.random.default_rng()
    K, w2c, X = _scene(rng)
    seen = np.ones((len(X), len(w2c)), bool)
    seen[200:, 2] = False
    tracks = _tracks(K, w2c, X, seen, rng)
    reg = np.ones(len(w2c), bool)
    plain = verify_solution(tracks, K, w2c, reg)
    assert plain.verdict == "verified" and plain.distinct is None, plain.reason
    every = replace(tracks, distinct=np.ones(len(tracks.view), bool))
    check = verify_solution(every, K, w2c, reg)
    assert check.verdict == "verified" and [d.status for d in check.distinct] == ["pass"] * 5, check.reason
    distinct = (tracks.track >= 200) | (tracks.track < 8)  # a flag of the whole track
    check = verify_solution(replace(tracks, distinct=distinct), K, w2c, reg, [f"v{k}.jpg" for k in range(5)])
    assert all(v.status == "pass" for v in check.views)  # all the tracks alone would have verified it
    assert check.poses_verdict == "low_confidence" and "repeated texture: v2.jpg" in check.reason, (
        check.reason
    )
    assert [d.status == "pass" for d in check.distinct] == [True, True, False, True, True]


def test_poses_the_solver_did_not_reproduce_are_low_confidence():
    """The sparse solver solves a free-focal solution again from its own focal; when that gives other poses
    (and no better ones), the same matches gave two answers: the poses are low confidence, with how far."""
    rng = np.random.default_rng()
    K, w2c, X = _scene(rng)
    tracks = _tracks(K, w2c, X, np.ones((len(X), len(w2c)), bool), rng)
    reg = np.ones(len(w2c), bool)
    same = verify_solution(
        tracks, K, w2c, reg, stability={"reproduced": True, "rotation_deg": 0.1, "centre": 0.0}
    )
    assert same.verdict == "verified" and same.to_json()["stability"]["reproduced"], same.reason
    other = {"reproduced": False, "rotation_deg": 2.3, "centre": 0.03}
    check = verify_solution(tracks, K, w2c, reg, stability=other)
    assert check.poses_verdict == "low_confidence" and "not reproduced (they moved 2.3 deg" in check.reason


@pytest.mark.parametrize("focal_known", [False, True])
def test_a_verification_that_stops_early_does_not_call_an_estimated_focal_given(focal_known):
    """A view posed 20 deg wrong fails before the focal is checked: an estimated focal is then 'unchecked'
    (it was not looked at), a given one 'given'; the poses' verdict is the failure."""
    rng = np.random.default_rng()
    K, w2c, X = _scene(rng, views=5)
    tracks = _tracks(K, w2c, X, np.ones((len(X), len(w2c)), bool), rng)
    bad = w2c.copy()
    bad[2] = _rotate(w2c[2], 20.0)
    check = verify_solution(tracks, K, bad, np.ones(len(w2c), bool), focal_known=focal_known)
    assert check.verdict == check.poses_verdict == "failed", check.reason
    assert check.focal is None and check.focal_verdict == ("given" if focal_known else "unchecked")
    two = verify_solution(tracks, K, w2c, np.arange(5) < 2, focal_known=focal_known)
    assert two.poses_verdict == "low_confidence"
    assert two.focal_verdict == ("given" if focal_known else "unchecked")


def test_lens_distortion_makes_pinhole_cameras_low_confidence():
    """Barrel-distorted observations (k1 -0.15, ~7 px at the edges of the points' spread), solved as
    pinholes the way the solvers do: every view re-poses, but the distortion is found and said."""
    rng = np.random.default_rng()
    K, w2c, X = _scene(rng, views=6)
    tracks = _tracks(K, w2c, X, np.ones((len(X), len(w2c)), bool), rng, noise_px=0.0)
    xy = (tracks.uv - K[0, :2, 2]) / F
    k1 = -0.15
    tracks.uv = K[0, :2, 2] + F * (1 + k1 * (xy**2).sum(1, keepdims=True)) * xy + rng.normal(0, 0.3, xy.shape)
    obs = Observations(
        torch.from_numpy(tracks.view), torch.from_numpy(tracks.track), torch.from_numpy(tracks.uv)
    )
    fit = bundle_adjust(torch.from_numpy(w2c), F, torch.from_numpy(K[:, :2, 2]), torch.from_numpy(X), obs)
    K_fit = K.copy()
    K_fit[:, 0, 0] = K_fit[:, 1, 1] = fit.focal
    for focal_known in (False, True):
        check = verify_solution(
            tracks, K_fit, fit.w2c.numpy(), np.ones(len(w2c), bool), focal_known=focal_known
        )
        assert check.verdict == "low_confidence", check.reason
        assert "lens distortion" in check.reason and ("--focal" in check.reason) != focal_known
        assert check.distortion.status == "distorted" and abs(check.distortion.k1 - k1) < 0.02
        assert check.to_json()["distortion"]["corner_px"] > 3


def _fake_run(wrong_view: int | None):
    """A pose method that returns the true cameras of a synthetic scene, one of them rotated 10 deg."""
    rng = np.random.default_rng(0)
    K, w2c, X = _scene(rng)
    tracks = _tracks(K, w2c, X, np.ones((len(X), len(w2c)), bool), rng)
    solved = w2c.copy()
    if wrong_view is not None:
        solved[wrong_view] = _rotate(w2c[wrong_view], 10.0)
    calls = []

    def run(method, images, names, focal, log):
        calls.append(method)
        from splat.poses import Solution

        return Solution(K, solved, np.ones(5, bool), X, np.zeros((len(X), 3), np.float32), {}, tracks), 0.0

    return run, calls


def test_a_failed_verification_is_refused_after_trying_the_other_method(monkeypatch):
    import splat.poses as poses

    run, calls = _fake_run(wrong_view=3)
    monkeypatch.setattr(poses, "_run", run)
    images = [np.zeros((H, W, 3), np.float32)] * 5
    names = [f"img{k}.jpg" for k in range(5)]
    with pytest.raises(InputError) as err:
        estimate_poses(images, names, progress=False)
    msg = str(err.value)
    assert "img3.jpg" in msg and "--accept-unverified" in msg and "\n" not in msg
    assert calls == ["sparse", "colmap"]
    kept = estimate_poses(images, names, progress=False, accept_unverified=True)
    assert kept.verification.verdict == "failed"
    assert "img3.jpg" in kept.verification.failing()


def test_a_right_solution_is_accepted_as_verified(monkeypatch):
    import splat.poses as poses

    run, calls = _fake_run(wrong_view=None)
    monkeypatch.setattr(poses, "_run", run)
    res = estimate_poses([np.zeros((H, W, 3), np.float32)] * 5, progress=False)
    assert res.verification.verdict == "verified" and calls == ["sparse"]


def _rotation_error_deg(w2c: np.ndarray, gt: np.ndarray) -> float:
    """Largest angle between estimated and true relative rotations over view pairs, (V,4,4) each."""
    errs = []
    for i in range(len(w2c)):
        for j in range(i + 1, len(w2c)):
            r = w2c[j, :3, :3] @ w2c[i, :3, :3].T @ (gt[j, :3, :3] @ gt[i, :3, :3].T).T
            errs.append(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))))
    return float(max(errs))


@pytest.mark.parametrize(
    "scene_name, views, true_focal",
    [
        # 70-150 degrees apart, mirror-like views: all three cameras used to come back 60 % off (ATE)
        ("garden", [0, 14, 20], False),
        # frame 13's leave-one-out re-pose landed far away with no more inliers, which counted as a pass:
        # the solution was "verified" with a relative rotation 7.7 deg wrong and the focal 22 % off
        ("still_life", [13, 21, 22], False),
        # the same with the focal given: frame 23 was 6 deg wrong (ATE 7.8 %), re-posed 22 deg away
        ("garden", [0, 5, 9, 13, 17, 23], True),
        # a brick wall's look-alike matches bent frames 0-6 (frame 6 sees mostly wall): ATE 6.4 %, 3.4 deg,
        # every view re-posed within 0.6 deg from all the tracks; its distinct points put frame 6 5 deg away
        ("still_life", [0, 2, 3, 4, 6, 14, 17, 21], False),
    ],
)
def test_a_wrong_solution_of_a_real_scene_is_not_accepted_silently(scene_name, views, true_focal):
    from splat.geometry.align import ate
    from splat.io.datasets import load_scene

    if not (SCENES / scene_name / "sparse" / "0").is_dir():
        pytest.skip(f"scenes/{scene_name} is not rendered")
    scene = load_scene(SCENES / scene_name, max_side=512)
    images = [scene.images.images[k] for k in views]
    names = [scene.images.names[k] for k in views]
    gt = scene.cameras[views]
    focal = float(gt.K[0, 0, 0]) if true_focal else None
    try:
        res = estimate_poses(images, names, focal=focal, progress=False)
    except InputError as e:
        assert "could not" in str(e)
        return
    err = ate(res.cameras.centers.double(), gt.centers.double())["rel"]
    rot = _rotation_error_deg(res.cameras.w2c.double().numpy(), gt.w2c.double().numpy())
    right = err < 0.02 and rot < 2.0
    assert right or res.verification.poses_verdict != "verified", (
        f"ATE {err:.1%}, {rot:.1f} deg accepted as verified"
    )
    assert torch.isfinite(res.cameras.w2c).all()


def test_a_pycolmap_solution_is_verified_from_its_own_tracks():
    """The pycolmap path (large sets, and the fallback) hands its model's tracks to the verification: 16
    statues views are solved (ATE under 1 %) and every view re-poses from the others."""
    from splat.geometry.align import ate
    from splat.io.datasets import load_scene

    scene = load_scene(SCENES / "statues", max_side=384)
    views = np.linspace(0, len(scene.images.images) - 1, 16).round().astype(int).tolist()
    images = [scene.images.images[k] for k in views]
    names = [scene.images.names[k] for k in views]
    res = estimate_poses(images, names, method="colmap", progress=False)
    assert res.method == "colmap" and res.verification.verdict == "verified", res.verification.reason
    checks = res.verification.views
    assert len(checks) == 16 and min(c.explained for c in checks) >= 30
    assert ate(res.cameras.centers.double(), scene.cameras[views].centers.double())["rel"] < 0.01

"""Is a camera solution right? Evidence that a wrong solution cannot fake easily.

Leave-one-out re-registration: for every registered view v, the feature tracks are triangulated from the
*other* views only, and v is re-posed from those points by full 6-DoF PnP (RANSAC, then Levenberg-Marquardt)
with its own intrinsics. A right solution puts v where the others see it. A wrong one does not, or cannot
say: a view whose only link to the rest is one two-view relation (no track reaches a third view) cannot be
re-posed at all, and nothing confirms its pose: any essential matrix fitted to its matches "fits", wrong
ones included (repeated texture, mirror-like views half an orbit apart, an unrelated photo).

Verdicts (`Verification.verdict`):
- 'verified': every view re-posed from the others within `pass_rotation_deg` and `pass_centre` (fraction of
  the camera spread), from at least `min_points` PnP inliers.
- 'low_confidence': no view contradicts the solution, but some view is confirmed only weakly (re-posed from
  few points, or between the pass and fail bounds). Kept, with a warning.
- 'failed': some view cannot be re-posed from the others, or lands beyond `fail_rotation_deg` /
  `fail_centre` from its solved pose. Refused unless the user accepts unverified cameras.

A re-pose that lands far away but explains the points no better than the solved pose does not say the
solution is wrong (on planar points PnP has a second, mirrored optimum), but it does say the points do not
determine the view: two poses far apart fit them equally. Such a view is only weakly confirmed. (Until
2026-12-07 it passed: still_life [13, 21, 22] was verified with a relative rotation 7.7 deg wrong and the
focal +22 %, frame 13 re-posed 2.8 deg / 15 % away from 95 points; garden 6 views with the true focal, frame
23 6 deg wrong, re-posed 22 deg away from 66 points.)

Two views have no third to check them: such a solution is 'low_confidence' at best. A solution without
parallax (the median track's rays meet at under `min_parallax_deg`: copies of one photo, or a camera turning
on the spot) has no depth to re-pose from, whatever its views agree on: 'failed'.

Weakest links (`weak_links`): leave-one-out cannot see two groups of views that are each right inside but
joined wrongly, since every view is re-posed from its own group. So the view graph (edges: tracks two views
share) is cut where it is weakest (Stoer-Wagner, recursively inside each side). A cut between groups of two
or more views is 'planar' when the points that tie the groups together are few (under `link_weak` times a
view's typical track count) and lie on one plane (their median distance from the best-fitting plane under
`link_flat` times their median distance from its centre). Matches on a plane fit more than one relative pose,
and repeated texture on it (tiles, a fence, a facade) makes wrong matches agree with each other: such a link
makes the solution 'low_confidence'. (garden, 8 views: the one solution that joined two groups 124 degrees
wrong had 0.06 and 0.03; the 8 right ones with a cut between groups of two or more 0.25-0.65 and 0.10-0.28.)

Repeated texture (`distinct_checks`): matches on bricks, tiles or a fence can all slip by one period, agree
with each other and with a wrong pose, and confirm it in every check made of the same tracks (still_life, 8
views: frames 0-6 bent by a brick wall, ATE 6.4 %, 3.4 deg, every view re-posed within 0.6 deg). When the
solver flags its tracks as distinct (no look-alike keypoint in their own images, splat.poses.tracks
.mark_distinct), every view is re-posed again from the distinct tracks alone; a view that passed but that
they cannot re-pose, or put beyond the fail bounds (they are fewer, so not the pass bounds), is confirmed
only through repeated texture: the solution is 'low_confidence' (there: frame 6, 5.2 deg / 15 % away).

Reproduction (`stability`, the sparse solver's): a free-focal solution is solved once more from its own
focal (splat.poses.sparse_view._resolve_focal); one that is not reproduced (and not replaced by a better
one that is) is 'low_confidence': the same matches gave another answer.

Lens distortion (`distortion_check`): the cameras are pinholes. The solution's tracks are adjusted again with
one radial term k1 (COLMAP's SIMPLE_RADIAL) free; when it shifts the image corners by more than
`distortion_corner_px` and fits the observations clearly better (median residual under `distortion_gain`
times the pinhole one), the photos are distorted and the pinhole focal and poses are biased: the solution is
'low_confidence'. (sceaux-castle, real photos: k1 -0.14, 15 px at the corners, residual 0.25 -> 0.15 px, and
the pinhole focal 5.7 % off; POV-Ray renders: under 1.2 px and no gain.)

Focal (`focal_check`, an estimated focal only): a two-view observation fits anywhere along its epipolar line,
so wrong matches on repeated texture that slide along it pull the focal where they fit best; a point seen in
three or more views is pinned. The sparse solver takes its focal from those points and reports what all its
tracks gave; other solutions are adjusted again on those points alone. When the two estimates are more than
`focal_agreement` apart, or when too few such points exist to check it, the focal is 'low_confidence'. (demo,
6 views at 480 px: all tracks +2.8 %, 3+ views +1.3 %; garden, right 4- to 8-view solutions: at most 0.5-0.6 %
apart.) Both estimates come from the same views, so matches that err together in a view (one texture period
off, or on a texture's edges) pull both the same way: still_life 8 views came out 6.4 % long with the two 0.5 %
apart. So from 5 views on, the focal is adjusted again without each view in turn (`focal_jackknife`), and when
the leave-one-view-out standard error exceeds `focal_jackknife` the focal is 'low_confidence' too (still_life
8 views: 2.1 % there; 0.35-1.1 % on the solutions within 0.5 %; garden, statues, demo at 6 and 12 views
0.1-0.6 %).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import cv2
import numpy as np
from scipy import sparse

from splat.poses.tracks import Tracks, reprojection, triangulate_tracks


@dataclass
class VerifyConfig:
    reproj_px: float = 3.0  # a point counts for a view when it reprojects within this in the other views
    min_points: int = 12  # fewest PnP inliers to re-pose a view
    strong_points: int = 30  # fewer inliers than this confirm a view only weakly
    pass_rotation_deg: float = 2.0
    pass_centre: float = 0.03  # of the camera spread (RMS distance of the centres from their mean)
    fail_rotation_deg: float = 5.0
    fail_centre: float = 0.10
    ransac_iters: int = 1000
    seed: int = 0
    link_weak: float = (
        0.15  # a link is weak under this many tie points per track of a view of the smaller side
    )
    link_flat: float = (
        0.06  # tie points on a plane: median off-plane distance / median distance from the centre
    )
    link_max_views: int = 200  # the graph cuts cost O(V^3): not run on larger solutions
    distortion_corner_px: float = 3.0  # a k1 that moves the image corners further than this is distortion
    distortion_gain: float = (
        0.9  # ... when it brings the median residual under this fraction of the pinhole one
    )
    distortion_points: int = 3000  # tracks adjusted for the check (evenly drawn)
    min_parallax_deg: float = 0.25  # median angle between a track's first and last rays
    focal_agreement: float = 0.01  # an estimated focal is uncertain when 3+-view tracks alone move it further
    focal_jackknife: float = 0.015  # ... or when its leave-one-view-out standard error is larger


@dataclass
class ViewCheck:
    """Leave-one-out result of one view."""

    view: int
    name: str
    points: int  # 3D points triangulated from the other views that this view observes
    explained: int  # of them, reprojecting within reproj_px under the solved pose
    inliers: int  # PnP inliers among them (0: not re-posed)
    rotation_deg: float | None  # re-posed vs solved rotation
    centre: float | None  # re-posed vs solved centre distance, in camera spreads
    status: str  # pass | weak | fail


@dataclass
class LinkCheck:
    """One cut of the view graph between two groups of views."""

    side_a: list[str]
    side_b: list[str]
    tie_tracks: int  # tracks seen from both sides
    view_tracks: float  # median track count of a view of the smaller side
    flatness: float | None  # of the tie points (see the module docstring); None: too few to say
    status: str  # ok | planar


@dataclass
class DistortionCheck:
    """The solution's tracks adjusted as pinholes and with a shared radial term k1."""

    k1: float  # in normalised image coordinates: u = f (1 + k1 r^2) x/z + cx
    corner_px: float  # how far k1 moves the image corners
    focal_change: float  # relative change of the focal when k1 is free
    residual_px: float  # median reprojection error, pinhole
    residual_radial_px: float  # median reprojection error with k1
    status: str  # ok | distorted
    focal_px: float  # the pinhole fit's focal


@dataclass
class FocalCheck:
    """An estimated focal against a second estimate from the same matches."""

    focal_px: float  # the solution's
    focal_other_px: float | None  # the second estimate: all tracks, or the 3+-view tracks alone
    observations: int  # behind the second estimate
    disagreement: float | None  # focal_other / focal - 1
    status: str  # ok | uncertain | unchecked (too few tracks in 3+ views)
    jackknife_se: float | None = None  # leave-one-view-out standard error, relative (None: not run)
    jackknife_range: tuple[float, float] | None = None  # lowest, highest leave-one-out focal / focal - 1


@dataclass
class Verification:
    """`verdict` judges the whole solution; `poses_verdict` the poses alone (the same, except that an
    uncertain or unchecked estimated focal makes only `verdict` low_confidence: right poses can carry a
    focal a few % off, since at 3-5 views a focal error and the poses trade off weakly)."""

    verdict: str  # verified | low_confidence | failed | unchecked
    reason: str
    views: list[ViewCheck] = field(default_factory=list)
    links: list[LinkCheck] = field(default_factory=list)
    distortion: DistortionCheck | None = None
    distinct: list[ViewCheck] | None = None  # leave-one-out from the distinct tracks alone (None: not run)
    stability: dict | None = None  # the solver's re-solve from its own focal (None: not run); see below
    focal: FocalCheck | None = None
    fix: str = "add photos that overlap with these views (or remove them)"  # said when it fails
    poses_verdict: str | None = None  # None: as `verdict`
    focal_known: bool = True  # False: the focal was estimated (then no focal check means 'unchecked')

    def __post_init__(self) -> None:
        if self.poses_verdict is None:
            self.poses_verdict = self.verdict

    @property
    def focal_verdict(self) -> str:
        """given (EXIF, --focal) | verified | uncertain | unchecked (estimated, and not checked: the
        verification stopped before its focal check, or too few points seen in 3+ views)."""
        if self.focal is None:
            return "given" if self.focal_known else "unchecked"
        return {"ok": "verified"}.get(self.focal.status, self.focal.status)

    def failing(self, status: str = "fail") -> list[str]:
        return [v.name for v in self.views if v.status == status]

    def to_json(self) -> dict:
        return {
            "verdict": self.verdict,
            "poses_verdict": self.poses_verdict,
            "focal_verdict": self.focal_verdict,
            "reason": self.reason,
            "views": [asdict(v) for v in self.views],
            "links": [asdict(link) for link in self.links],
            "distinct": None if self.distinct is None else [asdict(v) for v in self.distinct],
            "stability": self.stability,
            "distortion": None if self.distortion is None else asdict(self.distortion),
            "focal": None if self.focal is None else asdict(self.focal),
        }


def camera_spread(w2c: np.ndarray) -> float:
    """RMS distance of the camera centres of (V,4,4) world-to-camera poses from their mean."""
    c = -np.einsum("vji,vj->vi", w2c[:, :3, :3], w2c[:, :3, 3])
    return float(np.sqrt(((c - c.mean(0)) ** 2).sum(1).mean()))


def repose_view(
    tracks: Tracks, K: np.ndarray, w2c: np.ndarray, reg: np.ndarray, v: int, cfg: VerifyConfig
) -> tuple[int, int, int, np.ndarray | None]:
    """Re-pose view v from points triangulated without it.

    Returns (points seen, of them within cfg.reproj_px under the solved pose, PnP inliers, PnP w2c (4,4)
    or None when the points are too few)."""
    others = reg.copy()
    others[v] = False
    in_v = tracks.view == v
    ids = np.unique(tracks.track[in_v])
    if len(ids) == 0 or others.sum() < 2:
        return 0, 0, 0, None
    X, count = triangulate_tracks(tracks, K, w2c, others, ids)
    # keep points that reproject in every other view that sees them, in front of those cameras
    m = others[tracks.view] & np.isin(tracks.track, ids) & np.isfinite(X[tracks.track]).all(1)
    err, z = reprojection(K, w2c, X[tracks.track[m]], tracks.view[m], tracks.uv[m])
    bad = np.zeros(tracks.num_tracks, bool)
    np.logical_or.at(bad, tracks.track[m], (err > cfg.reproj_px) | (z <= 0))
    ok = np.isfinite(X).all(1) & ~bad & (count >= 2)
    sel = in_v & ok[tracks.track]
    n = int(sel.sum())
    obj = X[tracks.track[sel]].astype(np.float64)
    img = tracks.uv[sel].astype(np.float64)
    err, z = reprojection(K, w2c, obj, np.full(n, v), img)
    explained = int(((err <= cfg.reproj_px) & (z > 0)).sum())
    if n < max(cfg.min_points, 6):
        return n, explained, 0, None
    cv2.setRNGSeed(cfg.seed)
    found, rvec, tvec, inl = cv2.solvePnPRansac(
        obj,
        img,
        K[v],
        None,
        iterationsCount=cfg.ransac_iters,
        reprojectionError=cfg.reproj_px,
        confidence=0.999,
        flags=cv2.SOLVEPNP_SQPNP,
    )
    if not found or inl is None or len(inl) < cfg.min_points:
        return n, explained, 0 if inl is None else len(inl), None
    inl = inl[:, 0]
    rvec, tvec = cv2.solvePnPRefineLM(obj[inl], img[inl], K[v], None, rvec, tvec)
    out = np.eye(4)
    out[:3, :3] = cv2.Rodrigues(rvec)[0]
    out[:3, 3] = tvec[:, 0]
    return n, explained, len(inl), out


def _rotation_deg(Ra: np.ndarray, Rb: np.ndarray) -> float:
    c = (np.trace(Ra @ Rb.T) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def _status(n, explained, inliers, rot, cen, cfg: VerifyConfig) -> str:
    """pass | weak | fail for one view (see the module docstring)."""
    if n < cfg.min_points or explained < cfg.min_points:
        return "fail"  # nothing (or too little) ties the view to two others
    if explained < 0.5 * n:
        return "fail"  # the other views' points do not land where this view sees them
    far = rot is not None and (rot > cfg.fail_rotation_deg or cen > cfg.fail_centre)
    if far and inliers > 1.25 * explained:
        return "fail"  # another pose explains the other views' points clearly better
    close = rot is not None and rot <= cfg.pass_rotation_deg and cen <= cfg.pass_centre
    # far but no better: two poses far apart fit these points (e.g. PnP's mirrored optimum on a flat
    # ground), so they do not confirm this one
    if explained >= cfg.strong_points and close:
        return "pass"
    return "weak"


def _why(c: ViewCheck, cfg: VerifyConfig) -> str:
    if c.points < cfg.min_points or c.explained < cfg.min_points:
        return f"{c.name} (shares {c.explained} points with two other views; it needs {cfg.min_points})"
    if c.explained < 0.5 * c.points:
        return f"{c.name} (only {c.explained} of the {c.points} points the others see reproject onto it)"
    return (
        f"{c.name} (re-posed from the others {c.rotation_deg:.1f} deg / {100 * c.centre:.0f} % of the "
        "camera spread away)"
    )


def _shared_tracks(tracks: Tracks, V: int) -> tuple[sparse.csr_matrix, np.ndarray]:
    """(V, T) view-track incidence and the (V, V) count of tracks each pair of views shares."""
    inc = sparse.csr_matrix(
        (np.ones(len(tracks.view)), (tracks.view, tracks.track)), shape=(V, tracks.num_tracks)
    )
    inc.data[:] = 1.0  # a view observing a track twice counts once
    return inc, (inc @ inc.T).toarray()


def _flatness(X: np.ndarray) -> float | None:
    """Median distance of (N,3) points from their best-fitting plane over their median distance from its
    centre (0: all on one plane); None under 8 points."""
    X = X[np.isfinite(X).all(1)]
    if len(X) < 8:
        return None
    Q = X - X.mean(0)
    normal = np.linalg.svd(Q, full_matrices=False)[2][2]
    return float(np.median(np.abs(Q @ normal)) / max(np.median(np.linalg.norm(Q, axis=1)), 1e-12))


def weak_links(
    tracks: Tracks,
    K: np.ndarray,
    w2c: np.ndarray,
    reg: np.ndarray,
    names: list[str],
    cfg: VerifyConfig,
    triangulated=None,
) -> list[LinkCheck]:
    """The weakest cut of the registered views' graph, then recursively inside each side: every cut
    between groups of two or more views (see the module docstring)."""
    import networkx as nx

    V = len(reg)
    inc, shared = _shared_tracks(tracks, V)
    per_view = np.asarray(inc.sum(1)).ravel()
    out: list[LinkCheck] = []
    stack = [np.flatnonzero(reg).tolist()]
    while stack:
        nodes = stack.pop()
        if len(nodes) < 4:
            continue
        graph = nx.Graph()
        graph.add_nodes_from(nodes)
        graph.add_weighted_edges_from(
            (i, j, shared[i, j]) for a, i in enumerate(nodes) for j in nodes[a + 1 :] if shared[i, j] > 0
        )
        if not nx.is_connected(graph):
            continue  # unconnected views cannot be registered together: not this check's concern
        _, (side_a, side_b) = nx.stoer_wagner(graph)
        side_a, side_b = sorted(side_a), sorted(side_b)
        stack += [side for side in (side_a, side_b) if len(side) >= 4]
        if min(len(side_a), len(side_b)) < 2:
            continue  # one view against the rest: leave-one-out checks that
        seen_a = np.asarray(inc[side_a].sum(0)).ravel() > 0
        seen_b = np.asarray(inc[side_b].sum(0)).ravel() > 0
        ties = np.flatnonzero(seen_a & seen_b)
        smaller = side_a if len(side_a) <= len(side_b) else side_b
        view_tracks = float(np.median(per_view[smaller]))
        flat = None
        if len(ties) < cfg.link_weak * view_tracks:
            X = (triangulated or triangulate_tracks(tracks, K, w2c, reg, ties))[0]
            flat = _flatness(X[ties])
        planar = flat is not None and flat < cfg.link_flat
        out.append(
            LinkCheck(
                [names[k] for k in side_a],
                [names[k] for k in side_b],
                len(ties),
                view_tracks,
                flat,
                "planar" if planar else "ok",
            )
        )
    return out


def median_parallax_deg(
    tracks: Tracks, K: np.ndarray, w2c: np.ndarray, reg: np.ndarray, triangulated=None
) -> float:
    """Median over tracks of the angle (degrees) between the rays of their first and last observations
    to the triangulated point; 0 when nothing triangulates. triangulated: triangulate_tracks over reg."""
    X, count = triangulated or triangulate_tracks(tracks, K, w2c, reg)
    m = reg[tracks.view]
    t, v = tracks.track[m], tracks.view[m]
    if len(t) == 0:
        return 0.0
    order = np.lexsort((v, t))
    t, v = t[order], v[order]
    first = np.r_[True, t[1:] != t[:-1]]
    last = np.r_[t[1:] != t[:-1], True]
    ids, a, b = t[first], v[first], v[last]
    ok = (count[ids] >= 2) & np.isfinite(X[ids]).all(1) & (a != b)
    if not ok.any():
        return 0.0
    ids, a, b = ids[ok], a[ok], b[ok]
    centres = -np.einsum("vji,vj->vi", w2c[:, :3, :3], w2c[:, :3, 3])
    ra, rb = X[ids] - centres[a], X[ids] - centres[b]
    cos = (ra * rb).sum(1) / np.maximum(np.linalg.norm(ra, axis=1) * np.linalg.norm(rb, axis=1), 1e-300)
    return float(np.degrees(np.arccos(np.clip(np.median(cos), -1.0, 1.0))))


def _adjustable(tracks: Tracks, K, w2c, reg, cfg: VerifyConfig, min_views: int, triangulated=None):
    """Arguments of a shared-focal bundle_adjust over the solution's registered views: the tracks seen in at
    least `min_views` of them within cfg.reproj_px (up to cfg.distortion_points, evenly drawn). None when the
    views do not share one focal or fewer than 100 observations are left."""
    import torch

    from splat.poses.bundle import Observations

    views = np.flatnonzero(reg)
    f = K[views, 0, 0]
    if f.max() - f.min() > 1e-6 * f.max():
        return None  # cameras of different focal: the shared-focal adjustment does not apply
    X, count = triangulated or triangulate_tracks(tracks, K, w2c, reg)
    m = reg[tracks.view] & (np.isfinite(X).all(1) & (count >= 2))[tracks.track]
    err, z = reprojection(K, w2c, X[tracks.track[m]], tracks.view[m], tracks.uv[m])
    keep = np.flatnonzero(m)[(err < cfg.reproj_px) & (z > 0)]
    keep = keep[np.bincount(tracks.track[keep], minlength=tracks.num_tracks)[tracks.track[keep]] >= min_views]
    ids = np.unique(tracks.track[keep])
    if len(ids) > cfg.distortion_points:
        ids = ids[np.linspace(0, len(ids) - 1, cfg.distortion_points).astype(int)]
        keep = keep[np.isin(tracks.track[keep], ids)]
    if len(keep) < 100:
        return None
    uniq, pt = np.unique(tracks.track[keep], return_inverse=True)
    local = -np.ones(len(reg), np.int64)
    local[views] = np.arange(len(views))
    obs = Observations(
        torch.from_numpy(local[tracks.view[keep]]), torch.from_numpy(pt), torch.from_numpy(tracks.uv[keep])
    )
    pp = torch.from_numpy(K[views, :2, 2])
    return torch.from_numpy(w2c[views]), float(f[0]), pp, torch.from_numpy(X[uniq]), obs


def distortion_check(
    tracks: Tracks, K: np.ndarray, w2c: np.ndarray, reg: np.ndarray, cfg: VerifyConfig, triangulated=None
) -> DistortionCheck | None:
    """Adjust the solution's tracks as pinholes and with a shared k1 (see the module docstring); None when
    the views do not share one focal or too few tracks fit."""
    from splat.poses.bundle import bundle_adjust

    args = _adjustable(tracks, K, w2c, reg, cfg, 2, triangulated)
    if args is None:
        return None
    pinhole = bundle_adjust(*args, iters=15)
    radial = bundle_adjust(*args, iters=15, radial=True)
    # the image corner farthest from the principal point (taken as the image centre), normalised
    cx, cy = args[2][0].tolist()
    corner = abs(radial.k1) * radial.focal * (np.hypot(cx, cy) / radial.focal) ** 3
    res_pin, res_rad = float(pinhole.residuals.median()), float(radial.residuals.median())
    distorted = corner > cfg.distortion_corner_px and res_rad < cfg.distortion_gain * res_pin
    return DistortionCheck(
        radial.k1, float(corner), radial.focal / pinhole.focal - 1, res_pin, res_rad,
        "distorted" if distorted else "ok", pinhole.focal,
    )  # fmt: skip


def _without_views(args, drop):
    """bundle_adjust arguments (from `_adjustable`) without the observations of the views in `drop` (a
    list); points left in fewer than two views are dropped."""
    import torch

    from splat.poses.bundle import Observations

    w2c, f, pp, X, obs = args
    views = torch.tensor([k for k in range(w2c.shape[0]) if k not in drop])
    view_of = torch.full((w2c.shape[0],), -1, dtype=torch.long)
    view_of[views] = torch.arange(len(views))
    m = view_of[obs.cam] >= 0
    m &= torch.bincount(obs.pt[m], minlength=X.shape[0])[obs.pt] >= 2
    points = torch.unique(obs.pt[m])
    point_of = torch.full((X.shape[0],), -1, dtype=torch.long)
    point_of[points] = torch.arange(len(points))
    obs = Observations(view_of[obs.cam[m]], point_of[obs.pt[m]], obs.uv[m])
    return w2c[views], f, pp[views], X[points], obs


def focal_jackknife(
    args, focal: float, groups: int = 12, iters: int = 10
) -> tuple[float, float, float] | None:
    """Leave-one-view-out focal: the shared focal adjusted again without each view in turn (args from
    `_adjustable`; above `groups` views, without every `groups`-th view in turn, so the cost stays at
    `groups` adjustments). Returns (standard error, lowest, highest), relative to `focal`; None under 5
    views: from 4 views each estimate has 3 views only, and on statues they spread 1.5-1.9 % around focals
    right within 0.5 % (demo/statues, 4 views: 4 such false alarms in 40 solutions, nothing caught).

    The adjustment's own covariance is no measure here: matches on a texture's edges or one period off
    err together, and 9000 observations then pin a focal 6 % wrong to 0.3 % (still_life, 8 views). What one
    view's matches pull, removing that view shows; the spread of the estimates without each view is the
    jackknife's estimate of the error (still_life 8 views: 2.1 % where the focal was 6.4 % off, 0.35-1.1 %
    on solutions within 0.5 %)."""
    from splat.poses.bundle import bundle_adjust

    V = args[0].shape[0]
    if V < 5:
        return None
    G = min(V, groups)
    drops = [list(range(g, V, G)) for g in range(G)]
    fs = np.array([bundle_adjust(*_without_views(args, d), iters=iters).focal for d in drops]) / focal - 1
    se = float(np.sqrt((G - 1) / G * ((fs - fs.mean()) ** 2).sum()))
    return se, float(fs.min()), float(fs.max())


def focal_check(
    tracks: Tracks,
    K: np.ndarray,
    w2c: np.ndarray,
    reg: np.ndarray,
    cfg: VerifyConfig,
    focal: float,
    focal_all_tracks: float | None = None,
    triangulated=None,
) -> FocalCheck:
    """The solution's `focal` against a second estimate from the same matches, and how far leaving one view
    out moves it (see the module docstring): the second estimate is `focal_all_tracks` when the solver took
    its focal from the 3+-view points and says what all its tracks gave, else the focal the tracks seen in
    three or more views give when adjusted again alone."""
    from splat.poses.bundle import bundle_adjust

    if focal_all_tracks is not None:
        other, n = float(focal_all_tracks), len(tracks.view)
    else:
        args = _adjustable(tracks, K, w2c, reg, cfg, 3, triangulated)
        if args is None:
            return FocalCheck(focal, None, 0, None, "unchecked")
        other, n = bundle_adjust(*args, iters=15).focal, len(args[4])
    spread = other / focal - 1
    everything = _adjustable(tracks, K, w2c, reg, cfg, 2, triangulated)
    jack = None if everything is None else focal_jackknife(everything, focal)
    status = "uncertain" if abs(spread) > cfg.focal_agreement else "ok"
    if jack is not None and jack[0] > cfg.focal_jackknife:
        status = "uncertain"
    se, lo, hi = jack if jack is not None else (None, None, None)
    return FocalCheck(focal, other, n, spread, status, se, None if jack is None else (lo, hi))


def leave_one_out(
    tracks: Tracks, K: np.ndarray, w2c: np.ndarray, reg: np.ndarray, names, spread: float, cfg: VerifyConfig
) -> list[ViewCheck]:
    """Every registered view re-posed from the others' points (`repose_view`) and judged (`_status`);
    spread: the camera spread the centre offsets are measured in."""
    out = []
    for v in np.flatnonzero(reg).tolist():
        n, explained, inliers, pose = repose_view(tracks, K, w2c, reg, v, cfg)
        rot = cen = None
        if pose is not None:
            rot = _rotation_deg(pose[:3, :3], w2c[v, :3, :3])
            c_new = -pose[:3, :3].T @ pose[:3, 3]
            c_old = -w2c[v, :3, :3].T @ w2c[v, :3, 3]
            cen = float(np.linalg.norm(c_new - c_old) / max(spread, 1e-12))
        status = _status(n, explained, inliers, rot, cen, cfg)
        out.append(ViewCheck(v, names[v], n, explained, inliers, rot, cen, status))
    return out


def distinct_checks(
    tracks: Tracks, K: np.ndarray, w2c: np.ndarray, reg: np.ndarray, names, spread: float, cfg: VerifyConfig
) -> list[ViewCheck]:
    """Leave-one-out from the distinct tracks alone (tracks.distinct: no look-alike keypoints,
    splat.poses.tracks.mark_distinct), so that matches on repeated texture, which can agree with a wrong
    pose, confirm nothing (see the module docstring)."""
    return leave_one_out(tracks.subset(tracks.distinct), K, w2c, reg, names, spread, cfg)


def _unconfirmed(c: ViewCheck, cfg: VerifyConfig) -> bool:
    """The distinct points alone cannot re-pose the view, contradict it, or put it beyond the fail bounds
    (fewer points than all the tracks give: the pass bounds would be too tight for them)."""
    if c.status == "fail" or c.rotation_deg is None:
        return True
    return c.rotation_deg > cfg.fail_rotation_deg or c.centre > cfg.fail_centre


def _why_distinct(c: ViewCheck, cfg: VerifyConfig) -> str:
    if c.points < cfg.min_points or c.explained < cfg.min_points:
        return f"{c.name} ({c.explained} distinct points shared with two other views)"
    if c.rotation_deg is None:
        return f"{c.name} (its {c.explained} distinct points do not re-pose it)"
    return (
        f"{c.name} (its {c.explained} distinct points re-pose it {c.rotation_deg:.1f} deg / "
        f"{100 * c.centre:.0f} % of the camera spread away)"
    )


def _focal_concern(focal: FocalCheck, cfg: VerifyConfig) -> str:
    whys = []
    if abs(focal.disagreement) > cfg.focal_agreement:
        whys.append(
            f"all the matches and the points seen in three or more views alone put it "
            f"{abs(100 * focal.disagreement):.1f} % apart (two-view matches, e.g. on repeated texture, can "
            "slide along their epipolar lines)"
        )
    if focal.jackknife_se is not None and focal.jackknife_se > cfg.focal_jackknife:
        lo, hi = focal.jackknife_range
        whys.append(
            f"leaving one view out moves it from {100 * lo:+.1f} to {100 * hi:+.1f} % (standard error "
            f"{100 * focal.jackknife_se:.1f} %: the views do not pin it)"
        )
    return f"the estimated focal is uncertain: {' and '.join(whys)}; give the focal (--focal, or photos with EXIF)"


def verify_solution(
    tracks: Tracks,
    K: np.ndarray,
    w2c: np.ndarray,
    reg: np.ndarray,
    names: list[str] | None = None,
    cfg: VerifyConfig | None = None,
    focal_known: bool = False,
    focal_all_tracks: float | None = None,
    stability: dict | None = None,
) -> Verification:
    """Leave-one-out check of every registered view, its weakest links and lens distortion (see the
    module docstring).

    Args:
        tracks: the solution's inlier feature tracks (observations in pixels, COLMAP convention).
        K: (V,3,3) intrinsics; w2c: (V,4,4) world-to-camera; reg: (V,) registered views.
        focal_known: the focal was given (EXIF, --focal), not estimated: said in the distortion reason.
        focal_all_tracks: the focal all the solver's tracks gave, when it took its focal from the points seen
            in three or more views (the sparse solver says so in its diagnostics).
        stability: the sparse solver's diagnostics["pose_stability"]: {"reproduced": bool, "rotation_deg",
            "centre"}, whether solving again from its own focal gave the same poses.
    """
    cfg = cfg or VerifyConfig()
    V = len(reg)
    names = names or [f"view {k}" for k in range(V)]
    views = np.flatnonzero(reg)
    if len(views) < 3:
        return Verification(
            "low_confidence",
            f"{len(views)} views: no third view can confirm a two-view relative pose",
            focal_known=focal_known,
        )
    triangulated = triangulate_tracks(tracks, K, w2c, reg)  # (X, count), shared by the checks below
    parallax = median_parallax_deg(tracks, K, w2c, reg, triangulated)
    if parallax < cfg.min_parallax_deg:
        return Verification(
            "failed",
            f"the views see the scene from one spot (a track's rays meet at {parallax:.2f} deg; copies of one "
            "photo, or a camera turning in place)",
            fix="take the photos from different positions",
            focal_known=focal_known,
        )
    spread = camera_spread(w2c[views])
    checks = leave_one_out(tracks, K, w2c, reg, names, spread, cfg)
    failed = [c for c in checks if c.status == "fail"]
    weak = [c for c in checks if c.status == "weak"]
    if failed:
        parts = [_why(c, cfg) for c in failed[:6]]
        reason = "leave-one-out re-registration fails for " + ", ".join(parts)
        return Verification("failed", reason, checks, focal_known=focal_known)
    distinct = None if tracks.distinct is None else distinct_checks(tracks, K, w2c, reg, names, spread, cfg)
    look_alike = [d for c, d in zip(checks, distinct or []) if c.status == "pass" and _unconfirmed(d, cfg)]
    big = len(views) > cfg.link_max_views
    links = [] if big else weak_links(tracks, K, w2c, reg, names, cfg, triangulated)
    planar = [link for link in links if link.status == "planar"]
    lens = distortion_check(tracks, K, w2c, reg, cfg, triangulated)
    focal = None
    if not focal_known:
        focal = focal_check(
            tracks, K, w2c, reg, cfg, float(K[views[0], 0, 0]), focal_all_tracks, triangulated
        )
    concerns = []  # about the poses; then about the focal (focal_concerns)
    if weak:
        concerns.append("only weakly confirmed by the other views: " + ", ".join(c.name for c in weak[:6]))
    if stability is not None and not stability.get("reproduced", True):
        moved = stability.get("rotation_deg")
        how = (
            ""
            if moved is None
            else f" (they moved {moved:.1f} deg / {100 * stability['centre']:.0f} % of the spread)"
        )
        concerns.append(f"solved again from their own focal, the poses were not reproduced{how}")
    if look_alike:
        concerns.append(
            "confirmed by the other views only through matches on repeated texture: "
            + ", ".join(_why_distinct(d, cfg) for d in look_alike[:6])
        )
    if planar:
        link = min(planar, key=lambda k: k.tie_tracks)
        side = link.side_a if len(link.side_a) <= len(link.side_b) else link.side_b
        shown = ", ".join(side[:6]) + (" ..." if len(side) > 6 else "")
        concerns.append(
            f"{shown} are tied to the other views by {link.tie_tracks} points on one plane only (a view "
            f"there has ~{link.view_tracks:.0f}); a plane's matches can fit a wrong relative pose"
        )
    if lens is not None and lens.status == "distorted":
        effect = (
            "the poses are biased towards the image edges"
            if focal_known
            else "the estimated focal is biased by it (by several % on such photos)"
        )
        concerns.append(
            f"the photos show lens distortion the pinhole cameras do not model (k1 {lens.k1:+.3f}, "
            f"{lens.corner_px:.0f} px at the corners): {effect}; undistort the photos first"
            + ("" if focal_known else ", or give the focal (--focal, or keep the photos' EXIF)")
        )
    focal_concerns = []
    if focal is not None and focal.status == "uncertain" and not (lens and lens.status == "distorted"):
        focal_concerns.append(_focal_concern(focal, cfg))
    if focal is not None and focal.status == "unchecked":
        focal_concerns.append(
            "the estimated focal could not be checked (too few points seen in three or more views); give the "
            "focal (--focal, or photos with EXIF)"
        )
    poses = "low_confidence" if concerns else "verified"
    if concerns or focal_concerns:
        reason = "; ".join(concerns + focal_concerns)
        if not concerns:
            reason = f"every view re-posed from the others ({len(checks)} views), but {reason}"
        return Verification(
            "low_confidence", reason, checks, links, lens, distinct, stability, focal, poses_verdict=poses,
            focal_known=focal_known,
        )  # fmt: skip
    reason = f"every view re-posed from the others ({len(checks)} views)"
    return Verification(
        "verified", reason, checks, links, lens, distinct, stability, focal, focal_known=focal_known
    )


def tracks_from_reconstruction(rec, view_of_image: dict[str, int]) -> Tracks:
    """The observations of a pycolmap Reconstruction's 3D points as Tracks (views indexed by image name)."""
    track, view, kp, uv = [], [], [], []
    images = {image_id: image for image_id, image in rec.images.items() if image.has_pose}
    for t, point in enumerate(rec.points3D.values()):
        for el in point.track.elements:
            image = images.get(el.image_id)
            if image is None:
                continue
            track.append(t)
            view.append(view_of_image[image.name])
            kp.append(el.point2D_idx)
            uv.append(image.points2D[el.point2D_idx].xy)
    uv_arr = np.asarray(uv, np.float64).reshape(-1, 2)
    return Tracks(
        np.asarray(track, np.int64),
        np.asarray(view, np.int64),
        np.asarray(kp, np.int64),
        uv_arr,
        len(rec.points3D),
    )

"""Which image pairs to match.

Small sets (<= `exhaustive_max` views): every pair. Larger sets: neighbours in name order (photos
of a walk-around are usually taken in sequence, and a video's frames are named in time order), optionally
at doubling strides too, plus the nearest neighbours under a cheap global image descriptor (a tiny
normalised grey thumbnail and a colour histogram), which finds the pairs of a set in no order.
"""

from __future__ import annotations

import cv2
import numpy as np

from splat.io.images import to_uint8


def global_descriptors(
    images: list[np.ndarray], thumb: tuple[int, int] = (32, 24), bins: int = 4
) -> np.ndarray:
    """(V, D) unit-norm descriptors: zero-mean grey thumbnail (+ its gradients) and sqrt colour histogram."""
    out = []
    for im in images:
        rgb = to_uint8(im)
        small = cv2.resize(rgb, thumb, interpolation=cv2.INTER_AREA).astype(np.float32)
        gray = small.mean(-1)
        g = gray - gray.mean()
        g /= np.linalg.norm(g) + 1e-6
        hist = cv2.calcHist([rgb], [0, 1, 2], None, [bins] * 3, [0, 256] * 3).ravel()
        hist = np.sqrt(hist / max(hist.sum(), 1.0))
        out.append(np.concatenate([g.ravel(), hist]) / np.sqrt(2))
    return np.stack(out)


def select_pairs(
    images: list[np.ndarray] | int,
    exhaustive_max: int = 30,
    window: int = 4,
    knn: int = 8,
    quadratic: bool = False,
) -> list[tuple[int, int]]:
    """Sorted list of pairs (i, j), i < j, to match.

    Args:
        images: the images (needed for the descriptor neighbours of large sets) or just their number.
        exhaustive_max: up to this many views, all pairs.
        window: sequence neighbours i+1..i+window for large sets.
        knn: descriptor nearest neighbours per view for large sets.
        quadratic: also the sequence neighbours i+2^k beyond the window (COLMAP's quadratic overlap:
            a loop around an object, or a walk that comes back, is tied at a few longer strides).
    """
    V = images if isinstance(images, int) else len(images)
    if V <= exhaustive_max:
        return [(i, j) for i in range(V) for j in range(i + 1, V)]
    pairs = {(i, j) for i in range(V) for j in range(i + 1, min(V, i + window + 1))}
    if quadratic:
        strides = [2**k for k in range(V.bit_length()) if 2**k > window]
        pairs.update((i, i + s) for i in range(V) for s in strides if i + s < V)
    if not isinstance(images, int) and knn > 0:
        d = global_descriptors(images)
        sim = d @ d.T
        np.fill_diagonal(sim, -np.inf)
        for i, row in enumerate(np.argsort(-sim, axis=1)[:, :knn]):
            pairs.update((min(i, int(j)), max(i, int(j))) for j in row)
    return sorted(pairs)


def prune_pairs(
    descriptors: list[np.ndarray],
    pairs: list[tuple[int, int]],
    per_view: int = 6,
    coarse: int = 1024,
    min_matches: int = 10,
) -> list[tuple[int, int]]:
    """Keep the pairs worth a full match: each view's `per_view` pairs with the most mutual
    ratio-test matches among its `coarse` strongest descriptors (rows sorted by response), plus
    the name-order neighbours (i, i+1). Pairs with fewer than `min_matches` coarse matches go,
    except the neighbours."""
    from splat.match.features import match_descriptors

    V = len(descriptors)
    count = {
        e: len(match_descriptors(descriptors[e[0]][:coarse], descriptors[e[1]][:coarse], 0.85)) for e in pairs
    }
    keep = {(i, i + 1) for i in range(V - 1) if (i, i + 1) in count}
    for v in range(V):
        mine = sorted((c, e) for e, c in count.items() if v in e and c >= min_matches)[::-1]
        keep.update(e for _, e in mine[:per_view])
    return sorted(keep)

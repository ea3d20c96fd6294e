"""Small numeric helpers on polylines (``(n, 2)`` float arrays).

Everything here is plain numpy so that the generator has no dependency beyond
numpy and OpenCV, and so that results are bit-reproducible across processes.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "affine",
    "catmull_rom",
    "curvature_keypoints",
    "gaussian_smooth",
    "resample",
    "smooth_noise",
]


def resample(poly: np.ndarray, step: float) -> np.ndarray:
    """Resample a polyline at (approximately) uniform arc-length ``step``.

    Parameters
    ----------
    poly : numpy.ndarray
        ``(n, 2)`` points, ``n >= 1``.
    step : float
        Target distance between consecutive output points (> 0).

    Returns
    -------
    numpy.ndarray
        ``(m, 2)`` points with ``m >= 2``; both end points are kept. A single
        point (a dot) becomes a tiny two-point segment so it can be drawn.
    """
    poly = np.asarray(poly, dtype=np.float64)
    if len(poly) == 1:
        return np.vstack([poly[0], poly[0] + (step * 0.5, 0.0)])
    seg = np.hypot(*np.diff(poly, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    total = arc[-1]
    if total < step:
        return np.vstack([poly[0], poly[-1] if total > 0 else poly[0] + (step * 0.5, 0.0)])
    m = int(np.ceil(total / step)) + 1
    t = np.linspace(0.0, total, m)
    return np.column_stack([np.interp(t, arc, poly[:, 0]), np.interp(t, arc, poly[:, 1])])


def _kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3.0 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low-pass along axis 0 with edge padding (end points stay put).

    Parameters
    ----------
    values : numpy.ndarray
        ``(n,)`` or ``(n, d)`` samples along a trajectory.
    sigma : float
        Standard deviation in samples; ``< 0.3`` returns a copy.

    Returns
    -------
    numpy.ndarray
        Same shape as ``values``.
    """
    values = np.asarray(values, dtype=np.float64)
    if sigma < 0.3 or len(values) < 3:
        return values.copy()
    k = _kernel(sigma)
    r = len(k) // 2
    flat = values.reshape(len(values), -1)
    # Odd reflection about the end points keeps the ends in place and keeps
    # the end tangent, which plain edge padding would flatten.
    head = 2 * flat[:1] - flat[1 : r + 1][::-1]
    tail = 2 * flat[-1:] - flat[-r - 1 : -1][::-1]
    if len(head) < r:  # short stroke: pad by repetition
        head = np.repeat(flat[:1], r, axis=0)
        tail = np.repeat(flat[-1:], r, axis=0)
    padded = np.vstack([head, flat, tail])
    out = np.empty_like(flat)
    for j in range(flat.shape[1]):
        out[:, j] = np.convolve(padded[:, j], k, mode="valid")
    return out.reshape(values.shape)


def smooth_noise(rng: np.random.Generator, n: int, sigma: float, dims: int = 1) -> np.ndarray:
    """Band-limited Gaussian noise with unit standard deviation.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    n : int
        Number of samples.
    sigma : float
        Correlation length in samples (Gaussian kernel width).
    dims : int
        Number of independent channels.

    Returns
    -------
    numpy.ndarray
        ``(n, dims)`` noise, or ``(n,)`` when ``dims == 1``.
    """
    k = _kernel(max(sigma, 0.5))
    white = rng.standard_normal((n + len(k) - 1, dims))
    out = np.empty((n, dims))
    for j in range(dims):
        out[:, j] = np.convolve(white[:, j], k, mode="valid")
    out /= np.sqrt(np.sum(k**2))
    return out[:, 0] if dims == 1 else out


def affine(poly: np.ndarray, matrix: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """Apply a 2x2 linear map about ``center`` (origin when ``None``)."""
    if center is None:
        return poly @ matrix.T
    return (poly - center) @ matrix.T + center


def catmull_rom(nodes: np.ndarray, step: float) -> np.ndarray:
    """Centripetal Catmull-Rom spline through ``nodes``, sampled every ~``step``.

    The centripetal parametrisation does not overshoot or form cusps between
    unevenly spaced nodes, which matters because forgers' key points are
    noisy.

    Parameters
    ----------
    nodes : numpy.ndarray
        ``(m, 2)`` points the curve passes through.
    step : float
        Output sampling distance.

    Returns
    -------
    numpy.ndarray
        Dense ``(n, 2)`` curve.
    """
    nodes = np.asarray(nodes, dtype=np.float64)
    if len(nodes) < 3:
        return resample(nodes, step)
    p = np.vstack([2 * nodes[0] - nodes[1], nodes, 2 * nodes[-1] - nodes[-2]])
    # Knot spacing sqrt(chord length) = centripetal parametrisation.
    dt = np.maximum(np.hypot(*np.diff(p, axis=0).T), 1e-9) ** 0.5
    n_seg = len(nodes) - 1
    counts = np.maximum(1, np.ceil(np.hypot(*np.diff(nodes, axis=0).T) / step).astype(int))
    seg = np.repeat(np.arange(n_seg), counts)
    # Local parameter u in [0, 1) within each segment; the last node is appended.
    u = (np.arange(len(seg)) - np.repeat(np.cumsum(counts) - counts, counts)) / counts[seg]
    p0, p1, p2, p3 = p[seg], p[seg + 1], p[seg + 2], p[seg + 3]
    d0, d1, d2 = dt[seg][:, None], dt[seg + 1][:, None], dt[seg + 2][:, None]
    t0 = np.zeros_like(d0)
    t1 = d0
    t2 = t1 + d1
    t3 = t2 + d2
    t = t1 + u[:, None] * d1
    a1 = (t1 - t) / (t1 - t0) * p0 + (t - t0) / (t1 - t0) * p1
    a2 = (t2 - t) / (t2 - t1) * p1 + (t - t1) / (t2 - t1) * p2
    a3 = (t3 - t) / (t3 - t2) * p2 + (t - t2) / (t3 - t2) * p3
    b1 = (t2 - t) / (t2 - t0) * a1 + (t - t0) / (t2 - t0) * a2
    b2 = (t3 - t) / (t3 - t1) * a2 + (t - t1) / (t3 - t1) * a3
    c = (t2 - t) / (t2 - t1) * b1 + (t - t1) / (t2 - t1) * b2
    return np.vstack([c, nodes[-1:]])


def curvature_keypoints(poly: np.ndarray, max_gap: int, min_turn: float = 0.15) -> np.ndarray:
    """Indices of salient points: ends, curvature extrema, and regular fill-ins.

    Parameters
    ----------
    poly : numpy.ndarray
        Uniformly resampled ``(n, 2)`` polyline.
    max_gap : int
        Longest run of samples without a key point; straight stretches get
        evenly spaced extra points so the spline keeps their length.
    min_turn : float
        Minimum smoothed turning angle (radians per sample, times the
        smoothing width) for a curvature peak to count.

    Returns
    -------
    numpy.ndarray
        Sorted unique integer indices into ``poly``.
    """
    n = len(poly)
    if n <= 3:
        return np.arange(n)
    d = np.diff(poly, axis=0)
    ang = np.arctan2(d[:, 1], d[:, 0])
    turn = np.abs(np.angle(np.exp(1j * np.diff(ang))))
    turn = np.concatenate([[0.0], gaussian_smooth(turn, 1.5), [0.0]])
    peaks = np.flatnonzero(
        (turn[1:-1] >= turn[:-2]) & (turn[1:-1] > turn[2:]) & (turn[1:-1] > min_turn / 3.0)
    )
    keys = sorted({0, n - 1, *(peaks + 1).tolist()})
    filled = [keys[0]]
    for k in keys[1:]:
        gap = k - filled[-1]
        if gap > max_gap:
            extra = int(np.ceil(gap / max_gap))
            filled.extend(np.linspace(filled[-1], k, extra + 1)[1:-1].round().astype(int).tolist())
        filled.append(k)
    return np.unique(np.asarray(filled, dtype=int))

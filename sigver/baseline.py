"""Non-learned baseline descriptors: HOG and LBP histograms (numpy + OpenCV).

They give the "hand-crafted features" rows of the results table, evaluated with
the same writer-dependent classifiers and protocol as the CNN features. Both
work on preprocessed images (ink high, background 0, 170x242) centre-cropped
to 150x220, the CNN's input.

HOG
    Gradients ``[-1, 0, 1]``, 9 unsigned orientation bins (linear
    interpolation between bins), 10x10-pixel cells, 2x2-cell blocks with stride
    1 and L2-Hys normalisation (clip 0.2) -> 14 x 21 x 36 = 10,584 values.
LBP
    Uniform 8-neighbour, radius-1 LBP (58 uniform codes + 1 for the rest),
    counted only at pixels whose 3x3 neighbourhood holds ink (the blank
    background would otherwise dominate), in a 3 x 5 grid of cells, each cell
    histogram L1-normalised and square-rooted (Hellinger) -> 885 values.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from sigver.errors import SigverError
from sigver.featureset import FeatureSet

logger = logging.getLogger(__name__)

__all__ = ["BASELINES", "hog_descriptor", "lbp_descriptor", "describe", "baseline_features"]

#: Baseline descriptor names accepted by :func:`describe`.
BASELINES = ("hog", "lbp")

INPUT_SIZE = (150, 220)
HOG_CELL = 10
HOG_BINS = 9
LBP_GRID = (3, 5)


def _as_2d(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[0] == 1:
        img = img[0]
    if img.ndim != 2:
        raise SigverError(f"expected a 2-D image, got shape {img.shape}")
    return img


def hog_descriptor(img: np.ndarray) -> np.ndarray:
    """HOG descriptor of one image (see module docstring).

    Parameters
    ----------
    img : ndarray, shape (H, W)
        Cropped image; H and W must be multiples of 10 (150x220 gives 10,584 values).

    Returns
    -------
    ndarray of float32
    """
    import cv2

    a = _as_2d(img).astype(np.float32)
    h, w = a.shape
    if h % HOG_CELL or w % HOG_CELL:
        raise SigverError(f"HOG needs image sides that are multiples of {HOG_CELL}, got {a.shape}")
    gx = cv2.Sobel(a, cv2.CV_32F, 1, 0, ksize=1)
    gy = cv2.Sobel(a, cv2.CV_32F, 0, 1, ksize=1)
    mag, ang = cv2.cartToPolar(gx, gy, angleInDegrees=True)
    pos = (ang % 180.0) / (180.0 / HOG_BINS) - 0.5
    lo = np.floor(pos)
    frac = pos - lo
    lo_bin = lo.astype(np.int64) % HOG_BINS
    hi_bin = (lo_bin + 1) % HOG_BINS
    ch, cw = h // HOG_CELL, w // HOG_CELL
    hist = np.zeros((ch * cw, HOG_BINS), dtype=np.float64)
    cell = (np.arange(h)[:, None] // HOG_CELL) * cw + (np.arange(w)[None, :] // HOG_CELL)
    cell = cell.ravel()
    np.add.at(hist, (cell, lo_bin.ravel()), (mag * (1.0 - frac)).ravel())
    np.add.at(hist, (cell, hi_bin.ravel()), (mag * frac).ravel())
    hist = hist.reshape(ch, cw, HOG_BINS)
    blocks = np.concatenate(
        [hist[:-1, :-1], hist[:-1, 1:], hist[1:, :-1], hist[1:, 1:]], axis=-1
    )  # (ch-1, cw-1, 4*bins)
    eps = 1e-6
    blocks = blocks / np.sqrt(np.sum(blocks**2, axis=-1, keepdims=True) + eps**2)
    np.minimum(blocks, 0.2, out=blocks)
    blocks = blocks / np.sqrt(np.sum(blocks**2, axis=-1, keepdims=True) + eps**2)
    return blocks.ravel().astype(np.float32)


def _uniform_lut() -> np.ndarray:
    lut = np.full(256, 58, dtype=np.int64)
    label = 0
    for code in range(256):
        bits = [(code >> k) & 1 for k in range(8)]
        transitions = sum(bits[k] != bits[(k + 1) % 8] for k in range(8))
        if transitions <= 2:
            lut[code] = label
            label += 1
    return lut


_LUT = _uniform_lut()
# Neighbour offsets (dy, dx), clockwise from the top-left.
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def lbp_descriptor(img: np.ndarray) -> np.ndarray:
    """Uniform LBP grid histogram of one image (see module docstring).

    Returns
    -------
    ndarray of float32, shape (3 * 5 * 59,)
    """
    a = _as_2d(img).astype(np.int16)
    h, w = a.shape
    center = a[1:-1, 1:-1]
    code = np.zeros(center.shape, dtype=np.int64)
    ink = center > 0
    for k, (dy, dx) in enumerate(_NEIGHBOURS):
        nb = a[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx]
        code |= (nb >= center).astype(np.int64) << k
        ink |= nb > 0
    labels = _LUT[code]
    feats = []
    for rows in np.array_split(np.arange(center.shape[0]), LBP_GRID[0]):
        for cols in np.array_split(np.arange(center.shape[1]), LBP_GRID[1]):
            sel = labels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            m = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            hist = np.bincount(sel[m], minlength=59).astype(np.float64)
            total = hist.sum()
            feats.append(np.sqrt(hist / total) if total else hist)
    return np.concatenate(feats).astype(np.float32)


def describe(images: np.ndarray, kind: str, *, progress: bool = False) -> np.ndarray:
    """Baseline descriptors of preprocessed images.

    Parameters
    ----------
    images : ndarray of uint8, shape (N, 1, H, W) or (N, H, W)
        Preprocessed images (170x242, or already 150x220).
    kind : {"hog", "lbp"}
    progress : bool

    Returns
    -------
    ndarray of float32, shape (N, d)
    """
    from sigver._util import progress_bar
    from sigver.preprocessing import crop_center

    if kind not in BASELINES:
        raise SigverError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}")
    x = np.asarray(images)
    if x.ndim == 4:
        x = x[:, 0]
    if x.ndim != 3:
        raise SigverError(f"expected (N, 1, H, W) or (N, H, W) images, got {x.shape}")
    x = crop_center(x, INPUT_SIZE)
    fn = hog_descriptor if kind == "hog" else lbp_descriptor
    rows = []
    with progress_bar(total=len(x), desc=kind, unit="img", enabled=progress) as bar:
        for img in x:
            rows.append(fn(img))
            bar.update(1)
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(rows)


def baseline_features(cache: Any, kind: str, *, progress: bool = False) -> FeatureSet:
    """Feature set of a :class:`~sigver.cache.SignatureCache` with a baseline descriptor."""
    feats = describe(cache.x, kind, progress=progress)
    return FeatureSet.from_cache(cache, feats, {"model_id": f"baseline-{kind}", "descriptor": kind})

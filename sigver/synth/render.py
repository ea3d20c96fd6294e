"""Rasterise pen trajectories into scanned-looking grayscale images.

Strokes are drawn at 2x resolution as anti-aliased round-capped segments
whose width and darkness follow the pen pressure, then reduced with area
averaging. The "paper and scanner" part (margins, paper brightness and
texture, ruled line, blur, noise) is drawn from its own random stream with
one distribution for every class, so that nothing about the background
tells a genuine signature from a forgery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from sigver.synth.model import PenStroke

__all__ = ["MAX_SIZE", "ScanParams", "render_strokes"]

#: Largest output (height, width); bigger signatures are scaled down to fit
#: (GPDS-like canvases are 952 x 1360).
MAX_SIZE = (900, 1300)
_SS = 2  # supersampling factor
_SHIFT = 3  # cv2 fixed-point bits for sub-pixel coordinates
_LEVELS = 12  # quantisation of width/darkness, so runs of segments share one call


@dataclass(frozen=True)
class ScanParams:
    """Paper and scanner settings for one image (class independent).

    Attributes
    ----------
    margins : tuple of int
        ``(top, bottom, left, right)`` blank border in pixels.
    paper : float
        Mean paper grey level.
    shading : float
        Amplitude of the low-frequency brightness variation.
    grain : float
        Standard deviation of the paper texture noise.
    noise : float
        Standard deviation of scanner noise.
    blur : float
        Gaussian blur sigma of the scanner optics (0 = none).
    ruled : float
        Darkening of a faint ruled line, 0 for none.
    ink_texture : float
        Relative ink density variation.
    """

    margins: tuple[int, int, int, int]
    paper: float
    shading: float
    grain: float
    noise: float
    blur: float
    ruled: float
    ink_texture: float

    @classmethod
    def random(cls, rng: np.random.Generator) -> ScanParams:
        """Draw scan settings; the distribution never depends on the class."""
        margins = tuple(int(v) for v in rng.integers(8, 60, 4))
        return cls(
            margins=margins,  # type: ignore[arg-type]
            paper=float(rng.uniform(236.0, 254.0)),
            shading=float(rng.uniform(0.0, 5.0)),
            grain=float(rng.uniform(0.5, 2.2)),
            noise=float(rng.uniform(0.3, 1.5)),
            blur=float(rng.choice([0.0, rng.uniform(0.3, 0.7)])),
            ruled=float(rng.uniform(6.0, 22.0)) if rng.random() < 0.12 else 0.0,
            ink_texture=float(rng.uniform(0.05, 0.25)),
        )


def _draw(canvas: np.ndarray, pts: np.ndarray, widths: np.ndarray, values: np.ndarray) -> None:
    """Draw a polyline with per-vertex width/value, batching equal runs."""
    wq = np.maximum(1, np.rint(widths)).astype(np.int32)
    vq = (np.rint(values * _LEVELS) * (255.0 / _LEVELS)).astype(np.int32)
    fixed = np.rint(pts * (1 << _SHIFT)).astype(np.int32)
    n = len(fixed)
    # A run ends wherever width or value changes; consecutive runs share their
    # boundary vertex so the line stays continuous.
    change = np.flatnonzero((wq[1:] != wq[:-1]) | (vq[1:] != vq[:-1])) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [n - 1]])
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        seg = fixed[s : e + 1]
        if len(seg) == 1:
            seg = np.vstack([seg, seg])
        cv2.polylines(
            canvas,
            [seg.reshape(-1, 1, 2)],
            False,
            int(vq[s]),
            int(wq[s]),
            cv2.LINE_AA,
            _SHIFT,
        )


def render_strokes(
    strokes: Sequence[PenStroke],
    *,
    size_px: float,
    pen_width: float,
    ink: float,
    scan: ScanParams,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render a realisation into an 8-bit grayscale scan.

    Parameters
    ----------
    strokes : sequence of PenStroke
        Trajectories in cap heights with pressures.
    size_px : float
        Cap height in output pixels.
    pen_width : float
        Nominal pen width in output pixels (at pressure ~0.7).
    ink : float
        Grey level of fully pressed ink.
    scan : ScanParams
        Paper and scanner settings.
    rng : numpy.random.Generator
        Randomness for paper texture and noise (use the scan stream).

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` uint8, dark ink on light paper.
    """
    allpts = np.vstack([s.points for s in strokes]) * size_px
    lo, hi = allpts.min(axis=0), allpts.max(axis=0)
    extent = hi - lo
    top, bottom, left, right = scan.margins
    pad = pen_width * 1.5
    avail_w = MAX_SIZE[1] - left - right - 2 * pad
    avail_h = MAX_SIZE[0] - top - bottom - 2 * pad
    shrink = min(1.0, avail_w / max(extent[0], 1e-6), avail_h / max(extent[1], 1e-6))
    scale = size_px * shrink
    width = int(np.ceil(extent[0] * shrink + left + right + 2 * pad))
    height = int(np.ceil(extent[1] * shrink + top + bottom + 2 * pad))
    origin = np.array([left + pad, top + pad]) - lo * shrink

    mask = np.zeros((height * _SS, width * _SS), np.uint8)
    for s in strokes:
        pts = (s.points * scale + origin) * _SS
        p = s.pressure
        widths = pen_width * shrink**0.5 * _SS * (0.45 + 0.8 * p)
        values = np.clip(0.55 + 0.5 * p, 0.0, 1.0)
        _draw(mask, pts, widths, values)
    cov = cv2.resize(mask, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
    cov *= 1.0 / 255.0

    # Ink texture: the pen deposits unevenly (pores of the paper, ball skips).
    tex = rng.standard_normal((height, width), dtype=np.float32)
    cov *= np.clip(1.0 - scan.ink_texture * np.abs(tex), 0.0, 1.0)

    # Paper: brightness, slow shading, and grain.
    small = rng.standard_normal((3, 4)).astype(np.float32)
    shade = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    paper = scan.paper + scan.shading * shade
    grain = rng.standard_normal((height, width), dtype=np.float32)
    paper += scan.grain * cv2.GaussianBlur(grain, (3, 3), 0.8) * 1.6
    if scan.ruled > 0:
        y = int(rng.integers(height // 3, height))
        paper[max(0, y - 1) : y + 1, :] -= scan.ruled

    img = paper - cov * (paper - ink)
    if scan.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), scan.blur)
    img += scan.noise * rng.standard_normal((height, width), dtype=np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)

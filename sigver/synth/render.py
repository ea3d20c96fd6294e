"""Rasterise pen trajectories into scanned-looking grayscale images.

Strokes are drawn at 2x resolution as anti-aliased round-capped segments
whose width and darkness follow the pen pressure, then reduced with area
averaging. The "paper and scanner" part (margins, paper brightness and
texture, ruled line, blur, noise) is drawn from its own random stream with
one distribution for every class, so that nothing about the background
tells a genuine signature from a forgery.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from sigver.synth.model import PenStroke

__all__ = ["MAX_SIZE", "ScanParams", "ScanParamsV2", "render_strokes", "render_strokes_v2"]

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


def _layout(
    strokes: Sequence[PenStroke],
    size_px: float,
    pen_width: float,
    margins: tuple[int, int, int, int],
) -> tuple[float, float, int, int, np.ndarray]:
    """Fit the signature into :data:`MAX_SIZE`: ``(shrink, scale, width, height, origin)``."""
    allpts = np.vstack([s.points for s in strokes]) * size_px
    lo, hi = allpts.min(axis=0), allpts.max(axis=0)
    extent = hi - lo
    top, bottom, left, right = margins
    pad = pen_width * 1.5
    avail_w = MAX_SIZE[1] - left - right - 2 * pad
    avail_h = MAX_SIZE[0] - top - bottom - 2 * pad
    shrink = min(1.0, avail_w / max(extent[0], 1e-6), avail_h / max(extent[1], 1e-6))
    scale = size_px * shrink
    width = int(np.ceil(extent[0] * shrink + left + right + 2 * pad))
    height = int(np.ceil(extent[1] * shrink + top + bottom + 2 * pad))
    origin = np.array([left + pad, top + pad]) - lo * shrink
    return shrink, scale, width, height, origin


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
    shrink, scale, width, height, origin = _layout(strokes, size_px, pen_width, scan.margins)
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


# ------------------------------------------------------------------------------ v2


@dataclass(frozen=True)
class ScanParamsV2:
    """Acquisition settings of the v2 corpus (class independent, like :class:`ScanParams`).

    Attributes
    ----------
    base : ScanParams
        Margins, paper grey level, shading, grain, noise, blur, ink texture.
    dpi : float
        Scanning resolution; sizes and pen widths are defined at 300 dpi.
    paper_rgb : tuple of float or None
        Coloured paper (RGB); None for grey paper of level ``base.paper``.
    ink_rgb : tuple of float
        Ink colour multipliers (black, blue, ...), applied on coloured paper.
    fibres : int
        Number of faint paper fibres.
    form : str
        ``"none"``, ``"line"`` (one ruled line), ``"ruled"`` (several) or ``"box"``.
    rotation : float
        Page rotation in degrees.
    jpeg_quality : int
        JPEG re-encoding quality, 0 for lossless.
    """

    base: ScanParams
    dpi: float
    paper_rgb: tuple[float, float, float] | None
    ink_rgb: tuple[float, float, float]
    fibres: int
    form: str
    rotation: float
    jpeg_quality: int

    @classmethod
    def random(cls, rng: np.random.Generator) -> ScanParamsV2:
        """Draw acquisition settings; the distribution never depends on the class."""
        base = ScanParams.random(rng)
        dpi = float(np.exp(rng.uniform(np.log(150.0), np.log(600.0))))
        tone = rng.random()
        paper_rgb = None
        if tone < 0.2:  # grey or recycled paper
            base = _replace(base, paper=float(rng.uniform(175.0, 235.0)))
        elif tone < 0.4:  # coloured paper / form
            hue = rng.uniform(0.0, 1.0, 3)
            paper_rgb = tuple(float(v) for v in 255.0 - rng.uniform(5.0, 70.0) * hue)
        ink_rgb = (
            (1.0, 1.0, 1.0)
            if rng.random() < 0.55
            else tuple(float(v) for v in (rng.uniform(1.3, 2.2), rng.uniform(1.0, 1.4), 0.6))
        )
        form = str(rng.choice(["none", "line", "ruled", "box"], p=[0.6, 0.15, 0.1, 0.15]))
        if form != "none":
            # Pre-printed form lines are lighter than ink (they would otherwise
            # take the ink's place in the preprocessing's Otsu threshold).
            base = _replace(base, ruled=float(rng.uniform(12.0, 50.0)))
        return cls(
            base=base,
            dpi=dpi,
            paper_rgb=paper_rgb,  # type: ignore[arg-type]
            ink_rgb=ink_rgb,  # type: ignore[arg-type]
            fibres=int(rng.poisson(3.0)) if rng.random() < 0.4 else 0,
            form=form,
            rotation=float(np.clip(rng.normal(0.0, 1.5), -4.0, 4.0)),
            jpeg_quality=int(rng.integers(35, 92)) if rng.random() < 0.35 else 0,
        )


def _replace(scan: ScanParams, **changes: float) -> ScanParams:
    return dataclasses.replace(scan, **changes)


#: Pen types: (width factor, pressure -> width coupling, pressure -> darkness coupling).
_PENS = {
    "ballpoint": (1.0, 0.8, 0.5),
    "gel": (1.15, 0.6, 0.2),
    "felt": (1.7, 0.25, 0.1),
    "fountain": (1.3, 0.5, 0.3),
    "pencil": (0.9, 0.6, 0.9),
}


def _form_lines(paper: np.ndarray, scan: ScanParamsV2, rng: np.random.Generator) -> None:
    height, width = paper.shape[:2]
    dark = scan.base.ruled
    thick = max(1, int(round(scan.dpi / 300.0)))
    if scan.form == "line":
        y = int(rng.integers(height // 2, height))
        paper[max(0, y - thick) : y + 1] -= dark
    elif scan.form == "ruled":
        gap = int(rng.integers(max(8, height // 5), max(9, height // 2)))
        for y in range(int(rng.integers(0, gap)), height, gap):
            paper[max(0, y - thick) : y + 1] -= dark
    elif scan.form == "box":
        x0, y0 = (int(v) for v in rng.integers(0, 6, 2))
        x1 = width - 1 - int(rng.integers(0, 6))
        y1 = height - 1 - int(rng.integers(0, 6))
        for ys, xs in (
            (slice(y0, y0 + thick), slice(x0, x1)),
            (slice(y1 - thick + 1, y1 + 1), slice(x0, x1)),
            (slice(y0, y1), slice(x0, x0 + thick)),
            (slice(y0, y1), slice(x1 - thick + 1, x1 + 1)),
        ):
            paper[ys, xs] -= dark


def render_strokes_v2(
    strokes: Sequence[PenStroke],
    *,
    size_px: float,
    pen_width: float,
    ink: float,
    pen: str,
    nib_angle: float,
    scan: ScanParamsV2,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render a realisation with v2 acquisition diversity (see :class:`ScanParamsV2`).

    Parameters are those of :func:`render_strokes`, plus the pen type (a key of
    :data:`sigver.synth.model.PEN_TYPES`) and a fountain nib's angle; sizes are
    at 300 dpi and scaled by ``scan.dpi``.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` uint8 grayscale image, dark ink on light paper.
    """
    base = scan.base
    res = scan.dpi / 300.0
    width_factor, p_width, p_dark = _PENS[pen]
    pen_px = pen_width * width_factor * res
    size = size_px * res
    shrink, scale, width, height, origin = _layout(strokes, size, pen_px, base.margins)
    mask = np.zeros((height * _SS, width * _SS), np.uint8)
    for s in strokes:
        pts = (s.points * scale + origin) * _SS
        p = s.pressure
        widths = pen_px * shrink**0.5 * _SS * (1.0 - 0.55 * p_width + p_width * p)
        if pen == "fountain" and len(pts) > 1:
            # A broad nib: thin along its edge, broad across it.
            d = np.gradient(pts, axis=0)
            theta = np.arctan2(d[:, 1], d[:, 0])
            widths = widths * (0.3 + 0.9 * np.abs(np.sin(theta - nib_angle)))
        values = np.clip(1.0 - p_dark * 0.5 + p_dark * 0.5 * p, 0.0, 1.0)
        _draw(mask, pts, widths, values)
    cov = cv2.resize(mask, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
    cov *= 1.0 / 255.0

    tex = rng.standard_normal((height, width), dtype=np.float32)
    texture = base.ink_texture * (2.5 if pen == "pencil" else 1.0)
    cov *= np.clip(1.0 - texture * np.abs(tex), 0.0, 1.0)
    if pen == "ballpoint":
        # Ball skips: short stretches where the ink thins out.
        skips = cv2.GaussianBlur(rng.standard_normal((height, width), dtype=np.float32), (0, 0), 3)
        cov *= np.clip(1.8 + 8.0 * skips, 0.55, 1.0)
    # Pencil is lighter, but every pen stays clearly darker than the paper.
    ink_level = float(min(ink * (1.6 if pen == "pencil" else 1.0), base.paper - 80.0))

    small = rng.standard_normal((3, 4)).astype(np.float32)
    shade = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    paper = base.paper + base.shading * shade
    grain = rng.standard_normal((height, width), dtype=np.float32)
    paper += base.grain * cv2.GaussianBlur(grain, (3, 3), 0.8) * 1.6
    for _ in range(scan.fibres):
        a = rng.uniform(0, 1, 2) * (width, height)
        b = a + rng.normal(0.0, 25.0 * res, 2)
        line = np.zeros((height, width), np.uint8)
        cv2.line(line, tuple(int(v) for v in a), tuple(int(v) for v in b), 255, 1, cv2.LINE_AA)
        paper -= line.astype(np.float32) * (rng.uniform(4.0, 14.0) / 255.0)
    _form_lines(paper, scan, rng)

    if scan.paper_rgb is None:
        img = paper - cov * (paper - ink_level)
    else:
        tint = np.asarray(scan.paper_rgb, np.float32) / 255.0
        inks = np.clip(ink_level * np.asarray(scan.ink_rgb, np.float32), 0.0, 255.0)
        luma = np.array([0.299, 0.587, 0.114], np.float32)
        limit = float(base.paper * (luma @ tint)) - 80.0
        if float(luma @ inks) > limit:  # light blue ink on dark paper: darken the ink
            inks *= max(limit, 0.0) / float(luma @ inks)
        rgb = paper[..., None] * tint
        rgb = rgb - cov[..., None] * (rgb - inks)
        img = cv2.cvtColor(np.clip(rgb, 0, 255).astype(np.float32), cv2.COLOR_RGB2GRAY)
    if abs(scan.rotation) > 0.05:
        m = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), scan.rotation, 1.0)
        img = cv2.warpAffine(
            img, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    # Optics blur in output pixels grows with resolution.
    blur = base.blur * res if base.blur > 0 else 0.0
    if blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    img += base.noise * rng.standard_normal((height, width), dtype=np.float32)
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if scan.jpeg_quality:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, scan.jpeg_quality])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return out

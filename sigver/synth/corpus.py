"""Deterministic corpus generation in the GPDS layout, and preview sheets.

Every random stream is derived from ``(seed, writer, ...)`` through
:class:`numpy.random.SeedSequence` spawn keys, never from shared state, so a
corpus is byte-identical whatever the number of worker processes or the
order in which they finish.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from sigver._util import write_png
from sigver.errors import SigverError
from sigver.synth.model import Forger, SynthWriter, forgery_strokes, genuine_strokes
from sigver.synth.render import ScanParams, render_strokes

__all__ = [
    "FORGERIES_PER_FORGER",
    "CorpusInfo",
    "SynthError",
    "generate_corpus",
    "generate_writer",
    "make_writer",
    "preview_sheet",
    "render_forgery",
    "render_genuine",
    "sample_rngs",
    "save_preview",
]

logger = logging.getLogger(__name__)

#: Each forger imitates a writer this many times (forgeries 1-3 by forger 1, ...).
FORGERIES_PER_FORGER = 3
_GENUINE, _FORGERY, _FORGER = 0, 1, 2


class SynthError(SigverError, ValueError):
    """Invalid arguments for the synthetic generator."""


def _seq(seed: int, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=key)


def _check_seed(seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise SynthError(f"seed must be a non-negative integer, got {seed!r}")


def sample_rngs(
    seed: int, writer: int, kind: str, index: int
) -> tuple[np.random.Generator, np.random.Generator]:
    """The (shape, scan) random streams of one image.

    Parameters
    ----------
    seed : int
        Corpus seed (>= 0).
    writer : int
        Zero-based writer index.
    kind : {"genuine", "forgery"}
        Class of the image.
    index : int
        Zero-based sample index within the writer and class.

    Returns
    -------
    tuple of numpy.random.Generator
        Independent streams for the trajectory and for paper/scanner.
    """
    cls = {"genuine": _GENUINE, "forgery": _FORGERY}[kind]
    shape_seq, scan_seq = _seq(seed, writer, cls, index).spawn(2)
    return np.random.default_rng(shape_seq), np.random.default_rng(scan_seq)


def make_writer(seed: int, writer: int) -> SynthWriter:
    """The writer number ``writer`` of the corpus with seed ``seed``.

    Parameters
    ----------
    seed : int
        Corpus seed (>= 0).
    writer : int
        Zero-based writer index (>= 0).

    Returns
    -------
    SynthWriter
    """
    _check_seed(seed)
    if writer < 0:
        raise SynthError(f"writer index must be >= 0, got {writer}")
    return SynthWriter.random(np.random.default_rng(_seq(seed, writer)))


def render_genuine(
    writer: SynthWriter,
    rng: np.random.Generator,
    scan_rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Render one genuine signature of ``writer``.

    Parameters
    ----------
    writer : SynthWriter
        The writer.
    rng : numpy.random.Generator
        Randomness of the execution.
    scan_rng : numpy.random.Generator, optional
        Randomness of paper and scanner; ``rng`` when omitted.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` uint8 grayscale image, dark ink on light paper.
    """
    strokes = genuine_strokes(writer, rng)
    scan_rng = rng if scan_rng is None else scan_rng
    return render_strokes(
        strokes,
        size_px=writer.size_px,
        pen_width=writer.pen_width,
        ink=writer.ink,
        scan=ScanParams.random(scan_rng),
        rng=scan_rng,
    )


def render_forgery(
    writer: SynthWriter,
    rng: np.random.Generator,
    scan_rng: np.random.Generator | None = None,
    forger: Forger | None = None,
) -> np.ndarray:
    """Render one skilled forgery of ``writer``.

    Parameters
    ----------
    writer : SynthWriter
        The target writer.
    rng : numpy.random.Generator
        Randomness of the forgery.
    scan_rng : numpy.random.Generator, optional
        Randomness of paper and scanner; ``rng`` when omitted.
    forger : Forger, optional
        Who forges; drawn from ``rng`` when omitted.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` uint8 grayscale image.
    """
    if forger is None:
        forger = Forger.random(rng)
    strokes = forgery_strokes(writer, rng, forger)
    scan_rng = rng if scan_rng is None else scan_rng
    return render_strokes(
        strokes,
        size_px=writer.size_px,
        pen_width=writer.pen_width * forger.pen_factor,
        ink=writer.ink * forger.ink_factor,
        scan=ScanParams.random(scan_rng),
        rng=scan_rng,
    )


def _forger(seed: int, writer: int, forgery: int) -> Forger:
    seq = _seq(seed, writer, _FORGER, forgery // FORGERIES_PER_FORGER)
    return Forger.random(np.random.default_rng(seq))


def generate_writer(
    seed: int, writer: int, n_genuine: int, n_forgeries: int
) -> tuple[SynthWriter, list[np.ndarray], list[np.ndarray]]:
    """All images of one writer, in memory, exactly as :func:`generate_corpus` writes them.

    Parameters
    ----------
    seed : int
        Corpus seed (>= 0).
    writer : int
        Zero-based writer index.
    n_genuine, n_forgeries : int
        Number of genuine signatures and skilled forgeries.

    Returns
    -------
    tuple
        ``(writer, genuine_images, forgery_images)``.
    """
    w = make_writer(seed, writer)
    genuine = [
        render_genuine(w, *sample_rngs(seed, writer, "genuine", i)) for i in range(n_genuine)
    ]
    forgeries = [
        render_forgery(w, *sample_rngs(seed, writer, "forgery", i), forger=_forger(seed, writer, i))
        for i in range(n_forgeries)
    ]
    return w, genuine, forgeries


@dataclass(frozen=True)
class CorpusInfo:
    """What :func:`generate_corpus` wrote.

    Attributes
    ----------
    root : pathlib.Path
        Output folder.
    n_writers, n_genuine, n_forgeries : int
        Corpus dimensions.
    seed : int
        Corpus seed.
    files : list of pathlib.Path
        Every image written, writer by writer, genuine first.
    """

    root: Path
    n_writers: int
    n_genuine: int
    n_forgeries: int
    seed: int
    files: list[Path] = field(repr=False)


def _writer_id(writer: int, n_writers: int) -> str:
    return f"{writer + 1:0{max(3, len(str(n_writers)))}d}"


def _write_writer(
    root: str, seed: int, writer: int, n_writers: int, n_genuine: int, n_forgeries: int
) -> list[str]:
    uid = _writer_id(writer, n_writers)
    folder = Path(root) / uid
    folder.mkdir(parents=True, exist_ok=True)
    _, genuine, forgeries = generate_writer(seed, writer, n_genuine, n_forgeries)
    width = max(2, len(str(max(n_genuine, n_forgeries))))
    written = []
    for prefix, images in (("c", genuine), ("cf", forgeries)):
        for i, img in enumerate(images):
            path = folder / f"{prefix}-{uid}-{i + 1:0{width}d}.png"
            write_png(path, img)
            written.append(str(path))
    return written


def _check_counts(n_writers: int, n_genuine: int, n_forgeries: int, n_jobs: int) -> None:
    for name, value, low in (
        ("n_writers", n_writers, 1),
        ("n_genuine", n_genuine, 1),
        ("n_forgeries", n_forgeries, 0),
        ("n_jobs", n_jobs, 1),
    ):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise SynthError(f"{name} must be an integer >= {low}, got {value!r}")


def generate_corpus(
    out_dir: str | Path,
    n_writers: int,
    n_genuine: int = 24,
    n_forgeries: int = 30,
    seed: int = 0,
    n_jobs: int = 2,
    *,
    progress: bool | None = None,
) -> CorpusInfo:
    """Write a synthetic corpus in the GPDS layout.

    Files are ``out_dir/NNN/c-NNN-MM.png`` (genuine) and
    ``out_dir/NNN/cf-NNN-MM.png`` (skilled forgeries), 8-bit grayscale PNG,
    writers numbered from 001. Existing files with the same names are
    replaced (atomically); nothing else in ``out_dir`` is touched.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        Output folder (created if needed).
    n_writers : int
        Number of writers (>= 1).
    n_genuine : int
        Genuine signatures per writer (>= 1).
    n_forgeries : int
        Skilled forgeries per writer (>= 0).
    seed : int
        Corpus seed (>= 0). Same seed and sizes give byte-identical files.
    n_jobs : int
        Worker processes (one task per writer); does not change the output.
    progress : bool, optional
        Report progress: a tqdm bar on a terminal, periodic log lines otherwise.

    Returns
    -------
    CorpusInfo
    """
    from joblib import Parallel, delayed

    from sigver._util import progress_bar

    _check_seed(seed)
    _check_counts(n_writers, n_genuine, n_forgeries, n_jobs)
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise SynthError(f"{root} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    if progress is None:
        progress = sys.stderr.isatty()
    logger.info(
        "generating %d writers x (%d genuine + %d forgeries), seed %d, %d job(s) into %s",
        n_writers,
        n_genuine,
        n_forgeries,
        seed,
        n_jobs,
        root,
    )
    tasks = (
        delayed(_write_writer)(str(root), seed, w, n_writers, n_genuine, n_forgeries)
        for w in range(n_writers)
    )
    results = Parallel(n_jobs=n_jobs, return_as="generator")(tasks)
    files: list[Path] = []
    with progress_bar(total=n_writers, unit="writer", desc="synth", enabled=bool(progress)) as bar:
        for paths in results:
            files.extend(Path(p) for p in paths)
            bar.update(1)
    return CorpusInfo(root, n_writers, n_genuine, n_forgeries, seed, files)


def _fit(img: np.ndarray, height: int, width: int) -> np.ndarray:
    scale = min(height / img.shape[0], width / img.shape[1])
    h, w = max(1, round(img.shape[0] * scale)), max(1, round(img.shape[1] * scale))
    small = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    cell = np.full((height, width), 255, np.uint8)
    y, x = (height - h) // 2, (width - w) // 2
    cell[y : y + h, x : x + w] = small
    return cell


def preview_sheet(
    seed: int,
    n_writers: int = 6,
    n_genuine: int = 3,
    n_forgeries: int = 3,
    *,
    cell: tuple[int, int] = (120, 280),
    first_writer: int = 0,
) -> np.ndarray:
    """A labelled contact sheet: one row per writer, genuine then forgeries.

    The images are the same ones :func:`generate_corpus` writes for that seed.

    Parameters
    ----------
    seed : int
        Corpus seed.
    n_writers, n_genuine, n_forgeries : int
        Rows, genuine columns and forgery columns.
    cell : tuple of int
        ``(height, width)`` of one thumbnail.
    first_writer : int
        Zero-based index of the first writer shown.

    Returns
    -------
    numpy.ndarray
        uint8 grayscale sheet.
    """
    _check_seed(seed)
    _check_counts(n_writers, max(n_genuine, 1), n_forgeries, 1)
    ch, cw = cell
    gap, label_h, head_h, sep = 6, 18, 24, 14
    cols = n_genuine + n_forgeries
    width = cols * (cw + gap) + sep + gap
    height = head_h + n_writers * (label_h + ch + gap)
    sheet = np.full((height, width), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    forg_x = n_genuine * (cw + gap) + sep + gap
    cv2.putText(sheet, "genuine", (gap, 17), font, 0.55, 0, 1, cv2.LINE_AA)
    if n_forgeries:
        cv2.putText(sheet, "skilled forgeries", (forg_x, 17), font, 0.55, 0, 1, cv2.LINE_AA)
        sx = forg_x - sep // 2 - gap // 2
        cv2.line(sheet, (sx, 0), (sx, height - 1), 150, 1)
    for r in range(n_writers):
        idx = first_writer + r
        writer, genuine, forgeries = generate_writer(seed, idx, n_genuine, n_forgeries)
        y = head_h + r * (label_h + ch + gap)
        label = f"writer {idx + 1:03d}: '{writer.text}' ({writer.font})"
        cv2.putText(sheet, label, (gap, y + 13), font, 0.45, 60, 1, cv2.LINE_AA)
        for c, img in enumerate(genuine + forgeries):
            x = gap + c * (cw + gap) + (sep if c >= n_genuine else 0)
            sheet[y + label_h : y + label_h + ch, x : x + cw] = _fit(img, ch, cw)
            cv2.rectangle(sheet, (x, y + label_h), (x + cw - 1, y + label_h + ch - 1), 200, 1)
    return sheet


def save_preview(path: str | Path, sheet: np.ndarray, *, levels: int | None = 64) -> Path:
    """Write a preview sheet as PNG (atomically).

    Parameters
    ----------
    path : str or pathlib.Path
        Output ``.png`` file.
    sheet : numpy.ndarray
        uint8 grayscale sheet from :func:`preview_sheet`.
    levels : int or None, default 64
        Number of grey levels kept. The paper and scanner noise is nearly
        incompressible; 64 levels look the same and keep the committed docs
        figure small. ``None`` writes the sheet unchanged.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise SynthError(f"preview must be a .png file, got {path}")
    if levels is not None:
        if not 2 <= levels <= 256:
            raise SynthError(f"levels must be in [2, 256], got {levels}")
        q = 255.0 / (levels - 1)
        sheet = np.clip(np.rint(np.rint(sheet / q) * q), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Maximum compression: the sheet is meant to be committed and shown in docs.
    write_png(path, sheet, compression=9)
    return path

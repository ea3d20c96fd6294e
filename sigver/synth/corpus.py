"""Deterministic corpus generation in the GPDS layout, and preview sheets.

Every random stream is derived from ``(seed, writer, ...)`` through
:class:`numpy.random.SeedSequence` spawn keys, never from shared state, so a
corpus is byte-identical whatever the number of worker processes or the
order in which they finish.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sigver._util import atomic_write, write_png
from sigver.errors import SigverError
from sigver.synth.model import PEN_TYPES, Forger, SynthWriter, forgery_strokes, genuine_strokes
from sigver.synth.render import ScanParams, ScanParamsV2, render_strokes, render_strokes_v2
from sigver.synth.scripts import SCRIPTS, SPLITS

__all__ = [
    "FORGERIES_PER_FORGER",
    "VERSIONS",
    "CorpusInfo",
    "SynthError",
    "check_options",
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
_GENUINE, _FORGERY, _FORGER, _WRITER_V2 = 0, 1, 2, 3
#: Generator versions: 1 is the Latin-only corpus the v1 model was trained on
#: (kept byte-identical), 2 adds scripts and acquisition diversity, 3 is 2 with
#: forgers who write with their own pen (same writers and genuine images as 2).
VERSIONS: tuple[int, ...] = (1, 2, 3)


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


def check_options(
    version: int, scripts: Sequence[str] | None, split: str
) -> tuple[int, tuple[str, ...]]:
    """Validate generator options; returns ``(version, scripts)``.

    ``scripts`` implies version 2; version 2 without ``scripts`` uses all of
    :data:`sigver.synth.scripts.SCRIPTS`.
    """
    if scripts is not None and version == 1:
        version = 2
    if version not in VERSIONS:
        raise SynthError(f"version must be one of {VERSIONS}, got {version!r}")
    if split not in SPLITS:
        raise SynthError(f"split must be one of {SPLITS}, got {split!r}")
    if version == 1:
        if split != "all":
            raise SynthError("split needs the v2 generator (version 2 or scripts)")
        return 1, ("latin",)
    chosen = tuple(SCRIPTS) if scripts is None else tuple(scripts)
    unknown = [s for s in chosen if s not in SCRIPTS]
    if unknown or not chosen:
        raise SynthError(f"unknown script(s) {unknown}; available: {', '.join(SCRIPTS)}")
    return version, chosen


def make_writer(
    seed: int,
    writer: int,
    *,
    version: int = 1,
    scripts: Sequence[str] | None = None,
    split: str = "all",
) -> SynthWriter:
    """The writer number ``writer`` of the corpus with seed ``seed``.

    Parameters
    ----------
    seed : int
        Corpus seed (>= 0).
    writer : int
        Zero-based writer index (>= 0).
    version : {1, 2, 3}
        Generator version; 1 (default) is the v1 corpus, unchanged; 3 is 2
        with forgers who write with their own pen, ink and pressure.
    scripts : sequence of str, optional
        v2: writing systems, assigned round-robin (writer ``i`` writes
        ``scripts[i % len(scripts)]``); implies version 2. Default: all.
    split : {"all", "train", "holdout"}
        v2: which styles of each script may be drawn (the hold-out style is
        excluded from ``train`` and the only one in ``holdout``).

    Returns
    -------
    SynthWriter
    """
    _check_seed(seed)
    if writer < 0:
        raise SynthError(f"writer index must be >= 0, got {writer}")
    version, chosen = check_options(version, scripts, split)
    if version == 1:
        return SynthWriter.random(np.random.default_rng(_seq(seed, writer)))
    rng = np.random.default_rng(_seq(seed, writer, _WRITER_V2))
    drawn = SynthWriter.random_v2(rng, chosen[writer % len(chosen)], split)
    return drawn if version == 2 else replace(drawn, version=version)


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
    if writer.version >= 2:
        return render_strokes_v2(
            strokes,
            size_px=writer.size_px,
            pen_width=writer.pen_width,
            ink=writer.ink,
            pen=writer.pen,
            nib_angle=writer.nib_angle,
            scan=ScanParamsV2.random(scan_rng),
            rng=scan_rng,
        )
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
        forger = Forger.random(rng, own_pen=writer.version >= 3)
    strokes = forgery_strokes(writer, rng, forger)
    scan_rng = rng if scan_rng is None else scan_rng
    if writer.version == 1:
        return render_strokes(
            strokes,
            size_px=writer.size_px,
            pen_width=writer.pen_width * forger.pen_factor,
            ink=writer.ink * forger.ink_factor,
            scan=ScanParams.random(scan_rng),
            rng=scan_rng,
        )
    if forger.own_pen is not None:
        own = forger.own_pen
        pen, pen_width, ink, nib_angle = own.pen, own.width, own.ink, own.nib_angle
    else:
        # The forger often uses a pen of another type than the writer's.
        pens = list(PEN_TYPES)
        pen = writer.pen
        if rng.random() < 0.5:
            pen = str(pens[int(rng.choice(len(pens), p=list(PEN_TYPES.values())))])
        pen_width = writer.pen_width * forger.pen_factor
        ink = writer.ink * forger.ink_factor
        nib_angle = writer.nib_angle + float(rng.normal(0.0, 0.3))
    return render_strokes_v2(
        strokes,
        size_px=writer.size_px,
        pen_width=pen_width,
        ink=ink,
        pen=pen,
        nib_angle=nib_angle,
        scan=ScanParamsV2.random(scan_rng),
        rng=scan_rng,
    )


def _forger(seed: int, writer: int, forgery: int, version: int) -> Forger:
    seq = _seq(seed, writer, _FORGER, forgery // FORGERIES_PER_FORGER)
    return Forger.random(np.random.default_rng(seq), own_pen=version >= 3)


def generate_writer(
    seed: int,
    writer: int,
    n_genuine: int,
    n_forgeries: int,
    *,
    version: int = 1,
    scripts: Sequence[str] | None = None,
    split: str = "all",
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
    version, scripts, split
        Generator options, see :func:`make_writer`.

    Returns
    -------
    tuple
        ``(writer, genuine_images, forgery_images)``.
    """
    w = make_writer(seed, writer, version=version, scripts=scripts, split=split)
    genuine = [
        render_genuine(w, *sample_rngs(seed, writer, "genuine", i)) for i in range(n_genuine)
    ]
    forgeries = [
        render_forgery(
            w, *sample_rngs(seed, writer, "forgery", i), forger=_forger(seed, writer, i, w.version)
        )
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
    version : int
        Generator version.
    scripts : tuple of str
        Writing systems (v2).
    split : str
        Style split (v2).
    writers : list of dict
        v2: one row per writer (``user``, ``script``, ``style``, ``form``, ``pen``),
        also written to ``writers.csv``.
    """

    root: Path
    n_writers: int
    n_genuine: int
    n_forgeries: int
    seed: int
    files: list[Path] = field(repr=False)
    version: int = 1
    scripts: tuple[str, ...] = ("latin",)
    split: str = "all"
    writers: list[dict[str, str]] = field(default_factory=list, repr=False)


def _writer_id(writer: int, n_writers: int) -> str:
    return f"{writer + 1:0{max(3, len(str(n_writers)))}d}"


def _write_writer(
    root: str,
    seed: int,
    writer: int,
    n_writers: int,
    n_genuine: int,
    n_forgeries: int,
    options: dict[str, Any],
) -> tuple[list[str], dict[str, str]]:
    uid = _writer_id(writer, n_writers)
    folder = Path(root) / uid
    folder.mkdir(parents=True, exist_ok=True)
    w, genuine, forgeries = generate_writer(seed, writer, n_genuine, n_forgeries, **options)
    width = max(2, len(str(max(n_genuine, n_forgeries))))
    written = []
    for prefix, images in (("c", genuine), ("cf", forgeries)):
        for i, img in enumerate(images):
            path = folder / f"{prefix}-{uid}-{i + 1:0{width}d}.png"
            write_png(path, img)
            written.append(str(path))
    row = {"user": uid, "script": w.script, "style": w.style or w.font, "form": w.form}
    return written, row | {"pen": w.pen}


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
    version: int = 1,
    scripts: Sequence[str] | None = None,
    split: str = "all",
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
    version, scripts, split
        Generator options, see :func:`make_writer`. The defaults write the v1
        corpus, byte-identical to earlier releases; v2 corpora also get a
        ``writers.csv`` (user, script, style, form, pen) in ``out_dir``.

    Returns
    -------
    CorpusInfo
    """
    from joblib import Parallel, delayed

    from sigver._util import progress_bar

    _check_seed(seed)
    _check_counts(n_writers, n_genuine, n_forgeries, n_jobs)
    version, chosen = check_options(version, scripts, split)
    options: dict[str, Any] = {}
    if version >= 2:
        options = {"version": version, "scripts": chosen, "split": split}
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
        delayed(_write_writer)(str(root), seed, w, n_writers, n_genuine, n_forgeries, options)
        for w in range(n_writers)
    )
    results = Parallel(n_jobs=n_jobs, return_as="generator")(tasks)
    files: list[Path] = []
    rows: list[dict[str, str]] = []
    with progress_bar(total=n_writers, unit="writer", desc="synth", enabled=bool(progress)) as bar:
        for paths, row in results:
            files.extend(Path(p) for p in paths)
            rows.append(row)
            bar.update(1)
    if version >= 2:
        lines = ["user,script,style,form,pen"]
        lines += [",".join(r[k] for k in ("user", "script", "style", "form", "pen")) for r in rows]
        atomic_write(root / "writers.csv", ("\n".join(lines) + "\n").encode())
    return CorpusInfo(
        root, n_writers, n_genuine, n_forgeries, seed, files, version, chosen, split, rows
    )


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
    version: int = 1,
    scripts: Sequence[str] | None = None,
    split: str = "all",
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
    version, scripts, split
        Generator options, see :func:`make_writer`.

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
        writer, genuine, forgeries = generate_writer(
            seed, idx, n_genuine, n_forgeries, version=version, scripts=scripts, split=split
        )
        y = head_h + r * (label_h + ch + gap)
        if writer.version == 1:
            label = f"writer {idx + 1:03d}: '{writer.text}' ({writer.font})"
        else:
            # cv2 only draws ASCII: name the script and style, not the text.
            label = f"writer {idx + 1:03d}: {writer.script}/{writer.style}, {writer.pen} pen"
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

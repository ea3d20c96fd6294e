"""Writing systems of the v2 generator: glyph sets, names and hold-out styles.

Hershey fonts cover Latin, Cyrillic, Greek and a set of CJK characters (the
``japanese`` face); Devanagari, Bengali and Arabic have no single-stroke
Hershey face, so their glyphs are generated procedurally from the features
that make these scripts look the way they do:

* Devanagari / Bengali: bodies that hang from a head line (*shirorekha*,
  drawn across each word by the planner), vertical stems on the right,
  occasional vowel signs above the head line; Bengali bodies are rounder
  and many carry a small hook at the top left.
* Arabic: low bodies that start and end on the base line (so consecutive
  letters connect), teeth, bowls below the line, tall strokes (alif, lam),
  and 1-3 dots above or below, added after the word as people do; the line
  runs right to left.
* CJK-like: dense multi-stroke characters in square blocks.
* Initials / flourish: monograms with a forced paraph, or a flourish only.

Every script has several *styles* (a font, a procedural hand, a character
subset); one style per script is reserved for hold-out corpora, so a model
can be tested on writers *and* styles it never saw (:func:`styles_for`).
Procedural glyph sets are pure functions of ``(script, style)`` (seeded by a
CRC of the name), so they never depend on the corpus seed.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

import numpy as np

from sigver.synth import geometry as geo
from sigver.synth.glyphs import Glyph, load_font
from sigver.synth.lexicon import random_name, signature_text

__all__ = [
    "SCRIPTS",
    "SPLITS",
    "ScriptSpec",
    "script_font",
    "script_text",
    "styles_for",
]

_STEP = 0.02
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class ScriptSpec:
    """How writers of one script sign.

    Attributes
    ----------
    name : str
        Script name (a key of :data:`SCRIPTS`).
    styles : tuple of str
        Font / hand / character-set names; the last one is the hold-out style.
    cursive_prob : float
        Probability that a writer joins consecutive letters.
    headline : bool
        Draw a head line across every word (Devanagari, Bengali).
    rtl : bool
        Right-to-left line (Arabic).
    """

    name: str
    styles: tuple[str, ...]
    cursive_prob: float = 0.85
    headline: bool = False
    rtl: bool = False

    @property
    def holdout_style(self) -> str:
        """The style reserved for hold-out corpora."""
        return self.styles[-1]


#: The scripts of the v2 corpus.
SCRIPTS: Mapping[str, ScriptSpec] = MappingProxyType(
    {
        "latin": ScriptSpec("latin", ("scripts", "futural", "rowmans", "cursive")),
        "cyrillic": ScriptSpec("cyrillic", ("cyrilc_1", "cyrillic"), cursive_prob=0.7),
        "greek": ScriptSpec("greek", ("greeks", "greek"), cursive_prob=0.7),
        "devanagari": ScriptSpec(
            "devanagari", ("hand0", "hand1", "hand2", "hand3"), cursive_prob=0.0, headline=True
        ),
        "bengali": ScriptSpec(
            "bengali", ("hand0", "hand1", "hand2", "hand3"), cursive_prob=0.0, headline=True
        ),
        "arabic": ScriptSpec(
            "arabic", ("hand0", "hand1", "hand2", "hand3"), cursive_prob=1.0, rtl=True
        ),
        "cjk": ScriptSpec("cjk", ("set_a", "set_b"), cursive_prob=0.25),
        "initials": ScriptSpec("initials", ("monogram", "flourish", "monogram_print")),
    }
)

#: ``all`` draws any style, ``train`` all but the hold-out style, ``holdout`` only it.
SPLITS: tuple[str, ...] = ("all", "train", "holdout")


def styles_for(script: str, split: str = "all") -> tuple[str, ...]:
    """Styles a writer of ``script`` may use in corpus split ``split``.

    Parameters
    ----------
    script : str
        A key of :data:`SCRIPTS`.
    split : {"all", "train", "holdout"}
        Which styles.

    Returns
    -------
    tuple of str
    """
    spec = SCRIPTS[script]
    if split == "all":
        return spec.styles
    if split == "train":
        return spec.styles[:-1]
    if split == "holdout":
        return (spec.holdout_style,)
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def _rng(*names: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(names).encode()))


def _curve(nodes: list[tuple[float, float]] | np.ndarray) -> np.ndarray:
    return geo.resample(geo.catmull_rom(np.asarray(nodes, dtype=np.float64), _STEP / 2), _STEP)


def _dot(x: float, y: float, rng: np.random.Generator) -> np.ndarray:
    length = rng.uniform(0.03, 0.08)
    angle = rng.uniform(-0.6, 0.6)
    return np.array([[x, y], [x + length * np.cos(angle), y + length * np.sin(angle)]])


def _indic_glyph(rng: np.random.Generator, style: dict[str, float], bengali: bool) -> Glyph:
    w = rng.uniform(0.55, 0.95) * style["width"]
    n = int(rng.integers(4, 7))
    start = (rng.uniform(0.1, 0.5) * w, -1.0)
    nodes = [start]
    for k in range(n):
        y = -0.85 + 0.8 * (k + 1) / n * rng.uniform(0.6, 1.1)
        nodes.append((rng.uniform(0.05, 0.85) * w, min(y, 0.0)))
    if bengali and rng.random() < style["round"]:
        nodes.append((nodes[1][0] + rng.uniform(-0.05, 0.05), nodes[1][1]))  # closed bowl
    strokes = [_curve(nodes)]
    if bengali and rng.random() < 0.45:  # the small hook at the top left
        x0 = rng.uniform(0.0, 0.2) * w
        strokes.append(_curve([(x0, -1.0), (x0 + 0.1, -0.88), (x0 + 0.2, -1.0)]))
    if rng.random() < style["stem"]:
        x = w * rng.uniform(0.8, 0.95)
        strokes.append(np.column_stack([np.full(40, x), np.linspace(-1.0, 0.05, 40)]))
    if rng.random() < 0.15:  # vowel sign above the head line
        x0 = rng.uniform(0.1, 0.6) * w
        strokes.append(_curve([(x0, -1.0), (x0 + 0.15, -1.35), (x0 + 0.35, -1.2)]))
    return Glyph(strokes=tuple(strokes), advance=float(w + 0.05))


def _arabic_glyph(rng: np.random.Generator, style: dict[str, float]) -> Glyph:
    w = rng.uniform(0.3, 0.85) * style["width"]
    kind = rng.choice(["teeth", "bowl", "tall", "loop"], p=[0.35, 0.25, 0.25, 0.15])
    if kind == "teeth":
        k = int(rng.integers(1, 4))
        nodes = [(0.0, 0.0)]
        for i in range(k):
            x = w * (i + 0.5) / k
            nodes += [(x, -rng.uniform(0.2, 0.4) * style["height"]), (x + 0.05, 0.0)]
        nodes.append((w, 0.0))
    elif kind == "bowl":
        depth = rng.uniform(0.25, 0.6)
        nodes = [(0.0, 0.0), (0.2 * w, -0.25), (0.5 * w, depth), (0.9 * w, 0.1), (w, 0.0)]
    elif kind == "tall":
        h = rng.uniform(0.9, 1.3) * style["height"]
        nodes = [(0.0, 0.0), (0.15 * w, -h), (0.25 * w, -0.1), (0.6 * w, 0.05), (w, 0.0)]
    else:
        r = rng.uniform(0.15, 0.3)
        nodes = [(0.0, 0.0), (0.4 * w, -0.05), (0.6 * w, -2 * r), (0.35 * w, -r), (w, 0.0)]
    marks = []
    n_dots = int(rng.choice([0, 0, 1, 2, 3]))
    above = rng.random() < 0.6
    for i in range(n_dots):
        x = 0.5 * w + (i - (n_dots - 1) / 2) * 0.12
        y = -0.7 if above else 0.45
        y += 0.1 * (i % 2) * (-1 if above else 1) if n_dots == 3 else 0.0
        marks.append(_dot(x, y, rng))
    return Glyph(strokes=(_curve(nodes),), advance=float(w), marks=tuple(marks))


@lru_cache(maxsize=64)
def _procedural_font(script: str, style: str) -> Mapping[str, Glyph]:
    srng = _rng(script, style)
    params = {
        "width": float(srng.uniform(0.8, 1.2)),
        "height": float(srng.uniform(0.85, 1.15)),
        "stem": float(srng.uniform(0.45, 0.8)),
        "round": float(srng.uniform(0.3, 0.8)),
    }
    glyphs: dict[str, Glyph] = {}
    for ch in _LETTERS:
        rng = _rng(script, style, ch)
        if script == "arabic":
            glyphs[ch] = _arabic_glyph(rng, params)
        else:
            glyphs[ch] = _indic_glyph(rng, params, bengali=script == "bengali")
    return MappingProxyType(glyphs)


@lru_cache(maxsize=4)
def _cjk_chars(style: str) -> tuple[str, ...]:
    font = load_font("japanese")
    chars = sorted(k for k, g in font.items() if ord(k) > 126 and len(g.strokes) >= 3)
    # A fixed interleaved split: set_b's characters never appear in set_a.
    return tuple(chars[i] for i in range(len(chars)) if (i % 3 == 2) == (style == "set_b"))


def script_font(script: str, style: str) -> Mapping[str, Glyph]:
    """Glyphs of ``script`` in ``style`` (read-only, cached).

    Parameters
    ----------
    script : str
        A key of :data:`SCRIPTS`.
    style : str
        One of its ``styles``.

    Returns
    -------
    mapping
        Character -> :class:`~sigver.synth.glyphs.Glyph`.
    """
    spec = SCRIPTS[script]
    if style not in spec.styles:
        raise ValueError(f"{script} has no style {style!r}; styles: {spec.styles}")
    if script in ("devanagari", "bengali", "arabic"):
        return _procedural_font(script, style)
    if script == "cjk":
        return load_font("japanese")
    if script == "initials":
        return load_font("rowmans" if style == "monogram_print" else "scripts")
    font = load_font(style)
    if style == "greek":
        # This face maps j and v to math symbols, not letters.
        return MappingProxyType({k: g for k, g in font.items() if k not in "jvJV"})
    return font


def script_text(rng: np.random.Generator, script: str, style: str) -> tuple[str, str]:
    """Draw what a writer of ``script`` signs: ``(form, text)``.

    Procedural and Hershey scripts reuse the syllable lexicon (its letters are
    keys of the script's glyph set); CJK names are 2-4 characters of the
    style's character set; initials are 1-3 capitals (empty for ``flourish``).
    """
    if script == "cjk":
        chars = _cjk_chars(style)
        n = int(rng.choice([2, 3, 3, 4]))
        text = "".join(str(c) for c in rng.choice(chars, size=n))
        if n >= 3 and rng.random() < 0.3:
            text = text[:1] + " " + text[1:]
        return "full", text
    if script == "initials":
        if style == "flourish":
            return "flourish", ""
        first, last = random_name(rng)
        k = int(rng.integers(1, 4))
        text = (first[0] + last[0] + random_name(rng)[1][0])[:k]
        return "initials", text
    form, text = signature_text(rng)
    if script in ("devanagari", "bengali", "arabic"):
        text = text.lower().replace(".", "")  # no letter case, no abbreviation dots
    return form, text

"""Single-line vector glyphs from the Hershey fonts, in normalised units.

Coordinates are in *cap heights*: x grows to the right from the glyph's left
side, y grows downwards (image convention) with 0 on the base line and -1 on
the cap line. Every font is parsed once per process and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

__all__ = ["CURSIVE_FONTS", "FONTS", "PRINT_FONTS", "Glyph", "load_font"]

#: Connected-script fonts: lowercase letters start and end on the base line.
CURSIVE_FONTS: tuple[str, ...] = ("scripts", "cursive")
#: Single-stroke print fonts, used by the (fewer) writers who print their name. The
#: double-line Hershey faces (timesr, scriptc, futuram) look like outlined text
#: when drawn with a pen, so they are left out.
PRINT_FONTS: tuple[str, ...] = ("futural", "rowmans")
FONTS: tuple[str, ...] = CURSIVE_FONTS + PRINT_FONTS


@dataclass(frozen=True)
class Glyph:
    """One character: pen-down strokes and the advance to the next character.

    Attributes
    ----------
    strokes : tuple of numpy.ndarray
        Each ``(n, 2)`` float64 polyline in cap-height units.
    advance : float
        Horizontal advance in cap-height units.
    marks : tuple of numpy.ndarray
        Strokes written after the whole word (Arabic dots); empty for Hershey glyphs.
    """

    strokes: tuple[np.ndarray, ...]
    advance: float
    marks: tuple[np.ndarray, ...] = ()


@cache  # a few dozen small fonts; a bounded cache thrashed between scripts
def load_font(name: str) -> dict[str, Glyph]:
    """Parse one Hershey font into normalised :class:`Glyph` objects.

    Parameters
    ----------
    name : str
        A name from :data:`FONTS` (any font the ``Hershey-Fonts`` package ships works).

    Returns
    -------
    dict
        Character -> :class:`Glyph`. Treat it as read-only: it is shared.
    """
    from HersheyFonts import HersheyFonts

    font = HersheyFonts()
    font.load_default_font(name)
    opts = font.render_options
    base, cap = float(opts["base_line"]), float(opts["cap_line"])
    unit = base - cap  # cap height in font units
    glyphs: dict[str, Glyph] = {}
    for char, glyph in font.all_glyphs.items():
        if not isinstance(char, str) or len(char) != 1:
            continue
        left = float(glyph.left_offset)
        strokes = tuple(
            (np.asarray(s, dtype=np.float64) - (left, base)) / unit
            for s in glyph.strokes
            if len(s) >= 1
        )
        glyphs[char] = Glyph(strokes=strokes, advance=float(glyph.char_width) / unit)
    return glyphs

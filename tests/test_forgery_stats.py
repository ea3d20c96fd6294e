"""scripts/forgery_stats.py: plain image statistics of genuine vs forged signatures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

_SPEC = importlib.util.spec_from_file_location(
    "forgery_stats", Path(__file__).resolve().parents[1] / "scripts" / "forgery_stats.py"
)
fs = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fs)


def _line_image(thickness: int) -> np.ndarray:
    img = np.full((120, 300), 235, np.uint8)
    cv2.line(img, (20, 60), (280, 60), 30, thickness)
    return img


def test_stroke_width_of_a_drawn_line():
    # 2 x area / contour length of a line 260 px long: its thickness, plus up to ~2 px
    # because the contour runs through the ink's boundary pixels and antialiasing
    # widens the mask; the difference between two lines is their difference.
    thin, thick = fs.image_stats(_line_image(3)), fs.image_stats(_line_image(9))
    assert 9 <= thick["stroke_width"] <= 11.5
    assert 3 <= thin["stroke_width"] <= 5.5
    assert thick["stroke_width"] - thin["stroke_width"] == pytest.approx(6, abs=0.5)
    assert thin["components"] == thick["components"] == 1


def test_image_stats_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        fs.image_stats(np.zeros((10, 10), np.float32))
    with pytest.raises(ValueError, match="no ink"):
        fs.image_stats(np.full((50, 50), 240, np.uint8))


def test_compare_hand_computed():
    # Writer "a": genuine widths 2 and 4 (mean 3, std 1), forgery width 6 -> offset +3.
    # Writer "b": genuine 1 and 3, forgery 5 -> +3. Every forgery is wider than every
    # genuine signature: pooled AUC 1.
    def row(w, label, width):
        return (w, label, {k: (width if k == "stroke_width" else 1.0) for k in fs.STATS})

    rows = [row("a", 0, 2), row("a", 0, 4), row("a", 1, 6)]
    rows += [row("b", 0, 1), row("b", 0, 3), row("b", 1, 5)]
    out = fs.compare(rows)
    assert out["stroke_width"]["auc"] == 1.0
    assert out["stroke_width"]["offset"] == pytest.approx(3.0)
    assert out["ink_height"]["auc"] == 0.5
    with pytest.raises(ValueError, match="both"):
        fs.compare([row("a", 0, 1), row("a", 0, 2)])

"""scripts/feature_whitening.py: hand-computed covariance, the whitening property."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import feature_whitening as fw  # noqa: E402


def test_l2_gives_unit_rows_and_keeps_a_zero_row() -> None:
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(fw.l2(x), [[0.6, 0.8], [0.0, 0.0]])


def test_within_covariance_by_hand() -> None:
    # Writer a: (0, 0), (2, 0) -> deviations (-1, 0), (1, 0); writer b: (5, 1), (5, 3) ->
    # (0, -1), (0, 1). Sum of outer products diag(2, 2), over 4 rows - 2 writers.
    x = np.array([[0.0, 0.0], [2.0, 0.0], [5.0, 1.0], [5.0, 3.0]])
    s = fw.within_covariance(x, np.array(["a", "a", "b", "b"]))
    np.testing.assert_allclose(s, np.eye(2))


def test_wccn_whitens_the_within_writer_spread_and_ignores_where_writers_sit() -> None:
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(4, 4))
    writers = np.repeat(np.arange(30), 20)
    centres = rng.normal(size=(30, 4)) * 10
    x = centres[writers] + rng.normal(size=(600, 4)) @ mix
    w = fw.wccn_matrix(x, writers, shrink=1e-9)
    np.testing.assert_allclose(w, w.T, atol=1e-12)
    # After the map the within-writer covariance is the identity.
    np.testing.assert_allclose(fw.within_covariance(x @ w, writers), np.eye(4), atol=1e-6)
    with pytest.raises(ValueError, match="shrink"):
        fw.wccn_matrix(x, writers, shrink=0.0)


def test_transforms_compose_in_order() -> None:
    x = np.array([[3.0, 4.0]])
    w = np.diag([2.0, 1.0])
    np.testing.assert_allclose(fw.transform("none", x, None), x)
    np.testing.assert_allclose(fw.transform("wccn", x, w), [[6.0, 4.0]])
    np.testing.assert_allclose(fw.transform("l2 + wccn", x, w), [[1.2, 0.8]])

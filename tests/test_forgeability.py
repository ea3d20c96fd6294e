"""scripts/forgeability.py: reference statistics, the ridge shift and the targets on toy data."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import forgeability  # noqa: E402
import gap_sources  # noqa: E402


def test_image_stats_of_two_hand_drawn_bars():
    # Two 2 x 10 bars on a 10 x 40 canvas, columns 5-14 and 25-34: 40 ink pixels.
    im = np.zeros((10, 40), np.uint8)
    im[2:4, 5:15] = 30
    im[6:8, 25:35] = 30
    frac, comps, convolution, width = forgeability.image_stats(im)
    assert frac == pytest.approx(40 / 400)
    assert comps == 2
    assert width == pytest.approx(30 / 40)
    # Each bar's contour (pixel centres, closed) is 2 * (9 + 1) = 20 long.
    assert convolution == pytest.approx(40 / np.sqrt(40))


def test_image_stats_ignore_specks_and_survive_a_blank_image():
    im = np.zeros((10, 10), np.uint8)
    im[1, 1] = 5  # one speck: ink, but not a stroke
    im[4:7, 4:7] = 9
    assert forgeability.image_stats(im)[1] == 1
    assert np.array_equal(forgeability.image_stats(np.zeros((5, 5))), np.zeros(4))


def test_a_more_convoluted_stroke_scores_higher_than_a_compact_one():
    compact = np.zeros((40, 40), np.uint8)
    compact[10:30, 10:30] = 1
    zigzag = np.zeros((40, 40), np.uint8)
    for r in range(0, 40, 4):
        zigzag[r, :] = 1  # same order of ink, spread into thin strokes
    assert forgeability.image_stats(zigzag)[2] > 3 * forgeability.image_stats(compact)[2]


def test_ridge_recovers_an_exact_linear_relation_with_little_penalty():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)) * [1.0, 5.0, 0.1] + [0.0, 2.0, -1.0]
    y = 0.5 + 2.0 * x[:, 0] - 0.3 * x[:, 1] + 10.0 * x[:, 2]
    fit = forgeability.ridge_fit(x, y, alpha=1e-9)
    np.testing.assert_allclose(forgeability.ridge_predict(fit, x), y, atol=1e-6)
    # A constant column is carried, not divided by zero, and gets no weight.
    xc = np.c_[x, np.full(len(x), 7.0)]
    fit_c = forgeability.ridge_fit(xc, y, alpha=1e-9)
    assert fit_c["beta"][-1] == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(forgeability.ridge_predict(fit_c, xc), y, atol=1e-6)


def test_ridge_shrinks_towards_the_mean_as_alpha_grows():
    x = np.arange(10.0)[:, None]
    y = 3.0 * x[:, 0]
    weak = forgeability.ridge_fit(x, y, alpha=0.1)["beta"][0]
    strong = forgeability.ridge_fit(x, y, alpha=1e6)["beta"][0]
    assert 0 < strong < 1e-3 * weak
    assert forgeability.ridge_fit(x, y, alpha=1e6)["intercept"] == pytest.approx(y.mean())


def test_spearman_is_rank_based_and_nan_for_a_constant():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    assert forgeability.spearman(a, a**3) == pytest.approx(1.0)
    assert forgeability.spearman(a, -a) == pytest.approx(-1.0)
    assert np.isnan(forgeability.spearman(a, np.ones(4)))


def test_user_targets_and_users_without_forgeries():
    fold = SimpleNamespace(
        genuine=[np.array([1.0, 2.0, 3.0]), np.array([5.0])],
        skilled=[np.array([-1.0, 0.0]), np.array([])],
    )
    rows, valid = forgeability.user_targets([fold])
    assert valid.tolist() == [True, False]
    assert rows[0, 1] == pytest.approx(-0.5) and rows[0, 2] == pytest.approx(2.0)
    assert -0.0 <= rows[0, 0] <= 1.0  # the EER threshold separates them
    assert np.isnan(rows[1]).all()


def test_a_predicted_shift_that_knows_each_users_offset_closes_the_gap():
    # The toy of gap_sources: two perfectly separated users, one 10 above the other.
    # If a statistic equals that offset, the fitted shift removes it (EER_global -> 0).
    fold = SimpleNamespace(
        genuine=[np.array([1.0, 2.0]), np.array([11.0, 12.0])],
        skilled=[np.array([0.0, 0.5]), np.array([10.0, 10.5])],
    )
    stats = np.array([[0.0], [10.0]])
    thresholds, _ = forgeability.user_targets([fold])
    fit = forgeability.ridge_fit(stats, thresholds[:, 0], alpha=1e-12)
    offsets = forgeability.ridge_predict(fit, stats) - fit["intercept"]
    run_locs = [[0.0, 0.0]]
    pop = {"run": SimpleNamespace(), "base": [fold]}
    shifted_locs = [[loc + o for loc, o in zip(run_locs[0], offsets, strict=True)]]
    before = gap_sources.gap_of([(fold.genuine, fold.skilled)])
    after = gap_sources.gap_of(gap_sources.shifted(pop["base"], shifted_locs))
    assert before["gap"] > 0.2 and after["gap"] == 0.0


def test_locs_add_offsets_to_the_products_locations_in_row_order(monkeypatch):
    monkeypatch.setattr(forgeability, "product_locs", lambda run, norm: [[1.0, 2.0], [3.0]])
    locs = forgeability._locs({"run": None}, "loo-lcb=0", np.array([0.1, 0.2, 0.3]))
    assert locs == [[1.1, 2.2], [3.3]]

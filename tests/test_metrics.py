"""Metrics: hand-computed cases and vectorised code against plain loops."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from sigver.metrics import (
    compute_metrics,
    eer_global,
    eer_user_thresholds,
    error_rates_at_thresholds,
    far,
    frr,
    operating_point,
    user_aucs,
)


def test_frr_far_counts_at_zero():
    genuine = [-1.0, 0.0, 0.5, 2.0]  # -1 rejected; 0 is accepted (score >= 0)
    random = [-2.0, 0.0, 1.0]  # 0 and 1 accepted
    assert frr(genuine) == pytest.approx(1 / 4)
    assert far(random) == pytest.approx(2 / 3)
    assert frr(genuine, threshold=1.0) == pytest.approx(3 / 4)
    assert far(random, threshold=1.5) == 0.0


def test_perfectly_separated_eer_is_zero():
    eer, t = eer_global(np.array([1.0, 2.0, 3.0]), np.array([-1.0, -0.5, 0.2]))
    assert eer == 0.0
    assert 0.2 < t <= 1.0


def test_eer_small_case_by_hand():
    # genuine 3, 2, 1; skilled 1.5, 0. ROC points (threshold: FAR, FRR):
    #   3: (0, 2/3)  2: (0, 1/3)  1.5: (1/2, 1/3)  1: (1/2, 0)  0: (1, 0)
    # |FAR - FRR| is smallest (1/6) at t = 1.5, where FRR = 1/3 (the genuine 1 is
    # rejected) and FAR = 1/2 (1.5 is accepted), so EER = (1/3 + 1/2) / 2 = 5/12.
    eer, t = eer_global(np.array([3.0, 2.0, 1.0]), np.array([1.5, 0.0]))
    assert t == 1.5
    assert eer == pytest.approx(5 / 12)


def test_user_threshold_eer_by_hand():
    # User A: the case above; at its own threshold 1.5: 1 of 3 genuines rejected,
    # 1 of 2 skilled accepted. User B: separated (t = 1): no errors.
    # Pooled: FRR = 1/5, FAR = 1/4 -> EER_user = (0.2 + 0.25) / 2 = 0.225.
    genuine = [np.array([3.0, 2.0, 1.0]), np.array([1.0, 2.0])]
    skilled = [np.array([1.5, 0.0]), np.array([0.0, -1.0])]
    assert eer_user_thresholds(genuine, skilled) == pytest.approx(0.225)


def _reference_eer(genuine: np.ndarray, skilled: np.ndarray) -> float:
    """Plain transcription of the reference rule (stable sort, first minimum)."""
    scores = np.concatenate([genuine, skilled])
    ys = np.concatenate([np.ones_like(genuine), -np.ones_like(skilled)])
    fpr, tpr, thresholds = roc_curve(ys, scores)
    best = sorted(enumerate(abs(fpr - (1 - tpr))), key=lambda p: p[1])[0][0]
    t = thresholds[best]
    g_err = sum(1 for v in genuine if v < t) / len(genuine)
    s_err = sum(1 for v in skilled if v >= t) / len(skilled)
    return (g_err + s_err) / 2


@pytest.mark.parametrize("seed", range(5))
def test_eer_matches_reference_rule_with_ties(seed):
    rng = np.random.default_rng(seed)
    # Rounded scores create ties, the hard case for threshold conventions.
    g = np.round(rng.normal(1.0, 1.0, size=40), 1)
    s = np.round(rng.normal(0.0, 1.0, size=35), 1)
    assert eer_global(g, s)[0] == pytest.approx(_reference_eer(g, s), abs=1e-15)


def test_error_rates_vectorised_vs_loop():
    rng = np.random.default_rng(7)
    g = np.round(rng.normal(size=50), 1)
    f = np.round(rng.normal(-1, size=60), 1)
    thresholds = np.r_[np.unique(np.r_[g, f]), -np.inf, np.inf, 0.05]
    frr_v, far_v = error_rates_at_thresholds(g, f, thresholds)
    for t, fr, fa in zip(thresholds, frr_v, far_v, strict=True):
        assert fr == pytest.approx(sum(v < t for v in g) / len(g))
        assert fa == pytest.approx(sum(v >= t for v in f) / len(f))


def test_user_aucs_vs_pair_counting_loop():
    rng = np.random.default_rng(8)
    genuine = [np.round(rng.normal(1, size=7), 1) for _ in range(4)]
    skilled = [np.round(rng.normal(0, size=9), 1) for _ in range(4)]
    got = user_aucs(genuine, skilled)
    for a, g_u, s_u in zip(got, genuine, skilled, strict=True):
        pairs = [(1.0 if gv > sv else 0.5 if gv == sv else 0.0) for gv in g_u for sv in s_u]
        assert a == pytest.approx(sum(pairs) / len(pairs))


def test_compute_metrics_pools_users():
    genuine = [np.array([1.0, -1.0]), np.array([2.0])]
    random = [np.array([-1.0, 0.5]), np.array([-2.0])]
    skilled = [np.array([0.0, -3.0]), np.array([-1.0, 3.0])]
    m = compute_metrics(genuine, random, skilled)
    assert m["FRR"] == pytest.approx(1 / 3)
    assert m["FAR_random"] == pytest.approx(1 / 3)
    assert m["FAR_skilled"] == pytest.approx(2 / 4)
    assert (m["n_genuine"], m["n_random"], m["n_skilled"]) == (3, 3, 4)
    # user 0: AUC = pairs (1>0, 1>-3, -1<0, -1>-3) = 3/4; user 1: (2>-1, 2<3) = 1/2
    assert m["AUC"] == pytest.approx((0.75 + 0.5) / 2)


def test_operating_point():
    op = operating_point(np.array([1.0, -1.0]), np.array([0.5]), np.array([2.0, -2.0]), 0.0)
    assert op == {
        "threshold": 0.0,
        "FRR": 0.5,
        "FAR_random": 1.0,
        "FAR_skilled": 0.5,
        "HTER_skilled": 0.5,
    }

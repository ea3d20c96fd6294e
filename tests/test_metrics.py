"""Metrics: hand-computed cases and vectorised code against plain loops."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from sigver.metrics import (
    aligned_gap,
    compute_metrics,
    eer_global,
    eer_user_shuffled,
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


# -- the gap of exchangeable users -------------------------------------------------


def test_shuffled_eer_user_two_users_by_hand():
    # Pooled genuine {1, 3}, skilled {2, 4}, one of each per user: four dealings, each
    # as likely. A user whose genuine is above their forgery makes no error; one whose
    # genuine is below makes both (the EER threshold sits at the forgery).
    #   u1 (1, 2), u2 (3, 4): both users wrong   -> EER_user (2/2 + 2/2) / 2 = 1
    #   u1 (1, 4), u2 (3, 2): one user wrong     -> (1/2 + 1/2) / 2 = 1/2
    #   u1 (3, 2), u2 (1, 4): one user wrong     -> 1/2
    #   u1 (3, 4), u2 (1, 2): both users wrong   -> 1
    # Expected 3/4. Pooled EER_global is 1/2 (t = 3), so the aligned gap is -1/4.
    g = [np.array([1.0]), np.array([3.0])]
    s = [np.array([4.0]), np.array([2.0])]
    assert eer_user_thresholds(g, s) == 0.5  # as dealt: u1 wrong, u2 right
    assert eer_user_shuffled(g, s, rounds=4000, seed=3) == pytest.approx(0.75, abs=0.02)
    assert eer_global(np.r_[1.0, 3.0], np.r_[2.0, 4.0])[0] == 0.5
    assert aligned_gap(g, s, rounds=4000, seed=3) == pytest.approx(-0.25, abs=0.02)


def test_shuffled_eer_user_matches_every_dealing():
    # The Monte Carlo mean against the exact mean over every dealing (a plain loop).
    from itertools import permutations

    g = [np.array([0.2, 1.5]), np.array([0.9, 2.4])]
    s = [np.array([1.0]), np.array([-0.3, 0.7])]
    pool_g, pool_s = np.r_[0.2, 1.5, 0.9, 2.4], np.r_[1.0, -0.3, 0.7]
    exact = []
    for pg in permutations(pool_g):
        for ps in permutations(pool_s):
            users_g = [np.array(pg[:2]), np.array(pg[2:])]
            users_s = [np.array(ps[:1]), np.array(ps[1:])]
            exact.append(eer_user_thresholds(users_g, users_s))
    got = eer_user_shuffled(g, s, rounds=3000, seed=0)
    assert got == pytest.approx(float(np.mean(exact)), abs=0.015)


def test_perfectly_separated_scores_have_no_gap():
    g = [np.array([2.0, 3.0]), np.array([2.5, 4.0, 5.0])]
    s = [np.array([0.0, 1.0]), np.array([-1.0])]
    assert eer_user_shuffled(g, s) == 0.0
    assert aligned_gap(g, s) == 0.0


def test_aligned_gap_removes_the_offset_between_users():
    # Each user perfectly separated on their own scale, far apart from the other:
    # a large observed gap (EER_user 0) that exchangeable users would not have.
    g = [np.array([10.0, 11.0, 12.0]), np.array([2.0, 3.0, 4.0])]
    s = [np.array([8.0, 9.0]), np.array([0.0, 1.0])]
    observed = eer_global(np.concatenate(g), np.concatenate(s))[0] - eer_user_thresholds(g, s)
    assert eer_user_thresholds(g, s) == 0.0
    assert observed > 0.2
    assert aligned_gap(g, s, rounds=200) < observed - 0.1


def test_shuffled_eer_user_leaves_out_users_without_forgeries_and_checks_input():
    g = [np.array([1.0, 3.0]), np.array([5.0, 6.0])]
    s = [np.array([2.0]), np.array([])]
    # Only the first user counts: nothing to deal, so the value is that user's EER_user.
    assert eer_user_shuffled(g, s, rounds=5) == eer_user_thresholds(g[:1], s[:1])
    assert np.isnan(eer_user_shuffled([np.array([1.0])], [np.array([])]))
    assert np.isnan(aligned_gap([np.array([1.0])], [np.array([])]))
    assert eer_user_shuffled(g, s, seed=7) == eer_user_shuffled(g, s, seed=7)
    with pytest.raises(ValueError, match="same users"):
        eer_user_shuffled(g, s[:1])
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="rounds"):
            eer_user_shuffled(g, s, rounds=bad)


def test_the_reference_rule_reads_the_kept_roc_points_only():
    # Genuine 0..3, skilled 2, -1, -2, -3: FAR = FRR = 1/4 at t = 1, but roc_curve drops
    # that collinear point; the reference rule then reads t = 2, FRR 1/2, FAR 1/4 -> 3/8.
    eer, t = eer_global(np.array([0.0, 1.0, 2.0, 3.0]), np.array([2.0, -1.0, -2.0, -3.0]))
    assert (eer, t) == (0.375, 2.0)

"""Per-user score normalisation (sigver.normalization) and the shared trainer (sigver.usermodel)."""

from __future__ import annotations

import numpy as np
import pytest

from sigver.classifier import WriterDependentClassifier
from sigver.normalization import (
    METHODS,
    NormalizationError,
    ScoreNormalizer,
    fit_normalizer,
    parse_method,
)
from sigver.usermodel import split_cohort, train_user_model

LOO = np.array([1.0, 2.0, 3.0])  # mean 2, std (ddof=1) 1
COHORT = np.array([-1.0, -2.0, -3.0])  # mean -2, std 1


@pytest.mark.parametrize(
    ("method", "loc", "scale"),
    [
        ("none", 0.0, 1.0),
        ("cohort-znorm", -2.0, 1.0),
        ("loo-znorm", 2.0, 1.0),
        ("two-point", -2.0, 4.0),  # impostor mean -> 0, genuine mean -> 1
        ("loo-lcb", 1.0, 1.0),  # K = 1: mean - 1 std
        ("loo-lcb=0.5", 1.5, 1.0),
        ("loo-lcb=0", 2.0, 1.0),
    ],
)
def test_hand_computed_normalisers(method, loc, scale):
    n = fit_normalizer(method, loo_genuine=LOO, cohort=COHORT)
    assert n.loc == pytest.approx(loc) and n.scale == pytest.approx(scale)
    assert n.transform([loc, loc + scale]).tolist() == pytest.approx([0.0, 1.0])
    assert n.inverse(n.transform([0.3, -4.0])).tolist() == pytest.approx([0.3, -4.0])


def test_two_point_maps_the_typical_impostor_to_0_and_genuine_to_1():
    n = fit_normalizer("two-point", loo_genuine=LOO, cohort=COHORT)
    assert n.transform([-2.0, 2.0]).tolist() == pytest.approx([0.0, 1.0])


@pytest.mark.parametrize("method", METHODS)
def test_every_normaliser_is_increasing_per_user(method):
    rng = np.random.default_rng(1)
    for _ in range(20):
        n = fit_normalizer(
            method, loo_genuine=rng.normal(1, 0.5, 5), cohort=rng.normal(-1, 0.3, 40)
        )
        s = np.sort(rng.normal(0, 2, 50))
        assert np.all(np.diff(n.transform(s)) >= 0)
        assert n.scale > 0


@pytest.mark.parametrize("method", ["cohort-znorm", "loo-znorm", "two-point"])
@pytest.mark.parametrize(("a", "b"), [(3.0, -1.5), (0.25, 7.0)])
def test_affine_invariance(method, a, b):
    rng = np.random.default_rng(2)
    loo, coh, s = rng.normal(1, 0.4, 6), rng.normal(-1, 0.2, 30), rng.normal(0, 1, 20)
    n1 = fit_normalizer(method, loo_genuine=loo, cohort=coh)
    n2 = fit_normalizer(method, loo_genuine=a * loo + b, cohort=a * coh + b)
    assert n2.transform(a * s + b) == pytest.approx(n1.transform(s))


def test_loo_lcb_is_shift_invariant_and_scale_equivariant():
    rng = np.random.default_rng(3)
    loo, s = rng.normal(1, 0.4, 6), rng.normal(0, 1, 20)
    n1 = fit_normalizer("loo-lcb=1", loo_genuine=loo)
    assert fit_normalizer("loo-lcb=1", loo_genuine=loo + 5).transform(s + 5) == pytest.approx(
        n1.transform(s)
    )
    assert fit_normalizer("loo-lcb=1", loo_genuine=2 * loo).transform(2 * s) == pytest.approx(
        2 * n1.transform(s)
    )


def test_degenerate_statistics_keep_a_positive_scale():
    flat = fit_normalizer("cohort-znorm", cohort=np.full(5, -1.0))
    assert flat.scale > 0
    # References scoring below impostors: the scale stays positive (no flipped ranking).
    inverted = fit_normalizer("two-point", loo_genuine=COHORT, cohort=LOO)
    assert inverted.scale > 0


def test_errors_and_parsing():
    assert parse_method("loo-lcb=0.5") == ("loo-lcb", 0.5)
    assert parse_method("LOO-LCB") == ("loo-lcb", 1.0)
    for bad in ("zscore", "loo-lcb=-1", "loo-lcb=x", "two-point=2"):
        with pytest.raises(NormalizationError):
            parse_method(bad)
    with pytest.raises(NormalizationError, match="at least 2 cohort"):
        fit_normalizer("cohort-znorm", cohort=np.array([1.0]))
    with pytest.raises(NormalizationError, match="leave-one-out"):
        fit_normalizer("loo-znorm")
    with pytest.raises(NormalizationError):
        ScoreNormalizer("none", 0.0, 0.0)


def test_dict_round_trip():
    n = fit_normalizer("two-point", loo_genuine=LOO, cohort=COHORT)
    assert ScoreNormalizer.from_dict(n.to_dict()) == n
    assert ScoreNormalizer.from_dict(None) == ScoreNormalizer()
    with pytest.raises(NormalizationError):
        ScoreNormalizer.from_dict({"method": "two-point"})


def test_cohort_split_is_fixed_and_order_independent():
    writers = np.array([f"w{i}" for i in range(200)]).repeat(3)
    mask = split_cohort(writers, 0.2)
    perm = np.random.default_rng(0).permutation(writers.size)
    assert np.array_equal(split_cohort(writers[perm], 0.2), mask[perm])
    # whole writers, roughly the asked share
    assert all(len(set(mask[writers == w])) == 1 for w in writers[:30])
    assert 0.1 < mask.mean() < 0.3
    assert not split_cohort(writers, 0.0).any()


def _toy(seed=0, dim=6):
    rng = np.random.default_rng(seed)
    pos = rng.normal(2.0, 0.3, (5, dim))
    neg = rng.normal(-1.0, 1.0, (40, dim))
    others = rng.normal(0.0, 1.0, (8, dim))
    cohort = rng.normal(-1.0, 1.0, (10, dim))
    return (a.astype(np.float32) for a in (pos, neg, others, cohort))


PARAMS = {"kernel": "rbf", "C": 1.0, "gamma": 0.1}


def test_train_user_model_is_the_plain_classifier_plus_hand_checked_statistics():
    pos, neg, others, cohort = _toy()
    model = train_user_model(
        pos, neg, others, params=PARAMS, normalization="two-point", cohort=cohort
    )
    x = np.concatenate([pos, neg, others])
    y = np.r_[np.ones(5), np.zeros(48)]
    ref = WriterDependentClassifier(**PARAMS).fit(x, y)
    assert model.n_negatives == 48
    q = np.random.default_rng(9).normal(0, 1, (7, 6))
    assert model.raw_scores(q) == pytest.approx(ref.decision_function(q))
    assert model.cohort_scores == pytest.approx(ref.decision_function(cohort))
    # Leave-one-out: reference j scored by the classifier trained without it.
    for j in range(5):
        keep = np.arange(5) != j
        clf = WriterDependentClassifier(**PARAMS).fit(
            np.concatenate([pos[keep], neg, others]), np.r_[np.ones(4), np.zeros(48)]
        )
        assert model.loo_genuine[j] == pytest.approx(clf.decision_function(pos[j : j + 1])[0])
    # The normaliser is the one the statistics give.
    expected = fit_normalizer(
        "two-point", loo_genuine=model.loo_genuine, cohort=model.cohort_scores
    )
    assert model.normalizer == expected
    assert model.scores(q) == pytest.approx(expected.transform(ref.decision_function(q)))


def test_train_user_model_computes_only_what_it_needs():
    pos, neg, others, cohort = _toy()
    plain = train_user_model(pos, neg, others, params=PARAMS, cohort=cohort)
    assert plain.loo_genuine.size == 0 and plain.cohort_scores.size == 0
    assert plain.normalizer == ScoreNormalizer()
    full = train_user_model(pos, neg, params=PARAMS, cohort=cohort, statistics=True)
    assert full.loo_genuine.size == 5 and full.cohort_scores.size == 10
    with pytest.raises(NormalizationError):
        train_user_model(pos, neg, params=PARAMS, normalization="cohort-znorm")  # no cohort
    with pytest.raises(NormalizationError):
        train_user_model(pos, neg, params=PARAMS, normalization="bogus")

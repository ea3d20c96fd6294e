"""scripts/writer_independent_gap.py: pair scorers, reference penalties and scores on toy data."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import writer_independent_gap as wi  # noqa: E402


class _L1:
    """z(q, r) = sum |q - r|: hand-computable."""

    def z(self, q, r):
        return np.abs(np.atleast_2d(q) - np.asarray(r)[None, :]).sum(axis=1)


def test_penalties_are_means_over_references_and_the_references_against_each_other():
    refs = np.array([[0.0], [2.0], [6.0]])
    q = np.array([[1.0], [10.0]])
    p, p_refs = wi.penalties(_L1(), q, refs)
    np.testing.assert_allclose(p, [(1 + 1 + 5) / 3, (10 + 8 + 4) / 3])
    # Reference 0 against 2, 6: 4; reference 2 against 0, 6: 3; reference 6 against 0, 2: 5.
    assert p_refs == pytest.approx((4 + 3 + 5) / 3)
    assert wi.penalties(_L1(), q, refs[:1])[1] == 0.0
    assert wi.penalties(_L1(), np.zeros((0, 1)), refs)[0].size == 0


def test_scored_alone_centred_and_added_to_base_scores():
    pen = [[{"genuine": np.array([1.0, 2.0]), "skilled": np.array([5.0]), "p_refs": 1.5}]]
    ((g, s),) = wi.scored(pen, centred=False)
    np.testing.assert_allclose(g[0], [-1.0, -2.0])
    np.testing.assert_allclose(s[0], [-5.0])
    ((g, s),) = wi.scored(pen, centred=True)
    np.testing.assert_allclose(g[0], [0.5, -0.5])
    base = [SimpleNamespace(genuine=[np.array([3.0, 3.0])], skilled=[np.array([3.0])])]
    ((g, s),) = wi.scored(pen, centred=True, base=base, weight=2.0)
    np.testing.assert_allclose(g[0], [3.0 + 1.0, 3.0 - 1.0])
    np.testing.assert_allclose(s[0], [3.0 - 7.0])


def test_one_function_for_every_user_still_has_a_gap_when_users_forgeries_differ():
    # The point of the study, on hand-made scores: user 1's forgeries are far, user 2's
    # land among user 1's genuines, both perfectly separated alone. One scorer serves both,
    # yet a global threshold must let user 2's forgery in or reject user 1's genuines.
    folds = [
        (
            [np.array([0.0, 0.1]), np.array([1.0, 1.1])],
            [np.array([-5.0]), np.array([0.05])],
        )
    ]
    out = wi.summary(folds, raw_gap=0.5, rounds=5)
    assert out["EER_user"] == 0.0 and out["EER_global"] > 0
    assert out["ratio"] == pytest.approx(out["gap"] / 0.5)


def test_pair_scorers_separate_forged_pairs_and_are_in_units_of_their_spread():
    rng = np.random.default_rng(0)
    rows, writers, forged = [], [], []
    for w in range(12):
        centre = rng.normal(size=4)
        for _ in range(6):
            rows.append(centre + 0.1 * rng.normal(size=4))
            writers.append(f"w{w}")
            forged.append(False)
        for _ in range(4):  # forgeries differ from the writer's signatures in dimension 0
            rows.append(centre + [2.0, 0, 0, 0] + 0.1 * rng.normal(size=4))
            writers.append(f"w{w}")
            forged.append(True)
    x, writers, forged = np.asarray(rows), np.asarray(writers), np.asarray(forged)
    for kind in wi.SCORERS:
        s = wi.PairScorer(kind).fit(x, writers, forged)
        genuine = s.z(x[1:2], x[0])[0]
        fake = s.z(x[6:7], x[0])[0]
        assert fake > genuine, kind
        assert s.n_pairs_ > 0
    ia, ib, _ = wi.pair_indices(writers, forged)
    lr = wi.PairScorer("logistic").fit(x, writers, forged)
    spread = np.std(lr._raw(np.abs(x[ia] - x[ib])) / lr.sd_)
    assert spread == pytest.approx(1.0)


def test_unknown_scorer_and_one_kind_of_pair_are_refused():
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="unknown pair scorer"):
        wi.PairScorer("forest").fit(x, np.array(["a", "a", "b", "b"]), np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="both kinds"):
        wi.PairScorer("logistic").fit(x, np.array(["a", "a", "b", "b"]), np.zeros(4, bool))


def test_user_penalties_match_each_kind_scored_alone():
    refs = np.array([0, 1, 2])
    split = SimpleNamespace(refs=[refs], test_genuine=[np.array([3, 4])], skilled=[np.array([5])])
    x = np.arange(6, dtype=float)[:, None] ** 1.5
    ((u,),) = wi.user_penalties(SimpleNamespace(splits=[split]), x, _L1())
    for kind, rows in (("genuine", [3, 4]), ("skilled", [5])):
        p, p_refs = wi.penalties(_L1(), x[rows], x[refs])
        np.testing.assert_allclose(u[kind], p)
        assert u["p_refs"] == pytest.approx(p_refs)
    # A user without forgeries still gets an empty entry.
    split.skilled = [np.array([], dtype=int)]
    ((u,),) = wi.user_penalties(SimpleNamespace(splits=[split]), x, _L1())
    assert u["skilled"].size == 0 and u["genuine"].size == 2

"""The pairwise forgery cue (sigver.pair_cue): hand-made toy writers and invariants."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sigver.pair_cue import PairCue, PairCueError, fit_pair_cue, pair_indices

WRITERS = np.array(["a"] * 5 + ["b"] * 4)
FORGED = np.array([0, 0, 0, 1, 1, 0, 0, 1, 1], dtype=bool)


def _toy(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Forgeries differ from their writer's genuines in dimension 0 only.
    return rng.normal(size=(9, 6)) * 0.1 + np.where(FORGED, 3.0, 0.0)[:, None] * np.eye(6)[0]


def test_pairs_stay_within_a_writer_and_count_by_hand() -> None:
    ia, ib, y = pair_indices(WRITERS, FORGED)
    # a: 3 genuine -> 3 genuine pairs and 3 x 2 forgery pairs; b: 1 and 2 x 2.
    assert (np.count_nonzero(y == 0), np.count_nonzero(y == 1)) == (3 + 1, 6 + 4)
    assert all(WRITERS[i] == WRITERS[j] for i, j in zip(ia, ib, strict=True))
    assert not FORGED[ia].any() and (FORGED[ib] == (y == 1)).all()
    with pytest.raises(PairCueError):
        pair_indices(WRITERS, FORGED[:-1])


def test_folded_weights_equal_the_standardised_logistic_decision_pair_by_pair() -> None:
    from sklearn.linear_model import LogisticRegression

    x = _toy()
    cue = fit_pair_cue(x, WRITERS, FORGED, C=1.0)
    ia, ib, y = pair_indices(WRITERS, FORGED)
    d = np.abs(x[ia] - x[ib])
    ds = (d - d.mean(axis=0)) / d.std(axis=0)
    lr = LogisticRegression(C=1.0, max_iter=3000, class_weight="balanced").fit(ds, y)
    raw = lr.decision_function(ds)
    got = np.array([cue.z(x[[i]], x[[j]])[0, 0] for i, j in zip(ia, ib, strict=True)])
    np.testing.assert_allclose(got, raw / raw.std(), rtol=1e-6, atol=1e-8)
    # It learned the dimension: every forgery pair above every genuine pair.
    assert got[y == 1].min() > got[y == 0].max()
    assert cue.n_pairs == len(y)


def test_penalty_is_the_mean_over_references_and_ignores_their_order_and_a_shift() -> None:
    x = _toy()
    cue = fit_pair_cue(x, WRITERS, FORGED, C=1.0, weight=0.5)
    refs, q = x[:3], x[3:]
    m = cue.z(q, refs)
    np.testing.assert_allclose(cue.penalty(q, refs), m.mean(axis=1))
    np.testing.assert_allclose(cue.penalty(q, refs[::-1]), cue.penalty(q, refs))
    # |q - r| does not see a common shift of every feature (another scanner's offset).
    shift = np.arange(6.0)
    np.testing.assert_allclose(cue.penalty(q + shift, refs + shift), cue.penalty(q, refs))
    r = cue.z(refs, refs)
    assert cue.ref_mean(refs) == pytest.approx(r[~np.eye(3, dtype=bool)].mean())
    np.testing.assert_allclose(
        cue.centred_penalty(q, refs), 0.5 * (cue.penalty(q, refs) - cue.ref_mean(refs))
    )
    # The forgeries (rows 3, 4) cost more than the references cost each other.
    assert (cue.centred_penalty(x[3:5], refs) > 0).all()


def test_round_trip_and_refusals() -> None:
    cue = fit_pair_cue(_toy(), WRITERS, FORGED, users=("a", "b"))
    back = PairCue.from_dict(json.loads(json.dumps(cue.to_dict())))
    assert back is not None and back.users == ("a", "b") and back.n_pairs == cue.n_pairs
    np.testing.assert_array_equal(back.v, cue.v)
    assert PairCue.from_dict(None) is None and PairCue.from_dict({}) is None
    with pytest.raises(PairCueError, match="malformed"):
        PairCue.from_dict({"v": [1.0]})
    with pytest.raises(PairCueError):
        PairCue(v=np.array([np.nan]), b0=0.0)
    with pytest.raises(PairCueError):
        PairCue(v=np.ones(2), b0=0.0, weight=-1.0)
    with pytest.raises(PairCueError, match="6 features"):
        cue.penalty(np.zeros((1, 5)), np.zeros((2, 6)))
    with pytest.raises(PairCueError, match="two references"):
        cue.ref_mean(np.zeros((1, 6)))
    with pytest.raises(PairCueError, match="both kinds"):
        fit_pair_cue(_toy(), WRITERS, np.zeros(9, dtype=bool))


def test_deployment_run_subtracts_each_users_centred_pair_penalty_and_matches_the_script() -> None:
    import sys
    from pathlib import Path

    from test_forgery_cue import shared_cue_population

    from sigver.evaluation import simulate_deployment
    from sigver.forgery_cue import fit_forgery_cue

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import pair_cue as script

    fs = shared_cue_population(n_users=5)
    writers = fs.user_ids[fs.y]
    pair = fit_pair_cue(fs.features, writers, fs.yforg == 1, weight=0.75)
    kw = dict(users="all", background=None, refs=4, folds=2, normalization="loo-lcb=0")
    plain = simulate_deployment(fs, **kw, progress=False)
    fused = plain.with_pair_cue(pair, fs)
    x = fs.features
    for a, b, split in zip(plain.scores(), fused.scores(), fused.splits, strict=True):
        for i, refs in enumerate(split.refs):
            want = pair.weight * (
                pair.penalty(x[split.skilled[i]], x[refs]) - pair.ref_mean(x[refs])
            )
            np.testing.assert_allclose(b.skilled[i], a.skilled[i] - want)
            rnd = split.random_forgeries(i)
            want = pair.centred_penalty(x[rnd], x[refs])
            np.testing.assert_allclose(b.random[i], a.random[i] - want)
    # The research script's fused score is the product path's, cue and pair together.
    cue = fit_forgery_cue(fs.features, fs.yforg == 1, weight=script.CUE_WEIGHT, centred=True)
    both = simulate_deployment(fs, **kw, forgery_cue=cue, progress=False).with_pair_cue(pair, fs)
    terms = script.user_terms(plain, x.astype(np.float64), lambda split, i: (pair, cue))
    ref = script.fused(plain.scores(), terms, "cue + pair, centred", 0.75)
    for a, b in zip(ref, both.scores(), strict=True):
        for part in ("genuine", "skilled", "random"):
            for u, v in zip(getattr(a, part), getattr(b, part), strict=True):
                np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-9)

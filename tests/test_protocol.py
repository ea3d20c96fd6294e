"""Protocol splits and the fast evaluation engine."""

from __future__ import annotations

import numpy as np
import pytest

from sigver.errors import DatasetError
from sigver.evaluation import ClassifierConfig, score_fold
from sigver.metrics import compute_metrics
from sigver.protocol import ProtocolConfig, ProtocolError, get_preset, make_splits

# SigComp2011 writers and their genuine counts (shared/data/README.md).
SIGCOMP_IDS = [1, 2, 3, 4, 6, 9, *range(12, 70)]
BIG = {1, 2, 3, 4, 6, 9, 12, 14, 15}


def fake_sigcomp():
    """Labels shaped like SigComp2011 (ids, genuine and forgery counts), no images."""
    rng = np.random.default_rng(0)
    y, yforg = [], []
    for u, wid in enumerate(SIGCOMP_IDS):
        n_gen = 24 if wid in BIG else 23 if wid == 16 else 12
        n_forg = int(rng.integers(8, 21))
        y += [u] * (n_gen + n_forg)
        yforg += [0] * n_gen + [1] * n_forg
    # Shuffle so that nothing relies on the file order.
    perm = rng.permutation(len(y))
    return (
        np.array(y)[perm],
        np.array(yforg)[perm],
        np.array([f"{w:03d}" for w in SIGCOMP_IDS]),
    )


def test_sigcomp_preset_counts_and_disjointness():
    y, yforg, ids = fake_sigcomp()
    resolved, splits = make_splits(y, yforg, ids, get_preset("sigcomp2011-dev"))
    assert [ids[u] for u in resolved.exp_users] == [f"{w:03d}" for w in range(38, 70)]
    assert len(resolved.dev_users) == 32 and ids[resolved.dev_users[-1]] == "037"
    assert len(splits) == 10
    n_dev_genuine = 9 * 24 + 23 + 22 * 12
    exp_samples = set(np.flatnonzero(np.isin(y, resolved.exp_users)).tolist())
    for split in splits:
        assert split.negatives.size == n_dev_genuine  # all genuines of every dev user
        assert not set(split.negatives.tolist()) & exp_samples
        assert np.all(yforg[split.negatives] == 0)
        for i, u in enumerate(split.users):
            refs, test = split.refs[i], split.test_genuine[i]
            assert refs.size == 5 and test.size == 7
            assert np.all(y[refs] == u) and np.all(y[test] == u)
            assert np.all(yforg[refs] == 0) and np.all(yforg[test] == 0)
            assert split.skilled[i].size == np.sum((y == u) & (yforg == 1))
            rnd = split.random_forgeries(i)
            assert rnd.size == 31 * 7 and not np.any(y[rnd] == u)
            scored = np.r_[test, rnd, split.skilled[i]]
            all_refs = np.concatenate(split.refs)
            # No reference (of anyone) is ever scored; no scored sample is trained on.
            assert not set(scored.tolist()) & set(all_refs.tolist())
            assert not set(scored.tolist()) & set(split.training_negatives(i).tolist())


def test_splits_are_deterministic_and_folds_differ():
    y, yforg, ids = fake_sigcomp()
    cfg = get_preset("sigcomp2011-dev").replace(folds=3, seed=7)
    r1, a = make_splits(y, yforg, ids, cfg)
    r2, b = make_splits(y, yforg, ids, cfg)
    assert r1.seeds == r2.seeds and len(set(r1.seeds)) == 3
    for fa, fb in zip(a, b, strict=True):
        for ra, rb in zip(fa.refs, fb.refs, strict=True):
            np.testing.assert_array_equal(ra, rb)
    assert any(not np.array_equal(x, z) for x, z in zip(a[0].refs, a[1].refs, strict=True))
    _, c = make_splits(y, yforg, ids, cfg.replace(seed=8))
    assert any(not np.array_equal(x, z) for x, z in zip(a[0].refs, c[0].refs, strict=True))


def test_forg_from_exp_uses_only_other_users_references():
    y, yforg, ids = fake_sigcomp()
    cfg = ProtocolConfig(
        exp_users=(32, 64), dev_users="none", refs=5, forg_from_dev=None, forg_from_exp=2, folds=2
    )
    resolved, splits = make_splits(y, yforg, ids, cfg)
    assert resolved.dev_users.size == 0
    for split in splits:
        all_refs = set(np.concatenate(split.refs).tolist())
        for i, u in enumerate(split.users):
            neg = split.training_negatives(i)
            assert neg.size == 31 * 2
            assert set(neg.tolist()) <= all_refs
            assert not np.any(y[neg] == u)


def test_ranges_sizes_and_errors():
    y, yforg, ids = fake_sigcomp()
    cfg = ProtocolConfig(exp_users=(32, 40), dev_users=(0, 32), refs=5, test_genuine=4, folds=1)
    resolved, (split,) = make_splits(y, yforg, ids, cfg.replace(forg_from_dev=3))
    assert [ids[u] for u in resolved.exp_users] == [f"{w:03d}" for w in range(38, 46)]
    assert all(t.size == 4 for t in split.test_genuine)
    assert split.negatives.size == 32 * 3
    with pytest.raises(DatasetError, match="fewer than"):
        make_splits(y, yforg, ids, cfg.replace(refs=10))
    with pytest.raises(ProtocolError, match="both"):
        make_splits(y, yforg, ids, cfg.replace(dev_users=(30, 34)))
    with pytest.raises(ProtocolError, match="not in the data"):
        make_splits(y, yforg, ids, cfg.replace(exp_users=("038", "999")))
    with pytest.raises(ProtocolError, match="negatives"):
        make_splits(y, yforg, ids, cfg.replace(dev_users="none"))
    with pytest.raises(ProtocolError, match="unknown protocol preset"):
        get_preset("nope")


def gaussian_features(n_users=16, d=24, n_gen=10, n_forg=5, seed=0):
    """Each user has a mean vector; forgeries lie close to it (harder than other users)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n_users, d)) * 2
    x, y, yforg = [], [], []
    for u in range(n_users):
        x.append(means[u] + rng.normal(size=(n_gen, d)))
        x.append(means[u] + 0.8 + rng.normal(size=(n_forg, d)))
        y += [u] * (n_gen + n_forg)
        yforg += [0] * n_gen + [1] * n_forg
    return np.vstack(x).astype(np.float32), np.array(y), np.array(yforg)


@pytest.mark.parametrize(("kernel", "forg_from_exp"), [("rbf", 0), ("linear", 0), ("rbf", 2)])
def test_fast_engine_equals_naive_loop(kernel, forg_from_exp):
    x, y, yforg = gaussian_features()
    ids = np.array([f"u{u}" for u in range(16)])
    cfg = ProtocolConfig(
        exp_users=(0, 8),
        dev_users=(8, 16),
        refs=4,
        forg_from_dev=6,
        forg_from_exp=forg_from_exp,
        folds=2,
    )
    _, splits = make_splits(y, yforg, ids, cfg)
    clf = ClassifierConfig(kernel=kernel, gamma=0.02)
    for split in splits:
        fast = score_fold(x, split, clf, engine="fast", n_jobs=2)
        naive = score_fold(x, split, clf, engine="naive", n_jobs=1)
        for part in ("genuine", "random", "skilled"):
            for a, b in zip(getattr(fast, part), getattr(naive, part), strict=True):
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
        mf = compute_metrics(fast.genuine, fast.random, fast.skilled)
        mn = compute_metrics(naive.genuine, naive.random, naive.skilled)
        for key in ("EER_global", "EER_user", "FRR", "FAR_random", "FAR_skilled", "AUC"):
            assert mf[key] == mn[key]


def test_fixed_threshold_point_by_hand():
    from sigver.errors import SigverError
    from sigver.evaluation import FoldScores, fixed_threshold_point

    def fold(gen, rnd, sk):
        return FoldScores(
            genuine=[np.array(g, float) for g in gen],
            random=[np.array(r, float) for r in rnd],
            skilled=[np.array(s, float) for s in sk],
            simple=[np.zeros(0), np.zeros(0)],
        )

    # Two users per fold; accept when score >= 0.5 (equality accepts).
    f0 = fold([[1.0, 0.2], [0.5, 0.9]], [[-1.0], [0.6]], [[0.4, 0.7], [0.1]])
    f1 = fold([[0.3, 0.3], [2.0, 2.0]], [[0.0], [0.0]], [[0.5], [0.49, -3.0]])
    out = fixed_threshold_point([f0, f1], 0.5, "dev")
    assert out["threshold"] == 0.5 and out["source"] == "dev"
    p0, p1 = out["per_fold"]
    assert (p0["fold"], p0["FRR"], p0["FAR_random"], p0["FAR_skilled"]) == (0, 0.25, 0.5, 1 / 3)
    assert (p1["fold"], p1["FRR"], p1["FAR_random"], p1["FAR_skilled"]) == (1, 0.5, 0.0, 1 / 3)
    assert out["summary"]["FRR"] == pytest.approx({"mean": 0.375, "std": 0.125})
    assert out["summary"]["FAR_random"] == pytest.approx({"mean": 0.25, "std": 0.25})
    assert out["summary"]["FAR_skilled"] == pytest.approx({"mean": 1 / 3, "std": 0.0})
    assert out["summary"]["HTER_skilled"]["mean"] == pytest.approx((0.375 + 1 / 3) / 2)
    with pytest.raises(SigverError, match="finite"):
        fixed_threshold_point([f0], float("inf"))

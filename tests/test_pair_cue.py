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


def _script():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import pair_cue as script

    return script


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


def test_an_uncentred_cue_subtracts_weight_times_p_and_round_trips_its_flag() -> None:
    x = _toy()
    kept = fit_pair_cue(x, WRITERS, FORGED, C=1.0, weight=0.5)
    cue = fit_pair_cue(x, WRITERS, FORGED, C=1.0, weight=0.5, centred=False)
    np.testing.assert_array_equal(cue.v, kept.v)  # the flag changes the use, not the fit
    refs, q = x[:3], x[3:]
    assert kept.centred and not cue.centred
    np.testing.assert_allclose(cue.applied_penalty(q, refs), 0.5 * cue.z(q, refs).mean(axis=1))
    np.testing.assert_allclose(kept.applied_penalty(q, refs), kept.centred_penalty(q, refs))
    # One reference is enough without centring; centring needs two.
    assert cue.applied_penalty(q, refs[:1]).shape == (len(q),)
    with pytest.raises(PairCueError, match="two references"):
        kept.applied_penalty(q, refs[:1])
    back = PairCue.from_dict(json.loads(json.dumps(cue.to_dict())))
    assert back is not None and back.centred is False
    # A cue stored before the flag existed was centred.
    old = {k: v for k, v in kept.to_dict().items() if k != "centred"}
    assert PairCue.from_dict(old).centred is True
    with pytest.raises(PairCueError, match="true or false"):
        PairCue.from_dict({**cue.to_dict(), "centred": "false"})


def test_deployment_run_subtracts_each_users_centred_pair_penalty_and_matches_the_script() -> None:
    from test_forgery_cue import shared_cue_population

    from sigver.evaluation import simulate_deployment
    from sigver.forgery_cue import fit_forgery_cue

    script = _script()

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
    # The research script's fused score is the product path's, cue and pair together, at
    # v6's cue weight and at another model's (--cue-weight).
    for cw in (script.CUE_WEIGHT, 0.5):
        cue = fit_forgery_cue(fs.features, fs.yforg == 1, weight=cw, centred=True)
        both = simulate_deployment(fs, **kw, forgery_cue=cue, progress=False)
        both = both.with_pair_cue(pair, fs)
        terms = script.user_terms(
            plain, x.astype(np.float64), lambda split, i, cue=cue: (pair, cue)
        )
        ref = script.fused(plain.scores(), terms, "cue + pair, centred", 0.75, cue_weight=cw)
        for a, b in zip(ref, both.scores(), strict=True):
            for part in ("genuine", "skilled", "random"):
                for u, v in zip(getattr(a, part), getattr(b, part), strict=True):
                    np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-9)


def test_the_rule_compares_with_the_cue_at_the_weight_it_is_given() -> None:
    script = _script()

    def row(g: float, u: float, r: float = 0.0) -> dict[str, float]:
        return {"EER_global": g, "EER_user": u, "FAR_random": r}

    inner = {
        ("plain", 0.0): row(9.0, 5.0),
        ("cue", 0.3): row(7.0, 4.0),
        ("cue", 0.5): row(5.0, 3.0),
        ("pair", 0.5): row(6.5, 4.1),
        ("cue + pair, centred", 0.75): row(6.0, 4.1),
        ("pair, centred", 1.0): row(4.0, 3.0, r=0.6),  # out: FAR_random above the bound
    }
    assert [k for k, _ in script.candidates(0.5)[:2]] == ["plain", "cue"]
    assert script.candidates(0.5)[1] == ("cue", 0.5)
    # 6.0 wins the pool; 1.0 below the 0.3-cue (and 0.1 above its EER_user): better.
    assert script.choose(inner, 0.3) == {
        "chosen": ("cue + pair, centred", 0.75),
        "better_than_cue": True,
    }
    # Against the 0.5-cue the same winner is 1.0 point worse: not better.
    assert script.choose(inner, 0.5)["better_than_cue"] is False


def test_extra_writers_join_the_fit_as_their_own_writers() -> None:
    from sigver.pair_cue import PairRows

    x = _toy(0)
    more = _toy(1) + 0.5
    # The extra writers reuse the names "a", "b": they must still never pair with the main ones.
    extra = PairRows(more, WRITERS, FORGED, {"source": "toy"})
    got = fit_pair_cue(x, WRITERS, FORGED, extra=extra)
    by_hand = fit_pair_cue(
        np.concatenate([x, more]),
        np.concatenate([WRITERS, np.char.add("extra/", WRITERS)]),
        np.concatenate([FORGED, FORGED]),
    )
    np.testing.assert_array_equal(got.v, by_hand.v)
    assert got.n_pairs == 2 * 14 and got.extra == {"source": "toy"}
    assert PairCue.from_dict(json.loads(json.dumps(got.to_dict()))).extra == {"source": "toy"}
    with pytest.raises(PairCueError, match="extra pair features"):
        fit_pair_cue(x, WRITERS, FORGED, extra=PairRows(more[:, :3], WRITERS, FORGED))


def test_pair_rows_of_a_feature_set_keep_genuine_and_skilled_only() -> None:
    from sigver.featureset import FeatureSet
    from sigver.pair_cue import PairRows

    yforg = np.array([0, 0, 1, 2, 0, 1])
    fs = FeatureSet(
        features=np.arange(12, dtype=np.float32).reshape(6, 2),
        y=np.array([0, 0, 0, 0, 1, 1]),
        yforg=yforg,
        user_ids=np.array(["u1", "u2"]),
        filenames=np.array([f"{i}.png" for i in range(6)]),
        meta={},
    )
    rows = PairRows.from_featureset(fs, {"source": "x"})
    assert rows.features.shape == (5, 2) and 6.0 not in rows.features[:, 0]  # simple forgery out
    assert rows.writers.tolist() == ["u1", "u1", "u1", "u2", "u2"]
    assert rows.forged.tolist() == [False, False, True, False, True]
    assert rows.description == {"writers": 2, "source": "x"}
    no_forgery = FeatureSet(fs.features, fs.y, np.zeros(6, int), fs.user_ids, fs.filenames, {})
    with pytest.raises(PairCueError, match="no skilled forgeries"):
        PairRows.from_featureset(no_forgery)


def test_cross_fitted_cues_leave_out_each_writers_group_like_a_plain_loop() -> None:
    from test_forgery_cue import shared_cue_population

    from sigver.pair_cue import cross_fitted_pair_cues

    fs = shared_cue_population(n_users=6)
    writers = fs.user_ids[fs.y].astype(str)
    cues = cross_fitted_pair_cues(fs.features, writers, fs.yforg == 1, weight=0.5, groups=3)
    assert sorted(cues) == [f"{u:03d}" for u in range(1, 7)]
    for group in (["001", "002"], ["003", "004"], ["005", "006"]):
        out = ~np.isin(writers, group)
        want = fit_pair_cue(fs.features[out], writers[out], fs.yforg[out] == 1, weight=0.5)
        for w in group:
            np.testing.assert_array_equal(cues[w].v, want.v)
            assert not set(group) & set(np.unique(writers[out]))
    with pytest.raises(PairCueError, match="at least"):
        cross_fitted_pair_cues(fs.features, writers, fs.yforg == 1, weight=0.5, groups=7)


def test_deployment_run_scores_each_user_with_their_own_cue() -> None:
    from test_forgery_cue import shared_cue_population

    from sigver.evaluation import simulate_deployment

    fs = shared_cue_population(n_users=5)
    writers = fs.user_ids[fs.y]
    one = fit_pair_cue(fs.features, writers, fs.yforg == 1, weight=0.5)
    other = fit_pair_cue(fs.features, writers, fs.yforg == 1, weight=2.0)
    plain = simulate_deployment(
        fs, users="all", background=None, refs=4, folds=2, normalization="loo-lcb=0",
        progress=False,
    )  # fmt: skip
    ids = [str(u) for u in fs.user_ids]
    per_user = {u: (other if u == "002" else one) for u in ids}
    mixed = plain.with_pair_cue(per_user, fs).scores()
    single = plain.with_pair_cue(one, fs).scores()
    x = fs.features
    for m, s, p, split in zip(mixed, single, plain.scores(), plain.splits, strict=True):
        for i, u in enumerate(split.users):
            if ids[u] == "002":
                want = p.skilled[i] - other.centred_penalty(x[split.skilled[i]], x[split.refs[i]])
                np.testing.assert_allclose(m.skilled[i], want)
            else:
                np.testing.assert_array_equal(m.skilled[i], s.skilled[i])
    with pytest.raises(ValueError, match="no pair cue for users"):
        plain.with_pair_cue({"001": one}, fs)


def calibrated_with_pair(folder, *, on_by_default=False):
    """A tiny checkpoint in ``folder`` calibrated with a centred cue and a pair cue."""
    from test_forgery_cue import shared_cue_population

    from enrollment.testing import build_tiny_model
    from sigver.calibration import apply_calibration, calibrate_deployment
    from sigver.featureset import load_features
    from sigver.models.checkpoint import load_checkpoint
    from sigver.pair_cue import PairRows

    path = build_tiny_model(folder)
    bg = load_features(folder / "tiny.background.npz")
    fs = shared_cue_population(dim=bg.dim, sha=load_checkpoint(path).sha256)
    more = shared_cue_population(n_users=4, dim=bg.dim, seed=9)
    extra = PairRows.from_featureset(more, {"source": "toy"})
    ids = tuple(f"{u:03d}" for u in range(1, 9))
    kw = dict(users=ids, background=bg, normalization="loo-lcb=0", refs=4, folds=2)
    cue = dict(forgery_weight=0.5, forgery_centred=True)
    cal = calibrate_deployment(
        fs, **kw, **cue, pair_weight=0.75, pair_extra=extra, forgery_default=on_by_default
    )
    apply_calibration(path, cal)
    return path, cal, fs, extra, kw


def _evaluate_argv(path, fs, tmp_path):
    """``sigver evaluate --negatives model`` of ``fs``, saved with the checkpoint's hash."""
    from sigver.featureset import FeatureSet, save_features
    from sigver.models.checkpoint import load_checkpoint

    sha = load_checkpoint(path).sha256
    feats = save_features(
        tmp_path / "toy.npz",
        FeatureSet(
            fs.features, fs.y, fs.yforg, fs.user_ids, fs.filenames, {**fs.meta, "model_sha256": sha}
        ),
    )
    argv = ["evaluate", "--deployed-model", str(path), "--features", str(feats), "--no-progress"]
    return argv + ["--negatives", "model", "--exp-users", "all", "--refs", "4", "--folds", "2"]


@pytest.fixture(scope="module")
def pair_model(tmp_path_factory):
    return calibrated_with_pair(tmp_path_factory.mktemp("pair-model"))


def test_calibration_stores_the_pair_cue_and_calibrates_the_cross_fitted_fused_score(pair_model):
    from dataclasses import replace

    from sigver.calibration import CalibrationError, calibrate_deployment
    from sigver.evaluation import simulate_deployment
    from sigver.forgery_cue import cross_fitted_penalty
    from sigver.metrics import eer_global
    from sigver.pair_cue import cross_fitted_pair_cues, stored_pair_cue

    path, cal, fs, extra, kw = pair_model
    pair = stored_pair_cue(cal.to_dict())
    assert pair.weight == 0.75 and len(pair.users) == 8
    assert pair.extra == {"writers": 4, "source": "toy"}
    writers = fs.user_ids[fs.y].astype(str)
    direct = fit_pair_cue(fs.features, writers, fs.yforg == 1, extra=extra)
    np.testing.assert_allclose(pair.v, direct.v)  # the stored cue: all calibration writers
    assert "pair cue of weight 0.75" in cal.summary()
    # The fused operating points are those of the cross-fitted scores, rebuilt by hand.
    run = simulate_deployment(fs, **kw, progress=False)
    forged = fs.yforg == 1
    pen = cross_fitted_penalty(fs.features, forged, writers, weight=0.5)
    crossed = cross_fitted_pair_cues(fs.features, writers, forged, weight=0.75, extra=extra)
    both = replace(run, penalty=pen, centre_penalty=True).with_pair_cue(crossed, fs)
    g = np.concatenate([np.ravel(a) for sc in both.scores() for a in sc.genuine])
    s = np.concatenate([np.ravel(a) for sc in both.scores() for a in sc.skilled])
    assert cal.forgery_cue["calibration"]["eer"] == pytest.approx(eer_global(g, s)[0])
    no_pair = calibrate_deployment(fs, **kw, forgery_weight=0.5, forgery_centred=True)
    assert "pair" not in no_pair.forgery_cue
    assert (
        no_pair.forgery_cue["calibration"]["threshold"]
        != cal.forgery_cue["calibration"]["threshold"]
    )
    with pytest.raises(CalibrationError, match="centred image cue, itself centred, or alone"):
        calibrate_deployment(fs, **kw, forgery_weight=0.5, pair_weight=0.75)
    with pytest.raises(CalibrationError, match="itself centred"):  # never measured either
        calibrate_deployment(
            fs, **kw, forgery_weight=0.5, forgery_centred=True, pair_weight=0.75, pair_centred=False
        )


@pytest.fixture(scope="module")
def pair_only_model(tmp_path_factory):
    """A tiny checkpoint calibrated with an uncentred pair cue and no image cue."""
    from test_forgery_cue import shared_cue_population

    from enrollment.testing import build_tiny_model
    from sigver.calibration import apply_calibration, calibrate_deployment
    from sigver.featureset import load_features
    from sigver.models.checkpoint import load_checkpoint

    folder = tmp_path_factory.mktemp("pair-only")
    path = build_tiny_model(folder)
    bg = load_features(folder / "tiny.background.npz")
    fs = shared_cue_population(dim=bg.dim, sha=load_checkpoint(path).sha256)
    ids = tuple(f"{u:03d}" for u in range(1, 9))
    kw = dict(users=ids, background=bg, normalization="loo-lcb=0", refs=4, folds=2)
    cal = calibrate_deployment(fs, **kw, pair_weight=0.75, pair_centred=False, forgery_default=True)
    apply_calibration(path, cal)
    return path, cal, fs, kw


def test_a_pair_only_uncentred_cue_is_calibrated_on_its_own_cross_fitted_scores(pair_only_model):
    from sigver.evaluation import simulate_deployment
    from sigver.forgery_cue import on_by_default
    from sigver.metrics import eer_global
    from sigver.pair_cue import cross_fitted_pair_cues, stored_pair_cue

    path, cal, fs, kw = pair_only_model
    block = cal.forgery_cue
    assert block["weight"] == 0.0 and block["centred"] is False  # the image part subtracts 0
    pair = stored_pair_cue(cal.to_dict())
    assert pair.weight == 0.75 and pair.centred is False
    assert on_by_default(cal.to_dict())
    assert "image part off" in cal.summary()
    assert "an uncentred pair cue of weight 0.75" in cal.summary()
    # Rebuilt by hand: plain scores minus 0.75 * mean z against the fold's references,
    # each writer scored by a classifier fitted without their half.
    run = simulate_deployment(fs, **kw, progress=False)
    writers = fs.user_ids[fs.y].astype(str)
    crossed = cross_fitted_pair_cues(fs.features, writers, fs.yforg == 1, weight=0.75)
    x, ids = fs.features, [str(u) for u in fs.user_ids]
    g, s = [], []
    for split, sc in zip(run.splits, run.scores(), strict=True):
        for i, u in enumerate(split.users):
            refs = x[split.refs[i]]
            cue = crossed[ids[u]]
            g.append(sc.genuine[i] - 0.75 * cue.z(x[split.test_genuine[i]], refs).mean(axis=1))
            s.append(sc.skilled[i] - 0.75 * cue.z(x[split.skilled[i]], refs).mean(axis=1))
    want = eer_global(np.concatenate(g), np.concatenate(s))[0]
    assert block["calibration"]["eer"] == pytest.approx(want)


def test_the_verifier_and_evaluate_subtract_a_pair_only_cue_uncentred(
    pair_only_model, tmp_path, capsys
):
    from enrollment import Verifier
    from enrollment.testing import draw_signature
    from sigver.cli import main
    from sigver.models.card import write_model_card
    from sigver.models.checkpoint import load_checkpoint

    path, cal, fs, _ = pair_only_model
    v = Verifier(home=tmp_path / "home", model=path)  # on by default
    assert v.pair_cue is not None and not v.pair_cue.centred
    refs = [draw_signature(1, s) for s in range(5)]
    v.enroll("w1", refs)
    v.enroll("w2", [draw_signature(2, s) for s in range(5)])
    img = draw_signature(1, 7)
    r = v.verify("w1", img)
    q = v._features([v._load_image(img, 0)])
    ref_feats = v._features([v._load_image(x, i) for i, x in enumerate(refs)])
    want = 0.75 * v.pair_cue.z(q, ref_feats).mean()
    assert r.forgery_penalty == pytest.approx(float(want), rel=1e-5)
    off = Verifier(home=tmp_path / "home", model=path, forgery_cue=False)
    assert r.score == pytest.approx(off.verify("w1", img).score - r.forgery_penalty)
    assert r.threshold == cal.forgery_cue["calibration"]["threshold"]
    text = write_model_card(tmp_path / "tiny.md", load_checkpoint(path)).read_text()
    assert "decides alone" in text and "(uncentred)" in text
    assert main([*_evaluate_argv(path, fs, tmp_path), "--out", str(tmp_path / "dep")]) == 0
    assert "an uncentred pair cue of weight 0.75" in capsys.readouterr().out
    dep = json.loads((tmp_path / "dep" / "deployment.json").read_text())
    assert dep["pair_cue"]["centred"] is False and dep["threshold"] == r.threshold


def test_verifier_and_evaluate_subtract_the_pair_cue_against_the_stored_references(
    pair_model, tmp_path, capsys
):
    from enrollment import Verifier
    from enrollment.testing import draw_signature
    from sigver.cli import main
    from sigver.models.card import write_model_card
    from sigver.models.checkpoint import load_checkpoint

    path, cal, fs, _, _ = pair_model
    off = Verifier(home=tmp_path / "home", model=path)
    assert off.pair_cue is None
    refs = [draw_signature(1, s) for s in range(5)]
    off.enroll("w1", refs)
    off.enroll("w2", [draw_signature(2, s) for s in range(5)])
    on = Verifier(home=tmp_path / "home", model=path, forgery_cue=True)
    assert on.pair_cue is not None and on.pair_cue.weight == 0.75
    img = draw_signature(1, 7)
    r = on.verify("w1", img)
    q = on._features([on._load_image(img, 0)])
    ref_feats = on._features([on._load_image(x, i) for i, x in enumerate(refs)])
    z_refs = on.get_user("w1").classifier_params["forgery_cue_ref_mean_z"]
    want = on.forgery_cue.penalty(q, z_refs) + on.pair_cue.centred_penalty(q, ref_feats)
    assert r.forgery_penalty == pytest.approx(float(want[0]), rel=1e-5)
    assert r.score == pytest.approx(off.verify("w1", img).score - r.forgery_penalty)
    assert r.threshold == cal.forgery_cue["calibration"]["threshold"]
    # Cached references are those of the current enrollment: re-enrolling changes them.
    on.enroll("w1", [draw_signature(1, s) for s in range(5, 10)], force=True)
    assert on.verify("w1", img).forgery_penalty != pytest.approx(r.forgery_penalty)
    # sigver evaluate --negatives model --forgery-cue carries the pair cue too.
    argv = _evaluate_argv(path, fs, tmp_path)
    assert main([*argv, "--forgery-cue", "--out", str(tmp_path / "dep")]) == 0
    capsys.readouterr()
    dep = json.loads((tmp_path / "dep" / "deployment.json").read_text())
    assert dep["pair_cue"]["weight"] == 0.75 and dep["pair_cue"]["extra"]["writers"] == 4
    text = write_model_card(tmp_path / "tiny.md", load_checkpoint(path)).read_text()
    assert "pairwise part" in text and "4 further writers (toy)" in text


def test_cli_calibrate_fits_keeps_and_drops_the_pair_cue(tmp_path, capsys):
    from test_calibration import _tiny_dataset
    from test_forgery_cue import shared_cue_population

    from enrollment.testing import build_tiny_model
    from sigver.cli import main
    from sigver.featureset import load_features, save_features
    from sigver.models.checkpoint import load_checkpoint

    path = build_tiny_model(tmp_path / "models")
    data = _tiny_dataset(tmp_path)
    dim = load_features(path.with_name("tiny.background.npz")).dim
    extra = save_features(tmp_path / "extra.npz", shared_cue_population(n_users=3, dim=dim))
    argv = ["calibrate", "--model", str(path), "--data", str(data), "--users", "001-004"]
    argv += ["--refs", "3", "--folds", "2", "--jobs", "1", "--no-progress", "--write"]
    cue = ["--normalization", "loo-lcb=0", "--forgery-weight", "0.3", "--forgery-centred"]
    assert main([*argv, *cue, "--pair-weight", "0.5", "--pair-extra", str(extra)]) == 0
    assert "pair cue of weight 0.5" in capsys.readouterr().out

    def stored():
        return load_checkpoint(path).meta.metrics["calibration"]["forgery_cue"]

    assert stored()["pair"]["weight"] == 0.5 and stored()["pair"]["extra"]["writers"] == 3
    # Recalibrating without the extra writers would quietly change the cue: refused.
    assert main(argv) == 2
    assert "--pair-extra" in capsys.readouterr().err
    # So would dropping the image part and leaving the pair part to decide alone.
    assert main([*argv, "--forgery-weight", "0", "--pair-extra", str(extra)]) == 2
    assert "also give --pair-weight" in capsys.readouterr().err
    assert main([*argv, "--pair-extra", str(extra)]) == 0  # kept: weight and extra writers
    assert stored()["pair"]["weight"] == 0.5
    assert main([*argv, "--pair-weight", "0"]) == 0  # 0 removes the pair part, keeps the cue
    assert "pair" not in stored() and stored()["weight"] == 0.3
    assert stored()["on_by_default"] is False
    assert main([*argv, "--forgery-cue-default"]) == 0
    assert main(argv) == 0  # kept on a plain rerun
    assert stored()["on_by_default"] is True and "(on by default)" in capsys.readouterr().out
    assert main([*argv, "--forgery-weight", "0"]) == 0  # no cue, nothing to keep on
    assert not stored()
    # A pair-only, uncentred cue: kept as it is on a plain rerun.
    alone = ["--pair-weight", "0.5", "--no-pair-centred", "--forgery-cue-default"]
    assert main([*argv, *alone]) == 0
    assert "an uncentred pair cue of weight 0.5" in capsys.readouterr().out
    assert stored()["weight"] == 0 and stored()["pair"]["centred"] is False
    assert main(argv) == 0
    assert stored()["pair"]["centred"] is False and stored()["on_by_default"] is True
    assert main([*argv, "--pair-weight", "0"]) == 0  # nothing left: no cue
    assert not stored()


def test_a_cue_declared_on_by_default_decides_unless_switched_off(tmp_path, monkeypatch, capsys):
    from enrollment import Verifier
    from enrollment.testing import draw_signature
    from sigver.calibration import CalibrationError, calibrate_deployment
    from sigver.cli import main
    from sigver.models.card import write_model_card
    from sigver.models.checkpoint import load_checkpoint

    (tmp_path / "m").mkdir()
    path, cal, fs, _, kw = calibrated_with_pair(tmp_path / "m", on_by_default=True)
    assert cal.forgery_cue["on_by_default"] is True and "(on by default)" in cal.summary()
    fused_t = cal.forgery_cue["calibration"]["threshold"]
    monkeypatch.delenv("SIGVER_FORGERY_CUE", raising=False)
    v = Verifier(home=tmp_path / "home", model=path)  # nothing asked: the model's choice
    assert v.forgery_cue is not None and v.pair_cue is not None
    assert v.default_threshold == fused_t
    for w in (1, 2):
        v.enroll(f"w{w}", [draw_signature(w, s) for s in range(5)])
    assert v.verify("w1", draw_signature(1, 7)).forgery_penalty is not None
    off = Verifier(home=tmp_path / "home", model=path, forgery_cue=False)
    assert off.forgery_cue is None and off.pair_cue is None
    assert off.default_threshold == cal.threshold
    monkeypatch.setenv("SIGVER_FORGERY_CUE", "0")
    assert Verifier(home=tmp_path / "home", model=path).forgery_cue is None
    monkeypatch.delenv("SIGVER_FORGERY_CUE")
    # sigver evaluate --negatives model follows the same default; --no-forgery-cue turns it off.
    argv = _evaluate_argv(path, fs, tmp_path)
    assert main([*argv, "--out", str(tmp_path / "on")]) == 0
    assert main([*argv, "--no-forgery-cue", "--out", str(tmp_path / "off")]) == 0
    capsys.readouterr()
    on = json.loads((tmp_path / "on" / "deployment.json").read_text())
    plain = json.loads((tmp_path / "off" / "deployment.json").read_text())
    assert on["threshold"] == fused_t and on["pair_cue"]["weight"] == 0.75
    assert plain["threshold"] == cal.threshold and "forgery_cue" not in plain
    # The transfer check's raw scores are the SVM's, before the cue: the same enrollments
    # give the same raw gap with the cue on or off, while the decided scores differ.
    assert on["transfer"]["raw"] == plain["transfer"]["raw"]
    assert on["transfer"]["decided"] != plain["transfer"]["decided"]
    assert on["transfer"]["decided"]["EER_global"] == pytest.approx(
        on["a_posteriori"]["EER_global"]["mean"]
    )
    text = write_model_card(tmp_path / "tiny.md", load_checkpoint(path)).read_text()
    assert "Forgery cue (on by default)" in text and "--no-forgery-cue" in text
    with pytest.raises(CalibrationError, match="needs a forgery cue"):
        calibrate_deployment(fs, **kw, forgery_default=True)


def _folds(shift: float, users: int = 3) -> list:
    """Two folds of ``users`` identical users whose genuine and skilled scores overlap.

    Gaussian, not evenly spaced: an evenly spaced overlap is collinear on the ROC curve,
    where ``eer_threshold``'s reference rule reads a point off the crossing.
    """
    from sigver.evaluation import FoldScores

    rng = np.random.default_rng(0)
    g = rng.normal(1.0, 1.0, 200) + shift
    s = rng.normal(-1.0, 1.0, 200) + shift
    r = np.full(10, -50.0) + shift
    fold = FoldScores(
        genuine=[g.copy() for _ in range(users)],
        random=[r.copy() for _ in range(users)],
        skilled=[s.copy() for _ in range(users)],
        simple=[np.empty(0) for _ in range(users)],
    )
    return [fold, fold]


def test_a_threshold_transfers_to_its_own_population_and_not_across_a_shift() -> None:
    script = _script()
    same = script.transfer_ratios(_folds(0.0), _folds(0.0))
    # At its own balanced threshold a population's FRR and FAR_skilled are its EER.
    assert same["FRR/EER"] == pytest.approx(1.0, abs=0.05)
    assert same["FAR_skilled/EER"] == pytest.approx(1.0, abs=0.05)
    assert script.transfers({"a": same, "b": same})
    # Every score 100 higher: the old threshold accepts every forgery, rejects no genuine.
    moved = script.transfer_ratios(_folds(0.0), _folds(100.0))
    assert moved["FRR"] == 0.0 and moved["FAR_skilled"] == 100.0
    assert moved["EER_global"] == pytest.approx(same["EER_global"])
    assert moved["FAR_skilled/EER"] == pytest.approx(100.0 / same["EER_global"])
    assert not script.transfers({"a": same, "b": moved})
    # And the reverse direction: every genuine rejected.
    back = script.transfer_ratios(_folds(100.0), _folds(0.0))
    assert back["FRR"] == 100.0 and back["FAR_skilled"] == 0.0


def test_the_transfer_bar_keeps_candidates_that_fail_it_out_of_the_pool() -> None:
    script = _script()

    def row(g: float, u: float) -> dict[str, float]:
        return {"EER_global": g, "EER_user": u, "FAR_random": 0.0}

    inner = {
        ("plain", 0.0): row(9.0, 5.0),
        ("cue", 0.3): row(7.0, 4.0),
        ("pair", 0.5): row(5.0, 3.0),
        ("pair, centred", 0.5): row(6.0, 3.5),
    }
    assert script.choose(inner, 0.3)["chosen"] == ("pair", 0.5)
    assert script.choose(inner, 0.3, eligible={("pair, centred", 0.5)})["chosen"] == (
        "pair, centred",
        0.5,
    )
    assert script.choose(inner, 0.3, eligible=set()) == {"chosen": None, "better_than_cue": False}


def test_the_transfer_bar_needs_the_selection_writers() -> None:
    script = _script()
    with pytest.raises(SystemExit):
        script.main(["--transfer-bar", "--work", "/nonexistent-never-created"])
    with pytest.raises(ValueError, match="select-synthetic"):
        script.run_experiment(None, None, None, transfer_bar=True)


def _terms(
    p_refs: list[float], p_shift: float = 0.0, second: list[float] | None = None
) -> list[list[dict]]:
    """Two folds' terms for the users of ``_folds``: pair penalties 0..n-1 plus ``p_shift``;
    ``second``: the second fold's reference means (default: the first's)."""
    return [_fold_terms(p_refs, p_shift), _fold_terms(second or p_refs, p_shift)]


def _fold_terms(p_refs: list[float], p_shift: float) -> list[dict]:
    fold = []
    for u, pr in enumerate(p_refs):
        n = {"genuine": 200, "random": 10, "skilled": 200, "simple": 0}
        fold.append(
            {
                "p": {k: np.arange(m, dtype=float) / 100 + u + p_shift for k, m in n.items()},
                "p_refs": pr + p_shift,
                "z": {k: np.full(m, 2.0) for k, m in n.items()},
                "z_refs": 1.0,
            }
        )
    return fold


def test_the_store_centred_term_subtracts_the_stores_level_and_ignores_a_population_shift() -> None:
    script = _script()
    scores, terms = _folds(0.0), _terms([1.0, 2.0, 6.0])
    store = script.fused(scores, terms, "pair, store-centred", 0.5)
    plain = script.fused(scores, terms, "pair", 0.5)
    # By hand: the store's level is (1 + 2 + 6) / 3 = 3, so each score is 0.5 * 3 above
    # the uncentred term's, for every user, and no user's own p_refs enters.
    for a, b in zip(store[0].genuine, plain[0].genuine, strict=True):
        np.testing.assert_allclose(a - b, 1.5)
    # One number per store: the fold's EERs are the uncentred term's.
    assert script.fold_eers(store) == pytest.approx(script.fold_eers(plain))
    # Every penalty of a population moved by 4 (its level): the store-centred scores do not
    # move, the uncentred ones move by w * 4.
    moved = _terms([1.0, 2.0, 6.0], p_shift=4.0)
    again = script.fused(scores, moved, "pair, store-centred", 0.5)
    np.testing.assert_allclose(again[1].skilled[2], store[1].skilled[2])
    shifted = script.fused(scores, moved, "pair", 0.5)
    np.testing.assert_allclose(plain[1].skilled[2] - shifted[1].skilled[2], 2.0)
    # Each fold is its own store: a second fold with reference means 0, 0, 3 has level 1.
    two = script.fused(
        scores, _terms([1.0, 2.0, 6.0], second=[0.0, 0.0, 3.0]), "pair, store-centred", 0.5
    )
    np.testing.assert_allclose(two[0].genuine[0] - plain[0].genuine[0], 1.5)
    np.testing.assert_allclose(two[1].genuine[0] - plain[1].genuine[0], 0.5)
    # With the cue: its centred term 0.3 * (2 - 1) comes off on top.
    both = script.fused(scores, terms, "cue + pair, store-centred", 0.5)
    np.testing.assert_allclose(store[0].random[1] - both[0].random[1], 0.3)


def test_store_centred_candidates_compete_only_when_asked_for() -> None:
    script = _script()
    assert not any("store" in v for v, _ in script.candidates(0.3))
    names = {v for v, _ in script.candidates(0.3, script.VARIANTS + script.STORE_VARIANTS)}
    assert set(script.STORE_VARIANTS) <= names
    inner = {
        ("cue", 0.3): {"EER_global": 7.0, "EER_user": 4.0, "FAR_random": 0.0},
        ("pair, store-centred", 0.5): {"EER_global": 5.0, "EER_user": 3.5, "FAR_random": 0.0},
    }
    assert script.choose(inner, 0.3) == {
        "chosen": ("pair, store-centred", 0.5),
        "better_than_cue": True,
    }

"""The writer-independent forgery cue: fit, storage, and one use by calibration, simulation and
the Verifier."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from enrollment import Verifier
from enrollment.testing import build_tiny_model, draw_signature
from sigver.calibration import Calibration, apply_calibration, calibrate_deployment
from sigver.cli import main
from sigver.evaluation import simulate_deployment
from sigver.featureset import FeatureSet, load_features, save_features
from sigver.forgery_cue import (
    ForgeryCue,
    ForgeryCueError,
    cross_fitted_penalty,
    fit_forgery_cue,
)
from sigver.models.checkpoint import load_checkpoint


def shared_cue_population(n_users=8, dim=16, n_gen=8, n_skilled=4, seed=0, sha="") -> FeatureSet:
    """Writers whose skilled forgeries all move along one direction (a cue shared by writers)."""
    rng = np.random.default_rng(seed)
    cue = np.zeros(dim)
    cue[0] = 1.0
    feats, y, yforg, names = [], [], [], []
    for u in range(n_users):
        centre = rng.normal(0.0, 3.0, dim)
        centre[0] = rng.normal(0.0, 0.2)  # writers differ little along the cue
        for k in range(n_gen + n_skilled):
            forged = k >= n_gen
            feats.append(centre + (1.2 * cue if forged else 0) + rng.normal(0.0, 0.3, dim))
            y.append(u)
            yforg.append(int(forged))
            names.append(f"{u + 1:03d}/{'f' if forged else 'g'}{k}.png")
    return FeatureSet(
        features=np.array(feats, dtype=np.float32),
        y=np.array(y),
        yforg=np.array(yforg),
        user_ids=np.array([f"{u + 1:03d}" for u in range(n_users)]),
        filenames=np.array(names),
        meta={"dataset": "toyds", "model_id": "toy", "model_sha256": sha},
    )


def test_cue_finds_the_shared_direction_on_new_writers():
    train = shared_cue_population(seed=0)
    test = shared_cue_population(seed=1)
    cue = fit_forgery_cue(train.features, train.yforg == 1, weight=0.5, users=["a", "b"])
    assert (cue.n_genuine, cue.n_forgeries, cue.users) == (64, 32, ("a", "b"))
    z = cue.z(test.features)
    forged = test.yforg == 1
    # other writers' forgeries rank above their genuine signatures along the cue
    assert roc_auc_score(forged, z) > 0.95
    # z is standardised on the fitting images; the penalty is weight * z
    assert np.std(cue.z(train.features)) == pytest.approx(1.0)
    np.testing.assert_allclose(cue.penalty(test.features), 0.5 * z)
    zero = fit_forgery_cue(train.features, train.yforg == 1, weight=0.0)
    assert not np.any(zero.penalty(test.features))


def test_cue_round_trip_and_refusals():
    fs = shared_cue_population()
    cue = fit_forgery_cue(fs.features, fs.yforg == 1, weight=0.3, users=fs.user_ids)
    stored = json.loads(json.dumps(cue.to_dict()))  # what a checkpoint's metadata holds
    back = ForgeryCue.from_dict(stored)
    np.testing.assert_array_equal(back.z(fs.features), cue.z(fs.features))
    assert back.users == cue.users and back.weight == 0.3
    assert ForgeryCue.from_dict(None) is None and ForgeryCue.from_dict({}) is None
    with pytest.raises(ForgeryCueError, match="16 features"):
        cue.z(fs.features[:, :8])
    for bad in ({"coef": stored["coef"][:-1]}, {"weight": -1.0}, {"z_scale": 0.0}):
        with pytest.raises(ForgeryCueError):
            ForgeryCue.from_dict({**stored, **bad})
    with pytest.raises(ForgeryCueError, match="malformed"):
        ForgeryCue.from_dict({k: v for k, v in stored.items() if k != "intercept"})
    with pytest.raises(ForgeryCueError, match="NaN|finite"):
        ForgeryCue.from_dict({**stored, "intercept": float("nan")})
    with pytest.raises(ForgeryCueError, match="genuine signatures and forgeries"):
        fit_forgery_cue(fs.features, np.zeros(len(fs)), weight=1.0)


def test_cross_fitted_penalty_matches_a_plain_loop():
    fs = shared_cue_population(n_users=6)
    writers = fs.user_ids[fs.y]
    forged = fs.yforg == 1
    got = cross_fitted_penalty(fs.features, forged, writers, weight=0.7, groups=3)
    want = np.zeros(len(fs))
    for group in (["001", "002"], ["003", "004"], ["005", "006"]):
        inside = np.isin(writers, group)
        cue = fit_forgery_cue(fs.features[~inside], forged[~inside], weight=0.7)
        for row in np.flatnonzero(inside):
            want[row] = cue.penalty(fs.features[row : row + 1])[0]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    with pytest.raises(ForgeryCueError, match="at least"):
        cross_fitted_penalty(fs.features, forged, np.zeros(len(fs)), weight=1.0)


def test_deployment_subtracts_each_images_own_penalty():
    fs = shared_cue_population(n_users=5)
    cue = fit_forgery_cue(fs.features, fs.yforg == 1, weight=0.4)
    kw = dict(users="all", background=None, refs=4, folds=2, normalization="loo-lcb=0")
    plain = simulate_deployment(fs, **kw, progress=False)
    fused = simulate_deployment(fs, **kw, forgery_cue=cue, progress=False)
    pen = cue.penalty(fs.features)
    for a, b, split in zip(plain.scores(), fused.scores(), fused.splits, strict=True):
        for i in range(len(split.test_genuine)):
            np.testing.assert_allclose(b.genuine[i], a.genuine[i] - pen[split.test_genuine[i]])
            np.testing.assert_allclose(b.skilled[i], a.skilled[i] - pen[split.skilled[i]])
            np.testing.assert_allclose(b.random[i], a.random[i] - pen[split.random_forgeries(i)])
    assert fused.info["forgery_cue"]["weight"] == 0.4


def calibrated_with_cue(folder, *, centred=False):
    """A tiny checkpoint in ``folder`` calibrated with a forgery cue of weight 0.5."""
    path = build_tiny_model(folder)
    bg = load_features(folder / "tiny.background.npz")
    fs = shared_cue_population(dim=bg.dim, sha=load_checkpoint(path).sha256)
    cal = calibrate_deployment(
        fs,
        users="001-008",
        background=bg,
        normalization="loo-lcb=0",
        refs=4,
        folds=2,
        forgery_weight=0.5,
        forgery_centred=centred,
    )
    apply_calibration(path, cal)
    return path, cal, fs


@pytest.fixture(scope="module")
def cue_model(tmp_path_factory):
    return calibrated_with_cue(tmp_path_factory.mktemp("cue-model"))


def test_calibration_stores_the_cue_and_measures_it_cross_fitted(cue_model):
    path, cal, fs = cue_model
    assert cal.forgery_cue["weight"] == 0.5 and len(cal.forgery_cue["users"]) == 8
    fused = cal.forgery_cue["calibration"]
    assert set(fused["operating_points"]) == set(cal.operating_points)
    stored = load_checkpoint(path).meta.metrics["calibration"]
    assert Calibration.from_dict(stored).forgery_cue == json.loads(json.dumps(cal.forgery_cue))
    assert "forgery cue       weight 0.5" in cal.summary()
    # The plain operating points stay the model's default; the fused ones sit beside them.
    plain = calibrate_deployment(
        fs, users="001-008", background=bg_of(path), normalization="loo-lcb=0", refs=4, folds=2
    )
    assert plain.forgery_cue == {} and plain.threshold == cal.threshold
    assert fused["threshold"] != cal.threshold


def bg_of(path):
    return load_features(path.with_name("tiny.background.npz"))


def test_verifier_and_evaluate_apply_the_models_cue(cue_model, tmp_path, capsys, monkeypatch):
    path, cal, fs = cue_model
    fused = cal.forgery_cue["calibration"]
    off = Verifier(home=tmp_path / "home", model=path)
    assert off.forgery_cue is None and off.default_threshold == cal.threshold
    monkeypatch.setenv("SIGVER_FORGERY_CUE", "on")
    v = Verifier(home=tmp_path / "home", model=path)
    assert v.forgery_cue is not None and v.forgery_cue.weight == 0.5
    assert v.default_threshold == fused["threshold"]  # the fused score's operating point
    assert v.operating_points()["balanced"]["threshold"] == fused["threshold"]
    for w in (1, 2):
        v.enroll(f"w{w}", [draw_signature(w, s) for s in range(5)])
    img = draw_signature(1, 7)
    r = v.verify("w1", img)
    feature = v._features([v._load_image(img, 0)])
    assert r.forgery_penalty == pytest.approx(float(v.forgery_cue.penalty(feature)[0]))
    loc = v.get_user("w1").classifier_params["normalization"]["loc"]
    assert r.score == pytest.approx(r.raw_score - loc - r.forgery_penalty)
    assert r.to_dict()["forgery_penalty"] == r.forgery_penalty
    assert r.threshold == fused["threshold"] and r.accepted == (r.score >= r.threshold)
    assert r.calibrated_rates["FRR"] == pytest.approx(fused["operating_points"]["balanced"]["FRR"])
    plain = off.verify("w1", img)  # same enrollment, cue off: the plain score and point
    assert plain.forgery_penalty is None and plain.score == pytest.approx(
        r.score + r.forgery_penalty
    )
    # sigver evaluate --negatives model decides on the same fused score
    sha = load_checkpoint(path).sha256  # the calibrated file's, as its features would record
    feats = save_features(
        tmp_path / "toy.npz",
        FeatureSet(
            fs.features, fs.y, fs.yforg, fs.user_ids, fs.filenames, {**fs.meta, "model_sha256": sha}
        ),
    )
    argv = ["evaluate", "--deployed-model", str(path), "--features", str(feats)]
    argv += ["--negatives", "model", "--exp-users", "all", "--refs", "4", "--folds", "2"]
    assert main([*argv, "--forgery-cue", "--out", str(tmp_path / "dep"), "--no-progress"]) == 0
    assert "forgery cue weight 0.5" in capsys.readouterr().out
    dep = json.loads((tmp_path / "dep" / "deployment.json").read_text())
    assert dep["forgery_cue"]["weight"] == 0.5 and dep["threshold"] == fused["threshold"]


def test_forgery_cue_switch_refuses_a_model_without_one(tmp_path, monkeypatch):
    from sigver.errors import ModelError, SigverError

    path = build_tiny_model(tmp_path / "m")
    with pytest.raises(ModelError, match="carries no forgery cue"):
        Verifier(home=tmp_path / "home", model=path, forgery_cue=True)
    monkeypatch.setenv("SIGVER_FORGERY_CUE", "maybe")
    with pytest.raises(SigverError, match="SIGVER_FORGERY_CUE"):
        Verifier(home=tmp_path / "home", model=path)


def test_model_card_names_the_cue(cue_model, tmp_path):
    from sigver.models.card import write_model_card

    path, _, _ = cue_model
    text = write_model_card(tmp_path / "tiny.md", load_checkpoint(path)).read_text()
    assert "Forgery cue (off by default)" in text and "weight 0.5" in text
    assert "| operating point (forgery cue) |" in text


def test_cli_calibrate_writes_a_cue_and_keeps_it_on_recalibration(tmp_path, capsys):
    from test_calibration import _tiny_dataset

    path = build_tiny_model(tmp_path / "models")
    data = _tiny_dataset(tmp_path)
    argv = ["calibrate", "--model", str(path), "--data", str(data), "--users", "001-004"]
    argv += ["--refs", "3", "--folds", "2", "--jobs", "1", "--no-progress", "--write"]
    assert main([*argv, "--normalization", "loo-lcb=0", "--forgery-weight", "0.3"]) == 0
    assert "forgery cue       weight 0.3" in capsys.readouterr().out
    stored = load_checkpoint(path).meta.metrics["calibration"]
    assert stored["forgery_cue"]["weight"] == 0.3 and stored["forgery_cue"]["calibration"]
    assert main(argv) == 0  # no --forgery-weight: the model's current cue is kept
    assert load_checkpoint(path).meta.metrics["calibration"]["forgery_cue"]["weight"] == 0.3
    assert main([*argv, "--forgery-weight", "0"]) == 0  # 0 removes it
    assert not load_checkpoint(path).meta.metrics["calibration"]["forgery_cue"]


def test_centred_cue_moves_each_user_by_their_own_references(tmp_path):
    fs = shared_cue_population(n_users=5)
    cue = fit_forgery_cue(fs.features, fs.yforg == 1, weight=0.4, centred=True)
    kw = dict(users="all", background=None, refs=4, folds=2, normalization="loo-lcb=0")
    plain = simulate_deployment(fs, **kw, progress=False)
    fused = simulate_deployment(fs, **kw, forgery_cue=cue, progress=False)
    assert fused.centre_penalty and fused.info["forgery_cue"]["centred"]
    pen = 0.4 * cue.z(fs.features)
    for a, b, split in zip(plain.scores(), fused.scores(), fused.splits, strict=True):
        for i in range(len(split.test_genuine)):
            ref = pen[split.refs[i]].mean()
            np.testing.assert_allclose(b.skilled[i], a.skilled[i] - (pen[split.skilled[i]] - ref))
            rows = split.random_forgeries(i)
            np.testing.assert_allclose(b.random[i], a.random[i] - (pen[rows] - ref))
    with pytest.raises(ForgeryCueError, match="reference mean"):
        cue.penalty(fs.features)
    # A shift of every image's features along the cue leaves the centred penalty unchanged.
    moved = fs.features + 5.0 * cue.scale * cue.coef / np.linalg.norm(cue.coef) ** 2
    before = cue.penalty(fs.features[:3], float(cue.z(fs.features[3:6]).mean()))
    after = cue.penalty(moved[:3], float(cue.z(moved[3:6]).mean()))
    np.testing.assert_allclose(after, before, atol=1e-9)


def test_verifier_with_a_centred_cue_uses_the_reference_mean_recorded_at_enrollment(tmp_path):
    (tmp_path / "m").mkdir()
    path, cal, _ = calibrated_with_cue(tmp_path / "m", centred=True)
    assert cal.forgery_cue["centred"] is True
    off = Verifier(home=tmp_path / "home", model=path)
    refs = [draw_signature(1, s) for s in range(5)]
    off.enroll("w1", refs)
    off.enroll("w2", [draw_signature(2, s) for s in range(5)])
    params = off.get_user("w1").classifier_params
    ref_feats = off._features([off._load_image(img, i) for i, img in enumerate(refs)])
    z_refs = off._stored_cue.z(ref_feats)
    assert params["forgery_cue_ref_mean_z"] == pytest.approx(float(z_refs.mean()))
    on = Verifier(home=tmp_path / "home", model=path, forgery_cue=True)
    img = draw_signature(1, 7)
    r = on.verify("w1", img)
    z = float(on.forgery_cue.z(on._features([on._load_image(img, 0)]))[0])
    assert r.forgery_penalty == pytest.approx(0.5 * (z - params["forgery_cue_ref_mean_z"]))
    assert r.score == pytest.approx(off.verify("w1", img).score - r.forgery_penalty)

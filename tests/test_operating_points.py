"""Calibration curve, named operating points, deployment simulation and their use by the product."""

from __future__ import annotations

import json

import numpy as np
import pytest

from enrollment import Verifier
from enrollment.testing import build_tiny_model, draw_signature
from sigver.calibration import (
    Calibration,
    CalibrationError,
    apply_calibration,
    calibrate_deployment,
    calibration_curve,
    fit_llr,
    operating_points,
    parse_operating_point,
    resolve_operating_point,
    threshold_for_frr,
)
from sigver.cli import main
from sigver.evaluation import simulate_deployment
from sigver.featureset import FeatureSet, load_features, save_features
from sigver.metrics import eer_threshold
from sigver.models.checkpoint import load_checkpoint
from sigver.usermodel import train_user_model


def test_threshold_for_frr_hand_computed():
    g = np.array([4.0, 1.0, 3.0, 2.0])
    assert threshold_for_frr(g, 0.25) == 2.0  # 1 of 4 below
    assert threshold_for_frr(g, 0.0) == 1.0  # nothing below
    assert threshold_for_frr(g, 0.5) == 3.0
    assert threshold_for_frr(g, 1.0) > 4.0  # everything may be rejected


def test_parse_operating_point():
    assert parse_operating_point("balanced") == ("balanced", None)
    assert parse_operating_point("eer-skilled") == ("balanced", None)
    assert parse_operating_point("far-skilled=1%") == ("far-skilled", 0.01)
    assert parse_operating_point("FRR = 0.05") == ("frr", 0.05)
    for bad in ("far=1%", "far-skilled=150%", "balanced=1"):
        with pytest.raises(CalibrationError):
            parse_operating_point(bad)


def test_operating_points_and_curve_hand_computed():
    g = np.array([0.5, 0.6, 0.7, 0.8, 0.9])
    s = np.array([0.0, 0.1, 0.2, 0.3, 0.55])
    r = np.array([-1.0, -0.5, 0.65])
    ops = operating_points(g, r, s, ["balanced", "far-skilled=0%", "frr=20%"])
    assert ops["balanced"]["threshold"] == eer_threshold(g, s)
    # far-skilled=0: just above the highest forgery -> genuines 0.5 rejected (FRR 1/5)
    assert ops["far-skilled=0%"]["FAR_skilled"] == 0.0
    assert ops["far-skilled=0%"]["FRR"] == pytest.approx(0.2)
    assert ops["far-skilled=0%"]["FAR_random"] == pytest.approx(1 / 3)
    # frr=20%: threshold 0.6 (one genuine below) -> no forgery accepted, random 0.65 is
    assert ops["frr=20%"] == {
        "threshold": 0.6,
        "FRR": pytest.approx(0.2),
        "FAR_skilled": 0.0,
        "FAR_random": pytest.approx(1 / 3),
    }
    curve = calibration_curve(g, r, s, n_points=21)
    t = np.asarray(curve["threshold"])
    assert np.all(np.diff(t) > 0)
    assert np.all(np.diff(curve["FRR"]) >= 0) and np.all(np.diff(curve["FAR_skilled"]) <= 0)
    i = int(np.searchsorted(t, 0.6))
    if t[i] == 0.6:
        assert curve["FRR"][i] == pytest.approx(0.2)


def test_llr_is_increasing_and_centred_between_classes():
    rng = np.random.default_rng(0)
    g, s = rng.normal(1.0, 0.5, 2000), rng.normal(-1.0, 0.5, 2000)
    llr = fit_llr(g, s)
    assert llr["slope"] > 0
    # equal variances, equal priors: the LLR crosses 0 halfway; slope = 2 * delta / var = 8
    assert -llr["intercept"] / llr["slope"] == pytest.approx(0.0, abs=0.05)
    assert llr["slope"] == pytest.approx(8.0, rel=0.15)


# -- deployment simulation and calibration on toy features -----------------------------

DIM = 32


def toy_population(prefix="", n_users=6, n_gen=8, n_skilled=4, seed=0, sha="") -> FeatureSet:
    rng = np.random.default_rng(seed)
    feats, y, yforg, names = [], [], [], []
    for u in range(n_users):
        centre = rng.normal(0.0, 3.0, DIM)
        direction = rng.normal(size=DIM)
        direction /= np.linalg.norm(direction)
        for k in range(n_gen):
            feats.append(centre + rng.normal(0.0, 0.3, DIM))
            y.append(u)
            yforg.append(0)
            names.append(f"{u + 1:03d}/g{k}.png")
        for k in range(n_skilled):
            feats.append(centre + 1.5 * direction + rng.normal(0.0, 0.3, DIM))
            y.append(u)
            yforg.append(1)
            names.append(f"{u + 1:03d}_forg/f{k}.png")
    return FeatureSet(
        features=np.array(feats, dtype=np.float32),
        y=np.array(y),
        yforg=np.array(yforg),
        user_ids=np.array([f"{prefix}{u + 1:03d}" for u in range(n_users)]),
        filenames=np.array(names),
        meta={"dataset": "toyds", "model_id": "toy", "model_sha256": sha},
    )


def toy_background(n_writers=20, per=3, seed=5) -> FeatureSet:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, (n_writers, DIM))
    feats = np.repeat(centres, per, axis=0) + rng.normal(0, 0.3, (n_writers * per, DIM))
    ids = [f"bg{w}" for w in range(n_writers)]
    return FeatureSet(
        features=feats.astype(np.float32),
        y=np.repeat(np.arange(n_writers), per),
        yforg=np.zeros(n_writers * per, dtype=np.int8),
        user_ids=np.array(ids + ["toyds/001"]),  # one row would be the population's own writer
        filenames=np.array([f"bg{w}/{k}.png" for w in range(n_writers) for k in range(per)]),
        meta={"purpose": "test background"},
    )


PARAMS = {"kernel": "rbf", "C": 1.0, "gamma": 0.05}


def test_simulation_scores_are_those_of_the_enrollment_trainer():
    fs = toy_population()
    bg = toy_background()
    run = simulate_deployment(
        fs, users="all", background=bg, refs=4, folds=2, params=PARAMS, progress=False
    )
    split = run.splits[1]
    i = 2
    model = train_user_model(
        fs.features[split.refs[i]],
        bg.features,
        fs.features[split.exp_negatives[i]],
        params=PARAMS,
    )
    assert run.raw[1].genuine[i] == pytest.approx(
        model.raw_scores(fs.features[split.test_genuine[i]])
    )
    assert run.raw[1].skilled[i] == pytest.approx(model.raw_scores(fs.features[split.skilled[i]]))
    # every other user's references are negatives, none of the user's own samples
    assert split.exp_negatives[i].size == 4 * 5
    assert not np.isin(split.exp_negatives[i], np.flatnonzero(fs.y == split.users[i])).any()
    assert run.info["negatives"]["background"] == len(bg)


def test_simulation_probe_sees_each_deployed_user():
    fs = toy_population()
    bg = toy_background()
    seen = []

    def probe(model, split, i):
        seen.append((split.fold, i))
        return model.raw_scores(fs.features[split.refs[i]])

    run = simulate_deployment(
        fs, users="all", background=bg, refs=4, folds=2, params=PARAMS, probe=probe, progress=False
    )
    n_users = len(run.splits[0].refs)
    assert sorted(seen) == sorted((s.fold, i) for s in run.splits for i in range(n_users))
    split, i = run.splits[1], 3
    model = train_user_model(
        fs.features[split.refs[i]], bg.features, fs.features[split.exp_negatives[i]], params=PARAMS
    )
    # the probe scored with the very classifier the simulation deployed
    assert run.probes[1][i] == pytest.approx(model.raw_scores(fs.features[split.refs[i]]))
    plain = simulate_deployment(
        fs, users="all", background=bg, refs=4, folds=2, params=PARAMS, progress=False
    )
    assert plain.probes == [[None] * n_users] * 2
    assert plain.raw[1].genuine[i] == pytest.approx(run.raw[1].genuine[i])


def test_simulation_drops_background_rows_of_the_population():
    fs = toy_population()
    bg = toy_background()
    bg = FeatureSet(
        features=bg.features,
        y=np.r_[bg.y[:-3], np.full(3, 20)],  # the last writer is "toyds/001"
        yforg=bg.yforg,
        user_ids=bg.user_ids,
        filenames=bg.filenames,
        meta=bg.meta,
    )
    run = simulate_deployment(
        fs, users="all", background=bg, refs=4, folds=1, params=PARAMS, progress=False
    )
    assert run.info["negatives"]["background_dropped_as_population_writers"] == 3


def test_calibrate_deployment_and_metadata_round_trip(tmp_path):
    fs = toy_population()
    bg = toy_background()
    cal = calibrate_deployment(
        fs,
        users="001-006",
        background=bg,
        normalization="loo-lcb=1",
        refs=4,
        folds=2,
        params=PARAMS,
    )
    assert cal.normalization == "loo-lcb=1"
    assert cal.default_operating_point == "balanced"
    assert cal.threshold == cal.operating_points["balanced"]["threshold"]
    assert set(cal.operating_points) >= {"balanced", "far-skilled=1%", "frr=5%"}
    assert len(cal.curve["threshold"]) == len(cal.curve["FRR"]) > 10
    # the recorded rates are those of the pooled calibration scores at the threshold
    run = simulate_deployment(
        fs,
        users=cal.users,
        background=bg,
        refs=4,
        folds=2,
        params=PARAMS,
        normalization="loo-lcb=1",
        progress=False,
    )
    g = np.concatenate([a for f in run.scores() for a in f.genuine])
    s = np.concatenate([a for f in run.scores() for a in f.skilled])
    assert cal.frr == pytest.approx(np.mean(g < cal.threshold))
    assert cal.far_skilled == pytest.approx(np.mean(s >= cal.threshold))
    d = json.loads(json.dumps(cal.to_dict()))
    assert Calibration.from_dict(d) == cal
    assert Calibration.from_dict(d).to_dict() == d
    t, name, rates = resolve_operating_point(d, "far-skilled=1%")
    assert name == "far-skilled=1%" and t == d["operating_points"][name]["threshold"]
    assert resolve_operating_point(d, None)[1] == "balanced"
    with pytest.raises(CalibrationError, match="available"):
        resolve_operating_point(d, "far-skilled=2%")
    with pytest.raises(CalibrationError):
        resolve_operating_point(None, None)


# -- the product: a tiny model with a calibration in its metadata ---------------------


@pytest.fixture(scope="module")
def calibrated_model(tmp_path_factory):
    """A tiny checkpoint whose metadata holds a loo-lcb calibration with operating points."""
    folder = tmp_path_factory.mktemp("cal-model")
    path = build_tiny_model(folder)
    w = load_checkpoint(path)
    before = {k: v.clone() for k, v in w.state_dict.items()}
    fs = toy_population(sha=w.sha256)
    bg = load_features(folder / "tiny.background.npz")
    fs = FeatureSet(
        features=fs.features[:, : bg.dim],
        y=fs.y,
        yforg=fs.yforg,
        user_ids=fs.user_ids,
        filenames=fs.filenames,
        meta=fs.meta,
    )
    cal = calibrate_deployment(
        fs, users="001-006", background=bg, normalization="loo-lcb=1", refs=4, folds=2
    )
    apply_calibration(path, cal)
    after = load_checkpoint(path)
    return path, cal, before, after


def test_apply_calibration_keeps_weights_and_round_trips_metadata(calibrated_model):
    path, cal, before, after = calibrated_model
    assert set(before) == set(after.state_dict)
    for k, v in before.items():
        assert after.state_dict[k].dtype == v.dtype
        assert bool((after.state_dict[k] == v).all()), k
    stored = after.meta.metrics["calibration"]
    assert Calibration.from_dict(stored) == Calibration.from_dict(cal.to_dict())
    assert stored["operating_points"] == json.loads(json.dumps(cal.to_dict()))["operating_points"]


def _refs(writer, n=5):
    return [draw_signature(writer, s) for s in range(n)]


def test_verifier_operating_points_precedence_and_results(calibrated_model, tmp_path):
    path, cal, _, _ = calibrated_model
    v = Verifier(home=tmp_path / "home", model=path)
    assert v.normalization == "loo-lcb=1"
    assert v.operating_point == "balanced" and v.default_threshold == cal.threshold
    v.enroll("alice", _refs(1))
    v.enroll("bob", _refs(2))
    user = v.get_user("alice")
    norm = user.classifier_params["normalization"]
    assert norm["method"] == "loo-lcb=1" and norm["scale"] == 1.0
    r = v.verify("alice", draw_signature(1, 7))
    assert r.operating_point == "balanced"
    assert r.threshold == cal.threshold
    assert r.score == pytest.approx(r.raw_score - norm["loc"])
    assert r.accepted == (r.score >= r.threshold)
    assert r.calibrated_rates["FRR"] == pytest.approx(cal.operating_points["balanced"]["FRR"])
    assert r.llr == pytest.approx(cal.llr["slope"] * r.score + cal.llr["intercept"])
    body = r.to_dict()
    assert body["operating_point"] == "balanced" and "calibrated_rates" in body
    # Each result says how many references decided and how many the point was calibrated for.
    assert (r.references, r.calibrated_references) == (5, cal.refs) == (5, 4)
    assert body["references"] == 5 and body["calibrated_references"] == 4
    # per-user operating point beats the store default; a threshold override beats both
    v.set_operating_point("alice", "FAR-skilled=1%")
    r1 = v.verify("alice", draw_signature(1, 7))
    assert r1.operating_point == "far-skilled=1%"
    assert r1.threshold == cal.operating_points["far-skilled=1%"]["threshold"]
    assert v.verify("bob", draw_signature(2, 7)).operating_point == "balanced"
    v.enroll("alice", [draw_signature(1, 6)], add=True)  # adding references keeps it
    assert v.store.operating_point_of("alice") == "far-skilled=1%"
    v.set_threshold("alice", 0.123)
    r2 = v.verify("alice", draw_signature(1, 7))
    assert (r2.operating_point, r2.threshold, r2.calibrated_rates) == (
        "user threshold override",
        0.123,
        {},
    )
    assert r2.references == 6 and r2.calibrated_references is None  # an override: no claim
    with pytest.raises(CalibrationError):
        v.set_operating_point("bob", "far-skilled=3%")
    v.set_operating_point("alice", None)
    assert v.store.operating_point_of("alice") is None
    # store-wide default from the constructor
    v2 = Verifier(home=tmp_path / "home", model=path, operating_point="frr=5%")
    assert v2.verify("bob", draw_signature(2, 7)).threshold == pytest.approx(
        cal.operating_points["frr=5%"]["threshold"]
    )
    with pytest.raises(CalibrationError):
        Verifier(home=tmp_path / "home", model=path, operating_point="far-skilled=42%")


def test_cli_operating_points(calibrated_model, tmp_path, capsys):
    path, cal, _, _ = calibrated_model
    home = tmp_path / "h"
    imgs = []
    import cv2

    for s in range(6):
        p = tmp_path / f"r{s}.png"
        cv2.imwrite(str(p), draw_signature(3, s))
        imgs.append(str(p))
    assert (
        main(["enroll", "--home", str(home), "--model", str(path), "--user", "carol", *imgs[:5]])
        == 0
    )
    capsys.readouterr()
    rc = main(
        [
            "users",
            "set-operating-point",
            "carol",
            "far-skilled=5%",
            "--home",
            str(home),
            "--model",
            str(path),
        ]
    )
    assert rc == 0 and "far-skilled=5%" in capsys.readouterr().out
    main(
        ["verify", "--home", str(home), "--model", str(path), "--user", "carol", "--json", imgs[5]]
    )
    out = json.loads(capsys.readouterr().out)
    assert out["results"][0]["operating_point"] == "far-skilled=5%"
    assert (out["results"][0]["references"], out["results"][0]["calibrated_references"]) == (5, 4)
    main(
        [
            "users",
            "set-operating-point",
            "carol",
            "default",
            "--home",
            str(home),
            "--model",
            str(path),
        ]
    )
    capsys.readouterr()
    main(
        [
            "verify",
            "--home",
            str(home),
            "--model",
            str(path),
            "--user",
            "carol",
            "--operating-point",
            "frr=1%",
            imgs[5],
        ]
    )
    printed = capsys.readouterr().out
    assert "operating point: frr=1%" in printed
    # carol has 5 references; the tiny model's points were calibrated with 4.
    note = "with 4 references per user; this user has 5, and the rates move with the count"
    assert note in printed
    assert (
        main(
            [
                "users",
                "set-operating-point",
                "carol",
                "nonsense",
                "--home",
                str(home),
                "--model",
                str(path),
            ]
        )
        != 0
    )


def test_http_operating_point_endpoint(calibrated_model, tmp_path):
    from fastapi.testclient import TestClient

    from enrollment.service import create_app

    path, cal, _, _ = calibrated_model
    v = Verifier(home=tmp_path / "srv", model=path)
    v.enroll("dave", _refs(4))
    _, key = v.store.create_api_key("t")
    client = TestClient(create_app(v))
    h = {"X-API-Key": key}
    ops = client.get("/v1/operating-points", headers=h).json()
    assert ops["default"] == "balanced" and "far-skilled=1%" in ops["operating_points"]
    r = client.put(
        "/v1/users/dave/operating-point", json={"operating_point": "far-skilled=1%"}, headers=h
    )
    assert r.status_code == 200
    assert r.json()["effective_threshold"] == cal.operating_points["far-skilled=1%"]["threshold"]
    dave = client.get("/v1/users/dave", headers=h).json()
    assert dave["effective_operating_point"] == "far-skilled=1%"
    assert dave["calibrated_references"] == cal.refs
    assert (
        client.put(
            "/v1/users/dave/operating-point", json={"operating_point": "x"}, headers=h
        ).status_code
        == 422
    )
    assert (
        client.put(
            "/v1/users/nobody/operating-point", json={"operating_point": None}, headers=h
        ).status_code
        == 404
    )
    assert (
        client.put("/v1/users/dave/operating-point", json={"operating_point": None}).status_code
        == 401
    )


def _deployed_population(path, after, tmp_path):
    """The tiny model's background, and a toy population extracted "with" it, saved."""
    bg = load_features(path.with_name("tiny.background.npz"))
    fs = toy_population(prefix="", seed=3, sha=after.sha256)
    fs = FeatureSet(
        features=fs.features[:, : bg.dim],
        y=fs.y,
        yforg=fs.yforg,
        user_ids=fs.user_ids,
        filenames=fs.filenames,
        meta={**fs.meta, "model_id": after.model_id},
    )
    return bg, fs, save_features(tmp_path / "toy.npz", fs)


def test_evaluate_negatives_model_reports_the_deployed_point(calibrated_model, tmp_path, capsys):
    path, cal, _, after = calibrated_model
    bg, fs, feats = _deployed_population(path, after, tmp_path)
    out = tmp_path / "dep"
    rc = main(
        [
            "evaluate",
            "--deployed-model",
            str(path),
            "--features",
            str(feats),
            "--negatives",
            "model",
            "--exp-users",
            "all",
            "--refs",
            "4",
            "--folds",
            "2",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    dep = json.loads((out / "deployment.json").read_text())
    assert dep["operating_point"] == "balanced" and dep["normalization"] == "loo-lcb=1"
    assert dep["threshold"] == cal.threshold
    # measured = the fixed-threshold point of the same simulation
    run = simulate_deployment(
        fs, users="all", background=bg, refs=4, folds=2, normalization="loo-lcb=1", progress=False
    )
    res = run.result(threshold=cal.threshold)
    assert dep["measured"]["FRR"] == pytest.approx(res.fixed_threshold["summary"]["FRR"]["mean"])
    assert dep["a_posteriori"]["EER_global"] == pytest.approx(res.summary["EER_global"])
    assert (out / "calibration-curve.png").stat().st_size > 1000
    # Issue 10's check of the same simulation: rates at T over its EER_global, and the
    # decided gap over the raw SVM scores' gap.
    from sigver.evaluation import transfer_check

    check = transfer_check(res.scores, run.raw, dep["measured"], seed=1234)
    point = {k: v for k, v in dep["transfer"].items() if k != "intervals"}
    assert point == json.loads(json.dumps(check))
    assert dep["transfer"]["FRR_over_EER_global"] == pytest.approx(
        dep["measured"]["FRR"] / dep["a_posteriori"]["EER_global"]["mean"]
    )
    assert "## Does the operating point hold on these users?" in (out / "results.md").read_text()
    # Writer-bootstrap intervals (default 200 draws, seeded by the protocol's seed) of the
    # same scores at the same threshold.
    from sigver.bootstrap import writer_intervals

    want = writer_intervals(run.scores(), cal.threshold, rounds=200, seed=1234)
    for k in ("FRR", "FAR_skilled", "FAR_random", "EER_global", "EER_user"):
        assert dep["intervals"][k] == pytest.approx(want[k])
    assert dep["intervals"]["rounds"] == 200
    from sigver.bootstrap import transfer_intervals

    want = transfer_intervals(run.scores(), run.raw, cal.threshold, rounds=200, seed=1234)
    want.pop("figures")  # those are dep["intervals"], checked above
    assert dep["transfer"]["intervals"] == json.loads(json.dumps(want))
    printed = capsys.readouterr().out
    assert "operating point 'balanced' was calibrated for" in printed
    assert "90 % intervals over 200 writer bootstraps: FRR " in printed
    assert "gap EER_global - EER_user" in printed and "floor of exchangeable users" in printed
    argv = ["evaluate", "--deployed-model", str(path), "--features", str(feats),
            "--negatives", "model", "--exp-users", "all", "--refs", "4", "--folds", "2",
            "--no-progress"]  # fmt: skip
    assert main([*argv, "--bootstrap", "0", "--out", str(tmp_path / "none")]) == 0
    none = json.loads((tmp_path / "none" / "deployment.json").read_text())
    assert "intervals" not in none and "intervals" not in none["transfer"]
    assert main([*argv, "--bootstrap", "-1", "--out", str(tmp_path / "bad")]) != 0
    assert "--bootstrap must be >= 0" in capsys.readouterr().err
    # Protocol flags the deployment simulation cannot honour are refused, not ignored.
    assert main([*argv, "--test-genuine", "2", "--out", str(tmp_path / "bad")]) == 2
    assert "--test-genuine does not apply to --negatives model" in capsys.readouterr().err
    assert (
        main([*argv, "--kernel", "linear", "--gamma", "0.1", "--out", str(tmp_path / "bad")]) == 2
    )
    assert "--kernel, --gamma do not apply" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    # Normalised scores: the table's decision rows are the deployed point's, not score 0's,
    # which stay in the JSON for completeness.
    rows = [ln.split("  ")[0] for ln in printed.splitlines()]
    assert "FRR" not in rows and "FAR skilled" not in rows
    assert any(r.startswith("FRR @ T=") for r in rows)
    assert "FRR" in json.loads((out / "results.json").read_text())["summary"]
    assert "normalised per user" in (out / "results.md").read_text()


def test_model_card_shows_operating_points_and_curve(calibrated_model, tmp_path):
    from sigver.models.card import write_model_card

    path, cal, _, after = calibrated_model
    card = write_model_card(tmp_path / "tiny.md", after)
    text = card.read_text()
    assert "## Operating points" in text and "`balanced` (default)" in text
    assert "`loo-lcb=1`" in text
    assert "![calibration curve](tiny.calibration.png)" in text
    assert (tmp_path / "tiny.calibration.png").stat().st_size > 1000


def test_cli_calibrate_with_normalization_writes_operating_points(tmp_path, capsys):
    from test_calibration import _tiny_dataset

    path = build_tiny_model(tmp_path / "models")
    data = _tiny_dataset(tmp_path)
    argv = ["calibrate", "--model", str(path), "--data", str(data), "--users", "001-004"]
    argv += ["--refs", "3", "--folds", "2", "--jobs", "1", "--no-progress"]
    argv += ["--normalization", "loo-lcb=0.5", "--default-operating-point", "frr=5%"]
    argv += ["--plot", str(tmp_path / "curve.png"), "--write"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "operating point   frr=5%" in out and "(default)" in out
    stored = load_checkpoint(path).meta.metrics["calibration"]
    assert stored["normalization"] == "loo-lcb=0.5"
    assert stored["default_operating_point"] == "frr=5%"
    assert stored["threshold"] == stored["operating_points"]["frr=5%"]["threshold"]
    assert (tmp_path / "curve.png").stat().st_size > 1000
    assert Verifier(home=tmp_path / "h", model=path).operating_point == "frr=5%"


def test_protocol_mode_refuses_a_threshold_of_normalised_scores(calibrated_model):
    import argparse

    from sigver.commands.evaluate import resolve_threshold
    from sigver.errors import SigverError

    path, cal, _, _ = calibrated_model
    args = argparse.Namespace(model=path, threshold="model", threshold_source=None)
    with pytest.raises(SigverError, match="--negatives model"):
        resolve_threshold(args)
    t, source = resolve_threshold(args, deployment=True)
    assert t == cal.threshold and "balanced" in source


def test_compare_two_evaluations_of_the_same_writers(calibrated_model, tmp_path, capsys):
    """scores.npz keeps each score's fold and writer; sigver compare pairs two runs on them."""
    from sigver.evaluation import load_fold_scores

    path, cal, _, after = calibrated_model
    bg, fs, feats = _deployed_population(path, after, tmp_path)
    argv = ["evaluate", "--deployed-model", str(path), "--features", str(feats),
            "--negatives", "model", "--exp-users", "all", "--refs", "4",
            "--no-progress", "--no-plots", "--bootstrap", "0"]  # fmt: skip
    runs = {
        "a": ["--folds", "2"],
        "same": ["--folds", "2"],
        "raw": ["--folds", "2", "--normalization", "none", "--threshold", "0"],
        "other": ["--folds", "3"],
    }
    for name, extra in runs.items():
        assert main([*argv, *extra, "--out", str(tmp_path / name)]) == 0
    capsys.readouterr()
    # The saved scores are the simulation's, fold by fold and writer by writer.
    run = simulate_deployment(
        fs, users="all", background=bg, refs=4, folds=2, normalization="loo-lcb=1", progress=False
    )
    n_users = len(
        json.loads((tmp_path / "a" / "results.json").read_text())["protocol"]["exp_user_ids"]
    )
    loaded = load_fold_scores(tmp_path / "a" / "scores.npz", folds=2, users=n_users)
    for mine, theirs in zip(loaded, run.scores(), strict=True):
        for part in ("genuine", "skilled", "random"):
            for x, y in zip(getattr(mine, part), getattr(theirs, part), strict=True):
                np.testing.assert_allclose(x, y)
    # Two copies of one evaluation: every difference is zero.
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "same"), "--bootstrap", "50",
                 "--json", str(tmp_path / "same.json")]) == 0  # fmt: skip
    same = json.loads((tmp_path / "same.json").read_text())
    assert all(v == [0.0, 0.0] for k, v in same["difference"].items() if k in ("gap", "FRR"))
    # Raw scores against the normalised ones: point figures are the evaluations' own.
    assert main(["compare", str(tmp_path / "raw"), str(tmp_path / "a"), "--bootstrap", "50",
                 "--json", str(tmp_path / "cmp.json")]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "paired writer bootstrap, 50 draws" in printed and "EER_global" in printed
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    for side, name in (("a", "raw"), ("b", "a")):
        summary = json.loads((tmp_path / name / "results.json").read_text())
        assert cmp["point"][side]["EER_global"] == pytest.approx(
            summary["summary"]["EER_global"]["mean"]
        )
        assert cmp["point"][side]["FRR"] == pytest.approx(
            summary["fixed_threshold"]["summary"]["FRR"]["mean"]
        )
    assert cmp["evaluations"]["b"]["threshold"] == cal.threshold
    assert cmp["evaluations"]["a"]["threshold"] == 0.0
    # Another protocol, a folder that is not an evaluation, an old scores file: refused.
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "other")]) == 2
    assert "differ in the protocol's folds" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "a"), str(tmp_path)]) == 2
    assert "no results.json" in capsys.readouterr().err
    # The same protocol on the signatures in another order: other draws, refused.
    meta_file = tmp_path / "same" / "results.json"
    saved = meta_file.read_text()
    edited = json.loads(saved)
    assert len(edited["meta"]["samples_sha256"]) == 64
    edited["meta"]["samples_sha256"] = "0" * 64
    meta_file.write_text(json.dumps(edited))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "same")]) == 2
    assert "drew from different signatures" in capsys.readouterr().err
    meta_file.write_text(saved)
    old = np.load(tmp_path / "same" / "scores.npz")
    np.savez(tmp_path / "same" / "scores.npz", genuine=old["genuine"], random=old["random"],
             skilled=old["skilled"])  # fmt: skip
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "same")]) == 2
    assert "written by an older sigver" in capsys.readouterr().err
    (tmp_path / "same" / "scores.npz").write_bytes(b"PK\x03\x04 truncated")
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "same")]) == 2
    assert "not a scores file" in capsys.readouterr().err


def _fold(genuine, skilled, random=None):
    from sigver.evaluation import FoldScores

    g = [np.asarray(x, float) for x in genuine]
    return FoldScores(
        genuine=g,
        random=[np.asarray(x, float) for x in (random or [[] for _ in g])],
        skilled=[np.asarray(x, float) for x in skilled],
        simple=[np.zeros(0) for _ in g],
    )


def test_transfer_check_hand_computed_gap_ratio_and_rate_ratios():
    from sigver.evaluation import format_transfer, transfer_check

    # Raw: two users each perfectly separated, one 10 above the other. Pooled, user 2's
    # forgeries (10, 10.5) beat user 1's genuines (1, 2): one threshold leaves EER 0.5.
    raw = [_fold([[1, 2], [11, 12]], [[0, 0.5], [10, 10.5]])]
    # Decided: user 2 shifted down by 10, so the users are aligned and every EER is 0.
    aligned = [_fold([[1, 2], [1, 2]], [[0, 0.5], [0, 0.5]])]
    check = transfer_check(aligned, raw, {"FRR": 0.0, "FAR_skilled": 0.0}, floor_rounds=5)
    assert check["raw"]["EER_user"] == 0.0 and check["raw"]["gap"] == pytest.approx(0.5)
    assert check["decided"]["gap"] == 0.0 and check["gap_ratio"] == 0.0
    assert check["gap_halved"] and check["floor"] == 0.0 and check["floor_ratio"] == 0.0
    # EER_global 0: the rate ratios are undefined, and the threshold is not said to hold.
    assert check["FRR_over_EER_global"] is None and not check["threshold_holds"]
    assert "FRR undefined" in format_transfer(check)
    assert "(not checked: EER_global is 0 or undefined)" in format_transfer(check)

    # Decided = raw: nothing of the gap removed (ratio 1), rates compared with EER 0.5.
    same = transfer_check(raw, raw, {"FRR": 0.55, "FAR_skilled": 0.75}, floor_rounds=5)
    assert same["gap_ratio"] == pytest.approx(1.0) and not same["gap_halved"]
    assert same["FRR_over_EER_global"] == pytest.approx(1.1)
    assert same["FAR_skilled_over_EER_global"] == pytest.approx(1.5)
    assert not same["threshold_holds"]
    text = format_transfer(same)
    assert "FRR 1.10x and FAR_skilled 1.50x" in text and "outside 1.25x" in text
    assert "1.00 of the raw scores' 50.00" in text
    ok = transfer_check(raw, raw, {"FRR": 0.5, "FAR_skilled": 0.6}, floor_rounds=5)
    assert ok["threshold_holds"] and "within 1.25x" in format_transfer(ok)
    # Read back from JSON (NaN written as null) it still prints, with the same figures.
    from sigver._util import json_safe

    nan_ratio = transfer_check(raw, raw, {"FRR": float("nan"), "FAR_skilled": 0.6}, floor_rounds=5)
    back = json.loads(json.dumps(json_safe(nan_ratio)))
    assert back["FRR_over_EER_global"] is None
    assert format_transfer(back) == format_transfer(nan_ratio)
    assert "FRR undefined" in format_transfer(back)


def test_transfer_check_without_a_raw_gap_gives_no_ratio():
    from sigver.evaluation import format_transfer, transfer_check

    flat = [_fold([[1, 2], [1, 2]], [[0, 0.5], [0, 0.5]])]
    check = transfer_check(flat, flat, {"FRR": 0.1, "FAR_skilled": 0.1}, floor_rounds=5)
    assert check["gap_ratio"] is None and check["floor_ratio"] is None
    assert not check["gap_halved"]
    assert "raw scores' gap not positive" in format_transfer(check)


def test_transfer_check_without_skilled_forgeries_says_it_cannot_check():
    import warnings

    from sigver.evaluation import format_transfer, transfer_check

    fold = _fold([[1, 2], [3]], [[], []], random=[[0.0], [0.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" on the way
        check = transfer_check([fold], [fold], {"FRR": 0.1, "FAR_skilled": float("nan")})
    assert not check["defined"] and not check["threshold_holds"] and not check["gap_halved"]
    assert check["gap_ratio"] is None and check["FRR_over_EER_global"] is None
    assert "not checked" in format_transfer(check)

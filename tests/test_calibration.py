"""Tests of the global-threshold calibration (sigver.calibration, ``sigver calibrate``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import sigver.evaluation
from sigver.calibration import (
    Calibration,
    CalibrationError,
    apply_calibration,
    calibrate_threshold,
    parse_target,
    threshold_for_far,
)
from sigver.errors import ModelError
from sigver.featureset import FeatureSet

N_USERS = 6
N_GEN = 10
N_SKILLED = 4
DIM = 8
# The published gamma (2**-11) suits 2048-d features; on these 8-d ones (scaled to unit
# std, so writers ~2.5 apart, forgeries ~0.6 from their genuines) a narrower RBF makes the
# toy problem a clean "close to the references = genuine" one.
GAMMA = 2.0


def toy_features(seed: int = 0) -> FeatureSet:
    """Writers as far-apart clusters; skilled forgeries a fixed step away from the genuines.

    Genuines lie within ~0.3 of their writer's centre, skilled forgeries 2.5 away
    and other writers ~10 away, so genuine scores are above skilled scores.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 4.0, (N_USERS, DIM))
    feats, y, yforg, names = [], [], [], []
    for u in range(N_USERS):
        direction = rng.normal(size=DIM)
        direction /= np.linalg.norm(direction)
        for k in range(N_GEN):
            feats.append(centres[u] + rng.normal(0.0, 0.1, DIM))
            y.append(u)
            yforg.append(0)
            names.append(f"{u + 1:03d}/g{k}.png")
        for k in range(N_SKILLED):
            feats.append(centres[u] + 2.5 * direction + rng.normal(0.0, 0.1, DIM))
            y.append(u)
            yforg.append(1)
            names.append(f"{u + 1:03d}_forg/f{k}.png")
    return FeatureSet(
        features=np.array(feats, dtype=np.float32),
        y=np.array(y),
        yforg=np.array(yforg),
        user_ids=np.array([f"{u + 1:03d}" for u in range(N_USERS)]),
        filenames=np.array(names),
        meta={"dataset": "toyds", "model_id": "toy", "model_sha256": ""},
    )


@pytest.fixture
def spy(monkeypatch):
    """Record every (x, split, scores) that calibration trains and scores."""
    calls = []
    real = sigver.evaluation.score_fold

    def wrapper(x, split, cfg, **kwargs):
        scores = real(x, split, cfg, **kwargs)
        calls.append((x, split, cfg, kwargs, scores))
        return scores

    monkeypatch.setattr(sigver.evaluation, "score_fold", wrapper)
    return calls


# -- pure helpers ------------------------------------------------------------------


def test_parse_target():
    assert parse_target("eer-skilled") == ("eer-skilled", None)
    assert parse_target("far-skilled=0.05") == ("far-skilled", 0.05)
    assert parse_target("FAR-skilled = 5%") == ("far-skilled", 0.05)
    for bad in ("eer", "far-skilled=2", "far-skilled=-0.1", "far-random=0.1", "far-skilled=x"):
        with pytest.raises(CalibrationError):
            parse_target(bad)


def test_threshold_for_far_hand_computed():
    genuine = np.array([0.5, 0.6])
    skilled = np.array([0.1, 0.2, 0.3, 0.4])
    # At most 1 of 4 forgeries may be accepted: only 0.4 stays at or above t.
    t = threshold_for_far(genuine, skilled, 0.25)
    assert 0.3 < t <= 0.4 and np.mean(skilled >= t) == 0.25
    # Smallest such threshold: the next float down accepts 0.3 as well.
    assert np.mean(skilled >= np.nextafter(t, -np.inf)) == 0.5
    t0 = threshold_for_far(genuine, skilled, 0.0)
    assert 0.4 < t0 < 0.4 + 1e-12
    assert threshold_for_far(genuine, skilled, 1.0) == 0.1
    assert threshold_for_far(genuine, skilled, 0.3) == t  # floor(1.2) = 1 accepted


# -- calibration -------------------------------------------------------------------


def test_separable_scores_put_the_threshold_between(spy):
    fs = toy_features()
    cal = calibrate_threshold(fs, users="001-006", refs=4, folds=3, seed=7, gamma=GAMMA)
    genuine = np.concatenate([np.concatenate(c[4].genuine) for c in spy])
    skilled = np.concatenate([np.concatenate(c[4].skilled) for c in spy])
    assert len(spy) == 3
    # The toy data are separable in score: max skilled < min genuine.
    assert skilled.max() < genuine.min()
    assert skilled.max() < cal.threshold <= genuine.min()
    assert cal.eer == 0.0 and cal.frr == 0.0 and cal.far_skilled == 0.0
    assert cal.far_random == 0.0
    assert cal.n_users == N_USERS and cal.refs == 4 and cal.folds == 3
    assert cal.n_genuine == 3 * N_USERS * (N_GEN - 4)
    assert cal.n_skilled == 3 * N_USERS * N_SKILLED
    assert cal.users == tuple(f"{u:03d}" for u in range(1, N_USERS + 1))
    # The per-user SVM of enrollment: per-user scaling, naive engine.
    assert spy[0][2].scaling == "user" and spy[0][3]["engine"] == "naive"


def test_far_target_is_met_on_the_development_scores():
    fs = toy_features(seed=3)
    # Overlapping toy: forgeries as close as the genuines' spread, so FAR matters.
    feats = fs.features.copy()
    sk = fs.yforg == 1
    centres = np.stack([feats[(fs.y == u) & (fs.yforg == 0)].mean(0) for u in fs.y[sk]])
    feats[sk] = centres + 0.5 * (feats[sk] - centres) / 2.5
    fs = FeatureSet(feats, fs.y, fs.yforg, fs.user_ids, fs.filenames, fs.meta)
    eer = calibrate_threshold(fs, users="001-006", refs=4, folds=2, gamma=GAMMA)
    strict = calibrate_threshold(
        fs, users="001-006", refs=4, folds=2, gamma=GAMMA, target="far-skilled=0.05"
    )
    assert strict.target == "far-skilled=0.05"
    assert strict.far_skilled <= 0.05
    assert eer.far_skilled > 0.05  # so the FAR target had to move the threshold up
    assert strict.threshold > eer.threshold and strict.frr >= eer.frr
    assert strict.eer == eer.eer  # same scores, same a-posteriori EER


def test_own_and_scored_samples_are_never_negatives(spy):
    fs = toy_features()
    users = ("001", "002", "003", "004")
    # Extra negatives: copies of user 002's signatures (under a dataset prefix, and under a
    # foreign id but the same file name) plus genuinely foreign writers.
    own = np.flatnonzero(fs.y == 1)
    foreign = np.random.default_rng(5).normal(20.0, 1.0, (6, DIM)).astype(np.float32)
    extra = FeatureSet(
        features=np.concatenate([fs.features[own[:3]], fs.features[own[3:5]], foreign]),
        y=np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 3]),
        yforg=np.zeros(11, dtype=np.int8),
        user_ids=np.array(["toyds/002", "renamed", "bg1", "bg2"]),
        # The prefixed-id copies have unrelated file names (only the id rule catches them),
        # the renamed copies keep theirs (only the file rule catches them).
        filenames=np.array(
            [f"copies/{k}.png" for k in range(3)]
            + [f"toyds/{f}" for f in fs.filenames[own[3:5]]]
            + [f"bg/{k}.png" for k in range(6)]
        ),
    )
    cal = calibrate_threshold(
        fs, users=users, negatives=extra, refs=4, folds=2, gamma=GAMMA, dataset="toyds"
    )
    assert cal.negatives["extra"] == 6 and cal.negatives["extra_dropped_as_calibration_users"] == 5
    assert cal.negatives["other_users_references"] == 3 * 4
    for x, split, *_ in spy:
        assert x.shape[0] == len(fs) + 6
        for i, u in enumerate(split.users):
            negs = x[split.training_negatives(i)]
            scored = np.concatenate(
                [split.test_genuine[i], split.skilled[i], split.random_forgeries(i)]
            )
            forbidden = np.concatenate([fs.features[fs.y == u], fs.features[scored]])
            # Compare by value: no negative equals an own or scored signature.
            same = (negs[:, None, :] == forbidden[None, :, :]).all(axis=2)
            assert not same.any()
            # Exploitation-style check: negatives from the data are other users' references.
            data_negs = split.training_negatives(i)
            data_negs = data_negs[data_negs < len(fs)]
            refs_of_others = np.concatenate([r for j, r in enumerate(split.refs) if j != i])
            assert set(data_negs.tolist()) == set(refs_of_others.tolist())
        # Users outside the calibration set are not touched.
        assert set(fs.user_ids[split.users].tolist()) == set(users)


def test_deterministic_with_seed():
    fs = toy_features()
    kwargs = {"users": ["1", "2", "3", "4", "5"], "refs": 3, "folds": 2, "gamma": GAMMA}
    a = calibrate_threshold(fs, seed=11, **kwargs).to_dict()
    b = calibrate_threshold(fs, seed=11, **kwargs).to_dict()
    c = calibrate_threshold(fs, seed=12, **kwargs).to_dict()
    for d in (a, b, c):
        d.pop("created")
    assert a == b
    assert a["users"] == ["001", "002", "003", "004", "005"]
    assert a["fold_seeds"] != c["fold_seeds"]
    assert a["threshold"] != c["threshold"]


def test_bad_inputs():
    fs = toy_features()
    with pytest.raises(CalibrationError, match="not in the data"):
        calibrate_threshold(fs, users=["001", "999"])
    with pytest.raises(CalibrationError, match="at least 2"):
        calibrate_threshold(fs, users="001")
    with pytest.raises(CalibrationError, match="target"):
        calibrate_threshold(fs, users="001-003", target="eer-random")
    no_skilled = fs.subset(fs.yforg == 0)
    with pytest.raises(CalibrationError, match="skilled"):
        calibrate_threshold(no_skilled, users="001-003", refs=3, folds=1, gamma=GAMMA)


def test_to_dict_from_dict_round_trip():
    cal = calibrate_threshold(toy_features(), users="001-004", refs=3, folds=2, gamma=GAMMA)
    data = json.loads(json.dumps(cal.to_dict()))
    assert data["threshold"] == cal.threshold and data["target"] == "eer-skilled"
    again = Calibration.from_dict(data)
    assert again == cal
    with pytest.raises(CalibrationError):
        Calibration.from_dict({"target": "eer-skilled"})


# -- writing into the model --------------------------------------------------------


def _manual_calibration(threshold: float, model_sha256: str = "") -> Calibration:
    return Calibration(
        threshold=threshold,
        target="eer-skilled",
        eer=0.1,
        eer_threshold=threshold,
        frr=0.1,
        far_skilled=0.1,
        far_random=0.0,
        n_users=2,
        n_genuine=10,
        n_skilled=10,
        n_random=10,
        refs=5,
        folds=1,
        seed=0,
        data={"model_sha256": model_sha256},
    )


def test_apply_calibration_round_trip_and_enrollment_default(tmp_path):
    from enrollment import Verifier
    from enrollment.testing import build_tiny_model, draw_signature
    from sigver.featureset import load_features
    from sigver.models.checkpoint import file_sha256, load_checkpoint, sha256_sidecar

    path = build_tiny_model(tmp_path / "models")
    before = load_checkpoint(path)
    assert Verifier(home=tmp_path / "h0", model=path).default_threshold == 0.0

    cal = _manual_calibration(0.4375, model_sha256=before.sha256)
    assert apply_calibration(path, cal) == path
    after = load_checkpoint(path)  # verifies the new sidecar
    assert after.sha256 != before.sha256
    assert sha256_sidecar(path).read_text().split()[0] == file_sha256(path) == after.sha256
    assert after.meta.metrics["calibration"]["threshold"] == 0.4375
    assert after.meta.metrics["calibration"]["target"] == "eer-skilled"
    for key, value in before.state_dict.items():
        assert torch_equal(value, after.state_dict[key])
    bg = load_features(path.with_name("tiny.background.npz"))
    assert bg.meta["model_sha256"] == after.sha256 and bg.meta["model_id"] == after.model_id

    verifier = Verifier(home=tmp_path / "h1", model=path)  # background accepted
    assert verifier.default_threshold == 0.4375
    assert "metrics.calibration.threshold" in verifier.threshold_source
    assert verifier.n_background > 0
    refs = [draw_signature(1, k) for k in range(4)]
    verifier.enroll("alice", refs)
    assert verifier.verify("alice", draw_signature(1, 9)).threshold == 0.4375

    # A calibration made with another model's features is refused.
    with pytest.raises(ModelError, match="recalibrate"):
        apply_calibration(path, _manual_calibration(1.0, model_sha256="0" * 64))
    # A tampered checkpoint is refused before anything is written.
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(ModelError, match="sha256 mismatch"):
        apply_calibration(path, _manual_calibration(1.0))


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


# -- CLI ---------------------------------------------------------------------------


def _tiny_dataset(tmp_path):
    from enrollment.testing import TINY_CANVAS, draw_signature
    from sigver.cache import SignatureCache, save_cache
    from sigver.preprocessing import preprocess_signature

    images, y, yforg, names = [], [], [], []
    for u in range(4):
        for k in range(6):
            forgery = k >= 4
            img = draw_signature(u, k, forgery=forgery)
            images.append(preprocess_signature(img, TINY_CANVAS))
            y.append(u)
            yforg.append(int(forgery))
            names.append(f"{u + 1:03d}/{k}.png")
    cache = SignatureCache(
        x=np.stack(images)[:, None],
        y=np.array(y),
        yforg=np.array(yforg),
        user_ids=np.array([f"{u + 1:03d}" for u in range(4)]),
        filenames=np.array(names),
        meta={"dataset": "sigcomp2011", "canvas_size": list(TINY_CANVAS)},
    )
    return save_cache(tmp_path / "dev.npz", cache)


def test_cli_calibrate_prints_and_writes(tmp_path, capsys):
    from enrollment.testing import build_tiny_model
    from sigver.cli import main
    from sigver.models.checkpoint import load_checkpoint

    path = build_tiny_model(tmp_path / "models")
    data = _tiny_dataset(tmp_path)
    base = ["calibrate", "--model", str(path), "--data", str(data), "--users", "001-004"]
    base += ["--refs", "3", "--folds", "2", "--jobs", "1", "--no-progress"]
    sha = load_checkpoint(path).sha256

    assert main(base + ["--json", str(tmp_path / "cal.json")]) == 0
    out = capsys.readouterr().out
    assert "threshold" in out and "not written" in out
    saved = json.loads((tmp_path / "cal.json").read_text())
    assert saved["n_users"] == 4 and saved["data"]["model_sha256"] == sha
    assert load_checkpoint(path).sha256 == sha  # untouched without --write

    assert main(base + ["--write"]) == 0
    assert "wrote the calibration" in capsys.readouterr().out
    stored = load_checkpoint(path).meta.metrics["calibration"]
    assert stored["threshold"] == pytest.approx(saved["threshold"])  # same seed, same data

    assert main(["calibrate", "--model", str(path), "--data", str(data), "--users", "x-y"]) == 2
    bad_bg = ["--background", str(tmp_path / "missing.npz")]
    assert main(base + bad_bg) == 2
    clash = ["--target", "far-skilled=5%", "--default-operating-point", "balanced"]
    assert main(base + clash) == 2
    assert "disagree" in capsys.readouterr().err


def test_cli_calibrate_uses_the_enrollment_path_and_keeps_the_models_normaliser(tmp_path, capsys):
    from enrollment.testing import build_tiny_model
    from sigver.cache import load_cache
    from sigver.calibration import calibrate_deployment
    from sigver.cli import main
    from sigver.features import Extractor, default_background_path
    from sigver.featureset import load_features
    from sigver.models.checkpoint import load_checkpoint

    path = build_tiny_model(tmp_path / "models")
    data = _tiny_dataset(tmp_path)
    base = ["calibrate", "--model", str(path), "--data", str(data), "--users", "001-004"]
    base += ["--refs", "3", "--folds", "2", "--jobs", "1", "--no-progress"]
    assert main(base + ["--target", "far-skilled=10%", "--json", str(tmp_path / "a.json")]) == 0
    got = json.loads((tmp_path / "a.json").read_text())
    weights = load_checkpoint(path)
    fs = Extractor(weights.build_model(), weights).extract_featureset(load_cache(data))
    background = load_features(default_background_path(path))
    want = calibrate_deployment(
        fs, users="001-004", background=background, normalization="none", refs=3, folds=2,
        default="far-skilled=10%",
    )  # fmt: skip
    assert got["normalization"] == "none" and got["target"] == "far-skilled=10%"
    assert got["threshold"] == pytest.approx(want.threshold)
    # A model calibrated with a normaliser keeps it when recalibrated without --normalization.
    assert main(base + ["--normalization", "loo-lcb=0.5", "--write"]) == 0
    assert main(base + ["--json", str(tmp_path / "b.json")]) == 0
    assert json.loads((tmp_path / "b.json").read_text())["normalization"] == "loo-lcb=0.5"
    capsys.readouterr()


def test_stored_threshold_reads_only_the_calibration_entry() -> None:
    from sigver.calibration import stored_threshold

    assert stored_threshold({"calibration": {"threshold": 0.25, "target": "eer-skilled"}}) == 0.25
    # Other metrics that merely look like thresholds are never used for decisions.
    assert stored_threshold({"threshold": 0.9, "eer_threshold": 0.8}) is None
    assert stored_threshold({"calibration": {"threshold": float("nan")}}) is None
    assert stored_threshold({"calibration": {"threshold": True}}) is None
    assert stored_threshold({"calibration": "0.3"}) is None
    assert stored_threshold(None) is None

"""`sigver evaluate` end to end on a tiny synthetic feature set; FeatureSet round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sigver.cli import main
from sigver.errors import DatasetError
from sigver.featureset import FeatureSet, load_features, save_features


def tiny_features(n_users=12, d=16, n_gen=9, n_forg=4, seed=0) -> FeatureSet:
    """Each user has a mean vector; skilled forgeries lie close to it."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n_users, d)) * 3
    x, y, yforg, names = [], [], [], []
    for u in range(n_users):
        for k in range(n_gen):
            x.append(means[u] + rng.normal(size=d))
            y.append(u)
            yforg.append(0)
            names.append(f"u{u:02d}/g{k}.png")
        for k in range(n_forg):
            x.append(means[u] + 1.0 + rng.normal(size=d))
            y.append(u)
            yforg.append(1)
            names.append(f"u{u:02d}/f{k}.png")
    return FeatureSet(
        np.array(x, dtype=np.float32),
        np.array(y),
        np.array(yforg),
        np.array([f"u{u:02d}" for u in range(n_users)]),
        np.array(names),
        {"model_id": "toy-gaussian", "dataset": "toy"},
    )


def test_featureset_round_trip(tmp_path):
    fs = tiny_features()
    path = save_features(tmp_path / "f.npz", fs)
    back = load_features(path)
    np.testing.assert_array_equal(back.features, fs.features)
    np.testing.assert_array_equal(back.y, fs.y)
    np.testing.assert_array_equal(back.yforg, fs.yforg)
    np.testing.assert_array_equal(back.user_ids, fs.user_ids)
    np.testing.assert_array_equal(back.filenames, fs.filenames)
    assert back.meta["model_id"] == "toy-gaussian"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_load_features_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_features(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(DatasetError, match="missing arrays"):
        load_features(tmp_path / "other.npz")
    fs = tiny_features()
    np.savez(
        tmp_path / "bad.npz",
        features=fs.features,
        y=fs.y[:-1],
        yforg=fs.yforg,
        user_ids=fs.user_ids,
        filenames=fs.filenames,
        meta=np.array(["{}"]),
    )
    with pytest.raises(DatasetError, match="y must have shape"):
        load_features(tmp_path / "bad.npz")
    with pytest.raises(DatasetError, match="2-D"):
        FeatureSet(np.zeros(3), np.zeros(3, int), np.zeros(3, int), np.array(["a"]), np.zeros(3))


def test_cli_evaluate_smoke(tmp_path, capsys):
    path = save_features(tmp_path / "f.npz", tiny_features())
    out = tmp_path / "eval"
    argv = [
        "evaluate", "--features", str(path),
        "--exp-users", "0", "6", "--dev-users", "6", "12",
        "--refs", "4", "--test-genuine", "5", "--forg-from-dev", "5",
        "--folds", "3", "--seed", "3", "--gamma", "0.05", "--jobs", "2",
        "--out", str(out), "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "EER global thr. (a-post.)" in printed and "a-priori" in printed
    data = json.loads((out / "results.json").read_text())
    assert set(data["summary"]) >= {
        "EER_global", "EER_user", "FRR", "FAR_random", "FAR_skilled", "AUC",
    }  # fmt: skip
    for stat in data["summary"].values():
        assert set(stat) == {"mean", "std"}
    assert len(data["folds"]) == 3 and len(data["protocol"]["fold_seeds"]) == 3
    assert data["protocol"]["exp_user_ids"] == [f"u{u:02d}" for u in range(6)]
    assert data["folds"][0]["n_genuine"] == 6 * 5 and data["folds"][0]["n_random"] == 6 * 25
    # Well separated users: random forgeries are rejected.
    assert data["summary"]["FAR_random"]["mean"] < 0.05
    assert data["a_priori"]["available"]
    for name in ("results.csv", "results.md", "det.png", "roc.png", "scores.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Same seed, same numbers.
    assert main([*argv[:-3], "--out", str(tmp_path / "again"), "--no-progress"]) == 0
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert again["folds"] == data["folds"]


def test_cli_user_errors(tmp_path):
    path = save_features(tmp_path / "f.npz", tiny_features())
    base = ["evaluate", "--features", str(path), "--out", str(tmp_path / "o"), "--no-progress"]
    assert main([*base, "--preset", "nope"]) == 2
    assert main([*base, "--exp-users", "0", "6", "--dev-users", "5", "12"]) == 2
    assert main([*base, "--exp-users", "0", "6", "--refs", "20", "--dev-users", "6", "12"]) == 2
    assert main(["evaluate", "--baseline", "hog", "--out", str(tmp_path / "o")]) == 2


def test_cli_model_path_when_available(tmp_path):
    features = pytest.importorskip("sigver.features")
    try:
        model = features.default_model_path()
    except Exception:  # noqa: BLE001
        pytest.skip("no default model")
    if not model.is_file():
        pytest.skip("shipped model not present")
    rng = np.random.default_rng(0)
    from sigver.cache import SignatureCache, save_cache

    n_users, per = 6, 6
    x = (rng.random((n_users * per, 1, 170, 242)) > 0.97).astype(np.uint8) * 255
    cache = SignatureCache(
        x=x,
        y=np.repeat(np.arange(n_users), per),
        yforg=np.zeros(n_users * per, dtype=np.int8),
        user_ids=np.array([f"{u:03d}" for u in range(n_users)]),
        filenames=np.array([f"{i}.png" for i in range(n_users * per)]),
    )
    cache_path = tmp_path / "c.npz"
    save_cache(cache_path, cache)
    argv = [
        "evaluate", "--model", str(model), "--data", str(cache_path),
        "--exp-users", "0", "3", "--dev-users", "3", "6", "--refs", "3",
        "--folds", "2", "--out", str(tmp_path / "m"), "--no-plots", "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    assert (tmp_path / "m" / "results.json").is_file()


def _refuse_constant(name: str) -> None:
    raise AssertionError(f"results.json contains the non-JSON constant {name}")


def test_results_json_is_strict_when_a_metric_is_undefined(tmp_path):
    # Without skilled forgeries FAR_skilled and AUC are undefined (NaN) in every fold.
    path = save_features(tmp_path / "f.npz", tiny_features(n_forg=0))
    out = tmp_path / "eval"
    argv = [
        "evaluate", "--features", str(path),
        "--exp-users", "0", "6", "--dev-users", "6", "12",
        "--refs", "4", "--test-genuine", "5", "--forg-from-dev", "5",
        "--folds", "2", "--seed", "3", "--gamma", "0.05", "--jobs", "1",
        "--out", str(out), "--no-progress", "--no-plots",
    ]  # fmt: skip
    assert main(argv) == 0
    text = (out / "results.json").read_text()
    data = json.loads(text, parse_constant=_refuse_constant)
    assert data["summary"]["AUC"] == {"mean": None, "std": None}
    assert data["folds"][0]["FAR_skilled"] is None
    assert data["summary"]["FAR_random"]["mean"] is not None


def _fixed_argv(path, out):
    return [
        "evaluate", "--features", str(path),
        "--exp-users", "0", "6", "--dev-users", "6", "12",
        "--refs", "4", "--test-genuine", "5", "--forg-from-dev", "5",
        "--folds", "2", "--seed", "3", "--gamma", "0.05", "--jobs", "1",
        "--out", str(out), "--no-progress", "--no-plots",
    ]  # fmt: skip


def test_cli_fixed_threshold(tmp_path, capsys):
    path = save_features(tmp_path / "f.npz", tiny_features())
    # A threshold above every decision value rejects everything: FRR 100 %, FAR 0.
    out = tmp_path / "high"
    argv = [*_fixed_argv(path, out), "--threshold", "1e6", "--threshold-source", "dev EER"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "FRR @ T=1e+06 (given: dev EER)" in printed
    assert "FAR skilled @ T=1e+06 (given: dev EER)" in printed
    data = json.loads((out / "results.json").read_text())
    fixed = data["fixed_threshold"]
    assert fixed["threshold"] == 1e6 and fixed["source"] == "dev EER"
    assert [p["fold"] for p in fixed["per_fold"]] == [0, 1]
    for p in fixed["per_fold"]:
        assert (p["FRR"], p["FAR_random"], p["FAR_skilled"]) == (1.0, 0.0, 0.0)
    assert fixed["summary"]["FRR"] == {"mean": 1.0, "std": 0.0}
    assert fixed["summary"]["FAR_skilled"] == {"mean": 0.0, "std": 0.0}
    assert fixed["summary"]["HTER_skilled"] == {"mean": 0.5, "std": 0.0}
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert header[-3:] == ["FRR@T", "FAR_random@T", "FAR_skilled@T"]
    assert "@ T=1e+06 (given: dev EER)" in (out / "results.md").read_text()

    # Below every decision value everything is accepted; the default source is recorded.
    low = tmp_path / "low"
    assert main([*_fixed_argv(path, low), "--threshold", "-1000"]) == 0
    fixed = json.loads((low / "results.json").read_text())["fixed_threshold"]
    assert fixed["source"] == "command line"
    assert fixed["summary"]["FRR"]["mean"] == 0.0
    assert fixed["summary"]["FAR_random"]["mean"] == fixed["summary"]["FAR_skilled"]["mean"] == 1.0

    # T = 0 is the classifiers' own threshold: the same FRR / FAR as the main table.
    zero = tmp_path / "zero"
    assert main([*_fixed_argv(path, zero), "--threshold", "0"]) == 0
    data = json.loads((zero / "results.json").read_text())
    for key in ("FRR", "FAR_random", "FAR_skilled"):
        assert data["fixed_threshold"]["summary"][key] == data["summary"][key]


def test_cli_without_threshold_has_no_fixed_outputs(tmp_path, capsys):
    path = save_features(tmp_path / "f.npz", tiny_features())
    out = tmp_path / "plain"
    assert main(_fixed_argv(path, out)) == 0
    assert "@ T=" not in capsys.readouterr().out
    assert "fixed_threshold" not in json.loads((out / "results.json").read_text())
    assert "@T" not in (out / "results.csv").read_text()
    assert "@ T" not in (out / "results.md").read_text()


def test_cli_fixed_threshold_user_errors(tmp_path):
    path = save_features(tmp_path / "f.npz", tiny_features())
    argv = _fixed_argv(path, tmp_path / "o")
    assert main([*argv, "--threshold", "model"]) == 2  # no --model to read it from
    assert main([*argv, "--threshold", "abc"]) == 2
    assert main([*argv, "--threshold", "nan"]) == 2
    assert main([*argv, "--threshold-source", "x"]) == 2
    assert not (tmp_path / "o" / "results.json").exists()


def test_threshold_from_model_checkpoint(tmp_path):
    import argparse

    torch = pytest.importorskip("torch")
    from sigver.commands.evaluate import resolve_threshold
    from sigver.errors import SigverError
    from sigver.models.checkpoint import WeightsMeta, save_checkpoint

    def args(model, source=None):
        return argparse.Namespace(threshold="model", threshold_source=source, model=model)

    cal = tmp_path / "cal.pt"
    meta = WeightsMeta(
        arch="signet",
        feature_dim=2,
        metrics={"calibration": {"threshold": 0.326, "target": "eer-skilled"}},
    )
    save_checkpoint(cal, {"w": torch.zeros(1)}, meta)
    assert resolve_threshold(args(cal)) == (0.326, "calibration of cal.pt, eer-skilled")
    assert resolve_threshold(args(cal, "dev 001-037")) == (0.326, "dev 001-037")
    bare = tmp_path / "bare.pt"
    save_checkpoint(bare, {"w": torch.zeros(1)}, WeightsMeta(arch="signet", feature_dim=2))
    with pytest.raises(SigverError, match="no calibrated threshold"):
        resolve_threshold(args(bare))
    with pytest.raises(SigverError, match="give --model"):
        resolve_threshold(args(None))


def test_featureset_from_cache_keeps_labels_and_provenance() -> None:
    from sigver.cache import SignatureCache

    cache = SignatureCache(
        x=np.zeros((3, 1, 170, 242), dtype=np.uint8),
        y=np.array([1, 0, 1]),
        yforg=np.array([0, 0, 1]),
        user_ids=np.array(["a", "b"]),
        filenames=np.array(["a1.png", "b1.png", "a_f.png"]),
        meta={"dataset": "sigcomp2011"},
    )
    feats = np.arange(6, dtype=np.float32).reshape(3, 2)
    fs = FeatureSet.from_cache(cache, feats, {"model_id": "m"})
    assert fs.y.tolist() == [1, 0, 1] and fs.yforg.tolist() == [0, 0, 1]
    assert fs.user_ids.tolist() == ["a", "b"]
    assert fs.filenames.tolist() == ["a1.png", "b1.png", "a_f.png"]
    assert fs.meta == {"dataset": "sigcomp2011", "model_id": "m"}
    # An explicit dataset in the metadata wins over the cache's.
    assert FeatureSet.from_cache(cache, feats, {"dataset": "x"}).meta["dataset"] == "x"


@pytest.mark.parametrize(("policy", "expected"), [("model", (400, 570)), ("dataset", (952, 1360))])
def test_evaluate_preprocesses_folders_on_the_model_canvas(tmp_path, policy, expected):
    # One canvas policy: research figures are measured on the product's preprocessing
    # (the model's canvas) unless the published per-dataset canvas is asked for.
    import torch

    import sigver.cache
    from sigver.models import get_model
    from sigver.models.checkpoint import WeightsMeta, save_checkpoint
    from sigver.synth import generate_corpus

    model = get_model("sigresnet", widths=(4, 8, 8, 8), feature_dim=8)
    preset = {"canvas_size": [400, 570], "img_size": [170, 242], "input_size": [150, 220]}
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, model, WeightsMeta.for_model(model, name="m", preprocess=preset))
    generate_corpus(tmp_path / "gpds", 4, 4, 1, seed=1, n_jobs=1, progress=False)
    seen = []
    real = sigver.cache.load_signatures

    def spy(*args, **kw):
        cache = real(*args, **kw)
        seen.append(cache.canvas_size)
        return cache

    torch.manual_seed(0)
    argv = [
        "evaluate", "--model", str(ckpt), "--data", str(tmp_path / "gpds"), "--dataset", "gpds",
        "--exp-users", "0", "2", "--dev-users", "2", "4", "--refs", "2", "--folds", "1",
        "--out", str(tmp_path / "e"), "--no-plots", "--no-progress", "--jobs", "1",
    ]  # fmt: skip
    if policy == "dataset":
        argv += ["--canvas", "dataset"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sigver.cache, "load_signatures", spy)
        assert main(argv) == 0
    assert seen == [expected]


def test_cli_evaluate_gamma_comes_from_the_features_model_unless_given(tmp_path):
    fs = tiny_features()
    fs.meta["classifier_params"] = {"gamma": 0.125}  # what an ensemble's extractor records
    path = save_features(tmp_path / "f.npz", fs)
    common = [
        "evaluate", "--features", str(path),
        "--exp-users", "0", "6", "--dev-users", "6", "12",
        "--refs", "4", "--test-genuine", "5", "--forg-from-dev", "5",
        "--folds", "1", "--jobs", "1", "--no-progress", "--no-plots",
    ]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    data = json.loads((tmp_path / "a" / "results.json").read_text())
    assert data["classifier"]["gamma"] == 0.125
    assert main([*common, "--gamma", "0.5", "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "results.json").read_text())["classifier"]["gamma"] == 0.5


def test_cli_evaluate_unknown_model_name_is_a_clear_error(tmp_path, caplog):
    code = main(["evaluate", "--model", "sigver-nope-v9", "--data", str(tmp_path), "--out",
                 str(tmp_path / "o")])  # fmt: skip
    assert code != 0
    assert "not found (give a checkpoint path or a shipped model name)" in caplog.text

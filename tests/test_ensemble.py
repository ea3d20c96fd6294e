"""Ensembles of trained extractors: architecture, checkpoint, SVM parameters, product path."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sigver.errors import DatasetError, ModelError, SigverError
from sigver.features import Extractor
from sigver.featureset import FeatureSet, join_features
from sigver.models import SigEnsemble, get_model
from sigver.models.checkpoint import WeightsMeta, load_checkpoint, save_checkpoint
from sigver.models.ensemble import ensemble_classifier_params
from sigver.usermodel import DEFAULT_CLASSIFIER_PARAMS, classifier_params_for

REPO = Path(__file__).resolve().parents[1]
TINY = {"arch": "sigresnet", "arch_config": {"widths": [4, 8, 8, 16], "feature_dim": 8}}
WIDER = {"arch": "sigresnet", "arch_config": {"widths": [4, 4, 8, 8], "feature_dim": 5}}


def _members(seed: int = 0) -> list[torch.nn.Module]:
    torch.manual_seed(seed)
    return [get_model(s["arch"], **s["arch_config"]).eval() for s in (TINY, WIDER)]


def _ensemble_of(members: list[torch.nn.Module]) -> SigEnsemble:
    ens = SigEnsemble(members=[TINY, WIDER])
    state = {
        f"members.{i}.{k}": v for i, m in enumerate(members) for k, v in m.state_dict().items()
    }
    ens.load_state_dict(state, strict=True)
    return ens.eval()


def test_forward_is_the_members_features_side_by_side() -> None:
    members = _members()
    ens = _ensemble_of(members)
    x = torch.rand(3, 1, 150, 220)
    with torch.inference_mode():
        expected = torch.cat([m(x) for m in members], dim=1)
        got = ens(x)
    assert ens.feature_dim == 8 + 5 == got.shape[1]
    assert torch.equal(got, expected)
    assert torch.equal(ens.forward_to(x, "features"), expected)


def test_config_rebuilds_the_architecture_through_the_registry() -> None:
    ens = SigEnsemble(members=[TINY, WIDER])
    again = get_model("ensemble", **ens.config())
    assert again.config() == ens.config()
    assert list(again.state_dict()) == list(ens.state_dict())


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([TINY], "at least 2"),
        ([], "at least 2"),
        ([TINY, {"arch": "ensemble", "arch_config": {"members": [TINY, TINY]}}], "another"),
        ([TINY, {"arch_config": {}}], "member must be"),
        ([TINY, {"arch": "nope"}], "unknown architecture"),
    ],
)
def test_bad_member_lists_are_refused_clearly(members: list, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        SigEnsemble(members=members)


def test_earlier_layers_and_training_are_refused() -> None:
    ens = SigEnsemble(members=[TINY, WIDER])
    with pytest.raises(ModelError, match="member model"):
        ens.forward_to(torch.rand(1, 1, 150, 220), "stage1")
    assert ens.layer_names() == ["features"] and ens.trainable_blocks() == []
    from sigver.training import TrainConfig

    with pytest.raises(SigverError, match="build_ensemble"):
        TrainConfig(arch="ensemble")


def test_gamma_keeps_one_members_kernel_width() -> None:
    # Unit-variance dimensions: squared distances of k joined spaces add up, so gamma / k.
    assert ensemble_classifier_params(4) == {"gamma": DEFAULT_CLASSIFIER_PARAMS["gamma"] / 4}
    assert ensemble_classifier_params(1)["gamma"] == DEFAULT_CLASSIFIER_PARAMS["gamma"]
    with pytest.raises(ModelError):
        ensemble_classifier_params(0)


def test_checkpoint_round_trip_keeps_weights_and_classifier(tmp_path: Path) -> None:
    ens = _ensemble_of(_members())
    overrides = ensemble_classifier_params(2)
    meta = WeightsMeta.for_model(ens, name="ens", version="1", classifier=overrides)
    save_checkpoint(tmp_path / "ens.pt", ens, meta)
    loaded = load_checkpoint(tmp_path / "ens.pt")
    assert loaded.meta.classifier == overrides
    assert loaded.meta.arch_config == ens.config()
    rebuilt = loaded.build_model()
    x = torch.rand(2, 1, 150, 220)
    with torch.inference_mode():
        assert torch.equal(rebuilt(x), ens(x))
    # What the product's code paths read from it.
    ext = Extractor.from_checkpoint(tmp_path / "ens.pt")
    assert ext.describe()["classifier_params"] == overrides
    expected = {**DEFAULT_CLASSIFIER_PARAMS, **overrides}
    assert classifier_params_for(loaded.meta) == expected
    assert classifier_params_for(ext) == expected
    assert classifier_params_for(ext.describe()) == expected
    with pytest.raises(ModelError, match="layer"):
        Extractor.from_checkpoint(tmp_path / "ens.pt", layer="stage2")


def test_classifier_params_default_and_refuse_unknown_keys() -> None:
    assert classifier_params_for(None) == DEFAULT_CLASSIFIER_PARAMS
    assert classifier_params_for({"model_id": "x"}) == DEFAULT_CLASSIFIER_PARAMS
    plain = WeightsMeta(arch="sigresnet", feature_dim=4)
    assert classifier_params_for(plain) == DEFAULT_CLASSIFIER_PARAMS
    # Old checkpoints have no "classifier" key: the defaults.
    assert WeightsMeta.from_dict({"arch": "sigresnet", "feature_dim": 4}).classifier == {}
    with pytest.raises(ModelError, match="probability"):
        classifier_params_for({"classifier_params": {"probability": True}})


def _fs(values: list[list[float]], files: list[str], meta: dict | None = None) -> FeatureSet:
    n = len(values)
    return FeatureSet(
        np.array(values),
        np.zeros(n, int),
        np.zeros(n, int),
        np.array(["w"]),
        np.array(files),
        meta=meta or {},
    )


def test_join_features_joins_rows_of_the_same_images_only() -> None:
    a = _fs([[1.0], [2.0]], ["x.png", "y.png"], {"model_id": "a"})
    b = _fs([[3.0, 4.0], [5.0, 6.0]], ["x.png", "y.png"], {"model_id": "b"})
    joined = join_features([a, b])
    assert joined.features.tolist() == [[1.0, 3.0, 4.0], [2.0, 5.0, 6.0]]
    assert joined.meta == {"model_id": "a"}
    assert join_features([a, b], meta={"model_id": "a+b"}).meta == {"model_id": "a+b"}
    with pytest.raises(DatasetError, match="different images"):
        join_features([a, _fs([[0.0], [0.0]], ["y.png", "x.png"])])
    with pytest.raises(DatasetError, match="different images"):
        join_features([a, _fs([[0.0]], ["x.png"])])
    with pytest.raises(DatasetError):
        join_features([])


def test_verifier_enrolls_with_the_models_gamma(tmp_path: Path) -> None:
    from enrollment import Verifier
    from enrollment.testing import build_tiny_model, draw_signature

    overrides = ensemble_classifier_params(2)
    path = build_tiny_model(
        tmp_path / "models",
        name="ens",
        arch="ensemble",
        arch_options={"members": [TINY, WIDER]},
        classifier=overrides,
    )
    verifier = Verifier(home=tmp_path / "home", model=path)
    assert verifier.classifier_params["gamma"] == overrides["gamma"]
    user = verifier.enroll("alice", [draw_signature(1, s) for s in range(4)]).user
    assert user.classifier_params["gamma"] == overrides["gamma"]
    result = verifier.verify("alice", draw_signature(1, 9))
    assert np.isfinite(result.score)
    # An explicit choice still wins over the model's.
    mine = Verifier(home=tmp_path / "h2", model=path, classifier_params={"gamma": 0.5})
    assert mine.classifier_params == {"gamma": 0.5}


def test_deployment_simulation_uses_the_features_models_gamma() -> None:
    from sigver.evaluation import simulate_deployment

    rng = np.random.default_rng(0)
    n_users, per = 6, 6
    y = np.repeat(np.arange(n_users), per)
    feats = rng.normal(size=(len(y), 6)) + y[:, None]
    yforg = np.tile(np.array([0, 0, 0, 0, 0, 1]), n_users)
    fs = FeatureSet(
        feats,
        y,
        yforg,
        np.array([f"u{i}" for i in range(n_users)]),
        np.array([f"f{i}.png" for i in range(len(y))]),
        meta={"classifier_params": {"gamma": 0.125}},
    )
    run = simulate_deployment(fs, users=tuple(fs.user_ids), background=None, refs=3, folds=1)
    assert run.info["classifier_params"]["gamma"] == 0.125
    # The report names the SVM the users were enrolled with, not the generic default.
    result = run.result("none")
    assert (result.classifier.gamma, result.classifier.scaling) == (0.125, "user")


@pytest.mark.skipif(
    not (REPO / "models/sigver-ensemble-v1.pt").is_file(), reason="no shipped ensemble"
)
def test_shipped_ensemble_holds_its_members_unchanged() -> None:
    shipped = load_checkpoint(REPO / "models/sigver-ensemble-v1.pt")
    members = shipped.meta.extra["members"]
    assert shipped.meta.classifier == ensemble_classifier_params(len(members))
    for i, m in enumerate(members):
        member = load_checkpoint(REPO / "models" / m["file"])
        # The recorded id is the member's at build time. A member recalibrated since
        # (v3, 2026-12-06) has a new id but the same weights, and the weights are what
        # the ensemble holds.
        assert member.model_id.rsplit("-", 1)[0] == m["model_id"].rsplit("-", 1)[0]
        for key, value in member.state_dict.items():
            assert torch.equal(shipped.state_dict[f"members.{i}.{key}"], value), key
    assert "calibration" in shipped.meta.metrics
    sys.path.insert(0, str(REPO / "scripts"))
    import build_ensemble

    assert [p.name for p in build_ensemble.DEFAULT_MEMBERS] == [m["file"] for m in members]


def test_classifier_config_for_features_follows_the_model() -> None:
    from sigver.evaluation import ClassifierConfig

    assert ClassifierConfig.for_features(None) == ClassifierConfig()
    cfg = ClassifierConfig.for_features({"classifier_params": {"gamma": 0.25}}, scaling="user")
    assert (cfg.gamma, cfg.C, cfg.scaling) == (0.25, 1.0, "user")

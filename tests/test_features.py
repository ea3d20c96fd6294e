"""Extractor: determinism, batch invariance, input handling, raw images, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sigver.cache import SignatureCache, save_cache
from sigver.cli import main
from sigver.errors import ImageError, ModelError
from sigver.features import (
    DEFAULT_MODEL_ENV,
    Extractor,
    default_background_path,
    default_model_path,
)
from sigver.featureset import load_features
from sigver.models import get_model
from sigver.models.checkpoint import WeightsMeta, save_checkpoint
from sigver.preprocessing import PreprocessConfig, preprocess_signature

PRESET = {"canvas_size": [400, 570], "img_size": [170, 242], "input_size": [150, 220]}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = get_model("sigresnet", widths=(8, 8, 16, 16), feature_dim=24)
    # Non-trivial BatchNorm statistics so that eval-mode features are informative.
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.1, 0.1)
            module.weight.data.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    meta = WeightsMeta.for_model(model, name="tiny", version="2", preprocess=PRESET)
    save_checkpoint(path, model, meta)
    return path


def _images(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 1, 170, 242), np.uint8)
    for i in range(n):
        r, c = rng.integers(20, 150), rng.integers(20, 220)
        x[i, 0, r - 10 : r + 10, c - 30 : c + 20] = rng.integers(100, 255)
    return x


def test_identity_properties(checkpoint: Path) -> None:
    ext = Extractor.from_checkpoint(checkpoint)
    assert ext.feature_dim == 24
    assert ext.sha256 == checkpoint.with_name("tiny.pt.sha256").read_text().split()[0]
    assert ext.model_id == f"tiny-2-{ext.sha256[:12]}"
    assert ext.preprocess_config == PreprocessConfig.from_dict(PRESET)
    assert ext.describe()["feature_dim"] == 24


def test_extract_is_deterministic_and_batch_invariant(checkpoint: Path) -> None:
    ext = Extractor.from_checkpoint(checkpoint)
    x = _images(7)
    a = ext.extract(x)
    assert a.dtype == np.float32 and a.shape == (7, 24)
    np.testing.assert_array_equal(a, ext.extract(x))
    for batch_size in (1, 3, 64):
        np.testing.assert_allclose(ext.extract(x, batch_size=batch_size), a, rtol=1e-5, atol=1e-6)
    # Each image's features do not depend on the rest of the batch.
    np.testing.assert_allclose(ext.extract(x[2:3])[0], a[2], rtol=1e-5, atol=1e-6)
    assert not np.allclose(a[0], a[1])


def test_input_layouts_and_centre_crop(checkpoint: Path) -> None:
    ext = Extractor.from_checkpoint(checkpoint)
    x = _images(3)
    a = ext.extract(x)
    np.testing.assert_array_equal(ext.extract(x[:, 0]), a)  # (N, H, W)
    np.testing.assert_allclose(ext.extract(x[1, 0])[0], a[1], rtol=1e-5, atol=1e-6)  # one image
    np.testing.assert_array_equal(ext.extract(x[:, :, 10:160, 11:231]), a)  # pre-cropped
    cache = SignatureCache(
        x=x, y=[0, 0, 0], yforg=[0, 0, 0], user_ids=["u"], filenames=["a", "b", "c"]
    )
    np.testing.assert_array_equal(ext.extract(cache), a)
    with pytest.raises(ImageError, match="uint8"):
        ext.extract(x.astype(np.float32))
    with pytest.raises(ImageError, match="smaller"):
        ext.extract(x[:, :, :100])
    with pytest.raises(ModelError):
        ext.extract(x, batch_size=0)


def _raw_signature(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((220, 480), 235, np.uint8)
    pts = np.stack([np.linspace(40, 440, 30), 110 + 50 * np.sin(np.linspace(0, 9, 30) + seed)], 1)
    cv2.polylines(img, [pts.astype(np.int32)], False, int(rng.integers(10, 60)), 3)
    return img


def test_extract_raw_and_files_preprocess_with_the_model_preset(
    checkpoint: Path, tmp_path: Path
) -> None:
    ext = Extractor.from_checkpoint(checkpoint)
    raws = [_raw_signature(0), _raw_signature(1)]
    expected = ext.extract(np.stack([preprocess_signature(r, (400, 570)) for r in raws]))
    np.testing.assert_allclose(ext.extract_raw(raws), expected, rtol=1e-5, atol=1e-6)
    paths = []
    for i, raw in enumerate(raws):
        paths.append(tmp_path / f"s{i}.png")
        cv2.imwrite(str(paths[-1]), raw)
    np.testing.assert_allclose(ext.extract_files(paths), expected, rtol=1e-5, atol=1e-6)
    (tmp_path / "blank.png").write_bytes(cv2.imencode(".png", np.full((50, 50), 255, np.uint8))[1])
    with pytest.raises(ImageError):
        ext.extract_files([paths[0], tmp_path / "blank.png"])


def test_default_model_lookup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(DEFAULT_MODEL_ENV, raising=False)
    path = default_model_path()
    assert path.parent.name == "models" and path.parent.parent == Path(__file__).parents[1]
    assert default_background_path(path).name == path.stem + ".background.npz"
    monkeypatch.setenv(DEFAULT_MODEL_ENV, str(tmp_path / "none.pt"))
    assert default_model_path() == tmp_path / "none.pt"
    with pytest.raises(ModelError, match="default model is missing"):
        Extractor.default()


def test_features_cli_writes_a_feature_set(checkpoint: Path, tmp_path: Path) -> None:
    x = _images(4)
    cache = SignatureCache(
        x=x,
        y=[0, 0, 1, 1],
        yforg=[0, 1, 0, 0],
        user_ids=["u1", "u2"],
        filenames=["a", "b", "c", "d"],
        meta={"dataset": "folder"},
    )
    save_cache(tmp_path / "c.npz", cache)
    out = tmp_path / "f.npz"
    argv = [
        "features",
        "--model",
        str(checkpoint),
        "--data",
        str(tmp_path / "c.npz"),
        "--out",
        str(out),
        "--batch-size",
        "3",
        "--no-progress",
    ]
    assert main(argv) == 0
    fs = load_features(out)
    assert fs.features.shape == (4, 24)
    np.testing.assert_allclose(
        fs.features, Extractor.from_checkpoint(checkpoint).extract(x), rtol=1e-5, atol=1e-6
    )
    assert fs.yforg.tolist() == [0, 1, 0, 0] and fs.user_ids.tolist() == ["u1", "u2"]
    assert fs.meta["model_id"].startswith("tiny-2-")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(checkpoint.read_bytes()[:-10])
    bad.with_name("bad.pt.sha256").write_text(checkpoint.with_name("tiny.pt.sha256").read_text())
    assert main([*argv[:2], str(bad), *argv[3:]]) == 2  # sha256 mismatch -> user error


def test_shipped_model_and_background(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEFAULT_MODEL_ENV, raising=False)
    path = default_model_path()
    if not path.is_file():
        pytest.skip(f"shipped model not built yet ({path})")
    assert path.stat().st_size <= 40e6
    ext = Extractor.default()
    meta = ext.meta
    assert meta.storage_dtype == "float16" and meta.name and meta.training_data
    assert "038" not in json.dumps(meta.training_data.get("sources", []))
    assert ext.preprocess_config.img_size == (170, 242)
    assert path.with_suffix(".md").is_file()
    background = load_features(default_background_path(path))
    assert background.dim == ext.feature_dim
    assert background.meta["model_id"] == ext.model_id
    assert (background.yforg == 0).all()
    x = np.zeros((1, 1, 170, 242), np.uint8)
    x[0, 0, 80:90, 60:180] = 255
    assert np.isfinite(ext.extract(x)).all()


_SHIPPED = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "models").glob("*.pt"))


@pytest.mark.parametrize("name", _SHIPPED)
def test_every_shipped_model_loads_by_name_with_its_card_and_background(name: str) -> None:
    from sigver.calibration import stored_calibration
    from sigver.features import resolve_model_path

    path = resolve_model_path(name)
    ext = Extractor.from_checkpoint(path)  # checks the sha256 sidecar
    assert ext.meta.name and path.with_suffix(".md").is_file()
    assert "038" not in json.dumps(ext.meta.training_data.get("sources", []))
    background = load_features(default_background_path(path))
    assert background.meta["model_id"] == ext.model_id and background.dim == ext.feature_dim
    calibration = stored_calibration(ext.meta.metrics)
    assert calibration is not None and calibration["threshold"] is not None
    # The card is generated from this file's metadata: it names this model id.
    assert ext.model_id in path.with_suffix(".md").read_text(encoding="utf-8")


def test_features_from_a_chosen_layer(checkpoint: Path, tmp_path: Path) -> None:
    ext = Extractor.from_checkpoint(checkpoint, layer="stage3")
    x = _images(5)
    feats = ext.extract(x)
    # stage3 has 16 channels, pooled to 2 x 3 cells.
    assert ext.feature_dim == 16 * 6 and feats.shape == (5, 96)
    manual = Extractor.from_checkpoint(checkpoint).model
    with torch.inference_mode():
        inputs = torch.from_numpy(x[:, :, 10:160, 11:231].copy()).float() / 255.0
        out = manual.conv_layers[:5](inputs)  # stem .. stage3
        expected = torch.nn.functional.adaptive_avg_pool2d(out, (2, 3)).flatten(1).numpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-6)
    assert ext.model_id.endswith("@stage3") and ext.describe()["layer"] == "stage3"
    last = Extractor.from_checkpoint(checkpoint, layer="fc1")  # the last layer is the default
    assert last.layer is None and last.model_id == Extractor.from_checkpoint(checkpoint).model_id
    with pytest.raises(ModelError, match="layers: stem"):
        Extractor.from_checkpoint(checkpoint, layer="conv9")
    cache = SignatureCache(
        x=x, y=[0] * 5, yforg=[0] * 5, user_ids=["u"], filenames=list("abcde"), meta={}
    )
    save_cache(tmp_path / "c.npz", cache)
    argv = ["features", "--model", str(checkpoint), "--data", str(tmp_path / "c.npz")]
    assert main([*argv, "--layer", "stage2", "--out", str(tmp_path / "f.npz")]) == 0
    assert load_features(tmp_path / "f.npz").features.shape == (5, 8 * 6)  # stage2: 8 channels
    assert main([*argv, "--layer", "nope", "--out", str(tmp_path / "g.npz")]) == 2

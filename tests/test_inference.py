"""Inference backends: ONNX export agrees with torch, the cache is safe, torch-free loading."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sigver import inference
from sigver.cli import main
from sigver.errors import ModelError
from sigver.features import Extractor
from sigver.models import get_model
from sigver.models.checkpoint import WeightsMeta, save_checkpoint
from sigver.svm_scoring import SVMScorer

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

PRESET = {"canvas_size": [400, 570], "img_size": [170, 242], "input_size": [150, 220]}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    model = get_model("sigresnet", widths=(8, 8, 16, 16), feature_dim=24)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.weight.data.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    meta = WeightsMeta.for_model(
        model,
        name="tiny",
        version="3",
        preprocess=PRESET,
        metrics={"calibration": {"threshold": 0.25}},
    )
    save_checkpoint(path, model, meta)
    return path


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder of this test's own."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(inference.CACHE_ENV, str(folder))
    return folder


@pytest.fixture(scope="module")
def _prepared(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("prepared")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(inference.CACHE_ENV, str(folder))
        inference.open_extractor(checkpoint, backend="onnx")
    return folder


@pytest.fixture()
def prepared(_prepared: Path, cache: Path) -> Path:
    """A cache already holding the verified export of ``checkpoint`` (exports are slow)."""
    shutil.copytree(_prepared, cache)
    return cache


@pytest.fixture(scope="module")
def exported(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ext = Extractor.from_checkpoint(checkpoint)
    return inference.export_onnx(ext, tmp_path_factory.mktemp("export") / "tiny.onnx")


def test_exported_onnx_features_agree_with_torch(checkpoint: Path, exported: Path) -> None:
    ext = Extractor.from_checkpoint(checkpoint)
    onnx_ext = inference.OnnxExtractor(exported, expected_sha256=ext.sha256)
    images = inference.probe_images((170, 242), n=10, seed=3)
    ref = ext.extract(images)
    got = onnx_ext.extract(images, batch_size=3)  # batch size must not matter
    assert got.shape == (10, 24)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    # Same identity, preset and metadata as the torch extractor.
    assert onnx_ext.model_id == ext.model_id and onnx_ext.sha256 == ext.sha256
    assert onnx_ext.preprocess_config == ext.preprocess_config
    assert onnx_ext.meta.metrics["calibration"]["threshold"] == 0.25
    assert onnx_ext.describe()["backend"] == "onnx"


def test_onnx_metadata_props_describe_the_model(checkpoint: Path, exported: Path) -> None:
    out = exported
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert (
        props["sigver.checkpoint_sha256"]
        == checkpoint.with_name("tiny.pt.sha256").read_text().split()[0]
    )
    assert json.loads(props["sigver.preprocess"])["canvas_size"] == [400, 570]
    assert json.loads(props["sigver.meta"])["name"] == "tiny"
    assert props["sigver.feature_dim"] == "24" and "divided by 255" in props["sigver.input"]
    with pytest.raises(ModelError, match="exported from checkpoint"):
        inference.OnnxExtractor(out, expected_sha256="0" * 64)


def test_open_extractor_verifies_once_and_caches(checkpoint: Path, prepared: Path) -> None:
    cache = prepared  # the fixture ran the first open_extractor(backend="onnx")
    records = list((cache / "onnx").glob("*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["verified"] and record["agreement"]["max_rel_diff"] <= inference.AGREEMENT_RTOL
    assert record["batch_size"]["onnx"] in inference.BATCH_CANDIDATES
    assert set(record["throughput_img_s"]) == {"torch", "onnx"}
    mtime = records[0].stat().st_mtime_ns
    second = inference.open_extractor(checkpoint, backend="onnx")
    assert records[0].stat().st_mtime_ns == mtime  # reused, not redone
    assert second.default_batch_size == record["batch_size"]["onnx"]
    # Auto picks what the record measured as faster.
    auto = inference.open_extractor(checkpoint, backend="auto")
    assert auto.backend == record["auto_backend"]
    # An explicit torch backend also gets the batch size measured for torch.
    torch_ext = inference.open_extractor(checkpoint, backend="torch")
    assert torch_ext.backend == "torch"
    assert torch_ext.default_batch_size == record["batch_size"]["torch"]
    # Nothing is written next to the model or inside the package.
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["tiny.pt", "tiny.pt.sha256"]


@pytest.mark.slow
def test_altered_cached_onnx_is_redone(checkpoint: Path, prepared: Path) -> None:
    cache = prepared
    (onnx_file,) = (cache / "onnx").glob("*.onnx")
    onnx_file.write_bytes(onnx_file.read_bytes()[:-100] + b"\0" * 100)
    again = inference.open_extractor(checkpoint, backend="onnx")
    assert isinstance(again, inference.OnnxExtractor)
    record = json.loads(next((cache / "onnx").glob("*.json")).read_text())
    assert inference.checkpoint_sha256(checkpoint) == record["checkpoint_sha256"]
    new_file = cache / "onnx" / record["onnx_file"]
    assert inference.file_sha256(new_file) == record["onnx_sha256"]


def test_rejected_export_falls_back_to_torch(
    checkpoint: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A negative tolerance: no export can pass, as if ONNX Runtime computed wrong features.
    monkeypatch.setattr(inference, "AGREEMENT_RTOL", -1.0)
    assert isinstance(inference.open_extractor(checkpoint, backend="auto"), Extractor)
    record = json.loads(next((cache / "onnx").glob("*.json")).read_text())
    assert record["verified"] is False and "differ from torch" in record["reason"]
    with pytest.raises(ModelError, match="cannot use the onnx backend"):
        inference.open_extractor(checkpoint, backend="onnx")


def test_backend_choice_without_onnxruntime(
    checkpoint: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inference, "onnxruntime_available", lambda: False)
    assert isinstance(inference.open_extractor(checkpoint, backend="auto"), Extractor)
    with pytest.raises(ModelError, match="needs onnxruntime"):
        inference.open_extractor(checkpoint, backend="onnx")
    with pytest.raises(ModelError, match="unknown backend"):
        inference.open_extractor(checkpoint, backend="tpu")
    assert not cache.exists()


def test_tampered_checkpoint_is_refused_on_the_onnx_path(checkpoint: Path, cache: Path) -> None:
    bad = cache.parent / "bad.pt"
    bad.write_bytes(checkpoint.read_bytes()[:-10] + b"0123456789")
    bad.with_name("bad.pt.sha256").write_text(checkpoint.with_name("tiny.pt.sha256").read_text())
    with pytest.raises(ModelError, match="sha256 mismatch"):
        inference.open_extractor(bad, backend="onnx")


def test_a_checkpoint_without_its_sidecar_is_refused_even_when_cached(
    checkpoint: Path, prepared: Path
) -> None:
    # The cache holds a verified export of these very bytes; a copy without its .sha256
    # is still refused, as the torch backend refuses it.
    copy = prepared.parent / "nosidecar" / "tiny.pt"
    copy.parent.mkdir()
    copy.write_bytes(checkpoint.read_bytes())
    for backend in ("onnx", "torch"):
        with pytest.raises(ModelError, match="refusing unverified"):
            inference.open_extractor(copy, backend=backend)


def test_cache_dir_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(inference.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert inference.cache_dir() == tmp_path / "xdg" / "sigver"
    monkeypatch.setenv(inference.CACHE_ENV, str(tmp_path / "c"))
    assert inference.cache_dir() == tmp_path / "c"


def test_onnx_path_imports_neither_torch_nor_sklearn(checkpoint: Path, prepared: Path) -> None:
    code = (
        "import sys\n"
        "from sigver.inference import open_extractor\n"
        f"ext = open_extractor({str(checkpoint)!r}, backend='onnx')\n"
        "from sigver.inference import probe_images\n"
        "f = ext.extract(probe_images((170, 242), 2))\n"
        "from enrollment.verifier import Verifier\n"
        "import enrollment.store, sigver.svm_scoring, sigver.calibration\n"
        "print(type(ext).__name__, f.shape, 'torch' in sys.modules, 'sklearn' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["OnnxExtractor", "(2,", "24)", "False", "False"]


def test_verifier_scores_agree_across_backends(checkpoint: Path, prepared: Path, tmp_path) -> None:
    import cv2

    from enrollment import Verifier

    rng = np.random.default_rng(0)
    images = []
    for i in range(8):
        img = np.full((200, 300), 255, np.uint8)
        pts = np.cumsum(rng.normal(0, 15, size=(20, 2)), axis=0) + (150, 100)
        cv2.polylines(img, [pts.astype(np.int32)], False, 0, 2 + i % 2)
        images.append(img)
    background = rng.normal(size=(30, 24)).astype(np.float32)
    torch_v = Verifier(
        home=tmp_path / "h", model=checkpoint, backend="torch", background=background
    )
    torch_v.enroll("alice", images[:5])
    onnx_v = Verifier(home=tmp_path / "h", model=checkpoint, backend="onnx", background=background)
    assert onnx_v.extractor.backend == "onnx" and onnx_v.model_sha256 == torch_v.model_sha256
    assert onnx_v.default_threshold == 0.25
    a = [r.score for r in torch_v.verify_batch("alice", images[5:])]
    b = [r.score for r in onnx_v.verify_batch("alice", images[5:])]
    np.testing.assert_allclose(b, a, atol=1e-4)


def test_svm_scorer_is_bit_identical_to_the_classifier() -> None:
    from sigver.classifier import WriterDependentClassifier

    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(1, 1, (6, 5)), rng.normal(-1, 1, (20, 5))]
    y = np.r_[np.ones(6, int), np.zeros(20, int)]
    clf = WriterDependentClassifier(gamma=0.1).fit(x, y)
    scorer = SVMScorer.from_arrays(clf.to_arrays())
    q = rng.normal(size=(7, 5))
    assert np.array_equal(scorer.decision_function(q), clf.decision_function(q))
    with pytest.raises(ModelError, match="shape"):
        scorer.decision_function(q[:, :4])
    with pytest.raises(ModelError, match="lack"):
        SVMScorer.from_arrays({"scale": clf.scale_})


def test_export_cli(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "exported.onnx"
    assert main(["export", "--model", str(checkpoint), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["max_rel_diff_vs_torch"] <= inference.AGREEMENT_RTOL
    assert summary["checkpoint_sha256"] == inference.checkpoint_sha256(checkpoint)
    assert out.is_file()
    assert main(["export", "--model", str(tmp_path / "none.pt"), "--out", str(out)]) == 2


def test_unwritable_cache_falls_back_to_torch(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv(inference.CACHE_ENV, str(blocker / "cache"))
    assert isinstance(inference.open_extractor(checkpoint, backend="auto"), Extractor)
    with pytest.raises(ModelError, match="cannot write the ONNX cache"):
        inference.open_extractor(checkpoint, backend="onnx")


def test_cli_verify_on_the_onnx_path_never_imports_torch(
    checkpoint: Path, prepared: Path, tmp_path: Path
) -> None:
    import cv2

    from enrollment import Verifier

    rng = np.random.default_rng(1)
    files = []
    for i in range(6):
        img = np.full((200, 300), 255, np.uint8)
        pts = np.cumsum(rng.normal(0, 15, size=(20, 2)), axis=0) + (150, 100)
        cv2.polylines(img, [pts.astype(np.int32)], False, 0, 2)
        files.append(tmp_path / f"s{i}.png")
        cv2.imwrite(str(files[-1]), img)
    from sigver.featureset import FeatureSet, save_features

    # A model folder of its own: the background file beside the checkpoint, as shipped.
    model = tmp_path / "model" / checkpoint.name
    model.parent.mkdir()
    for f in (checkpoint, checkpoint.with_name(checkpoint.name + ".sha256")):
        shutil.copy2(f, model.parent / f.name)
    save_features(
        model.with_name(model.stem + ".background.npz"),
        FeatureSet(
            features=rng.normal(size=(30, 24)).astype(np.float32),
            y=np.repeat(np.arange(10), 3),
            yforg=np.zeros(30, np.int8),
            user_ids=np.array([f"w{i}" for i in range(10)]),
            filenames=np.array([f"b{i}.png" for i in range(30)]),
        ),
    )
    home = tmp_path / "home"
    Verifier(home=home, model=model, backend="torch").enroll("alice", [str(f) for f in files[:5]])
    code = (
        "import sys\n"
        "from sigver.cli import main\n"
        f"rc = main(['-q', 'verify', '--backend', 'onnx', '--model', {str(model)!r}, "
        f"'--home', {str(home)!r}, '--user', 'alice', {str(files[5])!r}])\n"
        "print('RESULT', rc, 'torch' in sys.modules, 'sklearn' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), inference.CACHE_ENV: str(prepared)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT")]
    assert line, out.stdout + out.stderr
    rc, torch_loaded, sklearn_loaded = line[-1].split()[1:]
    assert rc in ("0", "1") and (torch_loaded, sklearn_loaded) == ("False", "False"), out.stderr

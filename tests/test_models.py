"""Architectures, registry, checkpoints (ours and the reference tuple format), model cards."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from sigver.errors import ModelError
from sigver.features import Extractor
from sigver.models import SigNet, available_models, get_model
from sigver.models.card import render_model_card
from sigver.models.checkpoint import (
    WeightsMeta,
    file_sha256,
    load_checkpoint,
    load_reference_checkpoint,
    load_weights,
    save_checkpoint,
    sha256_sidecar,
)

SIGNET_KEYS = [
    f"conv_layers.{block}.{part}"
    for block in ("conv1", "conv2", "conv3", "conv4", "conv5")
    for part in (
        "conv.weight",
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
    )
] + [
    f"fc_layers.{block}.{part}"
    for block in ("fc1", "fc2")
    for part in (
        "fc.weight",
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
    )
]


def test_registry_lists_architectures_and_rejects_unknown() -> None:
    assert {"signet", "signet_thin", "signet_smaller", "sigresnet"} <= set(available_models())
    with pytest.raises(ModelError, match="unknown architecture"):
        get_model("alexnet")
    with pytest.raises(ModelError, match="bad options"):
        get_model("signet", width=3)


def test_signet_layer_shapes_and_state_dict_names() -> None:
    model = get_model("signet").eval()
    assert list(model.state_dict()) == SIGNET_KEYS
    x = torch.zeros(2, 1, 150, 220)
    shapes = {}
    for name, block in model.conv_layers.named_children():
        x = block(x)
        shapes[name] = tuple(x.shape[1:])
    assert shapes == {
        "conv1": (96, 35, 53),
        "maxpool1": (96, 17, 26),
        "conv2": (256, 17, 26),
        "maxpool2": (256, 8, 12),
        "conv3": (384, 8, 12),
        "conv4": (384, 8, 12),
        "conv5": (256, 8, 12),
        "maxpool3": (256, 3, 5),
    }
    conv1 = model.conv_layers.conv1.conv
    assert (conv1.kernel_size, conv1.stride, conv1.padding) == ((11, 11), (4, 4), (0, 0))
    assert model.fc_layers.fc1.fc.weight.shape == (2048, 3840)
    assert model.feature_dim == model.feature_space_size == 2048


@pytest.mark.parametrize(
    ("name", "dim", "blocks"),
    [
        ("signet", 2048, ["conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2"]),
        ("signet_thin", 1024, ["conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2"]),
        ("signet_smaller", 2048, ["conv1", "conv2", "conv3", "conv5", "fc1"]),
        ("sigresnet", 1024, None),
    ],
)
def test_features_dims_no_biases(name: str, dim: int, blocks: list[str] | None) -> None:
    model = get_model(name).eval()
    with torch.inference_mode():
        out = model(torch.rand(3, 1, 150, 220))
    assert out.shape == (3, dim) == (3, model.feature_dim)
    assert (out >= 0).all()  # features are taken after a ReLU
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            assert module.bias is None
    if blocks is not None:
        found = sorted({k.split(".")[1] for k in model.state_dict()})
        assert found == sorted(blocks)


def test_signet_thin_channel_widths() -> None:
    model = get_model("signet_thin")
    assert model.conv_layers.conv2.conv.weight.shape == (128, 96, 5, 5)
    assert model.fc_layers.fc1.fc.weight.shape == (1024, 128 * 3 * 5)


def test_sigresnet_config_rebuilds_same_architecture() -> None:
    model = get_model("sigresnet", widths=(4, 8, 8, 16), feature_dim=12)
    again = get_model("sigresnet", **model.config())
    assert [v.shape for v in model.state_dict().values()] == [
        v.shape for v in again.state_dict().values()
    ]
    assert model(torch.rand(2, 1, 150, 220)).shape == (2, 12)
    with pytest.raises(ModelError):
        get_model("sigresnet", widths=(4, 8))


# -- reference checkpoint compatibility ------------------------------------------------


def _ref_conv(cin: int, cout: int, k: int, stride: int = 1, pad: int = 0) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            [
                ("conv", nn.Conv2d(cin, cout, k, stride, pad, bias=False)),
                ("bn", nn.BatchNorm2d(cout)),
                ("relu", nn.ReLU()),
            ]
        )
    )


def _ref_fc(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            [
                ("fc", nn.Linear(cin, cout, bias=False)),
                ("bn", nn.BatchNorm1d(cout)),
                ("relu", nn.ReLU()),
            ]
        )
    )


class _ReferenceSigNet(nn.Module):
    """Independent re-statement of the reference module layout (conv_layers / fc_layers)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_layers = nn.Sequential(
            OrderedDict(
                [
                    ("conv1", _ref_conv(1, 96, 11, stride=4)),
                    ("maxpool1", nn.MaxPool2d(3, 2)),
                    ("conv2", _ref_conv(96, 256, 5, pad=2)),
                    ("maxpool2", nn.MaxPool2d(3, 2)),
                    ("conv3", _ref_conv(256, 384, 3, pad=1)),
                    ("conv4", _ref_conv(384, 384, 3, pad=1)),
                    ("conv5", _ref_conv(384, 256, 3, pad=1)),
                    ("maxpool3", nn.MaxPool2d(3, 2)),
                ]
            )
        )
        self.fc_layers = nn.Sequential(
            OrderedDict([("fc1", _ref_fc(256 * 3 * 5, 2048)), ("fc2", _ref_fc(2048, 2048))])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_layers(x)
        x = x.view(x.shape[0], 256 * 3 * 5)
        return self.fc_layers(x)


def _randomise_bn(model: nn.Module, gen: torch.Generator) -> None:
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)
            module.num_batches_tracked.fill_(1234)


def test_reference_tuple_checkpoint_gives_reference_features(tmp_path) -> None:
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    ref = _ReferenceSigNet()
    _randomise_bn(ref, gen)
    ref.eval()
    classifier = nn.Linear(2048, 5)
    forgery = nn.Linear(2048, 1)
    path = tmp_path / "signet.pth"
    torch.save((ref.state_dict(), classifier.state_dict(), forgery.state_dict()), path)

    images = torch.randint(0, 256, (3, 1, 170, 242), generator=gen, dtype=torch.uint8)
    # Reference extraction: centre crop 150x220, uint8 / 255, model(x) in eval mode.
    crop = images[:, :, 10:160, 11:231]
    with torch.no_grad():
        expected = ref(crop.float() / 255.0).numpy()

    weights = load_reference_checkpoint(path)
    assert weights.meta.arch == "signet" and weights.meta.extra["source"] == "reference"
    assert weights.sha256 == file_sha256(path)
    assert torch.equal(weights.heads["classifier"]["weight"], classifier.weight.detach())
    ours = Extractor.from_checkpoint(path)  # format detected: tuple, no sidecar needed
    got = ours.extract(images.numpy())
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert isinstance(ours.model, SigNet)


def test_reference_checkpoint_with_wrong_architecture_is_refused(tmp_path) -> None:
    path = tmp_path / "thin.pth"
    torch.save((get_model("signet_thin").state_dict(), {}, {}), path)
    with pytest.raises(ModelError, match="do not fit"):
        load_reference_checkpoint(path, arch="signet")
    assert load_reference_checkpoint(path, arch="signet_thin").meta.feature_dim == 1024


# -- our checkpoints ---------------------------------------------------------------------


def _small_model() -> nn.Module:
    torch.manual_seed(1)
    model = get_model("sigresnet", widths=(4, 8, 8, 16), feature_dim=8)
    _randomise_bn(model, torch.Generator().manual_seed(1))
    return model.eval()


def _meta(model: nn.Module) -> WeightsMeta:
    return WeightsMeta.for_model(
        model,
        name="tiny",
        version="3",
        preprocess={"canvas_size": [952, 1360], "img_size": [170, 242], "input_size": [150, 220]},
        training_data={"writers": 4},
        recipe={"lr": 0.001},
        metrics={"val_acc": 0.5},
        training_time_s=12.0,
    )


def test_checkpoint_round_trip_with_metadata(tmp_path) -> None:
    model = _small_model()
    path = tmp_path / "m.pt"
    digest = save_checkpoint(path, model, _meta(model), heads={"classifier": {"w": torch.ones(2)}})
    assert sha256_sidecar(path).read_text().split() == [digest, "m.pt"]
    assert digest == file_sha256(path)
    weights = load_checkpoint(path)
    assert weights.meta == _meta(model).__class__.from_dict(weights.meta.to_dict())
    assert weights.meta.name == "tiny" and weights.meta.arch_config["feature_dim"] == 8
    assert weights.meta.input_size == (150, 220)
    assert weights.model_id == f"tiny-3-{digest[:12]}"
    for key, value in model.state_dict().items():
        assert torch.equal(weights.state_dict[key], value)
    rebuilt = weights.build_model()
    x = torch.rand(2, 1, 150, 220)
    with torch.inference_mode():
        assert torch.equal(rebuilt(x), model(x))
    # The payload is plain data: loadable with weights_only=True.
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "sigver-checkpoint" and payload["version"] == 1
    json.dumps(payload["meta"])


def test_tampered_or_unverified_checkpoints_are_refused(tmp_path) -> None:
    model = _small_model()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, _meta(model))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256 mismatch"):
        load_checkpoint(path)
    save_checkpoint(path, model, _meta(model))
    sha256_sidecar(path).unlink()
    with pytest.raises(ModelError, match="refusing unverified"):
        load_checkpoint(path)
    assert load_checkpoint(path, verify=False).meta.name == "tiny"
    with pytest.raises(ModelError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


class _Evil:
    def __reduce__(self):  # pragma: no cover - must never run
        return (print, ("pwned",))


def test_loading_never_unpickles_arbitrary_objects(tmp_path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "sigver-checkpoint", "version": 1, "meta": _Evil()}, path)
    sha256_sidecar(path).write_text(f"{file_sha256(path)}  evil.pt\n")
    with pytest.raises(ModelError, match="weights-only"):
        load_checkpoint(path)
    tuple_path = tmp_path / "evil.pth"
    torch.save((_Evil(), {}, {}), tuple_path)
    with pytest.raises(ModelError, match="weights-only"):
        load_reference_checkpoint(tuple_path)


def test_non_sigver_file_and_newer_version_refused(tmp_path) -> None:
    path = tmp_path / "x.pt"
    torch.save({"format": "other"}, path)
    sha256_sidecar(path).write_text(f"{file_sha256(path)}  x.pt\n")
    with pytest.raises(ModelError, match="not a sigver-checkpoint"):
        load_checkpoint(path)
    torch.save({"format": "sigver-checkpoint", "version": 99, "meta": {}}, path)
    sha256_sidecar(path).write_text(f"{file_sha256(path)}  x.pt\n")
    with pytest.raises(ModelError, match="newer"):
        load_checkpoint(path)


def test_metadata_must_be_json(tmp_path) -> None:
    model = _small_model()
    meta = WeightsMeta.for_model(model, metrics={"acc": np.float32(0.5)})
    with pytest.raises(ModelError, match="JSON"):
        save_checkpoint(tmp_path / "m.pt", model, meta)


def test_fp16_storage_halves_size_and_loads_as_fp32(tmp_path) -> None:
    torch.manual_seed(0)
    model = get_model("signet_thin").eval()
    full, half = tmp_path / "full.pt", tmp_path / "half.pt"
    save_checkpoint(full, model, WeightsMeta.for_model(model))
    save_checkpoint(half, model, WeightsMeta.for_model(model), half=True)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    weights = load_weights(half)
    assert weights.meta.storage_dtype == "float16"
    assert all(
        v.dtype == torch.float32 for v in weights.state_dict.values() if v.is_floating_point()
    )
    assert weights.state_dict["conv_layers.conv1.bn.num_batches_tracked"].dtype == torch.int64
    x = torch.rand(2, 1, 150, 220)
    with torch.inference_mode():
        np.testing.assert_allclose(weights.build_model()(x), model(x), rtol=0.02, atol=0.02)


def test_model_card_renders_metadata(tmp_path) -> None:
    model = _small_model()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, _meta(model))
    weights = load_checkpoint(path)
    card = render_model_card(weights, notes="tried things")
    assert card.startswith("# Model card: tiny (version 3)")
    assert weights.sha256 in card and "`sigresnet`" in card
    assert "| val_acc | 0.5 |" in card and "0m 12s" in card and "tried things" in card


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"format": "sigver-checkpoint", "version": 1, "meta": {}}, "lacks state_dict"),
        ({"format": "sigver-checkpoint", "version": 1, "state_dict": {}}, "lacks meta"),
        ({"format": "sigver-checkpoint", "version": "2", "meta": {}, "state_dict": {}}, "version"),
    ],
)
def test_a_verified_checkpoint_missing_its_parts_is_a_model_error(tmp_path, payload, match) -> None:
    path = tmp_path / "m.pt"
    torch.save(payload, path)
    sha256_sidecar(path).write_text(f"{file_sha256(path)}  m.pt\n")
    with pytest.raises(ModelError, match=match):
        load_checkpoint(path)

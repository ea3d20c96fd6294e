"""Checkpoints: weights plus the metadata needed to use and trust them.

Our own format is a ``torch.save``\\ d dict, never a bare tuple::

    {"format": "sigver-checkpoint", "version": 1,
     "meta": {...WeightsMeta.to_dict()...},     # JSON-able
     "state_dict": {...feature extractor...},
     "heads": {"classifier": {...}, "forgery": {...} or None} or None,
     "training_state": {...optimizer, scheduler, epoch, rng...} or None}

and is written atomically together with a sidecar ``<file>.sha256`` (the
``sha256sum`` line format) holding the hash of the checkpoint file. Loading
always uses ``torch.load(weights_only=True)`` (no arbitrary unpickling) and, by
default, refuses a file whose hash does not match its sidecar or that has no
sidecar. Weights may be stored as float16 to halve the size of shipped models;
they are converted back to float32 on load.

Checkpoints published with the reference SigNet implementation (a tuple
``(base_state_dict, classification_state_dict, forgery_state_dict)``) are read by
:func:`load_reference_checkpoint` (also ``weights_only=True``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sigver._meta import WeightsMeta, file_sha256, model_id_for, read_sidecar, sha256_sidecar
from sigver._util import atomic_open, atomic_write
from sigver.errors import ModelError
from sigver.models._layers import FeatureNet
from sigver.models.registry import get_model

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "ModelWeights",
    "WeightsMeta",
    "file_sha256",
    "load_checkpoint",
    "load_reference_checkpoint",
    "load_weights",
    "save_checkpoint",
    "sha256_sidecar",
]

CHECKPOINT_FORMAT = "sigver-checkpoint"
CHECKPOINT_VERSION = 1

#: Preprocessing preset of the reference SigNet checkpoints (trained on GPDS):
#: canvas 952x1360, resized to 170x242, centre crop 150x220.
REFERENCE_PREPROCESS: dict[str, Any] = {
    "canvas_size": [952, 1360],
    "img_size": [170, 242],
    "input_size": [150, 220],
}


@dataclass
class ModelWeights:
    """Weights loaded from a checkpoint, kept together with their metadata.

    Attributes
    ----------
    meta : WeightsMeta
        The metadata.
    state_dict : dict of str to Tensor
        Feature-extractor weights (float32).
    sha256 : str
        Hash of the checkpoint file (hex).
    path : Path or None
        Where it was loaded from.
    heads : dict or None
        ``{"classifier": state_dict, "forgery": state_dict or None}`` (training heads).
    training_state : dict or None
        Optimizer/scheduler/epoch/RNG state of a training checkpoint.
    """

    meta: WeightsMeta
    state_dict: dict[str, torch.Tensor]
    sha256: str = ""
    path: Path | None = None
    heads: dict[str, Any] | None = None
    training_state: dict[str, Any] | None = None

    @property
    def model_id(self) -> str:
        """``name-version-sha256[:12]``: identifies these exact weights in logs and stores."""
        return model_id_for(self.meta, self.sha256)

    def build_model(self, device: str | torch.device = "cpu") -> FeatureNet:
        """Instantiate the architecture, load the weights, and switch to eval mode.

        Raises
        ------
        ModelError
            If the weights do not fit the architecture.
        """
        model = get_model(self.meta.arch, **self.meta.arch_config)
        try:
            model.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as exc:
            raise ModelError(f"weights do not fit architecture {self.meta.arch!r}: {exc}") from exc
        if model.feature_dim != self.meta.feature_dim:
            raise ModelError(
                f"metadata says feature_dim={self.meta.feature_dim}, "
                f"architecture gives {model.feature_dim}"
            )
        return model.to(device).eval()


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _cast_floats(state: Mapping[str, Any], dtype: torch.dtype) -> dict[str, Any]:
    """Copy of a (possibly nested) state dict with floating tensors cast to ``dtype`` on CPU."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            out[key] = value.to(dtype) if value.is_floating_point() else value.clone()
        elif isinstance(value, Mapping):
            out[key] = _cast_floats(value, dtype)
        else:
            out[key] = value
    return out


def _unwrap(model: nn.Module) -> nn.Module:
    # DistributedDataParallel / DataParallel keep the real module in .module.
    return getattr(model, "module", model)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module | Mapping[str, torch.Tensor],
    meta: WeightsMeta,
    *,
    half: bool = False,
    heads: Mapping[str, Any] | None = None,
    training_state: Mapping[str, Any] | None = None,
) -> str:
    """Write a checkpoint and its ``.sha256`` sidecar atomically.

    Parameters
    ----------
    path : path-like
        Destination ``.pt`` file.
    model : nn.Module or state dict
        Feature extractor (or its state dict).
    meta : WeightsMeta
        Metadata; ``storage_dtype`` is overwritten to match ``half``.
    half : bool
        Store floating tensors as float16 (shipping: about half the size).
    heads : mapping, optional
        Training heads (``classifier``/``forgery`` state dicts), kept for resuming.
    training_state : mapping, optional
        Optimizer/scheduler/epoch state for ``--resume``.

    Returns
    -------
    str
        The sha256 of the written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = _unwrap(model).state_dict() if isinstance(model, nn.Module) else model
    dtype = torch.float16 if half else torch.float32
    meta = dataclasses.replace(meta, storage_dtype="float16" if half else "float32")
    try:
        # Round-trip through JSON: metadata must stay plain data (weights_only-loadable,
        # card-renderable), e.g. no numpy scalars or torch.TorchVersion objects.
        meta_dict = json.loads(json.dumps(meta.to_dict()))
    except (TypeError, ValueError) as exc:
        raise ModelError(f"checkpoint metadata is not JSON-serialisable: {exc}") from exc
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "meta": meta_dict,
        "state_dict": _cast_floats(state, dtype),
        "heads": None if heads is None else _cast_floats(heads, dtype),
        "training_state": None if training_state is None else dict(training_state),
    }
    with atomic_open(path) as fh:
        torch.save(payload, fh)
    digest = file_sha256(path)
    line = f"{digest}  {path.name}\n".encode()
    atomic_write(sha256_sidecar(path), line)
    logger.debug("saved checkpoint %s (sha256 %s)", path, digest[:12])
    return digest


def _looks_pickled(path: Path) -> bool:
    """A torch zip archive or a raw pickle (protocol 2+), as opposed to any other file."""
    import zipfile

    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError:
        return False
    return zipfile.is_zipfile(path) or (len(head) == 2 and head[0] == 0x80)


def _torch_load(path: Path, map_location: str | torch.device) -> Any:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"checkpoint not found: {path}") from None
    except Exception as exc:  # noqa: BLE001 - corrupt / foreign files raise many types
        # torch's own message (unpickler internals, zip offsets) means nothing to a
        # user who passed the wrong file; keep it for --verbose only.
        logger.debug("torch.load(%s) failed: %r", path, exc)
        if isinstance(exc, pickle.UnpicklingError) and _looks_pickled(path):
            raise ModelError(
                f"{path}: refused, it holds pickled objects that weights-only loading does "
                "not allow (an unsafe or foreign file)"
            ) from None
        raise ModelError(
            f"{path} is not a model checkpoint (expected a sigver .pt with its .sha256, "
            "or a reference SigNet .pth)"
        ) from None


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    map_location: str | torch.device = "cpu",
    verify: bool = True,
) -> ModelWeights:
    """Load one of our checkpoints, verifying its sha256 first.

    Parameters
    ----------
    path : path-like
        The ``.pt`` file (its ``.sha256`` sidecar must sit beside it).
    map_location : str or torch.device
        Where tensors are loaded.
    verify : bool
        Check the file against its sidecar (refusing missing sidecars). Only turn
        off for files whose origin you know (e.g. your own run folders).

    Returns
    -------
    ModelWeights
        Float32 weights and metadata.

    Raises
    ------
    ModelError
        Missing file, missing sidecar, hash mismatch, or not a sigver checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}")
    digest = file_sha256(path)
    if verify:
        expected = read_sidecar(path)
        if expected is None:
            raise ModelError(
                f"{path}: no {sha256_sidecar(path).name} beside it, refusing unverified weights"
            )
        if expected != digest:
            raise ModelError(
                f"{path}: sha256 mismatch (file {digest[:12]}..., sidecar {expected[:12]}...); "
                "the checkpoint is corrupt or was modified"
            )
    payload = _torch_load(path, map_location)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(
            f"{path}: not a {CHECKPOINT_FORMAT} file "
            "(for reference SigNet tuples use load_reference_checkpoint)"
        )
    version = payload.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelError(f"{path}: checkpoint version {version!r} is not an integer")
    if version > CHECKPOINT_VERSION:
        raise ModelError(
            f"{path}: checkpoint format version {payload['version']} is newer than this "
            f"sigver ({CHECKPOINT_VERSION}); upgrade sigver"
        )
    missing = [k for k in ("meta", "state_dict") if not isinstance(payload.get(k), dict)]
    if missing:
        raise ModelError(f"{path}: checkpoint lacks {', '.join(missing)} (corrupt or not sigver's)")
    meta = WeightsMeta.from_dict(payload["meta"])
    heads = payload.get("heads")
    return ModelWeights(
        meta=meta,
        state_dict=_cast_floats(payload["state_dict"], torch.float32),
        sha256=digest,
        path=path,
        heads=None if heads is None else _cast_floats(heads, torch.float32),
        training_state=payload.get("training_state"),
    )


def load_reference_checkpoint(
    path: str | os.PathLike[str],
    *,
    arch: str = "signet",
    map_location: str | torch.device = "cpu",
    preprocess: Mapping[str, Any] | None = None,
) -> ModelWeights:
    """Load a checkpoint published with the reference SigNet implementation.

    The file is a ``torch.save``\\ d tuple ``(base_state_dict, classification_state_dict,
    forgery_state_dict)`` whose first element uses the same parameter names as our
    :class:`~sigver.models.SigNet` family.

    Parameters
    ----------
    path : path-like
        The ``.pth`` file.
    arch : str
        ``signet``, ``signet_thin`` or ``signet_smaller``.
    map_location : str or torch.device
        Where tensors are loaded.
    preprocess : mapping, optional
        Preprocessing preset to record; the reference GPDS preset by default.

    Returns
    -------
    ModelWeights
        Weights with synthesised metadata (``extra["source"] == "reference"``).

    Raises
    ------
    ModelError
        If the file is not such a tuple or does not fit ``arch``.
    """
    path = Path(path)
    payload = _torch_load(path, map_location)
    if not (isinstance(payload, (tuple, list)) and len(payload) >= 1):
        raise ModelError(f"{path}: expected a reference (base, classifier, forgery) tuple")
    base = payload[0]
    if not isinstance(base, Mapping):
        raise ModelError(f"{path}: first element is not a state dict")
    model = get_model(arch)
    weights = ModelWeights(
        meta=WeightsMeta.for_model(
            model,
            name=f"{arch}-reference",
            version=path.stem,
            preprocess=dict(preprocess or REFERENCE_PREPROCESS),
            extra={"source": "reference", "file": path.name},
        ),
        state_dict=_cast_floats(base, torch.float32),
        sha256=file_sha256(path),
        path=path,
        heads={
            "classifier": dict(payload[1]) if len(payload) > 1 else None,
            "forgery": dict(payload[2]) if len(payload) > 2 and payload[2] else None,
        },
    )
    weights.build_model()  # fail now, with a clear error, if the layout does not fit
    return weights


def load_weights(
    path: str | os.PathLike[str],
    *,
    map_location: str | torch.device = "cpu",
    verify: bool = True,
    reference_arch: str = "signet",
) -> ModelWeights:
    """Load either format: our checkpoints (verified) or a reference tuple.

    The format is detected from the file content; reference files have no sidecar
    and are loaded with ``reference_arch``.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}")
    if not sha256_sidecar(path).exists():
        payload = _torch_load(path, map_location)
        if isinstance(payload, (tuple, list)):
            return load_reference_checkpoint(path, arch=reference_arch, map_location=map_location)
    return load_checkpoint(path, map_location=map_location, verify=verify)

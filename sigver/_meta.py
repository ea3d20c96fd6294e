"""Checkpoint metadata without torch.

:class:`WeightsMeta` lives here rather than in :mod:`sigver.models.checkpoint`
so that the ONNX inference path (:mod:`sigver.inference`), which reads the same
metadata from an exported model, never has to import torch.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sigver import __version__
from sigver.errors import ModelError

__all__ = ["WeightsMeta", "file_sha256", "model_id_for", "read_sidecar", "sha256_sidecar"]


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class WeightsMeta:
    """Everything a checkpoint says about its weights (all fields JSON-able).

    Attributes
    ----------
    arch : str
        Registry name of the architecture (:func:`sigver.models.get_model`).
    feature_dim : int
        Size of the feature vectors.
    arch_config : dict
        Builder keyword arguments (empty for the fixed SigNet family).
    input_size : tuple of int
        (height, width) of the network input (centre crop of the preprocessed image).
    preprocess : dict
        The preprocessing preset (``PreprocessConfig.to_dict()``) images must go
        through before extraction.
    name, version : str
        Human name of these weights and their version.
    training_data : dict
        Description of the training data (sources, writers, image counts).
    recipe : dict
        Training hyper-parameters (optimizer, lr schedule, epochs, loss...).
    command : str
        Command line that produced the weights.
    code_version : str
        ``sigver.__version__`` at training time.
    metrics : dict
        Validation / evaluation figures.
    training_time_s : float or None
        Wall-clock training time.
    created : str
        ISO 8601 UTC timestamp.
    storage_dtype : str
        ``"float32"`` or ``"float16"`` (how floating tensors are stored on disk).
    extra : dict
        Anything else (machine, notes).
    classifier : dict
        Per-user SVM parameters these features need, merged over
        :data:`sigver.usermodel.DEFAULT_CLASSIFIER_PARAMS` (empty: the defaults);
        e.g. an ensemble's smaller RBF ``gamma`` (:mod:`sigver.models.ensemble`).
    """

    arch: str
    feature_dim: int
    arch_config: dict[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int] = (150, 220)
    preprocess: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    version: str = "0"
    training_data: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    code_version: str = __version__
    metrics: dict[str, Any] = field(default_factory=dict)
    training_time_s: float | None = None
    created: str = ""
    storage_dtype: str = "float32"
    extra: dict[str, Any] = field(default_factory=dict)
    classifier: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples become lists) for ``torch.save`` / JSON."""
        out = dataclasses.asdict(self)
        out["input_size"] = list(self.input_size)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WeightsMeta:
        """Inverse of :meth:`to_dict`; unknown keys go to ``extra`` (forward compatibility).

        Raises
        ------
        ModelError
            If ``arch`` or ``feature_dim`` is missing.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        unknown = {k: v for k, v in data.items() if k not in known}
        if "arch" not in kwargs or "feature_dim" not in kwargs:
            raise ModelError("checkpoint metadata lacks 'arch' or 'feature_dim'")
        if "input_size" in kwargs:
            kwargs["input_size"] = tuple(int(v) for v in kwargs["input_size"])
        if unknown:
            kwargs["extra"] = {**dict(kwargs.get("extra") or {}), **unknown}
        return cls(**kwargs)

    @classmethod
    def for_model(cls, model: Any, **kwargs: Any) -> WeightsMeta:
        """Metadata for ``model`` (arch, config, feature size filled in), stamped now."""
        from sigver.models._layers import FeatureNet

        if not isinstance(model, FeatureNet):
            raise ModelError(f"{type(model).__name__} is not a sigver FeatureNet")
        kwargs.setdefault("created", _utc_now())
        return cls(
            arch=model.arch,
            feature_dim=model.feature_dim,
            arch_config=dict(model.config()),
            input_size=tuple(model.input_size),
            **kwargs,
        )


def model_id_for(meta: WeightsMeta, sha256: str) -> str:
    """``name-version-sha256[:12]``: identifies exact weights in logs and stores."""
    return f"{meta.name or meta.arch}-{meta.version}-{sha256[:12]}"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_sidecar(path: str | os.PathLike[str]) -> Path:
    """Path of the ``.sha256`` file that goes with checkpoint ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def read_sidecar(path: str | os.PathLike[str]) -> str | None:
    """The hash recorded in ``<path>.sha256`` (``None`` when there is no sidecar).

    Raises
    ------
    ModelError
        If the sidecar is not a ``sha256sum`` line.
    """
    sidecar = sha256_sidecar(path)
    if not sidecar.is_file():
        return None
    try:
        text = sidecar.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{sidecar}: not a sha256 line ({exc})") from exc
    digest = text.split()[0].lower() if text else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ModelError(f"{sidecar}: not a sha256 line")
    return digest

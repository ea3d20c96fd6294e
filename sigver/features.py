"""Feature extraction with a trained (frozen) writer-independent network.

An :class:`Extractor` bundles a model with the preprocessing preset it was
trained with, so callers never have to know input sizes or canvas sizes::

    >>> from sigver.features import Extractor
    >>> ext = Extractor.default()                    # the shipped model (models/)
    >>> feats = ext.extract(cache)                   # (N, 1, 170, 242) uint8 -> (N, d)
    >>> feats = ext.extract_files(["a.png", "b.png"])  # raw scans, preprocessed first

Extraction is deterministic: eval mode (BatchNorm uses its running statistics,
so each image's features do not depend on the rest of the batch) under
``torch.inference_mode``.

Where the shipped model is found
--------------------------------
:func:`default_model_path` returns ``$SIGVER_MODEL`` when that variable is set
(a checkpoint path, or the name of a shipped model), else the shipped model:
installed as package data (``sigver/_models/``, mapped from the repository's
``models/`` folder by ``pyproject.toml``) for a wheel or ``pip install .``, or
``models/`` beside the package in a source checkout / editable install.
``$SIGVER_DEFAULT_MODEL`` is the old name of ``$SIGVER_MODEL`` and still works
(with a deprecation warning).

Backends
--------
:class:`Extractor` runs the network with torch. :mod:`sigver.inference` runs the
same network exported to ONNX with ONNX Runtime (faster on CPU, and without
importing torch); both share :class:`BaseExtractor`, so batching, input checks
and preprocessing are defined once. :func:`sigver.inference.open_extractor`
picks the backend.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sigver.errors import ImageError, ModelError

if TYPE_CHECKING:
    import torch

    from sigver._meta import WeightsMeta
    from sigver.cache import SignatureCache
    from sigver.featureset import FeatureSet
    from sigver.models import FeatureNet
    from sigver.models.checkpoint import ModelWeights
    from sigver.preprocessing import PreprocessConfig

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MODEL_FILE",
    "BaseExtractor",
    "Extractor",
    "default_background_path",
    "default_model_path",
    "resolve_model_path",
]

#: File name of the shipped model inside ``models/``.
DEFAULT_MODEL_FILE = "sigver-sigresnet-v3.pt"
#: Environment variable naming the model to use (checkpoint path or shipped name).
DEFAULT_MODEL_ENV = "SIGVER_MODEL"
#: Former name of :data:`DEFAULT_MODEL_ENV`, still honoured with a warning.
LEGACY_MODEL_ENV = "SIGVER_DEFAULT_MODEL"

#: Images per forward pass when the caller does not say. Measured, not guessed:
#: on a 2-core CPU eager torch runs the shipped SigResNet at ~420 img/s with
#: batches of 8-16 but ~210 img/s at 64, whose activations fall out of cache
#: (``scripts/bench_extraction.py`` prints the sweep).
DEFAULT_BATCH_SIZE = 16


def shipped_models_dirs() -> list[Path]:
    """Folders that may hold the shipped models, most specific first.

    The installed package data (``sigver/_models``) comes first, then the
    source checkout's ``models/`` (editable installs and ``PYTHONPATH`` use).
    """
    here = Path(__file__).resolve().parent
    return [here / "_models", here.parent / "models"]


def _shipped(name: str) -> Path | None:
    for folder in shipped_models_dirs():
        for candidate in (folder / name, folder / f"{name}.pt", folder / f"{name}.pth"):
            if candidate.is_file():
                return candidate
    return None


def resolve_model_path(model: str | os.PathLike[str] | None = None) -> Path:
    """A checkpoint path from ``--model`` / ``model=``, the environment, or the default.

    Parameters
    ----------
    model : path-like or str, optional
        A checkpoint path, or the name of a shipped model (``sigver-sigresnet-v3``,
        the default, ``-v6``, ``-v5``, ``-v4``, ``-v2``, ``-v1``, or ``sigver-ensemble-v1``:
        v2-v5 side by side).
        When omitted: ``$SIGVER_MODEL``, then the shipped default.

    Raises
    ------
    ModelError
        If ``model`` (or the variable) names neither a file nor a shipped model.
    """
    if model is None or str(model) == "":
        return default_model_path()
    path = Path(model).expanduser()
    if path.is_file():
        return path
    text = str(model)
    if os.sep not in text and "/" not in text:
        found = _shipped(text)
        if found is not None:
            return found
    raise ModelError(f"model {text!r} not found (give a checkpoint path or a shipped model name)")


def default_model_path() -> Path:
    """Path of the model used when none is given (see the module docstring).

    The path is returned even when the file does not exist; :meth:`Extractor.default`
    raises a :class:`~sigver.errors.ModelError` in that case.
    """
    env = os.environ.get(DEFAULT_MODEL_ENV) or ""
    if not env and os.environ.get(LEGACY_MODEL_ENV):
        env = os.environ[LEGACY_MODEL_ENV]
        logger.warning("%s is deprecated: set %s instead", LEGACY_MODEL_ENV, DEFAULT_MODEL_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file() and os.sep not in env and "/" not in env:
            return _shipped(env) or path
        return path
    found = _shipped(DEFAULT_MODEL_FILE)
    return found if found is not None else shipped_models_dirs()[-1] / DEFAULT_MODEL_FILE


def missing_default_model_error(path: Path) -> ModelError:
    """The error for a missing default model, with advice that fits the install."""
    for name in (DEFAULT_MODEL_ENV, LEGACY_MODEL_ENV):
        if os.environ.get(name):
            return ModelError(
                f"the default model is missing: {name}={os.environ[name]} names no checkpoint "
                f"({path}); fix or unset {name}"
            )
    return ModelError(
        f"the default model is missing ({path}). A wheel or `pip install .` ships it as "
        f"package data, so this install is incomplete: reinstall sigver, or set "
        f"{DEFAULT_MODEL_ENV} to a checkpoint (its .sha256 and .background.npz beside it)"
    )


def default_background_path(model_path: str | os.PathLike[str] | None = None) -> Path:
    """Background-negatives feature set shipped beside a model (``<stem>.background.npz``)."""
    path = Path(model_path) if model_path is not None else default_model_path()
    return path.with_name(path.stem + ".background.npz")


class BaseExtractor:
    """What every backend shares: identity, input checks, batching, raw images.

    Subclasses set ``weights`` (anything with ``meta``, ``sha256``, ``path`` and
    ``model_id``, or ``None``), ``_preprocess`` and ``backend``, and implement
    :meth:`_forward` and :attr:`feature_dim`.
    """

    #: Name of the inference backend ("torch", "onnx").
    backend: str = ""
    weights: Any = None
    _preprocess: PreprocessConfig
    #: Images per forward pass when ``batch_size`` is not given.
    default_batch_size: int = DEFAULT_BATCH_SIZE

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """Features ``(n, d)`` float32 of a float32 ``(n, 1, h, w)`` batch in [0, 1]."""
        raise NotImplementedError

    # -- identity ---------------------------------------------------------------

    @property
    def meta(self) -> WeightsMeta | None:
        """Checkpoint metadata (``None`` for an in-memory model)."""
        return None if self.weights is None else self.weights.meta

    @property
    def sha256(self) -> str:
        """sha256 of the checkpoint file ('' for an in-memory model)."""
        return "" if self.weights is None else self.weights.sha256

    @property
    def model_id(self) -> str:
        """``name-version-sha256[:12]``."""
        return "" if self.weights is None else self.weights.model_id

    @property
    def arch(self) -> str:
        """Architecture name."""
        return "" if self.meta is None else self.meta.arch

    @property
    def feature_dim(self) -> int:
        """Dimension of the features."""
        raise NotImplementedError

    @property
    def preprocess_config(self) -> PreprocessConfig:
        """Preprocessing preset the model was trained with."""
        return self._preprocess

    def describe(self) -> dict[str, Any]:
        """JSON-able provenance for feature files and stores.

        Includes ``classifier_params`` when the model overrides the per-user SVM's
        defaults (:func:`sigver.usermodel.classifier_params_for` reads it back), so
        feature files carry how their features must be classified.
        """
        out: dict[str, Any] = {
            "model_id": self.model_id,
            "model_sha256": self.sha256,
            "arch": self.arch,
            "feature_dim": self.feature_dim,
            "preprocess": self._preprocess.to_dict(),
            "backend": self.backend,
        }
        if self.meta is not None and self.meta.classifier:
            out["classifier_params"] = dict(self.meta.classifier)
        return out

    # -- extraction ---------------------------------------------------------------

    def _as_batch(self, images: Any) -> np.ndarray:
        x = images.x if hasattr(images, "x") and hasattr(images, "user_ids") else images
        x = np.asarray(x)
        if x.dtype != np.uint8:
            raise ImageError("<array>", f"expected preprocessed uint8 images, got dtype {x.dtype}")
        if x.ndim == 2:
            x = x[None, None]
        elif x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or x.shape[1] != 1:
            raise ImageError("<array>", f"expected (N, 1, H, W) or (N, H, W), got {x.shape}")
        h, w = self._preprocess.input_size
        if x.shape[2] < h or x.shape[3] < w:
            raise ImageError(
                "<array>",
                f"images of {x.shape[2]}x{x.shape[3]} are smaller than the model input "
                f"{h}x{w}; preprocess them first (sigver.preprocessing)",
            )
        if tuple(x.shape[2:]) not in (tuple(self._preprocess.img_size), (h, w)):
            logger.warning(
                "images are %dx%d, not the preset's %dx%d; centre-cropping anyway",
                x.shape[2],
                x.shape[3],
                *self._preprocess.img_size,
            )
        return x

    def extract(
        self,
        images: np.ndarray | SignatureCache,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Features of preprocessed images.

        Parameters
        ----------
        images : ndarray or SignatureCache
            uint8 images ``(N, 1, H, W)``, ``(N, H, W)`` or one ``(H, W)``, as produced
            by :mod:`sigver.preprocessing` (170x242); centre-cropped to the input size here.
        batch_size : int, optional
            Images per forward pass (does not change the result); default
            :attr:`default_batch_size`.
        progress : bool
            Show a tqdm progress bar (and log progress when stderr is not a terminal).

        Returns
        -------
        ndarray of float32, shape (N, feature_dim)
        """
        from sigver._util import progress_bar
        from sigver.preprocessing import crop_center

        batch_size = self.default_batch_size if batch_size is None else int(batch_size)
        if batch_size < 1:
            raise ModelError(f"batch_size must be >= 1, got {batch_size}")
        x = self._as_batch(images)
        out = np.empty((x.shape[0], self.feature_dim), dtype=np.float32)
        size = tuple(self._preprocess.input_size)
        with progress_bar(total=x.shape[0], desc="features", unit="img", enabled=progress) as bar:
            for start in range(0, x.shape[0], batch_size):
                chunk = crop_center(x[start : start + batch_size], size)
                inputs = np.multiply(chunk, np.float32(1.0 / 255.0), dtype=np.float32)
                out[start : start + len(chunk)] = self._forward(inputs)
                bar.update(len(chunk))
        return out

    def _preprocess_sources(
        self, sources: Sequence[Any], n_jobs: int, progress: bool
    ) -> np.ndarray:
        from sigver.preprocessing import preprocess_batch

        result = preprocess_batch(
            list(sources),
            self._preprocess.canvas_size,
            img_size=self._preprocess.img_size,
            n_jobs=n_jobs,
            progress=progress,
        )
        if result.skipped:
            name, reason = result.skipped[0]
            more = f" (and {len(result.skipped) - 1} more)" if len(result.skipped) > 1 else ""
            raise ImageError(name, reason + more)
        return result.images

    def extract_featureset(
        self,
        cache: SignatureCache,
        batch_size: int | None = None,
        progress: bool = False,
        **meta: Any,
    ) -> FeatureSet:
        """Features of a cache as a :class:`~sigver.featureset.FeatureSet`.

        Its metadata is :meth:`describe` (model id, sha256, architecture,
        preprocessing, backend) plus the cache's dataset and any ``meta`` given.
        """
        from sigver.featureset import FeatureSet

        feats = self.extract(cache, batch_size=batch_size, progress=progress)
        return FeatureSet.from_cache(cache, feats, {**self.describe(), **meta})

    def extract_files(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        batch_size: int | None = None,
        n_jobs: int = 1,
        progress: bool = False,
    ) -> np.ndarray:
        """Read, preprocess (with this model's preset) and extract image files.

        Raises
        ------
        ImageError
            If any file cannot be read or holds no usable signature.
        """
        images = self._preprocess_sources([str(p) for p in paths], n_jobs, progress)
        return self.extract(images, batch_size=batch_size, progress=progress)

    def extract_raw(
        self,
        images: Sequence[np.ndarray | bytes],
        *,
        batch_size: int | None = None,
        n_jobs: int = 1,
        progress: bool = False,
    ) -> np.ndarray:
        """Preprocess raw scans (grayscale arrays, dark ink on light paper, or encoded
        bytes) with this model's preset, then extract.

        Raises
        ------
        ImageError
            If any image holds no usable signature.
        """
        x = self._preprocess_sources(list(images), n_jobs, progress)
        return self.extract(x, batch_size=batch_size, progress=progress)


class Extractor(BaseExtractor):
    """A frozen feature extractor run with torch, and the preprocessing preset it expects.

    Parameters
    ----------
    model : FeatureNet
        The network (put in eval mode here).
    weights : ModelWeights, optional
        Where the weights came from (metadata, sha256); ``None`` for an
        in-memory model, which then gets the default preprocessing preset.
    device : str or torch.device
        Device to run on.
    layer : str, optional
        Take features at the output of this block (a name from
        :meth:`~sigver.models.FeatureNet.layer_names`; convolutional outputs are
        pooled to 2 x 3 cells) instead of the last layer: for a frozen extractor
        whose training data differ from the target (earlier layers are more generic).
    """

    backend = "torch"

    def __init__(
        self,
        model: FeatureNet,
        weights: ModelWeights | None = None,
        *,
        device: str | torch.device = "cpu",
        layer: str | None = None,
    ) -> None:
        import torch

        from sigver.preprocessing import PreprocessConfig

        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.weights = weights
        if weights is not None and weights.meta.preprocess:
            self._preprocess = PreprocessConfig.from_dict(weights.meta.preprocess)
        else:
            self._preprocess = PreprocessConfig(input_size=tuple(model.input_size))
        self.layer = None if layer is None or layer == model.layer_names()[-1] else layer
        self._dim = int(model.feature_dim)
        if self.layer is not None:
            with torch.inference_mode():
                probe = torch.zeros((1, 1, *self._preprocess.input_size), device=self.device)
                self._dim = int(self.model.forward_to(probe, self.layer).shape[1])

    # -- construction -------------------------------------------------------------

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        device: str | torch.device = "cpu",
        *,
        verify: bool = True,
        reference_arch: str = "signet",
        layer: str | None = None,
    ) -> Extractor:
        """Load a checkpoint (ours, sha256-verified, or a reference SigNet tuple).

        Parameters
        ----------
        path : path-like
            Checkpoint file.
        device : str or torch.device
            Where to run.
        verify : bool
            Verify our checkpoints against their ``.sha256`` sidecar.
        reference_arch : str
            Architecture of a reference tuple checkpoint.
        layer : str, optional
            Feature layer (see the class docstring).

        Raises
        ------
        ModelError
            Missing, corrupt, tampered or incompatible checkpoint.
        """
        from sigver.models.checkpoint import load_weights

        weights = load_weights(path, verify=verify, reference_arch=reference_arch)
        return cls(weights.build_model(device), weights, device=device, layer=layer)

    @classmethod
    def default(cls, device: str | torch.device = "cpu") -> Extractor:
        """The default model (:func:`default_model_path`).

        Raises
        ------
        ModelError
            If the model file is missing.
        """
        path = default_model_path()
        if not path.is_file():
            raise missing_default_model_error(path)
        return cls.from_checkpoint(path, device)

    # -- identity ---------------------------------------------------------------

    @property
    def model_id(self) -> str:
        """``name-version-sha256[:12]`` (``arch-in-memory`` for an in-memory model)."""
        base = f"{self.model.arch}-in-memory" if self.weights is None else self.weights.model_id
        # Features of another layer are another feature space: never mix them.
        return base if self.layer is None else f"{base}@{self.layer}"

    @property
    def arch(self) -> str:
        """Architecture name."""
        return str(self.model.arch)

    @property
    def feature_dim(self) -> int:
        """Dimension of the features."""
        return self._dim

    def describe(self) -> dict[str, Any]:
        """JSON-able provenance for feature files and stores."""
        out = super().describe()
        if self.layer is not None:
            out["layer"] = self.layer
        return out

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            inputs = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            feats = (
                self.model(inputs)
                if self.layer is None
                else self.model.forward_to(inputs, self.layer)
            )
            return feats.float().cpu().numpy()

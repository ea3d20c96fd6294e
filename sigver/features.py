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
:func:`default_model_path` returns ``$SIGVER_DEFAULT_MODEL`` when that variable
is set, else ``models/<DEFAULT_MODEL_FILE>`` at the root of the source tree the
package is imported from (``sigver/../models``), which is where it is after a
clone and ``pip install -e .``. Weights are deliberately not package data: the
model is versioned with its card and background negatives in ``models/``, and a
non-editable install points ``SIGVER_DEFAULT_MODEL`` at a copy.
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

    from sigver.cache import SignatureCache
    from sigver.featureset import FeatureSet
    from sigver.models import FeatureNet
    from sigver.models.checkpoint import ModelWeights, WeightsMeta
    from sigver.preprocessing import PreprocessConfig

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MODEL_FILE",
    "Extractor",
    "default_background_path",
    "default_model_path",
]

#: File name of the shipped model inside ``models/``.
DEFAULT_MODEL_FILE = "sigver-sigresnet-v1.pt"
#: Environment variable overriding :func:`default_model_path`.
DEFAULT_MODEL_ENV = "SIGVER_DEFAULT_MODEL"


def default_model_path() -> Path:
    """Path of the shipped default model (see the module docstring for the lookup).

    The path is returned even when the file does not exist; :meth:`Extractor.default`
    raises a :class:`~sigver.errors.ModelError` in that case.
    """
    env = os.environ.get(DEFAULT_MODEL_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent / "models" / DEFAULT_MODEL_FILE


def default_background_path(model_path: str | os.PathLike[str] | None = None) -> Path:
    """Background-negatives feature set shipped beside a model (``<stem>.background.npz``)."""
    path = Path(model_path) if model_path is not None else default_model_path()
    return path.with_name(path.stem + ".background.npz")


class Extractor:
    """A frozen feature extractor and the preprocessing preset it expects.

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
        """The shipped model (:func:`default_model_path`).

        Raises
        ------
        ModelError
            If the shipped model file is missing.
        """
        path = default_model_path()
        if not path.is_file():
            raise ModelError(
                f"the default model is missing ({path}); reproduce it with "
                f"scripts/train_default_model.py or set {DEFAULT_MODEL_ENV}"
            )
        return cls.from_checkpoint(path, device)

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
        """``name-version-sha256[:12]`` (``arch-untrained`` for an in-memory model)."""
        base = f"{self.model.arch}-in-memory" if self.weights is None else self.weights.model_id
        # Features of another layer are another feature space: never mix them.
        return base if self.layer is None else f"{base}@{self.layer}"

    @property
    def feature_dim(self) -> int:
        """Dimension of the features."""
        return self._dim

    @property
    def preprocess_config(self) -> PreprocessConfig:
        """Preprocessing preset the model was trained with."""
        return self._preprocess

    def describe(self) -> dict[str, Any]:
        """JSON-able provenance for feature files and stores."""
        return {
            "model_id": self.model_id,
            "model_sha256": self.sha256,
            "arch": self.model.arch,
            "feature_dim": self.feature_dim,
            "preprocess": self._preprocess.to_dict(),
            **({"layer": self.layer} if self.layer is not None else {}),
        }

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
        batch_size: int = 64,
        progress: bool = False,
    ) -> np.ndarray:
        """Features of preprocessed images.

        Parameters
        ----------
        images : ndarray or SignatureCache
            uint8 images ``(N, 1, H, W)``, ``(N, H, W)`` or one ``(H, W)``, as produced
            by :mod:`sigver.preprocessing` (170x242); centre-cropped to the input size here.
        batch_size : int
            Images per forward pass (does not change the result).
        progress : bool
            Show a tqdm progress bar.

        Returns
        -------
        ndarray of float32, shape (N, feature_dim)
        """
        import torch
        from tqdm.auto import tqdm

        from sigver.preprocessing import crop_center

        if batch_size < 1:
            raise ModelError(f"batch_size must be >= 1, got {batch_size}")
        x = self._as_batch(images)
        out = np.empty((x.shape[0], self.feature_dim), dtype=np.float32)
        size = tuple(self._preprocess.input_size)
        with (
            torch.inference_mode(),
            tqdm(
                total=x.shape[0],
                desc="features",
                unit="img",
                disable=(not progress) or None,
            ) as bar,
        ):
            for start in range(0, x.shape[0], batch_size):
                chunk = np.ascontiguousarray(crop_center(x[start : start + batch_size], size))
                inputs = torch.from_numpy(chunk).to(self.device).float().div_(255.0)
                feats = (
                    self.model(inputs)
                    if self.layer is None
                    else self.model.forward_to(inputs, self.layer)
                )
                out[start : start + len(chunk)] = feats.float().cpu().numpy()
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
        batch_size: int = 64,
        progress: bool = False,
        **meta: Any,
    ) -> FeatureSet:
        """Features of a cache as a :class:`~sigver.featureset.FeatureSet`.

        Its metadata is :meth:`describe` (model id, sha256, architecture,
        preprocessing) plus the cache's dataset and any ``meta`` given.
        """
        from sigver.featureset import FeatureSet

        feats = self.extract(cache, batch_size=batch_size, progress=progress)
        return FeatureSet.from_cache(cache, feats, {**self.describe(), **meta})

    def extract_files(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        batch_size: int = 64,
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
        batch_size: int = 64,
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

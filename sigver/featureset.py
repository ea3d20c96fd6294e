"""Feature sets: the CNN (or baseline) descriptors of a dataset, with its labels.

A :class:`FeatureSet` is what ``sigver features`` writes and ``sigver evaluate``
reads. It is stored as a plain ``.npz`` (no object arrays, so no pickle is ever
needed to read it):

``features``
    ``(N, D)`` float32.
``y``
    ``(N,)`` int64, index of each sample's writer into ``user_ids``.
``yforg``
    ``(N,)`` int8, 0 genuine, 1 skilled forgery, 2 simple forgery.
``user_ids``
    ``(U,)`` unicode strings (same meaning as in :class:`sigver.cache.SignatureCache`).
``filenames``
    ``(N,)`` unicode strings.
``meta``
    one-element unicode array holding a JSON object (model id, sha256, dataset...).
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sigver._util import atomic_open, decode_meta, encode_meta, str_vector
from sigver.errors import DatasetError

__all__ = ["FeatureSet", "join_features", "save_features", "load_features", "FORMAT_VERSION"]

#: Bumped when the on-disk layout changes incompatibly.
FORMAT_VERSION = 1

_REQUIRED_KEYS = ("features", "y", "yforg", "user_ids", "filenames", "meta")


@dataclass(frozen=True)
class FeatureSet:
    """Descriptors of a set of signatures and their labels.

    Parameters
    ----------
    features : ndarray, shape (N, D)
        Descriptors, converted to float32.
    y : ndarray of int, shape (N,)
        Index of each sample's writer into ``user_ids``.
    yforg : ndarray of int, shape (N,)
        0 genuine, 1 skilled forgery, 2 simple forgery.
    user_ids : ndarray of str, shape (U,)
        Writer ids (unique).
    filenames : ndarray of str, shape (N,)
        Source image of each sample (relative to the dataset folder).
    meta : dict
        JSON-serialisable provenance: model id and sha256, dataset name...

    Raises
    ------
    DatasetError
        If shapes or label values are inconsistent.
    """

    features: np.ndarray
    y: np.ndarray
    yforg: np.ndarray
    user_ids: np.ndarray
    filenames: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        features = np.asarray(self.features)
        if features.ndim != 2:
            raise DatasetError(f"features must be 2-D (n, d), got shape {features.shape}")
        if not np.issubdtype(features.dtype, np.number):
            raise DatasetError(f"features must be numeric, got dtype {features.dtype}")
        features = np.ascontiguousarray(features, dtype=np.float32)
        if not np.all(np.isfinite(features)):
            raise DatasetError("features contain NaN or infinite values")
        n = features.shape[0]
        y = _int_vector(self.y, "y", n)
        yforg = _int_vector(self.yforg, "yforg", n)
        user_ids = str_vector(self.user_ids, "user_ids")
        if len(set(user_ids.tolist())) != len(user_ids):
            raise DatasetError("user_ids contains duplicates")
        filenames = np.asarray(self.filenames).astype(str)
        if filenames.shape != (n,):
            raise DatasetError(f"filenames must have shape ({n},), got {filenames.shape}")
        if n and (y.min() < 0 or y.max() >= len(user_ids)):
            raise DatasetError(
                f"y must index user_ids (0..{len(user_ids) - 1}), got {y.min()}..{y.max()}"
            )
        if n and not np.isin(yforg, (0, 1, 2)).all():
            raise DatasetError("yforg must only hold 0 (genuine), 1 (skilled) or 2 (simple)")
        if not isinstance(self.meta, dict):
            raise DatasetError("meta must be a dict")
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "y", y.astype(np.int64))
        object.__setattr__(self, "yforg", yforg.astype(np.int8))
        object.__setattr__(self, "user_ids", user_ids)
        object.__setattr__(self, "filenames", filenames)

    @classmethod
    def from_cache(cls, cache: Any, features: np.ndarray, meta: dict[str, Any]) -> FeatureSet:
        """Features of a :class:`~sigver.cache.SignatureCache`, labelled as the cache is.

        ``y``, ``yforg``, ``user_ids`` and ``filenames`` are taken from ``cache``, whose
        dataset name is recorded in ``meta`` unless ``meta`` already names one.
        """
        meta = {"dataset": getattr(cache, "dataset", None), **meta}
        return cls(features, cache.y, cache.yforg, cache.user_ids, cache.filenames, meta)

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def dim(self) -> int:
        """Descriptor dimension ``D``."""
        return int(self.features.shape[1])

    def subset(self, index: np.ndarray | Sequence[int] | Sequence[bool]) -> FeatureSet:
        """Rows selected by a boolean mask or an index array (``user_ids`` kept whole)."""
        idx = np.asarray(index)
        return FeatureSet(
            features=self.features[idx],
            y=self.y[idx],
            yforg=self.yforg[idx],
            user_ids=self.user_ids,
            filenames=self.filenames[idx],
            meta=dict(self.meta),
        )


def join_features(parts: Sequence[FeatureSet], *, meta: dict[str, Any] | None = None) -> FeatureSet:
    """One feature set whose rows join the features of ``parts`` (same images, side by side).

    The features an ensemble (:mod:`sigver.models.ensemble`) gives are its
    members' concatenated, so its background set is its members' backgrounds
    joined this way.

    Parameters
    ----------
    parts : sequence of FeatureSet
        Feature sets of the same images in the same order (labels, writers and
        file names are compared).
    meta : dict, optional
        Metadata of the result (default: the first part's).

    Raises
    ------
    DatasetError
        If ``parts`` is empty or the parts describe different images, whose rows
        cannot be joined.
    """
    if not parts:
        raise DatasetError("no feature sets to join")
    first = parts[0]
    for i, p in enumerate(parts[1:], start=1):
        same = (
            len(p) == len(first)
            and np.array_equal(p.y, first.y)
            and np.array_equal(p.yforg, first.yforg)
            and np.array_equal(p.user_ids, first.user_ids)
            and np.array_equal(p.filenames, first.filenames)
        )
        if not same:
            raise DatasetError(
                f"feature set {i} describes different images from feature set 0 "
                "(labels, writers or files differ); their rows cannot be joined"
            )
    return replace(
        first,
        features=np.concatenate([p.features for p in parts], axis=1),
        meta=dict(first.meta if meta is None else meta),
    )


def _int_vector(values: Any, name: str, n: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise DatasetError(f"{name} must have shape ({n},), got {arr.shape}")
    if n and not np.issubdtype(arr.dtype, np.integer):
        raise DatasetError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def save_features(path: str | os.PathLike[str], fs: FeatureSet) -> Path:
    """Write a feature set atomically as an ``.npz`` readable without pickle.

    Parameters
    ----------
    path : str or PathLike
        Destination file (written exactly there; no ``.npz`` is appended).
    fs : FeatureSet
        Feature set to store.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    DatasetError
        If ``meta`` is not JSON-serialisable.
    """
    dest = Path(path)
    meta = encode_meta({**fs.meta, "format_version": FORMAT_VERSION})
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(dest, "wb") as fh:
        np.savez(
            fh,
            features=fs.features,
            y=fs.y,
            yforg=fs.yforg,
            user_ids=fs.user_ids,
            filenames=fs.filenames,
            meta=meta,
        )
    return dest


def load_features(path: str | os.PathLike[str]) -> FeatureSet:
    """Read a feature set written by :func:`save_features` (never unpickles).

    Parameters
    ----------
    path : str or PathLike
        ``.npz`` file.

    Returns
    -------
    FeatureSet

    Raises
    ------
    DatasetError
        If the file is missing, not an npz, lacks arrays, needs pickle, or its
        arrays are inconsistent.
    """
    src = Path(path)
    if not src.is_file():
        raise DatasetError(f"feature file does not exist: {src}")
    try:
        npz = np.load(src, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{src} is not a readable .npz feature file: {exc}") from exc
    with npz:
        missing = [k for k in _REQUIRED_KEYS if k not in npz.files]
        if missing:
            raise DatasetError(
                f"{src} is not a sigver feature file: missing arrays {', '.join(missing)}"
                " (write it with `sigver features`)"
            )
        try:
            arrays = {k: npz[k] for k in _REQUIRED_KEYS}
        except ValueError as exc:
            # Object arrays need pickle, which we refuse for untrusted files.
            raise DatasetError(f"{src} holds object arrays (pickle), refused: {exc}") from exc
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            # A truncated or bit-flipped member (bad CRC, short read).
            raise DatasetError(f"{src} is corrupt: {exc}") from exc
    try:
        meta = decode_meta(arrays.pop("meta"), kind="feature", max_version=FORMAT_VERSION)
    except DatasetError as exc:
        raise DatasetError(f"{src}: {exc}") from exc
    try:
        return FeatureSet(meta=meta, **arrays)
    except DatasetError as exc:
        raise DatasetError(f"{src}: {exc}") from exc

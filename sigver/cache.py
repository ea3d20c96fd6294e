"""Preprocessed signature caches: ``.npz`` files that need no pickle to read.

A cache holds every preprocessed image of a dataset with its labels:

``x``
    ``(N, 1, H, W)`` uint8, ink high / background 0 (normally 170 x 242).
``y``
    ``(N,)`` int64, index of the writer into ``user_ids``.
``yforg``
    ``(N,)`` int8, 0 genuine, 1 skilled forgery, 2 simple forgery.
``user_ids``
    ``(U,)`` unicode strings, the dataset's user ids.
``filenames``
    ``(N,)`` unicode strings, image paths relative to the dataset folder.
``meta``
    one-element unicode array holding a JSON object (dataset name, canvas
    size, sigver version, skipped files...).

Every array is plain numeric or unicode, so ``np.load(path, allow_pickle=False)``
reads it. :func:`load_cache` also reads the caches written by the reference
implementation (luizgh/sigver), whose ``user_mapping`` (and sometimes
``filenames``) are pickled object arrays; those are only unpickled when the
caller opts in, because unpickling runs arbitrary code.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sigver import __version__
from sigver._util import atomic_open, decode_meta, encode_meta, str_vector
from sigver.datasets import get_reader, natural_key
from sigver.datasets.base import MAX_EXAMPLES
from sigver.errors import DatasetError

logger = logging.getLogger(__name__)

#: Value of ``meta["format"]`` in caches written by :func:`save_cache`.
CACHE_FORMAT = "sigver-cache"
#: Version of the layout described in the module docstring.
CACHE_FORMAT_VERSION = 1
#: Keys of a reference (luizgh/sigver) cache.
REFERENCE_KEYS = ("x", "y", "yforg", "user_mapping", "filenames")

_PICKLE_HINT = (
    "it holds pickled Python objects, which are only loaded on request because unpickling "
    "can run arbitrary code: pass allow_pickle=True (CLI: --allow-pickle) if you trust the file"
)


@dataclass(frozen=True, eq=False)
class SignatureCache:
    """Preprocessed images of a dataset with their users and labels.

    Parameters
    ----------
    x : ndarray of uint8, shape (N, 1, H, W)
        Preprocessed images.
    y : ndarray of int, shape (N,)
        Index of each image's user into ``user_ids``.
    yforg : ndarray of int, shape (N,)
        0 genuine, 1 skilled forgery, 2 simple forgery.
    user_ids : ndarray of str, shape (U,)
        Distinct user ids; converted to a unicode (not object) array.
    filenames : ndarray of str, shape (N,)
        Image paths relative to the dataset folder.
    meta : dict
        JSON-serialisable metadata (``dataset``, ``canvas_size``, ``img_size``,
        ``sigver_version``, ``skipped``...).

    Raises
    ------
    DatasetError
        If shapes, dtypes or values are inconsistent.

    Notes
    -----
    Selections (:meth:`subset`, :meth:`select`) keep ``user_ids`` unchanged so
    that ``y`` values stay comparable between a cache and its subsets.
    """

    x: np.ndarray
    y: np.ndarray
    yforg: np.ndarray
    user_ids: np.ndarray
    filenames: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        x = _image_array(self.x)
        n = x.shape[0]
        y = _int_vector(self.y, "y", n)
        yforg = _int_vector(self.yforg, "yforg", n)
        user_ids = str_vector(self.user_ids, "user_ids")
        filenames = str_vector(self.filenames, "filenames")
        if len(filenames) != n:
            raise DatasetError(f"filenames has {len(filenames)} entries for {n} images")
        if len(set(user_ids.tolist())) != len(user_ids):
            raise DatasetError("user_ids contains duplicates")
        if n and (y.min() < 0 or y.max() >= len(user_ids)):
            raise DatasetError(
                f"y must index user_ids (0..{len(user_ids) - 1}), got values {y.min()}..{y.max()}"
            )
        bad = ~np.isin(yforg, (0, 1, 2))
        if bad.any():
            raise DatasetError(
                f"yforg must be 0, 1 or 2; got {sorted(set(yforg[bad].tolist()))[:5]}"
            )
        # Bypass frozen-ness once, to store the normalised arrays.
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y.astype(np.int64, copy=False))
        object.__setattr__(self, "yforg", yforg.astype(np.int8, copy=False))
        object.__setattr__(self, "user_ids", user_ids)
        object.__setattr__(self, "filenames", filenames)
        object.__setattr__(self, "meta", dict(self.meta))

    # -- descriptive properties -------------------------------------------------

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def users(self) -> np.ndarray:
        """User id of every image, shape (N,) (``user_ids[y]``)."""
        return self.user_ids[self.y]

    @property
    def dataset(self) -> str | None:
        """Name of the dataset reader the cache was built with, if known."""
        value = self.meta.get("dataset")
        return str(value) if value is not None else None

    @property
    def canvas_size(self) -> tuple[int, int] | None:
        """Canvas (height, width) used during preprocessing, if known."""
        value = self.meta.get("canvas_size")
        return (int(value[0]), int(value[1])) if value is not None else None

    @property
    def img_size(self) -> tuple[int, int]:
        """Image (height, width) of ``x``."""
        return (int(self.x.shape[2]), int(self.x.shape[3]))

    def counts(self) -> dict[str, tuple[int, int, int]]:
        """Number of (genuine, skilled, simple) images per user present in the cache."""
        table = np.zeros((len(self.user_ids), 3), dtype=np.int64)
        np.add.at(table, (self.y, self.yforg.astype(np.int64)), 1)
        present = np.flatnonzero(table.sum(axis=1))
        return {
            str(self.user_ids[i]): (int(table[i, 0]), int(table[i, 1]), int(table[i, 2]))
            for i in present
        }

    # -- selection helpers ------------------------------------------------------

    def subset(self, mask: np.ndarray | Sequence[int] | Sequence[bool]) -> SignatureCache:
        """Images selected by a boolean mask or an index array.

        Parameters
        ----------
        mask : array-like of bool, shape (N,), or array-like of int
            Which images to keep (indices keep their order, repeats allowed).

        Returns
        -------
        SignatureCache
            New cache sharing ``user_ids`` and ``meta`` with this one.

        Raises
        ------
        DatasetError
            If a boolean mask has the wrong length or indices are out of range.
        """
        sel = np.asarray(mask)
        if sel.dtype == bool:
            if sel.shape != (len(self),):
                raise DatasetError(f"mask has shape {sel.shape}, expected ({len(self)},)")
        elif sel.size == 0:
            sel = np.zeros(0, dtype=np.int64)
        elif np.issubdtype(sel.dtype, np.integer):
            if sel.ndim != 1 or sel.min() < -len(self) or sel.max() >= len(self):
                raise DatasetError(f"indices out of range for a cache of {len(self)} images")
        else:
            raise DatasetError(f"mask must be boolean or integer, got {sel.dtype}")
        return SignatureCache(
            x=self.x[sel],
            y=self.y[sel],
            yforg=self.yforg[sel],
            user_ids=self.user_ids,
            filenames=self.filenames[sel],
            meta=self.meta,
        )

    def user_mask(self, users: Iterable[str]) -> np.ndarray:
        """Boolean mask of the images written by (or forging) any of ``users``.

        Unknown user ids are ignored (logged at debug level), so a fixed list
        such as ``users_between("001", "037")`` works on partial caches.
        """
        wanted = {str(u) for u in users}
        known = set(self.user_ids.tolist())
        if wanted - known:
            logger.debug("user ids not in the cache: %s", sorted(wanted - known)[:MAX_EXAMPLES])
        idx = np.flatnonzero(np.isin(self.user_ids, sorted(wanted & known)))
        return np.isin(self.y, idx)

    def label_mask(self, labels: Iterable[int]) -> np.ndarray:
        """Boolean mask of the images whose label (0, 1, 2) is in ``labels``."""
        wanted = [int(v) for v in labels]
        bad = [v for v in wanted if v not in (0, 1, 2)]
        if bad:
            raise DatasetError(f"labels must be 0, 1 or 2, got {bad}")
        return np.isin(self.yforg, wanted)

    def users_between(self, first: str, last: str) -> list[str]:
        """User ids ``u`` with ``first <= u <= last`` in natural order (numbers compared as such).

        Example: ``cache.users_between("001", "037")`` gives the SigComp2011
        development writers present in the cache.
        """
        lo, hi = natural_key(first), natural_key(last)
        return [u for u in self.user_ids.tolist() if lo <= natural_key(u) <= hi]

    def select(
        self,
        *,
        users: Iterable[str] | None = None,
        exclude_users: Iterable[str] | None = None,
        labels: Iterable[int] | None = None,
    ) -> SignatureCache:
        """Images of some users and/or labels.

        Parameters
        ----------
        users : iterable of str, optional
            Keep only these users (unknown ids ignored).
        exclude_users : iterable of str, optional
            Drop these users.
        labels : iterable of int, optional
            Keep only these labels (0 genuine, 1 skilled, 2 simple).

        Returns
        -------
        SignatureCache
        """
        mask = np.ones(len(self), dtype=bool)
        if users is not None:
            mask &= self.user_mask(users)
        if exclude_users is not None:
            mask &= ~self.user_mask(exclude_users)
        if labels is not None:
            mask &= self.label_mask(labels)
        return self.subset(mask)

    def genuine(self) -> SignatureCache:
        """Only the genuine signatures."""
        return self.select(labels=(0,))


# -- saving ----------------------------------------------------------------------


def save_cache(path: str | os.PathLike[str], cache: SignatureCache) -> Path:
    """Write ``cache`` to ``path`` atomically as a compressed, pickle-free ``.npz``.

    Parameters
    ----------
    path : str or PathLike
        Destination file (written exactly there; no ``.npz`` is appended).
        Missing parent folders are created.
    cache : SignatureCache
        Cache to write.

    Returns
    -------
    Path
        The destination path.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": CACHE_FORMAT, "format_version": CACHE_FORMAT_VERSION, **cache.meta}
    meta.setdefault("sigver_version", __version__)
    arrays = {
        "x": cache.x,
        "y": cache.y,
        "yforg": cache.yforg,
        "user_ids": cache.user_ids,
        "filenames": cache.filenames,
        "meta": encode_meta(meta),
    }
    with atomic_open(dest, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    logger.debug("wrote %d images to %s", len(cache), dest)
    return dest


# -- loading ---------------------------------------------------------------------


def load_cache(path: str | os.PathLike[str], *, allow_pickle: bool = False) -> SignatureCache:
    """Read a cache written by :func:`save_cache` or by the reference implementation.

    Parameters
    ----------
    path : str or PathLike
        ``.npz`` file.
    allow_pickle : bool, default False
        Unpickle object arrays of reference caches (``user_mapping``,
        ``filenames``). Only for trusted files: unpickling can run code.
        Without it, user ids fall back to the numbers in ``y`` and file names
        to ``#<index>`` placeholders, each with a warning.

    Returns
    -------
    SignatureCache

    Raises
    ------
    DatasetError
        If the file is missing or not an ``.npz``, a required key is missing,
        ``x``/``y``/``yforg`` would need pickle while ``allow_pickle`` is
        false, or the contents are inconsistent (shapes, dtypes, labels).
    """
    src = Path(path)
    if not src.is_file():
        raise DatasetError(f"cache file not found: {src}")
    try:
        npz = np.load(src, allow_pickle=allow_pickle)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        # numpy's message ("Failed to interpret file ... as a pickle") misleads: keep it
        # for --verbose and say what was expected instead.
        logger.debug("np.load(%s) failed: %r", src, exc)
        raise DatasetError(
            f"{src}: not a readable .npz signature cache (write one with `sigver preprocess`, "
            "or pass a dataset folder with --dataset)"
        ) from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DatasetError(f"{src}: expected an .npz archive, got a single array")
    with npz:
        keys = set(npz.files)
        try:
            if "meta" in keys and "user_ids" in keys:
                return _load_native(npz)
            return _load_reference(src, npz, allow_pickle)
        except DatasetError as exc:
            raise DatasetError(f"{src}: {exc}") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            # zlib/zip errors from a truncated or corrupted archive surface here.
            raise DatasetError(f"{src}: corrupt cache ({exc})") from exc


def _get(npz: Any, key: str) -> np.ndarray:
    if key not in npz.files:
        raise DatasetError(f"missing key {key!r} (has: {', '.join(sorted(npz.files))})")
    return npz[key]


def _get_or_pickled(npz: Any, key: str) -> np.ndarray | None:
    """Array ``key``, or None when it is an object array and pickle is not allowed."""
    try:
        return _get(npz, key)
    except ValueError as exc:
        if "pickle" in str(exc):
            return None
        raise


def _load_native(npz: Any) -> SignatureCache:
    meta = decode_meta(_get_or_pickled(npz, "meta"), kind="cache", max_version=CACHE_FORMAT_VERSION)
    arrays = {}
    for key in ("x", "y", "yforg", "user_ids", "filenames"):
        value = _get_or_pickled(npz, key)
        if value is None:
            raise DatasetError(f"{key!r} is an object array, which sigver caches never contain")
        arrays[key] = value
    return SignatureCache(meta=meta, **arrays)


def _load_reference(src: Path, npz: Any, allow_pickle: bool) -> SignatureCache:
    arrays: dict[str, np.ndarray] = {}
    for key in ("x", "y", "yforg"):
        value = _get_or_pickled(npz, key)
        if value is None:
            raise DatasetError(f"{key!r} cannot be read without unpickling; {_PICKLE_HINT}")
        arrays[key] = value
    x = _image_array(arrays["x"])
    n = x.shape[0]
    y_raw = _int_vector(arrays["y"], "y", n)
    yforg = _int_vector(arrays["yforg"], "yforg", n)

    # Reference y values are user indices; user_mapping (a pickled dict) maps them to
    # the dataset's user numbers. Renumber to 0..U-1 so y indexes user_ids.
    values, y = np.unique(y_raw, return_inverse=True)
    user_ids = [str(v) for v in values.tolist()]
    mapping_note = "y values"
    if "user_mapping" in npz.files:
        mapping = _get_or_pickled(npz, "user_mapping")
        if mapping is None:
            logger.warning(
                "%s: user_mapping not loaded (%s); using the numbers in y as user ids",
                src,
                _PICKLE_HINT,
            )
        else:
            user_ids = _map_users(mapping, values)
            mapping_note = "user_mapping"

    filenames: np.ndarray | list[str]
    raw_names = _get_or_pickled(npz, "filenames") if "filenames" in npz.files else None
    if raw_names is None:
        if "filenames" in npz.files:
            logger.warning(
                "%s: filenames not loaded (%s); using #<index> placeholders", src, _PICKLE_HINT
            )
        filenames = [f"#{i}" for i in range(n)]
    else:
        filenames = [str(v) for v in np.asarray(raw_names).reshape(-1).tolist()]

    meta = {
        "format": "luizgh/sigver",
        "source": src.name,
        "user_ids_from": mapping_note,
    }
    return SignatureCache(
        x=x,
        y=y.reshape(-1),
        yforg=yforg,
        user_ids=np.array(user_ids, dtype=str),
        filenames=np.array(filenames, dtype=str),
        meta=meta,
    )


def _map_users(mapping: np.ndarray, values: np.ndarray) -> list[str]:
    """User ids of reference-cache indices ``values`` via its ``user_mapping``."""
    obj: Any = mapping.item() if mapping.ndim == 0 else mapping
    ids: list[str] = []
    for v in values.tolist():
        try:
            ids.append(str(obj[v]))
        except (KeyError, IndexError, TypeError) as exc:
            raise DatasetError(f"user_mapping has no entry for user index {v}") from exc
    if len(set(ids)) != len(ids):
        raise DatasetError("user_mapping maps different indices to the same user")
    return ids


def _image_array(values: Any) -> np.ndarray:
    """``x`` as a uint8 ``(N, 1, H, W)`` array (a missing channel axis is added)."""
    x = np.asarray(values)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise DatasetError(f"'x' must have shape (N, 1, H, W) or (N, H, W), got {x.shape}")
    if x.dtype != np.uint8:
        raise DatasetError(f"'x' must be uint8, got {x.dtype}")
    return x


def _int_vector(values: Any, name: str, n: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise DatasetError(f"{name!r} must have shape ({n},), got {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    elif arr.dtype == object and all(isinstance(v, (int, np.integer)) for v in arr.tolist()):
        # Pickled integer lists from reference caches.
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
        else:
            raise DatasetError(f"{name!r} must hold integers, got {arr.dtype}")
    return arr


# -- building ----------------------------------------------------------------------


def build_cache(
    dataset: str,
    path: str | os.PathLike[str],
    *,
    canvas_size: tuple[int, int] | None = None,
    n_jobs: int = 2,
    progress: bool = True,
) -> SignatureCache:
    """Scan a dataset folder with its reader and preprocess every image.

    Parameters
    ----------
    dataset : str
        Reader name (see :func:`sigver.datasets.available_readers`).
    path : str or PathLike
        Dataset folder (or manifest for ``folder``).
    canvas_size : (int, int), optional
        Canvas (height, width); the reader's default when omitted.
    n_jobs : int, default 2
        Worker processes for preprocessing.
    progress : bool, default True
        Show a progress bar (the preprocessing module hides it when not a tty).

    Returns
    -------
    SignatureCache
        ``meta["skipped"]`` lists ``[file, reason]`` for images that could
        not be preprocessed, ``meta["unmatched"]`` the number of ignored files.

    Raises
    ------
    DatasetError
        If the dataset cannot be scanned or no image could be preprocessed.
    """
    from sigver.preprocessing import preprocess_batch

    if n_jobs < 1:
        raise DatasetError(f"n_jobs must be at least 1, got {n_jobs}")
    reader = get_reader(dataset)
    scan = reader.scan(path)
    canvas = tuple(int(v) for v in canvas_size) if canvas_size is not None else reader.canvas_size
    if len(canvas) != 2 or min(canvas) <= 0:
        raise DatasetError(f"canvas size must be two positive integers, got {canvas_size}")
    sources = [str(s.path) for s in scan.samples]
    result = preprocess_batch(sources, canvas, n_jobs=n_jobs, progress=progress)
    skipped = [[scan.relative_name(Path(src)), str(reason)] for src, reason in result.skipped]
    if skipped:
        logger.warning(
            "%d of %d image(s) could not be preprocessed and were skipped, e.g. %s",
            len(skipped),
            len(sources),
            "; ".join(f"{name}: {reason}" for name, reason in skipped[:MAX_EXAMPLES]),
        )
    kept = [scan.samples[i] for i in result.kept]
    if not kept:
        raise DatasetError(
            f"none of the {len(sources)} image(s) under {scan.root} could be preprocessed"
            + (f" (first error: {skipped[0][0]}: {skipped[0][1]})" if skipped else "")
        )
    images = np.asarray(result.images)
    if images.shape[0] != len(kept):
        raise DatasetError(
            f"preprocessing returned {images.shape[0]} images for {len(kept)} kept files"
        )
    user_ids = list(dict.fromkeys(s.user for s in kept))
    index = {u: i for i, u in enumerate(user_ids)}
    meta = {
        "dataset": reader.name,
        "canvas_size": list(canvas),
        "img_size": [int(images.shape[-2]), int(images.shape[-1])],
        "sigver_version": __version__,
        "source": Path(path).name,
        "skipped": skipped,
        "unmatched": len(scan.unmatched),
    }
    return SignatureCache(
        x=images,
        y=np.array([index[s.user] for s in kept], dtype=np.int64),
        yforg=np.array([s.label for s in kept], dtype=np.int8),
        user_ids=np.array(user_ids, dtype=str),
        filenames=np.array([scan.relative_name(s.path) for s in kept], dtype=str),
        meta=meta,
    )


def load_signatures(
    dataset: str | None,
    path: str | os.PathLike[str],
    *,
    allow_pickle: bool = False,
    canvas_size: tuple[int, int] | None = None,
    n_jobs: int = 2,
    progress: bool = True,
) -> SignatureCache:
    """Signatures from either a cache file or a dataset folder (preprocessed on the fly).

    This is what ``--data`` means for ``train``, ``features`` and ``evaluate``.

    Parameters
    ----------
    dataset : str or None
        Reader name; required when ``path`` is a folder (or a ``folder``
        manifest). Optional for cache files; if given, it must match the
        dataset recorded in the cache (when one is recorded).
    path : str or PathLike
        A ``.npz`` cache, or a dataset folder.
    allow_pickle : bool, default False
        Passed to :func:`load_cache` (reference caches only).
    canvas_size : (int, int), optional
        Canvas for on-the-fly preprocessing (reader default otherwise).
    n_jobs : int, default 2
        Worker processes for on-the-fly preprocessing.
    progress : bool, default True
        Progress bar for on-the-fly preprocessing.

    Returns
    -------
    SignatureCache

    Raises
    ------
    DatasetError
        If ``path`` does not exist, a folder is given without ``dataset``, or
        the cache's recorded dataset differs from ``dataset``.
    """
    src = Path(path)
    if not src.exists():
        raise DatasetError(f"data path does not exist: {src}")
    is_manifest = src.is_file() and src.suffix.lower() == ".csv"
    if src.is_file() and not is_manifest:
        cache = load_cache(src, allow_pickle=allow_pickle)
        if dataset is not None and cache.dataset is not None:
            if get_reader(dataset).name != cache.dataset:
                raise DatasetError(
                    f"{src} was built from dataset {cache.dataset!r}, not {dataset!r}"
                )
        return cache
    if dataset is None:
        raise DatasetError(
            f"{src} is a folder: pass --dataset to say how to read it, or give a .npz cache"
        )
    return build_cache(dataset, src, canvas_size=canvas_size, n_jobs=n_jobs, progress=progress)


# -- CLI helpers -------------------------------------------------------------------


def add_data_arguments(parser: Any, *, required: bool = True) -> None:
    """Add ``--data``, ``--dataset``, ``--allow-pickle`` and ``--jobs`` to a command parser.

    Commands that consume signatures (``train``, ``features``, ``evaluate``)
    call this and then :func:`data_from_args`, so ``--data`` accepts either
    a cache file or a dataset folder everywhere.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        Sub-command parser.
    required : bool, default True
        Whether ``--data`` is mandatory.
    """
    parser.add_argument(
        "--data",
        type=Path,
        required=required,
        metavar="PATH",
        help="preprocessed .npz cache, or a dataset folder (then --dataset is needed)",
    )
    parser.add_argument(
        "--dataset", metavar="NAME", help="dataset reader for a folder given as --data"
    )
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="allow unpickling object arrays of reference-format caches (runs code: trusted "
        "files only)",
    )
    parser.add_argument(
        "--jobs", type=int, default=2, metavar="N", help="worker processes (default: 2)"
    )


def data_from_args(
    args: Any, *, progress: bool = True, canvas_size: tuple[int, int] | None = None
) -> SignatureCache:
    """Load the signatures named by the options of :func:`add_data_arguments`.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options with ``data``, ``dataset``, ``allow_pickle`` and ``jobs``.
    progress : bool, default True
        Progress bar when a folder is preprocessed on the fly.
    canvas_size : (int, int), optional
        Canvas for a folder preprocessed on the fly (the reader's default otherwise).

    Returns
    -------
    SignatureCache
    """
    if args.allow_pickle:
        logger.warning(
            "--allow-pickle: object arrays in %s will be unpickled, which can run arbitrary "
            "code; only use it with files you trust",
            args.data,
        )
    return load_signatures(
        args.dataset,
        args.data,
        allow_pickle=args.allow_pickle,
        canvas_size=canvas_size,
        n_jobs=args.jobs,
        progress=progress,
    )

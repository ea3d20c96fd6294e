"""Enrollment and verification: the Python API shared by the CLI and the HTTP service.

A :class:`Verifier` holds one frozen feature extractor, the background
negatives shipped with it, and a cache of per-user classifiers::

    from enrollment import Verifier

    verifier = Verifier(home="~/.sigver")            # shipped model, $SIGVER_HOME
    verifier.enroll("alice", ["a1.png", "a2.png", "a3.png", "a4.png"])
    result = verifier.verify("alice", "questioned.png")
    print(result.score, result.accepted)

Enrollment trains a writer-dependent SVM on the user's references (positives)
against negatives made of the model's background set and the references of
the other users enrolled with the same extractor, then writes everything in
one transaction. Verification scores ``φ(X)`` with that SVM and compares the
score with the user's threshold (or the model's calibrated global default).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import math
import numbers
import os
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from enrollment.config import Settings
from enrollment.errors import (
    EnrollmentError,
    InsufficientReferencesError,
    ModelMismatchError,
    StoreError,
    UserExistsError,
    UserNotFoundError,
)
from enrollment.store import (
    DEFAULT_TENANT,
    AuditEvent,
    BaseStore,
    EnrollmentRecord,
    ReferenceRecord,
    UserRecord,
    open_store,
    validate_tenant_id,
    validate_user_id,
)
from sigver.errors import DatasetError, ImageError, ModelError, SigverError
from sigver.usermodel import classifier_params_for

__all__ = [
    "EnrollmentResult",
    "ImageSource",
    "VerificationResult",
    "Verifier",
    "background_path_for",
    "load_extractor",
]

logger = logging.getLogger(__name__)

#: Anything :meth:`Verifier.verify` accepts as an image: a file path, the
#: encoded file's bytes, or a decoded array (grayscale or BGR).
ImageSource = str | os.PathLike | bytes | bytearray | memoryview | np.ndarray


_CACHE_SIZE = 1024
#: Most reference images accepted by one enrollment call.
_MAX_ENROLL_IMAGES = 1000
#: Fewest references any enrollment may use, whatever ``min_references`` says:
#: one positive makes a degenerate SVM.
_MIN_REFERENCES_FLOOR = 2


def _finite_threshold(value: object, what: str = "threshold") -> float | None:
    """``None`` or a finite float; :class:`EnrollmentError` for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str, np.floating)):
        raise EnrollmentError(f"{what} must be a number, got {type(value).__name__}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except ValueError:
        raise EnrollmentError(f"{what} must be a number, got {value!r}") from None
    except OverflowError:  # an int beyond the float range (10**400)
        raise EnrollmentError(f"{what} must be a finite number, got {value!r}") from None
    if not math.isfinite(number):
        raise EnrollmentError(f"{what} must be a finite number, got {value!r}")
    return number


def _image_list(images: object, limit: int) -> list[Any]:
    """Materialise ``images`` (any iterable) with a bound; refuse a bare path or buffer."""
    if isinstance(images, (str, bytes, bytearray, memoryview, os.PathLike, np.ndarray)):
        raise EnrollmentError(
            "images must be a list of images (paths, bytes or arrays), not a single "
            f"{type(images).__name__}"
        )
    if not isinstance(images, Iterable):
        raise EnrollmentError(f"images must be a list of images, got {type(images).__name__}")
    items = list(itertools.islice(images, limit + 1))
    if len(items) > limit:
        raise EnrollmentError(f"too many images; at most {limit}")
    return items


#: Environment variable naming the store-wide operating point (``sigver serve`` workers).
ENV_OPERATING_POINT = "SIGVER_OPERATING_POINT"
#: Environment variable switching the model's forgery cue on (``1``/``true``/``on``).
ENV_FORGERY_CUE = "SIGVER_FORGERY_CUE"


@dataclass(frozen=True)
class VerificationResult:
    """Outcome of verifying one questioned signature.

    Attributes
    ----------
    user_id : str
        Claimed identity.
    score : float
        SVM decision value; higher means more likely genuine.
    accepted : bool
        ``score >= threshold``.
    threshold : float
        Threshold applied (the user's override, else the model's default).
    model_id : str
        Identifier of the feature extractor that produced the score.
    image_sha256 : str
        SHA-256 of the image bytes (for arrays: of dtype, shape and raw data).
    raw_score : float or None
        The SVM decision value before the user's score normalisation.
    operating_point : str
        What decided: a named operating point of the model's calibration, or
        ``"user threshold override"`` / the uncalibrated default.
    calibrated_rates : dict
        FRR, FAR_skilled, FAR_random the operating point was calibrated for
        (on the model's calibration data; empty for an override).
    llr : float or None
        Log-likelihood ratio genuine vs skilled forgery of the score, when the
        model's calibration holds the map.
    forgery_penalty : float or None
        What the model's writer-independent forgery cue (with its pairwise part, when
        the model has one) subtracted from the normalised score (``None``: cue off).
    references : int or None
        References the user is enrolled with.
    calibrated_references : int or None
        References per user the operating point was calibrated with (``None`` for an
        override or an uncalibrated default). The rates hold best when the two agree:
        with other counts they move (README, "The operating point and the number of
        references").
    """

    user_id: str
    score: float
    accepted: bool
    threshold: float
    model_id: str
    image_sha256: str
    raw_score: float | None = None
    operating_point: str = ""
    calibrated_rates: dict[str, Any] = field(default_factory=dict)
    llr: float | None = None
    forgery_penalty: float | None = None
    references: int | None = None
    calibrated_references: int | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly view (``decision`` spelled out for humans)."""
        return {
            "user_id": self.user_id,
            "score": self.score,
            "accepted": self.accepted,
            "decision": "accept" if self.accepted else "reject",
            "threshold": self.threshold,
            "model_id": self.model_id,
            "image_sha256": self.image_sha256,
            "raw_score": self.raw_score,
            "operating_point": self.operating_point,
            "calibrated_rates": dict(self.calibrated_rates),
            "llr": self.llr,
            "forgery_penalty": self.forgery_penalty,
            "references": self.references,
            "calibrated_references": self.calibrated_references,
        }


@dataclass(frozen=True)
class EnrollmentResult:
    """Outcome of an enrollment.

    Attributes
    ----------
    user : UserRecord
        The stored user.
    added : int
        New references stored by this call.
    duplicates : tuple of str
        Hashes of submitted images skipped because they were already enrolled
        (or submitted twice).
    n_negatives : int
        Negatives the classifier was trained against.
    threshold : float
        Threshold now in force for the user.
    seconds : float
        Wall time of the enrollment.
    """

    user: UserRecord
    added: int
    duplicates: tuple[str, ...]
    n_negatives: int
    threshold: float
    seconds: float

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly view."""
        return {
            "user_id": self.user.user_id,
            "model_id": self.user.model_id,
            "n_references": self.user.n_references,
            "added": self.added,
            "duplicates": list(self.duplicates),
            "n_negatives": self.n_negatives,
            "threshold": self.threshold,
            "threshold_override": self.user.threshold,
            "revision": self.user.revision,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class _LoadedImage:
    name: str
    sha256: str
    encoded: bytes | None
    #: The image as the extractor sees it (the model's input size).
    normalised: np.ndarray
    #: The caller's decoded array, kept only when there are no encoded bytes to store.
    pixels: np.ndarray | None = None


def background_path_for(model_path: str | os.PathLike[str]) -> Path:
    """Where the background negatives of a checkpoint live: ``<stem>.background.npz``."""
    from sigver.features import default_background_path

    return default_background_path(model_path)


def _checkpoint_path(extractor: Any) -> Path | None:
    weights = getattr(extractor, "weights", None)
    path = getattr(weights, "path", None)
    return None if path is None else Path(path)


def load_extractor(
    model: str | os.PathLike[str] | None = None, *, backend: str | None = None
) -> tuple[Any, Path | None]:
    """Load a feature extractor and say where its checkpoint is.

    Parameters
    ----------
    model : path-like or str, optional
        Checkpoint path or shipped model name; ``$SIGVER_MODEL`` or the shipped
        default when omitted.
    backend : {"auto", "torch", "onnx"}, optional
        Inference backend (:func:`sigver.inference.open_extractor`).

    Returns
    -------
    (extractor, pathlib.Path or None)
    """
    from sigver.inference import open_extractor

    extractor = open_extractor(model, backend=backend)
    return extractor, _checkpoint_path(extractor)


def _sha256_of_array(arr: np.ndarray) -> str:
    # Callers check the array's size first: this copies non-contiguous views.
    digest = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    digest.update(memoryview(np.ascontiguousarray(arr)).cast("B"))
    return digest.hexdigest()


_THREADPOOLS: Any = None
_THREADPOOLS_LOCK = threading.Lock()


def _env_flag(name: str, default: bool = False) -> bool:
    """A boolean environment variable (``1``/``true``/``yes``/``on``; unset = ``default``)."""
    value = os.environ.get(name, "").strip().lower()
    if value == "":
        return default
    if value in ("0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise SigverError(f"${name} must be 1/true/on or 0/false/off, got {value!r}")


@contextlib.contextmanager
def _blas_threads(n: int | None) -> Iterator[None]:
    """Limit BLAS threads around the small per-user products (threads cost more than they save)."""
    global _THREADPOOLS
    if n is None:
        yield
        return
    # One controller per process: building one scans every loaded shared library
    # (about 5 ms, more than the verification it wraps).
    with _THREADPOOLS_LOCK:
        if _THREADPOOLS is None:
            from threadpoolctl import ThreadpoolController

            _THREADPOOLS = ThreadpoolController()
    with _THREADPOOLS.limit(limits=n, user_api="blas"):
        yield


class Verifier:
    """Enroll users and verify their signatures against one feature extractor.

    Parameters
    ----------
    home : path-like, optional
        Store folder (``$SIGVER_HOME`` or ``~/.sigver`` when omitted).
    model : path-like or str, optional
        Checkpoint path or shipped model name (``$SIGVER_MODEL`` or the shipped
        default when omitted). Ignored when ``extractor`` is given.
    backend : {"auto", "torch", "onnx"}, optional
        Inference backend for ``model`` (``$SIGVER_BACKEND``, else ``auto``: ONNX
        Runtime when installed and verified against torch).
    extractor : Extractor, optional
        An already loaded extractor (anything with ``extract``, ``model_id``,
        ``sha256`` and ``preprocess_config``).
    background : path-like or numpy.ndarray, optional
        Background negatives; default ``<checkpoint stem>.background.npz`` next to
        the model (absent = only other users' references serve as negatives).
    settings : Settings, optional
        Limits and defaults (from the environment when omitted).
    store : BaseStore or str, optional
        An open store, or a store URL / folder for :func:`~enrollment.store.open_store`
        (overrides ``home``; default ``$SIGVER_STORE``, else the SQLite store in ``home``).
    classifier_params : mapping, optional
        Keyword arguments of the per-user classifier (default: the model's, see
        :func:`sigver.usermodel.classifier_params_for`).
    operating_point : str, optional
        Store-wide named operating point of the model's calibration
        (``balanced``, ``far-skilled=1%``...; default: the calibration's default).
        A user's own operating point or threshold override takes precedence.
    forgery_cue : bool, optional
        Decide on the user's score minus the model's writer-independent forgery
        cue (:mod:`sigver.forgery_cue`), with the operating points calibrated for
        that fused score (default: ``$SIGVER_FORGERY_CUE``, else the model's
        choice: on when its calibration declares the cue on by default). The model
        must carry a cue (``sigver calibrate --forgery-weight W``). Enrolled users are
        the same either way; only verification changes.
    """

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        model: str | os.PathLike[str] | None = None,
        *,
        extractor: Any | None = None,
        background: str | os.PathLike[str] | np.ndarray | None = None,
        settings: Settings | None = None,
        store: BaseStore | str | None = None,
        classifier_params: Mapping[str, Any] | None = None,
        operating_point: str | None = None,
        backend: str | None = None,
        forgery_cue: bool | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        #: Whether :meth:`close` closes the store (it was opened here, not passed in).
        self._owns_store = store is None or isinstance(store, (str, os.PathLike))
        if store is None or isinstance(store, (str, os.PathLike)):
            store = open_store(store, home=home, busy_timeout_s=self.settings.busy_timeout_s)
        self.store = store
        self._decode_slots = threading.BoundedSemaphore(self.settings.max_concurrent_decodes)
        model_path: Path | None = None
        if extractor is None:
            extractor, model_path = load_extractor(model, backend=backend)
        elif model is not None:
            model_path = Path(model)
        else:
            model_path = _checkpoint_path(extractor)
        if not str(getattr(extractor, "sha256", "") or ""):
            # Without a checkpoint hash two different models would look identical
            # to the store, and scores could silently come from the wrong one.
            raise ModelError(
                "the extractor has no checkpoint sha256 (in-memory model); save it with "
                "sigver.models.checkpoint.save_checkpoint and load it from the file"
            )
        self.extractor = extractor
        self.model_path = model_path
        self.model_id = str(extractor.model_id)
        self.model_sha256 = str(extractor.sha256)
        self.classifier_params = dict(classifier_params or classifier_params_for(extractor.meta))
        self._init_operating_points(
            operating_point or os.environ.get(ENV_OPERATING_POINT) or None, forgery_cue
        )
        self._background = self._load_background(background)
        self._background, self._cohort = self._split_cohort(self._background)
        # Hash of the rows classifiers are trained against (cohort held out), which
        # stored support-vector references point into.
        self._background_sha256 = hashlib.sha256(
            np.ascontiguousarray(self._background, dtype="<f4").tobytes()
        ).hexdigest()
        self._cache: OrderedDict[tuple[str, str], tuple[tuple[object, ...], Any]] = OrderedDict()
        # Reference features the pair cue compares a questioned signature with.
        self._ref_cache: OrderedDict[tuple[str, str], tuple[tuple[object, ...], np.ndarray]] = (
            OrderedDict()
        )
        self._cache_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Verifier(store={self.store.location!r}, model_id={self.model_id!r})"

    # -- set-up ----------------------------------------------------------------

    # -- operating points (issue 10) -------------------------------------------------

    def _init_operating_points(self, operating_point: str | None, forgery_cue: bool | None) -> None:
        from sigver.calibration import resolve_operating_point, stored_calibration
        from sigver.forgery_cue import ForgeryCue, on_by_default, switch_on
        from sigver.pair_cue import PairCue, stored_pair_cue

        meta = getattr(self.extractor, "meta", None)
        self.calibration = stored_calibration(getattr(meta, "metrics", None))
        if forgery_cue is None:
            # Not asked for: the environment, else what the model's calibration declares.
            forgery_cue = _env_flag(ENV_FORGERY_CUE, on_by_default(self.calibration))
        #: The model's writer-independent forgery cue, subtracted from every score when on.
        self.forgery_cue: ForgeryCue | None = None
        #: The stored cue even when switched off: enrollment records each user's
        #: reference mean of it, so that users serve with the cue on or off.
        self._stored_cue: ForgeryCue | None = None
        #: The cue's pairwise part (:mod:`sigver.pair_cue`), when the model has one and
        #: the cue is on.
        self.pair_cue: PairCue | None = None
        if forgery_cue:
            try:
                # The pair part is read before switch_on replaces the calibration.
                self.pair_cue = stored_pair_cue(self.calibration)
                # From here on the thresholds, rates and LLR map are the fused score's.
                self.forgery_cue, self.calibration = switch_on(self.calibration, self.model_id)
            except SigverError as exc:
                raise ModelError(f"the forgery cue cannot be switched on: {exc}") from exc
            self._stored_cue = self.forgery_cue
        else:
            try:
                self._stored_cue = ForgeryCue.from_dict((self.calibration or {}).get("forgery_cue"))
            except SigverError as exc:
                logger.warning("ignoring the model's unusable forgery cue: %s", exc)
        cal = self.calibration or {}
        #: Per-user score normaliser the model's thresholds apply to.
        self.normalization = str(cal.get("normalization") or "none")
        llr = cal.get("llr")
        ok = isinstance(llr, Mapping) and {"slope", "intercept"} <= set(llr)
        self._llr = llr if ok else None
        if operating_point is None and not cal.get("operating_points"):
            self.default_threshold, self.threshold_source = self._global_threshold()
            self.operating_point = str(cal.get("target") or "") if self.calibration else ""
            self.default_rates: dict[str, Any] = (
                {
                    "FRR": cal.get("frr"),
                    "FAR_skilled": cal.get("far_skilled"),
                    "FAR_random": cal.get("far_random"),
                }
                if self.calibration
                else {}
            )
            return
        t, name, rates = resolve_operating_point(self.calibration, operating_point)
        self.default_threshold, self.operating_point = t, name
        self.default_rates = {k: rates.get(k) for k in ("FRR", "FAR_skilled", "FAR_random")}
        self.threshold_source = f"operating point {name!r} of the model's calibration"

    def _split_cohort(self, background: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Hold out the impostor cohort from the background when the normaliser needs it."""
        from sigver.normalization import NEEDS_COHORT, family
        from sigver.usermodel import DEFAULT_COHORT_FRACTION, split_cohort

        if family(self.normalization) not in NEEDS_COHORT:
            return background, None
        writers = getattr(self, "_background_writers", None)
        if writers is None or len(writers) != len(background):
            raise ModelError(
                f"the model's scores are normalised with {self.normalization}, which needs the "
                "background set's writer ids to hold out the impostor cohort"
            )
        fraction = (self.calibration or {}).get("cohort", {}).get("fraction")
        mask = split_cohort(writers, DEFAULT_COHORT_FRACTION if fraction is None else fraction)
        return background[~mask], background[mask]

    def operating_point_for(self, user: UserRecord) -> tuple[float, str, dict[str, Any]]:
        """Threshold, what decided it, and its calibrated rates, for a user.

        Precedence: the user's threshold override, the user's named operating
        point, the store-wide operating point (``Verifier(operating_point=...)``).
        """
        from sigver.calibration import resolve_operating_point

        if user.threshold is not None:
            return float(user.threshold), "user threshold override", {}
        name = user.operating_point
        if name is None:
            return self.default_threshold, self.operating_point, dict(self.default_rates)
        t, key, rates = resolve_operating_point(self.calibration, name)
        return t, key, {k: rates.get(k) for k in ("FRR", "FAR_skilled", "FAR_random")}

    def set_operating_point(
        self,
        user_id: str,
        name: str | None,
        *,
        tenant: str = DEFAULT_TENANT,
        key_id: str | None = None,
    ) -> UserRecord:
        """Set (or clear with ``None``) a user's named operating point.

        Raises
        ------
        CalibrationError
            The model's calibration has no such operating point.
        """
        from sigver.calibration import resolve_operating_point

        key = None if name is None else resolve_operating_point(self.calibration, name)[1]
        audit = AuditEvent(
            "set_operating_point",
            tenant=tenant,
            key_id=key_id,
            user_id=user_id,
            operating_point=key,
            model_id=self.model_id,
        )
        return self.store.set_operating_point(user_id, key, tenant=tenant, audit=audit)

    def operating_points(self) -> dict[str, Any]:
        """The model's named operating points with their calibrated rates."""
        return dict((self.calibration or {}).get("operating_points") or {})

    def _global_threshold(self) -> tuple[float, str]:
        from sigver.calibration import stored_threshold

        meta = getattr(self.extractor, "meta", None)
        value = stored_threshold(getattr(meta, "metrics", None))
        if value is None:
            logger.info(
                "model %s has no calibrated threshold in its metadata; using 0.0 "
                "(the SVM decision boundary)",
                self.model_id,
            )
            return 0.0, "default: SVM decision boundary (no calibration in model metadata)"
        return value, "calibrated, from model metadata (metrics.calibration.threshold)"

    def _load_background(
        self, background: str | os.PathLike[str] | np.ndarray | None
    ) -> np.ndarray:
        if isinstance(background, np.ndarray):
            return np.asarray(background, dtype=np.float32)
        if background is None:
            if self.model_path is None:
                return np.zeros((0, 0), dtype=np.float32)
            path = background_path_for(self.model_path)
            if not path.is_file():
                logger.warning(
                    "no background negatives next to the model (%s); only other enrolled "
                    "users will serve as negatives",
                    path,
                )
                return np.zeros((0, 0), dtype=np.float32)
        else:
            path = Path(background)
        from sigver.featureset import load_features

        try:
            featureset = load_features(path)
            features = np.asarray(featureset.features, dtype=np.float32)
        except (DatasetError, OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise ModelError(f"background set {path} is unreadable: {exc}") from exc
        if features.ndim != 2 or not np.all(np.isfinite(features)):
            raise ModelError(f"background set {path} is corrupt (shape or non-finite values)")
        meta = getattr(featureset, "meta", {}) or {}
        expected = meta.get("model_sha256") if isinstance(meta, Mapping) else None
        if expected and str(expected) != self.model_sha256:
            raise ModelError(
                f"background set {path} was extracted with model {expected}, not "
                f"{self.model_sha256}; regenerate it"
            )
        try:
            self._background_writers = np.asarray(featureset.user_ids)[featureset.y]
        except (IndexError, TypeError, ValueError) as exc:
            raise ModelError(f"background set {path} is corrupt (writer ids): {exc}") from exc
        logger.debug("loaded %d background negatives from %s", len(features), path)
        return features

    @property
    def n_background(self) -> int:
        """Number of background negatives shipped with the model."""
        return int(self._background.shape[0])

    def close(self) -> None:
        """Release the store's connections if this verifier opened the store.

        A store passed in as an object belongs to the caller and stays open. The
        verifier can be used as a context manager (``with Verifier(...) as v:``).
        """
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- images and features -----------------------------------------------------

    def _load_image(self, source: ImageSource, index: int) -> _LoadedImage:
        from sigver._util import read_file_limited
        from sigver.preprocessing import read_image

        limits = self.settings
        encoded: bytes | None
        if isinstance(source, (str, os.PathLike)):
            name = str(source)
            # Never trust st_size: /dev/zero says 0 and FIFOs block; read at most the limit.
            encoded = read_file_limited(source, limits.max_file_bytes, name=name)
            sha = hashlib.sha256(encoded).hexdigest()
            data: bytes | np.ndarray = encoded
        elif isinstance(source, (bytes, bytearray, memoryview)):
            name = f"<image {index}>"
            size = memoryview(source).nbytes
            if size > limits.max_file_bytes:  # checked before any copy
                raise ImageError(
                    name, f"data is {size} bytes, over the {limits.max_file_bytes} limit"
                )
            encoded = bytes(source)
            sha = hashlib.sha256(encoded).hexdigest()
            data = encoded
        elif isinstance(source, np.ndarray):
            name = f"<array {index}>"
            if source.size == 0:
                raise ImageError(name, f"empty array of shape {source.shape}")
            # Size checks before hashing: hashing copies a non-contiguous view.
            pixels = source.shape[0] * source.shape[1] if source.ndim >= 2 else source.size
            if pixels > limits.max_pixels or source.nbytes > limits.max_decoded_bytes:
                raise ImageError(
                    name,
                    f"array of shape {source.shape} ({source.nbytes} bytes) is over the limits "
                    f"({limits.max_pixels} pixels, {limits.max_decoded_bytes} bytes)",
                )
            encoded = None
            sha = _sha256_of_array(source)
            data = source
        else:
            raise ImageError(f"<image {index}>", f"unsupported image type {type(source).__name__}")
        try:
            # Bounded concurrency x bounded bytes per image = bounded decode memory. The
            # full-size pixels are preprocessed inside the slot and dropped: a batch holds
            # only model-size images, however large (and however compressible) its files.
            with self._decode_slots:
                pixels_u8 = read_image(
                    data,
                    max_pixels=limits.max_pixels,
                    max_bytes=limits.max_file_bytes,
                    max_decoded_bytes=limits.max_decoded_bytes,
                )
                normalised = self._normalise(pixels_u8, name)
        except ImageError as exc:
            raise ImageError(name, exc.reason) from exc
        except MemoryError:
            raise ImageError(name, "not enough memory to decode the image") from None
        return _LoadedImage(
            name=name,
            sha256=sha,
            encoded=encoded,
            normalised=normalised,
            pixels=pixels_u8 if encoded is None else None,
        )

    def _normalise(self, pixels: np.ndarray, name: str) -> np.ndarray:
        from sigver.preprocessing import preprocess_signature

        config = self.extractor.preprocess_config
        return preprocess_signature(pixels, config.canvas_size, config.img_size, source=name)

    def _features(self, loaded: Sequence[_LoadedImage]) -> np.ndarray:
        config = self.extractor.preprocess_config
        batch = np.empty((len(loaded), 1, *config.img_size), dtype=np.uint8)
        for i, item in enumerate(loaded):
            batch[i, 0] = item.normalised
        features = np.asarray(self.extractor.extract(batch), dtype=np.float32)
        if features.ndim != 2 or features.shape[0] != len(loaded):
            raise ModelError(f"extractor returned features of shape {features.shape}")
        return features

    def preprocess(self, image: ImageSource, index: int = 0) -> tuple[np.ndarray, str]:
        """One image exactly as enrollment and verification see it.

        The same loading (size and pixel limits) and preprocessing as
        :meth:`enroll` and :meth:`verify`, without feature extraction: what an
        operator checks before enrolling.

        Parameters
        ----------
        image : ImageSource
            Path, encoded bytes or decoded array.
        index : int
            Position used to name byte and array inputs in errors (``<image i>``).

        Returns
        -------
        (numpy.ndarray, str)
            The normalised ``uint8`` image of shape ``preprocess_config.img_size``
            (ink high, background 0) and the SHA-256 that enrollment would
            record for it (duplicates share it).

        Raises
        ------
        ImageError
            Unreadable, too large or blank (no usable ink).
        """
        item = self._load_image(image, index)
        return item.normalised, item.sha256

    def extract(self, images: Iterable[ImageSource]) -> np.ndarray:
        """Features ``(n, d)`` of raw images (paths, bytes or arrays)."""
        items = _image_list(images, _MAX_ENROLL_IMAGES)
        loaded = [self._load_image(img, i) for i, img in enumerate(items)]
        if not loaded:
            return np.zeros((0, int(getattr(self.extractor, "feature_dim", 0))), np.float32)
        return self._features(loaded)

    # -- enrollment --------------------------------------------------------------

    def _train_user(
        self, user_id: str, tenant: str, positives: np.ndarray
    ) -> tuple[Any, np.ndarray]:
        """The user's model and the other users' rows it was trained against.

        Training goes through :func:`sigver.usermodel.train_user_model`, the one
        function the deployment simulation of ``sigver evaluate`` also uses;
        background rows come first among the negatives, then the other users'.
        """
        from sigver.usermodel import train_user_model

        dim = int(positives.shape[1])
        others = self.store.other_references(
            user_id,
            self.model_sha256,
            limit=self.settings.max_user_negatives,
            seed=int.from_bytes(hashlib.sha256(user_id.encode()).digest()[:4], "little"),
            tenant=tenant,
            dim=dim,
        )
        if not self._background.size and not others.size:
            raise EnrollmentError(
                "no negatives to train against: the model has no background set and no other "
                "user is enrolled with it; enroll with a model that ships "
                "<model>.background.npz"
            )
        others = others if others.size else np.zeros((0, dim), np.float32)
        model = train_user_model(
            positives,
            self._background,
            others,
            params=self.classifier_params,
            normalization=self.normalization,
            cohort=self._cohort,
        )
        return model, others

    def _compact_arrays(self, clf: Any, n_pos: int, others: np.ndarray) -> dict[str, np.ndarray]:
        """Classifier arrays with support vectors stored as references where possible.

        A support vector is a scaled copy of a training row: of the user's own
        references (stored anyway), of the background set (shipped with the
        model) or of another user's reference. Only the last kind is kept
        inline (float32, unscaled); the others become ``(source, index)``
        pairs. Rebuilt vectors are bit-identical (``row.astype(float64) /
        scale`` is what the SVM was trained on); if they are not, the full
        vectors are stored as before.
        """
        arrays = clf.to_arrays()
        support = getattr(clf, "support_", None)
        if support is None:
            return arrays
        n_bg = self.n_background
        source = np.where(support < n_pos, 0, np.where(support < n_pos + n_bg, 1, 2)).astype(
            np.int8
        )
        index = np.where(source == 0, support, support - n_pos).astype(np.int64)
        inline_rows = support[source == 2] - n_pos - n_bg
        index[source == 2] = np.arange(inline_rows.size)
        inline = others[inline_rows].astype(np.float32) if inline_rows.size else None
        compact = {
            **{k: v for k, v in arrays.items() if k != "support_vectors"},
            "sv_source": source,
            "sv_index": index.astype(np.int32),
            "sv_inline": inline
            if inline is not None
            else np.zeros((0, arrays["scale"].shape[0]), np.float32),
            "background_sha256": np.asarray(self._background_sha256),
        }
        return compact

    def _expand_arrays(
        self, arrays: dict[str, np.ndarray], references: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        """Inverse of :meth:`_compact_arrays` (full ``support_vectors`` back)."""
        source = np.asarray(arrays["sv_source"]).reshape(-1)
        index = np.asarray(arrays["sv_index"]).reshape(-1).astype(np.int64)
        inline = np.asarray(arrays["sv_inline"], dtype=np.float32)
        scale = np.asarray(arrays["scale"], dtype=np.float64)
        if str(np.asarray(arrays["background_sha256"]).reshape(())) != self._background_sha256:
            raise StoreError(
                "the classifier was trained against another background set than the model's; "
                "re-enroll the user"
            )
        if source.shape != index.shape or scale.ndim != 1:
            raise StoreError("classifier support-vector references are malformed")
        d = scale.shape[0]
        rows = np.empty((source.size, d), dtype=np.float32)
        pools = {
            0: references if references is not None else np.zeros((0, d), np.float32),
            1: self._background,
            2: inline,
        }
        for kind, pool in pools.items():
            mask = source == kind
            if not mask.any():
                continue
            if (
                pool.ndim != 2
                or pool.shape[1] != d
                or index[mask].min() < 0
                or (index[mask].max() >= pool.shape[0])
            ):
                raise StoreError("classifier support-vector references point outside their rows")
            rows[mask] = pool[index[mask]]
        if not np.isin(source, (0, 1, 2)).all():
            raise StoreError("classifier support-vector references are malformed")
        full = dict(arrays)
        full["support_vectors"] = rows.astype(np.float64) / scale
        return full

    def enroll(
        self,
        user_id: str,
        images: Iterable[ImageSource],
        *,
        add: bool = False,
        force: bool = False,
        threshold: float | None = None,
        store_images: bool = False,
        min_references: int | None = None,
        tenant: str = DEFAULT_TENANT,
        key_id: str | None = None,
    ) -> EnrollmentResult:
        """Enroll a user from genuine reference signatures.

        Parameters
        ----------
        user_id : str
            Identifier (see :func:`enrollment.store.validate_user_id`).
        images : sequence of ImageSource
            Reference signatures (paths, encoded bytes or arrays).
        add : bool
            Add to an existing enrollment and retrain (the user must exist and
            must have been enrolled with the same model).
        force : bool
            Replace an existing enrollment (also the way to re-enroll after a
            model change).
        threshold : float, optional
            Per-user threshold override; when adding, the previous override is
            kept unless a new one is given.
        store_images : bool
            Keep the encoded images in the store (off by default: only features
            and hashes are kept).
        min_references : int, optional
            Fewest distinct references (default ``settings.min_references``; at least 2).
        tenant : str
            Namespace of the user (the HTTP service passes the API key's tenant).
        key_id : str, optional
            API key making the request, for the audit trail.

        Returns
        -------
        EnrollmentResult

        Raises
        ------
        UserExistsError
            Already enrolled and neither ``add`` nor ``force``.
        UserNotFoundError
            ``add`` for a user who is not enrolled.
        ModelMismatchError
            ``add`` for a user enrolled with another extractor.
        InsufficientReferencesError
            Fewer than ``min_references`` distinct references.
        ImageError
            An image is unreadable, blank or too large (nothing is stored).
        """
        start = time.perf_counter()
        validate_user_id(user_id)
        validate_tenant_id(tenant)
        if add and force:
            raise EnrollmentError("choose either add or force, not both")
        threshold = _finite_threshold(threshold)
        minimum = self.settings.min_references if min_references is None else min_references
        if isinstance(minimum, bool) or not isinstance(minimum, numbers.Integral):
            raise EnrollmentError(f"min_references must be an integer, got {minimum!r}")
        if minimum < _MIN_REFERENCES_FLOOR:
            raise EnrollmentError(
                f"min_references must be at least {_MIN_REFERENCES_FLOOR}, got {minimum}"
            )
        images = _image_list(images, _MAX_ENROLL_IMAGES)

        existing = self.store.find_user(user_id, tenant=tenant)
        if existing is not None and not (add or force):
            raise UserExistsError(user_id)
        if add:
            if existing is None:
                raise UserNotFoundError(user_id)
            if existing.model_sha256 != self.model_sha256:
                raise ModelMismatchError(user_id, existing.model_id, self.model_id)

        loaded = [self._load_image(img, i) for i, img in enumerate(images)]
        old_refs: list[ReferenceRecord] = []
        if add and existing is not None:
            old_feats, old_hashes = self.store.load_references(user_id, tenant=tenant)
            stored = dict(self.store.load_reference_images(user_id, tenant=tenant))
            old_refs = [
                ReferenceRecord(h, f, stored.get(h))
                for h, f in zip(old_hashes, old_feats, strict=True)
            ]
        seen = {r.image_sha256 for r in old_refs}
        fresh: list[_LoadedImage] = []
        duplicates: list[str] = []
        for item in loaded:
            if item.sha256 in seen:
                duplicates.append(item.sha256)
                continue
            seen.add(item.sha256)
            fresh.append(item)
        if duplicates:
            logger.warning("%s: skipped %d duplicate image(s)", user_id, len(duplicates))
        total = len(old_refs) + len(fresh)
        if total < minimum:
            raise InsufficientReferencesError(
                f"user {user_id!r} needs at least {minimum} distinct reference signatures, "
                f"got {total}"
            )
        if not fresh:
            raise InsufficientReferencesError("no new reference signatures to add")

        features = self._features(fresh)
        new_refs = [
            ReferenceRecord(
                item.sha256, feat, self._encoded_for_storage(item) if store_images else None
            )
            for item, feat in zip(fresh, features, strict=True)
        ]
        references = old_refs + new_refs
        positives = np.stack([np.asarray(r.features, np.float32) for r in references])
        model, others = self._train_user(user_id, tenant, positives)
        clf = model.classifier
        stored_arrays = self._compact_arrays(clf, positives.shape[0], others)
        if "sv_source" in stored_arrays:
            check = self._expand_arrays(stored_arrays, positives)["support_vectors"]
            if not np.array_equal(check, clf.support_vectors_):
                logger.warning("support vectors did not rebuild exactly; storing them in full")
                stored_arrays = clf.to_arrays()

        if threshold is None and add and existing is not None:
            threshold = existing.threshold
        record = EnrollmentRecord(
            user_id=user_id,
            model_id=self.model_id,
            model_sha256=self.model_sha256,
            references=references,
            classifier=stored_arrays,
            classifier_params={
                **self.classifier_params,
                "classifier": type(clf).__name__,
                "normalization": model.normalizer.to_dict(),
                **(
                    {}
                    if self._stored_cue is None
                    else {"forgery_cue_ref_mean_z": float(np.mean(self._stored_cue.z(positives)))}
                ),
            },
            n_negatives=model.n_negatives,
            threshold=None if threshold is None else float(threshold),
            tenant=tenant,
        )
        mode = "add" if add else "replace" if force else "new"
        audit = AuditEvent(
            "enroll",
            tenant=tenant,
            key_id=key_id,
            user_id=user_id,
            threshold=record.threshold,
            model_id=self.model_id,
            image_sha256=",".join(r.image_sha256 for r in new_refs),
            detail={
                "mode": mode,
                "added": len(new_refs),
                "n_references": len(references),
                "n_negatives": model.n_negatives,
            },
        )
        user = self.store.save_enrollment(
            record,
            mode=mode,
            expected_revision=existing.revision if (add and existing is not None) else None,
            audit=audit,
        )
        with self._cache_lock:
            self._cache[(tenant, user_id)] = (user.cache_key, clf)
            self._cache.move_to_end((tenant, user_id))
            self._trim_cache()
        seconds = time.perf_counter() - start
        logger.info(
            "enrolled %s: %d references (%d new), %d negatives, %.2f s",
            user_id,
            user.n_references,
            len(new_refs),
            model.n_negatives,
            seconds,
        )
        return EnrollmentResult(
            user=user,
            added=len(new_refs),
            duplicates=tuple(duplicates),
            n_negatives=model.n_negatives,
            threshold=self.threshold_for(user),
            seconds=seconds,
        )

    @staticmethod
    def _encoded_for_storage(item: _LoadedImage) -> bytes:
        if item.encoded is not None:
            return item.encoded
        import cv2

        if item.pixels is None:  # pragma: no cover - _load_image keeps arrays without bytes
            raise ImageError(item.name, "no image to store")
        ok, buf = cv2.imencode(".png", item.pixels)
        if not ok:  # pragma: no cover - PNG encoding of a uint8 image does not fail
            raise ImageError(item.name, "could not encode image for storage")
        return buf.tobytes()

    # -- verification ------------------------------------------------------------

    def threshold_for(self, user: UserRecord) -> float:
        """Threshold applied to a user (see :meth:`operating_point_for`)."""
        return self.operating_point_for(user)[0]

    def _trim_cache(self) -> None:
        for cache in (self._cache, self._ref_cache):
            while len(cache) > _CACHE_SIZE:
                cache.popitem(last=False)

    def _references_for(self, user: UserRecord, tenant: str) -> np.ndarray:
        """The user's stored reference features (cached like the classifier)."""
        key = (tenant, user.user_id)
        with self._cache_lock:
            hit = self._ref_cache.get(key)
            if hit is not None and hit[0] == user.cache_key:
                self._ref_cache.move_to_end(key)
                return hit[1]
        refs = np.asarray(self.store.load_references(user.user_id, tenant=tenant)[0], np.float64)
        with self._cache_lock:
            self._ref_cache[key] = (user.cache_key, refs)
            self._trim_cache()
        return refs

    def _classifier_for(self, user_id: str, tenant: str) -> tuple[UserRecord, Any]:
        validate_user_id(user_id)
        validate_tenant_id(tenant)
        user = self.store.user_summary(user_id, tenant=tenant)
        if user.model_sha256 != self.model_sha256:
            raise ModelMismatchError(user_id, user.model_id, self.model_id)
        key = (tenant, user_id)
        with self._cache_lock:
            hit = self._cache.get(key)
            # The cache key holds the integrity tag and the threshold: an edited row
            # never reuses a classifier verified before the edit.
            if hit is not None and hit[0] == user.cache_key:
                self._cache.move_to_end(key)
                return user, hit[1]
        # Scoring needs only the support vectors: the numpy scorer spares a cold
        # `sigver verify` scikit-learn's import and gives the same scores.
        from sigver.svm_scoring import SVMScorer

        # Classifier and references from one checked snapshot: a re-enrollment landing
        # between two reads would otherwise expand one revision's classifier with
        # another's references.
        user, arrays, own, _ = self.store.load_enrollment(user_id, tenant=tenant)
        if user.model_sha256 != self.model_sha256:
            raise ModelMismatchError(user_id, user.model_id, self.model_id)
        if self.pair_cue is not None:
            with self._cache_lock:
                # The pair cue reads the same rows: one query, not two.
                self._ref_cache[key] = (user.cache_key, np.asarray(own, np.float64))
                self._ref_cache.move_to_end(key)
        if "sv_source" in arrays:
            arrays = self._expand_arrays(arrays, own)
        try:
            # The numpy scorer: verification needs no scikit-learn import.
            clf = SVMScorer.from_arrays(arrays)
        except ModelError as exc:
            raise StoreError(f"stored classifier of user {user_id!r} is corrupt: {exc}") from exc
        dim = getattr(self.extractor, "feature_dim", None)
        if clf.n_features_in_ != user.feature_dim or (dim and clf.n_features_in_ != int(dim)):
            raise StoreError(
                f"stored classifier of user {user_id!r} expects {clf.n_features_in_} features, "
                f"the user record says {user.feature_dim} and the model produces {dim}"
            )
        with self._cache_lock:
            self._cache[key] = (user.cache_key, clf)
            self._cache.move_to_end(key)
            self._trim_cache()
        return user, clf

    def check_user(self, user_id: str, *, tenant: str = DEFAULT_TENANT) -> UserRecord:
        """The user's record if they can be verified with this model.

        Raises
        ------
        InvalidUserIdError, UserNotFoundError, ModelMismatchError
        """
        return self._classifier_for(user_id, tenant)[0]

    def verify(
        self,
        user_id: str,
        image: ImageSource,
        *,
        tenant: str = DEFAULT_TENANT,
        key_id: str | None = None,
    ) -> VerificationResult:
        """Verify one questioned signature against a user's enrollment.

        Parameters
        ----------
        user_id : str
            Claimed identity.
        image : ImageSource
            Path, encoded bytes or decoded array.

        Returns
        -------
        VerificationResult

        Raises
        ------
        UserNotFoundError, ModelMismatchError, ImageError
        """
        return self.verify_batch(user_id, [image], tenant=tenant, key_id=key_id)[0]

    def verify_batch(
        self,
        user_id: str,
        images: Iterable[ImageSource],
        *,
        tenant: str = DEFAULT_TENANT,
        key_id: str | None = None,
    ) -> list[VerificationResult]:
        """Verify several signatures of one claimed user in a single forward pass.

        Results are in input order and equal to calling :meth:`verify` on each
        image up to floating-point rounding of the batched forward pass (about
        1e-14 on the score; the decision differs only for a score within that of
        the threshold). If any image is unreadable, :class:`ImageError` names it
        and no result is returned. Each decision is appended to the audit trail.
        """
        items = _image_list(images, _MAX_ENROLL_IMAGES)
        user, clf = self._classifier_for(user_id, tenant)
        if not items:
            return []
        loaded = [self._load_image(img, i) for i, img in enumerate(items)]
        features = self._features(loaded)
        from sigver.normalization import ScoreNormalizer

        with _blas_threads(self.settings.blas_threads):
            raw = np.asarray(clf.decision_function(features), dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(raw)):
            raise StoreError(f"stored classifier of user {user_id!r} gives non-finite scores")
        try:
            normalizer = ScoreNormalizer.from_dict(user.classifier_params.get("normalization"))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError, SigverError) as exc:
            raise StoreError(
                f"stored score normaliser of user {user_id!r} is corrupt: {exc}"
            ) from exc
        scores = normalizer.transform(raw)
        penalties: list[float | None] = [None] * len(scores)
        if self.forgery_cue is not None:
            # Same order as the calibration: the user's normalised score, minus the cue.
            ref_mean = user.classifier_params.get("forgery_cue_ref_mean_z")
            if self.forgery_cue.centred and not isinstance(ref_mean, (int, float)):
                raise EnrollmentError(
                    f"user {user_id!r} was enrolled before the model carried its forgery cue; "
                    "re-enroll the user (sigver enroll --force) to verify with the cue on"
                )
            pen = self.forgery_cue.penalty(features, ref_mean)
            if self.pair_cue is not None:
                # The pairwise part: how this signature differs from this user's references.
                pen = pen + self.pair_cue.applied_penalty(
                    features, self._references_for(user, tenant)
                )
            scores = scores - pen
            penalties = [float(v) for v in pen]
        threshold, decided_by, rates = self.operating_point_for(user)
        cal_refs = (self.calibration or {}).get("refs") if rates else None
        llr = self._llr
        results = [
            VerificationResult(
                user_id=user_id,
                score=float(score),
                accepted=bool(score >= threshold),
                threshold=threshold,
                model_id=self.model_id,
                image_sha256=item.sha256,
                raw_score=float(r),
                operating_point=decided_by,
                calibrated_rates=rates,
                llr=None if llr is None else float(llr["slope"] * score + llr["intercept"]),
                forgery_penalty=pen,
                references=int(user.n_references),
                calibrated_references=None if cal_refs is None else int(cal_refs),
            )
            for item, score, r, pen in zip(loaded, scores, raw, penalties, strict=True)
        ]
        self.store.append_audit(
            [
                AuditEvent(
                    "verify",
                    tenant=tenant,
                    key_id=key_id,
                    user_id=user_id,
                    decision="accept" if r.accepted else "reject",
                    score=r.score,
                    threshold=r.threshold,
                    operating_point=r.operating_point,
                    model_id=r.model_id,
                    image_sha256=r.image_sha256,
                )
                for r in results
            ]
        )
        return results

    # -- user management ----------------------------------------------------------

    def get_user(self, user_id: str, *, tenant: str = DEFAULT_TENANT) -> UserRecord:
        """Stored record of a user (raises :class:`UserNotFoundError`)."""
        return self.store.get_user(user_id, tenant=tenant)

    def list_users(self, *, tenant: str = DEFAULT_TENANT) -> list[UserRecord]:
        """The tenant's enrolled users."""
        return self.store.list_users(tenant=tenant)

    def remove_user(
        self, user_id: str, *, tenant: str = DEFAULT_TENANT, key_id: str | None = None
    ) -> None:
        """Delete a user (raises :class:`UserNotFoundError`)."""
        audit = AuditEvent("remove", tenant=tenant, key_id=key_id, user_id=user_id)
        self.store.remove_user(user_id, tenant=tenant, audit=audit)
        with self._cache_lock:
            self._cache.pop((tenant, user_id), None)

    def set_threshold(
        self,
        user_id: str,
        threshold: float | None,
        *,
        tenant: str = DEFAULT_TENANT,
        key_id: str | None = None,
    ) -> UserRecord:
        """Set or clear (``None``) a user's threshold override."""
        value = _finite_threshold(threshold)
        audit = AuditEvent(
            "set_threshold",
            tenant=tenant,
            key_id=key_id,
            user_id=user_id,
            threshold=value,
            model_id=self.model_id,
        )
        return self.store.set_threshold(user_id, value, tenant=tenant, audit=audit)

    def describe(self) -> dict[str, object]:
        """Model and store facts for ``/health`` and ``users list``."""
        return {
            "model_id": self.model_id,
            "model_sha256": self.model_sha256,
            "default_threshold": self.default_threshold,
            "threshold_source": self.threshold_source,
            "operating_point": self.operating_point,
            "calibrated_rates": dict(self.default_rates),
            "normalization": self.normalization,
            "operating_points": sorted(self.operating_points()),
            "background_negatives": self.n_background,
            "home": None if self.store.home is None else str(self.store.home),
            "store": self.store.location,
            "store_backend": self.store.backend,
        }

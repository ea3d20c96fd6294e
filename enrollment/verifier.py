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

import hashlib
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from enrollment.config import Settings
from enrollment.errors import (
    EnrollmentError,
    InsufficientReferencesError,
    ModelMismatchError,
    UserExistsError,
    UserNotFoundError,
)
from enrollment.store import (
    EnrollmentRecord,
    ReferenceRecord,
    UserRecord,
    UserStore,
    validate_user_id,
)
from sigver.errors import ImageError, ModelError

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

#: Hyper-parameters of the per-user SVM (SigNet paper: RBF, C=1, gamma=2^-11).
DEFAULT_CLASSIFIER_PARAMS: dict[str, Any] = {"kernel": "rbf", "C": 1.0, "gamma": 2.0**-11}

_CACHE_SIZE = 1024


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
    """

    user_id: str
    score: float
    accepted: bool
    threshold: float
    model_id: str
    image_sha256: str

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
    pixels: np.ndarray


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
    digest = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()


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
    store : UserStore, optional
        An open store (overrides ``home``).
    classifier_params : mapping, optional
        Keyword arguments of the per-user classifier.
    """

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        model: str | os.PathLike[str] | None = None,
        *,
        extractor: Any | None = None,
        background: str | os.PathLike[str] | np.ndarray | None = None,
        settings: Settings | None = None,
        store: UserStore | None = None,
        classifier_params: Mapping[str, Any] | None = None,
        backend: str | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.store = store or UserStore(home, busy_timeout_s=self.settings.busy_timeout_s)
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
        self.classifier_params = dict(classifier_params or DEFAULT_CLASSIFIER_PARAMS)
        self.default_threshold, self.threshold_source = self._global_threshold()
        self._background = self._load_background(background)
        self._cache: OrderedDict[str, tuple[tuple[str, str, int], Any]] = OrderedDict()
        self._cache_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Verifier(home={str(self.store.home)!r}, model_id={self.model_id!r})"

    # -- set-up ----------------------------------------------------------------

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

        featureset = load_features(path)
        meta = getattr(featureset, "meta", {}) or {}
        expected = meta.get("model_sha256") if isinstance(meta, Mapping) else None
        if expected and str(expected) != self.model_sha256:
            raise ModelError(
                f"background set {path} was extracted with model {expected}, not "
                f"{self.model_sha256}; regenerate it"
            )
        features = np.asarray(featureset.features, dtype=np.float32)
        logger.debug("loaded %d background negatives from %s", len(features), path)
        return features

    @property
    def n_background(self) -> int:
        """Number of background negatives shipped with the model."""
        return int(self._background.shape[0])

    # -- images and features -----------------------------------------------------

    def _load_image(self, source: ImageSource, index: int) -> _LoadedImage:
        from sigver.preprocessing import read_image

        encoded: bytes | None
        if isinstance(source, (str, os.PathLike)):
            name = str(source)
            path = Path(source)
            try:
                size = path.stat().st_size
                if size > self.settings.max_file_bytes:
                    raise ImageError(
                        name, f"file is {size} bytes, over the {self.settings.max_file_bytes} limit"
                    )
                encoded = path.read_bytes()
            except FileNotFoundError:
                raise ImageError(name, "file not found") from None
            except IsADirectoryError:
                raise ImageError(name, "is a directory, not an image") from None
            except PermissionError:
                raise ImageError(name, "permission denied") from None
            sha = hashlib.sha256(encoded).hexdigest()
            data: bytes | np.ndarray = encoded
        elif isinstance(source, (bytes, bytearray, memoryview)):
            name = f"<image {index}>"
            encoded = bytes(source)
            sha = hashlib.sha256(encoded).hexdigest()
            data = encoded
        elif isinstance(source, np.ndarray):
            name = f"<array {index}>"
            encoded = None
            sha = _sha256_of_array(source)
            data = source
        else:
            raise ImageError(f"<image {index}>", f"unsupported image type {type(source).__name__}")
        try:
            pixels = read_image(
                data,
                max_pixels=self.settings.max_pixels,
                max_bytes=self.settings.max_file_bytes,
            )
        except ImageError as exc:
            raise ImageError(name, exc.reason) from exc
        return _LoadedImage(name=name, sha256=sha, encoded=encoded, pixels=pixels)

    def _features(self, loaded: Sequence[_LoadedImage]) -> np.ndarray:
        from sigver.preprocessing import preprocess_signature

        config = self.extractor.preprocess_config
        batch = np.empty((len(loaded), 1, *config.img_size), dtype=np.uint8)
        for i, item in enumerate(loaded):
            batch[i, 0] = preprocess_signature(
                item.pixels, config.canvas_size, config.img_size, source=item.name
            )
        features = np.asarray(self.extractor.extract(batch), dtype=np.float32)
        if features.ndim != 2 or features.shape[0] != len(loaded):
            raise ModelError(f"extractor returned features of shape {features.shape}")
        return features

    def extract(self, images: Iterable[ImageSource]) -> np.ndarray:
        """Features ``(n, d)`` of raw images (paths, bytes or arrays)."""
        loaded = [self._load_image(img, i) for i, img in enumerate(images)]
        if not loaded:
            return np.zeros((0, int(getattr(self.extractor, "feature_dim", 0))), np.float32)
        return self._features(loaded)

    # -- enrollment --------------------------------------------------------------

    def _negatives(self, user_id: str) -> np.ndarray:
        others = self.store.other_references(
            user_id,
            self.model_sha256,
            limit=self.settings.max_user_negatives,
            seed=int.from_bytes(hashlib.sha256(user_id.encode()).digest()[:4], "little"),
        )
        parts = [p for p in (self._background, others) if p.size]
        if not parts:
            raise EnrollmentError(
                "no negatives to train against: the model has no background set and no other "
                "user is enrolled with it; enroll with a model that ships "
                "<model>.background.npz"
            )
        return np.concatenate(parts).astype(np.float32, copy=False)

    def _train(self, positives: np.ndarray, negatives: np.ndarray) -> Any:
        from sigver.classifier import WriterDependentClassifier

        if negatives.shape[1] != positives.shape[1]:
            raise ModelError(
                f"negatives have {negatives.shape[1]} features but the model produces "
                f"{positives.shape[1]}; the background set does not match the model"
            )
        x = np.concatenate([positives, negatives])
        y = np.concatenate([np.ones(len(positives), int), np.zeros(len(negatives), int)])
        clf = WriterDependentClassifier(**self.classifier_params)
        clf.fit(x, y)
        return clf

    def enroll(
        self,
        user_id: str,
        images: Sequence[ImageSource],
        *,
        add: bool = False,
        force: bool = False,
        threshold: float | None = None,
        store_images: bool = False,
        min_references: int | None = None,
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
            Fewest distinct references (default ``settings.min_references``).

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
        if add and force:
            raise EnrollmentError("choose either add or force, not both")
        if threshold is not None and not math.isfinite(float(threshold)):
            raise EnrollmentError(f"threshold must be a finite number, got {threshold}")
        minimum = self.settings.min_references if min_references is None else int(min_references)
        if len(images) > 1000:
            raise EnrollmentError(f"too many reference images ({len(images)}); at most 1000")

        existing = self.store.find_user(user_id)
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
            old_feats, old_hashes = self.store.load_references(user_id)
            stored = dict(self.store.load_reference_images(user_id))
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
        negatives = self._negatives(user_id)
        clf = self._train(positives, negatives)

        if threshold is None and add and existing is not None:
            threshold = existing.threshold
        record = EnrollmentRecord(
            user_id=user_id,
            model_id=self.model_id,
            model_sha256=self.model_sha256,
            references=references,
            classifier=clf.to_arrays(),
            classifier_params={**self.classifier_params, "classifier": type(clf).__name__},
            n_negatives=int(len(negatives)),
            threshold=None if threshold is None else float(threshold),
        )
        mode = "add" if add else "replace" if force else "new"
        user = self.store.save_enrollment(
            record,
            mode=mode,
            expected_revision=existing.revision if (add and existing is not None) else None,
        )
        with self._cache_lock:
            self._cache[user_id] = (user.cache_key, clf)
            self._cache.move_to_end(user_id)
            self._trim_cache()
        seconds = time.perf_counter() - start
        logger.info(
            "enrolled %s: %d references (%d new), %d negatives, %.2f s",
            user_id,
            user.n_references,
            len(new_refs),
            len(negatives),
            seconds,
        )
        return EnrollmentResult(
            user=user,
            added=len(new_refs),
            duplicates=tuple(duplicates),
            n_negatives=int(len(negatives)),
            threshold=self.threshold_for(user),
            seconds=seconds,
        )

    @staticmethod
    def _encoded_for_storage(item: _LoadedImage) -> bytes:
        if item.encoded is not None:
            return item.encoded
        import cv2

        ok, buf = cv2.imencode(".png", item.pixels)
        if not ok:  # pragma: no cover - PNG encoding of a uint8 image does not fail
            raise ImageError(item.name, "could not encode image for storage")
        return buf.tobytes()

    # -- verification ------------------------------------------------------------

    def threshold_for(self, user: UserRecord) -> float:
        """Threshold applied to a user: their override, else the global default."""
        return self.default_threshold if user.threshold is None else float(user.threshold)

    def _trim_cache(self) -> None:
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    def _classifier_for(self, user_id: str) -> tuple[UserRecord, Any]:
        validate_user_id(user_id)
        user = self.store.user_summary(user_id)
        if user.model_sha256 != self.model_sha256:
            raise ModelMismatchError(user_id, user.model_id, self.model_id)
        with self._cache_lock:
            hit = self._cache.get(user_id)
            if hit is not None and hit[0] == user.cache_key:
                self._cache.move_to_end(user_id)
                return user, hit[1]
        # Scoring needs only the support vectors: the numpy scorer spares a cold
        # `sigver verify` scikit-learn's import and gives the same scores.
        from sigver.svm_scoring import SVMScorer

        user, arrays = self.store.load_classifier(user_id)
        if user.model_sha256 != self.model_sha256:
            raise ModelMismatchError(user_id, user.model_id, self.model_id)
        clf = SVMScorer.from_arrays(arrays)
        with self._cache_lock:
            self._cache[user_id] = (user.cache_key, clf)
            self._cache.move_to_end(user_id)
            self._trim_cache()
        return user, clf

    def check_user(self, user_id: str) -> UserRecord:
        """The user's record if they can be verified with this model.

        Raises
        ------
        InvalidUserIdError, UserNotFoundError, ModelMismatchError
        """
        return self._classifier_for(user_id)[0]

    def verify(self, user_id: str, image: ImageSource) -> VerificationResult:
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
        return self.verify_batch(user_id, [image])[0]

    def verify_batch(self, user_id: str, images: Sequence[ImageSource]) -> list[VerificationResult]:
        """Verify several signatures of one claimed user in a single forward pass.

        Results are in input order and identical to calling :meth:`verify` on
        each image. If any image is unreadable, :class:`ImageError` names it
        and no result is returned.
        """
        user, clf = self._classifier_for(user_id)
        if not images:
            return []
        loaded = [self._load_image(img, i) for i, img in enumerate(images)]
        features = self._features(loaded)
        scores = np.asarray(clf.decision_function(features), dtype=np.float64).reshape(-1)
        threshold = self.threshold_for(user)
        return [
            VerificationResult(
                user_id=user_id,
                score=float(score),
                accepted=bool(score >= threshold),
                threshold=threshold,
                model_id=self.model_id,
                image_sha256=item.sha256,
            )
            for item, score in zip(loaded, scores, strict=True)
        ]

    # -- user management ----------------------------------------------------------

    def get_user(self, user_id: str) -> UserRecord:
        """Stored record of a user (raises :class:`UserNotFoundError`)."""
        return self.store.get_user(user_id)

    def list_users(self) -> list[UserRecord]:
        """All enrolled users."""
        return self.store.list_users()

    def remove_user(self, user_id: str) -> None:
        """Delete a user (raises :class:`UserNotFoundError`)."""
        self.store.remove_user(user_id)
        with self._cache_lock:
            self._cache.pop(user_id, None)

    def set_threshold(self, user_id: str, threshold: float | None) -> UserRecord:
        """Set or clear (``None``) a user's threshold override."""
        if threshold is not None and not math.isfinite(float(threshold)):
            raise EnrollmentError(f"threshold must be a finite number, got {threshold}")
        return self.store.set_threshold(user_id, threshold)

    def describe(self) -> dict[str, object]:
        """Model and store facts for ``/health`` and ``users list``."""
        return {
            "model_id": self.model_id,
            "model_sha256": self.model_sha256,
            "default_threshold": self.default_threshold,
            "threshold_source": self.threshold_source,
            "background_negatives": self.n_background,
            "home": str(self.store.home),
        }

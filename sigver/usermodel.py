"""The per-user model enrollment ships: classifier + score normaliser, trained one way.

:func:`train_user_model` is the single definition of how a user's
classifier is trained from their references: :meth:`enrollment.Verifier.enroll`
calls it, and so does the deployment simulation of ``sigver evaluate
--negatives model`` (:func:`sigver.evaluation.simulate_deployment`), so the
error rates the simulation reports are those of the product's code path:

- positives: the user's reference features;
- negatives: the model's background set (minus the held-out cohort, when
  the normaliser needs one) followed by the other enrolled users' references;
- ``WriterDependentClassifier`` (per-user ``StandardScaler(with_mean=False)``
  + SVM with the ``#negatives / #positives`` class weight);
- the score normaliser of :mod:`sigver.normalization`, fit on leave-one-out
  scores of the references and / or scores of the cohort.

The cohort is a fixed subset of the background writers (:func:`split_cohort`,
chosen by a hash of the writer id, so the same writers whatever the order of
the file), never trained against, so its scores are unbiased impostor scores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sigver.errors import ModelError, SigverError
from sigver.normalization import (
    NEEDS_COHORT,
    NEEDS_LOO,
    ScoreNormalizer,
    family,
    fit_normalizer,
)

if TYPE_CHECKING:
    from sigver.classifier import WriterDependentClassifier

__all__ = [
    "DEFAULT_COHORT_FRACTION",
    "DEFAULT_CLASSIFIER_PARAMS",
    "UserModel",
    "classifier_params_for",
    "split_cohort",
    "train_user_model",
]

#: Hyper-parameters of the per-user SVM (SigNet paper: RBF, C=1, gamma=2^-11).
DEFAULT_CLASSIFIER_PARAMS: dict[str, Any] = {"kernel": "rbf", "C": 1.0, "gamma": 2.0**-11}

#: SVM parameters a model's metadata may override (``WeightsMeta.classifier``).
_OVERRIDABLE = frozenset(DEFAULT_CLASSIFIER_PARAMS)


def classifier_params_for(source: Any = None) -> dict[str, Any]:
    """Per-user SVM parameters for the features of one model.

    The defaults (:data:`DEFAULT_CLASSIFIER_PARAMS`) with the model's own
    overrides on top: an ensemble's features, for example, need a smaller RBF
    ``gamma`` (:mod:`sigver.models.ensemble`). One definition for enrollment,
    the deployment simulation and evaluation, so they never train different SVMs.

    Parameters
    ----------
    source : WeightsMeta, extractor, feature-set meta mapping, or None
        Where the overrides come from: a checkpoint's metadata
        (``meta.classifier``), an extractor (its ``meta``), or the ``meta`` of a
        :class:`~sigver.featureset.FeatureSet` (its ``"classifier_params"``,
        recorded by the extractor that computed it). ``None``: the defaults.

    Returns
    -------
    dict

    Raises
    ------
    ModelError
        If the overrides name anything but ``kernel``, ``C`` or ``gamma``.
    """
    if source is not None and not isinstance(source, Mapping) and hasattr(source, "meta"):
        source = source.meta  # an extractor
    if source is None:
        overrides: Any = {}
    elif isinstance(source, Mapping):
        overrides = source.get("classifier_params") or {}
    else:
        overrides = getattr(source, "classifier", None) or {}
    if not isinstance(overrides, Mapping):
        raise ModelError(f"classifier parameters must be a mapping, got {overrides!r}")
    unknown = sorted(set(overrides) - _OVERRIDABLE)
    if unknown:
        raise ModelError(
            f"unknown classifier parameter(s) {', '.join(unknown)} in the model's metadata; "
            f"allowed: {', '.join(sorted(_OVERRIDABLE))}"
        )
    return {**DEFAULT_CLASSIFIER_PARAMS, **overrides}


#: Share of the background writers held out as the impostor cohort.
DEFAULT_COHORT_FRACTION = 0.2


def split_cohort(
    writers: Sequence[str] | np.ndarray, fraction: float = DEFAULT_COHORT_FRACTION
) -> np.ndarray:
    """Boolean mask of the rows whose writer belongs to the impostor cohort.

    A writer is in the cohort when the first 8 bytes of the sha256 of its id,
    as an integer, fall in the lowest ``fraction`` of the range: a fixed,
    order-independent choice, the same in enrollment and in the simulation.

    Parameters
    ----------
    writers : sequence of str
        Writer id of each row.
    fraction : float
        In [0, 1).

    Returns
    -------
    ndarray of bool
    """
    if not 0.0 <= fraction < 1.0:
        raise SigverError(f"cohort fraction must lie in [0, 1), got {fraction}")
    cut = int(fraction * 2**64)
    chosen: dict[str, bool] = {}
    out = np.zeros(len(writers), dtype=bool)
    for i, w in enumerate(writers):
        key = str(w)
        hit = chosen.get(key)
        if hit is None:
            hit = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") < cut
            chosen[key] = hit
        out[i] = hit
    return out


@dataclass
class UserModel:
    """A trained user: classifier, normaliser and the statistics it was fit on.

    Attributes
    ----------
    classifier : WriterDependentClassifier
    normalizer : ScoreNormalizer
    n_negatives : int
        Training negatives.
    loo_genuine : ndarray
        Leave-one-out scores of the references (empty when not computed).
    cohort_scores : ndarray
        Scores of the cohort (empty when no cohort was given).
    """

    classifier: WriterDependentClassifier
    normalizer: ScoreNormalizer
    n_negatives: int
    loo_genuine: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cohort_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def raw_scores(self, features: Any) -> np.ndarray:
        """SVM decision values."""
        return np.asarray(self.classifier.decision_function(features), np.float64).reshape(-1)

    def scores(self, features: Any) -> np.ndarray:
        """Normalised scores (what a threshold is compared with)."""
        return self.normalizer.transform(self.raw_scores(features))

    def normalizer_for(self, method: str) -> ScoreNormalizer:
        """The normaliser ``method`` would fit on this model's statistics (research)."""
        return fit_normalizer(
            method,
            loo_genuine=self.loo_genuine if self.loo_genuine.size else None,
            cohort=self.cohort_scores if self.cohort_scores.size else None,
        )


def _fit(positives: np.ndarray, negatives: np.ndarray, params: Mapping[str, Any]) -> Any:
    # Imported here: scikit-learn is heavy, and a cold verification never trains.
    from sigver.classifier import WriterDependentClassifier

    x = np.concatenate([positives, negatives])
    y = np.r_[np.ones(len(positives), dtype=np.int64), np.zeros(len(negatives), dtype=np.int64)]
    return WriterDependentClassifier(**params).fit(x, y)


def train_user_model(
    positives: np.ndarray,
    background: np.ndarray,
    others: np.ndarray | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    normalization: str = "none",
    cohort: np.ndarray | None = None,
    statistics: bool = False,
) -> UserModel:
    """Train one user's classifier and score normaliser (the enrollment code path).

    Parameters
    ----------
    positives : ndarray, shape (n_refs, d)
        The user's reference features.
    background : ndarray, shape (n_bg, d)
        The model's background negatives, the cohort already removed (may be empty).
    others : ndarray, shape (n_other, d), optional
        Other enrolled users' references.
    params : mapping, optional
        :class:`~sigver.classifier.WriterDependentClassifier` keyword arguments
        (:data:`DEFAULT_CLASSIFIER_PARAMS` when omitted).
    normalization : str
        A method of :mod:`sigver.normalization` (e.g. ``"loo-lcb=1"``).
    cohort : ndarray, shape (n_cohort, d), optional
        Held-out impostor features (needed by cohort methods; never trained on).
    statistics : bool
        Compute the leave-one-out and cohort scores even when ``normalization``
        does not need them (so that the research script can compare every
        normaliser on one training).

    Returns
    -------
    UserModel

    Raises
    ------
    SigverError
        No negatives, or a cohort / leave-one-out statistic the method needs is missing.
    ModelError
        Feature dimensions disagree.
    """
    family(normalization)  # a clear error for an unknown method, before any training
    positives = np.asarray(positives, dtype=np.float32)
    parts = [np.asarray(p, dtype=np.float32) for p in (background, others) if p is not None]
    parts = [p for p in parts if p.size]
    if not parts:
        raise SigverError("no negatives to train against (no background and no other users)")
    for p in parts:
        if p.shape[1] != positives.shape[1]:
            raise ModelError(
                f"negatives have {p.shape[1]} features but the model produces "
                f"{positives.shape[1]}; the background set does not match the model"
            )
    negatives = np.concatenate(parts)
    params = dict(params or DEFAULT_CLASSIFIER_PARAMS)
    clf = _fit(positives, negatives, params)
    want_loo = statistics or family(normalization) in NEEDS_LOO
    want_cohort = statistics or family(normalization) in NEEDS_COHORT
    loo = np.zeros(0)
    if want_loo and len(positives) >= 3:
        keep = np.ones(len(positives), dtype=bool)
        vals = []
        for j in range(len(positives)):
            keep[j] = False
            vals.append(
                float(
                    _fit(positives[keep], negatives, params).decision_function(
                        positives[j : j + 1]
                    )[0]
                )
            )
            keep[j] = True
        loo = np.asarray(vals)
    cohort_scores = np.zeros(0)
    if want_cohort and cohort is not None and len(cohort):
        cohort_scores = np.asarray(clf.decision_function(np.asarray(cohort, np.float32)))
    model = UserModel(clf, ScoreNormalizer(), int(len(negatives)), loo, cohort_scores)
    model.normalizer = model.normalizer_for(normalization)
    return model

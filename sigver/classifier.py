"""Writer-dependent classifier: the per-user SVM of the SigNet recipe.

For each enrolled user a binary SVM separates the user's genuine references
(positive class) from other writers' signatures (negatives), on frozen CNN
features. The published pipeline (Hafemann et al. 2017, and the reference code
luizgh/sigver ``sigver/wd/training.py``) is::

    StandardScaler(with_mean=False)  ->  SVC(kernel="rbf", C=1, gamma=2**-11,
                                             class_weight={genuine: #neg / #pos})

:class:`WriterDependentClassifier` is that pipeline as one scikit-learn
estimator, plus a pickle-free export of its fitted state
(:meth:`~WriterDependentClassifier.to_arrays` /
:meth:`~WriterDependentClassifier.from_arrays`) for the enrollment store.

Decision values are computed by :func:`svm_decision` (numpy) from the support
vectors rather than by libsvm, so that a classifier restored from arrays gives
bit-identical scores to the one that was fitted; they agree with libsvm's
``SVC.decision_function`` to floating-point rounding (~1e-12).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from sigver.svm_scoring import ARRAY_KEYS, KERNELS, SVMScorer, kernel_matrix, svm_decision

__all__ = ["ARRAY_KEYS", "KERNELS", "WriterDependentClassifier", "kernel_matrix", "svm_decision"]


def resolve_class_weight(
    class_weight: str | Mapping[Any, float] | None, classes: np.ndarray, y: np.ndarray
) -> dict[Any, float] | str | None:
    """Turn the ``class_weight`` parameter into what :class:`~sklearn.svm.SVC` takes.

    ``"skew"`` weighs the positive class (``classes[1]``) by ``#negatives / #positives``
    (the reference's ``class_weight={1: skew}``); ``"balanced"``, ``None`` and
    dicts are passed through.
    """
    if isinstance(class_weight, str) and class_weight == "skew":
        n_pos = int(np.sum(y == classes[1]))
        n_neg = int(y.shape[0] - n_pos)
        return {classes[1]: n_neg / n_pos}
    if class_weight is None or isinstance(class_weight, Mapping) or class_weight == "balanced":
        return dict(class_weight) if isinstance(class_weight, Mapping) else class_weight
    raise ValueError(
        f"class_weight must be 'skew', 'balanced', None or a dict, got {class_weight!r}"
    )


class WriterDependentClassifier(ClassifierMixin, BaseEstimator):
    """Per-user SVM on frozen features: ``StandardScaler(with_mean=False)`` + ``SVC``.

    Parameters
    ----------
    kernel : {"rbf", "linear"}, default "rbf"
        SVM kernel.
    C : float, default 1.0
        SVM regularisation.
    gamma : float, default 2**-11
        RBF width, on the scaled features (the published value for 2048-d SigNet
        features).
    class_weight : "skew", "balanced", dict or None, default "skew"
        ``"skew"`` weighs the positive (genuine) class by ``#negatives / #positives``.

    Attributes
    ----------
    classes_ : ndarray, shape (2,)
        Sorted labels; ``classes_[1]`` is the positive (genuine) class, so with
        labels ``{0, 1}`` genuine is 1.
    scale_ : ndarray, shape (n_features,)
        Per-feature scale of the scaler (std over the training set, 1 where it is 0).
    support_vectors_ : ndarray, shape (n_sv, n_features)
        Support vectors in the scaled space.
    support_ : ndarray, shape (n_sv,)
        Training rows the support vectors come from (``X[support_] / scale_``);
        absent on classifiers rebuilt with :meth:`from_arrays`.
    dual_coef_ : ndarray, shape (n_sv,)
        Signed dual coefficients.
    intercept_ : float
    n_features_in_ : int

    Notes
    -----
    Scores are decision values: ``>= 0`` is accepted as genuine.
    """

    def __init__(
        self,
        kernel: str = "rbf",
        C: float = 1.0,
        gamma: float = 2**-11,
        class_weight: str | Mapping[Any, float] | None = "skew",
    ) -> None:
        self.kernel = kernel
        self.C = C
        self.gamma = gamma
        self.class_weight = class_weight

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # A writer-dependent model is genuine-vs-rest by construction.
        tags.classifier_tags.multi_class = False
        return tags

    def _check_params(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {self.kernel!r}")
        if not isinstance(self.C, numbers.Real) or not self.C > 0:
            raise ValueError(f"C must be a positive number, got {self.C!r}")
        if not isinstance(self.gamma, numbers.Real) or not self.gamma > 0:
            raise ValueError(f"gamma must be a positive number, got {self.gamma!r}")

    def fit(self, X: Any, y: Any) -> WriterDependentClassifier:
        """Fit the scaler and the SVM.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like, shape (n_samples,)
            Two classes; the larger label is the positive (genuine) class.

        Returns
        -------
        WriterDependentClassifier
            ``self``.
        """
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        classes = np.unique(y)
        if classes.shape[0] == 1:
            raise ValueError(
                "a writer-dependent classifier needs 2 classes (genuine vs negatives), got 1 class"
            )
        y_type = type_of_target(y, input_name="y", raise_unknown=True)
        if y_type != "binary":
            raise ValueError(
                "Only binary classification is supported (genuine vs negatives). The type of "
                f"the target is {y_type}."
            )
        scaler = StandardScaler(with_mean=False).fit(X)
        svc = SVC(
            kernel=self.kernel,
            C=float(self.C),
            gamma=float(self.gamma),
            class_weight=resolve_class_weight(self.class_weight, classes, y),
        )
        svc.fit(scaler.transform(X), y)
        self.classes_ = classes
        self.scale_ = np.asarray(scaler.scale_, dtype=np.float64)
        self.support_vectors_ = np.asarray(svc.support_vectors_, dtype=np.float64)
        # Rows of X the support vectors are (scaled) copies of: lets a store keep
        # references to training rows instead of the vectors themselves.
        self.support_ = np.asarray(svc.support_, dtype=np.int64)
        self.dual_coef_ = np.asarray(svc.dual_coef_[0], dtype=np.float64)
        self.intercept_ = float(svc.intercept_[0])
        self.gamma_ = float(self.gamma)
        self.kernel_ = str(self.kernel)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Signed distance to the boundary; positive means genuine.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)

        Returns
        -------
        ndarray, shape (n_samples,)
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return svm_decision(
            X / self.scale_,
            self.support_vectors_,
            self.dual_coef_,
            self.intercept_,
            self.kernel_,
            self.gamma_,
        )

    def predict(self, X: Any) -> np.ndarray:
        """Class labels: ``classes_[1]`` where the decision value is ``>= 0``."""
        scores = self.decision_function(X)
        return self.classes_[(scores >= 0).astype(np.intp)]

    # -- pickle-free persistence ----------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Fitted state as plain numeric / unicode arrays (safe for ``np.savez``).

        Returns
        -------
        dict of str to ndarray
            ``scale`` (d,), ``support_vectors`` (n_sv, d) in the scaled space,
            ``dual_coef`` (n_sv,), ``intercept`` (), ``gamma`` (), ``kernel``
            () unicode, ``classes`` (2,), plus ``C`` ().
        """
        check_is_fitted(self)
        classes = np.asarray(self.classes_)
        if classes.dtype.kind == "O":
            classes = classes.astype(str)
        return {
            "scale": self.scale_.copy(),
            "support_vectors": self.support_vectors_.copy(),
            "dual_coef": self.dual_coef_.copy(),
            "intercept": np.asarray(self.intercept_, dtype=np.float64),
            "gamma": np.asarray(self.gamma_, dtype=np.float64),
            "kernel": np.asarray(self.kernel_),
            "classes": classes.copy(),
            "C": np.asarray(float(self.C), dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> WriterDependentClassifier:
        """Rebuild a fitted classifier from :meth:`to_arrays` output.

        Parameters
        ----------
        arrays : mapping of str to ndarray

        Returns
        -------
        WriterDependentClassifier
            Gives identical decision values to the exported one.

        Raises
        ------
        ModelError
            If arrays are missing or inconsistent.
        """
        scorer = SVMScorer.from_arrays(arrays)
        kernel, gamma, scale, classes = scorer.kernel, scorer.gamma, scorer.scale, scorer.classes
        sv, dual = scorer.support_vectors, scorer.dual_coef
        C = float(np.asarray(arrays.get("C", 1.0)).reshape(()))
        clf = cls(kernel=kernel, C=C, gamma=gamma)
        clf.classes_ = classes
        clf.scale_ = scale
        clf.support_vectors_ = sv
        clf.dual_coef_ = dual
        clf.intercept_ = scorer.intercept
        clf.gamma_ = gamma
        clf.kernel_ = kernel
        clf.n_features_in_ = int(scale.shape[0])
        return clf

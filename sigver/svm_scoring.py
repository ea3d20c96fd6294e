"""Scoring a fitted writer-dependent SVM from its plain arrays, with numpy only.

Verification needs only the decision function of an enrolled user's SVM, which
is a kernel sum over the support vectors. Keeping it here, free of
scikit-learn, lets a cold ``sigver verify`` skip scikit-learn's ~1 s import;
:class:`sigver.classifier.WriterDependentClassifier` (which fits with libsvm)
computes its decision values with the same :func:`svm_decision`, so both give
bit-identical scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sigver.errors import ModelError

__all__ = ["ARRAY_KEYS", "KERNELS", "SVMScorer", "kernel_matrix", "svm_decision"]

#: Kernels the writer-dependent SVM supports.
KERNELS = ("rbf", "linear")

#: Keys of :meth:`WriterDependentClassifier.to_arrays`.
ARRAY_KEYS = (
    "scale",
    "support_vectors",
    "dual_coef",
    "intercept",
    "gamma",
    "kernel",
    "classes",
)


def kernel_matrix(a: np.ndarray, b: np.ndarray, kernel: str, gamma: float) -> np.ndarray:
    """Kernel between the rows of ``a`` and ``b`` (float64).

    The RBF kernel is evaluated as ``exp(-gamma * (|a|^2 + |b|^2 - 2 a.b))``,
    the same expansion libsvm uses, so values match libsvm's to rounding.

    Parameters
    ----------
    a : ndarray, shape (n, d)
    b : ndarray, shape (m, d)
    kernel : {"rbf", "linear"}
    gamma : float
        RBF width (ignored for the linear kernel).

    Returns
    -------
    ndarray, shape (n, m)
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    k = a @ b.T
    if kernel == "linear":
        return k
    sq_a = np.einsum("ij,ij->i", a, a)
    sq_b = np.einsum("ij,ij->i", b, b)
    k *= -2.0
    k += sq_a[:, None]
    k += sq_b[None, :]
    # Rounding can make a distance slightly negative; a kernel value above 1 is meaningless.
    np.maximum(k, 0.0, out=k)
    k *= -gamma
    np.exp(k, out=k)
    return k


def svm_decision(
    x_scaled: np.ndarray,
    support_vectors: np.ndarray,
    dual_coef: np.ndarray,
    intercept: float,
    kernel: str,
    gamma: float,
) -> np.ndarray:
    """Decision value ``sum_i dual_coef_i K(x, sv_i) + intercept`` of a binary SVM.

    Parameters
    ----------
    x_scaled : ndarray, shape (n, d)
        Samples, already scaled like the support vectors.
    support_vectors : ndarray, shape (n_sv, d)
    dual_coef : ndarray, shape (n_sv,)
        Signed dual coefficients (sklearn's ``dual_coef_[0]``: positive for
        the positive class).
    intercept : float
    kernel : {"rbf", "linear"}
    gamma : float

    Returns
    -------
    ndarray, shape (n,)
        Positive values vote for the positive (genuine) class.
    """
    if support_vectors.shape[0] == 0:
        return np.full(x_scaled.shape[0], float(intercept))
    return kernel_matrix(x_scaled, support_vectors, kernel, gamma) @ dual_coef + float(intercept)


@dataclass(frozen=True)
class SVMScorer:
    """The decision function of a fitted writer-dependent SVM (read-only).

    Built from :meth:`sigver.classifier.WriterDependentClassifier.to_arrays`
    output; :meth:`decision_function` equals the classifier's bit for bit.
    """

    scale: np.ndarray
    support_vectors: np.ndarray
    dual_coef: np.ndarray
    intercept: float
    kernel: str
    gamma: float
    classes: np.ndarray

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any]) -> SVMScorer:
        """Validate and wrap classifier arrays.

        Raises
        ------
        ModelError
            If arrays are missing or inconsistent.
        """
        missing = [k for k in ARRAY_KEYS if k not in arrays]
        if missing:
            raise ModelError(f"classifier arrays lack {', '.join(missing)}")
        kernel = str(np.asarray(arrays["kernel"]).reshape(()))
        if kernel not in KERNELS:
            raise ModelError(f"unknown kernel {kernel!r} in classifier arrays")
        scale = np.asarray(arrays["scale"], dtype=np.float64)
        sv = np.asarray(arrays["support_vectors"], dtype=np.float64)
        dual = np.asarray(arrays["dual_coef"], dtype=np.float64).reshape(-1)
        classes = np.asarray(arrays["classes"])
        if scale.ndim != 1 or sv.ndim != 2 or sv.shape[1] != scale.shape[0]:
            raise ModelError(
                f"classifier arrays disagree: scale {scale.shape}, support vectors {sv.shape}"
            )
        if dual.shape[0] != sv.shape[0] or classes.shape != (2,):
            raise ModelError("classifier arrays disagree: dual_coef / support vectors / classes")
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise ModelError("classifier scale must be finite and positive")
        try:
            gamma = float(np.asarray(arrays["gamma"]).reshape(()))
            C = float(np.asarray(arrays.get("C", 1.0)).reshape(()))
            intercept = float(np.asarray(arrays["intercept"]).reshape(()))
        except (TypeError, ValueError) as exc:
            raise ModelError(f"classifier scalars are malformed: {exc}") from exc
        # A non-finite coefficient (say an intercept of +inf) would accept or
        # reject everything; refuse it rather than score with it.
        if not all(np.all(np.isfinite(a)) for a in (sv, dual)) or not all(
            np.isfinite(v) for v in (gamma, C, intercept)
        ):
            raise ModelError("classifier arrays contain non-finite values")
        if gamma <= 0:
            raise ModelError(f"classifier gamma must be positive, got {gamma}")
        return cls(
            scale=scale,
            support_vectors=sv,
            dual_coef=dual,
            intercept=intercept,
            kernel=kernel,
            gamma=gamma,
            classes=classes,
        )

    @property
    def n_features_in_(self) -> int:
        """Feature dimension the SVM was fitted on."""
        return int(self.scale.shape[0])

    def decision_function(self, X: Any) -> np.ndarray:
        """Decision values (positive means genuine) of ``X`` (n, d).

        Raises
        ------
        ModelError
            If ``X`` does not have the fitted feature dimension or is not finite.
        """
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.scale.shape[0]:
            raise ModelError(
                f"expected features of shape (n, {self.scale.shape[0]}), got {x.shape}"
            )
        if not np.all(np.isfinite(x)):
            raise ModelError("features contain NaN or infinity")
        return svm_decision(
            x / self.scale,
            self.support_vectors,
            self.dual_coef,
            self.intercept,
            self.kernel,
            self.gamma,
        )

"""Per-user score normalisation that needs no forgeries.

A writer-dependent SVM's decision values live on a scale of their own: one
user's genuine signatures score around 0.8, another's around 0.2, so a single
global threshold means different error rates for different users (and for
different populations). The normalisers below map each user's raw score
``s`` to ``(s - loc_u) / scale_u`` with per-user statistics estimated at
enrollment from data every deployment has — the user's own references and
signatures of *other* writers — never from the user's forgeries:

``"none"``
    ``loc = 0, scale = 1`` (raw SVM decision values).
``"cohort-znorm"``
    Z-norm against an impostor cohort: ``loc, scale`` = mean and standard
    deviation of the scores the user's classifier gives to a held-out cohort
    of other writers' genuine signatures (not used to train it). A normalised
    score says "how many impostor standard deviations above the typical
    impostor".
``"loo-znorm"``
    Statistics of the user's own references by leave-one-out: each reference
    is scored by the classifier trained without it; ``loc, scale`` = mean and
    standard deviation of those scores. A global threshold ``t`` on this
    scale is the user-specific threshold ``loc_u + t * scale_u`` on raw scores
    estimated from genuine-only data.
``"two-point"``
    ``loc`` = cohort mean, ``scale`` = LOO genuine mean - cohort mean: the
    typical impostor maps to 0 and the typical genuine to 1 for every user.
``"loo-lcb=K"`` (``"loo-lcb"``: K = 1)
    A lower confidence bound of the user's genuine scores: ``loc`` = mean -
    K standard deviations of the LOO reference scores, ``scale = 1``. A global
    threshold ``t`` is the user-specific raw threshold ``loc_u + t``: users
    whose own signatures vary more, or score lower, get a lower threshold.

Every normaliser is a strictly increasing affine map per user, so per-user
rankings (and hence per-user ROC curves, AUCs and user-threshold EERs) are
unchanged, while the pooled global-threshold EER and the transfer of one
threshold between users and populations change. The normalised scores of
``cohort-znorm``, ``loo-znorm`` and ``two-point`` are invariant to a positive
affine change ``a * s + b`` of the raw scores, those of ``loo-lcb`` to a shift
``s + b`` (tests check this). Which method
is the product default is chosen by experiment
(``scripts/threshold_transfer.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sigver.errors import SigverError

__all__ = [
    "FAMILIES",
    "METHODS",
    "family",
    "parse_method",
    "NEEDS_COHORT",
    "NEEDS_LOO",
    "NormalizationError",
    "ScoreNormalizer",
    "fit_normalizer",
]

#: Normalisation families (``loo-lcb`` takes ``=K``).
FAMILIES = ("none", "cohort-znorm", "loo-znorm", "two-point", "loo-lcb")
#: The candidates the research script compares, in the order reports list them.
METHODS = (
    "none",
    "cohort-znorm",
    "loo-znorm",
    "two-point",
    "loo-lcb=0",
    "loo-lcb=0.5",
    "loo-lcb=1",
    "loo-lcb=1.5",
    "loo-lcb=2",
)
#: Families that need scores of a held-out impostor cohort.
NEEDS_COHORT = frozenset({"cohort-znorm", "two-point"})
#: Families that need leave-one-out scores of the user's references.
NEEDS_LOO = frozenset({"loo-znorm", "two-point", "loo-lcb"})

#: Smallest scale allowed, relative to the raw score unit: a degenerate
#: cohort or reference set (all scores equal) must not divide by zero.
MIN_SCALE = 1e-3


class NormalizationError(SigverError, ValueError):
    """Unknown method, or statistics missing / unusable for it."""


def parse_method(method: str) -> tuple[str, float | None]:
    """Family and parameter of a method name (``"loo-lcb=0.5"`` -> ``("loo-lcb", 0.5)``).

    Raises
    ------
    NormalizationError
        Unknown family or invalid parameter.
    """
    text = str(method).strip().lower()
    family, _, arg = text.partition("=")
    if family not in FAMILIES or (arg and family != "loo-lcb"):
        raise NormalizationError(
            f"unknown score normalisation {method!r}; choose one of {', '.join(FAMILIES)} "
            "(loo-lcb=K with K >= 0 standard deviations)"
        )
    if family != "loo-lcb":
        return family, None
    try:
        k = float(arg) if arg else 1.0
    except ValueError:
        raise NormalizationError(f"invalid K in {method!r}") from None
    if not (math.isfinite(k) and k >= 0):
        raise NormalizationError(f"K of {method!r} must be a finite number >= 0")
    return family, k


def family(method: str) -> str:
    """The family of a method name (``"loo-lcb=0.5"`` -> ``"loo-lcb"``)."""
    return parse_method(method)[0]


def _check_method(method: str) -> str:
    parse_method(method)
    return method


@dataclass(frozen=True)
class ScoreNormalizer:
    """A per-user increasing affine map ``s -> (s - loc) / scale``.

    Attributes
    ----------
    method : str
        One of :data:`METHODS`.
    loc : float
    scale : float
        Strictly positive.
    """

    method: str = "none"
    loc: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        _check_method(self.method)
        if not (math.isfinite(self.loc) and math.isfinite(self.scale) and self.scale > 0):
            raise NormalizationError(
                f"normaliser needs a finite loc and a positive scale, got {self.loc}, {self.scale}"
            )

    def transform(self, scores: Any) -> np.ndarray:
        """Normalised scores (same shape as ``scores``)."""
        return (np.asarray(scores, dtype=np.float64) - self.loc) / self.scale

    def inverse(self, normalized: Any) -> np.ndarray:
        """Raw scores whose normalised value is ``normalized`` (e.g. a user's raw threshold)."""
        return np.asarray(normalized, dtype=np.float64) * self.scale + self.loc

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored with the user's classifier parameters)."""
        return {"method": self.method, "loc": float(self.loc), "scale": float(self.scale)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ScoreNormalizer:
        """Inverse of :meth:`to_dict`; ``None`` (a user enrolled before normalisation) = none."""
        if not data:
            return cls()
        try:
            return cls(str(data["method"]), float(data["loc"]), float(data["scale"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise NormalizationError(f"invalid stored normaliser {dict(data)!r}") from exc


def _mean_std(values: np.ndarray | None, what: str, method: str) -> tuple[float, float]:
    v = None if values is None else np.asarray(values, dtype=np.float64).reshape(-1)
    if v is None or v.size < 2:
        raise NormalizationError(f"{method} needs at least 2 {what} scores")
    return float(v.mean()), float(v.std(ddof=1))


def fit_normalizer(
    method: str,
    *,
    loo_genuine: np.ndarray | None = None,
    cohort: np.ndarray | None = None,
) -> ScoreNormalizer:
    """Per-user normaliser from genuine-only statistics.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    loo_genuine : ndarray, optional
        Leave-one-out scores of the user's references (methods in :data:`NEEDS_LOO`).
    cohort : ndarray, optional
        Scores of held-out impostors (methods in :data:`NEEDS_COHORT`).

    Returns
    -------
    ScoreNormalizer

    Raises
    ------
    NormalizationError
        Unknown method or missing statistics.

    Examples
    --------
    >>> fit_normalizer("cohort-znorm", cohort=np.array([-1.0, -2.0, -3.0])).transform(0.0)
    array(2.)
    """
    kind, k = parse_method(method)
    if kind == "none":
        return ScoreNormalizer()
    if kind == "loo-lcb":
        mean, std = _mean_std(loo_genuine, "leave-one-out reference", method)
        return ScoreNormalizer(method, mean - float(k) * std, 1.0)  # type: ignore[arg-type]
    if kind == "cohort-znorm":
        loc, scale = _mean_std(cohort, "cohort", method)
        # The floor is relative to the spread of the raw scores, so the affine invariance
        # holds except for degenerate (constant) cohorts.
        return ScoreNormalizer(method, loc, max(scale, MIN_SCALE * max(abs(loc), 1e-12)))
    if kind == "loo-znorm":
        loc, scale = _mean_std(loo_genuine, "leave-one-out reference", method)
        return ScoreNormalizer(method, loc, max(scale, MIN_SCALE * max(abs(loc), 1e-12)))
    mu_c, _ = _mean_std(cohort, "cohort", method)
    mu_g, _ = _mean_std(loo_genuine, "leave-one-out reference", method)
    spread = mu_g - mu_c
    if not spread > 0:
        # References that score no better than impostors: keep the direction, not a flip.
        spread = MIN_SCALE * max(abs(mu_c), abs(mu_g), 1e-12)
    return ScoreNormalizer(method, mu_c, spread)

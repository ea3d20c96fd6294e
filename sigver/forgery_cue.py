"""A writer-independent forgery cue added to the per-user score (issue 10).

Each user's classifier only knows that user's genuine signatures and other writers'
signatures, so it cannot tell where that user's skilled forgeries will fall: that is
the gap between one global threshold and per-user thresholds. Skilled forgeries of
*development* writers, never needed at enrollment, do show a direction of the frozen
feature space along which forgeries of new writers also lie (a linear probe fitted
on SigComp2011 writers 001-021 separates the skilled forgeries of writers 022-037
with AUC 0.87; see ``scripts/forgery_realism.py``). The cue is that probe:

    z(x) = (w_lr . standardise(x) + b_lr) / z_scale,    score = s_user(x) - weight * z(x)

with ``s_user`` the user's normalised score and ``z_scale`` the standard deviation of
the probe's decision values on the images it was fitted on. It is a property of the
model (stored with its calibration), not of a user: enrollment is unchanged, and
verification subtracts ``weight * z`` from every normalised score. The operating
points of a model with a cue are calibrated on the fused scores, with the cue of each
calibration writer fitted without that writer (:func:`cross_fitted_penalty`), so
that calibrated rates are not in-sample.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from sigver.errors import SigverError

__all__ = [
    "DEFAULT_C",
    "ForgeryCue",
    "ForgeryCueError",
    "carries_cue",
    "cross_fitted_penalty",
    "fit_forgery_cue",
    "on_by_default",
    "switch_on",
]

#: Inverse regularisation of the logistic probe: strong, a few hundred images against
#: ~1000 dimensions (the value of the experiment that chose the weight).
DEFAULT_C = 0.01


class ForgeryCueError(SigverError, ValueError):
    """A forgery cue that cannot be fitted, or a stored one that is malformed."""


@dataclass(frozen=True)
class ForgeryCue:
    """A fitted writer-independent forgery cue (see the module docstring).

    Attributes
    ----------
    mean, scale : ndarray (d,)
        Feature standardisation (``scale`` strictly positive).
    coef : ndarray (d,)
        Logistic-regression weights on standardised features (forgery positive).
    intercept : float
    z_scale : float
        Standard deviation of the decision values on the fitting images.
    weight : float
        How many units of normalised score one unit of ``z`` costs (>= 0).
    users : tuple of str
        Writers it was fitted on.
    n_genuine, n_forgeries : int
        Images it was fitted on.
    centred : bool
        Centre each user's ``z`` on the mean ``z`` of their own references (recorded
        at enrollment): ``s - weight * (z - mean_refs z)``. This removes a shift of
        ``z`` that a new scanner or population applies to every image.
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    z_scale: float
    weight: float
    users: tuple[str, ...] = ()
    n_genuine: int = 0
    n_forgeries: int = 0
    centred: bool = False

    def __post_init__(self) -> None:
        arrays = [np.asarray(a, dtype=np.float64) for a in (self.mean, self.scale, self.coef)]
        if any(a.ndim != 1 for a in arrays) or len({a.size for a in arrays}) != 1:
            raise ForgeryCueError("forgery cue: mean, scale and coef must be vectors of one size")
        if not all(np.all(np.isfinite(a)) for a in arrays) or not np.all(arrays[1] > 0):
            raise ForgeryCueError("forgery cue: non-finite values or a non-positive scale")
        for name in ("intercept", "z_scale", "weight"):
            if not math.isfinite(float(getattr(self, name))):
                raise ForgeryCueError(f"forgery cue: {name} is not finite")
        if self.z_scale <= 0 or self.weight < 0:
            raise ForgeryCueError("forgery cue: z_scale must be positive and weight >= 0")
        for name, a in zip(("mean", "scale", "coef"), arrays, strict=True):
            object.__setattr__(self, name, a)

    @property
    def dim(self) -> int:
        """Feature dimension."""
        return int(self.coef.size)

    def z(self, features: Any) -> np.ndarray:
        """Standardised forgery evidence of each row of ``features`` (n, d)."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ForgeryCueError(
                f"forgery cue expects {self.dim} features per image, got shape {x.shape}"
            )
        return (((x - self.mean) / self.scale) @ self.coef + self.intercept) / self.z_scale

    def penalty(self, features: Any, ref_mean_z: float | None = None) -> np.ndarray:
        """What is subtracted from each image's normalised score.

        ``weight * z``; for a centred cue ``weight * (z - ref_mean_z)``, where
        ``ref_mean_z`` is the mean :meth:`z` of the user's references.
        """
        z = self.z(features)
        if self.centred:
            if ref_mean_z is None or not math.isfinite(ref_mean_z):
                raise ForgeryCueError("a centred forgery cue needs the user's reference mean z")
            z = z - ref_mean_z
        return self.weight * z

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored in the model's calibration)."""
        return {
            "method": "logistic probe on standardised features, genuine vs skilled forgery",
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": float(self.intercept),
            "z_scale": float(self.z_scale),
            "weight": float(self.weight),
            "users": list(self.users),
            "n_genuine": int(self.n_genuine),
            "n_forgeries": int(self.n_forgeries),
            "centred": bool(self.centred),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ForgeryCue | None:
        """Inverse of :meth:`to_dict`; ``None`` or ``{}`` (no cue) gives ``None``.

        Raises
        ------
        ForgeryCueError
            A malformed stored cue.
        """
        if not data:
            return None
        try:
            return cls(
                mean=np.asarray(data["mean"], dtype=np.float64),
                scale=np.asarray(data["scale"], dtype=np.float64),
                coef=np.asarray(data["coef"], dtype=np.float64),
                intercept=float(data["intercept"]),
                z_scale=float(data["z_scale"]),
                weight=float(data["weight"]),
                users=tuple(str(u) for u in data.get("users", ())),
                n_genuine=int(data.get("n_genuine", 0)),
                n_forgeries=int(data.get("n_forgeries", 0)),
                centred=bool(data.get("centred", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ForgeryCueError):
                raise
            raise ForgeryCueError(f"stored forgery cue is malformed: {exc}") from exc


def switch_on(
    calibration: Mapping[str, Any] | None, model: str
) -> tuple[ForgeryCue, dict[str, Any]]:
    """The stored cue of a model's calibration, and the calibration to decide with it on.

    The second value is ``calibration`` with its thresholds, rates, curve and LLR map
    replaced by those of the fused score, which is what "cue on" means everywhere
    (``Verifier(forgery_cue=True)``, ``sigver evaluate --forgery-cue``).

    Raises
    ------
    ForgeryCueError
        The model (named ``model`` in the message) carries no cue, or a malformed one.
    """
    if not carries_cue(calibration):
        raise ForgeryCueError(
            f"model {model} carries no forgery cue; calibrate one with "
            "`sigver calibrate --forgery-weight W` or switch the cue off"
        )
    stored = (calibration or {})["forgery_cue"]
    cue = cast(ForgeryCue, ForgeryCue.from_dict(stored))  # not None: ``stored`` is not empty
    return cue, {**(calibration or {}), **stored["calibration"]}


def carries_cue(calibration: Mapping[str, Any] | None) -> bool:
    """Whether a model's calibration holds a forgery cue with its fused operating points."""
    stored = (calibration or {}).get("forgery_cue") or {}
    return bool(stored.get("calibration"))


def on_by_default(calibration: Mapping[str, Any] | None) -> bool:
    """Whether a model's calibration declares its forgery cue on by default.

    ``sigver calibrate --forgery-cue-default`` sets it; operators still switch the cue
    off with ``--no-forgery-cue``, ``Verifier(forgery_cue=False)`` or
    ``$SIGVER_FORGERY_CUE=0``.
    """
    stored = (calibration or {}).get("forgery_cue") or {}
    return bool(stored.get("on_by_default")) and carries_cue(calibration)


def fit_forgery_cue(
    features: Any,
    forgeries: Any,
    *,
    weight: float,
    C: float = DEFAULT_C,
    users: Sequence[str] = (),
    centred: bool = False,
) -> ForgeryCue:
    """Fit the cue on genuine signatures and skilled forgeries of development writers.

    Parameters
    ----------
    features : ndarray (n, d)
    forgeries : ndarray (n,)
        True (or 1) for a skilled forgery, False (0) for a genuine signature.
    weight : float
        The cue's weight in the fused score (>= 0).
    C : float
        Inverse regularisation of the logistic regression.
    users : sequence of str
        Writers of ``features`` (recorded).
    centred : bool
        See :class:`ForgeryCue`.

    Returns
    -------
    ForgeryCue

    Raises
    ------
    ForgeryCueError
        Missing class, bad shapes or parameters.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(forgeries).astype(bool).reshape(-1)
    if x.ndim != 2 or len(x) != len(y):
        raise ForgeryCueError(f"features {x.shape} and labels {y.shape} do not match")
    if y.all() or not y.any():
        raise ForgeryCueError("fitting a forgery cue needs genuine signatures and forgeries")
    if not (math.isfinite(weight) and weight >= 0) or not (math.isfinite(C) and C > 0):
        raise ForgeryCueError(f"weight must be >= 0 and C > 0, got {weight}, {C}")
    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    xs = (x - scaler.mean_) / scale
    lr = LogisticRegression(C=C, max_iter=2000).fit(xs, y.astype(int))
    raw = xs @ lr.coef_[0] + lr.intercept_[0]
    z_scale = float(np.std(raw))
    if not z_scale > 0:
        raise ForgeryCueError("the fitted probe gives one value for every image")
    return ForgeryCue(
        mean=scaler.mean_,
        scale=scale,
        coef=lr.coef_[0],
        intercept=float(lr.intercept_[0]),
        z_scale=z_scale,
        weight=float(weight),
        users=tuple(str(u) for u in users),
        n_genuine=int(np.count_nonzero(~y)),
        n_forgeries=int(np.count_nonzero(y)),
        centred=bool(centred),
    )


def cross_fitted_penalty(
    features: Any,
    forgeries: Any,
    writers: Any,
    *,
    weight: float,
    C: float = DEFAULT_C,
    groups: int = 2,
) -> np.ndarray:
    """Each image's (uncentred) penalty ``weight * z`` from a cue fitted without its writer's group.

    Writers are split, in sorted order, into ``groups`` contiguous groups; the images
    of each group get the penalty of a cue fitted on the other groups. Calibrating
    operating points on these penalties measures the cue as it acts on new writers.

    Returns
    -------
    ndarray (n,)
    """
    w = np.asarray(writers).astype(str)
    names = sorted(set(w.tolist()))
    if len(names) < groups or groups < 2:
        raise ForgeryCueError(f"cross-fitting needs at least {max(groups, 2)} writers")
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(forgeries).astype(bool).reshape(-1)
    out = np.zeros(len(x), dtype=np.float64)
    for part in np.array_split(np.array(names), groups):
        inside = np.isin(w, part)
        cue = fit_forgery_cue(x[~inside], y[~inside], weight=weight, C=C)
        out[inside] = cue.weight * cue.z(x[inside])
    return out

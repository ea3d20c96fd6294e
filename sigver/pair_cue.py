"""A writer-independent *pairwise* forgery cue: the dichotomy transform (issues 9, 10).

:mod:`sigver.forgery_cue` reads forgery evidence off a questioned image alone. What a
per-user threshold knows and one global threshold does not is where *this user's*
forgeries fall relative to *this user's* genuine signatures. The pair cue measures that
relation with one writer-independent classifier on feature differences: a logistic
regression on ``|phi(q) - phi(r)|`` of a questioned image and one reference, fitted on
development writers' genuine-genuine pairs (0) against genuine-skilled-forgery pairs of
the same writer (1). Folded into one weight vector,

    z(q, r) = |q - r| . v + b0,     p(q) = mean over the user's references r of z(q, r)

in units of the decision values' standard deviation on the fitting pairs. Centred on the
user's references against each other, ``p(q) - p_refs``, or as it is (``centred=False``:
its zero is the fitted boundary between genuine and forged pairs), it needs no forgery of the
enrolled user, only the reference features the store keeps.

``scripts/pair_cue.py`` measures it with rules stated before each run (README, "A
pairwise cue"). In the product it is part of the model's forgery cue: calibration
fits it (:func:`sigver.calibration.calibrate_deployment` ``pair_weight``, each
calibration writer scored by a classifier fitted without them,
:func:`cross_fitted_pair_cues`) and stores it in the cue's block (``"pair"``); with
the cue switched on, ``Verifier.verify`` and ``sigver evaluate --negatives model``
subtract it too (:func:`stored_pair_cue`,
:meth:`sigver.evaluation.DeploymentRun.with_pair_cue`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sigver.errors import SigverError

__all__ = [
    "DEFAULT_C",
    "PairCue",
    "PairCueError",
    "PairRows",
    "cross_fitted_pair_cues",
    "fit_pair_cue",
    "pair_indices",
    "stored_pair_cue",
]

#: Inverse regularisation of the logistic regression (the experiment's value).
DEFAULT_C = 0.01


class PairCueError(SigverError, ValueError):
    """A pair cue that cannot be fitted or applied, or a stored one that is malformed."""


@dataclass(frozen=True)
class PairCue:
    """A fitted pair classifier (see the module docstring).

    Attributes
    ----------
    v : ndarray (d,)
        Weights on the absolute feature difference, standardisation folded in.
    b0 : float
        Offset, standardisation folded in.
    weight : float
        How many units of normalised score one unit of the penalty costs (>= 0).
    users : tuple of str
        Writers it was fitted on.
    n_pairs : int
        Pairs it was fitted on.
    extra : dict
        What further writers' pairs joined the fit (``{}``: none), e.g.
        ``{"writers": 96, "source": "synthetic v2, training styles, seed 5"}``.
    centred : bool
        Subtract ``weight * (p - p_refs)`` (True, every cue stored before the flag
        existed) or ``weight * p`` (False).
    """

    v: np.ndarray
    b0: float
    weight: float = 1.0
    users: tuple[str, ...] = ()
    n_pairs: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)
    centred: bool = True

    def __post_init__(self) -> None:
        v = np.asarray(self.v, dtype=np.float64)
        if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
            raise PairCueError("pair cue: v must be a non-empty finite vector")
        if not math.isfinite(float(self.b0)):
            raise PairCueError("pair cue: b0 is not finite")
        if not (math.isfinite(float(self.weight)) and self.weight >= 0):
            raise PairCueError("pair cue: weight must be finite and >= 0")
        if not isinstance(self.centred, bool):
            # bool("false") is True: a hand-edited flag must not flip the decision.
            raise PairCueError(f"pair cue: centred must be true or false, not {self.centred!r}")
        object.__setattr__(self, "v", v)

    @property
    def dim(self) -> int:
        """Feature dimension."""
        return int(self.v.size)

    def _check(self, x: Any, name: str) -> np.ndarray:
        a = np.asarray(x, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != self.dim:
            raise PairCueError(f"pair cue expects {self.dim} features per {name}, got {a.shape}")
        return a

    def z(self, a: Any, b: Any) -> np.ndarray:
        """``z`` of every row of ``a`` against every row of ``b``, shape ``(len(a), len(b))``."""
        a, b = self._check(a, "image"), self._check(b, "reference")
        out = np.empty((len(a), len(b)))
        # One reference at a time: (n, d) temporaries instead of (n, m, d).
        for j, r in enumerate(b):
            out[:, j] = np.abs(a - r) @ self.v
        return out + self.b0

    def penalty(self, q: Any, refs: Any) -> np.ndarray:
        """Mean ``z`` of each questioned row against the references, shape ``(len(q),)``."""
        q = self._check(q, "image")
        if len(np.asarray(refs)) == 0:
            raise PairCueError("the pair cue needs at least one reference")
        return self.z(q, refs).mean(axis=1) if len(q) else np.zeros(0)

    def ref_mean(self, refs: Any) -> float:
        """Mean ``z`` of the references against each other (genuine-genuine pairs)."""
        m = self.z(refs, refs)
        if len(m) < 2:
            raise PairCueError("centring the pair cue needs at least two references")
        return float(m[~np.eye(len(m), dtype=bool)].mean())

    def centred_penalty(self, q: Any, refs: Any) -> np.ndarray:
        """``weight * (p - p_refs)``, whatever :attr:`centred` says."""
        return self.weight * (self.penalty(q, refs) - self.ref_mean(refs))

    def applied_penalty(self, q: Any, refs: Any) -> np.ndarray:
        """What the cue subtracts from each normalised score.

        ``weight * (p - p_refs)`` for a centred cue (:meth:`centred_penalty`), else
        ``weight * p`` (one reference is then enough).
        """
        if self.centred:
            return self.centred_penalty(q, refs)
        return self.weight * self.penalty(q, refs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "method": "logistic regression on |phi(q) - phi(r)|, genuine vs skilled pairs",
            "v": self.v.tolist(),
            "b0": float(self.b0),
            "weight": float(self.weight),
            "users": list(self.users),
            "n_pairs": int(self.n_pairs),
            "extra": dict(self.extra),
            "centred": bool(self.centred),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PairCue | None:
        """Inverse of :meth:`to_dict`; ``None`` or ``{}`` gives ``None``.

        Raises
        ------
        PairCueError
            A malformed stored cue.
        """
        if not data:
            return None
        try:
            return cls(
                v=np.asarray(data["v"], dtype=np.float64),
                b0=float(data["b0"]),
                weight=float(data.get("weight", 1.0)),
                users=tuple(str(u) for u in data.get("users", ())),
                n_pairs=int(data.get("n_pairs", 0)),
                extra=dict(data.get("extra") or {}),
                # Cues stored before the flag existed were all centred.
                centred=data.get("centred", True),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, PairCueError):
                raise
            raise PairCueError(f"stored pair cue is malformed: {exc}") from exc


def pair_indices(writers: Any, forged: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training pairs of each writer: genuine-genuine (label 0), genuine-skilled (label 1).

    Parameters
    ----------
    writers : array (n,)
        Writer of each row.
    forged : array (n,) of bool
        True for a skilled forgery.

    Returns
    -------
    ia, ib, labels : ndarray
        Row indices of both members of every pair (``ia`` always genuine) and its label.
    """
    writers, forged = np.asarray(writers), np.asarray(forged, dtype=bool)
    if writers.shape != forged.shape or writers.ndim != 1:
        raise PairCueError(f"writers {writers.shape} and labels {forged.shape} do not match")
    ia, ib, lab = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)], [np.zeros(0, int)]
    for w in np.unique(writers):
        g = np.flatnonzero((writers == w) & ~forged)
        s = np.flatnonzero((writers == w) & forged)
        iu, ju = np.triu_indices(len(g), k=1)
        gg, ss = np.meshgrid(g, s, indexing="ij")
        ia += [g[iu], gg.ravel()]
        ib += [g[ju], ss.ravel()]
        lab += [np.zeros(len(iu), dtype=int), np.ones(gg.size, dtype=int)]
    return np.concatenate(ia), np.concatenate(ib), np.concatenate(lab)


@dataclass(frozen=True)
class PairRows:
    """Further writers whose genuine / skilled pairs join every fit of a pair classifier.

    Attributes
    ----------
    features : ndarray (n, d)
    writers : array (n,)
        Writer of each row (kept apart from the main rows' writers).
    forged : array (n,) of bool
        True for a skilled forgery.
    description : dict
        Recorded with the fitted cue (:attr:`PairCue.extra`).
    """

    features: np.ndarray
    writers: np.ndarray
    forged: np.ndarray
    description: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_featureset(cls, fs: Any, description: Mapping[str, Any] | None = None) -> PairRows:
        """Genuine signatures and skilled forgeries of a :class:`~sigver.featureset.FeatureSet`."""
        keep = np.asarray(fs.yforg) < 2
        if not np.any(np.asarray(fs.yforg)[keep] == 1):
            raise PairCueError("the extra pair writers have no skilled forgeries")
        writers = np.asarray(fs.user_ids).astype(str)[np.asarray(fs.y)]
        return cls(
            features=np.asarray(fs.features, dtype=np.float64)[keep],
            writers=writers[keep],
            forged=np.asarray(fs.yforg)[keep] == 1,
            description={"writers": int(np.unique(writers[keep]).size), **(description or {})},
        )


def fit_pair_cue(
    features: Any,
    writers: Any,
    forged: Any,
    *,
    weight: float = 1.0,
    C: float = DEFAULT_C,
    users: Sequence[str] = (),
    extra: PairRows | None = None,
    centred: bool = True,
) -> PairCue:
    """Fit the pair classifier on development writers' genuine signatures and forgeries.

    Parameters
    ----------
    features : ndarray (n, d)
    writers : array (n,)
        Writer of each row; pairs never cross writers.
    forged : array (n,) of bool
        True for a skilled forgery.
    weight : float
        The cue's weight in the fused score.
    C : float
        Inverse regularisation of the (class-balanced) logistic regression.
    users : sequence of str
        Recorded with the cue.
    extra : PairRows, optional
        Further writers whose pairs join the fit (e.g. synthetic writers, so that one
        real collection does not teach it its own habits).
    centred : bool
        Whether the cue is applied centred on the user's references
        (:meth:`PairCue.applied_penalty`); recorded with it, the fit does not change.

    Raises
    ------
    PairCueError
        No pair of one kind, bad shapes or parameters.
    """
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(features, dtype=np.float64)
    writers = np.asarray(writers)
    if x.ndim != 2 or len(x) != len(writers):
        raise PairCueError(f"features {x.shape} do not match {len(writers)} writers")
    if not (math.isfinite(C) and C > 0):
        raise PairCueError(f"C must be > 0, got {C}")
    forged = np.asarray(forged, dtype=bool)
    if extra is not None:
        ex = np.asarray(extra.features, dtype=np.float64)
        if ex.ndim != 2 or ex.shape[1] != x.shape[1]:
            raise PairCueError(f"extra pair features {ex.shape} do not match {x.shape}")
        # Prefixed: an extra writer never pairs with a main writer of the same name.
        x = np.concatenate([x, ex])
        writers = np.concatenate(
            [writers.astype(str), np.char.add("extra/", np.asarray(extra.writers).astype(str))]
        )
        forged = np.concatenate([forged, np.asarray(extra.forged, dtype=bool)])
    ia, ib, y = pair_indices(writers, forged)
    if np.unique(y).size != 2:
        raise PairCueError("pairs of both kinds are needed (genuine signatures and forgeries)")
    d = np.abs(x[ia] - x[ib])
    mean, scale = d.mean(axis=0), d.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    ds = (d - mean) / scale
    lr = LogisticRegression(C=C, max_iter=3000, class_weight="balanced").fit(ds, y)
    raw = ds @ lr.coef_[0] + lr.intercept_[0]
    sd = float(np.std(raw))
    if not sd > 0:
        raise PairCueError("the fitted pair classifier gives one value for every pair")
    coef = lr.coef_[0] / scale
    return PairCue(
        v=coef / sd,
        b0=float((lr.intercept_[0] - mean @ coef) / sd),
        weight=float(weight),
        users=tuple(str(u) for u in users),
        n_pairs=int(len(y)),
        extra=dict(extra.description) if extra is not None else {},
        centred=bool(centred),
    )


def cross_fitted_pair_cues(
    features: Any,
    writers: Any,
    forged: Any,
    *,
    weight: float,
    C: float = DEFAULT_C,
    extra: PairRows | None = None,
    groups: int = 2,
    centred: bool = True,
) -> dict[str, PairCue]:
    """For each writer, a pair cue fitted without that writer's group.

    Writers are split, in sorted order, into ``groups`` contiguous groups (as
    :func:`sigver.forgery_cue.cross_fitted_penalty` splits them); each group's writers
    get the classifier fitted on the other groups (plus ``extra`` in every fit).
    Calibrating on these measures the cue as it acts on writers it never saw.

    Returns
    -------
    dict
        Writer name -> :class:`PairCue`.
    """
    w = np.asarray(writers).astype(str)
    names = sorted(set(w.tolist()))
    if groups < 2 or len(names) < groups:
        raise PairCueError(f"cross-fitting needs at least {max(groups, 2)} writers")
    out: dict[str, PairCue] = {}
    for part in np.array_split(np.array(names), groups):
        inside = np.isin(w, part)
        cue = fit_pair_cue(
            np.asarray(features)[~inside],
            w[~inside],
            np.asarray(forged)[~inside],
            weight=weight,
            C=C,
            extra=extra,
            centred=centred,
        )
        out.update({str(n): cue for n in part})
    return out


def stored_pair_cue(calibration: Mapping[str, Any] | None) -> PairCue | None:
    """The pair cue stored in a calibration's forgery cue block, or None.

    Raises
    ------
    PairCueError
        A malformed stored cue.
    """
    block = (calibration or {}).get("forgery_cue") or {}
    return PairCue.from_dict(block.get("pair"))

"""Global decision threshold of a model, calibrated on development writers.

The enrollment application accepts a questioned signature when the user's SVM
score is at least a threshold: the user's own override, else a *global
default* stored with the model (``meta.metrics["calibration"]["threshold"]``
of the checkpoint, read by :class:`enrollment.Verifier`). This module chooses
that default on **development** writers only (writers that may have been used
to train the feature extractor and that have skilled forgeries, e.g.
SigComp2011 001-037), so the exploitation writers stay untouched::

    from sigver.calibration import apply_calibration, calibrate_threshold

    cal = calibrate_threshold(dev_features, users="001-037", negatives=background)
    print(cal.summary())
    apply_calibration("models/sigver-sigresnet-v6.pt", cal)

Procedure (writer-dependent, like enrollment). For each of ``folds`` random
draws (seeds derived from ``seed`` by :func:`sigver.protocol.fold_seeds`) and
each development user ``u``:

- ``refs`` of ``u``'s genuine signatures are drawn as references (positives);
  ``u``'s remaining genuines and all of ``u``'s skilled forgeries are scored.
- negatives: the references of every *other* development user of the fold,
  plus the optional extra ``negatives`` (typically the background set shipped
  with the model, which is what enrollment trains against). Extra rows
  belonging to *any* calibration user are dropped (matched by user id, with or
  without a ``<dataset>/`` prefix, and by file name), so that a user's own
  signatures are never its negatives and the random forgeries below are never
  training samples. This is checked again on every split before training.
- random forgeries: the scored genuines of the other development users.
- the classifier is the published per-user SVM
  (``StandardScaler(with_mean=False)`` per user + RBF SVC with the
  ``#negatives / #positives`` class weight), i.e. the model enrollment fits;
  the naive engine of :func:`sigver.evaluation.score_fold` trains it.

Scores are pooled over users and folds and the threshold is chosen on the
pooled genuine vs skilled scores for the ``target``:

``"eer-skilled"``
    the global EER threshold, with exactly the definition of
    :func:`sigver.metrics.eer_threshold` (as in ``sigver evaluate``).
``"far-skilled=X"``
    the smallest threshold with ``FAR_skilled <= X`` on the development
    scores (``X`` in [0, 1], or a percentage such as ``5%``).

The figures recorded with the threshold (FRR, FAR_skilled, FAR_random, EER)
are measured on the same development scores the threshold was chosen on, so
they are a-posteriori / optimistic; the per-fold thresholds show how stable
the choice is. Rewriting a checkpoint changes its sha256, hence its model id:
users enrolled with the previous file must be re-enrolled (see
:func:`apply_calibration`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sigver import __version__
from sigver.errors import DatasetError, ModelError, SigverError
from sigver.featureset import FeatureSet
from sigver.metrics import eer_global, eer_threshold, operating_point

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_OPERATING_POINTS",
    "TARGETS",
    "Calibration",
    "CalibrationError",
    "apply_calibration",
    "calibrate_deployment",
    "calibrate_threshold",
    "calibration_curve",
    "fit_llr",
    "foreign_mask",
    "operating_points",
    "parse_operating_point",
    "plot_calibration",
    "resolve_operating_point",
    "stored_calibration",
    "parse_target",
    "threshold_for_far",
]

#: Target kinds understood by :func:`parse_target` (``far-skilled`` takes ``=X``).
TARGETS = ("eer-skilled", "far-skilled")

#: Key of the calibration block in the checkpoint's ``meta.metrics``.
METRICS_KEY = "calibration"


class CalibrationError(SigverError, ValueError):
    """The calibration cannot be computed from these data or settings."""


def parse_target(target: str) -> tuple[str, float | None]:
    """Split a target specification into its kind and value.

    Parameters
    ----------
    target : str
        ``"eer-skilled"`` or ``"far-skilled=X"`` with ``X`` a rate in [0, 1]
        (``0.05``) or a percentage (``5%``).

    Returns
    -------
    (str, float or None)
        Kind and, for ``far-skilled``, the maximal false acceptance rate.

    Raises
    ------
    CalibrationError
        For an unknown kind or an invalid rate.
    """
    text = str(target).strip().lower()
    if text == "eer-skilled":
        return "eer-skilled", None
    match = re.fullmatch(r"far-skilled\s*=\s*([0-9.eE+-]+)\s*(%?)", text)
    if match is None:
        raise CalibrationError(
            f"unknown calibration target {target!r}; use 'eer-skilled' or 'far-skilled=X' "
            "(X a rate such as 0.05 or a percentage such as 5%)"
        )
    try:
        value = float(match.group(1))
    except ValueError:
        raise CalibrationError(f"invalid rate in target {target!r}") from None
    if match.group(2):
        value /= 100.0
    if not 0.0 <= value <= 1.0:
        raise CalibrationError(f"the FAR of target {target!r} must lie in [0, 1] (or 0-100%)")
    return "far-skilled", value


def threshold_for_far(genuine: np.ndarray, skilled: np.ndarray, max_far: float) -> float:
    """Smallest threshold whose false acceptance rate on ``skilled`` is at most ``max_far``.

    With the acceptance rule ``score >= t`` (:mod:`sigver.metrics`), at most
    ``m = floor(max_far * n)`` forgeries may be accepted, so ``t`` is the
    smallest float above the ``(m + 1)``-th highest forgery score. A smaller
    threshold would accept more forgeries; any larger one rejects more
    genuines. When every forgery may be accepted, the lowest score seen.

    Parameters
    ----------
    genuine, skilled : ndarray
        Scores (``skilled`` non-empty).
    max_far : float
        In [0, 1].

    Returns
    -------
    float
    """
    s = np.sort(np.asarray(skilled, dtype=np.float64).reshape(-1))[::-1]
    if s.size == 0:
        raise CalibrationError("a FAR target needs skilled forgery scores")
    # The small epsilon keeps e.g. 0.07 * 100 = 7.000000000000001 from flooring to 7 wrongly
    # low or 6.999999 to 6.
    m = int(math.floor(max_far * s.size + 1e-9))
    if m >= s.size:
        g = np.asarray(genuine, dtype=np.float64).reshape(-1)
        return float(min(s.min(), g.min())) if g.size else float(s.min())
    return float(np.nextafter(s[m], np.inf))


def threshold_for_frr(genuine: np.ndarray, max_frr: float) -> float:
    """Largest threshold whose false rejection rate on ``genuine`` is at most ``max_frr``.

    With ``score >= t`` accepted, at most ``m = floor(max_frr * n)`` genuines may
    fall below ``t``, so ``t`` is the ``(m + 1)``-th lowest genuine score.
    """
    g = np.sort(np.asarray(genuine, dtype=np.float64).reshape(-1))
    if g.size == 0:
        raise CalibrationError("an FRR target needs genuine scores")
    m = int(math.floor(max_frr * g.size + 1e-9))
    if m >= g.size:
        return float(np.nextafter(g[-1], np.inf))
    return float(g[m])


#: Operating points computed by every calibration (``--operating-points`` adds others).
DEFAULT_OPERATING_POINTS = (
    "balanced",
    "far-skilled=1%",
    "far-skilled=5%",
    "far-skilled=10%",
    "frr=1%",
    "frr=5%",
)


def parse_operating_point(name: str) -> tuple[str, float | None]:
    """``"balanced"`` (equal FRR and FAR_skilled), ``"far-skilled=X"`` or ``"frr=X"``.

    ``X`` is a rate (``0.05``) or a percentage (``5%``). ``eer-skilled`` is
    accepted as a synonym of ``balanced``.

    Raises
    ------
    CalibrationError
    """
    text = str(name).strip().lower()
    if text in ("balanced", "eer-skilled"):
        return "balanced", None
    match = re.fullmatch(r"(far-skilled|frr)\s*=\s*([0-9.eE+-]+)\s*(%?)", text)
    if match is None:
        raise CalibrationError(
            f"unknown operating point {name!r}; use 'balanced', 'far-skilled=X' or 'frr=X' "
            "(X a rate such as 0.01 or a percentage such as 1%)"
        )
    try:
        value = float(match.group(2))
    except ValueError:
        raise CalibrationError(f"invalid rate in operating point {name!r}") from None
    if match.group(3):
        value /= 100.0
    if not 0.0 <= value <= 1.0:
        raise CalibrationError(f"the rate of {name!r} must lie in [0, 1] (or 0-100%)")
    return match.group(1), value


def operating_point_threshold(name: str, genuine: np.ndarray, skilled: np.ndarray) -> float:
    """Threshold of a named operating point on calibration scores."""
    kind, value = parse_operating_point(name)
    if kind == "balanced":
        return eer_threshold(genuine, skilled)
    if kind == "far-skilled":
        return threshold_for_far(genuine, skilled, float(value))  # type: ignore[arg-type]
    return threshold_for_frr(genuine, float(value))  # type: ignore[arg-type]


def _rates(g: np.ndarray, r: np.ndarray, s: np.ndarray, t: float) -> dict[str, Any]:
    point = operating_point(g, r, s, t)
    return {
        "threshold": float(t),
        "FRR": _finite_or_none(point["FRR"]),
        "FAR_skilled": _finite_or_none(point["FAR_skilled"]),
        "FAR_random": _finite_or_none(point["FAR_random"]),
    }


def operating_points(
    genuine: np.ndarray,
    random: np.ndarray,
    skilled: np.ndarray,
    names: Sequence[str] = DEFAULT_OPERATING_POINTS,
) -> dict[str, dict[str, Any]]:
    """Named operating points with the error rates they give on these scores."""
    out = {}
    for name in names:
        t = operating_point_threshold(name, genuine, skilled)
        if math.isfinite(t):
            out[str(name).strip().lower()] = _rates(genuine, random, skilled, t)
    return out


def calibration_curve(
    genuine: np.ndarray, random: np.ndarray, skilled: np.ndarray, n_points: int = 101
) -> dict[str, list[float]]:
    """Threshold vs FRR / FAR_skilled / FAR_random on the calibration scores.

    Thresholds are ``n_points`` quantiles (0.5 % to 99.5 %) of the pooled genuine and
    skilled scores, where the decisions happen.
    """
    from sigver.metrics import error_rates_at_thresholds

    g, r, s = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (genuine, random, skilled))
    pooled = np.r_[g, s]
    t = np.unique(np.quantile(pooled, np.linspace(0.005, 0.995, n_points)))
    frr_t, far_s = error_rates_at_thresholds(g, s, t)
    _, far_r = error_rates_at_thresholds(g, r, t) if r.size else (None, np.full(t.size, np.nan))
    return {
        "threshold": [float(v) for v in t],
        "FRR": [float(v) for v in frr_t],
        "FAR_skilled": [float(v) for v in far_s],
        "FAR_random": [_finite_or_none(float(v)) for v in far_r],  # type: ignore[misc]
    }


def fit_llr(genuine: np.ndarray, skilled: np.ndarray) -> dict[str, Any]:
    """Logistic map from score to the log-likelihood ratio genuine vs skilled.

    Logistic regression with balanced class weights, so that the fitted
    log-odds are a log-likelihood ratio at equal priors: ``llr(s) = slope * s +
    intercept`` (natural log). ``llr > 0`` means the score is more likely under
    genuine signatures than under skilled forgeries of the calibration data.
    """
    from sklearn.linear_model import LogisticRegression

    g, s = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (genuine, skilled))
    x = np.r_[g, s].reshape(-1, 1)
    y = np.r_[np.ones(g.size), np.zeros(s.size)]
    lr = LogisticRegression(class_weight="balanced", C=1e6).fit(x, y)
    return {
        "slope": float(lr.coef_[0, 0]),
        "intercept": float(lr.intercept_[0]),
        "meaning": "natural-log likelihood ratio genuine vs skilled forgery (equal priors)",
    }


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class Calibration:
    """A calibrated global threshold and how it was obtained.

    Attributes
    ----------
    threshold : float
        Decision threshold on the per-user SVM score (accept ``score >= threshold``).
    target : str
        ``"eer-skilled"`` or ``"far-skilled=X"``.
    eer : float
        Pooled global EER (genuine vs skilled) of the development scores.
    eer_threshold : float
        Threshold of that EER (equals ``threshold`` for ``eer-skilled``).
    frr, far_skilled, far_random : float
        Error rates at ``threshold`` on the pooled development scores.
    n_users, n_genuine, n_skilled, n_random : int
        Development users and pooled scores (over users and folds).
    refs, folds, seed : int
        References per user, folds, master seed.
    fold_seeds : tuple of int
        Seed of each fold.
    fold_thresholds : tuple of float
        The target's threshold chosen on each fold alone (stability).
    users : tuple of str
        Development user ids.
    classifier : dict
        Per-user SVM settings.
    negatives : dict
        What the classifiers were trained against.
    data : dict
        Provenance of the features (model id and sha256, dataset...).
    created : str
        ISO 8601 UTC timestamp.
    code_version : str
        ``sigver.__version__``.
    normalization : str
        Per-user score normaliser the thresholds apply to
        (:mod:`sigver.normalization`; ``"none"``: raw SVM scores).
    curve : dict
        Calibration curve: ``threshold`` list and the ``FRR``, ``FAR_skilled``,
        ``FAR_random`` lists at each threshold, on the pooled calibration scores.
    operating_points : dict
        Named operating points (``balanced``, ``far-skilled=1%``, ...): each a
        dict with ``threshold``, ``FRR``, ``FAR_skilled``, ``FAR_random``.
    default_operating_point : str
        Name of the operating point whose threshold is ``threshold``.
    llr : dict
        ``slope`` and ``intercept`` of the logistic map from (normalised) score to
        the log-likelihood ratio genuine vs skilled (equal priors), when fit.
    cohort : dict
        Cohort facts of the normaliser (fraction, writers).
    forgery_cue : dict
        The model's writer-independent forgery cue
        (:meth:`sigver.forgery_cue.ForgeryCue.to_dict`), subtracted from every
        normalised score before the thresholds apply; ``{}`` for none.
    """

    threshold: float
    target: str
    eer: float
    eer_threshold: float
    frr: float
    far_skilled: float
    far_random: float
    n_users: int
    n_genuine: int
    n_skilled: int
    n_random: int
    refs: int
    folds: int
    seed: int
    fold_seeds: tuple[int, ...] = ()
    fold_thresholds: tuple[float, ...] = ()
    users: tuple[str, ...] = ()
    classifier: dict[str, Any] = field(default_factory=dict)
    negatives: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    code_version: str = __version__
    normalization: str = "none"
    curve: dict[str, Any] = field(default_factory=dict)
    operating_points: dict[str, Any] = field(default_factory=dict)
    default_operating_point: str = ""
    llr: dict[str, Any] = field(default_factory=dict)
    cohort: dict[str, Any] = field(default_factory=dict)
    forgery_cue: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (non-finite rates become ``None``); ``threshold`` is the key
        :class:`enrollment.Verifier` reads."""
        out = dataclasses.asdict(self)
        for key in ("fold_seeds", "users"):
            out[key] = list(out[key])
        out["fold_thresholds"] = [_finite_or_none(t) for t in self.fold_thresholds]
        for key in ("eer", "eer_threshold", "frr", "far_skilled", "far_random"):
            out[key] = _finite_or_none(out[key])
        out["method"] = (
            "per-user RBF SVMs on development users (refs random genuine references vs other "
            "development users' references + background negatives), scores pooled over users "
            "and folds; threshold chosen for the target on genuine vs skilled forgeries"
        )
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict` (unknown keys ignored).

        Raises
        ------
        CalibrationError
            If the threshold is missing or not a finite number.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        try:
            threshold = float(kwargs["threshold"])
        except (KeyError, TypeError, ValueError):
            raise CalibrationError("calibration lacks a numeric 'threshold'") from None
        if not math.isfinite(threshold):
            raise CalibrationError("calibration threshold is not finite")
        kwargs["threshold"] = threshold
        for key in ("eer", "eer_threshold", "frr", "far_skilled", "far_random"):
            value = kwargs.get(key)
            kwargs[key] = float("nan") if value is None else float(value)
        for key in ("fold_seeds", "users"):
            kwargs[key] = tuple(kwargs.get(key) or ())
        kwargs["fold_thresholds"] = tuple(
            float("nan") if t is None else float(t) for t in kwargs.get("fold_thresholds") or ()
        )
        return cls(**kwargs)

    def summary(self) -> str:
        """Human-readable lines for the CLI."""

        def pct(v: float) -> str:
            return f"{100 * v:.2f} %" if math.isfinite(v) else "n/a"

        spread = np.asarray(self.fold_thresholds, dtype=np.float64)
        spread = spread[np.isfinite(spread)]
        lines = [
            f"threshold         {self.threshold:.6f}  (target {self.target})",
            f"EER skilled       {pct(self.eer)}  (at threshold {self.eer_threshold:.6f})",
            f"FRR               {pct(self.frr)}",
            f"FAR skilled       {pct(self.far_skilled)}",
            f"FAR random        {pct(self.far_random)}",
        ]
        if spread.size > 1:
            lines.append(
                f"per-fold thresh.  {spread.mean():.6f} ± {spread.std():.6f} "
                f"(min {spread.min():.6f}, max {spread.max():.6f})"
            )
        if self.normalization != "none":
            lines.append(f"normalisation     {self.normalization}")
        if self.forgery_cue:
            fused = self.forgery_cue["calibration"]
            image = float(self.forgery_cue["weight"])
            lines.append(
                f"forgery cue       {'weight ' + format(image, 'g') if image else 'image part off'}"
                f"{', centred' if self.forgery_cue.get('centred') else ''}, fitted on "
                f"{self.forgery_cue['n_genuine']} genuine / {self.forgery_cue['n_forgeries']} "
                f"skilled forgeries of {len(self.forgery_cue['users'])} writers ("
                f"{'on' if self.forgery_cue.get('on_by_default') else 'off'} by "
                f"default){_pair_summary(self.forgery_cue.get('pair'))}; with it: EER "
                f"skilled {pct(_nan_if_none(fused['eer']))}, "
                f"{fused['target']} T={fused['threshold']:+.4f} FRR "
                f"{pct(_nan_if_none(fused['frr']))} FAR skilled "
                f"{pct(_nan_if_none(fused['far_skilled']))}"
            )
        for name, op in self.operating_points.items():
            mark = " (default)" if name == self.default_operating_point else ""
            lines.append(
                f"operating point   {name:<16} T={op['threshold']:+.4f}  FRR {pct(op['FRR'])}"
                f"  FAR skilled {pct(op['FAR_skilled'])}  FAR random {pct(op['FAR_random'])}{mark}"
            )
        neg = self.negatives
        lines += [
            f"development users {self.n_users} ({_id_ranges(self.users)}), {self.refs} refs, "
            f"{self.folds} folds, seed {self.seed}",
            f"scores            {self.n_genuine} genuine, {self.n_skilled} skilled, "
            f"{self.n_random} random (pooled over folds)",
            f"negatives/user    {neg.get('per_user', '?')} "
            f"({neg.get('other_users_references', '?')} other users' references + "
            f"{neg.get('extra', 0)} extra)",
            f"model             {self.data.get('model_id', 'unknown')}",
        ]
        return "\n".join(lines)


def _id_ranges(ids: Sequence[str]) -> str:
    if not ids:
        return "-"
    return f"{ids[0]}..{ids[-1]}" if len(ids) > 2 else ", ".join(ids)


def _norm_id(uid: str) -> str:
    # "001" and "1" name the same writer in numbered datasets (as in sigver.protocol).
    return str(int(uid)) if uid.isdigit() else uid


def _resolve_users(fs: FeatureSet, users: str | Sequence[str]) -> tuple[str, ...]:
    """Calibration user ids present in ``fs``, in natural order."""
    from sigver.datasets import natural_key

    present = [str(u) for u in fs.user_ids]
    if isinstance(users, str):
        from sigver.training import parse_users

        spec = parse_users(users)
        chosen = [u for u in present if spec.matches(u)]
        if not chosen:
            raise CalibrationError(f"no user of the data matches {users!r}")
    else:
        normed = {_norm_id(u): u for u in present}
        chosen, missing = [], []
        for uid in users:
            hit = normed.get(_norm_id(str(uid)))
            (missing if hit is None else chosen).append(str(uid) if hit is None else hit)
        if missing:
            raise CalibrationError(f"user id(s) not in the data: {', '.join(missing[:10])}")
    chosen = sorted(set(chosen), key=natural_key)
    if len(chosen) < 2:
        raise CalibrationError("calibration needs at least 2 development users")
    return tuple(chosen)


def _strip_prefix(text: str, dataset: str | None) -> str:
    if dataset and text.startswith(f"{dataset}/"):
        return text[len(dataset) + 1 :]
    return text


def foreign_mask(
    extra: FeatureSet, fs: FeatureSet, users: Sequence[str], dataset: str | None
) -> np.ndarray:
    """Boolean mask of the rows of ``extra`` that belong to none of ``users`` of ``fs``.

    A row is dropped when its user id (with a ``<dataset>/`` prefix removed)
    names one of ``users``, or its file name (prefix removed) is the file of
    any sample of one of ``users``. Used so that a background set never gives a
    user their own signatures as negatives.

    Returns
    -------
    ndarray of bool
        True for the rows to keep.
    """
    if extra.dim != fs.dim:
        raise DatasetError(
            f"extra negatives have {extra.dim} features but the calibration data have {fs.dim}"
        )
    wanted = {_norm_id(u) for u in users}
    row_users = extra.user_ids[extra.y]
    own_user = np.array([_norm_id(_strip_prefix(str(u), dataset)) in wanted for u in row_users])
    uid_index = {str(u): i for i, u in enumerate(fs.user_ids)}
    cal_idx = [uid_index[u] for u in users]
    cal_files = set(fs.filenames[np.isin(fs.y, cal_idx)].tolist())
    own_file = np.array([_strip_prefix(str(f), dataset) in cal_files for f in extra.filenames])
    return ~(own_user | own_file)


def _foreign_negatives(
    extra: FeatureSet, fs: FeatureSet, users: Sequence[str], dataset: str | None
) -> tuple[np.ndarray, int]:
    """Kept features of :func:`foreign_mask` and the number of dropped rows."""
    keep = foreign_mask(extra, fs, users, dataset)
    return extra.features[keep], int(np.count_nonzero(~keep))


def _check_negatives(split: Any, y: np.ndarray, n_data: int) -> None:
    """Refuse a split where a user's own sample, or a scored sample, is a training negative."""
    scored_all = np.concatenate([*split.test_genuine, *split.skilled, *split.simple])
    for i, user in enumerate(split.users):
        negs = split.training_negatives(i)
        data_negs = negs[negs < n_data]
        if np.any(y[data_negs] == user):
            raise CalibrationError(f"internal error: user {user} would be its own negative")
        if np.isin(data_negs, scored_all).any():
            raise CalibrationError("internal error: a scored sample would be a training negative")


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _pick(kind: str, value: float | None, genuine: np.ndarray, skilled: np.ndarray) -> float:
    if kind == "eer-skilled" or value is None:
        return eer_threshold(genuine, skilled)
    return threshold_for_far(genuine, skilled, value)


def calibrate_threshold(
    features: FeatureSet,
    *,
    users: str | Sequence[str],
    negatives: FeatureSet | None = None,
    dataset: str | None = None,
    refs: int = 5,
    folds: int = 5,
    seed: int = 1234,
    target: str = "eer-skilled",
    kernel: str = "rbf",
    C: float = 1.0,
    gamma: float = 2**-11,
    n_jobs: int = 2,
    progress: bool = False,
) -> Calibration:
    """Choose the global decision threshold on development writers.

    See the module docstring for the procedure.

    Parameters
    ----------
    features : FeatureSet
        Features of a dataset with skilled forgeries (other users are ignored).
    users : str or sequence of str
        Development users: ids, or a specification such as ``"001-037"`` or
        ``"001-004,006"`` (inclusive ranges in natural order; ids absent from
        the data are skipped). Never pass exploitation users.
    negatives : FeatureSet, optional
        Extra negatives, e.g. the background set shipped with the model. Rows of
        any calibration user are dropped (by ``<dataset>/<user>`` id or file name).
    dataset : str, optional
        Dataset name used as the id prefix of ``negatives``; defaults to
        ``features.meta["dataset"]``.
    refs : int, default 5
        Genuine references per user (enrollment size).
    folds : int, default 5
        Random draws of the references.
    seed : int, default 1234
        Master seed (per-fold seeds from :func:`sigver.protocol.fold_seeds`).
    target : str, default "eer-skilled"
        ``"eer-skilled"`` or ``"far-skilled=X"``.
    kernel, C, gamma
        Per-user SVM (published defaults, as used by enrollment).
    n_jobs : int, default 2
        Threads over users.
    progress : bool, default False
        Progress bars.

    Returns
    -------
    Calibration

    Raises
    ------
    CalibrationError
        Bad target, fewer than 2 users, no skilled forgeries.
    DatasetError, ProtocolError
        Users with too few genuine signatures, inconsistent negatives.
    """
    from sigver.evaluation import ClassifierConfig, score_fold
    from sigver.protocol import population_splits

    kind, far_target = parse_target(target)
    ids = _resolve_users(features, users)
    dataset = dataset if dataset is not None else features.meta.get("dataset")
    # forg_from_exp = refs: every other development user's references are negatives; their
    # remaining genuines stay unseen and serve as random forgeries.
    resolved, splits = population_splits(
        features, ids, refs=refs, folds=folds, seed=seed, name="calibration"
    )
    n_data = len(features)
    if negatives is not None:
        extra, dropped = _foreign_negatives(negatives, features, ids, dataset)
        if dropped:
            logger.info(
                "dropped %d of %d extra negatives that belong to calibration users",
                dropped,
                len(negatives),
            )
    else:
        extra, dropped = np.zeros((0, features.dim), dtype=np.float32), 0
    x = np.concatenate([features.features, extra]) if extra.shape[0] else features.features
    shared = np.arange(n_data, n_data + extra.shape[0], dtype=np.int64)
    cfg = ClassifierConfig(kernel=kernel, C=C, gamma=gamma, scaling="user")

    genuine, random, skilled, fold_thresholds = [], [], [], []
    for split in splits:
        split = dataclasses.replace(split, negatives=shared)
        _check_negatives(split, features.y, n_data)
        scores = score_fold(x, split, cfg, engine="naive", n_jobs=n_jobs, progress=progress)
        g, r, s = (np.concatenate(part) for part in (scores.genuine, scores.random, scores.skilled))
        if s.size == 0:
            raise CalibrationError(
                "the development users have no skilled forgeries; the threshold is calibrated "
                "on genuine vs skilled scores"
            )
        fold_thresholds.append(_pick(kind, far_target, g, s))
        genuine.append(g)
        random.append(r)
        skilled.append(s)
        logger.debug("fold %d: threshold %.4f", split.fold, fold_thresholds[-1])
    g, r, s = (np.concatenate(p) for p in (genuine, random, skilled))
    eer, t_eer = eer_global(g, s)
    threshold = t_eer if kind == "eer-skilled" else _pick(kind, far_target, g, s)
    if not math.isfinite(threshold):
        raise CalibrationError(
            f"the {target} threshold is not finite ({threshold}); the scores do not separate"
        )
    point = operating_point(g, r, s, threshold)
    skipped_users = [
        u
        for u, sk in zip(ids, splits[0].skilled, strict=True)
        if sk.size == 0  # users without skilled forgeries still add genuines and randoms
    ]
    if skipped_users:
        logger.warning(
            "%d development user(s) have no skilled forgeries: %s",
            len(skipped_users),
            ", ".join(skipped_users[:10]),
        )
    n_other_refs = int(splits[0].exp_negatives[0].size)
    meta = features.meta
    return Calibration(
        threshold=float(threshold),
        target=target if kind == "eer-skilled" else f"far-skilled={far_target:g}",
        eer=float(eer),
        eer_threshold=float(t_eer),
        frr=point["FRR"],
        far_skilled=point["FAR_skilled"],
        far_random=point["FAR_random"],
        n_users=len(ids),
        n_genuine=int(g.size),
        n_skilled=int(s.size),
        n_random=int(r.size),
        refs=int(refs),
        folds=int(folds),
        seed=int(seed),
        fold_seeds=tuple(int(v) for v in resolved.seeds),
        fold_thresholds=tuple(float(t) for t in fold_thresholds),
        users=ids,
        classifier={
            "kernel": kernel,
            "C": float(C),
            "gamma": float(gamma),
            "scaling": "per user (StandardScaler(with_mean=False))",
            "class_weight": "genuine = #negatives / #positives",
        },
        negatives={
            "per_user": int(n_other_refs + extra.shape[0]),
            "other_users_references": n_other_refs,
            "extra": int(extra.shape[0]),
            "extra_dropped_as_calibration_users": int(dropped),
            "extra_source": (negatives.meta.get("purpose") or "given") if negatives else None,
        },
        data={
            "dataset": dataset,
            "model_id": meta.get("model_id"),
            "model_sha256": meta.get("model_sha256"),
            "n_samples": n_data,
        },
        created=_utc_now(),
        normalization="none",
        curve=calibration_curve(g, r, s),
        operating_points=operating_points(g, r, s),
        default_operating_point="balanced" if kind == "eer-skilled" else "",
        llr=fit_llr(g, s),
    )


def _read_operating_points(
    scores: Sequence[Any], default: str, points: Sequence[str]
) -> dict[str, Any]:
    """Operating points, curve, EER and LLR map of pooled deployment scores."""
    g, r, s = (
        np.concatenate([a for fold in scores for a in getattr(fold, part)])
        for part in ("genuine", "random", "skilled")
    )
    if s.size == 0:
        raise CalibrationError("the calibration users have no skilled forgeries")
    names = list(dict.fromkeys([str(default).strip().lower(), *points]))
    ops = operating_points(g, r, s, names)
    default_name = names[0]
    if default_name not in ops:
        raise CalibrationError(f"operating point {default!r} has no finite threshold")
    eer, t_eer = eer_global(g, s)
    fold_thr = [
        operating_point_threshold(
            default_name, np.concatenate(fold.genuine), np.concatenate(fold.skilled)
        )
        for fold in scores
    ]
    op = ops[default_name]
    return {
        "threshold": float(op["threshold"]),
        "target": default_name,
        "eer": float(eer),
        "eer_threshold": float(t_eer),
        "frr": float(op["FRR"]),
        "far_skilled": float(op["FAR_skilled"]),
        "far_random": float("nan") if op["FAR_random"] is None else float(op["FAR_random"]),
        "fold_thresholds": [float(t) for t in fold_thr],
        "operating_points": ops,
        "default_operating_point": default_name,
        "curve": calibration_curve(g, r, s),
        "llr": fit_llr(g, s),
        "pooled": (g, r, s),
    }


def _nan_if_none(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _json_floats(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with non-finite top-level rates as ``None`` (strict JSON)."""
    return {k: (_finite_or_none(v) if isinstance(v, float) else v) for k, v in data.items()}


def resolve_cue_settings(
    calibration: Mapping[str, Any] | None,
    *,
    weight: float | None = None,
    centred: bool | None = None,
    pair_weight: float | None = None,
    on_by_default: bool | None = None,
    pair_centred: bool | None = None,
) -> dict[str, Any]:
    """The forgery-cue settings of a recalibration: each one given, else the model's current.

    A plain rerun (to refresh a card, change a normaliser) so never drops or changes a cue.
    ``on_by_default`` is kept only while there is a cue to keep on (an image part or a
    pair part of positive weight). ``pair_extra`` is what the current pair cue was fitted
    with besides the calibration writers (``{}``: nothing). ``pair_centred`` defaults to
    the stored pair cue's setting, else centred (every pair cue stored before the setting
    existed was centred).
    """
    stored = (calibration or {}).get("forgery_cue") or {}
    pair = stored.get("pair") or {}
    if weight is not None and not weight and stored.get("weight") and pair and pair_weight is None:
        # Removing the image part would leave its pair part deciding alone: not silently.
        raise CalibrationError(
            "the model's cue has a pair part: with --forgery-weight 0 also give --pair-weight "
            "(0 removes the whole cue, W > 0 keeps the pair part deciding alone)"
        )
    w = float(stored.get("weight", 0.0)) if weight is None else float(weight)
    pw = float(pair.get("weight", 0.0)) if pair_weight is None else pair_weight
    return {
        "weight": w,
        "centred": bool(stored.get("centred", False)) if centred is None else bool(centred),
        "pair_weight": pw,
        "pair_centred": (
            bool(pair.get("centred", True)) if pair_centred is None else bool(pair_centred)
        ),
        "on_by_default": (
            bool(stored.get("on_by_default")) and (w > 0 or pw > 0)
            if on_by_default is None
            else on_by_default
        ),
        "pair_extra": dict(pair.get("extra") or {}),
    }


def _pair_summary(pair: Mapping[str, Any] | None) -> str:
    """The summary's words for a cue's pairwise part ("" without one)."""
    if not pair:
        return ""
    extra = pair.get("extra") or {}
    more = f" + {extra.get('writers', '?')} further writers" if extra else ""
    how = "a" if pair.get("centred", True) else "an uncentred"
    return (
        f", with {how} pair cue of weight {pair['weight']:g} ({pair.get('n_pairs', '?')} "
        f"pairs of {len(pair.get('users', ()))} writers{more})"
    )


def calibrate_deployment(
    features: FeatureSet,
    *,
    users: str | Sequence[str],
    background: FeatureSet | None,
    normalization: str = "none",
    dataset: str | None = None,
    refs: int = 5,
    folds: int = 5,
    seed: int = 1234,
    default: str = "balanced",
    points: Sequence[str] = DEFAULT_OPERATING_POINTS,
    params: Mapping[str, Any] | None = None,
    cohort_fraction: float | None = None,
    n_jobs: int = 1,
    progress: bool = False,
    run: Any = None,
    forgery_weight: float = 0.0,
    forgery_centred: bool = False,
    pair_weight: float = 0.0,
    pair_extra: Any = None,
    forgery_default: bool = False,
    pair_centred: bool = True,
) -> Calibration:
    """Calibrate named operating points through the product's own enrollment path.

    The calibration population is enrolled as :meth:`enrollment.Verifier.enroll`
    would (:func:`sigver.evaluation.simulate_deployment`: shipped background +
    the other users' references, :func:`sigver.usermodel.train_user_model`), the
    scores are normalised per user with ``normalization``, pooled over users and
    folds, and the calibration curve and operating points are read off them.

    Parameters
    ----------
    features : FeatureSet
        Calibration population (with skilled forgeries). Never exploitation users.
    users : str or sequence of str
        Its users (a specification such as ``"001-037"`` or ids).
    background : FeatureSet or None
        The model's background set.
    normalization : str
        Per-user normaliser the thresholds apply to.
    default : str
        Operating point whose threshold becomes ``Calibration.threshold``.
    points : sequence of str
        Operating points to compute (``default`` is added).
    run : DeploymentRun, optional
        An existing simulation of these users (research: one run, many normalisers).
    forgery_weight : float
        When positive, fit a writer-independent forgery cue
        (:mod:`sigver.forgery_cue`) on the calibration users' genuine signatures and
        skilled forgeries, with this weight, and calibrate the operating points on the
        fused scores; each calibration user's penalty comes from a cue fitted without
        them (:func:`~sigver.forgery_cue.cross_fitted_penalty`).
    forgery_centred : bool
        Fit a centred cue (each user's penalty relative to their references').
    pair_weight : float
        When positive, the cue gets a pairwise part (:mod:`sigver.pair_cue`): a
        classifier on ``|phi(q) - phi(r)|`` fitted on the calibration users'
        genuine-genuine vs genuine-skilled pairs, whose penalty against each user's
        references is subtracted with this weight. Each calibration user is scored by
        one fitted without them (:func:`~sigver.pair_cue.cross_fitted_pair_cues`); the
        stored one is fitted on all of them. Stored as the cue block's ``"pair"``. It
        goes with a centred image cue (``forgery_centred``) or alone
        (``forgery_weight=0``: the image part is stored with weight 0 and subtracts
        nothing).
    pair_extra : PairRows, optional
        Further writers (e.g. synthetic) whose pairs join every fit of the pair part.
    forgery_default : bool
        Declare the cue on by default (``"on_by_default"``): ``Verifier``, ``sigver
        verify`` / ``serve`` and ``sigver evaluate --negatives model`` then decide with it
        unless switched off (:func:`sigver.forgery_cue.on_by_default`).
    pair_centred : bool
        Subtract the pair penalty centred on the user's references against each other
        (``p - p_refs``) or as it is (``p``; :meth:`sigver.pair_cue.PairCue.applied_penalty`).

    Returns
    -------
    Calibration
    """
    from sigver.evaluation import simulate_deployment

    ids = _resolve_users(features, users)
    if not (math.isfinite(pair_weight) and pair_weight >= 0):
        raise CalibrationError(f"pair_weight must be >= 0, got {pair_weight}")
    if not (math.isfinite(forgery_weight) and forgery_weight >= 0):
        raise CalibrationError(f"forgery_weight must be >= 0, got {forgery_weight}")
    if forgery_default and not (forgery_weight or pair_weight):
        raise CalibrationError(
            "forgery_default needs a forgery cue (forgery_weight > 0 or pair_weight > 0)"
        )
    if pair_weight and forgery_weight and not (forgery_centred and pair_centred):
        # scripts/pair_cue.py measured the pair part alone (centred or not) and both parts
        # centred; a term with a fixed zero beside the other moves with a population
        # shift, and that combination was never measured, so it is not offered.
        raise CalibrationError(
            "a pair cue goes with a centred image cue, itself centred, or alone: give "
            "forgery_centred=True and pair_centred=True (--forgery-centred --pair-centred) "
            "or forgery_weight=0 (--forgery-weight 0)"
        )
    if run is None:
        run = simulate_deployment(
            features,
            users=ids,
            background=background,
            dataset=dataset,
            refs=refs,
            folds=folds,
            seed=seed,
            normalization=normalization,
            params=dict(params) if params else None,
            cohort_fraction=cohort_fraction,
            n_jobs=n_jobs,
            progress=progress,
        )
    plain = _read_operating_points(run.scores(normalization), default, points)
    g, r, s = plain["pooled"]
    ops, default_name = plain["operating_points"], plain["default_operating_point"]
    eer, t_eer, fold_thr = plain["eer"], plain["eer_threshold"], plain["fold_thresholds"]
    cue: dict[str, Any] = {}
    if forgery_weight or pair_weight:
        from sigver.forgery_cue import cross_fitted_penalty, fit_forgery_cue

        writers = features.user_ids[features.y]
        rows = np.isin(writers, np.asarray(ids)) & (features.yforg < 2)
        x, forged = features.features[rows], features.yforg[rows] == 1
        penalty = np.zeros(len(features), dtype=np.float64)
        if forgery_weight:
            penalty[rows] = cross_fitted_penalty(x, forged, writers[rows], weight=forgery_weight)
        # A pair-only cue stores its image part with weight 0, uncentred: it subtracts 0.
        image_centred = bool(forgery_centred) and bool(forgery_weight)
        cued = dataclasses.replace(run, penalty=penalty, centre_penalty=image_centred)
        pair: dict[str, Any] = {}
        if pair_weight:
            from sigver.pair_cue import cross_fitted_pair_cues, fit_pair_cue

            how = {"weight": pair_weight, "extra": pair_extra, "centred": bool(pair_centred)}
            crossed = cross_fitted_pair_cues(x, writers[rows], forged, **how)
            cued = cued.with_pair_cue(crossed, features)
            fitted = fit_pair_cue(x, writers[rows], forged, users=ids, **how)
            pair = {"pair": fitted.to_dict()}
        fused = _read_operating_points(cued.scores(normalization), default, points)
        fused.pop("pooled")
        cue = {
            **fit_forgery_cue(
                x, forged, weight=forgery_weight, users=ids, centred=image_centred
            ).to_dict(),
            **pair,
            "on_by_default": bool(forgery_default),
            # The operating points of the fused score (used when the cue is switched on).
            "calibration": _json_floats(fused),
        }
    op = ops[default_name]
    cfg = run.resolved.config
    meta = features.meta
    info = run.info
    return Calibration(
        threshold=float(op["threshold"]),
        target=default_name,
        eer=float(eer),
        eer_threshold=float(t_eer),
        frr=float(op["FRR"]),
        far_skilled=float(op["FAR_skilled"]),
        far_random=float("nan") if op["FAR_random"] is None else float(op["FAR_random"]),
        n_users=len(ids),
        n_genuine=int(g.size),
        n_skilled=int(s.size),
        n_random=int(r.size),
        refs=int(cfg.refs),
        folds=int(cfg.folds),
        seed=int(cfg.seed),
        fold_seeds=tuple(int(v) for v in run.resolved.seeds),
        fold_thresholds=tuple(float(t) for t in fold_thr),
        users=ids,
        classifier={
            **info.get("classifier_params", {}),
            "scaling": "per user (StandardScaler(with_mean=False))",
            "class_weight": "genuine = #negatives / #positives",
            "trainer": info.get("trainer"),
        },
        negatives={
            "per_user": int(
                info["negatives"]["background"] + info["negatives"]["other_users_references"]
            ),
            "other_users_references": info["negatives"]["other_users_references"],
            "extra": info["negatives"]["background"],
            "extra_dropped_as_calibration_users": info["negatives"][
                "background_dropped_as_population_writers"
            ],
            "extra_source": (background.meta.get("purpose") or "given") if background else None,
        },
        data={
            "dataset": dataset if dataset is not None else meta.get("dataset"),
            "model_id": meta.get("model_id"),
            "model_sha256": meta.get("model_sha256"),
            "n_samples": len(features),
        },
        created=_utc_now(),
        normalization=normalization,
        curve=plain["curve"],
        operating_points=ops,
        default_operating_point=default_name,
        llr=plain["llr"],
        cohort=dict(info.get("cohort", {})) if normalization != "none" else {},
        forgery_cue=cue,
    )


def stored_calibration(metrics: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The calibration block of a checkpoint's ``meta.metrics`` (a dict), or None."""
    cal = (metrics or {}).get(METRICS_KEY)
    return dict(cal) if isinstance(cal, Mapping) else None


def resolve_operating_point(
    calibration: Mapping[str, Any] | None, name: str | None
) -> tuple[float, str, dict[str, Any]]:
    """Threshold, name and calibrated rates of an operating point of a stored calibration.

    Parameters
    ----------
    calibration : mapping or None
        :meth:`Calibration.to_dict` output (``meta.metrics["calibration"]``).
    name : str or None
        Operating point name; None = the calibration's default.

    Returns
    -------
    (float, str, dict)
        Threshold, canonical name, and the rates it was calibrated for (``FRR``,
        ``FAR_skilled``, ``FAR_random``; empty for an old calibration without them).

    Raises
    ------
    CalibrationError
        No calibration, or an operating point it does not hold.
    """
    if not calibration:
        raise CalibrationError(
            "the model carries no calibration, so it has no named operating points"
        )
    points = calibration.get("operating_points") or {}
    if name is None:
        default = calibration.get("default_operating_point") or ""
        if default in points:
            return float(points[default]["threshold"]), default, dict(points[default])
        t = stored_threshold({METRICS_KEY: calibration})
        if t is None:
            raise CalibrationError("the model's calibration has no threshold")
        rates = {
            "FRR": calibration.get("frr"),
            "FAR_skilled": calibration.get("far_skilled"),
            "FAR_random": calibration.get("far_random"),
        }
        return t, str(calibration.get("target") or "calibrated"), rates
    kind, value = parse_operating_point(name)
    key = "balanced" if kind == "balanced" else str(name).strip().lower()
    if key not in points:
        available = ", ".join(points) or "none"
        raise CalibrationError(
            f"the model's calibration has no operating point {name!r} (available: {available})"
        )
    return float(points[key]["threshold"]), key, dict(points[key])


def plot_calibration(
    calibration: Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    chosen: str | None = None,
    measured: Mapping[str, float] | None = None,
    title: str | None = None,
) -> Path:
    """Plot a calibration curve (FRR, FAR_skilled, FAR_random vs threshold) to a PNG.

    Parameters
    ----------
    calibration : mapping
        :meth:`Calibration.to_dict` output with a ``curve``.
    path : path-like
    chosen : str, optional
        Operating point to mark (default: the calibration's default).
    measured : mapping, optional
        ``FRR``, ``FAR_skilled`` (and ``FAR_random``) measured elsewhere at the
        chosen threshold, e.g. on a population not used for calibration; drawn
        as hollow markers next to the calibrated rates.
    title : str, optional

    Returns
    -------
    pathlib.Path
    """
    from sigver.plots import _pyplot, _save

    curve = calibration.get("curve") or {}
    if not curve.get("threshold"):
        raise CalibrationError("the calibration holds no curve to plot")
    t, name, rates = resolve_operating_point(calibration, chosen)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x = np.asarray(curve["threshold"], dtype=np.float64)
    for key, label, style in (
        ("FRR", "FRR (genuine rejected)", "-"),
        ("FAR_skilled", "FAR skilled", "--"),
        ("FAR_random", "FAR random", ":"),
    ):
        y = np.array([np.nan if v is None else v for v in curve.get(key, [])], dtype=np.float64)
        if y.size == x.size:
            ax.plot(x, 100 * y, style, label=label)
    ax.axvline(t, color="k", lw=0.8)
    for key, marker in (("FRR", "o"), ("FAR_skilled", "s")):
        if rates.get(key) is not None:
            ax.plot([t], [100 * float(rates[key])], marker, color="k")
        if measured and measured.get(key) is not None:
            ax.plot([t], [100 * float(measured[key])], marker, mfc="none", color="tab:red", ms=9)
    ax.set_xlabel(f"threshold ({calibration.get('normalization', 'none')} score)")
    ax.set_ylabel("error rate (%)")
    ax.set_ylim(0, 100)
    ax.set_title(
        title
        or f"calibration curve, operating point {name!r} at T={t:.3f}"
        + (" (hollow: measured elsewhere)" if measured else ""),
        fontsize=9,
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(plt, fig, Path(path))


def stored_threshold(metrics: Mapping[str, Any] | None) -> float | None:
    """The calibrated default threshold recorded in a checkpoint's ``meta.metrics``.

    :func:`apply_calibration` stores it at ``metrics["calibration"]["threshold"]``,
    and that is the only place read, so no other metric can ever become a decision
    threshold by accident.

    Returns
    -------
    float or None
        The threshold, or None when the model carries no (finite) calibration.
    """
    cal = (metrics or {}).get("calibration")
    value = cal.get("threshold") if isinstance(cal, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def apply_calibration(
    checkpoint_path: str | os.PathLike[str],
    calibration: Calibration,
    *,
    update_background: bool = True,
    check_model: bool = True,
) -> Path:
    """Store a calibration in a checkpoint, as its global default threshold.

    The checkpoint is loaded (sha256-verified), ``meta.metrics["calibration"]``
    is set to ``calibration.to_dict()`` and the file is rewritten with
    :func:`sigver.models.checkpoint.save_checkpoint` (atomic, new ``.sha256``
    sidecar, same storage dtype, weights unchanged). :class:`enrollment.Verifier`
    then reads ``metrics.calibration.threshold`` as its default threshold.

    The new metadata changes the file's sha256 and therefore its model id:

    - the background set beside the model (``<stem>.background.npz``) records
      the sha256 of the model it was extracted with, and the verifier refuses
      a mismatch. As the weights are unchanged, its ``model_sha256`` /
      ``model_id`` are updated (atomically) when they named the old file;
      a background recording another model is left alone with a warning.
    - users enrolled with the old file are refused by the verifier as a model
      mismatch and must be re-enrolled: calibrate before shipping.

    Parameters
    ----------
    checkpoint_path : path-like
        A sigver checkpoint (``.pt`` with ``.sha256`` sidecar).
    calibration : Calibration
    update_background : bool, default True
        Update the background set's recorded model hash as described above.
    check_model : bool, default True
        Refuse when the calibration records the sha256 of a different file
        than ``checkpoint_path`` (features from another model).

    Returns
    -------
    pathlib.Path
        ``checkpoint_path``.

    Raises
    ------
    ModelError
        Unreadable, unverified or mismatching checkpoint.
    """
    from sigver.features import default_background_path
    from sigver.featureset import load_features, save_features
    from sigver.models.checkpoint import ModelWeights, load_checkpoint, save_checkpoint

    path = Path(checkpoint_path)
    weights = load_checkpoint(path)
    calibrated_with = calibration.data.get("model_sha256")
    if check_model and calibrated_with and calibrated_with != weights.sha256:
        raise ModelError(
            f"the calibration was computed with features of model {str(calibrated_with)[:12]}, "
            f"not of {path} ({weights.sha256[:12]}); recalibrate with this checkpoint"
        )
    old_sha = weights.sha256
    meta = dataclasses.replace(
        weights.meta, metrics={**weights.meta.metrics, METRICS_KEY: calibration.to_dict()}
    )
    new_sha = save_checkpoint(
        path,
        weights.state_dict,
        meta,
        half=weights.meta.storage_dtype == "float16",
        heads=weights.heads,
        training_state=weights.training_state,
    )
    new_id = ModelWeights(meta=meta, state_dict={}, sha256=new_sha).model_id
    logger.info(
        "wrote threshold %.6f into %s (sha256 %s -> %s); re-enroll users enrolled with the "
        "old file",
        calibration.threshold,
        path,
        old_sha[:12],
        new_sha[:12],
    )
    background = default_background_path(path)
    if update_background and background.is_file():
        fs = load_features(background)
        recorded = fs.meta.get("model_sha256")
        if recorded == old_sha:
            fs_meta = {**fs.meta, "model_sha256": new_sha, "model_id": new_id}
            fs_meta.pop("format_version", None)
            save_features(background, dataclasses.replace(fs, meta=fs_meta))
            logger.info("updated the model hash recorded in %s", background)
        elif recorded and recorded != new_sha:
            logger.warning(
                "%s records model %s, neither the old nor the new checkpoint; left unchanged",
                background,
                str(recorded)[:12],
            )
    return path

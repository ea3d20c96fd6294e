"""Verification metrics, with the definitions of the reference implementation.

Scores are decision values: a sample is **accepted** (classified genuine) when
``score >= threshold``; the classifier's own threshold is 0.

Definitions (as in luizgh/sigver ``sigver/wd/metrics.py``):

- ``FRR`` = fraction of genuine test signatures rejected (``score < t``);
  ``FAR_random`` / ``FAR_skilled`` = fraction of random / skilled forgeries
  accepted (``score >= t``), all pooled over users.
- ``AUC`` = mean over users of the ROC AUC of that user's genuine vs skilled scores.
- ``EER_global`` (a-posteriori): on the pooled genuine vs skilled scores,
  ``fpr, tpr, thr = sklearn.metrics.roc_curve(...)`` (default
  ``drop_intermediate=True``), ``t = thr[argmin |fpr - (1 - tpr)|]`` (first
  minimum), and ``EER = (FRR(t) + FAR_skilled(t)) / 2``.
- ``EER_user`` (a-posteriori, user-specific thresholds): the same threshold
  choice per user on that user's genuine vs skilled scores; the errors of all
  users at their own thresholds are pooled (rejected genuines over all
  genuines, accepted skilled over all skilled) and averaged.
- ``aligned_gap``: the ``EER_global - EER_user`` gap the same scores would show if
  the users were exchangeable (every user's scores drawn from one distribution, which
  an ideal per-user normaliser would reach). Each user's a-posteriori threshold is
  fitted on a handful of that user's own scores, so ``EER_user`` is optimistic even
  then: the gap has a floor that no per-user normalisation fitted without the test
  scores can remove (one that reads them can, as EER_user itself does). It is
  estimated by dealing the pooled scores to the users at random, keeping each
  user's counts (:func:`eer_user_shuffled`).

Every function is pure and typed; per-user inputs are sequences of 1-D arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import numpy as np

__all__ = [
    "Metrics",
    "frr",
    "far",
    "error_rates_at_thresholds",
    "eer_threshold",
    "eer_global",
    "eer_user_thresholds",
    "eer_user_shuffled",
    "aligned_gap",
    "user_aucs",
    "compute_metrics",
    "operating_point",
]

ScoreList = Sequence[np.ndarray]


class Metrics(TypedDict):
    """Output of :func:`compute_metrics` (rates in [0, 1])."""

    FRR: float
    FAR_random: float
    FAR_skilled: float
    AUC: float
    EER_global: float
    EER_user: float
    EER_global_threshold: float
    n_genuine: int
    n_random: int
    n_skilled: int


def _as_scores(scores: np.ndarray | Sequence[float]) -> np.ndarray:
    return np.asarray(scores, dtype=np.float64).reshape(-1)


def frr(genuine: np.ndarray | Sequence[float], threshold: float = 0.0) -> float:
    """False rejection rate: fraction of genuine scores below ``threshold``."""
    g = _as_scores(genuine)
    return float(np.mean(g < threshold)) if g.size else float("nan")


def far(forgeries: np.ndarray | Sequence[float], threshold: float = 0.0) -> float:
    """False acceptance rate: fraction of forgery scores at or above ``threshold``."""
    f = _as_scores(forgeries)
    return float(np.mean(f >= threshold)) if f.size else float("nan")


def error_rates_at_thresholds(
    genuine: np.ndarray | Sequence[float],
    forgeries: np.ndarray | Sequence[float],
    thresholds: np.ndarray | Sequence[float],
) -> tuple[np.ndarray, np.ndarray]:
    """FRR and FAR at many thresholds at once (sorting + binary search).

    Parameters
    ----------
    genuine, forgeries : array-like of float
        Scores.
    thresholds : array-like of float

    Returns
    -------
    frr : ndarray
        ``mean(genuine < t)`` for each threshold ``t``.
    far : ndarray
        ``mean(forgeries >= t)`` for each threshold ``t``.
    """
    g = np.sort(_as_scores(genuine))
    f = np.sort(_as_scores(forgeries))
    t = _as_scores(thresholds)
    # searchsorted(side="left") counts the elements strictly below t.
    frr_t = np.searchsorted(g, t, side="left") / max(g.size, 1)
    far_t = 1.0 - np.searchsorted(f, t, side="left") / max(f.size, 1)
    return frr_t, far_t


def eer_threshold(genuine: np.ndarray, skilled: np.ndarray) -> float:
    """Threshold of the ROC point where FAR and FRR are closest (reference rule).

    The reference implementation's rule, kept so that figures compare with the
    published ones: ``roc_curve`` drops the collinear points of its curve
    (``drop_intermediate=True``), so the exact crossing can be among the dropped
    points and the EER read a little above the closest one (genuine ``0..3``,
    skilled ``2, -1, -2, -3``: FAR = FRR = 0.25 at t = 1, the rule reads t = 2 and
    an EER of 0.375). On small per-user samples this raises ``EER_user`` slightly.

    Parameters
    ----------
    genuine, skilled : ndarray
        Scores; both must be non-empty.

    Returns
    -------
    float
        ``thresholds[argmin |fpr - (1 - tpr)|]`` of ``sklearn.metrics.roc_curve``.
    """
    g, s = _as_scores(genuine), _as_scores(skilled)
    if g.size == 0 or s.size == 0:
        raise ValueError("EER needs at least one genuine and one forgery score")
    y = np.r_[np.ones(g.size), -np.ones(s.size)]
    from sklearn.metrics import roc_curve  # lazily: verification never needs sklearn

    fpr, tpr, thresholds = roc_curve(y, np.r_[g, s])
    return float(thresholds[int(np.argmin(np.abs(fpr - (1.0 - tpr))))])


def eer_global(genuine: np.ndarray, skilled: np.ndarray) -> tuple[float, float]:
    """EER with one global threshold, chosen a-posteriori on these scores.

    Returns
    -------
    eer : float
        ``(FRR(t) + FAR(t)) / 2`` at the threshold ``t`` of :func:`eer_threshold`.
    threshold : float
        ``t`` (may be ``inf`` when every genuine is rejected at the best point).
    """
    t = eer_threshold(genuine, skilled)
    return (frr(genuine, t) + far(skilled, t)) / 2.0, t


def eer_user_thresholds(genuine: ScoreList, skilled: ScoreList) -> float:
    """EER with user-specific thresholds (a-posteriori), errors pooled over users.

    Parameters
    ----------
    genuine, skilled : sequence of ndarray
        Per-user scores (same user order); users lacking genuine or skilled
        scores are left out.

    Returns
    -------
    float
        ``(sum_u #rejected genuine_u / sum_u n_gen_u + sum_u #accepted skilled_u /
        sum_u n_skilled_u) / 2``.
    """
    if len(genuine) != len(skilled):
        raise ValueError("genuine and skilled must list the same users")
    g_err = s_err = n_g = n_s = 0
    for g_u, s_u in zip(genuine, skilled, strict=True):
        g_u, s_u = _as_scores(g_u), _as_scores(s_u)
        if g_u.size == 0 or s_u.size == 0:
            continue
        t = eer_threshold(g_u, s_u)
        g_err += int(np.sum(g_u < t))
        s_err += int(np.sum(s_u >= t))
        n_g += g_u.size
        n_s += s_u.size
    if n_g == 0:
        return float("nan")
    return (g_err / n_g + s_err / n_s) / 2.0


def _both_kinds(genuine: ScoreList, skilled: ScoreList) -> tuple[list, list]:
    if len(genuine) != len(skilled):
        raise ValueError("genuine and skilled must list the same users")
    pairs = [(_as_scores(g), _as_scores(s)) for g, s in zip(genuine, skilled, strict=True)]
    pairs = [(g, s) for g, s in pairs if g.size and s.size]
    return [g for g, _ in pairs], [s for _, s in pairs]


def eer_user_shuffled(
    genuine: ScoreList, skilled: ScoreList, *, rounds: int = 20, seed: int = 0
) -> float:
    """Mean :func:`eer_user_thresholds` of the pooled scores dealt to the users at random.

    Parameters
    ----------
    genuine, skilled : sequence of ndarray
        Per-user scores (same user order); users lacking genuine or skilled
        scores are left out, as :func:`eer_user_thresholds` leaves them out.
    rounds : int, default 20
        Random dealings averaged.
    seed : int, default 0
        Seed of the dealings (the same seed gives the same value).

    Returns
    -------
    float
        The expected ``EER_user`` of a population whose users are exchangeable and
        have these users' numbers of genuine and skilled scores; NaN without a user
        having both.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, not {rounds!r}")
    g_users, s_users = _both_kinds(genuine, skilled)
    if not g_users:
        return float("nan")
    pool_g, pool_s = np.concatenate(g_users), np.concatenate(s_users)
    cut_g = np.cumsum([g.size for g in g_users])[:-1]
    cut_s = np.cumsum([s.size for s in s_users])[:-1]
    rng = np.random.default_rng(seed)
    values = [
        eer_user_thresholds(
            np.split(rng.permutation(pool_g), cut_g), np.split(rng.permutation(pool_s), cut_s)
        )
        for _ in range(rounds)
    ]
    return float(np.mean(values))


def aligned_gap(
    genuine: ScoreList, skilled: ScoreList, *, rounds: int = 20, seed: int = 0
) -> float:
    """``EER_global - EER_user`` of these scores with the users made exchangeable.

    The floor of the gap for these users' numbers of scores: what an ideal per-user
    normalisation, one that gave every user the same score distributions without
    reading their test scores, would leave. :func:`eer_global` of the pooled scores
    (users having both kinds) minus :func:`eer_user_shuffled`.

    Returns
    -------
    float
        NaN without a user having both kinds of scores.
    """
    g_users, s_users = _both_kinds(genuine, skilled)
    if not g_users:
        return float("nan")
    eer, _ = eer_global(np.concatenate(g_users), np.concatenate(s_users))
    return eer - eer_user_shuffled(g_users, s_users, rounds=rounds, seed=seed)


def user_aucs(genuine: ScoreList, skilled: ScoreList) -> np.ndarray:
    """ROC AUC of genuine vs skilled scores for each user (NaN where undefined)."""
    from sklearn.metrics import roc_auc_score

    out = np.full(len(genuine), np.nan)
    for i, (g_u, s_u) in enumerate(zip(genuine, skilled, strict=True)):
        g_u, s_u = _as_scores(g_u), _as_scores(s_u)
        if g_u.size and s_u.size:
            out[i] = roc_auc_score(np.r_[np.ones(g_u.size), np.zeros(s_u.size)], np.r_[g_u, s_u])
    return out


def _concat(scores: ScoreList) -> np.ndarray:
    arrays = [_as_scores(s) for s in scores]
    return np.concatenate(arrays) if arrays else np.zeros(0)


def compute_metrics(
    genuine: ScoreList, random: ScoreList, skilled: ScoreList, threshold: float = 0.0
) -> Metrics:
    """All metrics of one fold.

    Parameters
    ----------
    genuine, random, skilled : sequence of ndarray
        Per-user scores of test genuines, random forgeries and skilled forgeries.
    threshold : float, default 0
        Decision threshold for FRR / FAR (0 = the classifiers' own).

    Returns
    -------
    Metrics
    """
    all_g, all_r, all_s = _concat(genuine), _concat(random), _concat(skilled)
    if all_s.size and all_g.size:
        eer, t = eer_global(all_g, all_s)
    else:
        eer, t = float("nan"), float("nan")
    aucs = user_aucs(genuine, skilled)
    return Metrics(
        FRR=frr(all_g, threshold),
        FAR_random=far(all_r, threshold),
        FAR_skilled=far(all_s, threshold),
        AUC=float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan"),
        EER_global=eer,
        EER_user=eer_user_thresholds(genuine, skilled),
        EER_global_threshold=t,
        n_genuine=int(all_g.size),
        n_random=int(all_r.size),
        n_skilled=int(all_s.size),
    )


def operating_point(
    genuine: np.ndarray, random: np.ndarray, skilled: np.ndarray, threshold: float
) -> dict[str, float]:
    """FRR, FAR_random, FAR_skilled and their skilled mean at a fixed threshold.

    Used for the a-priori operating point, where ``threshold`` was chosen on
    other data (other folds) and is applied unchanged.
    """
    r = {
        "threshold": float(threshold),
        "FRR": frr(genuine, threshold),
        "FAR_random": far(random, threshold),
        "FAR_skilled": far(skilled, threshold),
    }
    r["HTER_skilled"] = (r["FRR"] + r["FAR_skilled"]) / 2.0
    return r

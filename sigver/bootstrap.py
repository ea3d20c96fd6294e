"""Writer-bootstrap intervals of a deployment's error rates and EERs.

A population of 32 writers says little about the next 32: fold standard deviations show how
much the reference draw moves a figure, not how much the writers themselves do. A writer
bootstrap draws the writers with replacement (the same draw in every fold, so a writer keeps
all of their folds) and reads the figures again on each draw; the percentile interval of the
draws is what ``sigver evaluate --negatives model --bootstrap N`` and
``scripts/threshold_transfer.py`` report.

What depends on one writer alone is computed once (:class:`WriterDraws`): the errors at that
writer's own a-posteriori threshold, which EER_user pools
(:func:`sigver.metrics.eer_user_thresholds`). A draw then only pools the drawn writers' scores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from sigver.metrics import eer_global, eer_threshold, far, frr

__all__ = [
    "PAIRED_FIGURES",
    "WriterDraws",
    "bootstrap_intervals",
    "paired_intervals",
    "percentile_interval",
    "transfer_intervals",
    "writer_intervals",
]


class WriterDraws:
    """One population's fold scores (:class:`~sigver.evaluation.FoldScores`), ready to be
    redrawn by writer.

    Parameters
    ----------
    scores : sequence of FoldScores
        Every fold, with the same writers in the same order.

    Raises
    ------
    ValueError
        No fold, or folds that list different numbers of writers.
    """

    def __init__(self, scores: Sequence[Any]) -> None:
        if not scores:
            raise ValueError("no fold to draw writers from")
        sizes = {len(getattr(f, part)) for f in scores for part in ("genuine", "skilled", "random")}
        if len(sizes) != 1:
            raise ValueError(f"folds list different numbers of writers: {sorted(sizes)}")
        self.genuine = [[np.ravel(a) for a in f.genuine] for f in scores]
        self.skilled = [[np.ravel(a) for a in f.skilled] for f in scores]
        self.random = [[np.ravel(a) for a in f.random] for f in scores]
        self.counts = []
        for gs, ss in zip(self.genuine, self.skilled, strict=True):
            c = np.zeros((len(gs), 4))
            for u, (g, s) in enumerate(zip(gs, ss, strict=True)):
                # Writers lacking either kind are left out, as eer_user_thresholds does.
                if g.size and s.size:
                    t = eer_threshold(g, s)
                    c[u] = (np.sum(g < t), g.size, np.sum(s >= t), s.size)
            self.counts.append(c)

    @property
    def n(self) -> int:
        """Writers per fold."""
        return len(self.genuine[0])

    def draw(self, idx: np.ndarray, threshold: float | None = None) -> dict[str, float]:
        """Fold means of EER_global and EER_user of the writers ``idx`` (repeats allowed),
        and of FRR, FAR_skilled and FAR_random at ``threshold`` when one is given."""
        per: dict[str, list[float]] = {
            "EER_global": [],
            "EER_user": [],
            "FRR": [],
            "FAR_skilled": [],
            "FAR_random": [],
        }
        for gs, ss, rs, c in zip(self.genuine, self.skilled, self.random, self.counts, strict=True):
            g = np.concatenate([gs[i] for i in idx])
            s = np.concatenate([ss[i] for i in idx])
            per["EER_global"].append(eer_global(g, s)[0] if g.size and s.size else float("nan"))
            tot = c[idx].sum(axis=0)
            per["EER_user"].append(
                (tot[0] / tot[1] + tot[2] / tot[3]) / 2 if tot[1] and tot[3] else float("nan")
            )
            if threshold is not None:
                r = np.concatenate([rs[i] for i in idx])
                per["FRR"].append(frr(g, threshold))
                per["FAR_skilled"].append(far(s, threshold))
                per["FAR_random"].append(far(r, threshold))
        # As the fold summaries do (sigver.evaluation), a fold where a figure is undefined
        # is left out of its mean; NaN only when no fold defines it.
        return {k: _mean_defined(v) for k, v in per.items() if v}


def _mean_defined(values: list[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def percentile_interval(values: Sequence[float], level: float = 0.9) -> list[float]:
    """The central ``level`` percentile interval of the finite values; NaNs when none is."""
    if not 0 < level < 1:
        raise ValueError("level must lie in (0, 1)")
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return [float("nan"), float("nan")]
    tail = 100 * (1 - level) / 2
    return [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))]


def bootstrap_intervals(
    draw: Callable[[np.random.Generator], Mapping[str, float]],
    *,
    rounds: int = 200,
    seed: int = 0,
    level: float = 0.9,
) -> dict[str, Any]:
    """Percentile intervals of the figures ``draw(rng)`` returns, over ``rounds`` calls.

    ``draw`` makes one bootstrap draw with the generator it is given (seeded by ``seed``)
    and returns its figures by name. Returns ``rounds``, ``level``, ``undefined`` (per
    figure, the draws where it is not finite, left out of its interval) and ``[low, high]``
    per figure.
    """
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    if not 0 < level < 1:
        raise ValueError("level must lie in (0, 1)")
    rng = np.random.default_rng(seed)
    values: dict[str, list[float]] = {}
    for _ in range(rounds):
        for k, v in draw(rng).items():
            values.setdefault(k, []).append(v)
    return _intervals(values, rounds, level)


def _intervals(values: Mapping[str, Sequence[float]], rounds: int, level: float) -> dict[str, Any]:
    """:func:`bootstrap_intervals`' dict from each figure's drawn values."""
    return {
        "rounds": rounds,
        "level": level,
        "undefined": {
            k: int(np.sum(~np.isfinite(np.asarray(v, dtype=float)))) for k, v in values.items()
        },
        **{k: percentile_interval(v, level) for k, v in values.items()},
    }


def writer_intervals(
    scores: Sequence[Any],
    threshold: float | None = None,
    *,
    rounds: int = 200,
    seed: int = 0,
    level: float = 0.9,
) -> dict[str, Any]:
    """Percentile intervals of a population's figures over writer bootstraps.

    Parameters
    ----------
    scores : sequence of FoldScores
        Every fold of one deployment simulation (or evaluation).
    threshold : float, optional
        The deployed threshold: FRR, FAR_skilled and FAR_random at it are drawn too.
    rounds, seed, level
        Draws, their seed, and the intervals' coverage.

    Returns
    -------
    dict
        :func:`bootstrap_intervals`' dict, the figures as fractions (as the summaries).
    """
    draws = WriterDraws(scores)
    return bootstrap_intervals(
        lambda rng: draws.draw(rng.integers(draws.n, size=draws.n), threshold),
        rounds=rounds,
        seed=seed,
        level=level,
    )


#: Figures :func:`paired_intervals` compares (``gap`` = EER_global - EER_user).
PAIRED_FIGURES = ("EER_global", "EER_user", "gap", "FRR", "FAR_skilled", "FAR_random")


def paired_intervals(
    a: Sequence[Any],
    b: Sequence[Any],
    thresholds: tuple[float | None, float | None] = (None, None),
    *,
    rounds: int = 1000,
    seed: int = 0,
    level: float = 0.9,
) -> dict[str, Any]:
    """Writer-bootstrap comparison of two evaluations of the same writers.

    Each draw picks the writers once and reads both evaluations on them, so what the
    writers share (a user whose forgeries are hard for every model) cancels out of the
    difference, which an interval of each figure alone cannot show.

    Parameters
    ----------
    a, b : sequence of FoldScores
        The two evaluations' folds: the same writers in the same order, the same folds.
    thresholds : (float or None, float or None)
        Each one's deployed threshold: FRR, FAR_skilled and FAR_random at it are compared
        when both are given.
    rounds, seed, level
        Draws, their seed, and the intervals' coverage.

    Returns
    -------
    dict
        ``rounds``, ``level``; ``point`` (each figure of ``a`` and ``b`` on all writers);
        ``a``, ``b`` and ``difference`` (``b - a``): :func:`bootstrap_intervals`' dicts;
        ``b_lower`` (per figure, the share of draws in which ``b``'s figure is below
        ``a``'s, among those defining both).

    Raises
    ------
    ValueError
        Different numbers of folds or writers.
    """
    da, db = WriterDraws(a), WriterDraws(b)
    if len(da.genuine) != len(db.genuine) or da.n != db.n:
        raise ValueError(
            f"the evaluations differ: {len(da.genuine)} folds x {da.n} writers against "
            f"{len(db.genuine)} x {db.n}"
        )
    ta, tb = thresholds
    if ta is None or tb is None:
        ta = tb = None

    def figures(draws: WriterDraws, idx: np.ndarray, t: float | None) -> dict[str, float]:
        out = draws.draw(idx, t)
        out["gap"] = out["EER_global"] - out["EER_user"]
        return {k: out[k] for k in PAIRED_FIGURES if k in out}

    everyone = np.arange(da.n)
    point = {"a": figures(da, everyone, ta), "b": figures(db, everyone, tb)}
    drawn: dict[str, list[dict[str, float]]] = {"a": [], "b": []}

    def one(rng: np.random.Generator) -> dict[str, float]:
        idx = rng.integers(da.n, size=da.n)
        fa, fb = figures(da, idx, ta), figures(db, idx, tb)
        drawn["a"].append(fa)
        drawn["b"].append(fb)
        return {k: fb[k] - fa[k] for k in fa}

    difference = bootstrap_intervals(one, rounds=rounds, seed=seed, level=level)
    b_lower = {}
    for k in point["a"]:
        va = np.array([d[k] for d in drawn["a"]])
        vb = np.array([d[k] for d in drawn["b"]])
        ok = np.isfinite(va) & np.isfinite(vb)
        b_lower[k] = float(np.mean(vb[ok] < va[ok])) if ok.any() else float("nan")

    def intervals(side: str) -> dict[str, Any]:
        return _intervals({k: [d[k] for d in drawn[side]] for k in point[side]}, rounds, level)

    return {
        "rounds": rounds,
        "level": level,
        "point": point,
        "a": intervals("a"),
        "b": intervals("b"),
        "difference": difference,
        "b_lower": b_lower,
    }


def transfer_intervals(
    decided: Sequence[Any],
    raw: Sequence[Any],
    threshold: float,
    *,
    rounds: int = 200,
    seed: int = 0,
    level: float = 0.9,
    bound: float | None = None,
    target: float | None = None,
) -> dict[str, Any]:
    """Writer-bootstrap intervals of issue 10's ratios (:func:`sigver.evaluation.transfer_check`).

    Each draw picks the writers once and reads, on them, FRR and FAR_skilled at
    ``threshold`` over EER_global of the ``decided`` scores, and the decided gap
    EER_global - EER_user over the gap of the same writers' ``raw`` scores. With the same
    ``seed`` the draws are those of :func:`writer_intervals`.

    Parameters
    ----------
    decided, raw : sequence of FoldScores
        The decided scores and the same writers' raw SVM scores, fold by fold.
    threshold : float
        The deployed threshold.
    rounds, seed, level
        Draws, their seed, and the intervals' coverage.
    bound, target : float, optional
        The rate ratios' bound and the gap ratio's target (default
        :data:`sigver.evaluation.TRANSFER_BOUND` and :data:`~sigver.evaluation.GAP_TARGET`).

    Returns
    -------
    dict
        :func:`bootstrap_intervals`' dict of ``FRR_over_EER_global``,
        ``FAR_skilled_over_EER_global`` and ``gap_ratio``, plus ``share_holds`` (the share
        of draws with both rate ratios within ``bound``) and ``share_halved`` (the share
        with a gap ratio of at most ``target``). Unlike ``transfer_check``'s flags, which
        count an undefined ratio as failing, the shares leave out the draws where a ratio
        is undefined (NaN when no draw defines it). ``figures``: the decided scores' own
        intervals on the same draws, :func:`writer_intervals`' dict for the same ``seed``.

    Raises
    ------
    ValueError
        Different numbers of folds or writers.
    """
    from sigver.evaluation import GAP_TARGET, TRANSFER_BOUND

    bound = TRANSFER_BOUND if bound is None else bound
    target = GAP_TARGET if target is None else target
    dd, dr = WriterDraws(decided), WriterDraws(raw)
    if len(dd.genuine) != len(dr.genuine) or dd.n != dr.n:
        raise ValueError(
            f"the decided and raw scores differ: {len(dd.genuine)} folds x {dd.n} writers "
            f"against {len(dr.genuine)} x {dr.n}"
        )

    def ratio(a: float, b: float) -> float:
        return a / b if np.isfinite(a) and np.isfinite(b) and b > 0 else float("nan")

    drawn: list[dict[str, float]] = []
    figures: list[dict[str, float]] = []

    def one(rng: np.random.Generator) -> dict[str, float]:
        idx = rng.integers(dd.n, size=dd.n)
        d, r = dd.draw(idx, threshold), dr.draw(idx)
        figures.append(d)
        drawn.append(
            {
                "FRR_over_EER_global": ratio(d["FRR"], d["EER_global"]),
                "FAR_skilled_over_EER_global": ratio(d["FAR_skilled"], d["EER_global"]),
                "gap_ratio": ratio(
                    d["EER_global"] - d["EER_user"], r["EER_global"] - r["EER_user"]
                ),
            }
        )
        return drawn[-1]

    result = bootstrap_intervals(one, rounds=rounds, seed=seed, level=level)
    fr = np.array([x["FRR_over_EER_global"] for x in drawn])
    fa = np.array([x["FAR_skilled_over_EER_global"] for x in drawn])
    gr = np.array([x["gap_ratio"] for x in drawn])
    both = np.isfinite(fr) & np.isfinite(fa)
    result["share_holds"] = (
        float(np.mean((fr[both] <= bound) & (fa[both] <= bound))) if both.any() else float("nan")
    )
    ok = np.isfinite(gr)
    result["share_halved"] = float(np.mean(gr[ok] <= target)) if ok.any() else float("nan")
    # The decided figures of the same draws, so that a caller needs no second bootstrap.
    result["figures"] = _intervals({k: [d[k] for d in figures] for k in figures[0]}, rounds, level)
    return result

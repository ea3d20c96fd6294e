"""Evaluation plots: DET curve, ROC curve and score distributions (PNG, Agg backend)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sigver._util import atomic_open
from sigver.metrics import eer_threshold, error_rates_at_thresholds

__all__ = ["plot_det", "plot_roc", "plot_score_distributions", "write_plots"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _curves(
    genuine: np.ndarray, random: np.ndarray, skilled: np.ndarray
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, frr, far)`` over all thresholds for skilled and random forgeries that exist."""
    for name, forg in (("skilled", skilled), ("random", random)):
        if forg.size == 0 or genuine.size == 0:
            continue
        thresholds = np.unique(np.r_[genuine, forg, np.inf])
        frr, far = error_rates_at_thresholds(genuine, forg, thresholds)
        yield name, frr, far


def _save(plt, fig, path: Path) -> Path:
    """Write ``fig`` as PNG and close it (also when writing fails)."""
    try:
        # Atomic: a crashed run never leaves a half-written PNG that looks valid.
        with atomic_open(path, "wb") as fh:
            fig.savefig(fh, dpi=120, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return path


def _eer_point(frr: np.ndarray, far: np.ndarray) -> tuple[float, float]:
    """(FAR, FRR) where the two rates are closest: the EER point of a curve."""
    i = int(np.argmin(np.abs(frr - far)))
    return float(far[i]), float(frr[i])


def _rates_at(genuine: np.ndarray, forg: np.ndarray, threshold: float) -> tuple[float, float]:
    frr, far = error_rates_at_thresholds(genuine, forg, np.array([threshold]))
    return float(far[0]), float(frr[0])


def _title(kind: str, title: str) -> str:
    return f"{kind}: {title}" if title else kind


def _draw_curves(
    ax,
    genuine: np.ndarray,
    random: np.ndarray,
    skilled: np.ndarray,
    xy: Callable[[Any, Any], tuple[Any, Any]],
    threshold: float | None,
    *,
    with_rates: bool = False,
) -> None:
    """Each curve with its EER point (circle) and the point at ``threshold`` (cross).

    ``xy(far, frr)`` maps error rates to the axes' coordinates (probit for DET,
    percent for ROC), so both plots mark the same points the same way.
    """
    for name, frr, far in _curves(genuine, random, skilled):
        (line,) = ax.plot(*xy(far, frr), label=name)
        e_far, e_frr = _eer_point(frr, far)
        ax.plot(
            *xy(e_far, e_frr),
            "o",
            color=line.get_color(),
            label=f"{name} EER {100 * (e_far + e_frr) / 2:.1f}%",
        )
        if threshold is None:
            continue
        forg = skilled if name == "skilled" else random
        t_far, t_frr = _rates_at(genuine, forg, threshold)
        label = f"{name} at t={threshold:+.3f}"
        if with_rates:
            label += f": FAR {100 * t_far:.1f}%, FRR {100 * t_frr:.1f}%"
        ax.plot(*xy(t_far, t_frr), "x", ms=9, mew=2, color=line.get_color(), label=label)


def plot_det(
    genuine: np.ndarray,
    random: np.ndarray,
    skilled: np.ndarray,
    path: Path,
    *,
    title: str = "",
    threshold: float | None = None,
) -> Path:
    """DET curve (FRR vs FAR in %, probit axes) for skilled and random forgeries.

    Each curve marks its EER point (circle) and, when ``threshold`` is given,
    the operating point at that deployed threshold (cross).
    """
    from scipy.stats import norm

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    eps = 1e-4

    def probit(v: float | np.ndarray) -> np.ndarray:
        return norm.ppf(np.clip(v, eps, 1 - eps))

    _draw_curves(
        ax,
        genuine,
        random,
        skilled,
        lambda far, frr: (probit(far), probit(frr)),
        threshold,
        with_rates=True,
    )
    ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.5, 0.8])
    ax.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    ax.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    ax.set_xlim(norm.ppf(eps), norm.ppf(0.9))
    ax.set_ylim(norm.ppf(eps), norm.ppf(0.9))
    ax.set_xlabel("FAR (%)")
    ax.set_ylabel("FRR (%)")
    ax.set_title(_title("DET", title), fontsize=9)
    ax.grid(True, alpha=0.3)
    # Below the axes: inside, the legend would hide the low-error corner that matters.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=8, ncol=1)
    return _save(plt, fig, path)


def plot_roc(
    genuine: np.ndarray,
    random: np.ndarray,
    skilled: np.ndarray,
    path: Path,
    *,
    title: str = "",
    threshold: float | None = None,
) -> Path:
    """ROC curve (1 - FRR vs FAR, both in %) for skilled and random forgeries."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    _draw_curves(
        ax, genuine, random, skilled, lambda far, frr: (100 * far, 100 * (1 - frr)), threshold
    )
    ax.plot([0, 100], [0, 100], "k:", lw=0.8)
    ax.set_xlabel("FAR (%)")
    ax.set_ylabel("1 - FRR (%)")
    ax.set_title(_title("ROC", title), fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=8)
    return _save(plt, fig, path)


def plot_score_distributions(
    genuine: np.ndarray,
    random: np.ndarray,
    skilled: np.ndarray,
    path: Path,
    *,
    title: str = "",
    threshold: float | None = None,
) -> Path:
    """Histograms of the decision values of genuine, random and skilled samples.

    The vertical line is ``threshold`` (the deployed one) when given. Without a
    deployed threshold it is the a-posteriori global EER threshold of these scores
    (against skilled forgeries, else random ones), which is where the figures of
    the EER table are read; the legend says which.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    allv = np.r_[genuine, random, skilled]
    bins = np.linspace(allv.min(), allv.max(), 60) if allv.size else 10
    for name, vals in (("genuine", genuine), ("random", random), ("skilled", skilled)):
        if vals.size:
            ax.hist(vals, bins=bins, density=True, alpha=0.5, label=f"{name} (n={vals.size})")
    if threshold is None:
        forg, kind = (skilled, "skilled") if skilled.size else (random, "random")
        if genuine.size and forg.size:
            t = eer_threshold(genuine, forg)
            ax.axvline(
                t,
                color="k",
                lw=0.8,
                ls=":",
                label=f"EER threshold {t:+.3f}\n(a posteriori, {kind})",
            )
    else:
        ax.axvline(threshold, color="k", lw=1.0, ls="--", label=f"threshold {threshold:+.3f}")
    ax.set_xlabel("decision value")
    ax.set_ylabel("density")
    ax.set_title(_title("Score distributions", title), fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return _save(plt, fig, path)


def write_plots(
    genuine: np.ndarray,
    random: np.ndarray,
    skilled: np.ndarray,
    out_dir: Path,
    *,
    title: str = "",
    threshold: float | None = None,
) -> list[Path]:
    """Write ``det.png``, ``roc.png`` and ``scores.png`` into ``out_dir``.

    Parameters
    ----------
    genuine, random, skilled : ndarray
        Pooled scores.
    out_dir : Path
        Destination folder (created).
    title : str
        Model and protocol, shown in every title.
    threshold : float, optional
        Deployed threshold to mark (operating points and the score line).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    g, r, s = (np.asarray(a, dtype=np.float64) for a in (genuine, random, skilled))
    kw = {"title": title, "threshold": threshold}
    return [
        plot_det(g, r, s, out_dir / "det.png", **kw),
        plot_roc(g, r, s, out_dir / "roc.png", **kw),
        plot_score_distributions(g, r, s, out_dir / "scores.png", **kw),
    ]

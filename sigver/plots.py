"""Evaluation plots: DET curve, ROC curve and score distributions (PNG, Agg backend)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from sigver._util import atomic_open
from sigver.metrics import error_rates_at_thresholds

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


def plot_det(genuine: np.ndarray, random: np.ndarray, skilled: np.ndarray, path: Path) -> Path:
    """DET curve (FRR vs FAR on probit axes) for skilled and random forgeries."""
    from scipy.stats import norm

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    eps = 1e-4
    for name, frr, far in _curves(genuine, random, skilled):
        ax.plot(
            norm.ppf(np.clip(far, eps, 1 - eps)), norm.ppf(np.clip(frr, eps, 1 - eps)), label=name
        )
    ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.5, 0.8])
    ax.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    ax.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    ax.set_xlim(norm.ppf(eps), norm.ppf(0.9))
    ax.set_ylim(norm.ppf(eps), norm.ppf(0.9))
    ax.set_xlabel("FAR (%)")
    ax.set_ylabel("FRR (%)")
    ax.set_title("DET curve (all folds pooled)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _save(plt, fig, path)


def plot_roc(genuine: np.ndarray, random: np.ndarray, skilled: np.ndarray, path: Path) -> Path:
    """ROC curve (TPR = 1 - FRR vs FAR) for skilled and random forgeries."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, frr, far in _curves(genuine, random, skilled):
        ax.plot(far, 1 - frr, label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("FAR")
    ax.set_ylabel("1 - FRR")
    ax.set_title("ROC curve (all folds pooled)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    return _save(plt, fig, path)


def plot_score_distributions(
    genuine: np.ndarray, random: np.ndarray, skilled: np.ndarray, path: Path
) -> Path:
    """Histograms of the decision values of genuine, random and skilled samples."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    allv = np.r_[genuine, random, skilled]
    bins = np.linspace(allv.min(), allv.max(), 60) if allv.size else 10
    for name, vals in (("genuine", genuine), ("random", random), ("skilled", skilled)):
        if vals.size:
            ax.hist(vals, bins=bins, density=True, alpha=0.5, label=f"{name} (n={vals.size})")
    ax.axvline(0.0, color="k", lw=0.8, ls="--", label="threshold 0")
    ax.set_xlabel("decision value")
    ax.set_ylabel("density")
    ax.set_title("Score distributions (all folds pooled)")
    ax.legend()
    return _save(plt, fig, path)


def write_plots(
    genuine: np.ndarray, random: np.ndarray, skilled: np.ndarray, out_dir: Path
) -> list[Path]:
    """Write ``det.png``, ``roc.png`` and ``scores.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    g, r, s = (np.asarray(a, dtype=np.float64) for a in (genuine, random, skilled))
    return [
        plot_det(g, r, s, out_dir / "det.png"),
        plot_roc(g, r, s, out_dir / "roc.png"),
        plot_score_distributions(g, r, s, out_dir / "scores.png"),
    ]

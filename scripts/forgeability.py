"""Does anything an enrollment sees say how close a user's skilled forgeries come?

``gap_sources.py`` found that the spread and mean of a user's leave-one-out reference
scores, and warped copies of the references, explain almost none (R^2 0.00-0.07) of
where each user's a-posteriori threshold lies once the product's normaliser and cue
are applied: that residual is what keeps EER_global above EER_user (issue 10). The
handwriting literature has a different hypothesis: a simple signature (little ink,
few strokes, few pen-lifts) is easier to imitate, so its forgeries land closer to the
genuine ones. This script tests it, together with where the user sits among other
writers, from statistics of the *references only*:

- **image** (the preprocessed images every model reads, mean over the references):
  ink fraction, number of connected ink components, contour length over the square
  root of the ink area (how convoluted the strokes are), ink width over canvas width;
- **feature space**: spread of the references (mean distance to their centroid) and the
  mean distance from the centroid to the ``k`` nearest background signatures, over the
  background's own median nearest-neighbour distance;
- **scores**: the mean of the ``k`` highest decision values the user's classifier gives
  to the background it was trained against (its hardest negatives; in-sample, the same
  for every user).

Per population (enrolled as ``Verifier.enroll`` enrolls, decided with the model's
stored cue as ``Verifier.verify`` decides), it reports the Spearman correlation of each
statistic with three per-user targets on the decided scores (the a-posteriori EER
threshold, the median skilled-forgery score and the median test-genuine score), and the
in-sample R^2 of a linear fit of the threshold on all of them.

Then the test that matters, with the fitting rule fixed before the run (committed
with this script): a ridge regression (``alpha`` 1 on standardised statistics) of the
user's threshold on the statistics is fitted on one population's users and subtracted
as a further per-user shift on another population, in issue 10's three held-out
directions (synthetic-a -> SigComp 038-069, SigComp 001-037 -> synthetic-b, SigComp
001-037 -> 038-069) and from both calibration populations pooled. A per-user shift
leaves EER_user unchanged, so only EER_global and the gap move; the table gives the gap
over the raw scores' gap (target <= 0.5) next to the product's. The cue was fitted on
SigComp 001-037, so its thresholds there are in-sample.

Nothing here changes the product; a statistic that halves the gap in the held-out
directions would become a normaliser candidate for a later plan.

Usage::

    python scripts/forgeability.py --sigcomp ../shared/data/sigcomp2011 \\
        --work runs/tt-v3-boot/work --out runs/forgeability [--model M] [--jobs 2]

Writes ``OUT/forgeability.md`` and ``OUT/forgeability.json``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gap_sources import (  # noqa: E402
    POPULATIONS,
    _same_scores,
    gap_of,
    product_locs,
    shifted,
)
from threshold_transfer import (  # noqa: E402
    _caches,
    _users,
    add_study_arguments,
    decision_of,
    open_model,
    protocol_record,
    simulate_population,
    with_cue,
    write_report,
)

from sigver.metrics import eer_threshold  # noqa: E402

#: Per-image statistics of :func:`image_stats`, in column order.
IMAGE_STATS = ("ink fraction", "ink components", "contour / sqrt(ink)", "ink width")
#: Per-user statistics of the feature space and the scores.
OTHER_STATS = ("reference spread", "distance to background", "hardest negatives")
STATS = IMAGE_STATS + OTHER_STATS
#: Per-user targets read off the decided test scores.
TARGETS = ("EER threshold", "median skilled", "median genuine")
#: (fit on, applied to): issue 10's held-out directions, and the pooled fit.
DIRECTIONS = (
    (("synthetic-a",), "sigcomp-exp"),
    (("sigcomp-dev",), "synthetic-b"),
    (("sigcomp-dev",), "sigcomp-exp"),
    (("synthetic-a", "sigcomp-dev"), "sigcomp-exp"),
    (("synthetic-a", "sigcomp-dev"), "synthetic-b"),
)
#: Ridge strength on standardised statistics (fixed before the run).
RIDGE_ALPHA = 1.0
#: Components smaller than this many pixels are specks, not strokes.
MIN_COMPONENT = 5


def image_stats(image: np.ndarray) -> np.ndarray:
    """:data:`IMAGE_STATS` of one preprocessed image (ink > 0 on a zero background).

    A blank image gives zeros (no ink, no component), never a division by zero.
    """
    ink = np.asarray(image) > 0
    area = int(ink.sum())
    if area == 0:
        return np.zeros(len(IMAGE_STATS))
    mask = ink.astype(np.uint8)
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    components = int(np.sum(stats[1:, cv2.CC_STAT_AREA] >= MIN_COMPONENT))
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = float(sum(cv2.arcLength(c, True) for c in contours))
    cols = np.flatnonzero(ink.any(axis=0))
    width = (cols[-1] - cols[0] + 1) / ink.shape[1]
    return np.array([area / ink.size, components, perimeter / np.sqrt(area), width])


def ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float = RIDGE_ALPHA) -> dict[str, Any]:
    """Ridge regression of ``y`` on the columns of ``x``, standardised on ``x``.

    A constant column gets scale 1 (it carries no information, and must not divide
    by zero). The intercept is not penalised.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    z = (x - mu) / sd
    beta = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return {"mu": mu, "sd": sd, "beta": beta, "intercept": float(y.mean())}


def ridge_predict(fit: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Predictions of :func:`ridge_fit`'s model for the rows of ``x``."""
    z = (np.asarray(x, np.float64) - fit["mu"]) / fit["sd"]
    return fit["intercept"] + z @ fit["beta"]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN for a constant input."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def user_targets(scores: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per (fold, user), :data:`TARGETS` of the decided scores, and which rows have them.

    A user needs test genuines and skilled forgeries for a threshold; the others are
    left out of every fit and correlation (``valid`` is False), but keep their row.
    """
    rows, valid = [], []
    for fold in scores:
        for g, s in zip(fold.genuine, fold.skilled, strict=True):
            g, s = np.ravel(g), np.ravel(s)
            ok = bool(g.size and s.size)
            valid.append(ok)
            rows.append([eer_threshold(g, s), np.median(s), np.median(g)] if ok else [np.nan] * 3)
    return np.asarray(rows), np.asarray(valid)


def user_stats(
    run: Any, fs: Any, per_image: np.ndarray, background: np.ndarray, *, k: int
) -> np.ndarray:
    """Per (fold, user), :data:`STATS` from the user's references only.

    ``run.probes`` holds each user's mean of the ``k`` highest background scores
    (:func:`_hardest_probe`). Distances are in the raw feature space, the distance to
    the background over the background's own median nearest-neighbour distance.
    """
    d2 = _sq_dists(background, background)
    np.fill_diagonal(d2, np.inf)
    scale = float(np.median(np.sqrt(np.sort(d2, axis=1)[:, :k]).mean(axis=1)))
    feats = np.asarray(fs.features, np.float64)
    out = []
    for split, probes in zip(run.splits, run.probes, strict=True):
        for refs, hardest in zip(split.refs, probes, strict=True):
            f = feats[refs]
            centre = f.mean(axis=0, keepdims=True)
            spread = float(np.linalg.norm(f - centre, axis=1).mean())
            near = np.sqrt(np.sort(_sq_dists(centre, background)[0])[:k]).mean()
            out.append([*per_image[refs].mean(axis=0), spread, near / scale, float(hardest)])
    return np.asarray(out)


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.maximum(d2, 0.0)


def _hardest_probe(background: np.ndarray, k: int):
    def probe(model: Any, split: Any, i: int) -> float:
        return float(np.sort(model.raw_scores(background))[-k:].mean())

    return probe


def decided_run(
    name: str, fs: Any, bg: Any, cue: Any, norm: str, args: Any, probe: Any = None
) -> dict[str, Any]:
    """One population enrolled as ``Verifier.enroll`` enrolls, decided as ``Verifier.verify``
    decides (the model's stored cue on when it has one).

    Returns the run, its scores minus the cue's penalties (``base``), the decided scores
    (``decided``: ``base`` shifted per user by the product's normaliser, checked) and the
    raw SVM scores' gap EER_global - EER_user (``raw_gap``, a fraction).
    """
    run = simulate_population(name, fs, bg, norm, args, probe=probe)
    if cue is not None:
        run = with_cue(run, cue[0], cue[1], fs)
    base = run.scores("none")
    decided = run.scores(norm)
    if not _same_scores(shifted(base, product_locs(run, norm)), decided):
        # Further shifts are added to these locations: they must be the product's.
        raise RuntimeError(f"{name}: {norm} is not a per-user shift of the scores")
    return {
        "run": run,
        "base": base,
        "decided": decided,
        "raw_gap": gap_of([(f.genuine, f.skilled) for f in run.raw])["gap"],
    }


def _population(name: str, fs: Any, per_image: np.ndarray, bg: Any, cue: Any, norm: str, args):
    """:func:`decided_run` with the reference statistics and the per-user targets.

    The statistics read the background the users were enrolled against: the rows of the
    population's own writers dropped, as :func:`~sigver.evaluation.simulate_deployment`
    drops them (the shipped background holds SigComp 001-037, whose own signatures would
    otherwise be their nearest and hardest "negatives").
    """
    from sigver.calibration import foreign_mask

    keep = foreign_mask(bg, fs, list(_users(name, fs)), fs.meta.get("dataset"))
    background = np.asarray(bg.features, np.float64)[keep]
    pop = decided_run(name, fs, bg, cue, norm, args, probe=_hardest_probe(background, args.k))
    targets, valid = user_targets(pop["decided"])
    pop.update(
        stats=user_stats(pop["run"], fs, per_image, background, k=args.k),
        targets=targets,
        valid=valid,
    )
    return pop


def _locs(pop: dict[str, Any], norm: str, offsets: np.ndarray) -> list[list[float]]:
    """The product's per-user locations plus ``offsets`` (one per (fold, user) row)."""
    locs, k = [], 0
    for fold in product_locs(pop["run"], norm):
        locs.append([loc + float(offsets[k + j]) for j, loc in enumerate(fold)])
        k += len(fold)
    return locs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_study_arguments(parser, "runs/forgeability")
    parser.add_argument("-k", type=int, default=5, help="nearest / hardest background rows")
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error("-k must be >= 1")
    start = time.perf_counter()
    model, extractor, background = open_model(parser, args)

    cue, norm = decision_of(parser, extractor, model, needs_lcb=True)
    caches = _caches(args)
    feats = {key: extractor.extract_featureset(c, progress=False) for key, c in caches.items()}
    per_image = {key: np.stack([image_stats(im[0]) for im in c.x]) for key, c in caches.items()}
    pops = {}
    for name in POPULATIONS:
        key = "synthetic" if name.startswith("synthetic") else "sigcomp"
        t0 = time.perf_counter()
        pops[name] = _population(name, feats[key], per_image[key], background, cue, norm, args)
        logging.info("%s in %.1f s", name, time.perf_counter() - t0)

    results: dict[str, Any] = {"populations": {}, "directions": []}
    for name, pop in pops.items():
        v = pop["valid"]
        x, t = pop["stats"][v], pop["targets"][v]
        fit = ridge_fit(x, t[:, 0])
        resid = t[:, 0] - ridge_predict(fit, x)
        own = gap_of(shifted(pop["base"], _locs(pop, norm, np.zeros(len(v)))))
        results["populations"][name] = {
            "users": int(v.sum()),
            "spearman": {
                s: {tn: spearman(x[:, i], t[:, j]) for j, tn in enumerate(TARGETS)}
                for i, s in enumerate(STATS)
            },
            "r2_in_sample": float(1 - resid.var() / t[:, 0].var()),
            "stat_means": dict(zip(STATS, x.mean(axis=0).tolist(), strict=True)),
            "raw_gap": pop["raw_gap"],
            "product": own,
        }
    for fit_on, apply_to in DIRECTIONS:
        xs = np.concatenate([pops[n]["stats"][pops[n]["valid"]] for n in fit_on])
        ts = np.concatenate([pops[n]["targets"][pops[n]["valid"], 0] for n in fit_on])
        fit = ridge_fit(xs, ts)
        target = pops[apply_to]
        # Users without a threshold still get a predicted shift (from references only).
        offsets = ridge_predict(fit, target["stats"]) - fit["intercept"]
        shifted_gap = gap_of(shifted(target["base"], _locs(target, norm, offsets)))
        product = results["populations"][apply_to]["product"]
        results["directions"].append(
            {
                "fit_on": list(fit_on),
                "apply_to": apply_to,
                "coefficients": dict(zip(STATS, fit["beta"].tolist(), strict=True)),
                "product": product,
                "with_shift": shifted_gap,
                "raw_gap": target["raw_gap"],
            }
        )

    def pct(v: float) -> str:
        return f"{100 * v:.2f}"

    lines = [
        f"# What an enrollment sees about a user's forgeries ({extractor.model_id}, "
        f"normaliser {norm}, cue {'on' if cue else 'absent'})",
        "",
        "Spearman correlation of each reference statistic with the user's EER threshold / "
        "median skilled score / median genuine score, on the decided scores (per fold and "
        "user); last row: in-sample R² of a linear fit of the threshold on all statistics.",
        "",
        "| statistic | " + " | ".join(POPULATIONS) + " |",
        "|---|" + "---|" * len(POPULATIONS),
    ]
    for s in STATS:
        cells = []
        for name in POPULATIONS:
            r = results["populations"][name]["spearman"][s]
            cells.append(" / ".join(f"{r[tn]:+.2f}" for tn in TARGETS))
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines.append(
        "| R² (in-sample, threshold on all) | "
        + " | ".join(f"{results['populations'][n]['r2_in_sample']:.2f}" for n in POPULATIONS)
        + " |"
    )
    lines.append(
        "| users (fold x user rows) | "
        + " | ".join(str(results["populations"][n]["users"]) for n in POPULATIONS)
        + " |"
    )
    lines += [
        "",
        f"Ridge (alpha {RIDGE_ALPHA:g}, standardised) of the threshold on the statistics, "
        "fitted on one population and subtracted as a further per-user shift on another. "
        "EER_user is unchanged by a shift. Gap = EER_global - EER_user, in points; ratio = "
        "gap / raw-score gap (target <= 0.5):",
        "",
        "| fit on → applied to | EER_user | product: EER_g / gap / ratio | "
        "with the shift: EER_g / gap / ratio |",
        "|---|---|---|---|",
    ]
    for d in results["directions"]:
        p, w, raw = d["product"], d["with_shift"], d["raw_gap"]
        lines.append(
            f"| {' + '.join(d['fit_on'])} → {d['apply_to']} | {pct(p['EER_user'])} | "
            f"{pct(p['EER_global'])} / {pct(p['gap'])} / {p['gap'] / raw:.2f} | "
            f"{pct(w['EER_global'])} / {pct(w['gap'])} / {w['gap'] / raw:.2f} |"
        )
    lines += [
        "",
        f"Protocol: {args.refs} references, {args.folds} folds, seed {args.seed}; k = {args.k}; "
        f"synthetic writers: seed {args.synth_seed}, {args.synth_writers} writers (halves a / b).",
    ]
    write_report(
        args.out,
        "forgeability",
        lines,
        {
            "model": extractor.model_id,
            "normalization": norm,
            "results": results,
            "k": args.k,
            "ridge_alpha": RIDGE_ALPHA,
            **protocol_record(args),
        },
        start,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

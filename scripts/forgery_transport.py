"""Do other writers' forgeries, moved onto a user's references, say where that user's lie?

Issue 10's gap (EER_global - EER_user) is what one threshold cannot follow: how close
each user's skilled forgeries come to their genuine ones. ``gap_sources.py`` and
``forgeability.py`` found that nothing an enrollment sees about the *genuine* side
(leave-one-out scores, warped references, image complexity, neighbours) predicts it.
This script asks the user's own classifier instead, with forgeries it can be shown
without any of the user's own: **transported forgeries**.

- From the development writers that come with forgeries (SigComp 001-037 and
  synthetic-a, the two calibration populations), every skilled forgery gives a
  displacement in feature space, ``d = phi(f) - c_w``: the forgery minus the centroid of
  its writer's genuine signatures. These displacements are the bank.
- For an enrolled user, ``n`` displacements are drawn from the bank (never the user's
  own writer's) and added to the centroid of the user's references, ``c_u + d``,
  clipped at zero when the features are non-negative (ReLU outputs). The user's
  classifier scores them, and they lose the model's cue penalties as its test scores
  do (``gap_sources.decided_extra``). Their mean ``m_t`` is where forgeries *like those
  of other writers* would land for this user.
- The user's location (the product's normaliser, ``loo-lcb=K``, a per-user shift) moves
  towards it: ``loc = loc_product + a * (m_t - loc_product)``. A per-user shift leaves
  EER_user unchanged, so only EER_global and the gap move.

The rule, fixed with this script before its first run: ``a`` is the value of
:data:`ANCHORS` (0 = the product) with the lowest mean gap / raw-score gap over the two
calibration populations (synthetic-a and SigComp 001-037). Then it is applied unchanged
to the held-out populations (synthetic-b and SigComp 038-069). The anchor becomes a
candidate normaliser, for a later plan that would build it into the product and
recalibrate, only if it leaves at most 0.5 of the raw gap on SigComp 038-069 and no
more than the product's share on synthetic-b. Reported besides, never used to choose:
every ``a`` on every population, the least-squares slope of the users' threshold on
``m_t - loc_product`` over the pooled calibration users, and the Spearman correlations
of ``m_t - loc_product`` with each user's threshold and median skilled-forgery score.

Usage::

    python scripts/forgery_transport.py --sigcomp ../shared/data/sigcomp2011 \\
        --work runs/tt-v3-boot/work --out runs/forgery-transport [--model M] [--jobs 2]

Writes ``OUT/forgery_transport.md``, ``.json`` and ``.png`` (per user: the transported
offset against the threshold offset).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from forgeability import _locs, decided_run, spearman, user_targets  # noqa: E402
from gap_sources import (  # noqa: E402
    POPULATIONS,
    decided_extra,
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
    write_report,
)

#: The populations whose forgeries make the bank, and that choose ``a``.
CALIBRATION = ("synthetic-a", "sigcomp-dev")
#: Held out: read only after the rule has chosen.
HELD_OUT = ("synthetic-b", "sigcomp-exp")
#: Anchor weights tried (0 = the product's location).
ANCHORS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
#: The bar on SigComp 038-069 (gap over the raw-score gap).
TARGET_RATIO = 0.5


def _key(name: str) -> str:
    return "synthetic" if name.startswith("synthetic") else "sigcomp"


def displacement_bank(fs: Any, users: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Every skilled forgery of ``users`` minus the centroid of its writer's genuines.

    Parameters
    ----------
    fs : FeatureSet
        A population's features.
    users : tuple of str
        Writer ids of ``fs`` whose forgeries join the bank.

    Returns
    -------
    rows : ndarray, shape (M, D)
        The displacements; a writer without both genuine signatures and skilled forgeries
        adds nothing.
    owners : ndarray of str, shape (M,)
        The writer id of each row.
    """
    feats = np.asarray(fs.features, np.float64)
    ids = np.asarray([str(u) for u in fs.user_ids])
    rows, owners = [], []
    for uid in users:
        (u,) = np.flatnonzero(ids == uid)
        gen = (fs.y == u) & (fs.yforg == 0)
        sk = (fs.y == u) & (fs.yforg == 1)
        if gen.any() and sk.any():
            rows.append(feats[sk] - feats[gen].mean(axis=0))
            owners += [uid] * int(sk.sum())
    if not rows:
        return np.zeros((0, feats.shape[1])), np.zeros(0, dtype=str)
    return np.concatenate(rows), np.asarray(owners)


def bank_of(parts: list[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """The bank of several populations' :func:`displacement_bank` outputs.

    Parameters
    ----------
    parts : list of (corpus key, rows, owners)
        One entry per population; the key names the corpus (``"sigcomp"`` or
        ``"synthetic"``), so that writer ``001`` of one is not writer ``001`` of the other.

    Returns
    -------
    dict
        ``rows`` (M, D) and ``owners`` (M, 2): the corpus key and writer id of each row.

    Raises
    ------
    ValueError
        No population gave a displacement.
    """
    kept = [(key, rows, owners) for key, rows, owners in parts if len(owners)]
    if not kept:
        raise ValueError("the displacement bank is empty: no writer has skilled forgeries")
    return {
        "rows": np.concatenate([rows for _, rows, _ in kept]),
        "owners": np.concatenate(
            [np.stack([np.full(len(o), key), o], axis=1) for key, _, o in kept]
        ),
    }


def transported(
    refs: np.ndarray, bank: np.ndarray, rng: np.random.Generator, n: int, *, clip: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of ``bank`` (drawn without replacement) added to the centroid of ``refs``.

    Parameters
    ----------
    refs : ndarray, shape (K, D)
        The user's reference features.
    bank : ndarray, shape (M, D)
        Displacements to draw from (all of them when ``n`` >= M).
    rng : numpy.random.Generator
    n : int
    clip : bool
        Keep the points in the non-negative orthant the features live in.

    Returns
    -------
    points : ndarray, shape (min(n, M), D)
    idx : ndarray of int
        The rows of ``bank`` drawn, sorted.
    """
    if len(bank) == 0:
        raise ValueError("the displacement bank is empty")
    idx = np.sort(rng.choice(len(bank), size=min(n, len(bank)), replace=False))
    points = np.asarray(refs, np.float64).mean(axis=0) + bank[idx]
    return (np.maximum(points, 0.0) if clip else points), idx


def _probe(
    fs: Any, key: str, banks: dict[str, Any], n: int, clip: bool, seed: int
) -> Callable[[Any, Any, int], tuple[np.ndarray, np.ndarray]]:
    """``simulate_deployment`` probe: raw scores of the user's transported forgeries.

    The user's own writer's displacements are left out of the bank (a development writer
    must not see their own forgeries).
    """
    feats = np.asarray(fs.features, np.float64)
    bank, owners = banks["rows"], banks["owners"]

    def probe(model: Any, split: Any, i: int) -> tuple[np.ndarray, np.ndarray]:
        user = int(split.users[i])
        uid = str(fs.user_ids[user])
        allowed = np.flatnonzero(~((owners[:, 0] == key) & (owners[:, 1] == uid)))
        rng = np.random.default_rng([seed, int(split.seed), user])
        points, idx = transported(feats[split.refs[i]], bank[allowed], rng, n, clip=clip)
        return model.raw_scores(points), allowed[idx]

    return probe


def transported_means(
    pop: dict[str, Any], fs: Any, banks: dict[str, Any], image: Any, clip: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per (fold, user) row, the mean decided score of the user's transported forgeries
    minus the product's location (``m_t - loc_product``), and that location.

    The points are rebuilt from the bank rows the probe drew, so that the cue's penalties
    can be computed on them (``gap_sources.decided_extra``).
    """
    run = pop["run"]
    feats = np.asarray(fs.features, np.float64)
    extra, raw = [], []
    for split, fold in zip(run.splits, run.probes, strict=True):
        rows = []
        for i, (_, idx) in enumerate(fold):
            points = feats[split.refs[i]].mean(axis=0) + banks["rows"][idx]
            rows.append(np.maximum(points, 0.0) if clip else points)
        extra.append(rows)
        raw.append([r for r, _ in fold])
    scores = decided_extra(run, extra, raw, image)
    locs = np.asarray([loc for fold in product_locs(run, run.normalization) for loc in fold])
    means = np.asarray([float(np.mean(v)) for fold in scores for v in fold])
    return means - locs, locs


def anchor_gaps(pop: dict[str, Any], norm: str, weights: tuple[float, ...]) -> dict[float, Any]:
    """EER_global, EER_user and gap (``gap_sources.gap_of``) with each user's location moved
    by ``a * offset`` from the product's, for each ``a`` of ``weights``."""
    return {a: gap_of(shifted(pop["base"], _locs(pop, norm, a * pop["offset"]))) for a in weights}


def gap_ratios(pops: dict[str, Any]) -> dict[str, dict[float, float]]:
    """Per population and anchor weight, the gap over the raw scores' gap.

    Raises
    ------
    ValueError
        A population whose raw scores leave no positive gap: there is nothing to halve,
        and the rule would divide by it.
    """
    bad = [n for n, p in pops.items() if not p["raw_gap"] > 0]
    if bad:
        raise ValueError(f"raw scores leave no positive gap on {', '.join(bad)}")
    return {
        n: {a: g["gap"] / p["raw_gap"] for a, g in p["anchors"].items()} for n, p in pops.items()
    }


def correlations(pop: dict[str, Any]) -> dict[str, float]:
    """Spearman correlations of the transported forgeries with the user's own scores.

    On the decided scale (what the anchor acts on): ``m_t - loc`` with the user's EER
    threshold and median skilled score, both minus ``loc`` too. On the base scale (the
    location added back to all three, so that a shared ``loc`` cannot make a correlation):
    ``m_t`` with the threshold and the median skilled score.
    """
    v = pop["valid"]
    off, loc, t = pop["offset"][v], pop["loc"][v], pop["targets"][v]
    return {
        "threshold": spearman(off, t[:, 0]),
        "median skilled": spearman(off, t[:, 1]),
        "threshold, base scale": spearman(off + loc, t[:, 0] + loc),
        "median skilled, base scale": spearman(off + loc, t[:, 1] + loc),
    }


def choose_anchor(ratios: dict[str, dict[float, float]]) -> float:
    """The anchor with the lowest mean ratio over :data:`CALIBRATION` (ties: the smaller).

    Reads the calibration populations' rows only.
    """
    return min(ANCHORS, key=lambda a: (np.mean([ratios[n][a] for n in CALIBRATION]), a))


def ols_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``y`` on ``x`` (with an intercept); 0 for a constant ``x``."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    xc = x - x.mean()
    denom = float(xc @ xc)
    return float(xc @ (y - y.mean()) / denom) if denom > 0 else 0.0


def _plot(pops: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(pops), figsize=(4 * len(pops), 3.6), sharey=True)
    for ax, (name, pop) in zip(np.atleast_1d(axes), pops.items(), strict=True):
        v = pop["valid"]
        ax.scatter(pop["offset"][v], pop["targets"][v, 0], s=6, alpha=0.5)
        ax.set_title(f"{name} (rho {pop['rho']['threshold']:+.2f})")
        ax.set_xlabel("transported forgeries: m_t - loc")
        ax.axhline(0, color="grey", lw=0.5)
    np.atleast_1d(axes)[0].set_ylabel("user's EER threshold (decided scores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_study_arguments(parser, "runs/forgery-transport")
    parser.add_argument("-n", type=int, default=64, help="transported forgeries per user")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("-n must be >= 1")
    start = time.perf_counter()
    model, extractor, background = open_model(parser, args)
    cue, norm = decision_of(parser, extractor, model, needs_lcb=True)
    image = cue[0] if cue else None
    caches = _caches(args)
    feats = {key: extractor.extract_featureset(c, progress=False) for key, c in caches.items()}
    # ReLU features: a displaced point below zero is no signature the network could output.
    clip = bool(all(float(np.min(fs.features)) >= 0 for fs in feats.values()))
    try:
        banks = bank_of(
            [
                (_key(n), *displacement_bank(feats[_key(n)], _users(n, feats[_key(n)])))
                for n in CALIBRATION
            ]
        )
    except ValueError as exc:
        parser.error(str(exc))
    logging.info("bank: %d displacements; clip %s", len(banks["rows"]), clip)

    pops: dict[str, Any] = {}
    for name in POPULATIONS:
        key = _key(name)
        t0 = time.perf_counter()
        probe = _probe(feats[key], key, banks, args.n, clip, args.seed)
        pop = decided_run(name, feats[key], background, cue, norm, args, probe=probe)
        pop["targets"], pop["valid"] = user_targets(pop["decided"])
        pop["offset"], pop["loc"] = transported_means(pop, feats[key], banks, image, clip)
        pop["anchors"] = anchor_gaps(pop, norm, ANCHORS)
        pop["rho"] = correlations(pop)
        pops[name] = pop
        logging.info("%s in %.1f s", name, time.perf_counter() - t0)

    try:
        ratios = gap_ratios(pops)
    except ValueError as exc:
        parser.error(str(exc))
    chosen = choose_anchor(ratios)
    cal_x = np.concatenate([pops[n]["offset"][pops[n]["valid"]] for n in CALIBRATION])
    cal_y = np.concatenate([pops[n]["targets"][pops[n]["valid"], 0] for n in CALIBRATION])
    slope = ols_slope(cal_x, cal_y)
    slope_rows = {n: anchor_gaps(p, norm, (slope,))[slope] for n, p in pops.items()}
    exp, synb = ratios["sigcomp-exp"], ratios["synthetic-b"]
    candidate = bool(exp[chosen] <= TARGET_RATIO and synb[chosen] <= synb[0.0])

    def pct(v: float) -> str:
        return f"{100 * v:.2f}"

    lines = [
        f"# Transported forgeries ({extractor.model_id}, normaliser {norm}, "
        f"cue {'on' if cue else 'absent'})",
        "",
        f"Bank: {len(banks['rows'])} displacements phi(forgery) - centroid of its writer's "
        f"genuines, from {' and '.join(CALIBRATION)}; {args.n} per user, own writer left out; "
        f"clipped at 0: {clip}.",
        "",
        "Per population: Spearman correlation of the transported forgeries' mean score with "
        "the user's EER threshold and median skilled score, on the decided scale (all three "
        "minus the product's location: what the anchor acts on) and on the base scale "
        "(location added back); EER_user (unchanged by a shift); then EER_global / gap over "
        "the raw-score gap for each anchor weight a (a = 0: the product).",
        "",
        "| population | rho threshold / median skilled, decided | base scale | raw gap | "
        "EER_user | " + " | ".join(f"a = {a:g}" for a in ANCHORS) + f" | OLS slope {slope:.2f} |",
        "|---|---|---|---|---|" + "---|" * (len(ANCHORS) + 1),
    ]
    for name, p in pops.items():
        r = p["rho"]
        cells = [f"{pct(p['anchors'][a]['EER_global'])} / {ratios[name][a]:.2f}" for a in ANCHORS]
        s = slope_rows[name]
        cells.append(f"{pct(s['EER_global'])} / {s['gap'] / p['raw_gap']:.2f}")
        lines.append(
            f"| {name}{' (held out)' if name in HELD_OUT else ''} "
            f"| {r['threshold']:+.2f} / {r['median skilled']:+.2f} "
            f"| {r['threshold, base scale']:+.2f} / {r['median skilled, base scale']:+.2f} "
            f"| {pct(p['raw_gap'])} | {pct(p['anchors'][0.0]['EER_user'])} | "
            + " | ".join(cells)
            + " |"
        )
    margin = np.mean([ratios[n][0.0] - ratios[n][chosen] for n in CALIBRATION])
    lines += [
        "",
        f"Rule (fixed before the run): a = {chosen:g}, the lowest mean ratio over "
        f"{' and '.join(CALIBRATION)} ({margin:.3f} below the product's there). Held out at "
        f"that a: SigComp 038-069 {exp[chosen]:.2f} (product {exp[0.0]:.2f}; bar "
        f"{TARGET_RATIO}), synthetic-b {synb[chosen]:.2f} (product {synb[0.0]:.2f}). "
        f"Candidate for a later plan: **{'yes' if candidate else 'no'}**.",
        "",
        f"Protocol: {args.refs} references, {args.folds} folds, seed {args.seed}; synthetic "
        f"writers: seed {args.synth_seed}, {args.synth_writers} writers (halves a / b). EERs "
        "a-posteriori on each population's decided scores, fold means, in %.",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    _plot(pops, args.out / "forgery_transport.png")
    write_report(
        args.out,
        "forgery_transport",
        lines,
        {
            "model": extractor.model_id,
            "normalization": norm,
            "bank": {"rows": len(banks["rows"]), "from": list(CALIBRATION), "clip": clip},
            "n": args.n,
            "ratios": {n: {str(a): r for a, r in v.items()} for n, v in ratios.items()},
            "anchors": {n: {str(a): g for a, g in p["anchors"].items()} for n, p in pops.items()},
            "raw_gap": {n: p["raw_gap"] for n, p in pops.items()},
            "spearman": {n: p["rho"] for n, p in pops.items()},
            "chosen": chosen,
            "calibration_margin": float(margin),
            "ols_slope": slope,
            "ols_rows": slope_rows,
            "candidate": candidate,
            **protocol_record(args),
        },
        start,
    )
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sys.exit(main())

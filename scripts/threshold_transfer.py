"""Does one threshold mean the same thing on a population it was not calibrated on?

Deployment simulation (``sigver.evaluation.simulate_deployment``: every user
enrolled through ``sigver.usermodel.train_user_model``, the code path of
``Verifier.enroll``, against the model's shipped background + the other
users' references) on four populations of the shipped model:

- ``synthetic-a`` / ``synthetic-b``: the two halves of a corpus of new
  synthetic writers (``sigver synth --seed 10``; the shipped model was trained
  on seed-0 writers);
- ``sigcomp-dev``: SigComp2011 development writers 001-037;
- ``sigcomp-exp``: SigComp2011 exploitation writers 038-069 (application only).

1. **Selection.** For every candidate normaliser (``sigver.normalization.METHODS``)
   the operating point (default ``balanced``) is calibrated on one population and
   applied unchanged to the other, in both directions between synthetic-a and
   sigcomp-dev. The rule of ``_choose`` picks the winner. Neither sigcomp-exp
   nor synthetic-b is looked at.
2. **Held-out transfer.** Calibrate on synthetic-a, apply to sigcomp-exp;
   calibrate on sigcomp-dev, apply to synthetic-b; and the shipped case,
   sigcomp-dev -> sigcomp-exp. Every method is listed, then the winner again
   trained exactly as the product trains it, next to raw scores.
3. **With the model's forgery cue** (when it carries one, :mod:`sigver.forgery_cue`
   and :mod:`sigver.pair_cue`): the same held-out directions decided as the product
   decides with the cue on, with the model's own normaliser. The cue is the stored
   one, fitted on SigComp2011 001-037 (and any extra writers it lists), so a
   threshold calibrated on sigcomp-dev from it would be read off in-sample scores:
   for sigcomp-dev the threshold is the model's stored fused operating point, which
   was calibrated on cross-fitted scores; for synthetic-a it is calibrated here on
   the cued scores of writers the cue never saw.

With ``--bootstrap N`` (default 200) the product and cue rows also get 90 % percentile
intervals of FRR/EER, FAR_skilled/EER and gap/raw gap over ``N`` writer bootstraps
(:func:`bootstrap_row`): the application population's writers are drawn with replacement,
and so are the calibration population's when its threshold is calibrated in this run
(then recalibrated on every draw); the stored cue threshold of sigcomp-dev stays fixed.

Each row gives the deployed FRR / FAR_skilled / FAR_random next to the
a-posteriori global and user-threshold EERs of the same (normalised) scores
on the application population, and the ratios the issue targets (deployed /
EER_global <= 1.25; the EER_global - EER_user gap, relative to raw scores,
<= 0.5). In stages 1 and 2 every normaliser comes from one training per user
with the cohort (20 % of the background writers) held out, so ``none`` there
trains on 80 % of the background; the product rows train as the product does.

Usage::

    python scripts/threshold_transfer.py --sigcomp ../shared/data/sigcomp2011 \\
        --out runs/threshold-transfer [--folds 10] [--refs 5] [--synth-writers 48]

Writes ``OUT/transfer.md``, ``OUT/transfer.json`` and calibration-curve plots.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from sigver._util import atomic_write, command_line, machine_info, write_json
from sigver.bootstrap import WriterDraws, bootstrap_intervals
from sigver.calibration import (
    calibrate_deployment,
    plot_calibration,
    resolve_operating_point,
    stored_calibration,
)
from sigver.errors import SigverError
from sigver.evaluation import simulate_deployment
from sigver.metrics import aligned_gap
from sigver.normalization import METHODS

REPO = Path(__file__).resolve().parents[1]

#: Directions the normaliser is *chosen* on (no exploitation writer, no held-out synthetic).
SELECTION = (("synthetic-a", "sigcomp-dev"), ("sigcomp-dev", "synthetic-a"))
#: Directions reported with the chosen normaliser, on populations not used for calibration
#: or selection.
HELD_OUT = (
    ("synthetic-a", "sigcomp-exp"),
    ("sigcomp-dev", "synthetic-b"),
    ("sigcomp-dev", "sigcomp-exp"),
)


def _caches(args: argparse.Namespace) -> dict[str, Any]:
    """Preprocessed images of the two corpora (synthesising the held-out writers once)."""
    from sigver.cache import load_signatures

    synth_dir = args.work / f"synth-seed{args.synth_seed}"
    if not (synth_dir / "001").is_dir():
        from sigver.cli import main as sigver_main

        rc = sigver_main(
            [
                "synth",
                "--writers",
                str(args.synth_writers),
                "--genuine",
                "12",
                "--forgeries",
                "12",
                "--seed",
                str(args.synth_seed),
                "--out",
                str(synth_dir),
                "--jobs",
                "1",
            ]
        )
        if rc != 0:
            raise SystemExit(f"sigver synth failed ({rc})")
    return {
        "synthetic": load_signatures("gpds-synthetic", synth_dir, n_jobs=1, progress=False),
        "sigcomp": load_signatures("sigcomp2011", args.sigcomp, n_jobs=1, progress=False),
    }


def write_report(
    out: Path, stem: str, lines: list[str], data: dict[str, Any], start: float
) -> None:
    """End a study's report: its command and machine, then ``OUT/stem.md`` (``lines``),
    ``OUT/stem.json`` (``data`` with ``machine``, ``command`` and ``seconds``) and the
    report on standard output. ``start`` is the run's ``time.perf_counter()`` at start."""
    seconds = time.perf_counter() - start
    info = machine_info()
    lines = [
        *lines,
        "",
        f"Command: `{command_line()}`  ",
        f"Machine: {info.get('cpu', '?')}, {info.get('cpu_count', '?')} CPUs; {seconds:.0f} s.",
    ]
    atomic_write(out / f"{stem}.md", "\n".join(lines) + "\n")
    write_json(
        out / f"{stem}.json",
        {**data, "machine": info, "command": command_line(), "seconds": seconds},
    )
    print("\n".join(lines))


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """The options :func:`_caches` reads: the SigComp folder and the synthetic corpus."""
    parser.add_argument("--sigcomp", type=Path, default=REPO.parent / "shared/data/sigcomp2011")
    parser.add_argument("--work", type=Path, help="synthetic corpus folder (default OUT/work)")
    parser.add_argument("--synth-writers", type=int, default=48)
    parser.add_argument("--synth-seed", type=int, default=10)


def add_study_arguments(parser: argparse.ArgumentParser, out: str) -> None:
    """The options every study built on these corpora shares: :func:`add_corpus_arguments`,
    the model, the output folder (default ``out``), the protocol and the jobs."""
    add_corpus_arguments(parser)
    parser.add_argument("--model", type=Path, help="checkpoint (default: the shipped model)")
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--refs", type=int, default=5)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--jobs", type=int, default=1)


def simulate_population(
    name: str, fs: Any, background: Any, normalization: str, args: argparse.Namespace, **kw: Any
) -> Any:
    """Population ``name`` of ``fs`` enrolled as ``Verifier.enroll`` enrolls it, with the
    study's protocol (:func:`add_study_arguments`); ``kw`` goes to ``simulate_deployment``."""
    return simulate_deployment(
        fs,
        users=_users(name, fs),
        background=background,
        refs=args.refs,
        folds=args.folds,
        seed=args.seed,
        normalization=normalization,
        n_jobs=args.jobs,
        progress=False,
        **kw,
    )


def with_cue(run: Any, image: Any, pair: Any, fs: Any) -> Any:
    """``run`` decided with the model's image cue and, when it has one, its pairwise cue,
    as ``Verifier.verify`` decides with the cue on."""
    run = run.with_forgery_cue(image, fs)
    return run if pair is None else run.with_pair_cue(pair, fs)


def protocol_record(args: argparse.Namespace) -> dict[str, Any]:
    """What a study's JSON records of :func:`add_study_arguments`' protocol and corpus."""
    return {
        "refs": args.refs,
        "folds": args.folds,
        "seed": args.seed,
        "synthetic": {"writers": args.synth_writers, "seed": args.synth_seed},
    }


def open_model(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Path, Any, Any]:
    """What the scripts on these corpora do first: check the synthetic seed, set up logging
    and ``OUT`` (``--work`` defaults to ``OUT/work``), and open the model.

    Returns the checkpoint path (``--model``, else the shipped default), its extractor
    through the backend enrollment uses, and the model's background set.
    """
    if args.synth_seed == 0:
        parser.error("seed 0 synthesises the shipped model's training writers; use another")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    args.work = args.work or args.out / "work"

    from sigver.features import default_background_path, default_model_path
    from sigver.featureset import load_features
    from sigver.inference import open_extractor

    model = args.model or Path(default_model_path())
    extractor = open_extractor(model)
    return model, extractor, load_features(default_background_path(model))


def _features(args: argparse.Namespace, extractor: Any) -> dict[str, Any]:
    """Feature sets of the three populations (synthesising the held-out writers)."""
    from sigver.featureset import load_features

    if args.synthetic_features and args.sigcomp_features:
        # Features extracted beforehand with the same model (sigver features ...).
        return {
            "synthetic": load_features(args.synthetic_features),
            "sigcomp": load_features(args.sigcomp_features),
        }
    return {
        name: extractor.extract_featureset(cache, progress=False)
        for name, cache in _caches(args).items()
    }


def _users(name: str, fs: Any) -> tuple[str, ...]:
    ids = [str(u) for u in fs.user_ids]
    if name.startswith("synthetic"):
        half = len(ids) // 2
        return tuple(ids[:half] if name == "synthetic-a" else ids[half:])
    lo, hi = (1, 37) if name == "sigcomp-dev" else (38, 69)
    return tuple(u for u in ids if u.isdigit() and lo <= int(u) <= hi)


def _transfer(
    cal_name: str,
    app_name: str,
    method: str,
    pops: dict[str, Any],
    runs: dict[str, Any],
    background: Any,
    operating_point: str,
    stored: dict[str, Any] | None = None,
    floor_rounds: int = 0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Calibrate ``method`` on one population, apply it to another; the table row.

    ``stored``: a stored calibration (``Calibration.to_dict`` form) whose operating point
    is applied instead of calibrating on ``cal_name`` here. ``floor_rounds`` > 0 adds
    ``aligned_gap``: the fold mean of :func:`sigver.metrics.aligned_gap` (that many
    dealings, seeded by fold), the gap the same scores would leave with exchangeable
    users. Returns the row and the calibration the threshold came from (for its curve).
    """
    if stored is None:
        cal = calibrate_deployment(
            pops[cal_name],
            users=_users(cal_name, pops[cal_name]),
            background=background,
            normalization=method,
            default=operating_point,
            run=runs[cal_name],
        ).to_dict()
        threshold, point, rates = resolve_operating_point(cal, None)
    else:
        cal = stored
        threshold, point, rates = resolve_operating_point(stored, operating_point)
    res = runs[app_name].result(method, threshold=threshold, threshold_source=f"{cal_name} {point}")
    fx = res.fixed_threshold["summary"]  # type: ignore[index]
    eg, eu = res.summary["EER_global"]["mean"], res.summary["EER_user"]["mean"]
    row = {
        "calibrated_on": cal_name,
        "applied_to": app_name,
        "normalization": method,
        "threshold": threshold,
        "operating_point": point,
        "calibrated": {"FRR": rates.get("FRR"), "FAR_skilled": rates.get("FAR_skilled")},
        "FRR": fx["FRR"],
        "FAR_skilled": fx["FAR_skilled"],
        "FAR_random": fx["FAR_random"],
        "HTER_skilled": fx["HTER_skilled"],
        "EER_global": res.summary["EER_global"],
        "EER_user": res.summary["EER_user"],
        "FRR_over_EER": fx["FRR"]["mean"] / eg,
        "FAR_skilled_over_EER": fx["FAR_skilled"]["mean"] / eg,
        "gap": eg - eu,
    }
    row["worst_ratio"] = max(row["FRR_over_EER"], row["FAR_skilled_over_EER"])
    if floor_rounds > 0:
        row["aligned_gap"] = float(
            np.mean(
                [
                    aligned_gap(f.genuine, f.skilled, rounds=floor_rounds, seed=i)
                    for i, f in enumerate(res.scores)
                ]
            )
        )
    return row, cal


def _ratios(
    app: WriterDraws, raw: WriterDraws, idx: np.ndarray, threshold: float
) -> dict[str, float]:
    """FRR/EER_global, FAR_skilled/EER_global (fold means, as the rows) and gap / raw gap
    of the application writers ``idx``."""
    a, r = app.draw(idx, threshold), raw.draw(idx)
    eg, nan = a["EER_global"], float("nan")
    raw_gap = r["EER_global"] - r["EER_user"]
    return {
        "FRR/EER": a["FRR"] / eg if eg > 0 else nan,
        "FAR_skilled/EER": a["FAR_skilled"] / eg if eg > 0 else nan,
        "gap/raw": (eg - a["EER_user"]) / raw_gap if raw_gap else nan,
    }


def bootstrap_row(
    app: list[Any],
    raw: list[Any],
    threshold: float,
    *,
    cal: list[Any] | None = None,
    operating_point: str = "balanced",
    rounds: int = 200,
    seed: int = 0,
    level: float = 0.9,
) -> dict[str, Any]:
    """Percentile intervals of a row's ratios when its writers are resampled.

    Parameters
    ----------
    app, raw : list of FoldScores
        The application population's scores as decided, and the same enrollments' raw
        scores (for the gap's denominator); one draw of users serves both, every fold.
    threshold : float
        The row's threshold, used on every draw when ``cal`` is None.
    cal : list of FoldScores, optional
        The calibration population's scores, when the threshold is calibrated on them in
        this run: each draw resamples its users too and recalibrates ``operating_point``
        on their pooled genuine and skilled scores (as the calibration pools its folds).
    rounds, seed, level
        Draws, their seed, and the interval's coverage.

    Returns
    -------
    dict
        :func:`sigver.bootstrap.bootstrap_intervals`' dict for ``FRR/EER``,
        ``FAR_skilled/EER`` and ``gap/raw`` (a raw gap of 0 leaves a draw's ratio undefined).
    """
    from sigver.calibration import operating_point_threshold

    app_w, raw_w = WriterDraws(app), WriterDraws(raw)
    pooled = None
    if cal is not None:
        # Each calibration user's scores over every fold: a draw takes users, not scores.
        pooled = [
            (
                np.concatenate([np.ravel(f.genuine[u]) for f in cal]),
                np.concatenate([np.ravel(f.skilled[u]) for f in cal]),
            )
            for u in range(len(cal[0].genuine))
        ]

    def draw(rng: np.random.Generator) -> dict[str, float]:
        t = threshold
        if pooled is not None:
            iu = rng.integers(len(pooled), size=len(pooled))
            t = operating_point_threshold(
                operating_point,
                np.concatenate([pooled[i][0] for i in iu]),
                np.concatenate([pooled[i][1] for i in iu]),
            )
        return _ratios(app_w, raw_w, rng.integers(app_w.n, size=app_w.n), t)

    return bootstrap_intervals(draw, rounds=rounds, seed=seed, level=level)


def add_interval(
    row: dict[str, Any],
    decided: Any,
    raw: Any,
    cal: Any | None,
    args: argparse.Namespace,
) -> None:
    """``row["interval"]``: :func:`bootstrap_row` on the runs behind ``row`` (no-op when
    ``args.bootstrap`` is 0).

    ``decided`` / ``raw``: the application population's run as decided and its raw run;
    ``cal``: the calibration population's run when the row's threshold was calibrated on
    it here, else None.
    """
    if not args.bootstrap:
        return
    method = row["normalization"]
    cal_scores = None if cal is None else cal.scores(method)
    if cal_scores is not None:
        from sigver.calibration import operating_point_threshold

        # The draw that takes every writer once must give the row's own threshold.
        g = np.concatenate([np.ravel(a) for f in cal_scores for a in f.genuine])
        s = np.concatenate([np.ravel(a) for f in cal_scores for a in f.skilled])
        t = operating_point_threshold(row["operating_point"], g, s)
        if not np.isclose(t, row["threshold"], rtol=0, atol=1e-9):
            raise RuntimeError(f"bootstrap threshold {t} is not the row's {row['threshold']}")
    row["interval"] = bootstrap_row(
        decided.scores(method),
        raw.scores("none"),
        row["threshold"],
        cal=cal_scores,
        operating_point=row["operating_point"],
        rounds=args.bootstrap,
        seed=args.seed,
    )


def gap_columns(row: dict[str, Any], raw: dict[str, Any]) -> dict[str, float]:
    """How much of the EER_global - EER_user gap normalisation could still remove.

    ``row`` and ``raw`` (the same enrollments' raw scores) need ``gap`` and
    ``aligned_gap``. Returns ``target`` (half the raw gap, the issue's bound), ``floor``
    (the row's aligned gap: what exchangeable users would leave), ``excess_vs_raw``
    ((gap - floor) / (raw gap - raw floor): the share of the raw misalignment left) and
    ``reachable`` (1.0 when the floor is at most the target, else 0.0: above it, no
    per-user normalisation of these scores meets the bound).
    """
    target = 0.5 * raw["gap"]
    floor = row["aligned_gap"]
    raw_excess = raw["gap"] - raw["aligned_gap"]
    return {
        "target": target,
        "floor": floor,
        "excess_vs_raw": (row["gap"] - floor) / raw_excess if raw_excess > 0 else float("nan"),
        "reachable": float(floor <= target),
    }


def _choose(rows: list[dict[str, Any]], methods: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """The selection rule: among the methods whose deployed FRR and FAR_skilled stay within
    1.25x of the EER_global in every selection direction, the lowest mean deployed
    HTER_skilled (what an operator pays); when none qualifies, the lowest worst ratio."""
    stats = {}
    for m in methods:
        mine = [r for r in rows if r["normalization"] == m]
        stats[m] = {
            "worst_ratio": max(r["worst_ratio"] for r in mine),
            "mean_HTER_skilled": float(np.mean([r["HTER_skilled"]["mean"] for r in mine])),
        }
    ok = [m for m in methods if stats[m]["worst_ratio"] <= 1.25]
    if ok:
        best = min(ok, key=lambda m: stats[m]["mean_HTER_skilled"])
    else:
        best = min(methods, key=lambda m: stats[m]["worst_ratio"])
    return best, stats


def decision_of(
    parser: argparse.ArgumentParser, extractor: Any, model: Path, *, needs_lcb: bool = False
) -> tuple[Any, str]:
    """The model's stored cue (:func:`stored_cue` at ``balanced``) and its normaliser, as
    ``Verifier.verify`` decides: what the studies built on these corpora score with.

    A missing operating point, or with ``needs_lcb`` a normaliser other than a ``loo-lcb=K``
    one (whose per-user shifts the studies re-align), stops the script with a parser error.
    """
    from sigver.normalization import family

    calibration = stored_calibration(extractor.weights.meta.metrics)
    try:
        cue = stored_cue(calibration, model.name, "balanced")
    except SigverError as exc:
        parser.error(f"the model's forgery cue: {exc}")
    norm = str(((cue[2] if cue else calibration) or {}).get("normalization") or "none")
    if needs_lcb and family(norm) != "loo-lcb":
        # The re-alignments are per-user shifts of loo-lcb scores (scale 1).
        parser.error(f"the model's normaliser is {norm!r}; this study needs a loo-lcb=K one")
    return cue, norm


def stored_cue(
    calibration: dict[str, Any] | None, model: str, operating_point: str
) -> tuple[Any, Any, dict[str, Any]] | None:
    """The model's stored forgery cue, its pairwise part and the fused calibration.

    None when the model carries no cue (stage 3 is skipped). Checked before any stage
    runs, so a missing operating point stops the script at once, not after stage 2.

    Raises
    ------
    CalibrationError
        The fused calibration has no operating point ``operating_point``.
    """
    from sigver.forgery_cue import carries_cue, switch_on
    from sigver.pair_cue import stored_pair_cue

    if not carries_cue(calibration):
        return None
    cue, fused = switch_on(calibration, model)
    resolve_operating_point(fused, operating_point)
    return cue, stored_pair_cue(calibration), fused


def _cue_stage(
    stored: tuple[Any, Any, dict[str, Any]] | None,
    pops: dict[str, Any],
    background: Any,
    args: argparse.Namespace,
    runs_by_norm: dict[str, dict[str, Any]],
    simulate: Any,
) -> tuple[list[dict[str, Any]], str | None]:
    """Stage 3: the held-out directions decided with the model's stored forgery cue.

    ``stored``: :func:`stored_cue`'s value. ``runs_by_norm``: simulations already made,
    by normaliser (reused when the model's own is among them, else ``simulate``).
    Returns the rows (empty without a cue) and the normaliser used (the model's own);
    each row's ``raw_gap`` is the EER_global - EER_user gap of the same enrollments'
    raw scores.
    """
    if stored is None:
        logging.info("the model carries no forgery cue: stage 3 skipped")
        return [], None
    cue, pair, fused = stored
    norm = str(fused.get("normalization") or "none")
    runs = runs_by_norm.get(norm) or simulate(norm, False)
    cued = {name: with_cue(run, cue, pair, pops[name]) for name, run in runs.items()}
    op = args.operating_point
    rows = []
    rounds = args.floor_rounds
    for c, a in HELD_OUT:
        raw, _ = _transfer(c, a, "none", pops, runs, background, op, floor_rounds=rounds)
        # sigcomp-dev fitted the cue: its threshold is the stored (cross-fitted) one.
        row, cal = _transfer(
            c,
            a,
            norm,
            pops,
            cued,
            background,
            op,
            fused if c == "sigcomp-dev" else None,
            floor_rounds=rounds,
        )
        row["forgery_cue"] = True
        add_interval(row, cued[a], runs[a], None if c == "sigcomp-dev" else cued[c], args)
        row["raw_gap"] = raw["gap"]
        row["gap_vs_raw"] = row["gap"] / raw["gap"] if raw["gap"] else float("nan")
        if rounds > 0:
            row["raw_aligned_gap"] = raw["aligned_gap"]
            row.update(gap_columns(row, raw))
        rows.append(row)
        plot_calibration(
            cal,
            args.out / f"curve-cue-{c}-to-{a}.png",
            chosen=row["operating_point"],
            measured={"FRR": row["FRR"]["mean"], "FAR_skilled": row["FAR_skilled"]["mean"]},
            title=f"{norm} + forgery cue: calibrated on {c} (black), measured on {a} (red)",
        )
    return rows, norm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_arguments(parser)
    parser.add_argument("--model", type=Path, help="checkpoint (default: the shipped model)")
    parser.add_argument("--out", type=Path, default=REPO / "runs/threshold-transfer")
    parser.add_argument("--refs", type=int, default=5)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--operating-point", default="balanced")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument(
        "--floor-rounds",
        type=int,
        default=20,
        help="random dealings for the gap of exchangeable users (0: not computed)",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=200,
        metavar="N",
        help="writer bootstraps for the intervals of the product and cue rows (0: none)",
    )
    parser.add_argument("--synthetic-features", type=Path, help="precomputed (sigver features)")
    parser.add_argument("--sigcomp-features", type=Path, help="precomputed (sigver features)")
    args = parser.parse_args(argv)
    if args.floor_rounds < 0:
        parser.error("--floor-rounds must be >= 0")
    if args.bootstrap < 0:
        parser.error("--bootstrap must be >= 0")
    start = time.perf_counter()
    model, extractor, background = open_model(parser, args)
    try:
        cue = stored_cue(
            stored_calibration(extractor.weights.meta.metrics), model.name, args.operating_point
        )
    except SigverError as exc:
        parser.error(f"stage 3 (the model's forgery cue): {exc}")
    feats = _features(args, extractor)
    for fs in feats.values():
        if fs.meta.get("model_sha256") not in (None, extractor.sha256):
            raise SystemExit("precomputed features come from another model")
    pops = {
        "synthetic-a": feats["synthetic"],
        "synthetic-b": feats["synthetic"],
        "sigcomp-dev": feats["sigcomp"],
        "sigcomp-exp": feats["sigcomp"],
    }

    def simulate(normalization: str, statistics: bool) -> dict[str, Any]:
        out = {}
        for name, fs in pops.items():
            t0 = time.perf_counter()
            out[name] = simulate_population(
                name, fs, background, normalization, args, statistics=statistics
            )
            logging.info("simulated %s in %.1f s", name, time.perf_counter() - t0)
        return out

    # One training per user and fold gives every normaliser's statistics (cohort held out).
    runs = simulate("none", True)
    selection = [
        _transfer(c, a, m, pops, runs, background, args.operating_point)[0]
        for c, a in SELECTION
        for m in METHODS
    ]
    winner, choice = _choose(selection, METHODS)
    logging.info("chosen normaliser: %s", winner)
    held_out = [
        _transfer(c, a, m, pops, runs, background, args.operating_point)[0]
        for c, a in HELD_OUT
        for m in METHODS
    ]
    # The winner again, exactly as the product trains it (background held out for the
    # cohort only when the winner needs one).
    product_runs = simulate(winner, False)
    product = []
    rounds = args.floor_rounds
    for c, a in HELD_OUT:
        row, cal = _transfer(
            c, a, winner, pops, product_runs, background, args.operating_point, floor_rounds=rounds
        )
        raw_row, _ = _transfer(
            c, a, "none", pops, product_runs, background, args.operating_point, floor_rounds=rounds
        )
        row["gap_vs_raw"] = row["gap"] / raw_row["gap"] if raw_row["gap"] else float("nan")
        if rounds > 0:
            row.update(gap_columns(row, raw_row))
        add_interval(row, product_runs[a], product_runs[a], product_runs[c], args)
        product += [raw_row, row]
        plot_calibration(
            cal,
            args.out / f"curve-{c}-to-{a}.png",
            measured={"FRR": row["FRR"]["mean"], "FAR_skilled": row["FAR_skilled"]["mean"]},
            title=f"{winner}: calibrated on {c} (black), measured on {a} (red)",
        )
    cue_rows, cue_norm = _cue_stage(cue, pops, background, args, {winner: product_runs}, simulate)

    def pct(v: dict[str, float] | float) -> str:
        if isinstance(v, dict):
            return f"{100 * v['mean']:.2f} ± {100 * v['std']:.2f}"
        return f"{100 * v:.2f}"

    def table(rows: list[dict[str, Any]]) -> list[str]:
        lines = [
            "| calibrated on → applied to | normalisation | T | FRR | FAR skilled | FAR random | "
            "EER global (a-post.) | EER user (a-post.) | FRR/EER | FAR_s/EER |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r['calibrated_on']} → {r['applied_to']} | {r['normalization']} | "
                f"{r['threshold']:.3f} | {pct(r['FRR'])} | {pct(r['FAR_skilled'])} | "
                f"{pct(r['FAR_random'])} | {pct(r['EER_global'])} | {pct(r['EER_user'])} | "
                f"{r['FRR_over_EER']:.2f} | {r['FAR_skilled_over_EER']:.2f} |"
            )
        return lines

    def gap_table(label: str, pairs: list[tuple[float, dict[str, Any]]]) -> list[str]:
        """The gap rows: raw gap, gap with ``label``, ratio, and the floor when measured."""
        floors = all("floor" in r for _, r in pairs)
        head = (
            f"| direction | gap EER_global - EER_user, raw | with {label} | ratio (target <= 0.5) |"
        )
        rule = "|---|---|---|---|"
        if floors:
            head += " floor (exchangeable users) | floor <= target | excess gap vs raw |"
            rule += "---|---|---|"
        out = [head, rule]
        for raw_gap, r in pairs:
            line = (
                f"| {r['calibrated_on']} → {r['applied_to']} | {pct(raw_gap)} | "
                f"{pct(r['gap'])} | {r['gap_vs_raw']:.2f} |"
            )
            if floors:
                line += (
                    f" {pct(r['floor'])} | {'yes' if r['reachable'] else 'no'} | "
                    f"{r['excess_vs_raw']:.2f} |"
                )
            out.append(line)
        if floors:
            out += [
                "",
                "Floor: the gap these scores would leave if the users were exchangeable (the "
                "pooled scores dealt to the users at random, each keeping their numbers of "
                f"genuine and skilled scores; {args.floor_rounds} dealings per fold, "
                "`sigver.metrics.aligned_gap`). Per-user a-posteriori thresholds fitted on a "
                "few scores make EER_user optimistic even then, so a per-user normalisation "
                "of these scores fitted without their test scores is not expected to go below "
                "it. Excess gap vs raw = (gap - floor) / (raw gap - raw floor): the share of "
                "the raw scores' misalignment between users that is left.",
            ]
        return out

    def interval_table(rows: list[dict[str, Any]]) -> list[str]:
        """The rows' bootstrap intervals (nothing when not computed)."""
        rows = [r for r in rows if "interval" in r]
        if not rows:
            return []
        lv = round(100 * rows[0]["interval"]["level"])
        out = [
            "",
            f"{lv} % intervals over {rows[0]['interval']['rounds']} writer bootstraps "
            "(application writers drawn with replacement; calibration writers too, and the "
            "threshold recalibrated, where it was calibrated in this run):",
            "",
            "| direction | FRR/EER | FAR_s/EER | gap / raw gap |",
            "|---|---|---|---|",
        ]
        for r in rows:
            iv = r["interval"]
            cells = " | ".join(
                f"{iv[k][0]:.2f}-{iv[k][1]:.2f}" for k in ("FRR/EER", "FAR_skilled/EER", "gap/raw")
            )
            fixed = (
                " (stored threshold)"
                if r.get("forgery_cue") and r["calibrated_on"] == "sigcomp-dev"
                else ""
            )
            out.append(f"| {r['calibrated_on']} → {r['applied_to']}{fixed} | {cells} |")
        return out

    lines = [
        "## Selection (synthetic-a ↔ sigcomp-dev; cohort held out for every method)",
        "",
        *table(selection),
        "",
        "| method | worst ratio | mean deployed HTER_skilled |",
        "|---|---|---|",
        *(
            f"| {m} | {c['worst_ratio']:.2f} | {100 * c['mean_HTER_skilled']:.2f} |"
            for m, c in choice.items()
        ),
        "",
        f"Chosen: **{winner}**.",
        "",
        "## Held-out transfer, every method (cohort held out for every method)",
        "",
        *table(held_out),
        "",
        f"## Held-out transfer, product configuration ({winner} vs raw scores, trained as "
        "Verifier.enroll trains with that normaliser)",
        "",
        *table(product),
        "",
        *gap_table(
            winner, [(raw["gap"], r) for raw, r in zip(product[::2], product[1::2], strict=True)]
        ),
        *interval_table(product[1::2]),
    ]
    if cue_rows:
        lines += [
            "",
            f"## Held-out transfer with the model's forgery cue ({cue_norm} + the stored cue, "
            "as the product decides with the cue on)",
            "",
            *table(cue_rows),
            "",
            *gap_table("the cue", [(r["raw_gap"], r) for r in cue_rows]),
            *interval_table(cue_rows),
            "",
            "The cue is the model's stored one (fitted on SigComp2011 001-037 and the extra "
            "writers its card lists); the sigcomp-dev threshold is the model's stored fused "
            "operating point (calibrated on cross-fitted scores), the synthetic-a one is "
            "calibrated here on cued scores.",
        ]
    seconds = time.perf_counter() - start
    info = machine_info()
    note = (
        f"\nOperating point `{args.operating_point}` calibrated on the first population and "
        f"applied unchanged to the second; {args.refs} references, {args.folds} folds, seed "
        f"{args.seed}; rates in %, mean ± std over folds. EERs are a-posteriori on the "
        "application population's normalised scores. gap vs raw = (EER_global - EER_user) / "
        "the same gap of raw scores. Synthetic writers: seed "
        f"{args.synth_seed}, {args.synth_writers} writers, first half synthetic-a (selection and "
        "calibration), second half synthetic-b (held out).\n\n"
        f"Command: `{command_line()}`  \nMachine: {info.get('cpu', '?')}, "
        f"{info.get('cpu_count', '?')} CPUs; {seconds:.0f} s.\n"
    )
    atomic_write(args.out / "transfer.md", "\n".join(lines) + "\n" + note)
    write_json(
        args.out / "transfer.json",
        {
            "selection": selection,
            "choice": choice,
            "winner": winner,
            "held_out": held_out,
            "product": product,
            "forgery_cue": {"normalization": cue_norm, "rows": cue_rows},
            "model": extractor.model_id,
            "refs": args.refs,
            "folds": args.folds,
            "seed": args.seed,
            "bootstrap": args.bootstrap,
            "operating_point": args.operating_point,
            "synthetic": {"writers": args.synth_writers, "seed": args.synth_seed},
            "runs": {k: v.info for k, v in runs.items()},
            "machine": info,
            "command": command_line(),
            "seconds": seconds,
        },
    )
    print("\n".join(lines) + "\n" + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())

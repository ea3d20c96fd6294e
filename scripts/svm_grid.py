"""Are the published per-user SVM hyper-parameters right for our features? A grid, product path.

Every user enrolled gets ``StandardScaler + SVC(rbf, C=1, gamma=2^-11)``: the values
the SigNet paper chose for its 2048-d features. Ours are 1024-d (v2/v3) and the
negatives are the shipped background, so the published values may not be the best.
This script measures EER_user and EER_global (a-posteriori, of the scores the
product normalises with the model's normaliser) for a grid of ``C`` and ``gamma``,
each user enrolled exactly as ``Verifier.enroll`` enrolls
(:func:`sigver.evaluation.simulate_deployment`, 5 references, 5 folds, seed 1234).

Rule, fixed before the first run (the same populations that chose the normaliser):

- **Selection** reads only ``synthetic-a`` (synthetic writers 1-24, seed 10, never
  trained on) and ``sigcomp-dev`` (SigComp2011 writers 001-037).
- The candidate is the grid point with the lowest mean EER_user over the two.
- It replaces the published default only if, against the default, it lowers EER_user
  by at least 0.2 points on **both** selection populations and raises EER_global by
  no more than 0.2 points on either. Otherwise the default stays.
- ``sigcomp-exp`` (038-069) and ``synthetic-b`` (writers 25-48) are reported for the
  default and the candidate only, after the choice.

Usage::

    python scripts/svm_grid.py --sigcomp ../shared/data/sigcomp2011 --out runs/svm-grid \\
        [--normalization loo-lcb=0.5]   # default: the model's normaliser
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from threshold_transfer import _caches, _users, add_corpus_arguments  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SELECTION = ("synthetic-a", "sigcomp-dev")
REPORTED = ("sigcomp-exp", "synthetic-b")
#: Improvement in EER_user (points) the candidate needs on both selection populations.
MIN_GAIN = 0.2
#: EER_global (points) the candidate may lose on either selection population.
MAX_LOSS = 0.2


def _features(args: argparse.Namespace) -> tuple[dict[str, Any], Any, Any]:
    """Feature sets of the synthetic and SigComp populations (cached in OUT), the
    model's background set and its extractor."""
    from sigver.features import default_background_path, default_model_path
    from sigver.featureset import load_features, save_features
    from sigver.inference import open_extractor

    model = args.model or Path(default_model_path())
    extractor = open_extractor(model)  # the backend enrollment uses
    background = load_features(default_background_path(Path(model)))
    feats = {}
    caches = None
    for name in ("synthetic", "sigcomp"):
        path = args.out / f"{name}-{extractor.sha256[:12]}.npz"
        if path.is_file():
            feats[name] = load_features(path)
            continue
        caches = caches or _caches(args)
        feats[name] = extractor.extract_featureset(caches[name], progress=False)
        save_features(path, feats[name])
    return feats, background, extractor


def prepare(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[dict[str, Any], Any, Any]:
    """Checks, folders, the run's header, and :func:`_features`; sets ``args.normalization``
    to the model's own normaliser (what enrollment uses) unless one was given."""
    from sigver._util import command_line, format_machine_info
    from sigver.calibration import stored_calibration

    if args.synth_seed == 0:
        parser.error("seed 0 synthesises the shipped model's training writers; use another")
    args.out.mkdir(parents=True, exist_ok=True)
    args.work = args.work or args.out / "work"
    print(f"command: {command_line()}")
    print(format_machine_info(), flush=True)
    feats, background, extractor = _features(args)
    if getattr(args, "normalization", None) is None:
        stored = stored_calibration(extractor.weights.meta.metrics) or {}
        args.normalization = stored.get("normalization") or "none"
    return feats, background, extractor


def _run(fs: Any, pop: str, background: Any, params: dict, args: argparse.Namespace) -> dict:
    """EER_user / EER_global (%) of the product-normalised deployed scores of one population."""
    from sigver.evaluation import simulate_deployment

    run = simulate_deployment(
        fs,
        users=_users(pop, fs),
        background=background,
        folds=args.folds,
        normalization=args.normalization,
        params=params,
        n_jobs=args.jobs,
        progress=False,
    )
    summary = run.result().summary
    return {
        "EER_user": 100 * summary["EER_user"]["mean"],
        "EER_global": 100 * summary["EER_global"]["mean"],
    }


def mean_user(row: dict) -> float:
    """Mean EER_user over the selection populations."""
    return sum(row[p]["EER_user"] for p in SELECTION) / len(SELECTION)


def decide(rows: list[dict], default: dict) -> tuple[dict, dict, bool]:
    """The rule of the module docstring: ``(default row, candidate row, adopted)``."""
    base = next(r for r in rows if r["params"] == default)
    best = min(rows, key=mean_user)
    return base, best, best is not base and passes_margins(base, best)


def passes_margins(base: dict, candidate: dict) -> bool:
    """At least MIN_GAIN points of EER_user gained on every selection population, at most
    MAX_LOSS of EER_global lost on any (rows keyed by population)."""
    return all(
        base[p]["EER_user"] - candidate[p]["EER_user"] >= MIN_GAIN
        and candidate[p]["EER_global"] - base[p]["EER_global"] <= MAX_LOSS
        for p in SELECTION
    )


def _name(params: dict) -> str:
    return f"C={params['C']:g}, gamma=2^{round(math.log2(params['gamma']))}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_arguments(parser)
    parser.add_argument("--model", type=Path, help="checkpoint (default: the shipped model)")
    parser.add_argument("--out", type=Path, default=REPO / "runs/svm-grid")
    parser.add_argument("--C", type=float, nargs="+", default=[0.3, 1.0, 3.0])
    parser.add_argument(
        "--log2-gamma", type=int, nargs="+", default=[-13, -12, -11, -10, -9], metavar="G"
    )
    parser.add_argument(
        "--normalization", help="per-user score normaliser (default: the model's, as enrollment)"
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    start = time.perf_counter()

    from sigver.usermodel import DEFAULT_CLASSIFIER_PARAMS

    feats, background, extractor = prepare(args, parser)
    model_id = extractor.model_id
    pops = {
        p: feats["synthetic" if p.startswith("synthetic") else "sigcomp"]
        for p in SELECTION + REPORTED
    }

    default = dict(DEFAULT_CLASSIFIER_PARAMS)
    grid = [
        {**default, "C": float(c), "gamma": 2.0**g}
        for c, g in itertools.product(args.C, args.log2_gamma)
    ]
    if default not in grid:
        grid.append(default)
    rows = []
    for params in grid:
        cells = {p: _run(pops[p], p, background, params, args) for p in SELECTION}
        rows.append({"params": params, **cells})
        print(
            f"{_name(params)}: "
            + ", ".join(
                f"{p} EER_user {c['EER_user']:.2f} global {c['EER_global']:.2f}"
                for p, c in cells.items()
            ),
            flush=True,
        )

    base, best, adopted = decide(rows, default)
    # After the choice: the held-out populations, for the default and the candidate.
    held = {}
    for label, row in (("default", base), ("candidate", best)):
        held[label] = {p: _run(pops[p], p, background, row["params"], args) for p in REPORTED}

    lines = [
        "| C, gamma | synthetic-a EER_user | synthetic-a EER_global | sigcomp-dev EER_user | "
        "sigcomp-dev EER_global | mean EER_user |",
        "|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=mean_user):
        mark = " (published default)" if row is base else ""
        lines.append(
            f"| {_name(row['params'])}{mark} | "
            + " | ".join(
                f"{row[p]['EER_user']:.2f} | {row[p]['EER_global']:.2f}" for p in SELECTION
            )
            + f" | {mean_user(row):.2f} |"
        )
    verdict = (
        f"adopted: {_name(best['params'])}"
        if adopted
        else f"default kept: the best, {_name(best['params'])}, does not pass the rule"
    )
    lines += [
        "",
        f"Rule: gain >= {MIN_GAIN} points of EER_user on both selection populations, EER_global "
        f"loss <= {MAX_LOSS} on either. Verdict: **{verdict}**.",
        "",
        "Held out (reported after the choice):",
        "",
        "| C, gamma | sigcomp-exp EER_user | sigcomp-exp EER_global | synthetic-b EER_user | "
        "synthetic-b EER_global |",
        "|---|---|---|---|---|",
    ]
    for label, row in (("default", base), ("candidate", best)):
        lines.append(
            f"| {_name(row['params'])} ({label}) | "
            + " | ".join(
                f"{held[label][p]['EER_user']:.2f} | {held[label][p]['EER_global']:.2f}"
                for p in REPORTED
            )
            + " |"
        )
    payload = {"rows": rows, "held_out": held, "adopted": adopted}
    write_report(args, lines, "svm_grid", payload, model_id=model_id, start=start)
    return 0


def write_report(
    args: argparse.Namespace,
    lines: list[str],
    name: str,
    payload: dict,
    *,
    model_id: str,
    start: float,
) -> None:
    """Footer (model, protocol, time, machine, command), then OUT/NAME.md and .json, printed."""
    from sigver._util import atomic_write, command_line, machine_info

    info = machine_info()
    lines = [
        *lines,
        "",
        f"Model {model_id}; normaliser {args.normalization}; 5 references, {args.folds} folds, "
        f"seed 1234; a-posteriori EERs in %, mean over folds. "
        f"{time.perf_counter() - start:.0f} s on {info.get('cpu', '?')}.",
        f"Command: `{command_line()}`",
    ]
    text = "\n".join(lines) + "\n"
    atomic_write(args.out / f"{name}.md", text)
    atomic_write(args.out / f"{name}.json", json.dumps(payload, indent=1))
    print(text)


if __name__ == "__main__":
    sys.exit(main())

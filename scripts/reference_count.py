"""Does the operating point hold when users enroll more, or fewer, references?

The model's operating points are calibrated with 5 references per user (SigComp2011
001-037, ``sigver calibrate``). An operator may enroll 3, or a bank 12 (the GPDS
protocols use 12). Each user's classifier, and the leave-one-out statistics the
normaliser reads, change with the number of references, so the same threshold may
mean other error rates. This script measures it through the product's own path: for
every reference count ``K``, ``sigver evaluate --negatives model --refs K`` (every user
enrolled as ``Verifier.enroll`` enrolls, decided at the model's ``balanced`` operating
point with its cue, as ``Verifier.verify`` decides) on

- SigComp2011 exploitation writers 038-069 (12 genuine each, so K <= 8 leaves at least
  4 test genuines), and
- new synthetic writers with 24 genuine signatures each (``sigver synth --genuine 24``,
  seed 10 as ``threshold_transfer.py``), so K = 12 leaves 12 test genuines.

It reports, per population and K, FRR / FAR_skilled / FAR_random at the threshold with
their 90 % writer-bootstrap intervals, the a-posteriori EERs of the same scores, and
FRR / FAR_skilled over EER_global (issue 10's bound: 1.25), and draws them against K
with the rates the operating point was calibrated for.

Second table (``per-count thresholds``): would a threshold calibrated *at each K* hold?
From the saved scores of the same evaluations (no new enrollment), the ``balanced``
threshold is calibrated at every K on the first half of the synthetic writers
(synthetic-a) and applied to SigComp 038-069 and to the second half (synthetic-b) at the
same K, next to the shipped threshold on the same writers. Nothing is chosen or stored.

Third table, with ``--dev-calibration PAIR_EXTRA``: the same, with the threshold calibrated
at each K on SigComp2011 001-037 by the product's own ``sigver calibrate --refs K`` (the
model's normaliser and cue settings, the pair classifier's further writers from
``PAIR_EXTRA``, as the shipped calibration had them), applied to SigComp 038-069 and
synthetic-b at the same K. Nothing is written to the checkpoint.

Usage::

    python scripts/reference_count.py --sigcomp ../shared/data/sigcomp2011 \\
        --out runs/reference-count [--model M] [--refs 3 5 8 12] [--jobs 2]

Writes ``OUT/reference_count.md``, ``OUT/reference_count.json``,
``OUT/reference_count.png`` and each evaluation's folder (``OUT/<population>-refs<K>``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: Genuine signatures per synthetic writer (so that 12 references leave 12 tests).
SYNTH_GENUINE = 24
#: Test genuines every writer must keep (SigComp2011 writers have 12 genuine each).
MIN_TESTS = 4
#: Most references per population that leave :data:`MIN_TESTS` test genuines.
MAX_REFS = {"sigcomp-exp": 12 - MIN_TESTS, "synthetic": SYNTH_GENUINE - MIN_TESTS}


def _sigver(argv: list[str]) -> None:
    from sigver.cli import main as sigver

    rc = sigver(argv)
    if rc != 0:
        raise SystemExit(f"sigver {' '.join(argv)} failed ({rc})")


def populations(args: argparse.Namespace, model: Path) -> dict[str, dict[str, Any]]:
    """Feature files and protocol flags of the two populations (extracted once)."""
    from sigver._meta import file_sha256

    args.out.mkdir(parents=True, exist_ok=True)
    # Named by everything that makes them: a cached corpus or feature file is reused by name.
    synth = args.work / f"synth-seed{args.synth_seed}-w{args.synth_writers}-g{SYNTH_GENUINE}"
    sha = file_sha256(model)
    if not (synth / "001").is_dir():
        _sigver(["synth", "--writers", str(args.synth_writers), "--genuine", str(SYNTH_GENUINE),
                 "--forgeries", "12", "--seed", str(args.synth_seed), "--out", str(synth),
                 "--jobs", str(args.jobs), "--no-progress", "-q"])  # fmt: skip
    out = {}
    sigcomp_users = ["--preset", "sigcomp2011-dev"]
    for name, data, dataset, users, max_refs in (
        ("sigcomp-exp", args.sigcomp, "sigcomp2011", sigcomp_users, MAX_REFS["sigcomp-exp"]),
        ("synthetic", synth, "gpds-synthetic", ["--exp-users", "all"], MAX_REFS["synthetic"]),
    ):
        tag = name if data is args.sigcomp else synth.name
        feats = args.work / f"{tag}-{sha[:12]}.features.npz"
        if not feats.is_file():
            _sigver(["features", "--model", str(model), "--data", str(data),
                     "--dataset", dataset, "--out", str(feats), "--jobs", str(args.jobs),
                     "--no-progress", "-q"])  # fmt: skip
        out[name] = {"features": feats, "users": users, "max_refs": max_refs, "model": sha}
    return out


def evaluate(model: Path, pop: dict[str, Any], refs: int, out: Path, args: Any) -> dict[str, Any]:
    """``sigver evaluate --negatives model --refs refs`` and what its deployment.json says.

    A folder left by an earlier run is reused only when it was made with the same
    references, folds, bootstrap draws and features' model.
    """
    if (out / "deployment.json").is_file():
        _check_reusable(out, pop, refs, args)
    else:
        _sigver(["evaluate", "--features", str(pop["features"]), "--deployed-model", str(model),
                 "--negatives", "model", *pop["users"], "--refs", str(refs),
                 "--folds", str(args.folds), "--bootstrap", str(args.bootstrap),
                 "--jobs", str(args.jobs), "--out", str(out), "--no-progress", "--no-plots",
                 "-q"])  # fmt: skip
    return read_row(out, refs)


def read_row(out: Path, refs: int) -> dict[str, Any]:
    """One table row from an evaluation folder's ``deployment.json``."""
    dep = json.loads((out / "deployment.json").read_text())
    row = {"refs": refs, **dep["measured"]}
    row.update({k: v["mean"] for k, v in dep["a_posteriori"].items()})  # fold means
    row["calibrated"] = dep.get("calibrated_rates") or {}
    row["intervals"] = dep.get("intervals") or {}
    row["threshold"] = dep["threshold"]
    return _with_ratios(row)


def _with_ratios(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with FRR and FAR_skilled over its EER_global (issue 10's bound: 1.25)."""
    eg = row["EER_global"]
    row["FRR/EER"] = row["FRR"] / eg if eg > 0 else float("nan")
    row["FAR_s/EER"] = row["FAR_skilled"] / eg if eg > 0 else float("nan")
    return row


def _check_reusable(out: Path, pop: dict[str, Any], refs: int, args: Any) -> None:
    res = json.loads((out / "results.json").read_text())
    dep = json.loads((out / "deployment.json").read_text())
    found = {
        "refs": res["protocol"]["refs"],
        "folds": res["protocol"]["folds"],
        "bootstrap": (dep.get("intervals") or {}).get("rounds", 0),
        "model": res["meta"].get("model_sha256"),
    }
    want = {
        "refs": refs,
        "folds": args.folds,
        "bootstrap": args.bootstrap,
        "model": pop["model"],
    }
    if found != want:
        raise SystemExit(f"{out} was made with {found}, not {want}: remove it or use another --out")


def _subset(scores: list[Any], users: slice) -> list[Any]:
    """The folds' scores of the writers ``users`` (positions in the protocol's order)."""
    from sigver.evaluation import FoldScores

    return [
        FoldScores(
            genuine=f.genuine[users],
            random=f.random[users],
            skilled=f.skilled[users],
            simple=f.simple[users],
        )
        for f in scores
    ]


def _scores(out: Path) -> list[Any]:
    from sigver.evaluation import load_fold_scores

    res = json.loads((out / "results.json").read_text())
    protocol = res["protocol"]
    return load_fold_scores(
        out / "scores.npz", folds=int(protocol["folds"]), users=len(protocol["exp_user_ids"])
    )


def point(scores: list[Any], threshold: float) -> dict[str, float]:
    """FRR and FAR_skilled at ``threshold`` (fold means) and the a-posteriori EER_global."""
    import numpy as np

    from sigver.evaluation import fixed_threshold_point
    from sigver.metrics import eer_global

    fixed = fixed_threshold_point(scores, threshold)["summary"]
    eg = float(
        np.mean(
            [
                eer_global(
                    np.concatenate([np.ravel(a) for a in f.genuine]),
                    np.concatenate([np.ravel(a) for a in f.skilled]),
                )[0]
                for f in scores
            ]
        )
    )
    out = {"FRR": fixed["FRR"]["mean"], "FAR_skilled": fixed["FAR_skilled"]["mean"]}
    out["EER_global"] = eg
    return _with_ratios(out)


def saved_scores(results: dict[str, list[dict[str, Any]]], folder: Path) -> dict[int, dict]:
    """Per K, the saved scores of synthetic-a and synthetic-b (the two halves of the
    synthetic writers) and SigComp 038-069, where they were evaluated; read once for both
    threshold tables."""
    out: dict[int, dict[str, list[Any]]] = {}
    for r in results.get("synthetic", []):
        syn = _scores(folder / f"synthetic-refs{r['refs']}")
        half = len(syn[0].genuine) // 2
        out.setdefault(r["refs"], {}).update(
            {
                "synthetic-a": _subset(syn, slice(0, half)),
                "synthetic-b": _subset(syn, slice(half, None)),
            }
        )
    for r in results.get("sigcomp-exp", []):
        out.setdefault(r["refs"], {})["sigcomp-exp"] = _scores(
            folder / f"sigcomp-exp-refs{r['refs']}"
        )
    return out


def _applied(
    k: int, shipped: float, t_k: float, saved: dict[str, list[Any]], names: tuple[str, ...]
) -> list[dict[str, Any]]:
    """The shipped threshold and ``t_k`` on each population of ``names`` evaluated at K."""
    return [
        {
            "refs": k,
            "applied_to": name,
            "T_shipped": shipped,
            "T_k": t_k,
            "shipped": point(saved[name], shipped),
            "calibrated_at_k": point(saved[name], t_k),
        }
        for name in names
        if name in saved
    ]


def per_count_thresholds(
    results: dict[str, list[dict[str, Any]]], saved: dict[int, dict]
) -> list[dict[str, Any]]:
    """Per K: the shipped threshold and one calibrated at K on synthetic-a, applied to
    synthetic-b and SigComp 038-069 (``saved``: :func:`saved_scores`)."""
    import numpy as np

    from sigver.calibration import operating_point_threshold

    rows = []
    for r in results.get("synthetic", []):
        k = r["refs"]
        a = saved[k]["synthetic-a"]
        g = np.concatenate([np.ravel(x) for f in a for x in f.genuine])
        s = np.concatenate([np.ravel(x) for f in a for x in f.skilled])
        t_k = float(operating_point_threshold("balanced", g, s))
        rows += _applied(k, r["threshold"], t_k, saved[k], ("synthetic-b", "sigcomp-exp"))
    return rows


def dev_threshold(model: Path, refs: int, args: Any) -> float:
    """``balanced`` threshold of ``sigver calibrate --refs refs`` on SigComp 001-037 (the
    fused one when the model decides with its cue), without writing the checkpoint."""
    out = args.out / f"dev-calibration-refs{refs}.json"
    if not out.is_file():
        _sigver(["calibrate", "--model", str(model), "--data", str(args.sigcomp),
                 "--dataset", "sigcomp2011", "--users", "001-037", "--refs", str(refs),
                 "--pair-extra", str(args.dev_calibration), "--json", str(out),
                 "--jobs", str(args.jobs), "--no-progress", "-q"])  # fmt: skip
    cal = json.loads(out.read_text())
    if cal.get("refs") != refs:
        raise SystemExit(f"{out} was calibrated with {cal.get('refs')} references, not {refs}")
    cue = cal.get("forgery_cue") or {}
    decided = cue.get("calibration") if cue.get("on_by_default") else None
    return float((decided or cal)["operating_points"]["balanced"]["threshold"])


def dev_calibrated_thresholds(
    results: dict[str, list[dict[str, Any]]], saved: dict[int, dict], model: Path, args: Any
) -> list[dict[str, Any]]:
    """Per K that SigComp allows: the shipped threshold and the one calibrated at K on
    001-037, applied to SigComp 038-069 and synthetic-b (``saved``: :func:`saved_scores`)."""
    rows = []
    for r in results.get("sigcomp-exp", []):
        k = r["refs"]
        t_k = dev_threshold(model, k, args)
        rows += _applied(k, r["threshold"], t_k, saved[k], ("sigcomp-exp", "synthetic-b"))
    return rows


def _threshold_table(rows: list[dict[str, Any]], title: str) -> list[str]:
    def pct(v: float) -> str:
        return f"{100 * v:.2f}"

    lines = [
        "",
        title,
        "",
        "| applied to | refs | EER global | shipped T: FRR / FAR_sk, ratios | T_K | "
        "calibrated at K: FRR / FAR_sk, ratios |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        a, c = row["shipped"], row["calibrated_at_k"]
        lines.append(
            f"| {row['applied_to']} | {row['refs']} | {pct(a['EER_global'])} | "
            f"{pct(a['FRR'])} / {pct(a['FAR_skilled'])}, {a['FRR/EER']:.2f} / "
            f"{a['FAR_s/EER']:.2f} | {row['T_k']:.4f} | {pct(c['FRR'])} / "
            f"{pct(c['FAR_skilled'])}, {c['FRR/EER']:.2f} / {c['FAR_s/EER']:.2f} |"
        )
    return lines


def plot(results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """FRR and FAR_skilled at the operating point against the reference count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 3.8), squeeze=False)
    for ax, (name, rows) in zip(axes[0], results.items(), strict=True):
        k = [r["refs"] for r in rows]
        for key, colour, label in (
            ("FRR", "tab:blue", "FRR"),
            ("FAR_skilled", "tab:red", "FAR skilled"),
        ):
            v = [100 * r[key] for r in rows]
            iv = [r["intervals"].get(key) for r in rows]
            if all(iv):
                lo = [vi - 100 * i[0] for vi, i in zip(v, iv, strict=True)]
                hi = [100 * i[1] - vi for vi, i in zip(v, iv, strict=True)]
                ax.errorbar(k, v, yerr=[lo, hi], color=colour, marker="o", capsize=3, label=label)
            else:
                ax.plot(k, v, color=colour, marker="o", label=label)
            cal = rows[0]["calibrated"].get(key)
            if cal is not None:
                ax.axhline(100 * cal, color=colour, ls="--", lw=1, label=f"{label}, calibrated")
        ax.plot(k, [100 * r["EER_global"] for r in rows], color="0.4", marker="s", ls=":",
                label="EER global (a posteriori)")  # fmt: skip
        ax.set_xticks(k)
        ax.set_xlabel("references per user")
        ax.set_ylabel("%")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("The 'balanced' operating point against the number of references (90 % intervals)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigcomp", type=Path, default=REPO.parent / "shared/data/sigcomp2011")
    parser.add_argument("--model", type=Path, help="checkpoint (default: the shipped model)")
    parser.add_argument("--out", type=Path, default=Path("runs/reference-count"))
    parser.add_argument("--work", type=Path, help="corpus and feature folder (default OUT/work)")
    parser.add_argument("--refs", type=int, nargs="+", default=[3, 5, 8, 12])
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--synth-writers", type=int, default=48)
    parser.add_argument("--synth-seed", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--dev-calibration",
        type=Path,
        metavar="PAIR_EXTRA",
        help="also calibrate at each K on SigComp 001-037 (sigver calibrate --refs K) with "
        "this feature set's writers in the pair classifier's fit",
    )
    args = parser.parse_args(argv)
    if args.synth_seed == 0:
        parser.error("seed 0 synthesises the shipped model's training writers; use another")
    if min(args.refs) < 2:
        parser.error("--refs: at least 2 references (leave-one-out needs two)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args.work = args.work or args.out / "work"
    args.work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    from threshold_transfer import write_report

    from sigver.features import default_model_path

    if not any(k <= cap for k in args.refs for cap in MAX_REFS.values()):
        parser.error(f"--refs {args.refs}: no population has enough genuine signatures")
    model = Path(args.model or default_model_path())
    pops = populations(args, model)
    results: dict[str, list[dict[str, Any]]] = {}
    for name, pop in pops.items():
        results[name] = []
        for k in sorted(set(args.refs)):
            if k > pop["max_refs"]:
                logging.info("%s: %d references leave too few test genuines; skipped", name, k)
                continue
            t0 = time.perf_counter()
            results[name].append(evaluate(model, pop, k, args.out / f"{name}-refs{k}", args))
            logging.info("%s, %d references: %.0f s", name, k, time.perf_counter() - t0)
    results = {name: rows for name, rows in results.items() if rows}
    if not results:
        parser.error(f"--refs {args.refs}: no population has enough genuine signatures")
    plot(results, args.out / "reference_count.png")

    def pct(v: float) -> str:
        return f"{100 * v:.2f}"

    def with_iv(r: dict[str, Any], key: str) -> str:
        iv = r["intervals"].get(key)
        return pct(r[key]) + (f" ({pct(iv[0])}-{pct(iv[1])})" if iv else "")

    from sigver.models.checkpoint import load_checkpoint

    first = next(iter(results.values()))[0]
    cal = first["calibrated"]
    stored = load_checkpoint(model).meta.metrics.get("calibration") or {}
    cal_on = f"{stored.get('refs', '?')} references, {len(stored.get('users') or [])} writers"
    lines = [
        f"# The operating point against the number of references ({model.name})",
        "",
        f"`balanced` threshold T = {first['threshold']:.4f}, calibrated for FRR "
        f"{pct(cal.get('FRR', float('nan')))} %, FAR_skilled "
        f"{pct(cal.get('FAR_skilled', float('nan')))} %, FAR_random "
        f"{pct(cal.get('FAR_random', float('nan')))} % ({cal_on} of its calibration data). "
        "Rates at T with 90 % writer-bootstrap intervals, EERs a posteriori on the same "
        "scores, in %; ratios over EER_global (bound 1.25).",
        "",
        "| population | refs | FRR | FAR_skilled | FAR_random | EER global / user | FRR/EER | "
        "FAR_s/EER |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in results.items():
        for r in rows:
            lines.append(
                f"| {name} | {r['refs']} | {with_iv(r, 'FRR')} | {with_iv(r, 'FAR_skilled')} | "
                f"{with_iv(r, 'FAR_random')} | {pct(r['EER_global'])} / {pct(r['EER_user'])} | "
                f"{r['FRR/EER']:.2f} | {r['FAR_s/EER']:.2f} |"
            )
    saved = saved_scores(results, args.out)
    per_count = per_count_thresholds(results, saved)
    if per_count:
        lines += _threshold_table(
            per_count,
            "Per-count thresholds: the `balanced` threshold calibrated at each K on the first "
            "half of the synthetic writers (synthetic-a), against the shipped one, applied to "
            "synthetic-b and SigComp 038-069 at the same K. FRR / FAR_skilled in %, then their "
            "ratios to EER_global:",
        )
    dev = dev_calibrated_thresholds(results, saved, model, args) if args.dev_calibration else []
    if dev:
        lines += _threshold_table(
            dev,
            "Per-count thresholds calibrated on real development writers: `sigver calibrate "
            "--users 001-037 --refs K` (the model's normaliser and cue, pair classifier with "
            f"the writers of {args.dev_calibration.name}), applied at the same K:",
        )
    lines += [
        "",
        f"{args.folds} folds; synthetic: {args.synth_writers} writers, seed {args.synth_seed}, "
        f"{SYNTH_GENUINE} genuine and 12 forgeries each. Each row is `sigver evaluate "
        "--negatives model --refs K` (folder OUT/<population>-refs<K>).",
    ]
    write_report(
        args.out,
        "reference_count",
        lines,
        {
            "model": str(model),
            "results": results,
            "per_count_thresholds": per_count,
            "dev_calibrated_thresholds": dev,
            "folds": args.folds,
            "synthetic": {"writers": args.synth_writers, "seed": args.synth_seed},
        },
        start,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

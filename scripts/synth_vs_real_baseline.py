"""Compare the non-learned baselines (HOG, LBP) on a synthetic corpus and on SigComp2011.

The synthetic corpus mirrors SigComp2011-dev (64 writers x 12 genuine x 12
skilled forgeries by default): the first half of the writers is the
development set, the second half the exploitation set, 5 references, 10
folds, the same RBF SVMs as the README table (``sigver.evaluation``). The
real rows use the ``sigcomp2011-dev`` preset as is and are skipped when the
data folder is missing.

Usage::

    python scripts/synth_vs_real_baseline.py --writers 64 --genuine 12 --forgeries 12 \\
        --seed 2011 --out runs/synth_vs_real [--real ../shared/data/sigcomp2011] [--jobs 2]

Writes ``OUT/corpus/`` (the synthetic images), ``OUT/synth_vs_real.md`` and
``OUT/synth_vs_real.json``, and prints the table.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from sigver._util import atomic_write, command_line, machine_info, write_json
from sigver.baseline import baseline_features
from sigver.cache import load_signatures
from sigver.evaluation import ClassifierConfig, evaluate
from sigver.protocol import ProtocolConfig, get_preset
from sigver.synth import generate_corpus

REPO = Path(__file__).resolve().parents[1]
KEYS = ("EER_user", "EER_global", "FAR_skilled", "FRR", "AUC")


def _rows(
    data: str, dataset: str, protocol: ProtocolConfig, jobs: int, path: Path
) -> list[dict[str, Any]]:
    cache = load_signatures(dataset, path, n_jobs=jobs, progress=False)
    rows = []
    for kind in ("hog", "lbp"):
        t0 = time.perf_counter()
        fs = baseline_features(cache, kind)
        result = evaluate(fs, protocol, ClassifierConfig(), n_jobs=jobs, progress=False)
        rows.append(
            {
                "data": data,
                "features": kind.upper(),
                "n_images": int(len(cache.y)),
                "summary": result.summary,
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
    return rows


def _cell(stat: dict[str, float], key: str) -> str:
    if key == "AUC":
        return f"{stat['mean']:.3f} ± {stat['std']:.3f}"
    return f"{100 * stat['mean']:.2f} ± {100 * stat['std']:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--genuine", type=int, default=12)
    parser.add_argument("--forgeries", type=int, default=12)
    parser.add_argument("--seed", type=int, default=2011, help="synthetic corpus seed")
    parser.add_argument("--out", type=Path, default=REPO / "runs/synth_vs_real")
    parser.add_argument("--real", type=Path, default=REPO.parent / "shared/data/sigcomp2011")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--protocol-seed", type=int, default=1234)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    if args.writers < 4 or args.genuine < 6:
        parser.error("need --writers >= 4 and --genuine >= 6 (5 references + test genuines)")

    args.out.mkdir(parents=True, exist_ok=True)
    corpus = args.out / "corpus"
    t0 = time.perf_counter()
    generate_corpus(
        corpus,
        args.writers,
        args.genuine,
        args.forgeries,
        seed=args.seed,
        n_jobs=args.jobs,
        progress=False,
    )
    synth_seconds = time.perf_counter() - t0

    real_proto = get_preset("sigcomp2011-dev").replace(seed=args.protocol_seed, folds=args.folds)
    half = args.writers // 2
    synth_proto = real_proto.replace(
        name="sigcomp2011-dev-synthetic", exp_users=(half, args.writers), dev_users=(0, half)
    )
    rows = _rows("synthetic", "gpds-synthetic", synth_proto, args.jobs, corpus)
    if args.real.is_dir():
        rows += _rows("SigComp2011 (real)", "sigcomp2011", real_proto, args.jobs, args.real)
    else:
        logging.warning("real data %s not found; real rows skipped", args.real)

    report = {
        "command": command_line(),
        "machine": machine_info(include_torch=True),
        "synthetic": {
            "writers": args.writers,
            "genuine": args.genuine,
            "forgeries": args.forgeries,
            "seed": args.seed,
            "generation_seconds": round(synth_seconds, 1),
        },
        "protocols": {"synthetic": synth_proto.to_dict(), "real": real_proto.to_dict()},
        "rows": rows,
    }
    lines = [
        "| data | features | " + " | ".join(KEYS) + " |",
        "|---" * (len(KEYS) + 2) + "|",
    ]
    for row in rows:
        cells = [_cell(row["summary"][k], k) for k in KEYS]
        lines.append(f"| {row['data']} | {row['features']} | " + " | ".join(cells) + " |")
    m = report["machine"]
    md = (
        f"Baselines on synthetic ({args.writers} writers x {args.genuine} genuine x "
        f"{args.forgeries} skilled forgeries, seed {args.seed}; dev = first {half}, exp = last "
        f"{args.writers - half}) vs SigComp2011-dev. {args.folds} folds, protocol seed "
        f"{args.protocol_seed}, 5 references, RBF SVM C=1 gamma=2^-11, scaler per fold. "
        "Rates in %, mean ± std over folds.\n\n"
        + "\n".join(lines)
        + f"\n\nMachine: {m['platform']}, Python {m['python']}, {m['cpu_count']} CPUs, "
        f"torch threads {m['torch_threads']}. Synthetic generation: {synth_seconds:.1f} s.\n"
        f"Command: `{report['command']}`\n"
    )
    atomic_write(args.out / "synth_vs_real.md", md)
    write_json(args.out / "synth_vs_real.json", report)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

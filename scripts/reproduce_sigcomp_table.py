"""Reproduce the README's SigComp2011-dev results table.

Rows: the given model (default: the shipped model, ``sigver.features.default_model_path()``,
when it exists) and the non-learned baselines (HOG, LBP), all through the same
writer-dependent classifiers and the ``sigcomp2011-dev`` protocol (10 folds).

Usage::

    python scripts/reproduce_sigcomp_table.py --data ../shared/data/sigcomp2011 \\
        --out runs/sigcomp_table [--model PATH] [--no-model] [--seed 1234] [--jobs 2]

Writes ``OUT/table.md``, ``OUT/table.json`` and one sub-folder per row with the
full ``sigver evaluate`` reports.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from sigver._util import atomic_write, command_line, machine_info, write_json
from sigver.baseline import baseline_features
from sigver.cache import load_signatures
from sigver.evaluation import LABELS, SUMMARY_METRICS, ClassifierConfig, evaluate, write_results
from sigver.featureset import FeatureSet
from sigver.protocol import get_preset

REPO = Path(__file__).resolve().parents[1]


def _model_rows(args: argparse.Namespace) -> list[tuple[str, Path]]:
    if args.no_model:
        return []
    if args.model is not None:
        return [(args.model.stem, args.model)]
    try:
        from sigver.features import default_model_path

        path = Path(default_model_path())
    except Exception as exc:  # noqa: BLE001 - the shipped model may not exist yet
        logging.warning("no default model (%s); model row skipped", exc)
        return []
    if not path.is_file():
        logging.warning("shipped model %s not found; model row skipped", path)
        return []
    return [(path.stem, path)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/sigcomp2011")
    parser.add_argument("--out", type=Path, default=REPO / "runs/sigcomp_table")
    parser.add_argument("--model", type=Path)
    parser.add_argument("--no-model", action="store_true")
    parser.add_argument("--baselines", nargs="*", default=["hog", "lbp"])
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")

    protocol = get_preset("sigcomp2011-dev").replace(seed=args.seed, folds=args.folds)
    cache = load_signatures("sigcomp2011", args.data, n_jobs=args.jobs)
    rows: list[tuple[str, FeatureSet]] = []
    for _name, path in _model_rows(args):
        from sigver.features import Extractor

        ext = Extractor.from_checkpoint(path)
        rows.append((f"SigNet features ({ext.model_id})", ext.extract_featureset(cache)))
    for kind in args.baselines:
        rows.append((f"{kind.upper()} baseline", baseline_features(cache, kind)))

    table = {
        "protocol": protocol.to_dict(),
        "command": command_line(),
        "machine": machine_info(),
        "rows": [],
    }
    for label, fs in rows:
        t0 = time.perf_counter()
        result = evaluate(fs, protocol, ClassifierConfig(), n_jobs=args.jobs, progress=False)
        slug = fs.meta["model_id"].replace("/", "_")
        write_results(result, fs.user_ids, args.out / slug)
        table["rows"].append(
            {
                "features": label,
                "model_id": fs.meta["model_id"],
                "dim": fs.dim,
                "summary": result.summary,
                "a_priori": {k: result.a_priori.get(k) for k in ("FRR", "FAR_skilled")},
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
    keys = list(SUMMARY_METRICS)
    lines = [
        "| features | " + " | ".join(LABELS[k] for k in keys) + " |",
        "|---" * (len(keys) + 1) + "|",
    ]
    for row in table["rows"]:
        cells = []
        for k in keys:
            s = row["summary"][k]
            scale = 1 if k == "AUC" else 100
            fmt = ".4f" if k == "AUC" else ".2f"
            cells.append(f"{scale * s['mean']:{fmt}} ± {scale * s['std']:{fmt}}")
        lines.append(f"| {row['features']} | " + " | ".join(cells) + " |")
    md = (
        f"SigComp2011-dev ({protocol.folds} folds, seed {protocol.seed}, 5 references, RBF SVM "
        "C=1 gamma=2^-11, scaler per fold). Rates in %, mean ± std over folds.\n\n"
        + "\n".join(lines)
        + "\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "table.md", md)
    write_json(args.out / "table.json", table)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

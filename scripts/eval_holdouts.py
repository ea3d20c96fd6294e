"""Per-script synthetic hold-out figures of trained models, side by side in one run.

The hold-out corpora are the ones ``scripts/train_v2_model.py`` builds (one per
script, 24 writers, seed 1, hold-out styles no training corpus uses, 10 genuine
+ 5 skilled forgeries each), preprocessed on the synthetic canvas of the
training corpus, and evaluated with the research protocol: the first 12 writers
are exploitation users, the other 12 development users (negatives), 5
references, 10 folds, a-posteriori thresholds (global and per user). Each model
is evaluated through ``sigver evaluate --model`` (its own SVM settings), so a
model that was not trained by the v2 pipeline (the ensemble, the distilled v6)
gets the same table as one that was. The stages are resumable (the folder keeps
what is done).

Usage::

    python scripts/eval_holdouts.py --work runs/holdouts --canvas-from runs/distill/synth \\
        --model v5=sigver-sigresnet-v5 --model v6=sigver-sigresnet-v6

``--canvas-from`` names a synthetic training corpus (the canvas on which its ink
is as wide as SigComp2011's, as in the v2 pipeline); ``--canvas H W`` gives it.
Prints a Markdown table (EER user / global thresholds in %) and writes it, with the
canvas, to ``WORK/holdouts.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))


def _model_arg(text: str) -> tuple[str, str]:
    name, sep, model = text.partition("=")
    if not sep or not name or not model:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=MODEL (path or shipped name)")
    return name, model


def holdout_table(work: Path, names: list[str]) -> str:
    """Markdown table of ``work/eval/holdout-SCRIPT-NAME/results.json``: EER user / global, %."""
    from sigver.synth.scripts import SCRIPTS

    rows, sums = [], {n: [0.0, 0.0] for n in names}
    for script in SCRIPTS:
        cells = []
        for name in names:
            summary = json.loads(
                (work / "eval" / f"holdout-{script}-{name}" / "results.json").read_text()
            )["summary"]
            user, glob = 100 * summary["EER_user"]["mean"], 100 * summary["EER_global"]["mean"]
            sums[name][0] += user
            sums[name][1] += glob
            cells.append(f"{user:.2f} / {glob:.2f}")
        rows.append(f"| {script} | " + " | ".join(cells) + " |")
    n = len(SCRIPTS)
    mean = " | ".join(f"**{u / n:.2f} / {g / n:.2f}**" for u, g in sums.values())
    return "\n".join(
        [
            "| script | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
            *rows,
            f"| **mean** | {mean} |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument(
        "--model",
        type=_model_arg,
        action="append",
        required=True,
        help="NAME=MODEL (checkpoint path or shipped name); repeat to compare",
    )
    canvas = parser.add_mutually_exclusive_group(required=True)
    canvas.add_argument("--canvas-from", type=Path, help="synthetic training corpus folder")
    canvas.add_argument("--canvas", type=int, nargs=2, metavar=("H", "W"))
    parser.add_argument("--holdout-writers", type=int, default=24, help="per script")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from train_v2_model import (
        Pipeline,
        cache_holdouts,
        evaluate_holdouts,
        synth_canvas,
        synth_holdouts,
    )

    from sigver.features import resolve_model_path

    names = [name for name, _ in args.model]
    if len(set(names)) != len(names):
        parser.error(f"--model names must differ: {names}")
    if args.canvas_from is not None and not args.canvas_from.is_dir():
        parser.error(f"--canvas-from {args.canvas_from}: not a folder")
    models = {name: resolve_model_path(model) for name, model in args.model}
    args.work.mkdir(parents=True, exist_ok=True)
    p = Pipeline(args)
    jobs = ["--jobs", str(args.jobs)]
    synth_holdouts(p, args.work, args.holdout_writers, jobs)
    size = args.canvas or synth_canvas(args.canvas_from)
    logging.getLogger("eval_holdouts").info("synthetic canvas %s x %s", *size)
    cache_holdouts(p, args.work, [str(v) for v in size], jobs)
    evaluate_holdouts(p, args.work, models, args.holdout_writers)
    if args.dry_run:
        return 0
    table = holdout_table(args.work, names)
    # The canvas is recorded: hold-out figures move with it.
    text = f"Synthetic canvas {size[0]} x {size[1]}.\n\n{table}\n"
    (args.work / "holdouts.md").write_text(text, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

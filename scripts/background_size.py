"""How many synthetic writers should the shipped background hold? Product path, one rule.

Every enrolled user's classifier is trained against the model's background set
(SigComp2011 development writers 001-037 and the first 80 synthetic training writers,
``scripts/ship_model.py``) plus the other users' references. More negatives may give
better per-user classifiers, at the cost of enrollment time and file size. This
script rebuilds the background with ``--writers`` synthetic writers (the same
builder as shipping, the same extractor) and measures EER_user and EER_global
(a-posteriori, of the product-normalised scores; every user enrolled as
``Verifier.enroll`` enrolls: :func:`sigver.evaluation.simulate_deployment`, 5
references, 5 folds, seed 1234).

Rule, fixed before the first run (the populations and margins of ``svm_grid.py``):

- Selection reads only ``synthetic-a`` and ``sigcomp-dev`` (SigComp2011 001-037).
- The candidate is the size with the lowest mean EER_user over the two.
- It replaces the shipped 80 only if, against 80, it lowers EER_user by at least 0.2
  points on **both** selection populations and raises EER_global by no more than 0.2
  points on either.
- ``sigcomp-exp`` and ``synthetic-b`` are reported for 80 and the candidate only,
  after the choice.

Usage::

    python scripts/background_size.py --sigcomp ../shared/data/sigcomp2011 \\
        --synth-cache SYNTH.npz --out runs/background-size

``SYNTH.npz``: a preprocessed v2 training-split corpus, seed 0 (the shipped model's
first training writers), as ``scripts/train_v2_model.py`` builds it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ship_model import build_background  # noqa: E402
from svm_grid import (  # noqa: E402
    MAX_LOSS,
    MIN_GAIN,
    REPORTED,
    SELECTION,
    _run,
    passes_margins,
    prepare,
    write_report,
)
from threshold_transfer import add_corpus_arguments  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHIPPED = 80


def decide(rows: dict[int, dict]) -> tuple[int, bool]:
    """The rule of the module docstring: ``(candidate size, adopted)``."""

    def mean(n: int) -> float:
        return sum(rows[n][p]["EER_user"] for p in SELECTION) / len(SELECTION)

    best = min(rows, key=mean)
    return best, best != SHIPPED and passes_margins(rows[SHIPPED], rows[best])


def _cells(row: dict, pops: tuple[str, ...]) -> str:
    return " | ".join(f"{row[p]['EER_user']:.2f} | {row[p]['EER_global']:.2f}" for p in pops) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_arguments(parser)
    parser.add_argument("--model", type=Path, help="checkpoint (default: the shipped model)")
    parser.add_argument("--synth-cache", type=Path, required=True)
    parser.add_argument("--sigcomp-cache", type=Path, help="SigComp2011 cache (default: built)")
    parser.add_argument("--writers", type=int, nargs="+", default=[0, SHIPPED, 240, 480])
    parser.add_argument("--out", type=Path, default=REPO / "runs/background-size")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    if SHIPPED not in args.writers:
        parser.error(f"--writers must include the shipped size {SHIPPED}")
    args.normalization = None  # the model's, as enrollment
    start = time.perf_counter()

    from sigver.usermodel import DEFAULT_CLASSIFIER_PARAMS

    feats, shipped_bg, extractor = prepare(args, parser)
    sigcomp_cache = args.sigcomp_cache or args.work / "sigcomp2011.npz"
    if not sigcomp_cache.is_file():
        from sigver.cli import main as sigver

        sigver(["preprocess", "--dataset", "sigcomp2011", "--path", str(args.sigcomp),
                "--out", str(sigcomp_cache), "--no-progress", "-q"])  # fmt: skip
    pops = {
        p: feats["synthetic" if p.startswith("synthetic") else "sigcomp"]
        for p in SELECTION + REPORTED
    }
    params = dict(DEFAULT_CLASSIFIER_PARAMS)
    backgrounds, rows = {}, {}
    for n in args.writers:
        backgrounds[n] = build_background(
            extractor, sigcomp_cache, args.synth_cache, synth_writers=n
        )
        rows[n] = {p: _run(pops[p], p, backgrounds[n], params, args) for p in SELECTION}
        print(f"{n} synthetic writers ({len(backgrounds[n])} signatures): {rows[n]}", flush=True)
    # The rebuilt shipped size must be the shipped file, or the comparison means nothing.
    same = len(backgrounds[SHIPPED]) == len(shipped_bg) and bool(
        (abs(backgrounds[SHIPPED].features - shipped_bg.features) < 1e-2).all()
    )
    best, adopted = decide(rows)
    held = {n: {p: _run(pops[p], p, backgrounds[n], params, args) for p in REPORTED}
            for n in dict.fromkeys((SHIPPED, best))}  # fmt: skip
    lines = [
        "| synthetic writers | signatures | synthetic-a EER_user | synthetic-a EER_global | "
        "sigcomp-dev EER_user | sigcomp-dev EER_global |",
        "|---|---|---|---|---|---|",
    ]
    for n, row in rows.items():
        mark = " (shipped)" if n == SHIPPED else ""
        lines.append(f"| {n}{mark} | {len(backgrounds[n])} | " + _cells(row, SELECTION))
    verdict = f"adopted: {best}" if adopted else f"{SHIPPED} kept (best: {best})"
    lines += [
        "",
        f"Rule: gain >= {MIN_GAIN} points of EER_user on both selection populations, EER_global "
        f"loss <= {MAX_LOSS} on either. Verdict: **{verdict}**. Rebuilt {SHIPPED}-writer "
        f"background has the shipped file's features: {'yes' if same else 'NO'}.",
        "",
        "Held out (reported after the choice):",
        "",
        "| synthetic writers | sigcomp-exp EER_user | sigcomp-exp EER_global | "
        "synthetic-b EER_user | synthetic-b EER_global |",
        "|---|---|---|---|---|",
    ]
    for n, row in held.items():
        lines.append(f"| {n} | " + _cells(row, REPORTED))
    payload = {"rows": rows, "held_out": held, "adopted": adopted, "best": best}
    write_report(args, lines, "background_size", payload, model_id=extractor.model_id, start=start)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``sigver compare``: is one evaluation better than another on the same writers?

Two ``sigver evaluate`` output folders of the same protocol (same exploitation writers,
folds and reference draws: for example two models, or two normalisers, on one dataset)
are compared by a *paired* writer bootstrap (:func:`sigver.bootstrap.paired_intervals`):
each draw picks the writers once and reads both evaluations on them. The difference
``B - A`` of every figure gets a percentile interval and the share of draws in which B's
figure is the lower one. An interval of each figure alone would overlap for most pairs
of rows in a results table even when one row is better on nearly every draw of writers.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

NAME = "compare"
HELP = "compare two evaluations of the same writers (paired writer bootstrap)"

logger = logging.getLogger("sigver.compare")

#: Protocol fields that must agree for the two evaluations to share their writers and draws.
SAME_PROTOCOL = ("exp_user_ids", "folds", "fold_seeds", "refs")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the two evaluation folders and the bootstrap's settings."""
    parser.add_argument("a", type=Path, metavar="A", help="sigver evaluate --out folder (baseline)")
    parser.add_argument("b", type=Path, metavar="B", help="sigver evaluate --out folder")
    parser.add_argument(
        "--bootstrap", type=int, default=1000, metavar="N", help="writer draws (default 1000)"
    )
    parser.add_argument(
        "--level", type=float, default=0.9, help="coverage of the intervals (default 0.9)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")


def load_evaluation(folder: Path) -> dict[str, Any]:
    """``results.json`` and the per-fold scores of one ``sigver evaluate --out`` folder.

    Raises
    ------
    SigverError
        A missing or unreadable file.
    """
    from sigver.errors import SigverError
    from sigver.evaluation import load_fold_scores

    results = folder / "results.json"
    if not results.is_file():
        raise SigverError(f"{folder}: no results.json (is it a sigver evaluate --out folder?)")
    try:
        data = json.loads(results.read_text())
        protocol = data["protocol"]
        n_folds, n_users = int(protocol["folds"]), len(protocol["exp_user_ids"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SigverError(f"{results}: not a sigver evaluate result ({exc})") from exc
    scores = load_fold_scores(folder / "scores.npz", folds=n_folds, users=n_users)
    threshold = (data.get("fixed_threshold") or {}).get("threshold")
    return {
        "folder": str(folder),
        "protocol": protocol,
        "samples": (data.get("meta") or {}).get("samples_sha256"),
        "model": (data.get("meta") or {}).get("model_id"),
        "threshold": None if threshold is None else float(threshold),
        "scores": scores,
    }


def check_same_writers(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Refuse two evaluations that do not score the same signatures of the same writers.

    Raises
    ------
    SigverError
        A protocol field of :data:`SAME_PROTOCOL` differs, the signatures drawn from
        differ (``samples_sha256``, when both record it), or a writer has a different
        number of test genuines or forgeries in some fold.
    """
    import numpy as np

    from sigver.errors import SigverError

    for key in SAME_PROTOCOL:
        if a["protocol"].get(key) != b["protocol"].get(key):
            raise SigverError(
                f"{a['folder']} and {b['folder']} differ in the protocol's {key}: a paired "
                "comparison needs the same writers, folds and reference draws"
            )
    if a["samples"] and b["samples"] and a["samples"] != b["samples"]:
        raise SigverError(
            f"{a['folder']} and {b['folder']} drew from different signatures, or from the same "
            "ones in another order (samples_sha256 in results.json): their folds differ"
        )
    if not (a["samples"] and b["samples"]):
        logger.warning(
            "one evaluation does not record its signatures (samples_sha256): the check that "
            "both drew the same references rests on the protocol and the score counts"
        )
    for part in ("genuine", "skilled", "random"):
        for k, (fa, fb) in enumerate(zip(a["scores"], b["scores"], strict=True)):
            na = [np.size(x) for x in getattr(fa, part)]
            nb = [np.size(x) for x in getattr(fb, part)]
            if na != nb:
                raise SigverError(
                    f"fold {k}: the two evaluations score different numbers of {part} "
                    "signatures per writer (another dataset, or another protocol)"
                )


def run(args: argparse.Namespace) -> int:
    """Print the paired comparison (and write it with ``--json``)."""
    from sigver._util import write_json
    from sigver.bootstrap import paired_intervals
    from sigver.errors import SigverError

    if args.bootstrap < 1:
        raise SigverError("--bootstrap must be >= 1")
    if not 0 < args.level < 1:
        raise SigverError("--level must lie in (0, 1)")
    a, b = load_evaluation(args.a), load_evaluation(args.b)
    check_same_writers(a, b)
    out = paired_intervals(
        a["scores"],
        b["scores"],
        (a["threshold"], b["threshold"]),
        rounds=args.bootstrap,
        seed=args.seed,
        level=args.level,
    )
    pct = round(100 * args.level)
    writers = len(a["protocol"]["exp_user_ids"])
    print(
        f"A: {a['folder']} ({a['model'] or 'features'}"
        + ("" if a["threshold"] is None else f", T {a['threshold']:+.4f}")
        + ")\n"
        f"B: {b['folder']} ({b['model'] or 'features'}"
        + ("" if b["threshold"] is None else f", T {b['threshold']:+.4f}")
        + ")\n"
        f"{writers} writers, {a['protocol']['folds']} folds; paired writer bootstrap, "
        f"{args.bootstrap} draws, seed {args.seed}; figures in %, fold means"
    )
    header = f"{'figure':<12} {'A':>7} {'B':>7} {'B - A':>7}  {pct} % interval of B - A   B lower"
    print(header)
    print("-" * len(header))
    for k in out["point"]["a"]:
        lo, hi = out["difference"][k]
        pa, pb = out["point"]["a"][k], out["point"]["b"][k]
        print(
            f"{k:<12} {100 * pa:7.2f} {100 * pb:7.2f} {100 * (pb - pa):+7.2f}  "
            f"[{100 * lo:+6.2f}, {100 * hi:+6.2f}]{'':>9} {100 * out['b_lower'][k]:5.1f} %"
        )
    if a["threshold"] is None or b["threshold"] is None:
        print(
            "(FRR and FAR need both evaluations run at a threshold: --negatives model or "
            "--threshold T)"
        )
    if args.json:
        write_json(
            args.json,
            {
                "evaluations": {
                    side: {k: e[k] for k in ("folder", "model", "threshold")}
                    for side, e in (("a", a), ("b", b))
                },
                "writers": writers,
                "seed": args.seed,
                **out,
            },
        )
    return 0

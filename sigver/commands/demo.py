"""``sigver demo``: the whole job end to end on synthetic signatures, in seconds."""

from __future__ import annotations

import argparse
from pathlib import Path

from enrollment._cli import add_model_argument, format_table

NAME = "demo"
HELP = "end-to-end demo: synthesise writers, enroll them, verify genuine and forged signatures"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``demo`` options."""
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="new or empty folder (default: a temp folder)"
    )
    parser.add_argument("--writers", type=int, default=6, metavar="N", help="writers (default 6)")
    parser.add_argument(
        "--references", type=int, default=10, metavar="N", help="enrollment images per writer"
    )
    parser.add_argument(
        "--tests", type=int, default=5, metavar="N",
        help="genuine test signatures, skilled and random forgeries per writer (default 5)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=2024, help="corpus seed (default 2024)")
    add_model_argument(parser)
    parser.add_argument("--json", action="store_true", help="print results.json instead")


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}%"


def run(args: argparse.Namespace) -> int:
    """Run the demo and print the per-user table and the error rates."""

    from enrollment.demo import DemoConfig, run_demo

    config = DemoConfig(
        n_writers=args.writers,
        n_references=args.references,
        n_genuine_tests=args.tests,
        n_forgeries=args.tests,
        n_random=args.tests,
        seed=args.seed,
    )
    report = run_demo(
        args.out,
        config,
        model=args.model,
        echo=None if args.json else print,
        backend=args.backend,
    )
    if args.json:
        print(report.to_json())
        return 0
    rows = [
        (
            u["user_id"],
            u["references"],
            f"{u['genuine_accepted']}/{u['genuine_total']}",
            f"{u['skilled_rejected']}/{u['skilled_total']}",
            f"{u['random_rejected']}/{u['random_total']}",
            f"{u['mean_score_genuine']:+.3f}",
            f"{u['mean_score_skilled']:+.3f}",
            "-" if u["mean_score_random"] is None else f"{u['mean_score_random']:+.3f}",
        )
        for u in report.users
    ]
    print()
    print(f"per user (threshold {report.threshold:+.4f}):")
    print(
        format_table(
            (
                "user", "refs", "genuine accepted", "skilled rejected", "random rejected",
                "mean genuine", "mean skilled", "mean random",
            ),
            rows,
        )
    )  # fmt: skip
    m = report.metrics
    print()
    print("error rates:")
    print(
        format_table(
            ("EER global thr.", "EER user thr.", "FRR", "FAR skilled", "FAR random", "AUC"),
            [
                (
                    _pct(m["EER_global"]), _pct(m["EER_user"]), _pct(m["FRR"]),
                    _pct(m["FAR_skilled"]), _pct(m["FAR_random"]), f"{m['AUC']:.3f}",
                )
            ],
        )
    )  # fmt: skip
    print(
        "(EERs use a-posteriori thresholds chosen on these scores; FRR/FAR use the "
        "deployed threshold)"
    )
    first = report.users[0]["user_id"]
    out = report.out
    print()
    print(f"files: {out} (images/, home/ = user store, results.json, scores.png)")
    print("try:")
    print(f"  sigver users list --home {out / 'home'}")
    print(
        f"  sigver verify --home {out / 'home'} --user {first} "
        f"{out / 'images' / first / 'forgery-00.png'}"
        + (f" --model {args.model}" if args.model else "")
    )
    return 0

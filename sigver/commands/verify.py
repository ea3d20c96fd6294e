"""``sigver verify``: verify questioned signatures against an enrolled user.

Exit status: 0 when every image is accepted, 1 when any is rejected, 2 on
errors (unknown user, unreadable image, model mismatch...).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from enrollment._cli import (
    add_forgery_cue_argument,
    add_home_argument,
    add_model_argument,
    add_operating_point_argument,
    format_table,
    print_json,
)

NAME = "verify"
HELP = "verify questioned signatures of a user (exit 0 accepted, 1 rejected, 2 error)"

EXIT_REJECTED = 1
EXIT_ERROR = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``verify`` options."""
    parser.add_argument("--user", "-u", required=True, metavar="ID", help="claimed user id")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMG", help="questioned images")
    add_model_argument(parser)
    add_home_argument(parser)
    add_operating_point_argument(parser)
    add_forgery_cue_argument(parser)
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args: argparse.Namespace) -> int:
    """Score each image, print the decisions and return the exit status."""
    import logging

    from enrollment._cli import make_verifier
    from enrollment.store import validate_user_id
    from sigver.errors import ImageError

    log = logging.getLogger("sigver.commands.verify")
    validate_user_id(args.user)
    verifier = make_verifier(args)
    # Fail early (exit 2) on an unknown user or a model mismatch, before any image work.
    verifier.check_user(args.user)

    rows: list[dict[str, object]] = []
    errors = 0
    for path in args.images:
        try:
            result = verifier.verify(args.user, path)
        except ImageError as exc:
            errors += 1
            log.error("%s", exc)
            rows.append({"image": str(path), "error": exc.reason})
            continue
        rows.append({"image": str(path), **result.to_dict()})
    rejected = sum(1 for r in rows if r.get("accepted") is False)
    status = EXIT_ERROR if errors else EXIT_REJECTED if rejected else 0

    if args.json:
        print_json(
            {
                "user_id": args.user,
                "model_id": verifier.model_id,
                "accepted": status == 0,
                "results": rows,
            }
        )
        return status
    table = [
        (
            r["image"],
            "-" if "error" in r else f"{r['score']:+.4f}",
            "-" if "error" in r else f"{r['threshold']:+.4f}",
            f"ERROR: {r['error']}" if "error" in r else str(r["decision"]).upper(),
        )
        for r in rows
    ]
    print(f"user {args.user}, model {verifier.model_id}")
    print(format_table(("image", "score", "threshold", "decision"), table))
    decided = next((r for r in rows if "error" not in r), None)
    if decided is not None:
        rates = decided.get("calibrated_rates") or {}
        shown = ", ".join(
            f"{k} {100 * v:.1f} %" for k, v in rates.items() if isinstance(v, (int, float))
        )
        cal_refs, refs = decided.get("calibrated_references"), decided.get("references")
        if shown and cal_refs:
            shown += f", with {cal_refs} references per user"
            if refs is not None and refs != cal_refs:
                # The rates move with the reference count (scripts/reference_count.py).
                shown += f"; this user has {refs}, and the rates move with the count"
        print(
            f"operating point: {decided['operating_point'] or '-'}"
            + (f" (calibrated for {shown})" if shown else "")
        )
    return status

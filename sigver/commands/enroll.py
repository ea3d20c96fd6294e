"""``sigver enroll``: enroll a user from reference signatures (or add references)."""

from __future__ import annotations

import argparse
from pathlib import Path

from enrollment._cli import add_home_argument, add_model_argument, print_json

NAME = "enroll"
HELP = "enroll a user from genuine reference signatures (trains their classifier)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``enroll`` options."""
    parser.add_argument("--user", "-u", required=True, metavar="ID", help="user id")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMG", help="reference images")
    add_model_argument(parser)
    add_home_argument(parser)
    parser.add_argument(
        "--min-refs",
        type=int,
        metavar="N",
        help="fewest distinct references accepted (default 4, or $SIGVER_MIN_REFS)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--add", action="store_true", help="add references to an existing user and retrain"
    )
    mode.add_argument(
        "--force", action="store_true", help="replace an existing enrollment (e.g. new model)"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        metavar="T",
        help="per-user decision threshold (default: the model's calibrated threshold)",
    )
    parser.add_argument(
        "--store-images",
        action="store_true",
        help="also keep the reference images in the store (default: features and hashes only)",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args: argparse.Namespace) -> int:
    """Enroll the user and print a summary."""
    from enrollment._cli import make_verifier
    from enrollment.store import validate_user_id

    validate_user_id(args.user)
    if args.min_refs is not None and args.min_refs < 1:
        from enrollment.errors import EnrollmentError

        raise EnrollmentError(f"--min-refs must be at least 1, got {args.min_refs}")
    verifier = make_verifier(args, create=True)
    result = verifier.enroll(
        args.user,
        list(args.images),
        add=args.add,
        force=args.force,
        threshold=args.threshold,
        store_images=args.store_images,
        min_references=args.min_refs,
    )
    if args.json:
        print_json(result.to_dict())
        return 0
    user = result.user
    verb = "updated" if user.revision > 1 else "enrolled"
    print(
        f"{verb} {user.user_id}: {user.n_references} references ({result.added} new"
        + (f", {len(result.duplicates)} duplicate(s) skipped" if result.duplicates else "")
        + f"), {result.n_negatives} negatives, model {user.model_id}"
    )
    source = "user override" if user.threshold is not None else verifier.threshold_source
    print(f"threshold {result.threshold:+.4f} ({source}); store {verifier.store.location}")
    return 0

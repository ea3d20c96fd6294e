"""``sigver audit``: read the append-only audit trail (enroll, verify, threshold, remove...)."""

from __future__ import annotations

import argparse

from enrollment._cli import (
    add_store_argument,
    check_home,
    format_table,
    open_store_from_args,
    print_json,
)

NAME = "audit"
HELP = "show the audit trail (who enrolled, verified, changed or removed what, and when)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``audit`` filters."""
    from enrollment.store import AUDIT_ACTIONS

    add_store_argument(parser, tenant=False)
    parser.add_argument(
        "--tenant", default="default", metavar="T", help="tenant ('*' for all; default 'default')"
    )
    parser.add_argument("--user", metavar="ID", help="only this user's events")
    parser.add_argument("--action", choices=AUDIT_ACTIONS, help="only this action")
    parser.add_argument("--since", metavar="TIME", help="ISO-8601 time, inclusive")
    parser.add_argument("--until", metavar="TIME", help="ISO-8601 time, exclusive")
    parser.add_argument("--limit", type=int, default=100, metavar="N", help="at most N (100)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args: argparse.Namespace) -> int:
    """Print matching events, newest first."""
    from enrollment.store import validate_tenant_id, validate_user_id

    if args.user is not None:
        validate_user_id(args.user)
    tenant = None if args.tenant == "*" else validate_tenant_id(args.tenant)
    check_home(args, create=False)  # reading the trail never creates a store
    store = open_store_from_args(args)
    try:
        events = store.audit_events(
            tenant=tenant,
            user_id=args.user,
            action=args.action,
            since=args.since,
            until=args.until,
            limit=args.limit,
        )
    finally:
        store.close()
    if args.json:
        print_json({"events": [e.to_dict() for e in events]})
        return 0
    if not events:
        print("no matching audit events")
        return 0
    rows = [
        (
            e.time,
            e.tenant,
            e.key_id or "-",
            e.user_id or "-",
            e.action,
            e.decision or "-",
            "-" if e.score is None else f"{e.score:+.4f}",
            "-" if e.threshold is None else f"{e.threshold:+.4f}",
            (e.image_sha256 or "-")[:16],
        )
        for e in events
    ]
    headers = ("time", "tenant", "key", "user", "action", "decision", "score", "threshold", "image")
    print(format_table(headers, rows))
    return 0

"""``sigver keys``: create, list and revoke API keys of the HTTP service."""

from __future__ import annotations

import argparse
import sys

from enrollment._cli import add_home_argument, check_home, format_table, print_json

NAME = "keys"
HELP = "create, list or revoke API keys for 'sigver serve' (keys are stored hashed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``keys`` actions."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p_create = actions.add_parser("create", help="create a key and print it (shown only once)")
    p_create.add_argument("name", metavar="NAME", help="label of the key (e.g. the client)")
    p_list = actions.add_parser("list", help="list keys (no secrets)")
    p_revoke = actions.add_parser("revoke", help="revoke a key by name or key id")
    p_revoke.add_argument("name", metavar="NAME|KEY_ID")
    for sub in (p_create, p_list, p_revoke):
        add_home_argument(sub)
        sub.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args: argparse.Namespace) -> int:
    """Run the chosen action."""
    from enrollment.errors import EnrollmentError
    from enrollment.store import UserStore

    check_home(args, create=args.action == "create")
    store = UserStore(args.home)
    if args.action == "create":
        try:
            info, plaintext = store.create_api_key(args.name)
        except ValueError as exc:
            raise EnrollmentError(str(exc)) from None
        if args.json:
            print_json({**info.to_dict(), "key": plaintext})
        else:
            # Only the key goes to stdout, so `KEY=$(sigver keys create ops)` needs no
            # filtering; the advice is for the person at the terminal.
            print(plaintext, flush=True)
            print(
                f"# API key {info.name!r} (id {info.key_id}); store it now, it is not shown "
                "again. Send it as the X-API-Key header.",
                file=sys.stderr,
            )
        return 0
    if args.action == "list":
        keys = store.list_api_keys()
        if args.json:
            print_json([k.to_dict() for k in keys])
        elif not keys:
            print(f"no API keys in {store.path}")
        else:
            rows = [
                (
                    k.name,
                    k.key_id,
                    k.created_at,
                    "active" if k.active else f"revoked {k.revoked_at}",
                )
                for k in keys
            ]
            print(format_table(("name", "key id", "created", "status"), rows))
        return 0
    info = store.revoke_api_key(args.name)
    if args.json:
        print_json(info.to_dict())
    else:
        print(f"revoked API key {info.name!r} (id {info.key_id})")
    return 0

"""``sigver keys``: create, list and revoke API keys; create and list tenants.

Every key belongs to a tenant and only ever sees that tenant's users; an
``--admin`` key can also manage tenants and keys over HTTP (``/v1/admin``)
and read every tenant's audit trail.
"""

from __future__ import annotations

import argparse
import sys

from enrollment._cli import (
    add_store_argument,
    check_home,
    format_table,
    open_store_from_args,
    print_json,
)

NAME = "keys"
HELP = "create, list or revoke API keys (stored hashed) and manage tenants"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``keys`` actions."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p_create = actions.add_parser("create", help="create a key and print it (shown only once)")
    p_create.add_argument("name", metavar="NAME", help="label of the key (e.g. the client)")
    p_create.add_argument(
        "--tenant", default="default", metavar="T", help="tenant of the key (created if missing)"
    )
    p_create.add_argument(
        "--admin", action="store_true", help="admin scope: may manage tenants and keys"
    )
    p_list = actions.add_parser("list", help="list keys (no secrets)")
    p_list.add_argument("--tenant", metavar="T", help="only this tenant's keys")
    p_revoke = actions.add_parser(
        "revoke", help="revoke a key by key id or name (the name may then be reused)"
    )
    p_revoke.add_argument("name", metavar="NAME|KEY_ID")
    p_tenants = actions.add_parser("tenants", help="list tenants")
    p_tenant = actions.add_parser("create-tenant", help="create a tenant")
    p_tenant.add_argument("tenant", metavar="T")
    for sub in (p_create, p_list, p_revoke, p_tenants, p_tenant):
        add_store_argument(sub, tenant=False)
        sub.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args: argparse.Namespace) -> int:
    """Run the chosen action."""
    from enrollment.errors import EnrollmentError

    check_home(args, create=args.action in ("create", "create-tenant"))
    store = open_store_from_args(args)
    try:
        return _run(args, store, EnrollmentError)
    finally:
        store.close()


def _run(args: argparse.Namespace, store: object, error: type[Exception]) -> int:
    if args.action == "create":
        try:
            info, plaintext = store.create_api_key(  # type: ignore[attr-defined]
                args.name,
                tenant=args.tenant,
                scope="admin" if args.admin else "tenant",
                create_tenant=True,
            )
        except ValueError as exc:
            raise error(str(exc)) from None
        if args.json:
            print_json({**info.to_dict(), "key": plaintext})
        else:
            # Only the key goes to stdout, so `KEY=$(sigver keys create ops)` needs no
            # filtering; the advice is for the person at the terminal.
            print(plaintext, flush=True)
            print(
                f"# API key {info.name!r} (id {info.key_id}, tenant {info.tenant}, scope "
                f"{info.scope}); store it now, it is not shown again. Send it as the "
                "X-API-Key header.",
                file=sys.stderr,
            )
        return 0
    if args.action == "list":
        keys = store.list_api_keys(tenant=args.tenant)  # type: ignore[attr-defined]
        if args.json:
            print_json([k.to_dict() for k in keys])
        elif not keys:
            print(f"no API keys in {store.location}")  # type: ignore[attr-defined]
        else:
            rows = [
                (
                    k.name,
                    k.key_id,
                    k.tenant,
                    k.scope,
                    k.created_at,
                    "active" if k.active else f"revoked {k.revoked_at}",
                )
                for k in keys
            ]
            print(format_table(("name", "key id", "tenant", "scope", "created", "status"), rows))
        return 0
    if args.action == "tenants":
        tenants = store.list_tenants()  # type: ignore[attr-defined]
        if args.json:
            print_json(tenants)
        else:
            rows = [(t["tenant"], t["users"], t["keys"], t["created_at"]) for t in tenants]
            print(format_table(("tenant", "users", "active keys", "created"), rows))
        return 0
    if args.action == "create-tenant":
        store.create_tenant(args.tenant)  # type: ignore[attr-defined]
        if args.json:
            print_json({"tenant": args.tenant})
        else:
            print(f"created tenant {args.tenant}")
        return 0
    info = store.revoke_api_key(args.name)  # type: ignore[attr-defined]
    if args.json:
        print_json(info.to_dict())
    else:
        print(f"revoked API key {info.name!r} (id {info.key_id})")
    return 0

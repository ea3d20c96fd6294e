"""``sigver users``: list, show and remove enrolled users; set thresholds / operating points."""

from __future__ import annotations

import argparse
from typing import Any

from enrollment._cli import (
    add_model_argument,
    add_store_argument,
    check_home,
    format_table,
    open_store_from_args,
    print_json,
)

NAME = "users"
HELP = "list, show or remove enrolled users, or set a user's threshold"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``users`` actions."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p_list = actions.add_parser("list", help="list enrolled users")
    p_show = actions.add_parser("show", help="show one user")
    p_show.add_argument("user", metavar="ID")
    p_remove = actions.add_parser("remove", help="remove a user and all their data")
    p_remove.add_argument("user", metavar="ID")
    p_thr = actions.add_parser(
        "set-threshold", help="set a user's threshold ('default' clears the override)"
    )
    p_thr.add_argument("user", metavar="ID")
    p_thr.add_argument("threshold", metavar="T|default")
    p_op = actions.add_parser(
        "set-operating-point",
        help="set a user's named operating point ('default' clears it; checked against the model)",
    )
    p_op.add_argument("user", metavar="ID")
    p_op.add_argument("point_name", metavar="NAME|default")
    add_model_argument(p_op)
    for sub in (p_list, p_show, p_remove, p_thr, p_op):
        add_store_argument(sub)
        sub.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _threshold_text(value: float | None) -> str:
    return "model default" if value is None else f"{value:+.4f}"


def run(args: argparse.Namespace) -> int:
    """Run the chosen action (reads the store only; the model is not loaded)."""
    check_home(args, create=False)
    store = open_store_from_args(args)
    try:
        return _run(args, store)
    finally:
        store.close()


def _run(args: argparse.Namespace, store: Any) -> int:
    from enrollment.errors import EnrollmentError
    from enrollment.store import AuditEvent, validate_tenant_id, validate_user_id

    tenant = validate_tenant_id(args.tenant)
    if args.action == "list":
        users = store.list_users(tenant=tenant)
        if args.json:
            print_json([u.to_dict() for u in users])
            return 0
        if not users:
            print(f"no users enrolled in {store.location} (tenant {tenant})")
            return 0
        rows = [
            (u.user_id, u.n_references, _threshold_text(u.threshold), u.model_id, u.updated_at)
            for u in users
        ]
        print(format_table(("user", "refs", "threshold", "model", "updated"), rows))
        return 0

    validate_user_id(args.user)
    if args.action == "show":
        user = store.get_user(args.user, tenant=tenant)
        if args.json:
            print_json(user.to_dict())
            return 0
        print(f"user        {user.user_id}")
        print(f"model       {user.model_id} (sha256 {user.model_sha256})")
        print(f"references  {user.n_references} ({user.stored_images} images stored)")
        print(f"negatives   {user.n_negatives}")
        print(f"threshold   {_threshold_text(user.threshold)}")
        print(f"op. point   {user.operating_point or 'store default'}")
        print(f"classifier  {user.classifier_params}")
        print(f"created     {user.created_at}")
        print(f"updated     {user.updated_at} (revision {user.revision})")
        for digest in user.image_sha256:
            print(f"image       sha256:{digest}")
        return 0
    if args.action == "remove":
        store.remove_user(
            args.user, tenant=tenant, audit=AuditEvent("remove", tenant=tenant, user_id=args.user)
        )
        if args.json:
            print_json({"removed": args.user})
        else:
            print(f"removed {args.user}")
        return 0
    if args.action == "set-operating-point":
        from enrollment._cli import make_verifier

        name = str(args.point_name).strip()
        # The model is loaded here (unlike the other actions) to check the name against
        # its calibration.
        verifier = make_verifier(args)
        try:
            user = verifier.set_operating_point(
                args.user,
                None if name.lower() in ("default", "none", "clear") else name,
                tenant=tenant,
            )
        finally:
            verifier.store.close()
        point = user.operating_point
        if args.json:
            print_json({**user.to_dict(), "operating_point": point})
        else:
            print(f"{user.user_id}: operating point {point or 'store default'}")
        return 0
    # set-threshold
    text = str(args.threshold).strip().lower()
    if text in ("default", "none", "clear"):
        threshold = None
    else:
        try:
            threshold = float(text)
        except ValueError:
            raise EnrollmentError(
                f"threshold must be a number or 'default', got {text!r}"
            ) from None
        if threshold != threshold or threshold in (float("inf"), float("-inf")):
            raise EnrollmentError(f"threshold must be finite, got {text!r}")
    audit = AuditEvent("set_threshold", tenant=tenant, user_id=args.user, threshold=threshold)
    user = store.set_threshold(args.user, threshold, tenant=tenant, audit=audit)
    if args.json:
        print_json(user.to_dict())
    else:
        print(f"{user.user_id}: threshold {_threshold_text(user.threshold)}")
    return 0

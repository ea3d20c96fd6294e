"""``sigver users``: list, show and remove enrolled users; set their thresholds."""

from __future__ import annotations

import argparse

from enrollment._cli import add_home_argument, check_home, format_table, print_json

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
    for sub in (p_list, p_show, p_remove, p_thr):
        add_home_argument(sub)
        sub.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _threshold_text(value: float | None) -> str:
    return "model default" if value is None else f"{value:+.4f}"


def run(args: argparse.Namespace) -> int:
    """Run the chosen action (reads the store only; the model is not loaded)."""
    from enrollment.errors import EnrollmentError
    from enrollment.store import UserStore, validate_user_id

    check_home(args, create=False)
    store = UserStore(args.home)
    if args.action == "list":
        users = store.list_users()
        if args.json:
            print_json([u.to_dict() for u in users])
            return 0
        if not users:
            print(f"no users enrolled in {store.path}")
            return 0
        rows = [
            (u.user_id, u.n_references, _threshold_text(u.threshold), u.model_id, u.updated_at)
            for u in users
        ]
        print(format_table(("user", "refs", "threshold", "model", "updated"), rows))
        return 0

    validate_user_id(args.user)
    if args.action == "show":
        user = store.get_user(args.user)
        if args.json:
            print_json(user.to_dict())
            return 0
        print(f"user        {user.user_id}")
        print(f"model       {user.model_id} (sha256 {user.model_sha256})")
        print(f"references  {user.n_references} ({user.stored_images} images stored)")
        print(f"negatives   {user.n_negatives}")
        print(f"threshold   {_threshold_text(user.threshold)}")
        print(f"classifier  {user.classifier_params}")
        print(f"created     {user.created_at}")
        print(f"updated     {user.updated_at} (revision {user.revision})")
        for digest in user.image_sha256:
            print(f"image       sha256:{digest}")
        return 0
    if args.action == "remove":
        store.remove_user(args.user)
        if args.json:
            print_json({"removed": args.user})
        else:
            print(f"removed {args.user}")
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
    user = store.set_threshold(args.user, threshold)
    if args.json:
        print_json(user.to_dict())
    else:
        print(f"{user.user_id}: threshold {_threshold_text(user.threshold)}")
    return 0

"""Helpers shared by the enrollment sub-commands (``enroll``, ``verify``, ``users``...)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def add_home_argument(parser: argparse.ArgumentParser) -> None:
    """``--home DIR``: the user store folder."""
    parser.add_argument(
        "--home",
        type=Path,
        metavar="DIR",
        help="user store folder (default: $SIGVER_HOME or ~/.sigver)",
    )


def add_store_argument(parser: argparse.ArgumentParser, *, tenant: bool = True) -> None:
    """``--home DIR``, ``--store URL`` and (optionally) ``--tenant T``."""
    add_home_argument(parser)
    parser.add_argument(
        "--store",
        metavar="URL",
        help="user store: postgresql://user:pass@host/db or a SQLite folder "
        "(default: $SIGVER_STORE, else --home)",
    )
    if tenant:
        parser.add_argument(
            "--tenant",
            default="default",
            metavar="T",
            help="tenant whose users to act on (default 'default')",
        )


def open_store_from_args(args: argparse.Namespace) -> Any:
    """The store named by ``--store`` / ``$SIGVER_STORE`` / ``--home``."""
    from enrollment.store import open_store

    return open_store(getattr(args, "store", None), home=args.home)


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """``--model M`` (checkpoint path or shipped model name) and ``--backend``."""
    parser.add_argument(
        "--model",
        metavar="M",
        help="feature extractor: checkpoint path or shipped model name "
        "(default: $SIGVER_MODEL or the shipped model)",
    )
    add_backend_argument(parser)


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """``--backend auto|torch|onnx``: how the network is run."""
    parser.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx"),
        help="inference backend (default: $SIGVER_BACKEND or auto = ONNX Runtime when "
        "installed and verified against torch for this model, else torch)",
    )


def add_extraction_arguments(parser: argparse.ArgumentParser) -> None:
    """``--batch-size N`` and ``--backend``: how features are extracted from a data set."""
    parser.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="images per forward pass (default: measured for the backend when it was verified)",
    )
    add_backend_argument(parser)


def add_operating_point_argument(parser: argparse.ArgumentParser) -> None:
    """``--operating-point NAME``: store-wide named operating point of the model."""
    parser.add_argument(
        "--operating-point",
        metavar="NAME",
        help="named operating point of the model's calibration (balanced, far-skilled=1%%, "
        "...; default: $SIGVER_OPERATING_POINT or the calibration's default); a user's own "
        "operating point or threshold override takes precedence",
    )


def add_forgery_cue_argument(parser: argparse.ArgumentParser) -> None:
    """``--forgery-cue`` / ``--no-forgery-cue``: decide with the model's forgery cue."""
    parser.add_argument(
        "--forgery-cue",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="subtract the model's writer-independent forgery cue from every score and use "
        "the operating points calibrated for it (default: $SIGVER_FORGERY_CUE, else the model's "
        "choice: on for a model whose calibration declares it, e.g. v3 and v6)",
    )


def check_home(args: argparse.Namespace, *, create: bool) -> None:
    """Refuse a ``--home`` folder that does not exist, unless the command creates stores.

    A mistyped ``--home`` would otherwise open a new, empty store and report
    "unknown user" or "no users" about the wrong folder.

    Raises
    ------
    EnrollmentError
        ``--home`` (or ``$SIGVER_HOME``) names a missing folder and ``create`` is false.
    """
    import logging

    from enrollment.config import ENV_STORE, resolve_home
    from enrollment.errors import EnrollmentError

    if getattr(args, "store", None) or (
        getattr(args, "home", None) is None and os.environ.get(ENV_STORE)
    ):
        return  # a store URL, not a folder: open_store reports an unreachable one
    home = resolve_home(getattr(args, "home", None))
    if home.is_dir():
        return
    if not create:
        raise EnrollmentError(
            f"no user store at {home}: check --home / $SIGVER_HOME (enroll a user to create one)"
        )
    logging.getLogger("sigver").info("creating a new user store in %s", home)


def make_verifier(args: argparse.Namespace, *, create: bool = False, **settings: Any) -> Any:
    """A :class:`~enrollment.verifier.Verifier` from ``--home``/``--model``/``--backend``."""
    from enrollment.config import Settings
    from enrollment.verifier import Verifier

    check_home(args, create=create)
    return Verifier(
        home=args.home,
        store=getattr(args, "store", None),
        model=args.model,
        settings=Settings.from_env(**settings),
        operating_point=getattr(args, "operating_point", None),
        backend=getattr(args, "backend", None),
        forgery_cue=getattr(args, "forgery_cue", None),
    )


def print_json(data: Any) -> None:
    """Pretty JSON on stdout."""
    print(json.dumps(data, indent=2, sort_keys=False))


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Plain fixed-width table (right-aligned numbers)."""
    cells = [[str(h) for h in headers]] + [
        [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [
        all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in rows)
        and bool(rows)
        for i in range(len(headers))
    ]
    lines = []
    for r in cells:
        parts = [
            c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

"""``sigver evaluate``: writer-dependent protocol -> EER tables, JSON/CSV/Markdown and plots.

Examples::

    sigver evaluate --features feats.npz --preset sigcomp2011-dev --out runs/eval
    sigver evaluate --model models/signet.pt --data data/gpds.npz --preset gpds300 --out runs/g
    sigver evaluate --baseline hog --data /data/sigcomp2011 --dataset sigcomp2011 \\
        --preset sigcomp2011-dev --out runs/hog
    sigver evaluate --features f.npz --exp-users 0 300 --dev-users 300 881 --refs 12 \\
        --test-genuine 10 --forg-from-dev 14 --folds 10 --seed 1 --out runs/custom
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

NAME = "evaluate"
HELP = "evaluate writer-dependent classifiers with a GPDS-style protocol (EER tables, plots)"

logger = logging.getLogger(__name__)


def _users(values: list[str] | None) -> Any:
    """Parse ``--exp-users`` / ``--dev-users``: ``START STOP`` or ids (``ids:001,002``)."""
    if values is None:
        return None
    if len(values) == 1 and values[0].lower() in ("all", "none"):
        return values[0].lower()
    if len(values) == 2 and all(v.isdigit() and not v.startswith("0") or v == "0" for v in values):
        return (int(values[0]), int(values[1]))
    return tuple(values)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options."""
    from sigver.cache import add_data_arguments

    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--features", type=Path, metavar="F", help="feature set (.npz)")
    src.add_argument("--model", type=Path, metavar="M", help="checkpoint to extract features")
    src.add_argument(
        "--baseline", choices=("hog", "lbp"), help="non-learned baseline descriptor instead"
    )
    add_data_arguments(parser, required=False)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    proto = parser.add_argument_group("protocol (a --preset, optionally overridden by flags)")
    proto.add_argument("--preset", metavar="NAME", help="sigcomp2011-dev, gpds160, gpds300, ...")
    proto.add_argument(
        "--exp-users",
        nargs="+",
        metavar="U",
        help="exploitation users: START STOP (positions over naturally sorted users), ids "
        "(anything else, e.g. 038 039 ...), or 'all' (every non-development user)",
    )
    proto.add_argument(
        "--dev-users",
        nargs="+",
        metavar="U",
        help="development users: START STOP, ids, or 'none'",
    )
    proto.add_argument("--refs", type=int, metavar="N", help="genuine references per user")
    proto.add_argument(
        "--test-genuine", type=int, metavar="N", help="test genuines per user (default: rest)"
    )
    proto.add_argument(
        "--forg-from-dev",
        metavar="N",
        help="genuines of each development user used as negatives ('all' for all)",
    )
    proto.add_argument(
        "--forg-from-exp",
        type=int,
        metavar="N",
        help="references of each other exploitation user used as negatives (default 0)",
    )
    proto.add_argument("--folds", type=int, metavar="K", help="folds (default 10)")
    proto.add_argument("--seed", type=int, metavar="S", help="master seed (default 1234)")
    clf = parser.add_argument_group("classifier")
    clf.add_argument("--kernel", choices=("rbf", "linear"), default="rbf")
    clf.add_argument("--C", type=float, default=1.0, dest="svm_c")
    clf.add_argument("--gamma", type=float, default=2**-11)
    clf.add_argument(
        "--scaling",
        choices=("fold", "user"),
        default="fold",
        help="feature scaler fit per fold on the training pool (fast, default) or per user "
        "(published recipe, slower)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_protocol(args: argparse.Namespace) -> Any:
    """ProtocolConfig from ``--preset`` and the explicit flags (flags win)."""
    from sigver.protocol import ProtocolConfig, ProtocolError, get_preset

    base = get_preset(args.preset) if args.preset else None
    if base is None and args.exp_users is None:
        raise ProtocolError("give --preset or at least --exp-users")
    changes: dict[str, Any] = {}
    if args.exp_users is not None:
        changes["exp_users"] = _users(args.exp_users)
    if args.dev_users is not None:
        changes["dev_users"] = _users(args.dev_users)
    for flag, key in (
        ("refs", "refs"),
        ("test_genuine", "test_genuine"),
        ("forg_from_exp", "forg_from_exp"),
        ("folds", "folds"),
        ("seed", "seed"),
    ):
        if getattr(args, flag) is not None:
            changes[key] = getattr(args, flag)
    if args.forg_from_dev is not None:
        v = str(args.forg_from_dev).lower()
        if v != "all" and not v.isdigit():
            raise ProtocolError("--forg-from-dev takes a number or 'all'")
        changes["forg_from_dev"] = None if v == "all" else int(v)
    if base is None:
        return ProtocolConfig(**changes)
    if changes:
        changes.setdefault("name", f"{base.name}+custom")
    return base.replace(**changes) if changes else base


def _load_features(args: argparse.Namespace) -> Any:
    from sigver.errors import SigverError
    from sigver.featureset import FeatureSet, load_features

    progress = not args.no_progress
    if args.features is not None:
        if args.data is not None:
            logger.warning("--data is ignored with --features")
        return load_features(args.features)
    if args.data is None:
        raise SigverError("--model and --baseline need --data (a cache or a dataset folder)")
    from sigver.cache import data_from_args

    cache = data_from_args(args, progress=progress)
    if args.baseline is not None:
        from sigver.baseline import baseline_features

        return baseline_features(cache, args.baseline, progress=progress)
    try:
        from sigver.features import Extractor
    except ImportError as exc:  # the learning engineer's module may be absent
        raise SigverError(f"--model needs sigver.features, which is unavailable: {exc}") from exc
    extractor = Extractor.from_checkpoint(args.model)
    feats = extractor.extract(cache, progress=progress)
    meta = {
        "model_id": extractor.model_id,
        "model_sha256": getattr(extractor, "sha256", ""),
        "dataset": (cache.meta or {}).get("dataset"),
    }
    return FeatureSet(feats, cache.y, cache.yforg, cache.user_ids, cache.filenames, meta)


def run(args: argparse.Namespace) -> int:
    """Run the protocol, print the table, write the reports."""
    from sigver.evaluation import ClassifierConfig, evaluate, format_table, write_results

    protocol = build_protocol(args)
    cfg = ClassifierConfig(kernel=args.kernel, C=args.svm_c, gamma=args.gamma, scaling=args.scaling)
    fs = _load_features(args)
    result = evaluate(fs, protocol, cfg, n_jobs=max(1, args.jobs), progress=not args.no_progress)
    write_results(result, fs.user_ids, args.out, plots=not args.no_plots)
    print(f"protocol: {protocol.name or 'custom'}  features: {fs.meta.get('model_id', '?')}")
    print(format_table(result))
    print(f"wrote {args.out / 'results.json'}, results.csv, results.md")
    return 0

"""``sigver calibrate``: choose a model's global decision threshold on development writers.

Example (prints the calibration; ``--write`` stores it in the checkpoint, where
enrollment reads its default threshold)::

    sigver calibrate --model models/sigver-sigresnet-v6.pt \\
        --data /data/sigcomp2011 --dataset sigcomp2011 --users 001-037
    sigver calibrate --model M --data dev.npz --users 001-037 --target far-skilled=5% --write

The development users are enrolled through the product's own code path
(:func:`sigver.calibration.calibrate_deployment`: the function
``Verifier.enroll`` trains with, the model's background, per-user score
normalisation), so the threshold is calibrated on the scores operators get.
``--normalization METHOD`` picks the per-user score normaliser (default: the
one of the model's current calibration, else ``none``); the named operating
points (``balanced``, ``far-skilled=1%``, ...) and the calibration curve are
computed on the normalised scores; ``--default-operating-point`` (or its older
name ``--target``) picks the one whose threshold is the model's default::

    sigver calibrate --model M --data D --dataset sigcomp2011 --users 001-037 \\
        --normalization loo-lcb=1 --plot curve.png --write

The research protocol's calibration (one global scaler, no normaliser) stays
available in Python as :func:`sigver.calibration.calibrate_threshold`.

Only development writers (never exploitation writers) may be given to
``--users``. See :mod:`sigver.calibration` for the procedure.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sigver.featureset import FeatureSet
    from sigver.pair_cue import PairRows

NAME = "calibrate"
HELP = "calibrate a model's global decision threshold on development writers (--write stores it)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``calibrate`` options."""
    from sigver.cache import add_data_arguments

    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        metavar="CHECKPOINT",
        help="sigver checkpoint (.pt with its .sha256 sidecar)",
    )
    add_data_arguments(parser)
    parser.add_argument(
        "--users",
        required=True,
        metavar="SPEC",
        help="development users, e.g. 001-037 or 001-004,006 (inclusive, natural order)",
    )
    parser.add_argument("--refs", type=int, default=5, help="references per user (default 5)")
    parser.add_argument("--folds", type=int, default=5, help="random draws (default 5)")
    parser.add_argument("--seed", type=int, default=1234, help="master seed (default 1234)")
    parser.add_argument(
        "--target",
        metavar="NAME",
        help="older name of --default-operating-point (eer-skilled = balanced, far-skilled=X)",
    )
    parser.add_argument(
        "--background",
        metavar="PATH",
        help="extra negatives (feature set); default: <model stem>.background.npz when "
        "present, 'none' for none",
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="store the calibration in the checkpoint (new sha256: re-enroll existing users)",
    )
    parser.add_argument(
        "--normalization",
        metavar="METHOD",
        help="per-user score normaliser (none, loo-lcb=K, loo-znorm, two-point, cohort-znorm; "
        "see sigver.normalization); default: the model's current one, else none",
    )
    parser.add_argument(
        "--default-operating-point",
        metavar="NAME",
        help="operating point whose threshold becomes the default "
        "(balanced, far-skilled=X, frr=X; default balanced)",
    )
    parser.add_argument(
        "--operating-points",
        nargs="+",
        metavar="NAME",
        help="operating points to compute (default: balanced, "
        "far-skilled=1%%/5%%/10%%, frr=1%%/5%%)",
    )
    parser.add_argument(
        "--forgery-weight",
        type=float,
        metavar="W",
        help="fit a writer-independent forgery cue on the calibration users' skilled "
        "forgeries and subtract W times it from every score (see sigver.forgery_cue; choose W "
        "with scripts/forgery_realism.py --fusion); 0 removes the image part (with "
        "--pair-weight 0, the whole cue); default: the model's current",
    )
    parser.add_argument(
        "--forgery-centred",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="centre each user's cue on their references (robust to a population shift, but "
        "check FAR random; default: the model's current cue's setting, else not centred)",
    )
    parser.add_argument(
        "--pair-weight",
        type=float,
        metavar="W",
        help="give the cue a pairwise part (sigver.pair_cue: a classifier on "
        "|phi(q) - phi(r)| of genuine-genuine vs genuine-skilled pairs of the calibration "
        "users) subtracted with weight W, with a centred image cue or alone (--forgery-weight "
        "0); 0 removes it; default: the model's current",
    )
    parser.add_argument(
        "--pair-centred",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="centre the pair penalty on the user's references against each other "
        "(default: the model's current pair cue's setting, else centred)",
    )
    parser.add_argument(
        "--pair-extra",
        type=Path,
        metavar="FEATURES",
        help="feature set (sigver features) of further writers with skilled forgeries, e.g. "
        "synthetic ones, whose pairs join the pair classifier's fit",
    )
    parser.add_argument(
        "--forgery-cue-default",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="declare the cue on by default (verification decides with it unless switched off "
        "with --no-forgery-cue); default: the model's current setting, else off",
    )
    parser.add_argument("--plot", type=Path, metavar="PNG", help="plot the calibration curve")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write it as JSON")
    from enrollment._cli import add_extraction_arguments

    add_extraction_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _background(args: argparse.Namespace, model_sha256: str) -> FeatureSet | None:
    from sigver.errors import ModelError
    from sigver.features import default_background_path
    from sigver.featureset import load_features

    if args.background is not None and args.background.lower() == "none":
        return None
    path = Path(args.background) if args.background else default_background_path(args.model)
    if args.background is None and not path.is_file():
        return None
    fs = load_features(path)
    recorded = fs.meta.get("model_sha256")
    if recorded and recorded != model_sha256:
        # Enrollment refuses this background for this model too.
        raise ModelError(
            f"background {path} was extracted with model {str(recorded)[:12]}, not "
            f"{model_sha256[:12]}; regenerate it or pass --background none"
        )
    return fs


def _pair_extra(
    args: argparse.Namespace, cue: dict[str, Any], model_sha256: str
) -> PairRows | None:
    """The extra writers of the cue's pairwise part (``--pair-extra``), checked.

    ``cue``: :func:`sigver.calibration.resolve_cue_settings` of the run.

    Raises
    ------
    SigverError
        A bad weight, or a recalibration that would silently drop the extra writers the
        current pair cue was fitted with.
    """
    from sigver.errors import SigverError
    from sigver.featureset import load_features
    from sigver.pair_cue import PairRows

    weight = cue["pair_weight"]
    if args.pair_weight is None and weight and cue["pair_extra"] and args.pair_extra is None:
        raise SigverError(
            f"the model's pair cue was fitted with further writers ({cue['pair_extra']}); "
            "give them again with --pair-extra FEATURES, or --pair-weight 0 to drop the "
            "pair cue"
        )
    if not weight >= 0:
        raise SigverError(f"--pair-weight must be >= 0, got {args.pair_weight}")
    if args.pair_extra is None or not weight:
        return None
    fs = load_features(args.pair_extra)
    recorded = fs.meta.get("model_sha256")
    if recorded and recorded != model_sha256:
        raise SigverError(
            f"--pair-extra {args.pair_extra} was extracted with model {str(recorded)[:12]}, "
            f"not {model_sha256[:12]}"
        )
    source = fs.meta.get("dataset") or fs.meta.get("data") or args.pair_extra.name
    return PairRows.from_featureset(fs, {"source": str(source)})


def run(args: argparse.Namespace) -> int:
    """Extract the development users' features, calibrate, print (and optionally write)."""
    from sigver._util import write_json
    from sigver.cache import data_from_args
    from sigver.calibration import (
        DEFAULT_OPERATING_POINTS,
        apply_calibration,
        calibrate_deployment,
        parse_operating_point,
        resolve_cue_settings,
    )
    from sigver.errors import SigverError
    from sigver.inference import open_extractor
    from sigver.models.checkpoint import load_checkpoint
    from sigver.training import parse_users

    if args.batch_size is not None and args.batch_size < 1:
        raise SigverError(f"--batch-size must be >= 1, got {args.batch_size}")
    # Option mistakes are reported before the features are extracted.
    default = args.default_operating_point or args.target or "balanced"
    parse_operating_point(default)
    if args.target and args.default_operating_point:
        if parse_operating_point(args.target) != parse_operating_point(
            args.default_operating_point
        ):
            raise SigverError(
                f"--target {args.target!r} and --default-operating-point "
                f"{args.default_operating_point!r} disagree; give one of them"
            )
    progress = not args.no_progress
    # load_checkpoint, not load_weights: only our format can hold the calibration.
    weights = load_checkpoint(args.model)
    # Features come from the backend enrollment uses (open_extractor), so the
    # calibrated threshold is the one of the scores operators get.
    extractor = open_extractor(args.model, backend=args.backend)
    background = _background(args, extractor.sha256)
    cache = data_from_args(args, progress=progress)
    spec = parse_users(args.users)
    cache = cache.select(users=[u for u in cache.user_ids.tolist() if spec.matches(u)])
    if len(cache) == 0:
        raise SigverError(f"no signatures of users {args.users!r} in {args.data}")
    fs = extractor.extract_featureset(
        cache, batch_size=args.batch_size, progress=progress, data=str(args.data)
    )
    stored = (weights.meta.metrics or {}).get("calibration") or {}
    normalization = args.normalization or stored.get("normalization") or "none"
    cue = resolve_cue_settings(
        stored,
        weight=args.forgery_weight,
        centred=args.forgery_centred,
        pair_weight=args.pair_weight,
        on_by_default=args.forgery_cue_default,
        pair_centred=args.pair_centred,
    )
    if not cue["weight"] >= 0:
        raise SigverError(f"--forgery-weight must be >= 0, got {args.forgery_weight}")
    pair_extra = _pair_extra(args, cue, extractor.sha256)
    calibration = calibrate_deployment(
        fs,
        users=args.users,
        background=background,
        normalization=normalization,
        dataset=cache.dataset,
        refs=args.refs,
        folds=args.folds,
        seed=args.seed,
        default=default,
        points=args.operating_points or DEFAULT_OPERATING_POINTS,
        n_jobs=max(1, args.jobs),
        progress=progress,
        forgery_weight=cue["weight"],
        forgery_centred=cue["centred"],
        pair_weight=cue["pair_weight"],
        pair_extra=pair_extra,
        forgery_default=cue["on_by_default"],
        pair_centred=cue["pair_centred"],
    )
    print(calibration.summary())
    if args.plot is not None:
        from sigver.calibration import plot_calibration

        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot_calibration(calibration.to_dict(), args.plot)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, calibration.to_dict())
    if args.write:
        apply_calibration(args.model, calibration)
        new = load_checkpoint(args.model)
        print(
            f"wrote the calibration into {args.model} (now {new.model_id}); users enrolled "
            "with the previous file must be re-enrolled"
        )
    else:
        print("not written (add --write to store it in the checkpoint)")
    return 0

"""``sigver evaluate``: writer-dependent protocol -> EER tables, JSON/CSV/Markdown and plots.

Examples::

    sigver evaluate --features feats.npz --preset sigcomp2011-dev --out runs/eval
    sigver evaluate --model models/signet.pt --data data/gpds.npz --preset gpds300 --out runs/g
    sigver evaluate --baseline hog --data /data/sigcomp2011 --dataset sigcomp2011 \\
        --preset sigcomp2011-dev --out runs/hog
    sigver evaluate --features f.npz --exp-users 0 300 --dev-users 300 881 --refs 12 \\
        --test-genuine 10 --forg-from-dev 14 --folds 10 --seed 1 --out runs/custom
    sigver evaluate --model models/m.pt --data data/sigcomp2011.npz --preset sigcomp2011-dev \\
        --threshold model --scaling user --out runs/fixed
    sigver evaluate --model models/sigver-sigresnet-v6.pt --data ../shared/data/sigcomp2011 \\
        --dataset sigcomp2011 --preset sigcomp2011-dev --negatives model --out runs/deployed

``--negatives model`` is the deployment simulation: every exploitation user is
enrolled exactly as :meth:`enrollment.Verifier.enroll` enrolls
(:func:`sigver.usermodel.train_user_model`: the model's shipped background +
the other users' references, the model's score normaliser), and decisions use
the model's operating point (``--operating-point``, default: the
calibration's default). FRR / FAR_skilled / FAR_random at that point are
reported next to the a-posteriori EERs of the same scores, with a plot of the
calibration curve and the measured point.

Besides the a-posteriori EERs and the "other folds" a-priori point, ``--threshold T``
reports the honest a-priori operating point: FRR / FAR at a threshold chosen on
development users (``--threshold model``: the calibrated threshold stored in the
``--model`` checkpoint, ``meta.metrics["calibration"]["threshold"]``), applied
unchanged to every fold. Calibration scores with per-user feature scaling; the default
fast engine scales per fold, so its decision values differ slightly and ``--scaling user``
reproduces the enrollment classifier exactly.
"""

from __future__ import annotations

import argparse
import logging
import math
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

    src = parser.add_mutually_exclusive_group()
    src.add_argument("--features", type=Path, metavar="F", help="feature set (.npz)")
    src.add_argument(
        "--model",
        type=Path,
        metavar="M",
        help="checkpoint (or shipped model name) to extract features from --data (default, like "
        "features and enroll: "
        "$SIGVER_MODEL or the shipped model)",
    )
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
    clf.add_argument(
        "--gamma",
        type=float,
        help="RBF gamma (default: the model's, 2^-11 unless its metadata says otherwise)",
    )
    clf.add_argument(
        "--scaling",
        choices=("fold", "user"),
        default="fold",
        help="feature scaler fit per fold on the training pool (fast, default) or per user "
        "(published recipe, slower)",
    )
    fixed = parser.add_argument_group("fixed threshold (a-priori operating point)")
    fixed.add_argument(
        "--threshold",
        metavar="T",
        help="also report FRR / FAR at this decision threshold, chosen beforehand on "
        "development users: a number, or 'model' for the calibrated threshold of the --model "
        "checkpoint. Note: the fast engine scales features per fold, so scores differ slightly "
        "from the calibration's per-user scaling; --scaling user reproduces it exactly",
    )
    fixed.add_argument(
        "--threshold-source",
        metavar="TEXT",
        help="where T comes from, shown in the reports (default: 'command line' or the "
        "checkpoint's calibration)",
    )
    dep = parser.add_argument_group("deployment simulation (--negatives model)")
    dep.add_argument(
        "--negatives",
        choices=("protocol", "model"),
        default="protocol",
        help="'protocol' (default): negatives of the research protocol; 'model': enroll every "
        "user as the product does (shipped background + other users' references) and decide "
        "at the model's operating point",
    )
    dep.add_argument(
        "--operating-point",
        metavar="NAME",
        help="named operating point of the --model calibration (default: its default)",
    )
    dep.add_argument(
        "--normalization",
        metavar="METHOD",
        help="per-user score normaliser (default: the one the model was calibrated with)",
    )
    dep.add_argument(
        "--forgery-cue",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="decide as `sigver verify --forgery-cue`: subtract the model's writer-independent "
        "forgery cue from every score, at the operating points calibrated for it "
        "(default: on when the model declares its cue on by default)",
    )
    dep.add_argument(
        "--bootstrap",
        type=int,
        default=200,
        metavar="N",
        help="writer bootstraps for 90 %% intervals of the deployed rates and the EERs "
        "(writers drawn with replacement, the same draw in every fold; 0: none)",
    )
    dep.add_argument(
        "--deployed-model",
        type=Path,
        metavar="M",
        help="with --features: the checkpoint the features come from (its calibration and "
        "background are used; with --model, that one)",
    )
    dep.add_argument(
        "--background",
        type=Path,
        metavar="PATH",
        help="background negatives (default: <model stem>.background.npz)",
    )
    parser.add_argument(
        "--canvas",
        choices=("model", "dataset"),
        default="model",
        help="canvas a dataset folder is preprocessed on with --model: 'model' (default) = the "
        "model's own, as enrollment and verification do, so figures describe what operators "
        "get; 'dataset' = the published per-dataset canvas (reproducing papers). Caches and "
        "feature sets keep the canvas they were made with",
    )
    from enrollment._cli import add_backend_argument

    add_backend_argument(parser)
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


def resolve_threshold(
    args: argparse.Namespace, *, deployment: bool = False
) -> tuple[float, str] | None:
    """``(T, source)`` from ``--threshold`` / ``--threshold-source``, None without a threshold.

    Raises
    ------
    SigverError
        Unparsable or non-finite T, ``--threshold model`` without ``--model``, or a
        checkpoint without a calibrated threshold.
    """
    from sigver.errors import SigverError

    if args.threshold is None:
        if args.threshold_source is not None:
            raise SigverError("--threshold-source needs --threshold")
        return None
    text = str(args.threshold).strip()
    if text.lower() == "model":
        if args.model is None:
            raise SigverError("--threshold model reads the threshold from --model; give --model")
        from sigver.calibration import stored_threshold
        from sigver.models.checkpoint import load_checkpoint

        metrics = load_checkpoint(args.model).meta.metrics or {}
        value = stored_threshold(metrics)
        if value is None:
            raise SigverError(
                f"{args.model} has no calibrated threshold (meta.metrics['calibration']"
                "['threshold']); run the calibration first or give --threshold T"
            )
        norm = metrics["calibration"].get("normalization") or "none"
        if norm != "none" and not deployment:
            # The protocol's scores are raw SVM decision values; this threshold is not.
            raise SigverError(
                f"the calibrated threshold of {args.model} applies to {norm}-normalised scores; "
                "evaluate it with --negatives model (the deployment simulation)"
            )
        target = metrics["calibration"].get("target")
        source = f"calibration of {args.model.name}" + (f", {target}" if target else "")
    else:
        value, source = text, "command line"
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise SigverError(f"--threshold takes a number or 'model', got {value!r}") from None
    if not math.isfinite(threshold):
        raise SigverError(f"--threshold must be a finite number, got {value!r}")
    return threshold, args.threshold_source or source


def _load_features(args: argparse.Namespace) -> Any:
    from sigver.errors import SigverError
    from sigver.featureset import load_features

    progress = not args.no_progress
    if args.features is not None:
        if args.data is not None:
            logger.warning("--data is ignored with --features")
        return load_features(args.features)
    if args.data is None:
        raise SigverError("--model and --baseline need --data (a cache or a dataset folder)")
    from sigver.cache import data_from_args

    if args.baseline is not None:
        from sigver.baseline import baseline_features

        cache = data_from_args(args, progress=progress)
        return baseline_features(cache, args.baseline, progress=progress)
    from sigver.inference import open_extractor

    # The backend and batch size enrollment and verification use (open_extractor),
    # so the figures are those of the product's path.
    extractor = open_extractor(args.model, backend=args.backend)
    # One canvas policy: by default the product's preprocessing (the model's canvas).
    canvas = None
    if getattr(args, "canvas", "model") == "model":
        canvas = tuple(extractor.preprocess_config.canvas_size)
    cache = data_from_args(args, progress=progress, canvas_size=canvas)
    if cache.canvas_size is not None and canvas and tuple(cache.canvas_size) != canvas:
        logger.warning(
            "%s was preprocessed on a %s canvas, not the model's %s: the figures do not "
            "describe the product's preprocessing (re-preprocess the folder to fix)",
            args.data,
            tuple(cache.canvas_size),
            canvas,
        )
    logger.info("evaluating on a %s canvas (--canvas %s)", cache.canvas_size, args.canvas)
    return extractor.extract_featureset(cache, progress=progress)


def samples_digest(fs: Any) -> str:
    """sha256 of the signatures a protocol draws from, in order (file, writer, forged).

    The folds draw references and tests by position, so two evaluations share their
    draws only when they read the same signatures in the same order: ``sigver compare``
    checks this digest.
    """
    import hashlib

    h = hashlib.sha256()
    writers = [str(fs.user_ids[y]) for y in fs.y]
    for name, writer, forged in zip(fs.filenames, writers, fs.yforg, strict=True):
        h.update(f"{name}\t{writer}\t{int(forged)}\n".encode())
    return h.hexdigest()


def run_deployment(args: argparse.Namespace) -> int:
    """``--negatives model``: the deployment simulation at the model's operating point."""
    from sigver._util import write_json
    from sigver.calibration import plot_calibration, resolve_operating_point, stored_calibration
    from sigver.errors import SigverError
    from sigver.evaluation import (
        format_table,
        format_transfer,
        simulate_deployment,
        transfer_check,
        write_results,
    )
    from sigver.features import default_background_path
    from sigver.featureset import load_features
    from sigver.models.checkpoint import load_checkpoint
    from sigver.usermodel import classifier_params_for

    rounds = getattr(args, "bootstrap", 0) or 0
    if rounds < 0:
        raise SigverError("--bootstrap must be >= 0")
    # Enrollment decides these in the deployment simulation: a flag that would be
    # silently ignored is refused instead.
    ignored = [
        flag
        for flag, dest, default in (
            ("--dev-users", "dev_users", None),
            ("--forg-from-dev", "forg_from_dev", None),
            ("--forg-from-exp", "forg_from_exp", None),
            ("--test-genuine", "test_genuine", None),
            ("--kernel", "kernel", "rbf"),
            ("--C", "svm_c", 1.0),
            ("--gamma", "gamma", None),
            ("--scaling", "scaling", "fold"),
        )
        if getattr(args, dest, default) != default
    ]
    if ignored:
        raise SigverError(
            f"{', '.join(ignored)} {'does' if len(ignored) == 1 else 'do'} not apply to "
            "--negatives model: every user is enrolled as Verifier.enroll enrolls (the "
            "model's classifier settings, its background and the other users' references as "
            "negatives) and scored on all their other genuine signatures"
        )
    check_out_dir(args.out)

    model_path = args.model or args.deployed_model
    if model_path is None:
        raise SigverError(
            "--negatives model needs --model (or --features with --deployed-model): its "
            "background and calibration"
        )
    protocol = build_protocol(args)
    weights = load_checkpoint(model_path)
    calibration = stored_calibration(weights.meta.metrics)
    cue = pair = None
    from sigver.forgery_cue import on_by_default

    use_cue = getattr(args, "forgery_cue", None)
    if use_cue is None:
        use_cue = on_by_default(calibration)  # as Verifier decides when not told
    if use_cue:
        from sigver.forgery_cue import switch_on
        from sigver.pair_cue import stored_pair_cue

        # The cue (with its pairwise part, when the model has one) is part of the
        # decision: the thresholds are those of the fused score.
        pair = stored_pair_cue(calibration)
        cue, calibration = switch_on(calibration, model_path.name)
    normalization = args.normalization or (calibration or {}).get("normalization") or "none"
    fixed = resolve_threshold(args, deployment=True)
    if fixed is not None:
        threshold, source, name, rates = fixed[0], fixed[1], "", {}
    else:
        threshold, name, rates = resolve_operating_point(calibration, args.operating_point)
        source = f"operating point {name!r} of {model_path.name}"
        if normalization != (calibration or {}).get("normalization", "none"):
            raise SigverError(
                f"the model's operating points apply to {calibration.get('normalization')!r} "  # type: ignore[union-attr]
                f"scores, not {normalization!r}; give --threshold T for another normaliser"
            )
    bg_path = args.background or default_background_path(model_path)
    background = load_features(bg_path) if Path(bg_path).is_file() else None
    fs = _load_features(args)
    recorded = fs.meta.get("model_sha256")
    if recorded and recorded != weights.sha256:
        raise SigverError(
            f"the features were extracted with model {str(recorded)[:12]}, not {model_path} "
            f"({weights.sha256[:12]}); its operating points do not apply to them"
        )
    run = simulate_deployment(
        fs,
        users=protocol.exp_users,
        background=background,
        forgery_cue=cue,
        pair_cue=pair,
        dataset=fs.meta.get("dataset"),
        refs=protocol.refs,
        folds=protocol.folds,
        seed=protocol.seed,
        normalization=normalization,
        params=classifier_params_for(weights.meta),
        n_jobs=max(1, args.jobs),
        progress=not args.no_progress,
    )
    result = run.result(
        normalization,
        threshold=threshold,
        threshold_source=source,
        meta={**fs.meta, "samples_sha256": samples_digest(fs)},
    )
    measured = {k: v["mean"] for k, v in result.fixed_threshold["summary"].items()}  # type: ignore[index]
    report = {
        "operating_point": name or None,
        "threshold": threshold,
        "source": source,
        "normalization": normalization,
        "calibrated_rates": rates,
        "measured": measured,
        "a_posteriori": {k: result.summary[k] for k in ("EER_global", "EER_user")},
        # Issue 10's targets on these users: the rates at T against EER_global, and the
        # share of the raw scores' gap the decision leaves.
        "transfer": transfer_check(result.scores, run.raw, measured, seed=protocol.seed),
        **run.info,
    }
    if rounds:
        from sigver.bootstrap import transfer_intervals

        # The result's own scores: recomputing them would apply the pair cue again. One
        # set of writer draws gives the rates' and EERs' intervals and issue 10's ratios.
        iv = transfer_intervals(
            result.scores, run.raw, threshold, rounds=rounds, seed=protocol.seed
        )
        report["intervals"] = iv.pop("figures")
        report["transfer"]["intervals"] = iv
    transfer = format_transfer(report["transfer"])
    write_results(
        result,
        fs.user_ids,
        args.out,
        plots=not args.no_plots,
        extra_md="\n## Does the operating point hold on these users?\n\n"
        + "".join(f"- {line}\n" for line in transfer.splitlines()),
    )
    write_json(args.out / "deployment.json", report)
    if not args.no_plots and calibration and calibration.get("curve") and name:
        plot_calibration(
            calibration, args.out / "calibration-curve.png", chosen=name, measured=measured
        )
    print(
        f"deployment simulation: protocol {protocol.name or 'custom'}, "
        f"features {fs.meta.get('model_id', '?')}, normalisation {normalization}"
        + ("" if cue is None else f", forgery cue weight {cue.weight:g}")
        + (
            ""
            if pair is None
            else f" with a{'' if pair.centred else 'n uncentred'} pair cue of weight "
            f"{pair.weight:g}"
        )
    )
    print(format_table(result))
    if rates:
        shown = ", ".join(
            f"{k} {100 * v:.2f} %"
            for k, v in rates.items()
            if k != "threshold" and isinstance(v, (int, float))
        )
        print(f"operating point {name!r} was calibrated for: {shown}")
    if rounds:
        iv = report["intervals"]
        shown = ", ".join(
            f"{k} {100 * iv[k][0]:.2f}-{100 * iv[k][1]:.2f} %"
            for k in ("FRR", "FAR_skilled", "FAR_random", "EER_global", "EER_user")
        )
        print(f"{round(100 * iv['level'])} % intervals over {rounds} writer bootstraps: {shown}")
    print(transfer)
    print(f"wrote {args.out / 'results.json'}, deployment.json, results.csv, results.md")
    return 0


def check_out_dir(out: Path) -> None:
    """Refuse an ``--out`` that cannot become a folder, before any work is done.

    Raises
    ------
    SigverError
        ``out`` (or a parent of it) is an existing file.
    """
    from sigver.errors import SigverError

    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                raise SigverError(f"--out {out}: {folder} is a file, not a folder")
            return


def run(args: argparse.Namespace) -> int:
    """Run the protocol, print the table, write the reports."""
    from sigver.evaluation import ClassifierConfig, evaluate, format_table, write_results
    from sigver.usermodel import classifier_params_for

    check_out_dir(args.out)

    if args.features is None and args.baseline is None and args.model is None:
        # The same default as `sigver features` and `sigver enroll`.
        from sigver.features import default_model_path, missing_default_model_error

        args.model = default_model_path()
        if not args.model.is_file():
            raise missing_default_model_error(args.model)
    # A shipped model's name (``--model sigver-ensemble-v1``) works as in enroll and verify.
    from sigver.features import resolve_model_path

    for name in ("model", "deployed_model"):
        if getattr(args, name, None) is not None:
            setattr(args, name, resolve_model_path(getattr(args, name)))

    if args.negatives == "model":
        return run_deployment(args)

    protocol = build_protocol(args)
    # Resolved before extracting features so that a bad threshold fails fast.
    fixed = resolve_threshold(args)
    threshold, source = fixed if fixed is not None else (None, "")
    if fixed is not None and args.scaling == "fold":
        logger.info(
            "scores use per-fold feature scaling; --scaling user reproduces the per-user "
            "scaled classifier a calibrated threshold was chosen with"
        )
    fs = _load_features(args)
    # The features' model may ask for its own gamma (an ensemble); --gamma overrides it.
    gamma = args.gamma if args.gamma is not None else classifier_params_for(fs.meta)["gamma"]
    cfg = ClassifierConfig(kernel=args.kernel, C=args.svm_c, gamma=gamma, scaling=args.scaling)
    result = evaluate(
        fs,
        protocol,
        cfg,
        n_jobs=max(1, args.jobs),
        progress=not args.no_progress,
        threshold=threshold,
        threshold_source=source,
    )
    result.meta["samples_sha256"] = samples_digest(fs)
    write_results(result, fs.user_ids, args.out, plots=not args.no_plots)
    print(f"protocol: {protocol.name or 'custom'}  features: {fs.meta.get('model_id', '?')}")
    print(format_table(result))
    print(f"wrote {args.out / 'results.json'}, results.csv, results.md")
    return 0

"""Recalibrate the shipped model's operating points in place (weights unchanged).

Writes into the checkpoint's metadata the calibration of
:func:`sigver.calibration.calibrate_deployment` on the SigComp2011
**development** writers 001-037 (the product's enrollment code path, the
chosen per-user score normaliser, the calibration curve and the named
operating points), checks that the weights are bit-identical, measures the
deployed operating point on the exploitation writers 038-069 (reported, never
tuned on) and regenerates the model card (existing notes kept) with the
calibration-curve plot.

Usage::

    python scripts/calibrate_default_model.py --sigcomp ../shared/data/sigcomp2011 \\
        [--model models/sigver-sigresnet-v3.pt] [--normalization loo-lcb=0] [--dry-run] \\
        [--forgery-weight 0.3 --forgery-centred --pair-weight 0.5 --pair-synthetic 96]
        [--forgery-weight 0 --no-forgery-centred --pair-weight 0.75 --no-pair-centred]

Whatever is not asked for stays as the model has it (normaliser, cue, pair cue and the
number of synthetic writers its pairs were fitted with).

The new metadata changes the file's sha256 and so its model id: users enrolled with
the previous file must be re-enrolled.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: The normaliser of a model that has none yet (a fresh build; the selection rule's pick for v3's
#: features); a calibrated model keeps its own unless --normalization names another, so a plain
#: rerun never undoes a recalibration.
DEFAULT_NORMALIZATION = "loo-lcb=0"
#: Seed of the synthetic training-style writers whose pairs join the pair cue's fit (the
#: experiment's, scripts/pair_cue.py --pair-synthetic; the model was trained on seed 0).
PAIR_SYNTH_SEED = 5


def _fingerprint(state_dict: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key]
        digest.update(key.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _old_notes(card: Path) -> str:
    """The card's current "Notes" section, without a previous recalibration paragraph."""
    if not card.is_file():
        return ""
    text = card.read_text(encoding="utf-8")
    if "## Notes" not in text:
        return ""
    notes = text.split("## Notes", 1)[1].strip()
    marker = "Operating points recalibrated"
    stale = "At the calibrated threshold ("
    kept = []
    for p in notes.split("\n\n"):
        if p.startswith(marker):
            continue
        # The first release's figure, at its raw-score threshold, is history now.
        kept.append(f"Before the recalibration (raw SVM scores): {p}" if p.startswith(stale) else p)
    return "\n\n".join(kept)


def resolve_normalization(metrics: dict[str, Any] | None, requested: str | None) -> str:
    """The normaliser to calibrate with: the one asked for, else the model's current one.

    A calibrated model keeps its normaliser, so a plain rerun (to refresh a card, add a
    forgery cue) never silently undoes a recalibration; a model with none gets the default.
    """
    from sigver.calibration import stored_calibration

    if requested is not None:
        return requested
    return (stored_calibration(metrics) or {}).get("normalization") or DEFAULT_NORMALIZATION


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models/sigver-sigresnet-v3.pt")
    parser.add_argument("--sigcomp", type=Path, default=REPO.parent / "shared/data/sigcomp2011")
    parser.add_argument(
        "--normalization",
        help="per-user score normaliser (default: the model's current, else "
        f"{DEFAULT_NORMALIZATION}; scripts/threshold_transfer.py's rule chooses it)",
    )
    parser.add_argument("--default-operating-point", default="balanced")
    parser.add_argument("--refs", type=int, default=5)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--report-folds", type=int, default=10)
    parser.add_argument(
        "--forgery-weight",
        type=float,
        help="weight of the writer-independent forgery cue (sigver.forgery_cue; chosen by "
        "scripts/forgery_realism.py --fusion); 0 = no image part (with --pair-weight 0, no cue); "
        "default: the model's current",
    )
    parser.add_argument(
        "--forgery-centred",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="centre each user's cue on their references (default: the model's current, else off)",
    )
    parser.add_argument(
        "--forgery-cue-default",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="declare the cue on by default (default: the model's current setting, else off)",
    )
    parser.add_argument(
        "--pair-weight",
        type=float,
        help="weight of the cue's pairwise part (sigver.pair_cue; chosen by scripts/pair_cue.py); "
        "0 = none; default: the model's current",
    )
    parser.add_argument(
        "--pair-centred",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="centre the pair penalty on the user's references (default: the model's current "
        "pair cue's setting, else centred); --no-pair-centred with --forgery-weight 0 is "
        "scripts/pair_cue.py's `pair` candidate",
    )
    parser.add_argument(
        "--pair-synthetic",
        type=int,
        metavar="N",
        help="also fit the pair part on N synthetic writers in the generator's training styles "
        f"(seed {PAIR_SYNTH_SEED}; scripts/pair_cue.py --pair-synthetic); default: the model's "
        "current pair cue's, else 0",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=REPO / "runs/calibrate-default",
        help="folder caching the --pair-synthetic corpus",
    )
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--dry-run", action="store_true", help="calibrate, report, write nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    start = time.perf_counter()

    from sigver._util import command_line
    from sigver.cache import load_signatures
    from sigver.calibration import (
        apply_calibration,
        calibrate_deployment,
        resolve_cue_settings,
        stored_calibration,
    )
    from sigver.evaluation import simulate_deployment
    from sigver.features import default_background_path
    from sigver.featureset import load_features
    from sigver.inference import open_extractor
    from sigver.models.card import write_model_card
    from sigver.models.checkpoint import load_checkpoint

    weights = load_checkpoint(args.model)
    before = _fingerprint(weights.state_dict)
    # Whatever is not asked for stays as the model has it.
    args.normalization = resolve_normalization(weights.meta.metrics, args.normalization)
    settings = resolve_cue_settings(
        stored_calibration(weights.meta.metrics),
        weight=args.forgery_weight,
        centred=args.forgery_centred,
        pair_weight=args.pair_weight,
        on_by_default=args.forgery_cue_default,
        pair_centred=args.pair_centred,
    )
    weight, centred, cue_default, pair_weight, pair_centred = (
        settings["weight"], settings["centred"], settings["on_by_default"], settings["pair_weight"],
        settings["pair_centred"],
    )  # fmt: skip
    n_synth = args.pair_synthetic
    if n_synth is None:
        n_synth = int(settings["pair_extra"].get("writers", 0))
    extractor = open_extractor(args.model)  # the backend enrollment uses
    background = load_features(default_background_path(args.model))
    cache = load_signatures("sigcomp2011", args.sigcomp, n_jobs=1, progress=False)
    fs = extractor.extract_featureset(cache, progress=False, data=str(args.sigcomp))
    ids = [str(u) for u in fs.user_ids]
    dev = tuple(u for u in ids if u.isdigit() and 1 <= int(u) <= 37)
    exp = tuple(u for u in ids if u.isdigit() and 38 <= int(u) <= 69)
    pair_extra = None
    if pair_weight and n_synth:
        pair_extra = synthetic_pair_rows(extractor, args.work, n_synth, args.jobs)
    cal = calibrate_deployment(
        fs,
        users=dev,
        background=background,
        normalization=args.normalization,
        dataset="sigcomp2011",
        refs=args.refs,
        folds=args.folds,
        seed=args.seed,
        default=args.default_operating_point,
        n_jobs=args.jobs,
        forgery_weight=weight,
        forgery_centred=centred,
        pair_weight=pair_weight,
        pair_extra=pair_extra,
        forgery_default=cue_default,
        pair_centred=pair_centred,
    )
    print(cal.summary())
    from sigver.forgery_cue import ForgeryCue
    from sigver.pair_cue import stored_pair_cue

    # Reported only: the deployed point on writers never used for calibration or choice.
    run = simulate_deployment(
        fs,
        users=exp,
        background=background,
        dataset="sigcomp2011",
        refs=args.refs,
        folds=args.report_folds,
        seed=args.seed,
        normalization=args.normalization,
        n_jobs=args.jobs,
        progress=False,
    )
    res = run.result(threshold=cal.threshold)
    fx = res.fixed_threshold["summary"]  # type: ignore[index]

    def ms(stat: dict[str, float]) -> str:
        return f"{100 * stat['mean']:.2f} ± {100 * stat['std']:.2f} %"

    cue_report = ""
    cue = ForgeryCue.from_dict(cal.forgery_cue)
    if cue is not None:
        # The same enrollments, decided as `--forgery-cue` decides (fused score and points).
        fused_t = float(cal.forgery_cue["calibration"]["threshold"])
        cued = run.with_forgery_cue(cue, fs)
        pair = stored_pair_cue(cal.to_dict())
        if pair is not None:
            cued = cued.with_pair_cue(pair, fs)
        rc = cued.result(threshold=fused_t)
        fc = rc.fixed_threshold["summary"]  # type: ignore[index]
        cue_report = (
            " With the forgery cue"
            + (" (on by default" if cue_default else " switched on (`--forgery-cue`")
            + f", T={fused_t:.4f}): FRR "
            f"{ms(fc['FRR'])}, FAR skilled {ms(fc['FAR_skilled'])}, FAR random "
            f"{ms(fc['FAR_random'])}; a-posteriori EER global {ms(rc.summary['EER_global'])}, "
            f"user thresholds {ms(rc.summary['EER_user'])}."
        )

    report = (
        f"Operating points recalibrated with `{command_line()}`: per-user score normaliser "
        f"`{args.normalization}`"
        + (
            f"; forgery cue weight {weight:g}{' (centred)' if centred and weight else ''}, "
            "fitted on writers 001-037"
            + (
                f", with a{'' if pair_centred else 'n uncentred'} pairwise part of weight "
                f"{pair_weight:g} fitted on their pairs"
                + (
                    f" and those of {n_synth} synthetic training-style writers"
                    if pair_extra
                    else ""
                )
                if pair_weight
                else ""
            )
            + (", on by default" if cue_default else ", off by default")
            if weight or pair_weight
            else ""
        )
        + ", calibrated through the enrollment code path on SigComp2011 "
        f"development writers 001-037 ({args.refs} references, {args.folds} folds, seed "
        f"{args.seed}); weights unchanged (bit-identical). Deployment simulation on the "
        f"exploitation writers 038-069 ({args.report_folds} folds; `sigver evaluate "
        "--negatives model`) "
        + ("with the cue off (`--no-forgery-cue`) " if cue_default else "")
        + f"at the default operating point `{cal.default_operating_point}` "
        f"(T={cal.threshold:.4f}): FRR {ms(fx['FRR'])}, "
        f"FAR skilled {ms(fx['FAR_skilled'])}, FAR random {ms(fx['FAR_random'])}; "
        f"a-posteriori EER of the same scores: global {ms(res.summary['EER_global'])}, "
        f"user thresholds {ms(res.summary['EER_user'])}." + cue_report
    )
    print(report)
    if args.dry_run:
        print("dry run: nothing written")
        return 0
    card = args.model.with_suffix(".md")
    notes = _old_notes(card)
    from sigver.models.checkpoint import sha256_sidecar

    files = [args.model, sha256_sidecar(args.model), default_background_path(args.model)]
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            shutil.copy2(f, Path(tmp) / f.name)
        apply_calibration(args.model, cal)
        after = load_checkpoint(args.model)
        if _fingerprint(after.state_dict) != before:
            # Never ship changed weights by accident: put the old files back.
            for f in files:
                shutil.copy2(Path(tmp) / f.name, f)
            raise SystemExit("the weights changed while rewriting the metadata; restored")
    write_model_card(card, after, notes=f"{report}\n\n{notes}" if notes else report)
    print(
        f"wrote {args.model} (sha256 {after.sha256[:12]}, model id {after.model_id}), "
        f"{card}; weights fingerprint {before[:12]} unchanged; "
        f"{time.perf_counter() - start:.0f} s"
    )
    return 0


def synthetic_pair_rows(extractor: Any, work: Path, writers: int, jobs: int) -> Any:
    """Genuine / skilled pairs of ``writers`` synthetic training-style writers, as
    :class:`sigver.pair_cue.PairRows` (features from the backend enrollment uses)."""
    sys.path.insert(0, str(REPO / "scripts"))
    from forgery_realism import synth_corpus

    from sigver.cache import load_cache
    from sigver.pair_cue import PairRows

    work.mkdir(parents=True, exist_ok=True)
    npz = synth_corpus(work, writers, jobs, split="train", seed=PAIR_SYNTH_SEED, name="synth-train")
    fs = extractor.extract_featureset(load_cache(npz), progress=False, data=str(npz))
    source = f"synthetic v2, training styles, seed {PAIR_SYNTH_SEED}, 10 genuine + 5 skilled each"
    return PairRows.from_featureset(fs, {"source": source})


def calibrate_model(
    model: Path, sigcomp: Path, *, normalization: str | None = None, jobs: int = 1
) -> None:
    """:func:`main` on a freshly built model (the ship and build scripts' last step).

    Raises
    ------
    SystemExit
        If the calibration fails.
    """
    norm = normalization or DEFAULT_NORMALIZATION
    argv = ["--model", str(model), "--sigcomp", str(sigcomp), "--normalization", norm,
            "--jobs", str(jobs)]  # fmt: skip
    if main(argv) != 0:
        raise SystemExit("calibration failed")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Reproduce the shipped default model (models/sigver-sigresnet-v1.*) end to end on CPU.

Stages (each is skipped when its output already exists in ``--work``, so an
interrupted run can be restarted with the same command):

1. ``synth``: generate a synthetic GPDS-layout corpus (``sigver synth``).
2. ``caches``: preprocess it and (optionally) SigComp2011. The synthetic
   signatures are drawn smaller than real scans, so their canvas is scaled such
   that their median ink width in the 170x242 image matches SigComp2011's on its
   own canvas; the model's recorded preset is the SigComp2011/GPDS canvas.
3. ``train``: writer-classification training (SigNet recipe with a CPU-sized
   budget) on the synthetic writers plus SigComp2011 development writers
   001-037 -- NEVER the exploitation writers 038-069.
4. ``export``: best checkpoint -> ``WORK/models/<name>.pt`` (float16, sha256 sidecar;
   ``--models DIR`` elsewhere; an existing file is replaced only with ``--replace-shipped``).
5. ``evaluate``: features of SigComp2011 with the exported model and
   ``sigver evaluate --preset sigcomp2011-dev``; figures go into the metadata.
6. ``background``: features of development writers (SigComp2011 001-037 and a
   subset of synthetic writers) -> ``<models>/<name>.background.npz``.
7. ``calibrate``: the default decision threshold (equal error on skilled forgeries
   of SigComp2011 development writers 001-037, ``sigver calibrate --write``).
8. the model card ``<models>/<name>.md`` generated from the metadata.

To update the shipped model, review the new files, then copy them over ``models/``
(or pass ``--models models --replace-shipped``).

The defaults reproduce the shipped model. Usage (about 40 minutes on a 2-core CPU)::

    python scripts/train_default_model.py --work /tmp/sigver-default \\
        --sigcomp ../shared/data/sigcomp2011
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from sigver._util import atomic_write

log = logging.getLogger("train_default_model")


def stage_synth(args: argparse.Namespace) -> Path:
    from sigver.cli import main

    out = args.work / "synth"
    marker = out / ".complete"
    if not marker.exists():
        log.info("generating %d synthetic writers", args.writers)
        argv = ["synth", "--writers", str(args.writers), "--genuine", str(args.genuine)]
        argv += ["--forgeries", str(args.forgeries), "--seed", str(args.seed), "--out", str(out)]
        argv += ["--jobs", str(args.jobs), "--no-progress"]
        if main(argv) != 0:
            raise SystemExit("sigver synth failed")
        marker.write_text("ok\n")
    return out


def _median_ink_width(paths: list[Path]) -> float:
    from sigver.preprocessing import locate_signature, read_image

    widths = []
    for p in paths:
        loc = locate_signature(read_image(p))
        widths.append(loc.cmax - loc.cmin + 1)
    return float(np.median(widths))


def stage_caches(args: argparse.Namespace, synth_dir: Path) -> tuple[Path, Path | None, dict]:
    from sigver.cache import build_cache, save_cache
    from sigver.preprocessing import CANVAS_SIZES

    info: dict = {}
    sig_cache = None
    ref_canvas = CANVAS_SIZES["sigcomp2011"]
    if args.sigcomp is not None:
        sig_cache = args.work / "sigcomp2011.npz"
        if not sig_cache.exists():
            save_cache(
                sig_cache,
                build_cache("sigcomp2011", args.sigcomp, n_jobs=args.jobs, progress=False),
            )
    synth_cache = args.work / "synth.npz"
    info_path = args.work / "synth_canvas.json"
    if not synth_cache.exists():
        rng = np.random.default_rng(0)
        synth_imgs = sorted(synth_dir.glob("*/c-*.png"))
        n_probe = min(150, len(synth_imgs))
        synth_w = _median_ink_width(list(rng.choice(synth_imgs, n_probe, replace=False)))
        if args.sigcomp is not None:
            real = sorted(Path(args.sigcomp).glob("0[0-3][0-9]/*.png"))
            real_w = _median_ink_width(list(rng.choice(real, min(150, len(real)), replace=False)))
        else:
            real_w = 634.0  # SigComp2011 median ink width (sigver.preprocessing notes)
        scale = synth_w / real_w
        canvas = (round(ref_canvas[0] * scale), round(ref_canvas[1] * scale))
        log.info(
            "synthetic median ink width %.0f px vs real %.0f px -> canvas %s",
            synth_w,
            real_w,
            canvas,
        )
        save_cache(
            synth_cache,
            build_cache(
                "gpds-synthetic", synth_dir, canvas_size=canvas, n_jobs=args.jobs, progress=False
            ),
        )
        info_path.write_text(
            json.dumps(
                {"canvas": canvas, "synth_median_width": synth_w, "real_median_width": real_w}
            )
        )
    info = json.loads(info_path.read_text())
    return synth_cache, sig_cache, info


def _training_complete(args: argparse.Namespace) -> bool:
    """True when WORK/run/last.pt already holds the requested number of epochs."""
    last = args.work / "run" / "last.pt"
    if not last.exists():
        return False
    from sigver.models.checkpoint import load_checkpoint

    state = load_checkpoint(last).training_state or {}
    return int(state.get("epoch", 0)) >= args.epochs


def stage_train(args, synth_cache: Path, sig_cache: Path | None, command: str):
    from sigver.cache import load_cache
    from sigver.preprocessing import PreprocessConfig
    from sigver.training import TrainConfig, parse_users, prepare_training_data, train

    sources = [("synth", load_cache(synth_cache))]
    users = []
    if sig_cache is not None and not args.no_sigcomp_dev:
        sources.append(("sigcomp2011", load_cache(sig_cache)))
        users.append(parse_users("sigcomp2011:001-037"))
    data = prepare_training_data(
        sources,
        users=users,
        forg=args.forg,
        preprocess=PreprocessConfig.for_dataset("sigcomp2011").to_dict(),
    )
    config = TrainConfig(
        arch=args.arch,
        arch_config=json.loads(args.arch_config),
        epochs=args.epochs,
        lr=args.lr,
        forg=args.forg,
        lamb=args.lamb,
        seed=args.seed,
        name=args.name,
        version=args.version,
        val_fraction=0.1,
    )
    run_dir = args.work / "run"
    last = run_dir / "last.pt"
    resume = None
    if last.exists():
        from sigver.models.checkpoint import load_checkpoint

        state = load_checkpoint(last).training_state or {}
        if int(state.get("epoch", 0)) >= args.epochs:
            log.info("training already complete")
            return data, run_dir, json.loads((run_dir / "log.json").read_text())
        resume = last
    result = train(data, config, run_dir, resume=resume, progress=False, command=command)
    return data, run_dir, result.history


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder")
    parser.add_argument("--sigcomp", type=Path, help="SigComp2011 folder (dev writers + eval)")
    parser.add_argument(
        "--no-sigcomp-dev", action="store_true", help="train on synthetic writers only"
    )
    parser.add_argument(
        "--models",
        type=Path,
        help="where the exported model, background and card go (default: WORK/models; "
        "the repository's models/ only with --replace-shipped)",
    )
    parser.add_argument(
        "--replace-shipped",
        action="store_true",
        help="allow writing over an existing model of the same name (e.g. the shipped one)",
    )
    parser.add_argument("--name", default="sigver-sigresnet")
    parser.add_argument("--version", default="1")
    parser.add_argument("--writers", type=int, default=300)
    parser.add_argument("--genuine", type=int, default=24)
    parser.add_argument("--forgeries", type=int, default=4)
    parser.add_argument("--arch", default="sigresnet")
    parser.add_argument(
        "--arch-config", default='{"widths": [32, 64, 128, 256], "feature_dim": 1024}'
    )
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--forg", action="store_true")
    parser.add_argument("--lamb", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--background-synth-writers", type=int, default=80)
    parser.add_argument(
        "--notes",
        type=Path,
        help="Markdown file appended to the model card (default: models/<name>-v<version>.notes.md"
        " when it exists)",
    )
    args = parser.parse_args(argv)
    args.models = args.models or args.work / "models"
    target = args.models / f"{args.name}-v{args.version}.pt"
    if target.exists() and not args.replace_shipped:
        # Checked before hours of work, not after: the default output must never
        # silently replace the shipped model or an earlier export.
        parser.error(f"{target} exists; give another --models/--version, or --replace-shipped")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    command = shlex.join(["python", "scripts/train_default_model.py", *(argv or sys.argv[1:])])
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    # A restarted run skips the stages whose outputs exist; their cost as measured when
    # they did run is kept in WORK/timings.json so the card reports the real pipeline time.
    timings_path = args.work / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}

    def timed(name: str, skipped: bool, stage, *stage_args):
        start = time.perf_counter()
        result = stage(*stage_args)
        if not skipped or name not in timings:
            elapsed = round(time.perf_counter() - start)
            # Resumed training continues the earlier epochs; other stages start over.
            timings[name] = elapsed + (timings.get(name, 0) if name == "train" else 0)
            atomic_write(timings_path, json.dumps(timings) + "\n")
        return result

    synth_dir = timed("synth", (args.work / "synth" / ".complete").exists(), stage_synth, args)
    caches_done = (args.work / "synth.npz").exists() and (
        args.sigcomp is None or (args.work / "sigcomp2011.npz").exists()
    )
    synth_cache, sig_cache, canvas_info = timed("data", caches_done, stage_caches, args, synth_dir)
    data, run_dir, history = timed(
        "train",
        _training_complete(args),
        stage_train,
        args,
        synth_cache,
        sig_cache,
        command,
    )

    # -- export (float16) --------------------------------------------------------------
    from sigver.cli import main as cli
    from sigver.features import Extractor
    from sigver.featureset import load_features, save_features
    from sigver.models.card import write_model_card
    from sigver.models.checkpoint import load_checkpoint, save_checkpoint

    best = load_checkpoint(run_dir / "best.pt")
    args.models.mkdir(parents=True, exist_ok=True)
    out = args.models / f"{args.name}-v{args.version}.pt"
    training_data = {
        **best.meta.training_data,
        "synthetic_corpus": (
            f"sigver synth --writers {args.writers} --genuine {args.genuine} "
            f"--forgeries {args.forgeries} --seed {args.seed}"
        ),
        "synthetic_canvas": canvas_info.get("canvas"),
        "sigcomp2011_writers": "none"
        if args.no_sigcomp_dev or sig_cache is None
        else "development 001-037 only",
    }
    extra = {
        **best.meta.extra,
        "machine": f"{platform.platform()}, {platform.processor() or 'cpu'}",
        "pipeline_time_s": dict(timings),
    }
    meta = dataclasses.replace(
        best.meta,
        name=args.name,
        version=str(args.version),
        command=command,
        training_data=training_data,
        extra=extra,
    )
    save_checkpoint(out, best.state_dict, meta, half=True)

    # -- evaluate on SigComp2011-dev ---------------------------------------------------
    metrics = dict(meta.metrics)
    if sig_cache is not None:
        feats = args.work / "sigcomp2011.features.npz"
        if (
            cli(
                [
                    "features",
                    "--model",
                    str(out),
                    "--data",
                    str(sig_cache),
                    "--out",
                    str(feats),
                    "--no-progress",
                ]
            )
            != 0
        ):
            raise SystemExit("feature extraction failed")
        eval_dir = args.work / "eval"
        if (
            cli(
                [
                    "evaluate",
                    "--features",
                    str(feats),
                    "--preset",
                    "sigcomp2011-dev",
                    "--out",
                    str(eval_dir),
                    "--no-progress",
                ]
            )
            == 0
        ):
            res = json.loads((eval_dir / "results.json").read_text())
            summary = res.get("summary", {})
            for key, value in summary.items():
                if isinstance(value, dict) and "mean" in value:
                    metrics[f"sigcomp2011-dev {key}"] = (
                        f"{100 * value['mean']:.2f} ± {100 * value['std']:.2f} %"
                        if key != "AUC"
                        else f"{value['mean']:.4f} ± {value['std']:.4f}"
                    )
        else:
            log.warning("sigver evaluate failed; no EER in the card")
    meta = dataclasses.replace(meta, metrics=metrics)
    save_checkpoint(out, load_checkpoint(out).state_dict, meta, half=True)

    # -- background negatives ----------------------------------------------------------
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ship_model import build_background

    ext = Extractor.from_checkpoint(out)
    background = build_background(
        ext, sig_cache, synth_cache, synth_writers=args.background_synth_writers
    )
    users = background.user_ids.tolist()
    bg_path = save_features(out.with_name(out.stem + ".background.npz"), background)
    load_features(bg_path)

    # -- default decision threshold, calibrated on development writers only ------------
    apriori_note = ""
    if sig_cache is not None:
        argv_cal = ["calibrate", "--model", str(out), "--data", str(sig_cache)]
        argv_cal += ["--users", "001-037", "--write", "--no-progress"]
        argv_cal += ["--json", str(args.work / "calibration.json")]
        if cli(argv_cal) != 0:
            raise SystemExit("sigver calibrate failed")
        # The honest operating point: the development threshold applied, unchanged, to the
        # exploitation writers (per-user scaling, exactly as enrollment trains classifiers).
        apriori_dir = args.work / "eval-calibrated"
        argv_ap = ["evaluate", "--model", str(out), "--data", str(sig_cache)]
        argv_ap += ["--preset", "sigcomp2011-dev", "--threshold", "model", "--scaling", "user"]
        argv_ap += ["--out", str(apriori_dir), "--no-plots", "--no-progress"]
        if cli(argv_ap) != 0:
            raise SystemExit("sigver evaluate at the calibrated threshold failed")
        fixed = json.loads((apriori_dir / "results.json").read_text())["fixed_threshold"]
        rates = ", ".join(
            f"{key} {100 * fixed['summary'][key]['mean']:.2f} ± "
            f"{100 * fixed['summary'][key]['std']:.2f} %"
            for key in ("FRR", "FAR_skilled", "FAR_random")
        )
        apriori_note = (
            f"At the calibrated threshold ({fixed['threshold']:.4f}, chosen on development "
            f"writers only), on the SigComp2011-dev exploitation writers 038-069 (10 folds, "
            f"5 references, per-user scaling): {rates}.\n\n"
        )

    # -- card --------------------------------------------------------------------------
    weights = load_checkpoint(out)
    last_rows = history[-3:] if history else []
    notes = (
        f"Background negatives: `{bg_path.name}` ({len(background)} genuine signatures of "
        f"{len(users)} development writers, {background.dim}-d).\n\n"
        f"{apriori_note}"
        f"Total pipeline time: {sum(timings.values()) / 60:.1f} min for synth, data and "
        f"training (`{json.dumps(timings)}` s), plus {(time.perf_counter() - t0) / 60:.1f} min "
        "for export, evaluation, background and calibration in the last run.\n\n"
        f"Last epochs: `{json.dumps(last_rows)}`"
    )
    notes_file = args.notes or args.models / f"{args.name}-v{args.version}.notes.md"
    if args.notes is not None or notes_file.exists():
        notes += "\n\n" + notes_file.read_text(encoding="utf-8")
    write_model_card(out.with_suffix(".md"), weights, notes=notes)
    print(f"model: {out} ({out.stat().st_size / 1e6:.1f} MB, sha256 {weights.sha256[:12]})")
    print(json.dumps(metrics, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

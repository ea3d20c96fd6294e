#!/usr/bin/env python
"""The v2 feature-extractor pipeline (issue 9), stage by stage, CPU-sized.

Every stage is a ``sigver`` command run in-process; a stage whose output is
complete in ``--work`` is skipped, and an interrupted base training resumes
from its ``last.pt``, so the same command can be re-run across sessions.
``--dry-run`` prints the commands without running anything.

Stages:

1. ``synth``: v2 corpus (all scripts, training styles: ``--split train``).
2. ``holdout``: one small corpus per script, other seed, hold-out style only.
3. ``caches``: preprocess the corpora (synthetic canvas scaled so that the
   median ink width matches SigComp2011's, as for v1; see ``--synth-canvas``)
   and SigComp2011 on its own (= the model's) canvas.
4. ``base``: synthetic-only model (no SigComp writer at all), SigResNet
   ``--widths``, plain writer loss (``--loss signet-f`` for SigNet-F with lambda
   warm-up, balanced and normalised forgery loss: at ``--lamb 0.95`` it collapsed
   at this scale, see models/sigver-sigresnet-v2.notes.md; ``--lamb 0.5
   --model-version 3`` builds the shipped v3, see models/sigver-sigresnet-v3.notes.md).
5. ``finetune``: the base model fine-tuned on SigComp2011 development writers
   001-037, genuine signatures only (the institution use case): all layers
   (``ft_all``) and the last block only (``ft_last``).
6. ``evaluate``: SigComp2011-dev (5 references, 10 folds) for v1, ``base``,
   ``ft_all`` and ``ft_last``; and each per-script hold-out corpus (first half
   of its writers exploitation, second half development) for v1, ``base`` and
   the variant to ship.
7. ``ship``: the fine-tune with the best development-writer validation accuracy
   through scripts/ship_model.py into ``--models`` (default WORK/models).

``--base-checkpoint CKPT`` replaces stages 1, 3 (synthetic cache) and 4 with a base
trained elsewhere, e.g. the full-width SigNet of ``scripts/train_signet_gpu.sh``
(same corpus, trained on a GPU): fine-tunes, evaluations and hold-outs then run
on the CPU as for a SigResNet base (``--synth-canvas H,W`` is required, since the
synthetic corpus is not here, and nothing is shipped).

Usage::

    python scripts/train_v2_model.py --work /tmp/v2 --sigcomp ../shared/data/sigcomp2011
    python scripts/train_v2_model.py --work /tmp/v3 --sigcomp ../shared/data/sigcomp2011 \\
        --loss signet-f --lamb 0.5 --model-version 3                    # the shipped v3
    python scripts/train_v2_model.py --work /tmp/v2 --dry-run
    python scripts/train_v2_model.py --work /tmp/v2-tiny --writers 16 --epochs 1 \\
        --holdout-writers 4 --finetune-epochs 1 --no-sigcomp          # smoke test
    python scripts/train_v2_model.py --work /tmp/signet --base-checkpoint out/signet-base.pt \\
        --synth-canvas 645,921 --ship none --compare v3     # the GPU SigNet (train_signet_gpu.sh)
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("train_v2_model")
#: SigComp2011 median ink width (pixels, own canvas), see scripts/train_default_model.py.
SIGCOMP_INK_WIDTH = 634.0


def _median_ink_width(folder: Path, limit: int = 200) -> float:
    import numpy as np

    from sigver.errors import ImageError
    from sigver.preprocessing import locate_signature, read_image

    widths = []
    for path in sorted(folder.rglob("c-*.png"))[:limit]:
        try:
            loc = locate_signature(read_image(path))
        except ImageError:  # the cache stage reports (and skips) such images
            continue
        widths.append(loc.cmax - loc.cmin + 1)
    return float(np.median(widths))


def synth_canvas(folder: Path) -> tuple[int, int]:
    """The canvas on which synthetic ink is as wide as SigComp2011 ink (on its own canvas)."""
    from sigver.preprocessing import CANVAS_SIZES

    h, w = CANVAS_SIZES["sigcomp2011"]
    scale = _median_ink_width(folder) / SIGCOMP_INK_WIDTH
    return round(h * scale), round(w * scale)


class Pipeline:
    """Runs (or prints) ``sigver`` commands, skipping stages already done."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work: Path = args.work
        self.timings: dict[str, float] = {}

    def run(self, name: str, argv: list[str], done: Path) -> None:
        from sigver.cli import main

        line = shlex.join(["sigver", *argv])
        if done.exists():
            log.info("skip %s (%s exists)", name, done)
            return
        print(f"[{name}] {line}", flush=True)
        if getattr(self.args, "dry_run", False):  # callers without --dry-run run for real
            return
        start = time.perf_counter()
        if main(argv) != 0:
            raise SystemExit(f"stage {name} failed: {line}")
        self.timings[name] = round(time.perf_counter() - start, 1)
        if done.suffix == ".done":
            done.write_text(line + "\n")
        self.save_timings()

    def save_timings(self) -> None:
        path = self.work / "timings.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps(old | self.timings, indent=1) + "\n")


def synth_holdouts(p: Pipeline, work: Path, writers: int, jobs: list[str]) -> None:
    """One small hold-out corpus per script (seed 1, hold-out styles) under ``work/holdout``."""
    from sigver.synth.scripts import SCRIPTS

    for script in SCRIPTS:
        p.run(
            f"holdout-{script}",
            ["synth", "--scripts", script, "--split", "holdout", "--writers", str(writers),
             "--genuine", "10", "--forgeries", "5", "--seed", "1",
             "--out", str(work / "holdout" / script), *jobs, "--no-progress"],
            work / f"holdout-{script}.done",
        )  # fmt: skip


def cache_holdouts(p: Pipeline, work: Path, canvas: list[str], jobs: list[str]) -> None:
    """Preprocess each hold-out corpus on the synthetic canvas (``work/holdout/SCRIPT.npz``)."""
    from sigver.synth.scripts import SCRIPTS

    for script in SCRIPTS:
        p.run(
            f"cache-holdout-{script}",
            ["preprocess", "--dataset", "gpds", "--path", str(work / "holdout" / script),
             "--out", str(work / "holdout" / f"{script}.npz"), "--canvas", *canvas, *jobs,
             "--no-progress"],
            work / "holdout" / f"{script}.npz",
        )  # fmt: skip


def evaluate_holdouts(p: Pipeline, work: Path, models: dict[str, Path], writers: int) -> None:
    """Research protocol on each hold-out: first half exploitation, second half development.

    5 references, 10 folds; results in ``work/eval/holdout-SCRIPT-NAME/results.json``.
    """
    from sigver.synth.scripts import SCRIPTS

    half = writers // 2
    for script in SCRIPTS:
        for name, model in models.items():
            p.run(
                f"eval-holdout-{script}-{name}",
                ["evaluate", "--model", str(model), "--data",
                 str(work / "holdout" / f"{script}.npz"), "--exp-users", "0", str(half),
                 "--dev-users", str(half), str(writers), "--refs", "5",
                 "--folds", "10", "--out", str(work / "eval" / f"holdout-{script}-{name}"),
                 "--no-progress"],
                work / "eval" / f"holdout-{script}-{name}" / "results.json",
            )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--sigcomp", type=Path, default=REPO.parent / "shared/data/sigcomp2011")
    parser.add_argument("--no-sigcomp", action="store_true", help="synthetic stages only")
    parser.add_argument("--writers", type=int, default=3000)
    parser.add_argument(
        "--synth-version",
        type=int,
        choices=(2, 3),
        default=2,
        help="generator of the training corpus: 2 (v2-v5) or 3 (forgers write with their own "
        "pen; see scripts/forgery_stats.py); the hold-out corpora stay v2, comparable across runs",
    )
    parser.add_argument(
        "--compare",
        action="append",
        metavar="NAME",
        help="shipped model evaluated in the same run (repeatable; default: the previous version)",
    )
    parser.add_argument("--genuine", type=int, default=10)
    parser.add_argument("--forgeries", type=int, default=5)
    parser.add_argument("--holdout-writers", type=int, default=24, help="per script")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument(
        "--lr-decay-times", type=int, default=2, help="base: lr x0.1 every epochs/N epochs"
    )
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument(
        "--widths",
        default="16,48,96,192",
        help="SigResNet stage widths; the default costs 0.46x the FLOPs of v1's (32,64,128,256) "
        "and runs about 2x faster (scripts/bench_inference.py)",
    )
    parser.add_argument("--loss", choices=("signet-f", "signet"), default="signet")
    parser.add_argument("--lamb", type=float, default=0.95)
    parser.add_argument("--lamb-warmup", type=int, default=2)
    parser.add_argument(
        "--model-version",
        default="2",
        help="version recorded in the checkpoints and the shipped file name (sigver-sigresnet-vN)",
    )
    parser.add_argument("--finetune-epochs", type=int, default=6)
    parser.add_argument("--finetune-lr", type=float, default=0.001)
    parser.add_argument(
        "--synth-canvas",
        default="auto",
        help="'auto' (match SigComp2011's median ink width) or H,W",
    )
    parser.add_argument(
        "--train-seed",
        type=int,
        default=42,
        help="seed of the base and fine-tune trainings (sigver train --seed; default 42, the "
        "shipped models'); the corpora keep their own seeds",
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--cpu-bf16",
        action="store_true",
        help="train the base and the fine-tunes with bfloat16 autocast on CPU (sigver train "
        "--cpu-bf16; results differ from the float32 recipe)",
    )
    parser.add_argument(
        "--ship",
        default="auto",
        help="variant exported as the shipped model: 'auto' (the rule fixed in advance: the "
        "fine-tune with the best development-writer validation accuracy in its log.json, "
        "never the SigComp2011-dev table), a variant name, or 'none'",
    )
    parser.add_argument(
        "--models", type=Path, help="where the shipped files go (default WORK/models)"
    )
    parser.add_argument(
        "--replace-shipped", action="store_true", help="allow overwriting an existing model"
    )
    parser.add_argument(
        "--base-checkpoint",
        type=Path,
        metavar="CKPT",
        help="a base trained elsewhere (e.g. scripts/train_signet_gpu.sh): skip the synthetic "
        "corpus and the base training; needs --synth-canvas H,W and --ship none",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    if args.base_checkpoint is not None:
        if args.synth_canvas == "auto":
            parser.error("--base-checkpoint needs --synth-canvas H,W (the corpus is not here)")
        if args.ship != "none":
            parser.error("--base-checkpoint needs --ship none (shipping reads the synthetic cache)")
        from sigver.errors import ModelError

        try:
            base_arch = load_arch(args.base_checkpoint)
        except ModelError as exc:  # before any stage runs, not after the hold-out corpora
            parser.error(f"--base-checkpoint: {exc}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from sigver.features import resolve_model_path

    widths = [int(w) for w in args.widths.split(",")]
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    if args.base_checkpoint is not None and not args.dry_run:
        _bind_external_base(work, args.base_checkpoint)
    p = Pipeline(args)
    jobs = ["--jobs", str(args.jobs)]
    quiet = ["--no-progress"]
    bf16 = ["--cpu-bf16"] if args.cpu_bf16 else []
    seed = ["--seed", str(args.train_seed)]

    # 1-2. corpora
    synth = work / "synth"
    external = args.base_checkpoint is not None
    if not external:
        p.run(
            "synth",
            ["synth", "--version", str(args.synth_version), "--split", "train", "--writers",
             str(args.writers),
             "--genuine", str(args.genuine), "--forgeries", str(args.forgeries), "--seed", "0",
             "--out", str(synth), *jobs, *quiet],
            work / "synth.done",
        )  # fmt: skip
    synth_holdouts(p, work, args.holdout_writers, jobs)

    # 3. caches
    if args.synth_canvas == "auto":
        if args.dry_run and not synth.exists():
            canvas = ["<auto>", "<auto>"]
        else:
            canvas = [str(v) for v in synth_canvas(synth)]
    else:
        canvas = args.synth_canvas.split(",")
    if not external:
        p.run(
            "cache-synth",
            ["preprocess", "--dataset", "gpds", "--path", str(synth), "--out",
             str(work / "synth.npz"), "--canvas", *canvas, *jobs, *quiet],
            work / "synth.npz",
        )  # fmt: skip
    cache_holdouts(p, work, canvas, jobs)
    sigcomp = work / "sigcomp2011.npz"
    if not args.no_sigcomp:
        p.run(
            "cache-sigcomp",
            ["preprocess", "--dataset", "sigcomp2011", "--path", str(args.sigcomp), "--out",
             str(sigcomp), *jobs, *quiet],
            sigcomp,
        )  # fmt: skip

    # 4. base model: synthetic only
    base = work / "base"
    base_ckpt = base / "best.pt"
    if external:
        base_ckpt = args.base_checkpoint
    else:
        loss = []
        if args.loss == "signet-f":
            loss = ["--forg", "--lamb", str(args.lamb), "--lamb-warmup", str(args.lamb_warmup),
                    "--forg-balance", "--forg-normalise"]  # fmt: skip
        resume = ["--resume", str(base / "last.pt")] if (base / "last.pt").exists() else []
        p.run(
            "base",
            # The synthetic canvas only compensates the generator's drawing size: the
            # model records the product canvas (SigComp2011 = GPDS, 952 x 1360).
            ["train", "--data", str(work / "synth.npz"), "--canvas", "952", "1360", "--arch",
             "sigresnet", "--arch-config", json.dumps({"widths": widths}), "--epochs",
             str(args.epochs), "--lr", str(args.lr), "--lr-decay-times", str(args.lr_decay_times),
             *loss, "--name", f"sigver-sigresnet-v{args.model_version}-synth",
             "--version", args.model_version, "--out", str(base), *resume, *seed, *bf16,
             *quiet],
            work / "base.done",
        )  # fmt: skip

    # 5. fine-tuning on SigComp2011 development writers, genuine only
    models = {"v1": resolve_model_path("sigver-sigresnet-v1"), "base": base_ckpt}
    arch = base_arch if external else "sigresnet"
    compare = args.compare
    if compare is None and args.model_version.isdigit() and int(args.model_version) > 2:
        # The shipped model this version would replace, evaluated in the same run.
        compare = [f"v{int(args.model_version) - 1}"]
    for name in compare or ():
        models = {name: resolve_model_path(f"sigver-sigresnet-{name}"), **models}
    if not args.no_sigcomp:
        for name, freeze in (("ft_all", "0"), ("ft_last", "-1")):
            p.run(
                name,
                ["train", "--init", str(base_ckpt), "--freeze", freeze, "--data",
                 str(sigcomp), "--users", "sigcomp2011:001-037", "--epochs",
                 str(args.finetune_epochs), "--lr", str(args.finetune_lr), "--lr-decay-times",
                 "2", "--name", f"sigver-{arch}-v{args.model_version}-{name}", "--version",
                 args.model_version, "--out",
                 str(work / name), *seed, *bf16, *quiet],
                work / f"{name}.done",
            )  # fmt: skip
            models[name] = work / name / "best.pt"

    if args.ship == "auto" and not args.no_sigcomp:
        args.ship = "ft_all" if args.dry_run else _best_by_validation(work, ("ft_all", "ft_last"))

    # 6. evaluation
    if not args.no_sigcomp:
        for name, model in models.items():
            p.run(
                f"eval-sigcomp-{name}",
                ["evaluate", "--model", str(model), "--data", str(sigcomp), "--preset",
                 "sigcomp2011-dev", "--out", str(work / "eval" / f"sigcomp-{name}"), *quiet],
                work / "eval" / f"sigcomp-{name}" / "results.json",
            )  # fmt: skip
    names = dict.fromkeys(("v1", *(compare or ()), "base", args.ship))
    evaluate_holdouts(
        p, work, {name: models[name] for name in names if name in models}, args.holdout_writers
    )
    # 7. ship: weights, background, calibration and card (scripts/ship_model.py)
    if args.ship != "none" and not args.no_sigcomp and args.ship in models:
        out_dir = args.models or work / "models"
        target = out_dir / f"sigver-sigresnet-v{args.model_version}.pt"
        if args.replace_shipped or not target.exists():
            if args.dry_run:
                print(f"[ship] python scripts/ship_model.py --checkpoint {models[args.ship]} ...")
            else:
                _ship(p, models[args.ship], out_dir)
    if not args.dry_run:
        print(f"timings: {work / 'timings.json'}")
    return 0


def load_arch(checkpoint: Path) -> str:
    """The architecture recorded in a checkpoint (ours hash-checked, or a reference tuple)."""
    from sigver.models.checkpoint import load_weights

    return load_weights(checkpoint).meta.arch


def _bind_external_base(work: Path, checkpoint: Path) -> None:
    """Refuse a work folder whose done stages belong to another base.

    Stages are skipped when their output exists, so the fine-tunes and the ``base``
    evaluations of an earlier base would otherwise be reported as this one's.
    """
    from sigver._meta import file_sha256

    digest = file_sha256(checkpoint)
    marker = work / "external-base.sha256"
    if (work / "base.done").exists() or (work / "base").exists():
        raise SystemExit(f"{work} holds a base trained by this pipeline: use another --work")
    if marker.exists() and marker.read_text().strip() != digest:
        raise SystemExit(
            f"{work} holds the stages of another --base-checkpoint: use another --work"
        )
    marker.write_text(digest + "\n")


def _best_by_validation(work: Path, names: tuple[str, ...]) -> str:
    """The variant whose best epoch has the highest validation accuracy (development writers)."""
    scores = {}
    for name in names:
        rows = json.loads((work / name / "log.json").read_text())
        scores[name] = max(float(r.get("val_acc", float("-inf"))) for r in rows)
    choice = max(scores, key=scores.get)
    log.info("ship %s: best validation accuracy per fine-tune %s", choice, scores)
    (work / "ship_choice.json").write_text(json.dumps({"choice": choice, "val_acc": scores}) + "\n")
    return choice


def _ablations(work: Path) -> tuple[dict, str]:
    """Every evaluation of the run, as metadata and as a Markdown table for the card."""
    rows, table = {}, []
    for res in sorted((work / "eval").glob("*/results.json")):
        summary = json.loads(res.read_text()).get("summary", {})
        cells = {
            k: f"{100 * summary[k]['mean']:.2f} ± {100 * summary[k]['std']:.2f}"
            for k in ("EER_user", "EER_global")
            if isinstance(summary.get(k), dict)
        }
        rows[res.parent.name] = cells
        table.append(
            f"| {res.parent.name} | {cells.get('EER_user', '')} | {cells.get('EER_global', '')} |"
        )
    md = (
        "## Ablations of the v2 pipeline\n\n"
        "Research protocol, a-posteriori thresholds (global and per user), 5 references, "
        "10 folds; `sigcomp-*`: SigComp2011-dev (exploitation writers 038-069); "
        "`holdout-<script>-*`: that script's synthetic hold-out corpus (other seed, hold-out "
        "styles; first half exploitation). `v1`: the first shipped model; `base`: "
        "synthetic writers only; `ft_all` / `ft_last`: base fine-tuned on SigComp2011 "
        "development writers 001-037 (genuine only), all layers / last block.\n\n"
        "| run | EER_user % | EER_global % |\n| --- | --- | --- |\n" + "\n".join(table) + "\n"
    )
    runs, run_rows = {}, []
    for log_json in sorted(work.glob("*/log.json")):
        history = json.loads(log_json.read_text())
        if not history:
            continue
        run = {
            "epochs": len(history),
            "best_val_acc": max(float(r.get("val_acc", 0.0)) for r in history),
            "last_val_acc": float(history[-1].get("val_acc", 0.0)),
            "lamb": history[-1].get("lamb"),
        }
        runs[log_json.parent.name] = run
        run_rows.append(
            f"| {log_json.parent.name} | {run['epochs']} | {run['best_val_acc']:.4f} | "
            f"{run['last_val_acc']:.4f} | {'' if run['lamb'] is None else run['lamb']} |"
        )
    md += (
        "\nTraining runs of the pipeline folder (validation writer accuracy on held-out "
        "signatures of the training writers; `abl_*` are ablations kept for the record):\n\n"
        "| run | epochs | best val acc | last val acc | last lambda |\n"
        "| --- | --- | --- | --- | --- |\n" + "\n".join(run_rows) + "\n"
    )
    timings = work / "timings.json"
    meta = {
        "training_runs": runs,
        "ablations": rows,
        "pipeline_time_s": json.loads(timings.read_text()) if timings.exists() else {},
    }
    return meta, md


def _ship(p: Pipeline, checkpoint: Path, out_dir: Path) -> None:
    args, work = p.args, p.work
    sys.path.insert(0, str(REPO / "scripts"))
    from ship_model import main as ship

    meta, md = _ablations(work)
    (work / "ablations.json").write_text(json.dumps(meta, indent=1) + "\n")
    # hand-written, kept in git
    notes = REPO / "models" / f"sigver-sigresnet-v{args.model_version}.notes.md"
    (work / "ablations.md").write_text(md + ("\n" + notes.read_text() if notes.is_file() else ""))
    command = shlex.join(["python", "scripts/train_v2_model.py", *sys.argv[1:]])
    argv = ["--checkpoint", str(checkpoint), "--version", args.model_version, "--models",
            str(out_dir),
            "--synth-cache", str(work / "synth.npz"), "--sigcomp-cache",
            str(work / "sigcomp2011.npz"), "--sigcomp", str(args.sigcomp), "--command", command,
            "--meta-json", str(work / "ablations.json"),
            "--notes", str(work / "ablations.md")]  # fmt: skip
    if args.replace_shipped:
        argv.append("--replace")
    start = time.perf_counter()
    print(f"[ship] python scripts/ship_model.py {shlex.join(argv)}", flush=True)
    if ship(argv) != 0:
        raise SystemExit("shipping failed")
    p.timings["ship"] = round(time.perf_counter() - start, 1)
    p.save_timings()


if __name__ == "__main__":
    sys.exit(main())

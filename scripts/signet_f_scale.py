"""SigNet-F on the v2 corpus at a scale this CPU can repeat: which loss settings keep the writers.

The v2 base run with ``--forg --lamb 0.95 --lamb-warmup 2 --forg-balance
--forg-normalise`` lost writer identity once lambda reached 0.95 (README, "SigNet-F
at scale collapsed"). This script retrains that setting next to the plain writer
loss and the alternatives in ``RUNS`` on a smaller v2 corpus, one run after another, and scores
every run the way that counts: SigComp2011-dev (research protocol, exploitation
writers 038-069, 5 references, 10 folds), EER with user-specific and global
a-posteriori thresholds, through ``sigver evaluate``. No SigComp writer is trained on.

Usage::

    python scripts/signet_f_scale.py --sigcomp ../shared/data/sigcomp2011 --out runs/signet-f-scale
    python scripts/signet_f_scale.py ... --writers 200 --epochs 4 --runs plain f095-normalise

Stages skip what is already in ``--out`` (corpus, cache, finished runs, evaluations),
so an interrupted invocation resumes. Writes ``OUT/results.json`` and prints a
Markdown table with the command, machine and load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_v2_model import synth_canvas  # noqa: E402

#: Loss settings: TrainConfig keyword arguments. Every SigNet-F run ramps lambda over
#: the first 2 epochs (unless it sets its own ``lamb_warmup``) and weights forgeries by
#: n_genuine / n_forgeries (README: the only small-scale setting where both heads learned).
RUNS: dict[str, dict] = {
    "plain": {"forg": False},
    # The setting that collapsed at 3,000 writers: CE + 19 BCE once lambda = 0.95.
    "f095-normalise": {"forg": True, "lamb": 0.95, "forg_normalise": True},
    # The published weighting: 0.05 CE + 0.95 BCE.
    "f095-published": {"forg": True, "lamb": 0.95},
    # Milder forgery weights: lambda 0.5 / 0.75 normalised = CE + BCE / CE + 3 BCE.
    "f050-normalise": {"forg": True, "lamb": 0.5, "forg_normalise": True},
    "f075-normalise": {"forg": True, "lamb": 0.75, "forg_normalise": True},
    # The collapsed setting with gradient values clipped at 1 instead of 10: bounds the
    # step the 19x forgery term can take on each weight.
    "f095-normalise-clip1": {"forg": True, "lamb": 0.95, "forg_normalise": True, "grad_clip": 1.0},
    # The collapsed setting with lambda reaching 0.95 only after the tenfold lr decay (ramp over
    # 4 epochs instead of 2): the 19x forgery term then steps at lr/10, like the published
    # recipe's low learning rate, once the writers are learned.
    "f095-normalise-late": {"forg": True, "lamb": 0.95, "forg_normalise": True, "lamb_warmup": 4},
}
SIGNET_F_COMMON = {"lamb_warmup": 2, "forg_balance": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigcomp", type=Path, required=True, help="SigComp2011 folder")
    parser.add_argument("--out", type=Path, default=Path("runs/signet-f-scale"))
    parser.add_argument("--writers", type=int, default=400)
    parser.add_argument("--genuine", type=int, default=10)
    parser.add_argument("--forgeries", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--lr-decay-times", type=int, default=2)
    parser.add_argument("--widths", default="16,48,96,192", help="SigResNet stage widths (v2's)")
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)

    from sigver._util import command_line, format_machine_info, write_json
    from sigver.cache import build_cache, load_cache, save_cache
    from sigver.cli import main as sigver_main
    from sigver.preprocessing import CANVAS_SIZES
    from sigver.training import TrainConfig, prepare_training_data, train

    print(f"command: {command_line()}")
    print(format_machine_info(), flush=True)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    corpus, cache_path = out / "synth", out / "synth.npz"
    if not (out / "synth.done").exists():
        rc = sigver_main(
            ["synth", "--version", "2", "--split", "train", "--writers", str(args.writers),
             "--genuine", str(args.genuine), "--forgeries", str(args.forgeries), "--seed", "0",
             "--out", str(corpus), "--jobs", str(args.jobs), "--no-progress"]
        )  # fmt: skip
        if rc:
            return rc
        (out / "synth.done").write_text("ok\n")
    if not cache_path.exists():
        cache = build_cache("gpds", corpus, canvas_size=synth_canvas(corpus), n_jobs=args.jobs)
        save_cache(cache_path, cache)
    cache = load_cache(cache_path)
    widths = [int(v) for v in args.widths.split(",")]
    results: dict[str, dict] = {}
    for name in args.runs:
        # A run's own settings win over the common ones.
        opts = dict(SIGNET_F_COMMON if RUNS[name]["forg"] else {}, **RUNS[name])
        run_dir = out / name
        if not (run_dir / "done").exists():
            # The model records the product canvas (SigComp2011 = GPDS): the synthetic canvas
            # only compensates the generator's drawing size.
            preset = {"canvas_size": list(CANVAS_SIZES["sigcomp2011"]), "img_size": [170, 242],
                      "input_size": [150, 220]}  # fmt: skip
            data = prepare_training_data([("synth", cache)], forg=opts["forg"], preprocess=preset)
            cfg = TrainConfig(
                arch="sigresnet",
                arch_config={"widths": widths},
                epochs=args.epochs,
                lr=args.lr,
                lr_decay_times=args.lr_decay_times,
                seed=1,
                name=f"signet-f-scale-{name}",
                **opts,
            )
            shutil.rmtree(run_dir, ignore_errors=True)  # an unfinished run starts again
            train(data, cfg, run_dir, progress=False, command=command_line())
            (run_dir / "done").write_text("ok\n")
        history = json.loads((run_dir / "log.json").read_text())
        eval_dir = run_dir / "eval-sigcomp2011-dev"
        if not (eval_dir / "results.json").exists():
            rc = sigver_main(
                ["-q", "evaluate", "--model", str(run_dir / "best.pt"), "--data",
                 str(args.sigcomp), "--dataset", "sigcomp2011", "--preset", "sigcomp2011-dev",
                 "--out", str(eval_dir), "--no-progress"]
            )  # fmt: skip
            if rc:
                return rc
        summary = json.loads((eval_dir / "results.json").read_text())["summary"]
        results[name] = {
            "options": opts,
            "val_acc_by_epoch": [round(r.get("val_acc", 0.0), 4) for r in history],
            "train_forg_bacc_last": history[-1].get("train_forg_bacc"),
            "train_min": round(sum(r["epoch_time_s"] for r in history) / 60, 1),
            "EER_user": summary["EER_user"],
            "EER_global": summary["EER_global"],
        }
        print(name, json.dumps(results[name]), f"load {os.getloadavg()[0]:.2f}", flush=True)
    write_json(out / "results.json", {"command": command_line(), "runs": results})
    print(
        "\n| run | val writer acc by epoch | train forgery bal. acc | EER_user (%) | EER_global (%)"
        " | train min |\n|---|---|---|---|---|---|"
    )
    for name, r in results.items():
        bacc = r["train_forg_bacc_last"]
        eu, eg = r["EER_user"], r["EER_global"]
        print(
            f"| {name} | {', '.join(f'{v:.3f}' for v in r['val_acc_by_epoch'])} | "
            f"{'-' if bacc is None else f'{bacc:.3f}'} | {100 * eu['mean']:.2f} ± "
            f"{100 * eu['std']:.2f} | {100 * eg['mean']:.2f} ± {100 * eg['std']:.2f} | "
            f"{r['train_min']} |"
        )
    print(f"\nwall {time.strftime('%H:%M:%S')}, load {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

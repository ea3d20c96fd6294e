"""``sigver train``: learn a writer-independent feature extractor (SigNet / SigNet-F).

Examples::

    sigver train --data synth.npz --data sigcomp2011:/data/sigcomp2011 \\
        --users sigcomp2011:001-037 --arch signet --out runs/signet
    sigver train --data gpds.npz --arch signet --forg --lamb 0.95 --out runs/signet_f
    sigver train --data synth.npz --arch signet --out runs/signet --resume runs/signet/last.pt
    sigver train --data synth.npz --arch signet --forg --lamb 0.95 --lamb-warmup 3 \
        --forg-balance --out runs/signet_f
    sigver train --init models/sigver-sigresnet-v6.pt --freeze -1 \
        --data folder:/bank/manifest.csv --out runs/bank     # retrain the last layers
    torchrun --nproc_per_node 2 -m sigver train --data synth.npz --arch signet --out runs/ddp
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path

NAME = "train"
HELP = "train a SigNet-style feature extractor on one or more datasets (torchrun-ready)"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` options."""
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="[READER:]PATH",
        help="a .npz cache or a dataset folder (READER:FOLDER or with --dataset); repeatable",
    )
    data.add_argument("--dataset", metavar="NAME", help="reader for folders given without READER:")
    data.add_argument(
        "--users",
        action="append",
        default=[],
        metavar="[DATASET:]SPEC",
        help="keep only these users, e.g. 001-037 or sigcomp2011:001-037,040 (repeatable; a "
        "DATASET: prefix limits the filter to that dataset's sources)",
    )
    data.add_argument(
        "--exclude-users",
        action="append",
        default=[],
        metavar="[DATASET:]SPEC",
        help="drop these users (same syntax as --users)",
    )
    data.add_argument(
        "--allow-exploitation-writers",
        action="store_true",
        help="allow SigComp2011 writers 038-069 (the SigComp2011-dev test writers!)",
    )
    data.add_argument("--allow-pickle", action="store_true", help="trusted reference caches only")
    data.add_argument("--jobs", type=int, default=2, metavar="N", help="preprocessing workers")
    data.add_argument(
        "--canvas",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="the model's preprocessing canvas: folders are preprocessed on it and it is "
        "recorded in the checkpoint (what enrollment uses); default: the --init model's, "
        "else the first source's. Caches keep their own canvas (a warning says so)",
    )
    data.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        metavar="F",
        help="fraction of each writer's images held out for validation (default 0.1)",
    )

    model = parser.add_argument_group("model and recipe (defaults: the published recipe)")
    model.add_argument("--arch", help="architecture (default signet, or the --init checkpoint's)")
    model.add_argument(
        "--arch-config",
        default="{}",
        metavar="JSON",
        help="builder options, e.g. '{\"feature_dim\": 512}' for sigresnet",
    )
    model.add_argument("--out", required=True, type=Path, metavar="RUN_DIR", help="run folder")
    model.add_argument("--epochs", type=int, default=60, help="total epochs (default 60)")
    model.add_argument("--batch-size", type=int, default=32, help="per process (default 32)")
    model.add_argument("--lr", type=float, default=1e-3, help="initial SGD lr (default 1e-3)")
    model.add_argument("--momentum", type=float, default=0.9, help="Nesterov (default 0.9)")
    model.add_argument("--weight-decay", type=float, default=1e-4, help="default 1e-4")
    model.add_argument("--lr-decay", type=float, default=0.1, help="lr multiplier (default 0.1)")
    model.add_argument(
        "--lr-decay-times",
        type=int,
        default=3,
        help="decay every epochs // N epochs (default 3)",
    )
    model.add_argument("--forg", action="store_true", help="SigNet-F: add the forgery loss")
    model.add_argument("--lamb", type=float, default=0.95, help="forgery-loss weight (SigNet-F)")
    model.add_argument(
        "--lamb-warmup",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="SigNet-F: ramp lambda linearly from 0 over this many epochs (default 0: off)",
    )
    model.add_argument(
        "--forg-balance",
        action="store_true",
        help="SigNet-F: weight forgeries by n_genuine/n_forgeries in the forgery loss",
    )
    model.add_argument(
        "--forg-normalise",
        action="store_true",
        help="SigNet-F: divide the loss by (1 - lambda) so the writer term keeps its "
        "learning rate (CE + lambda/(1-lambda) BCE)",
    )
    tune = parser.add_argument_group("fine-tuning")
    tune.add_argument(
        "--init",
        type=Path,
        metavar="CHECKPOINT",
        help="start the backbone from this checkpoint (new writer head); e.g. the shipped model",
    )
    tune.add_argument(
        "--freeze",
        type=int,
        default=0,
        metavar="N",
        help="with --init: freeze the first N trainable blocks; 0 (default) retrains all "
        "layers, -1 retrains only the last (fully connected) block",
    )
    model.add_argument("--seed", type=int, default=42, help="default 42")
    model.add_argument("--resume", type=Path, metavar="LAST_PT", help="continue a run")
    model.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    model.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    model.add_argument("--no-channels-last", action="store_true", help="NCHW on CPU")
    model.add_argument(
        "--cpu-bf16",
        action="store_true",
        help="bfloat16 autocast on CPU: faster on CPUs with AVX512-BF16, results differ "
        "from float32 (see the README, Training)",
    )
    model.add_argument("--name", default="", help="model name recorded in the checkpoints")
    model.add_argument("--version", dest="model_version", default="1", help="model version")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="train from scratch into an --out folder that already holds a run",
    )


def run(args: argparse.Namespace) -> int:
    """Load data, train, print where the checkpoints are."""
    from sigver.errors import SigverError
    from sigver.models import available_models
    from sigver.training import TrainConfig, load_training_data, train

    rank = int(os.environ.get("RANK", "0"))
    if rank != 0:
        # Other ranks only report problems; rank 0 logs the run.
        logging.getLogger("sigver").setLevel(logging.WARNING)
    try:
        arch_config = json.loads(args.arch_config)
    except json.JSONDecodeError as exc:
        raise SigverError(f"--arch-config is not JSON: {exc}") from exc
    if not isinstance(arch_config, dict):
        raise SigverError("--arch-config must be a JSON object")
    arch = args.arch or "signet"
    canvas = None if args.canvas is None else tuple(args.canvas)
    if args.freeze and args.init is None:
        raise SigverError("--freeze needs --init CHECKPOINT")
    if args.init is not None:
        from sigver.models.checkpoint import load_weights

        meta = load_weights(args.init).meta
        if canvas is None and meta.preprocess.get("canvas_size"):
            # Fine-tuning data must look like what the initial model was trained on.
            canvas = tuple(int(v) for v in meta.preprocess["canvas_size"])
        if args.arch is None:
            arch, arch_config = meta.arch, dict(meta.arch_config)
    if arch not in available_models():
        raise SigverError(f"unknown --arch {arch!r}; available: {available_models()}")
    config = TrainConfig(
        arch=arch,
        arch_config=arch_config,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        lr_decay=args.lr_decay,
        lr_decay_times=args.lr_decay_times,
        forg=args.forg,
        lamb=args.lamb,
        lamb_warmup=args.lamb_warmup,
        forg_balance=args.forg_balance,
        forg_normalise=args.forg_normalise,
        init="" if args.init is None else str(args.init),
        freeze=args.freeze,
        val_fraction=args.val_fraction,
        seed=args.seed,
        amp=not args.no_amp,
        cpu_bf16=args.cpu_bf16,
        channels_last=not args.no_channels_last,
        name=args.name,
        version=args.model_version,
    )
    check_run_folder(Path(args.out), args.resume, args.epochs, overwrite=args.overwrite)
    progress = not args.no_progress and rank == 0
    data = load_training_data(
        args.data,
        dataset=args.dataset,
        users=args.users,
        exclude_users=args.exclude_users,
        forg=args.forg,
        allow_exploitation=args.allow_exploitation_writers,
        allow_pickle=args.allow_pickle,
        n_jobs=args.jobs,
        progress=progress,
        canvas_size=canvas,
    )
    result = train(
        data,
        config,
        args.out,
        resume=args.resume,
        device=args.device,
        progress=progress,
        command=shlex.join(["sigver", *sys.argv[1:]]) if sys.argv[1:2] == ["train"] else "",
    )
    if rank == 0:
        best = result.best
        summary = ", ".join(
            f"{k}={best[k]:.4f}" for k in ("val_acc", "val_forg_acc", "train_acc") if k in best
        )
        print(f"best epoch {best.get('epoch')}: {summary}")
        print(f"best: {result.best_path}")
        print(f"last: {result.last_path}")
        print(f"log : {Path(args.out) / 'log.csv'}")
    return 0


#: Files whose presence means a folder already holds a training run.
RUN_FILES = ("last.pt", "best.pt", "log.csv", "log.json")


def check_run_folder(
    out: Path, resume: str | os.PathLike[str] | None, epochs: int, *, overwrite: bool
) -> None:
    """Refuse to silently overwrite a run, or to "resume" a run that has nothing left to do.

    Raises
    ------
    SigverError
        ``out`` holds a run and neither ``resume`` nor ``overwrite`` is given; or
        the ``resume`` checkpoint already reached ``epochs``.
    """
    from sigver.errors import SigverError

    existing = [name for name in RUN_FILES if (out / name).exists()]
    if existing and resume is None and not overwrite:
        raise SigverError(
            f"{out} already holds a training run ({', '.join(existing)}); continue it with "
            f"--resume {out / 'last.pt'}, or pass --overwrite to start again"
        )
    if resume is not None:
        from sigver.models.checkpoint import load_checkpoint

        state = load_checkpoint(resume).training_state or {}
        done = int(state.get("epoch", 0))
        if done >= epochs:
            raise SigverError(
                f"{resume} already finished {done} epoch(s), and --epochs is {epochs}: nothing "
                f"to resume; give --epochs {done + 1} or more to train further"
            )

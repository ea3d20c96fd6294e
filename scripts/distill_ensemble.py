#!/usr/bin/env python
"""Distil the shipped ensemble into one network of the default's cost.

The ensemble (``models/sigver-ensemble-v1.pt``: v2-v5 side by side) is the most
accurate shipped extractor but costs four forward passes per image. A *student*
SigResNet of the default's size (16-48-96-192; its body initialised from the
default v5) is trained to reproduce the ensemble's 4096 features, so that
enrollment could have most of the ensemble's accuracy at one network's cost.

Stages (each skipped when its output exists, so the job can be resumed):

1. ``synth``: the synthetic training corpus (``sigver synth --version 2 --split
   train``, seed 0: the first writers of the members' own corpus), cached on
   the synthetic canvas as ``scripts/train_v2_model.py`` does;
2. ``sigcomp``: the SigComp2011 cache; only **development writers 001-037**
   (genuine and skilled images, no labels used) join the training inputs
   (``--inputs synth`` skips it: a student that has seen no SigComp2011 image);
3. ``targets``: the ensemble's features of every training image (centre crops,
   the input enrollment uses), float16 on disk;
4. ``train``: the student regresses the targets divided by their per-dimension
   standard deviation (the per-user SVM scales each dimension, so this is the
   geometry its RBF kernel sees); AdamW, cosine schedule, 5 % of the images held
   out for validation (R^2 reported per epoch); ``last.pt`` every epoch
   (``--resume`` continues it), ``best.pt`` at the best validation loss. The
   student keeps the ensemble's RBF ``gamma`` (4096-d features).

Evaluate and ship ``best.pt`` like any trained model (``scripts/ship_model.py``).
Usage::

    python scripts/distill_ensemble.py --work runs/distill --sigcomp ../shared/data/sigcomp2011
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("distill_ensemble")


def _inputs(work: Path, *, sigcomp_dev: bool = True) -> tuple[np.ndarray, dict[str, int]]:
    """Training images (uint8, preprocessed 170x242): synthetic (+ SigComp2011 001-037)."""
    from sigver.cache import load_cache

    syn = load_cache(work / "synth.npz")
    if not sigcomp_dev:
        return syn.x, {"synth": len(syn)}
    sc = load_cache(work / "sigcomp2011.npz")
    dev = sc.select(users=sc.users_between("001", "037"))
    return np.concatenate([syn.x, dev.x]), {"synth": len(syn), "sigcomp2011 001-037": len(dev)}


def _targets(work: Path, x: np.ndarray, teacher_path: Path) -> np.ndarray:
    out = work / "targets.npy"
    if out.exists():
        t = np.load(out, allow_pickle=False)
        if len(t) != len(x):
            # Another --inputs choice (or corpus) in the same work folder: never pair
            # images with another set's targets.
            raise SystemExit(
                f"{out} holds {len(t)} targets for {len(x)} images: use another --work"
            )
        return t
    from sigver.inference import open_extractor

    teacher = open_extractor(teacher_path)
    log.info("targets: %d images through %s", len(x), teacher.model_id)
    feats = teacher.extract(x, batch_size=32, progress=True).astype(np.float16)
    tmp = out.with_suffix(".tmp.npy")
    np.save(tmp, feats, allow_pickle=False)
    tmp.replace(out)
    return feats


def train(args: argparse.Namespace, x: np.ndarray, t: np.ndarray, sizes: dict) -> Path:
    """Fit the student; returns the path of ``best.pt``."""
    import torch

    from sigver._meta import WeightsMeta
    from sigver._util import command_line, progress_bar
    from sigver.models import get_model
    from sigver.models.checkpoint import load_checkpoint, save_checkpoint
    from sigver.models.ensemble import ensemble_classifier_params
    from sigver.preprocessing import crop_center

    torch.manual_seed(args.seed)
    teacher = load_checkpoint(args.teacher)
    init = load_checkpoint(args.init)
    widths = list(init.meta.arch_config["widths"])
    student = get_model("sigresnet", widths=widths, feature_dim=t.shape[1])
    body = {k: v for k, v in init.state_dict.items() if k.startswith("conv_layers.")}
    missing, _ = student.load_state_dict(body, strict=False)
    if any(k.startswith("conv_layers.") for k in missing):
        raise SystemExit(f"--init {args.init}: its body does not fit the student")
    size = tuple(init.meta.input_size)
    xc = crop_center(x, size)
    scale = t.astype(np.float32).std(0) + 1e-3
    order = np.random.default_rng(args.seed).permutation(len(xc))
    n_val = max(64, len(xc) // 20)
    val, tr = order[:n_val], order[n_val:]
    opt = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * (len(tr) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=steps, pct_start=0.1
    )
    scale_t = torch.from_numpy(scale)
    start_epoch, best = 0, float("inf")
    last = args.work / "last.pt"
    if last.exists():
        state = load_checkpoint(last, verify=True)
        student.load_state_dict(state.state_dict)
        ts = state.training_state or {}
        opt.load_state_dict(ts["optimizer"])
        sched.load_state_dict(ts["scheduler"])
        start_epoch, best = int(ts["epoch"]) + 1, float(ts["best"])
        log.info("resumed at epoch %d (best val loss %.4f)", start_epoch + 1, best)
    meta = WeightsMeta.for_model(
        student,
        name="sigver-sigresnet-distilled",
        version=args.version,
        preprocess=dict(init.meta.preprocess),
        training_data={
            "images": int(len(xc)),
            "parts": sizes,
            "targets": f"features of {teacher.model_id} (centre crops)",
            "sources": ["synthetic v2 (seed 0)"]
            + (["sigcomp2011 001-037 (inputs only)"] if "sigcomp2011 001-037" in sizes else []),
        },
        recipe={
            "loss": "MSE to the teacher's features / per-dimension std (the SVM's scaling)",
            "teacher": teacher.model_id,
            "init": str(args.init),
            "init_model_id": init.model_id,
            "optimizer": "AdamW (weight decay 1e-4), one-cycle",
            "lr": args.lr,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "augmentation": "none (centre crops, the teacher's inputs)",
            "precision": "bfloat16 autocast (CPU)" if args.cpu_bf16 else "float32",
        },
        command=command_line(),
        classifier=dict(teacher.meta.classifier or ensemble_classifier_params(4)),
    )

    def batches(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        xb = torch.from_numpy(xc[idx].astype(np.float32) / 255.0)
        tb = torch.from_numpy(t[idx].astype(np.float32)) / scale_t
        return xb, tb

    def evaluate() -> tuple[float, float]:
        student.eval()
        sse, sst, n = 0.0, 0.0, 0
        with torch.inference_mode():
            tv = t[val].astype(np.float32) / scale
            mean = tv.mean(0)
            for s in range(0, len(val), 256):
                xb, tb = batches(val[s : s + 256])
                pred = student(xb)
                sse += float(((pred - tb) ** 2).sum())
                sst += float(((tb - torch.from_numpy(mean)) ** 2).sum())
                n += tb.numel()
        return sse / n, 1.0 - sse / sst

    def autocast() -> contextlib.AbstractContextManager[Any]:
        if args.cpu_bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    started = time.perf_counter()
    history = []
    for epoch in range(start_epoch, args.epochs):
        student.train()
        # One generator per epoch: a resumed run visits the images in the same order.
        perm = np.random.default_rng(args.seed + 1 + epoch).permutation(tr)
        n_steps = len(perm) // args.batch_size
        total = 0.0
        with progress_bar(total=n_steps, desc=f"epoch {epoch + 1}", unit="batch") as bar:
            for i in range(n_steps):
                xb, tb = batches(perm[i * args.batch_size : (i + 1) * args.batch_size])
                with autocast():
                    pred = student(xb)
                loss = torch.nn.functional.mse_loss(pred.float(), tb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item()
                bar.update(1)
        val_loss, r2 = evaluate()
        history.append(
            {"epoch": epoch + 1, "train_loss": total / n_steps, "val_loss": val_loss, "val_r2": r2}
        )
        log.info("epoch %d: train %.4f, val %.4f, val R^2 %.3f", *history[-1].values())
        epoch_meta = dataclasses.replace(
            meta,
            metrics={**history[-1], "history": history},
            training_time_s=time.perf_counter() - started,
        )
        if val_loss < best:
            best = val_loss
            save_checkpoint(args.work / "best.pt", student, epoch_meta)
        save_checkpoint(
            last,
            student,
            epoch_meta,
            training_state={
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "epoch": epoch,
                "best": best,
            },
        )
    return args.work / "best.pt"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--sigcomp", type=Path, default=REPO.parent / "shared/data/sigcomp2011")
    parser.add_argument("--teacher", type=Path, default=REPO / "models/sigver-ensemble-v1.pt")
    parser.add_argument("--init", type=Path, default=REPO / "models/sigver-sigresnet-v5.pt")
    parser.add_argument("--writers", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--version", default="6")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--cpu-bf16",
        action="store_true",
        help="bfloat16 autocast for the student's training steps (sigver train --cpu-bf16)",
    )
    parser.add_argument(
        "--inputs",
        choices=("synth+sigcomp-dev", "synth"),
        default="synth+sigcomp-dev",
        help="training images: the synthetic corpus plus SigComp2011 development writers "
        "001-037 (default, v6's recipe), or the synthetic corpus alone (a student that has "
        "seen no SigComp2011 image; pair it with SigComp-free teachers)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    sys.path.insert(0, str(REPO / "scripts"))
    import torch
    from train_v2_model import Pipeline, synth_canvas

    torch.set_num_threads(args.jobs)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    p = Pipeline(args)
    jobs = ["--jobs", str(args.jobs), "--no-progress"]
    synth = work / "synth"
    p.run(
        "synth",
        ["synth", "--version", "2", "--split", "train", "--writers", str(args.writers),
         "--genuine", "10", "--forgeries", "5", "--seed", "0", "--out", str(synth), *jobs],
        work / "synth.done",
    )  # fmt: skip
    canvas = [str(v) for v in synth_canvas(synth)] if not (work / "synth.npz").exists() else []
    p.run(
        "cache-synth",
        ["preprocess", "--dataset", "gpds", "--path", str(synth), "--out",
         str(work / "synth.npz"), "--canvas", *canvas, *jobs],
        work / "synth.npz",
    )  # fmt: skip
    sigcomp_dev = args.inputs == "synth+sigcomp-dev"
    if sigcomp_dev:
        p.run(
            "cache-sigcomp",
            ["preprocess", "--dataset", "sigcomp2011", "--path", str(args.sigcomp), "--out",
             str(work / "sigcomp2011.npz"), *jobs],
            work / "sigcomp2011.npz",
        )  # fmt: skip
    x, sizes = _inputs(work, sigcomp_dev=sigcomp_dev)
    start = time.perf_counter()
    t = _targets(work, x, args.teacher)
    p.timings["targets"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    best = train(args, x, t, sizes)
    p.timings["train"] = round(time.perf_counter() - start, 1)
    p.save_timings()
    print(f"student: {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

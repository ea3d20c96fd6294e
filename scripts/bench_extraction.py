#!/usr/bin/env python
"""Benchmark feature extraction and training throughput of the sigver architectures.

Prints, per architecture: extraction images/s at batch 1, 8, 16 and 64 (eval mode,
``torch.inference_mode``) and training images/s (forward + backward + SGD step with
a writer head, batch 32). Inputs are random 1x150x220 images: throughput does not
depend on the content. The machine, thread count and command line are printed
first so that figures can be compared and rerun::

    python scripts/bench_extraction.py
    python scripts/bench_extraction.py --arch signet_thin sigresnet --seconds 5

``--cpu-bf16`` also times the training step under bfloat16 autocast (``sigver train
--cpu-bf16``), alternating float32 and bfloat16 rounds in the same run so that the ratio
is not a drift of the machine's load; ``--arch-config`` builds the architecture as a
shipped model is built (v3: ``--arch sigresnet --arch-config '{"widths": [16, 48, 96,
192]}'``)::

    python scripts/bench_extraction.py --arch sigresnet --channels-last --cpu-bf16 \\
        --arch-config '{"widths": [16, 48, 96, 192]}'
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import sys
import time

import torch
from torch import nn

from sigver.models import available_models, get_model

#: Extraction batch sizes measured: small batches keep activations in cache.
BATCHES = (1, 8, 16, 64)


def cpu_name() -> str:
    """Best-effort CPU model name."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _rate(fn, n_images: int, seconds: float) -> float:
    """Images/s of ``fn`` (which processes ``n_images``), after one warm-up call."""
    fn()
    start = time.perf_counter()
    count = 0
    while True:
        fn()
        count += n_images
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed


def bench_arch(
    name: str,
    seconds: float,
    device: torch.device,
    channels_last: bool,
    *,
    arch_config: dict | None = None,
    bf16_rounds: int = 0,
) -> dict:
    """Measure one architecture; returns images/s figures.

    With ``bf16_rounds`` > 0, the training step is timed that many times in float32 and
    in bfloat16 autocast, alternately; ``train_b32`` and ``train_b32_bf16`` are then the
    means over the rounds.
    """
    torch.manual_seed(0)
    model = get_model(name, **(arch_config or {})).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    result: dict[str, float] = {"params_M": sum(p.numel() for p in model.parameters()) / 1e6}

    model.eval()
    for batch in BATCHES:
        x = torch.rand(batch, 1, 150, 220, device=device).contiguous(memory_format=fmt)

        def extract(x: torch.Tensor = x) -> None:
            with torch.inference_mode():
                model(x)

        result[f"extract_b{batch}"] = _rate(extract, batch, seconds)

    model.train()
    head = nn.Linear(model.feature_dim, 100).to(device)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9, nesterov=True, weight_decay=1e-4)
    x = torch.rand(32, 1, 150, 220, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 100, (32,), device=device)

    def train_step(bf16: bool = False) -> None:
        ctx = (
            torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        )
        with ctx:
            logits = head(model(x))
        loss = nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if bf16_rounds <= 0:
        result["train_b32"] = _rate(train_step, 32, seconds)
        return result
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(bf16_rounds):
        for bf16 in (False, True):
            rates[bf16].append(_rate(lambda bf16=bf16: train_step(bf16), 32, seconds))
    result["train_b32"] = sum(rates[False]) / bf16_rounds
    result["train_b32_bf16"] = sum(rates[True]) / bf16_rounds
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=available_models(), choices=available_models())
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    parser.add_argument(
        "--arch-config", type=json.loads, default=None, help="builder kwargs (JSON)"
    )
    parser.add_argument(
        "--cpu-bf16",
        action="store_true",
        help="also time the training step in bfloat16 autocast (alternating rounds)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --cpu-bf16: rounds of each")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    print("command :", shlex.join([sys.executable, *sys.argv]))
    print("platform:", platform.platform())
    print("cpu     :", cpu_name(), f"({os.cpu_count()} logical cores)")
    print("torch   :", torch.__version__, f"threads={torch.get_num_threads()}", f"device={device}")
    print("load    :", " ".join(f"{v:.2f}" for v in os.getloadavg()), "(1/5/15 min)")
    print("(ONNX Runtime side by side: python scripts/bench_inference.py)")
    print()
    header = (
        f"{'arch':<16}{'params(M)':>10}"
        + "".join(f"{'extract b' + str(b):>13}" for b in BATCHES)
        + f"{'train b32':>11}"
        + (f"{'train b32 bf16':>16}{'bf16 / fp32':>13}" if args.cpu_bf16 else "")
    )
    print(header + "   (images/s)")
    for name in args.arch:
        r = bench_arch(
            name,
            args.seconds,
            device,
            args.channels_last,
            arch_config=args.arch_config,
            bf16_rounds=args.rounds if args.cpu_bf16 else 0,
        )
        bf16 = ""
        if args.cpu_bf16:
            bf16 = f"{r['train_b32_bf16']:>16.1f}{r['train_b32_bf16'] / r['train_b32']:>12.2f}x"
        print(
            f"{name:<16}{r['params_M']:>10.2f}"
            + "".join(f"{r[f'extract_b{b}']:>13.1f}" for b in BATCHES)
            + f"{r['train_b32']:>11.1f}"
            + bf16,
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

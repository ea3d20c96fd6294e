#!/usr/bin/env python
"""Benchmark the inference backends side by side: eager torch vs ONNX Runtime.

For one checkpoint (default: the shipped model) it measures, for each backend:

1. feature extraction throughput (images/s) over a sweep of batch sizes, on
   preprocessed 170x242 probe images, each backend in a fresh process (so that
   one backend's idle threads cannot slow the other); rounds of the two backends
   alternate so that a change of machine load hits both; medians are reported;
2. in-process verification latency of one signature (``Verifier.verify`` on PNG
   bytes: decode, preprocess, extract, score, audit; and on a decoded array):
   p50, p90 and p99;
3. a cold command-line verification, ``python -m sigver verify --backend B``
   (a new process each time: interpreter start, imports, model load, one
   image), wall-clock median over runs, alternating the backends.

Machine, load average (before and after: others may share the CPU) and the
command are printed. The ONNX backend's one-time export and verification
against torch happens before timing (it is cached in the user cache folder, or
``$SIGVER_CACHE_DIR``), so the cold runs measure the steady state a user sees
from the second run on. Run::

    python scripts/bench_inference.py
    python scripts/bench_inference.py --model runs/x/best.pt --rounds 7 --cold-runs 9
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _bench import extraction_rate, verify_latencies_ms  # scripts/ is on sys.path

REPO = Path(__file__).resolve().parents[1]


def _worker(args: argparse.Namespace) -> int:
    """One backend, every batch size once: prints ``{batch: img/s}`` as JSON."""
    from sigver.inference import open_extractor, probe_images

    ext = open_extractor(args.model, backend=args.worker)
    images = probe_images(ext.preprocess_config.img_size, n=max(args.batches))
    rates = {}
    for batch in args.batches:
        ext.extract(images[:batch], batch_size=batch)  # warm-up
        rates[str(batch)] = extraction_rate(ext, images, batch, args.seconds)
    print(json.dumps(rates))
    return 0


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    """Run the three measurements and print tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint (default: the shipped model)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 16, 32, 64])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per batch size")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--repeats", type=int, default=200, help="in-process verify samples")
    parser.add_argument("--cold-runs", type=int, default=7, help="cold CLI runs per backend")
    parser.add_argument("--worker", choices=("torch", "onnx"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(args)

    from enrollment import Verifier
    from enrollment.testing import encode_png
    from sigver._util import command_line, format_machine_info, machine_info
    from sigver.inference import open_extractor, probe_images
    from sigver.synth import generate_writer

    print(f"command: {command_line()}")
    print(format_machine_info(machine_info(include_torch=True)))
    t = time.perf_counter()
    backends = {b: open_extractor(args.model, backend=b) for b in ("torch", "onnx")}
    ready = time.perf_counter() - t
    print(f"models ready in {ready:.1f} s (with the first ONNX export and check unless cached)")
    model_id = backends["torch"].model_id
    print(f"model: {model_id}")

    # 1. extraction throughput, each backend in a process of its own: in one process the
    # idle thread pool of one backend would compete with the other's.
    images = probe_images(backends["torch"].preprocess_config.img_size, n=16)
    ref = backends["torch"].extract(images)
    got = backends["onnx"].extract(images)
    rel = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
    print(f"\nfeatures agree: max relative difference onnx vs torch {rel:.1e} (16 probe images)")
    print(
        f"\n1. extraction, images/s (median of {args.rounds} rounds; a round = one fresh process "
        "per backend, the backends alternating)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    worker = [sys.executable, str(Path(__file__).resolve()), "--seconds", str(args.seconds)]
    worker += ["--batches", *map(str, args.batches)] + (
        ["--model", args.model] if args.model else []
    )
    rounds: dict[str, list[dict[str, float]]] = {"torch": [], "onnx": []}
    for _ in range(args.rounds):
        for name in rounds:
            out = subprocess.run(
                [*worker, "--worker", name], capture_output=True, text=True, env=env, check=True
            )
            rounds[name].append({k: float(v) for k, v in json.loads(out.stdout).items()})
    print(f"{'batch':>6} {'torch':>9} {'onnx':>9} {'onnx/torch':>11}")
    best = {"torch": (0.0, 0), "onnx": (0.0, 0)}
    for batch in args.batches:
        key = str(batch)
        med = {k: statistics.median(r[key] for r in v) for k, v in rounds.items()}
        ratios = [o[key] / t[key] for o, t in zip(rounds["onnx"], rounds["torch"], strict=True)]
        for k in med:
            if med[k] > best[k][0]:
                best[k] = (med[k], batch)
        print(
            f"{batch:>6} {med['torch']:>9.0f} {med['onnx']:>9.0f} "
            f"{statistics.median(ratios):>10.2f}x"
        )
    print(
        f"best: torch {best['torch'][0]:.0f} img/s at batch {best['torch'][1]}, "
        f"onnx {best['onnx'][0]:.0f} img/s at batch {best['onnx'][1]}",
        flush=True,
    )

    # 2. in-process verification latency
    work = Path(tempfile.mkdtemp(prefix="sigver-bench-inf-"))
    _, genuine, _ = generate_writer(7, 0, 13, 0)
    refs = [encode_png(g) for g in genuine[:12]]
    question = encode_png(genuine[12])
    question_file = work / "q.png"
    question_file.write_bytes(question)
    decoded = genuine[12]
    print(
        f"\n2. in-process Verifier.verify of one signature, ms ({args.repeats} samples; "
        "'png' = encoded bytes, decoded here; 'array' = an already decoded uint8 array; "
        "each includes the store lookup and the durable audit append)"
    )
    print(f"{'backend':>8} {'input':>6} {'p50':>7} {'p90':>7} {'p99':>7}")
    for name, ext in backends.items():
        if name == "torch":
            Verifier(home=work / "home", model=ext.weights.path, extractor=ext).enroll(
                "bench", refs
            )
        # A fresh Verifier, as a restarted server: it scores with the stored classifier.
        v = Verifier(home=work / "home", model=ext.weights.path, extractor=ext)
        for kind, image in (("png", question), ("array", decoded)):
            p = np.percentile(verify_latencies_ms(v, "bench", image, args.repeats), [50, 90, 99])
            print(f"{name:>8} {kind:>6} {p[0]:>7.2f} {p[1]:>7.2f} {p[2]:>7.2f}", flush=True)

    # 3. cold CLI verification
    print(f"\n3. cold `python -m sigver verify` of one image, s (median of {args.cold_runs})")
    if args.model:
        env["SIGVER_MODEL"] = str(args.model)
    cold: dict[str, list[float]] = {"torch": [], "onnx": []}
    for i in range(args.cold_runs + 1):
        for name in cold:
            cmd = [sys.executable, "-m", "sigver", "-q", "verify", "--backend", name]
            cmd += ["--home", str(work / "home"), "--user", "bench", str(question_file)]
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            elapsed = time.perf_counter() - t
            if proc.returncode not in (0, 1):
                print(proc.stderr, file=sys.stderr)
                return 1
            if i:  # the first round warms the file cache
                cold[name].append(elapsed)
    print(f"{'backend':>8} {'median':>7} {'min':>7} {'max':>7}")
    for name, vals in cold.items():
        print(f"{name:>8} {statistics.median(vals):>7.2f} {min(vals):>7.2f} {max(vals):>7.2f}")
    print(f"\nload average after: {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

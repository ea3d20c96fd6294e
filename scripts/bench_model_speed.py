#!/usr/bin/env python
"""Extraction speed of several models side by side, in one process, same backend.

Rounds alternate the models so that a change of machine load hits all of them;
the per-round figures are printed, since only ratios measured together compare
(the shared host's speed changes from day to day). Run::

    python scripts/bench_model_speed.py                       # previous default v5 vs v6, ONNX
    python scripts/bench_model_speed.py --models a.pt b.pt --backend torch --batches 1 16
    python scripts/bench_model_speed.py --models sigver-sigresnet-v5 sigver-sigresnet-v6 \
        sigver-ensemble-v1 --verify 200

``--verify N`` also times in-process ``Verifier.verify`` of one signature (a user
enrolled with 12 references of one synthetic writer; PNG bytes and a decoded
array; N calls per model and round, rounds alternating the models): p50 / p90 /
p99 in ms, pooled over rounds. ``--cue`` times each model that carries a forgery cue
twice, cue on and cue off (``Verifier(forgery_cue=...)``), over the same enrolled user::

    python scripts/bench_model_speed.py --models sigver-sigresnet-v6 --batches 1 --verify 300 --cue
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from _bench import extraction_rate, verify_latencies_ms  # scripts/ is on sys.path

from sigver._util import command_line, format_machine_info, machine_info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["sigver-sigresnet-v5", "sigver-sigresnet-v6"]
    )
    parser.add_argument("--backend", default="onnx", choices=("onnx", "torch"))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5, help="per model, batch and round")
    parser.add_argument(
        "--verify", type=int, default=0, metavar="N", help="also time N verifications per round"
    )
    parser.add_argument(
        "--cue", action="store_true", help="--verify with the forgery cue on and off, side by side"
    )
    args = parser.parse_args(argv)
    if args.cue and not args.verify:
        parser.error("--cue times verifications: give --verify N")

    from sigver.inference import open_extractor, probe_images

    print(f"command: {command_line()}")
    print(format_machine_info(machine_info(include_torch=args.backend == "torch")))
    extractors = {m: open_extractor(m, backend=args.backend) for m in args.models}
    for name, ext in extractors.items():
        print(f"{name}: {ext.model_id}")
    images = probe_images((170, 242), n=max(args.batches))
    print(f"\nimages/s, {args.backend} backend")
    print(f"{'round':>5} {'batch':>5} " + " ".join(f"{m[-24:]:>24}" for m in args.models))
    for rnd in range(args.rounds):
        for batch in args.batches:
            rates = []
            for ext in extractors.values():
                ext.extract(images[:batch], batch_size=batch)  # warm-up
                rates.append(extraction_rate(ext, images, batch, args.seconds))
            print(f"{rnd + 1:>5} {batch:>5} " + " ".join(f"{r:>24.0f}" for r in rates), flush=True)
    if args.verify:
        _verify_latency(extractors, args.verify, args.rounds, cue=args.cue)
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


def _verify_latency(
    extractors: dict, repeats: int, rounds: int, *, cue: bool = False
) -> dict[str, Any]:
    """In-process ``Verifier.verify`` p50 / p90 / p99 (ms) per model and input kind.

    ``cue``: models carrying a forgery cue are timed with it on and off (rows
    ``NAME +cue`` / ``NAME -cue``), each a fresh Verifier over the same store.
    Returns the timed Verifiers by row name.
    """
    from enrollment import Verifier
    from enrollment.testing import encode_png
    from sigver.calibration import stored_calibration
    from sigver.forgery_cue import carries_cue
    from sigver.synth import generate_writer

    work = Path(tempfile.mkdtemp(prefix="sigver-bench-models-"))
    _, genuine, _ = generate_writer(7, 0, 13, 0)
    refs = [encode_png(g) for g in genuine[:12]]
    inputs = {"png": encode_png(genuine[12]), "array": genuine[12]}
    verifiers = {}
    for i, (name, ext) in enumerate(extractors.items()):
        home = work / f"home{i}"
        Verifier(home=home, model=ext.weights.path, extractor=ext).enroll("bench", refs)
        # A fresh Verifier, as a restarted server: it scores with the stored classifier.
        if cue and carries_cue(stored_calibration(ext.weights.meta.metrics)):
            for on in (True, False):
                verifiers[f"{name} {'+' if on else '-'}cue"] = Verifier(
                    home=home, model=ext.weights.path, extractor=ext, forgery_cue=on
                )
        else:
            verifiers[name] = Verifier(home=home, model=ext.weights.path, extractor=ext)
    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for name, v in verifiers.items():
            for kind, image in inputs.items():
                samples.setdefault((name, kind), []).extend(
                    verify_latencies_ms(v, "bench", image, repeats)
                )
    print(f"\nin-process Verifier.verify, ms ({repeats} x {rounds} rounds per cell)")
    print(f"{'model':>24} {'input':>6} {'p50':>7} {'p90':>7} {'p99':>7}")
    for (name, kind), lat in samples.items():
        p = np.percentile(lat, [50, 90, 99])
        print(f"{name[-24:]:>24} {kind:>6} {p[0]:>7.2f} {p[1]:>7.2f} {p[2]:>7.2f}", flush=True)
    return verifiers


if __name__ == "__main__":
    raise SystemExit(main())

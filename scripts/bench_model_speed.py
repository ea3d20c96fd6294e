#!/usr/bin/env python
"""Extraction speed of several models side by side, in one process, same backend.

Rounds alternate the models so that a change of machine load hits all of them;
the per-round figures are printed, since only ratios measured together compare
(the shared host's speed changes from day to day). Run::

    python scripts/bench_model_speed.py                         # shipped v1 vs the default v3, ONNX
    python scripts/bench_model_speed.py --models a.pt b.pt --backend torch --batches 1 16
"""

from __future__ import annotations

import argparse
import os

from _bench import extraction_rate  # scripts/ is on sys.path

from sigver._util import command_line, format_machine_info, machine_info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["sigver-sigresnet-v1", "sigver-sigresnet-v3"]
    )
    parser.add_argument("--backend", default="onnx", choices=("onnx", "torch"))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5, help="per model, batch and round")
    args = parser.parse_args(argv)

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
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

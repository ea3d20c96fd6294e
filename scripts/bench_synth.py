"""Benchmark the synthetic corpus generator (images/s, PNG writing included).

Usage::

    python scripts/bench_synth.py                       # 100 writers x 24 + 30, jobs 1 and 2
    python scripts/bench_synth.py --writers 20 --jobs 2 # smaller / one setting
    python scripts/bench_synth.py --profile             # cProfile of a single-job run
    python scripts/bench_synth.py --version 2 --writers 40 --genuine 12 --forgeries 6 \
        --target-writers 5000                            # v2 generator, extrapolated to 5,000

Timings depend on the machine and on its load; the script prints both.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=100)
    parser.add_argument("--genuine", type=int, default=24)
    parser.add_argument("--forgeries", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--jobs", type=int, nargs="+", default=[1, 2], help="worker counts to time (default: 1 2)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one single-job run")
    parser.add_argument("--version", type=int, choices=(1, 2), default=1, help="generator")
    parser.add_argument("--scripts", help="v2 scripts, comma-separated (default all)")
    parser.add_argument(
        "--target-writers",
        type=int,
        default=0,
        help="also extrapolate the measured rate linearly to a corpus of this many writers",
    )
    args = parser.parse_args(argv)

    import os

    from sigver._util import command_line, format_machine_info
    from sigver.synth import generate_corpus

    options: dict = {}
    if args.version == 2 or args.scripts:
        scripts = tuple(args.scripts.split(",")) if args.scripts else None
        options = {"version": 2, "scripts": scripts}

    print(f"command: {command_line()}")
    print(format_machine_info())
    n_images = args.writers * (args.genuine + args.forgeries)
    print(f"corpus  : {args.writers} writers x ({args.genuine} + {args.forgeries}) = {n_images}")
    print(f"generator: v{options.get('version', 1)}, scripts {options.get('scripts') or 'all'}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")

    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            prof = cProfile.Profile()
            prof.enable()
            generate_corpus(
                tmp, args.writers, args.genuine, args.forgeries, args.seed, 1, **options
            )
            prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        return 0

    for jobs in args.jobs:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            info = generate_corpus(
                tmp,
                args.writers,
                args.genuine,
                args.forgeries,
                args.seed,
                jobs,
                progress=False,
                **options,
            )
            elapsed = time.perf_counter() - start
        rate = len(info.files) / elapsed
        print(
            f"jobs={jobs}: {len(info.files)} images in {elapsed:.1f} s = {rate:.1f} images/s "
            f"(10,000 images ~ {10_000 / rate / 60:.1f} min; "
            f"load average after {os.getloadavg()[0]:.2f})"
        )
        if args.target_writers:
            per_writer = elapsed / args.writers
            print(
                f"  extrapolated (linear, same load): {args.target_writers} writers x "
                f"({args.genuine} + {args.forgeries}) ~ {per_writer * args.target_writers / 60:.1f}"
                " min"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

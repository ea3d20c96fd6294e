"""Benchmark the synthetic corpus generator (images/s, PNG writing included).

Usage::

    python scripts/bench_synth.py                       # 100 writers x 24 + 30, jobs 1 and 2
    python scripts/bench_synth.py --writers 20 --jobs 2 # smaller / one setting
    python scripts/bench_synth.py --profile             # cProfile of a single-job run

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
    args = parser.parse_args(argv)

    from sigver._util import command_line, format_machine_info
    from sigver.synth import generate_corpus

    print(f"command: {command_line()}")
    print(format_machine_info())
    n_images = args.writers * (args.genuine + args.forgeries)
    print(f"corpus  : {args.writers} writers x ({args.genuine} + {args.forgeries}) = {n_images}")

    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            prof = cProfile.Profile()
            prof.enable()
            generate_corpus(tmp, args.writers, args.genuine, args.forgeries, args.seed, 1)
            prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        return 0

    for jobs in args.jobs:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            info = generate_corpus(
                tmp, args.writers, args.genuine, args.forgeries, args.seed, jobs, progress=False
            )
            elapsed = time.perf_counter() - start
        rate = len(info.files) / elapsed
        print(
            f"jobs={jobs}: {len(info.files)} images in {elapsed:.1f} s = {rate:.1f} images/s "
            f"(10,000 images ~ {10_000 / rate / 60:.1f} min)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

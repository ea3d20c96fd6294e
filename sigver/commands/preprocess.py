"""``sigver preprocess``: preprocess a dataset folder into a pickle-free ``.npz`` cache."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from sigver.datasets.base import LABEL_NAMES

NAME = "preprocess"
HELP = "preprocess a dataset folder into an .npz cache (x, y, yforg, user_ids, filenames)"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``preprocess`` options."""
    parser.add_argument(
        "--dataset",
        "-d",
        required=True,
        metavar="NAME",
        help="dataset reader (sigver datasets --list)",
    )
    parser.add_argument(
        "--data",
        "--path",
        "-p",
        dest="path",
        required=True,
        type=Path,
        metavar="DIR",
        help="dataset folder",
    )
    parser.add_argument(
        "--out", "-o", required=True, type=Path, metavar="FILE", help="cache file to write (.npz)"
    )
    parser.add_argument(
        "--jobs", "-j", type=int, default=2, metavar="N", help="worker processes (default: 2)"
    )
    parser.add_argument(
        "--canvas",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="canvas height and width (default: the dataset's canvas size)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Scan, preprocess and save; print a summary with the skipped files."""
    from sigver.cache import build_cache, save_cache
    from sigver.errors import DatasetError

    if args.jobs < 1:
        raise DatasetError(f"--jobs must be at least 1, got {args.jobs}")
    if args.canvas is not None and min(args.canvas) <= 0:
        raise DatasetError(f"--canvas must be two positive integers, got {args.canvas}")
    if args.out.is_dir():
        raise DatasetError(f"--out must be a file name, not a folder: {args.out}")
    cache = build_cache(
        args.dataset,
        args.path,
        canvas_size=tuple(args.canvas) if args.canvas else None,
        n_jobs=args.jobs,
        progress=not args.no_progress,
    )
    save_cache(args.out, cache)

    counts = cache.counts()
    totals = [sum(c[i] for c in counts.values()) for i in range(3)]
    print(
        f"wrote {args.out}: {len(cache)} images of {len(counts)} users "
        f"({', '.join(f'{n} {name}' for name, n in zip(LABEL_NAMES, totals, strict=True))}), "
        f"canvas {cache.canvas_size[0]}x{cache.canvas_size[1]}, "
        f"images {cache.img_size[0]}x{cache.img_size[1]}"
    )
    if cache.meta.get("unmatched"):
        print(f"{cache.meta['unmatched']} file(s) matched no naming rule and were ignored")
    skipped = cache.meta.get("skipped", [])
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s):")
        for name, reason in skipped:
            print(f"  {name}: {reason}")
    return 0

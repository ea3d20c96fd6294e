"""Benchmark signature preprocessing throughput (reading from disk included).

Measures images per second on the real ICDAR 2011 SigComp images, single
process (one core, OpenCV limited to one thread) and with
``preprocess_batch(n_jobs=2)``, for the sigcomp2011 and the CEDAR canvases.
A second set rescales the same images to CEDAR scan size (500x750, written as
PNG to a temporary folder) since the target is stated for CEDAR-size scans.

Usage::

    python scripts/bench_preprocess.py [DATA_DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from sigver._util import command_line, format_machine_info
from sigver.preprocessing import CANVAS_SIZES, preprocess_batch, preprocess_signature, read_image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "sigcomp2011"


def single(files: list[Path], canvas: tuple[int, int]) -> float:
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        start = time.perf_counter()
        for f in files:
            preprocess_signature(read_image(f), canvas)
        return len(files) / (time.perf_counter() - start)
    finally:
        cv2.setNumThreads(threads)


def parallel(files: list[Path], canvas: tuple[int, int], n_jobs: int) -> float:
    preprocess_batch(files[:64], canvas, n_jobs=n_jobs, progress=False)  # start the workers
    start = time.perf_counter()
    result = preprocess_batch(files, canvas, n_jobs=n_jobs, progress=False)
    elapsed = time.perf_counter() - start
    if result.skipped:
        print(f"  ({len(result.skipped)} skipped)")
    return len(files) / elapsed


def make_cedar_size(files: list[Path], folder: Path) -> list[Path]:
    out = []
    for i, f in enumerate(files):
        img = read_image(f)
        scale = min(500 / img.shape[0], 750 / img.shape[1])
        big = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        page = np.full((500, 750), int(np.median(img)), dtype=np.uint8)
        page[: big.shape[0], : big.shape[1]] = big
        path = folder / f"{i:04d}.png"
        cv2.imwrite(str(path), page)
        out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images")
    parser.add_argument("--repeats", type=int, default=2, help="best of N single-core runs")
    args = parser.parse_args(argv)

    files = sorted(args.data.glob("*/*.png"))
    if not files:
        print(f"no PNG images under {args.data}", file=sys.stderr)
        return 2
    if args.limit:
        files = files[: args.limit]

    print(f"command: {command_line()}")
    print(format_machine_info())
    for f in files[:64]:  # warm the page cache so the first configuration is not penalised
        f.read_bytes()

    canvases = {"sigcomp2011": CANVAS_SIZES["sigcomp2011"], "cedar": CANVAS_SIZES["cedar"]}
    print(f"\n{len(files)} sigcomp2011 images ({args.data})")
    for name, canvas in canvases.items():
        best = max(single(files, canvas) for _ in range(args.repeats))
        par = parallel(files, canvas, n_jobs=2)
        print(f"  canvas {name:12s} {canvas}: 1 core {best:7.1f} img/s | n_jobs=2 {par:7.1f} img/s")

    with tempfile.TemporaryDirectory() as tmp:
        subset = files[:: max(1, len(files) // 400)]
        cedar_files = make_cedar_size(subset, Path(tmp))
        for f in cedar_files:
            f.read_bytes()
        canvas = CANVAS_SIZES["cedar"]
        print(f"\n{len(cedar_files)} CEDAR-size scans (500x750 PNG rescaled from sigcomp2011)")
        best = max(single(cedar_files, canvas) for _ in range(args.repeats))
        par = parallel(cedar_files, canvas, n_jobs=2)
        print(
            f"  canvas cedar        {canvas}: 1 core {best:7.1f} img/s | n_jobs=2 {par:7.1f} img/s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

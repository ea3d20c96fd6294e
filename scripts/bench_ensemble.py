"""Extraction workload for timing an ensemble of shipped models against one model.

Loads the given shipped models (ONNX backend when available, as enrollment does),
then extracts ``--rounds`` x 256 random preprocessed images (170 x 242, uint8) with
every model and concatenates the features, as an ensemble of the models would. It
prints nothing: time it from outside, side by side with one model::

    farm-bench -n 3 --timeout 500 --vs "python scripts/bench_ensemble.py v5" -- \\
        python scripts/bench_ensemble.py v2 v3 v4 v5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="shipped model versions, e.g. v2 v3")
    parser.add_argument("--rounds", type=int, default=16)
    args = parser.parse_args(argv)

    from sigver.inference import open_extractor

    x = (np.random.default_rng(0).random((256, 1, 170, 242)) * 255).astype(np.uint8)
    extractors = [open_extractor(REPO / f"models/sigver-sigresnet-{v}.pt") for v in args.models]
    for ext in extractors:
        ext.extract(x[:16])  # first call builds the session: not part of the workload
    for _ in range(args.rounds):
        np.concatenate([ext.extract(x) for ext in extractors], axis=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

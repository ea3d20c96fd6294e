"""``sigver features``: cache the CNN features of a whole dataset as a FeatureSet ``.npz``.

Example::

    sigver features --data sigcomp2011.npz --out sigcomp2011.features.npz
    sigver features --model runs/signet/best.pt --data /data/sigcomp2011 \\
        --dataset sigcomp2011 --out feats.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "features"
HELP = "extract CNN features of a dataset into a feature-set .npz (for evaluate/enroll)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``features`` options."""
    from enrollment._cli import add_extraction_arguments
    from sigver.cache import add_data_arguments

    parser.add_argument(
        "--model",
        type=Path,
        metavar="CHECKPOINT",
        help="checkpoint (.pt with .sha256 sidecar, or a reference SigNet .pth); "
        "default: the shipped model",
    )
    parser.add_argument(
        "--reference-arch",
        default="signet",
        help="architecture of a reference SigNet tuple checkpoint (default signet)",
    )
    parser.add_argument(
        "--layer",
        metavar="NAME",
        help="take features at this block's output (e.g. stage3, conv5, fc1; convolutional "
        "outputs are pooled to 2x3 cells) instead of the last layer; an unknown name lists them",
    )
    add_data_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="output .npz")
    add_extraction_arguments(parser)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    """Extract and save; print a one-line summary."""
    from sigver.cache import data_from_args
    from sigver.errors import SigverError
    from sigver.features import Extractor
    from sigver.featureset import save_features
    from sigver.inference import open_extractor

    if args.batch_size is not None and args.batch_size < 1:
        raise SigverError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.out.is_dir():
        raise SigverError(f"--out must be a file name, not a folder: {args.out}")
    extractor = open_extractor(
        args.model, backend=args.backend, device=args.device, reference_arch=args.reference_arch
    )
    if args.layer is not None:
        if getattr(extractor, "backend", "torch") != "torch":
            # Intermediate layers exist on the torch path only (the ONNX export is the
            # final embedding).
            extractor = open_extractor(
                args.model, backend="torch", device=args.device, reference_arch=args.reference_arch
            )
        # An unknown name fails here, with the list of the model's layers.
        extractor = Extractor(
            extractor.model, extractor.weights, device=args.device, layer=args.layer
        )
    cache = data_from_args(args, progress=not args.no_progress)
    canvas = cache.canvas_size
    if canvas is not None and tuple(canvas) != tuple(extractor.preprocess_config.canvas_size):
        import logging

        logging.getLogger(__name__).info(
            "data were preprocessed on a %s canvas, the model expects %s",
            tuple(canvas),
            tuple(extractor.preprocess_config.canvas_size),
        )
    fs = extractor.extract_featureset(
        cache, batch_size=args.batch_size, progress=not args.no_progress, data=str(args.data)
    )
    path = save_features(args.out, fs)
    print(f"{len(fs)} x {fs.dim} features ({extractor.model_id}) -> {path}")
    return 0

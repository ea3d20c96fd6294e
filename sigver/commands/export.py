"""``sigver export``: write a model in a portable format (ONNX) for other runtimes.

Example::

    sigver export --format onnx --out sigver-sigresnet-v3.onnx     # the default model
    sigver export --model runs/signet/best.pt --out signet.onnx

The ONNX file's ``metadata_props`` carry ``sigver.checkpoint_sha256``,
``sigver.model_id``, ``sigver.preprocess`` (the preprocessing preset, JSON),
``sigver.meta`` (all checkpoint metadata, JSON) and ``sigver.input`` (the input
convention), so a program in another language can preprocess images the same
way and trace the features back to the checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "export"
HELP = "export a model to ONNX (preprocessing preset and checkpoint hash in its metadata)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``export`` options."""
    parser.add_argument(
        "--model",
        metavar="M",
        help="checkpoint path or shipped model name (default: $SIGVER_MODEL or the shipped model)",
    )
    parser.add_argument("--format", default="onnx", choices=("onnx",), help="output format")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="output file")
    parser.add_argument("--opset", type=int, metavar="N", help="ONNX opset (exporter default)")
    parser.add_argument(
        "--reference-arch",
        default="signet",
        help="architecture of a reference SigNet tuple checkpoint (default signet)",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args: argparse.Namespace) -> int:
    """Export, check the export against torch on a probe batch, print a summary."""
    import numpy as np

    from enrollment._cli import print_json
    from sigver.errors import ModelError, SigverError
    from sigver.inference import (
        AGREEMENT_RTOL,
        OnnxExtractor,
        export_onnx,
        onnxruntime_available,
        open_extractor,
        probe_images,
    )

    if args.out.is_dir():
        raise SigverError(f"--out must be a file name, not a folder: {args.out}")
    extractor = open_extractor(args.model, backend="torch", reference_arch=args.reference_arch)
    path = export_onnx(extractor, args.out, opset=args.opset)
    summary: dict[str, object] = {
        "out": str(path),
        "format": args.format,
        "model_id": extractor.model_id,
        "checkpoint_sha256": extractor.sha256,
        "bytes": path.stat().st_size,
    }
    if onnxruntime_available():
        probe = probe_images(extractor.preprocess_config.img_size, n=16)
        ref = extractor.extract(probe)
        got = OnnxExtractor(path, expected_sha256=extractor.sha256).extract(probe)
        rel = float(np.max(np.abs(got - ref)) / (np.max(np.abs(ref)) or 1.0))
        summary["max_rel_diff_vs_torch"] = rel
        if rel > AGREEMENT_RTOL:
            path.unlink(missing_ok=True)
            raise ModelError(
                f"the ONNX export disagrees with torch (max relative difference {rel:.2e} > "
                f"{AGREEMENT_RTOL:g}); nothing written"
            )
    if args.json:
        print_json(summary)
        return 0
    check = (
        f"; features match torch (max relative difference {summary['max_rel_diff_vs_torch']:.1e})"
        if "max_rel_diff_vs_torch" in summary
        else "; onnxruntime not installed, not checked against torch"
    )
    print(f"{extractor.model_id} -> {path} ({summary['bytes'] / 1e6:.1f} MB){check}")
    return 0

"""``sigver datasets``: list the dataset readers, or summarise a dataset folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sigver.datasets import LABEL_NAMES, available_readers, get_reader
from sigver.datasets.base import MAX_EXAMPLES, ScanResult
from sigver.errors import DatasetError

NAME = "datasets"
HELP = "list dataset readers, or count users and signatures of a dataset folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``datasets`` options."""
    parser.add_argument("--list", action="store_true", help="list the available readers and exit")
    parser.add_argument("--dataset", "-d", metavar="NAME", help="dataset reader (see --list)")
    parser.add_argument(
        "--data",
        "--path",
        "-p",
        dest="path",
        type=Path,
        metavar="DIR",
        help="dataset folder (or manifest for 'folder')",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args: argparse.Namespace) -> int:
    """Print the reader list or the per-user summary of a dataset."""
    if args.list:
        readers = [(name, get_reader(name).description) for name in available_readers()]
        if args.json:
            print(json.dumps([{"name": n, "description": d} for n, d in readers], indent=2))
        else:
            width = max(len(n) for n, _ in readers)
            for name, description in readers:
                print(f"{name:<{width}}  {description}")
        return 0
    if not args.dataset or args.path is None:
        raise DatasetError("datasets: give --dataset NAME and --data DIR (or --list)")
    reader = get_reader(args.dataset)
    scan = reader.scan(args.path)
    if args.json:
        print(json.dumps(summary_dict(reader.name, scan), indent=2))
    else:
        print(format_summary(reader.name, scan))
    return 0


def summary_dict(dataset: str, scan: ScanResult) -> dict:
    """JSON-ready summary of a scan: per-user counts, totals and unmatched files."""
    counts = scan.counts()
    totals = [sum(c[i] for c in counts.values()) for i in range(3)]
    return {
        "dataset": dataset,
        "path": str(scan.root),
        "n_users": len(counts),
        "n_samples": len(scan.samples),
        "totals": dict(zip(LABEL_NAMES, totals, strict=True)),
        "users": [
            {"user": user, **dict(zip(LABEL_NAMES, c, strict=True))} for user, c in counts.items()
        ],
        "unmatched": {
            "count": len(scan.unmatched),
            "examples": [scan.relative_name(p) for p in scan.unmatched[:MAX_EXAMPLES]],
        },
    }


def format_summary(dataset: str, scan: ScanResult) -> str:
    """Human-readable table: one row per user, then totals and unmatched files."""
    counts = scan.counts()
    width = max(len("user"), len("total"), *(len(u) for u in counts))
    header = f"{'user':<{width}}  {'genuine':>7}  {'skilled':>7}  {'simple':>7}"
    lines = [f"dataset {dataset} at {scan.root}", header, "-" * len(header)]
    for user, (g, s, m) in counts.items():
        lines.append(f"{user:<{width}}  {g:>7}  {s:>7}  {m:>7}")
    totals = [sum(c[i] for c in counts.values()) for i in range(3)]
    lines.append("-" * len(header))
    lines.append(f"{'total':<{width}}  {totals[0]:>7}  {totals[1]:>7}  {totals[2]:>7}")
    lines.append(f"{len(counts)} users, {len(scan.samples)} images")
    if scan.unmatched:
        examples = ", ".join(scan.relative_name(p) for p in scan.unmatched[:MAX_EXAMPLES])
        more = ", ..." if len(scan.unmatched) > MAX_EXAMPLES else ""
        lines.append(f"{len(scan.unmatched)} unmatched file(s) ignored: {examples}{more}")
    else:
        lines.append("0 unmatched files")
    return "\n".join(lines)

"""``sigver synth``: write a synthetic signature corpus in the GPDS layout."""

from __future__ import annotations

import argparse
import time

NAME = "synth"
HELP = "generate a synthetic signature corpus (GPDS layout: NNN/c-NNN-MM.png, NNN/cf-NNN-MM.png)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``synth`` options."""
    parser.add_argument("--writers", type=int, required=True, help="number of writers (>= 1)")
    parser.add_argument(
        "--genuine", type=int, default=24, help="genuine signatures per writer (default 24)"
    )
    parser.add_argument(
        "--forgeries", type=int, default=30, help="skilled forgeries per writer (default 30)"
    )
    parser.add_argument("--seed", type=int, default=0, help="corpus seed, >= 0 (default 0)")
    parser.add_argument("--out", required=True, help="output folder (created if needed)")
    parser.add_argument(
        "--jobs", type=int, default=2, help="worker processes; never changes the output (default 2)"
    )
    parser.add_argument(
        "--preview",
        metavar="SHEET.png",
        help="also draw a contact sheet of a few writers (genuine and forgeries) to this PNG",
    )
    parser.add_argument(
        "--version",
        dest="synth_version",
        type=int,
        choices=(1, 2, 3),
        default=1,
        help="generator: 1 (default) = the Latin-only v1 corpus the shipped v1 model was trained "
        "on, byte-identical; 2 = scripts, pens, papers, resolutions, forms, JPEG; 3 = 2 with "
        "forgers writing with their own pen, ink and pressure (same genuine images as 2)",
    )
    parser.add_argument(
        "--scripts",
        metavar="LIST",
        help="v2 writing systems, comma-separated, assigned round-robin to writers (implies "
        "--version 2; default all: latin,cyrillic,greek,devanagari,bengali,arabic,cjk,initials)",
    )
    parser.add_argument(
        "--split",
        choices=("all", "train", "holdout"),
        default="all",
        help="v2 styles: train leaves out each script's hold-out style, holdout uses only it "
        "(use another --seed for hold-out writers too)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Generate the corpus (and the optional preview) and print a summary."""
    from sigver.synth import SynthError, generate_corpus, preview_sheet, save_preview
    from sigver.synth.corpus import check_options

    # Validate everything before writing anything.
    for flag, value, low in (
        ("--writers", args.writers, 1),
        ("--genuine", args.genuine, 1),
        ("--forgeries", args.forgeries, 0),
        ("--seed", args.seed, 0),
        ("--jobs", args.jobs, 1),
    ):
        if value < low:
            raise SynthError(f"{flag} must be >= {low}, got {value}")
    if args.preview is not None and not str(args.preview).lower().endswith(".png"):
        raise SynthError(f"--preview must name a .png file, got {args.preview}")
    scripts = None
    if args.scripts is not None:
        scripts = tuple(s.strip() for s in args.scripts.split(",") if s.strip())
    version, scripts = check_options(args.synth_version, scripts, args.split)
    options = {} if version == 1 else {"version": version, "scripts": scripts, "split": args.split}

    start = time.perf_counter()
    info = generate_corpus(
        args.out,
        n_writers=args.writers,
        n_genuine=args.genuine,
        n_forgeries=args.forgeries,
        seed=args.seed,
        n_jobs=args.jobs,
        progress=not args.no_progress,
        **options,
    )
    elapsed = time.perf_counter() - start
    n = len(info.files)
    print(
        f"wrote {n} images ({args.writers} writers x {args.genuine} genuine + "
        f"{args.forgeries} forgeries, generator v{version}) to {info.root} in {elapsed:.1f} s "
        f"({n / max(elapsed, 1e-9):.1f} images/s)"
    )
    if args.preview is not None:
        sheet = preview_sheet(
            args.seed,
            n_writers=min(args.writers, 6),
            n_genuine=min(args.genuine, 3),
            n_forgeries=min(args.forgeries, 3),
            **options,
        )
        print(f"preview: {save_preview(args.preview, sheet)}")
    return 0

"""Draw the v2 synthetic-corpus preview sheets (one per script) for the README.

Usage::

    python scripts/make_synth_v2_previews.py                 # scripts/figures/synth_v2_<script>.png
    python scripts/make_synth_v2_previews.py --out /tmp/figs --writers 6

Each sheet shows a few writers of one script (all styles, hold-out style
included), three genuine signatures and two skilled forgeries each, exactly
as ``sigver synth --version 2 --scripts <script> --seed 0`` writes them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "figures")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from sigver.synth import preview_sheet, save_preview
    from sigver.synth.scripts import SCRIPTS

    for script in SCRIPTS:
        sheet = preview_sheet(
            args.seed,
            n_writers=args.writers,
            n_genuine=3,
            n_forgeries=2,
            cell=(100, 230),
            version=2,
            scripts=(script,),
        )
        # 32 grey levels: the sheets are committed; they look the same.
        print(save_preview(args.out / f"synth_v2_{script}.png", sheet, levels=32))
    return 0


if __name__ == "__main__":
    sys.exit(main())

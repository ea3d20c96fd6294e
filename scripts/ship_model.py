#!/usr/bin/env python
"""Turn a trained checkpoint into a shipped model: weights, background, calibration, card.

Steps (the same for every shipped model, so v1 and v2 are built alike):

1. ``export``: the checkpoint's extractor -> ``<models>/<name>-v<version>.pt``
   (float16, sha256 sidecar), with the training command, the training data and
   extra metadata (``--meta-json``: ablation figures, pipeline timings) recorded;
2. ``background``: features of development writers only (SigComp2011 001-037
   and the first ``--background-synth-writers`` synthetic writers, 12 genuine
   each) -> ``<models>/<stem>.background.npz``;
3. ``calibrate``: ``scripts/calibrate_default_model.py`` (per-user normaliser,
   calibration curve, named operating points on development writers; the
   deployed point measured on exploitation writers, reported only) and the model
   card generated from the metadata, with ``--notes`` appended.

An existing model of the same name is replaced only with ``--replace``. Usage::

    python scripts/ship_model.py --checkpoint /tmp/v2/ft_all/best.pt --version 2 \\
        --synth-cache /tmp/v2/synth.npz --sigcomp-cache /tmp/v2/sigcomp2011.npz \\
        --sigcomp ../shared/data/sigcomp2011 --models /tmp/v2/models
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("ship_model")


def build_background(
    extractor: Any,
    sigcomp_cache: Path | None,
    synth_cache: Path | None,
    *,
    synth_writers: int = 80,
    per_writer: int = 12,
) -> Any:
    """Background negatives from development writers only, as a FeatureSet.

    SigComp2011 writers 001-037 (all their genuine signatures) and the first
    ``synth_writers`` synthetic writers (``per_writer`` genuine each: plenty for
    negatives, and it keeps the file small).
    """
    from sigver.cache import load_cache
    from sigver.featureset import FeatureSet

    parts = []
    if sigcomp_cache is not None:
        sc = load_cache(sigcomp_cache)
        parts.append(("sigcomp2011", sc.select(users=sc.users_between("001", "037"), labels=(0,))))
    if synth_cache is not None and synth_writers > 0:  # 0: SigComp2011 writers only
        syn = load_cache(synth_cache)
        syn = syn.select(users=syn.user_ids[:synth_writers].tolist(), labels=(0,))
        sel = np.concatenate([np.flatnonzero(syn.y == u)[:per_writer] for u in np.unique(syn.y)])
        parts.append(("synth", syn.subset(np.sort(sel))))
    feats, ys, users, names = [], [], [], []
    for tag, cache in parts:
        offset = len(users)
        present = [u for u in cache.user_ids.tolist() if np.any(cache.users == u)]
        index = {u: offset + i for i, u in enumerate(present)}
        users += [f"{tag}/{u}" for u in present]
        feats.append(extractor.extract(cache))
        ys.append(np.array([index[u] for u in cache.users.tolist()]))
        names += [f"{tag}/{f}" for f in cache.filenames.tolist()]
    return FeatureSet(
        features=np.concatenate(feats),
        y=np.concatenate(ys),
        yforg=np.zeros(len(names), dtype=np.int8),
        user_ids=np.array(users),
        filenames=np.array(names),
        meta={**extractor.describe(), "purpose": "background negatives (development writers only)"},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="trained best.pt")
    parser.add_argument("--name", default="sigver-sigresnet")
    parser.add_argument("--version", required=True)
    parser.add_argument("--models", type=Path, required=True, help="output folder")
    parser.add_argument("--replace", action="store_true", help="overwrite an existing model")
    parser.add_argument("--synth-cache", type=Path, required=True)
    parser.add_argument("--sigcomp-cache", type=Path, help="SigComp2011 cache (model canvas)")
    parser.add_argument("--sigcomp", type=Path, help="SigComp2011 folder (calibration)")
    parser.add_argument("--background-synth-writers", type=int, default=80)
    parser.add_argument("--command", default="", help="the command that trained the model")
    parser.add_argument("--training-data", default="{}", help="JSON merged into training_data")
    parser.add_argument("--meta-json", type=Path, help="JSON object merged into meta.extra")
    parser.add_argument("--notes", type=Path, help="Markdown appended to the model card")
    parser.add_argument(
        "--normalization",
        help="per-user score normaliser (default: calibrate_default_model.py's)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from sigver.features import Extractor
    from sigver.featureset import load_features, save_features
    from sigver.models.card import write_model_card
    from sigver.models.checkpoint import load_checkpoint, save_checkpoint

    out = args.models / f"{args.name}-v{args.version}.pt"
    if out.exists() and not args.replace:
        parser.error(f"{out} exists; pass --replace to overwrite it")
    args.models.mkdir(parents=True, exist_ok=True)
    best = load_checkpoint(args.checkpoint)
    extra = {
        **best.meta.extra,
        "machine": f"{platform.platform()}, {platform.processor() or platform.machine()}",
    }
    training_data = {**best.meta.training_data, **json.loads(args.training_data)}
    init = best.meta.recipe.get("init")
    if init and Path(init).is_file():
        # A fine-tuned model: the card must show what the features were pre-trained on.
        base = load_checkpoint(init)
        recipe = base.meta.recipe
        training_data["pretrained_on"] = {
            "model_id": base.model_id,
            "sources": base.meta.training_data.get("sources"),
            "writers": base.meta.training_data.get("writers"),
            "images": base.meta.training_data.get("images"),
            "recipe": {k: recipe.get(k) for k in ("epochs", "lr", "lr_schedule", "loss", "forg")},
            "training_time_s": round(float(base.meta.training_time_s or 0.0), 1),
        }
    if args.meta_json is not None:
        extra.update(json.loads(args.meta_json.read_text()))
    meta = dataclasses.replace(
        best.meta,
        name=args.name,
        version=str(args.version),
        command=args.command or best.meta.command,
        training_data=training_data,
        extra=extra,
    )
    save_checkpoint(out, best.state_dict, meta, half=True)
    ext = Extractor.from_checkpoint(out)
    background = build_background(
        ext, args.sigcomp_cache, args.synth_cache, synth_writers=args.background_synth_writers
    )
    bg = save_features(out.with_name(out.stem + ".background.npz"), background)
    load_features(bg)  # what was written reads back
    log.info(
        "background: %s (%d signatures, %d writers)", bg, len(background), len(background.user_ids)
    )
    notes = (
        f"Background negatives: `{bg.name}` ({len(background)} genuine signatures of "
        f"{len(background.user_ids)} development writers, {background.dim}-d)."
    )
    if args.notes is not None:
        notes += "\n\n" + args.notes.read_text(encoding="utf-8")
    # The card is written first with the notes; the calibration then prepends its
    # own report and regenerates the card with the calibration-curve plot.
    write_model_card(out.with_suffix(".md"), load_checkpoint(out), notes=notes)
    if args.sigcomp is not None:
        sys.path.insert(0, str(REPO / "scripts"))
        from calibrate_default_model import calibrate_model

        calibrate_model(out, args.sigcomp, normalization=args.normalization)
    final = load_checkpoint(out)
    print(f"shipped {out} ({out.stat().st_size / 1e6:.1f} MB, model id {final.model_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

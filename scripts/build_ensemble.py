#!/usr/bin/env python
"""Build a shipped ensemble model from shipped members: weights, background, calibration, card.

An ensemble (:mod:`sigver.models.ensemble`) is assembled, not trained:

1. the members' checkpoints are loaded (sha256-verified) and must share one
   preprocessing preset; their weights go unchanged into one checkpoint
   ``<models>/<name>-v<version>.pt`` (float16, as the members are stored; sha256
   sidecar), whose metadata lists the members (model ids, training data) and
   carries the ensemble's SVM ``gamma`` (``WeightsMeta.classifier``);
2. the background set is the members' shipped backgrounds joined side by side
   (:func:`sigver.featureset.join_features`; refused unless they hold the same
   images in the same order), which is what the ensemble extracts from those
   images since its forward pass is the members' side by side;
3. ``scripts/calibrate_default_model.py`` calibrates the operating points on the
   SigComp2011 development writers 001-037 through the enrollment code path,
   reports the deployed point on 038-069, and writes the model card.

Usage::

    python scripts/build_ensemble.py --sigcomp ../shared/data/sigcomp2011 \\
        [--members models/sigver-sigresnet-v2.pt ... ] [--version 1] [--replace]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import platform
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: Every shipped extractor of the default's cost class (SigResNet 16-48-96-192), the
#: rule of scripts/ensemble_experiment.py.
DEFAULT_MEMBERS = tuple(REPO / f"models/sigver-sigresnet-v{v}.pt" for v in (2, 3, 4, 5))
log = logging.getLogger("build_ensemble")


def _member_summary(w: Any) -> str:
    """One line on what a member was trained on (its card has the rest)."""
    td = w.meta.training_data
    pre = td.get("pretrained_on") or {}
    text = f"{w.model_id}"
    if pre:
        text += f": pre-trained on {pre.get('writers')} writers ({pre.get('images')} images)"
    sources = ", ".join(
        f"{s.get('dataset')} {s.get('first_writer')}-{s.get('last_writer')}"
        for s in td.get("sources") or []
        if isinstance(s, dict)
    )
    if sources:
        text += f", {'fine-tuned' if pre else 'trained'} on {sources} ({td.get('images')} images)"
    return text


def research_metrics(out: Path, sigcomp: Path, jobs: int) -> dict[str, float]:
    """SigComp2011-dev protocol figures of the built model (a-posteriori EERs, in [0, 1])."""
    from sigver.cache import load_signatures
    from sigver.inference import open_extractor

    ext = open_extractor(out)
    cache = load_signatures("sigcomp2011", sigcomp, n_jobs=jobs, progress=False)
    fs = ext.extract_featureset(cache, progress=False, data=str(sigcomp))
    summary = sigcomp_dev_summary(fs, jobs)
    return {f"sigcomp2011-dev {k}": round(v, 6) for k, v in summary.items()}


def sigcomp_dev_summary(fs: Any, jobs: int, params: Any = None) -> dict[str, float]:
    """Fold means of the ``sigcomp2011-dev`` protocol with the SVM the features' model asks
    for (or ``params``)."""
    from sigver.evaluation import SUMMARY_METRICS, ClassifierConfig, evaluate
    from sigver.protocol import get_preset

    cfg = ClassifierConfig.for_features(
        fs.meta if params is None else {"classifier_params": params}
    )
    result = evaluate(fs, get_preset("sigcomp2011-dev"), cfg, n_jobs=jobs, progress=False)
    return {k: float(result.summary[k]["mean"]) for k in SUMMARY_METRICS}


def build_checkpoint(members: list[Path], out: Path, *, name: str, version: str) -> str:
    """Write the ensemble checkpoint of ``members``; returns its sha256.

    Raises
    ------
    SystemExit
        If the members disagree on preprocessing.
    """
    import torch

    from sigver._meta import WeightsMeta
    from sigver._util import command_line
    from sigver.models.checkpoint import load_checkpoint, save_checkpoint
    from sigver.models.ensemble import SigEnsemble, ensemble_classifier_params

    loaded = [load_checkpoint(p) for p in members]
    presets = {repr(sorted(w.meta.preprocess.items())) for w in loaded}
    if len(presets) != 1:
        raise SystemExit(
            "the members use different preprocessing presets; one input cannot feed them all"
        )
    model = SigEnsemble(
        members=[{"arch": w.meta.arch, "arch_config": w.meta.arch_config} for w in loaded]
    )
    state: dict[str, torch.Tensor] = {}
    for i, w in enumerate(loaded):
        state.update({f"members.{i}.{k}": v for k, v in w.state_dict.items()})
    model.load_state_dict(state, strict=True)  # the layout fits, or fail here
    described = [
        {
            "model_id": w.model_id,
            "file": p.name,
            "sha256": w.sha256,
            "arch": w.meta.arch,
            "arch_config": w.meta.arch_config,
            "training_data": w.meta.training_data,
        }
        for p, w in zip(members, loaded, strict=True)
    ]
    meta = WeightsMeta.for_model(
        model,
        name=name,
        version=str(version),
        preprocess=dict(loaded[0].meta.preprocess),
        training_data={f"member {i + 1}": _member_summary(w) for i, w in enumerate(loaded)},
        recipe={
            "ensemble_of": [d["model_id"] for d in described],
            "features": "the members' final features concatenated, in this order",
            "training": "none: the members' weights, unchanged (see their cards)",
            "classifier": "RBF gamma = 2^-11 / number of members (unit-variance dimensions)",
        },
        command=command_line(),
        classifier=ensemble_classifier_params(len(loaded)),
        extra={
            "members": described,
            "machine": f"{platform.platform()}, {platform.processor() or platform.machine()}",
        },
    )
    # The members are stored as float16 already, so half=True keeps them bit-identical.
    return save_checkpoint(out, model, meta, half=True)


def build_background(members: list[Path], out: Path) -> Path:
    """Join the members' shipped backgrounds into the ensemble's, checked against its extractor."""
    from sigver.features import Extractor, default_background_path
    from sigver.featureset import join_features, load_features, save_features

    ext = Extractor.from_checkpoint(out)
    parts = [load_features(default_background_path(p)) for p in members]
    background = join_features(
        parts,
        meta={
            **ext.describe(),
            "purpose": "background negatives (development writers only)",
            "joined_from": [p.meta.get("model_id") for p in parts],
        },
    )
    if background.dim != ext.feature_dim:
        raise SystemExit(
            f"background has {background.dim} features, the ensemble {ext.feature_dim}"
        )
    return save_features(default_background_path(out), background)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=Path, nargs="+", default=list(DEFAULT_MEMBERS))
    parser.add_argument("--name", default="sigver-ensemble")
    parser.add_argument("--version", default="1")
    parser.add_argument("--models", type=Path, default=REPO / "models", help="output folder")
    parser.add_argument("--replace", action="store_true", help="overwrite an existing model")
    parser.add_argument("--sigcomp", type=Path, help="SigComp2011 folder (calibration)")
    parser.add_argument("--notes", type=Path, help="Markdown appended to the model card")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from sigver.featureset import load_features
    from sigver.models.card import write_model_card
    from sigver.models.checkpoint import load_checkpoint, save_checkpoint

    out = args.models / f"{args.name}-v{args.version}.pt"
    if out.exists() and not args.replace:
        parser.error(f"{out} exists; pass --replace to overwrite it")
    if len(args.members) < 2:
        parser.error("an ensemble needs at least 2 --members")
    args.models.mkdir(parents=True, exist_ok=True)
    digest = build_checkpoint(args.members, out, name=args.name, version=args.version)
    log.info("wrote %s (sha256 %s)", out, digest[:12])
    if args.sigcomp is not None:
        # Research figures (sigcomp2011-dev: 5 references, 10 folds) go into the metadata.
        metrics = research_metrics(out, args.sigcomp, args.jobs)
        log.info("research protocol: %s", metrics)
        built = load_checkpoint(out)
        meta = dataclasses.replace(built.meta, metrics={**built.meta.metrics, **metrics})
        save_checkpoint(out, built.state_dict, meta, half=True)
    bg_path = build_background(args.members, out)
    background = load_features(bg_path)  # what was written reads back
    log.info("background: %s (%d signatures, %d-d)", bg_path, len(background), background.dim)
    members = ", ".join(f"`{p.name}`" for p in args.members)
    notes = (
        f"An ensemble of {len(args.members)} shipped extractors ({members}): their final "
        f"features concatenated ({background.dim}-d), weights unchanged; per-user SVM with RBF "
        f"gamma = 2^-11 / {len(args.members)}. Background negatives: `{bg_path.name}` "
        f"({len(background)} genuine signatures of {len(background.user_ids)} development "
        "writers), the members' shipped backgrounds joined side by side."
    )
    if args.notes is not None:
        notes += "\n\n" + args.notes.read_text(encoding="utf-8")
    write_model_card(out.with_suffix(".md"), load_checkpoint(out), notes=notes)
    if args.sigcomp is not None:
        sys.path.insert(0, str(REPO / "scripts"))
        from calibrate_default_model import calibrate_model

        calibrate_model(out, args.sigcomp, jobs=args.jobs)
    final = load_checkpoint(out)
    print(f"built {out} ({out.stat().st_size / 1e6:.1f} MB, model id {final.model_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

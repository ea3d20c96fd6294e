"""Do the shipped extractors together beat each one alone? Feature concatenation on SigComp2011-dev.

Every shipped SigResNet was trained on a different synthetic corpus or recipe, so
their errors need not coincide. This script concatenates the features of several
shipped models (each extracted with its own checkpoint, on the model's canvas, as
enrollment does) and runs:

``research``
    The ``sigcomp2011-dev`` protocol of ``scripts/reproduce_sigcomp_table.py`` (5
    references, 10 folds, seed 1234, negatives: development writers 001-037). The
    RBF kernel's ``gamma`` is divided by the number of models concatenated: after
    the per-dimension scaling, squared distances grow with the dimension, so
    ``2^-11 / k`` keeps the kernel width of one 1024-d model.
``deployed``
    The deployment simulation of ``sigver evaluate --negatives model``
    (:func:`sigver.evaluation.simulate_deployment`: every exploitation user enrolled
    as ``Verifier.enroll`` enrolls, background + the other users' references,
    ``loo-lcb=0`` normalisation), the ``balanced`` threshold calibrated on
    development writers 001-037 with :func:`sigver.calibration.calibrate_deployment`
    and applied unchanged to 038-069. The background of a concatenation is the
    concatenation of the members' shipped backgrounds, which holds only when they
    were extracted from the same images in the same order (checked; v1's differs,
    so v1 takes part in the research rows only).

The members of the candidate ensemble are fixed by a rule, not by these figures:
*every shipped extractor of the default's cost class* (SigResNet 16-48-96-192,
0.131 GFLOP per image: v2, v3, v4, v5). v1 (0.283 GFLOP) is left out for speed.
``--all-subsets`` prints every other subset, for information only.

Usage::

    python scripts/ensemble_experiment.py --sigcomp ../shared/data/sigcomp2011 --out runs/ensemble
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: The candidate ensemble (see the module docstring for the rule that fixes it).
MEMBERS = ("v2", "v3", "v4", "v5")


def concat_featuresets(parts: list[Any], name: str) -> Any:
    """The parts' features side by side (:func:`sigver.featureset.join_features`)."""
    from sigver.featureset import join_features

    return join_features(parts, meta={**parts[0].meta, "model_id": name} if parts else None)


def _params(k: int) -> dict[str, Any]:
    """Enrollment's SVM parameters with an ensemble's ``gamma`` for ``k`` models joined."""
    from sigver.models.ensemble import ensemble_classifier_params
    from sigver.usermodel import DEFAULT_CLASSIFIER_PARAMS

    return {**DEFAULT_CLASSIFIER_PARAMS, **ensemble_classifier_params(k)}


def _research(fs: Any, k: int, jobs: int) -> dict[str, float]:
    from build_ensemble import sigcomp_dev_summary  # scripts/ is on sys.path

    summary = sigcomp_dev_summary(fs, jobs, params=_params(k))
    return {key: 100 * summary[key] for key in ("EER_global", "EER_user")}


def _deployed(fs: Any, background: Any, k: int, jobs: int) -> dict[str, float]:
    from sigver.calibration import calibrate_deployment
    from sigver.evaluation import simulate_deployment
    from sigver.protocol import get_preset

    preset = get_preset("sigcomp2011-dev")
    params = _params(k)
    common = {"background": background, "dataset": "sigcomp2011", "normalization": "loo-lcb=0"}
    cal = calibrate_deployment(fs, users=preset.dev_users, params=params, n_jobs=jobs, **common)
    run = simulate_deployment(
        fs, users=preset.exp_users, folds=10, params=params, n_jobs=jobs, progress=False, **common
    )
    res = run.result(threshold=cal.threshold)
    out = {key: 100 * res.summary[key]["mean"] for key in ("EER_global", "EER_user")}
    out.update({k2: 100 * v["mean"] for k2, v in res.fixed_threshold["summary"].items()})
    out["threshold"] = cal.threshold
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigcomp", type=Path, default=REPO.parent / "shared/data/sigcomp2011")
    parser.add_argument("--out", type=Path, default=REPO / "runs/ensemble")
    parser.add_argument("--models", nargs="+", default=["v1", *MEMBERS])
    parser.add_argument(
        "--all-subsets",
        action="store_true",
        help="every subset of --models (information only; slow)",
    )
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    start = time.perf_counter()

    from sigver._util import atomic_write, command_line, machine_info
    from sigver.cache import load_signatures
    from sigver.errors import DatasetError
    from sigver.features import Extractor
    from sigver.featureset import load_features

    feats, backgrounds, caches = {}, {}, {}
    for v in args.models:
        path = REPO / f"models/sigver-sigresnet-{v}.pt"
        ext = Extractor.from_checkpoint(path)
        canvas = tuple(ext.preprocess_config.canvas_size)
        if canvas not in caches:
            caches[canvas] = load_signatures(
                "sigcomp2011", args.sigcomp, n_jobs=args.jobs, canvas_size=canvas
            )
        feats[v] = ext.extract_featureset(caches[canvas])
        backgrounds[v] = load_features(path.with_name(f"{path.stem}.background.npz"))
        print(f"features of {v}: {ext.model_id}", flush=True)

    lines = [
        "| models | research EER global / user | deployed T | deployed FRR | FAR skilled | "
        "FAR random | deployed EER global / user (a-post.) |",
        "|---|---|---|---|---|---|---|",
    ]
    combos = [(v,) for v in args.models]
    if args.all_subsets:
        combos += [
            c
            for k in range(2, len(args.models) + 1)
            for c in itertools.combinations(args.models, k)
        ]
    else:
        combos += [c for c in (MEMBERS, tuple(args.models)) if len(c) > 1]
        combos = list(dict.fromkeys(combos))
    for combo in combos:
        name = "+".join(combo)
        fs = concat_featuresets([feats[v] for v in combo], name)
        r = _research(fs, len(combo), args.jobs)
        try:
            bg = concat_featuresets([backgrounds[v] for v in combo], name)
        except DatasetError:
            bg = None
        cells = f"{r['EER_global']:.2f} / {r['EER_user']:.2f}"
        if bg is None:
            lines.append(f"| {name} | {cells} | - | - | - | - | (backgrounds differ) |")
        else:
            d = _deployed(fs, bg, len(combo), args.jobs)
            lines.append(
                f"| {'**' + name + '**' if combo == MEMBERS else name} | {cells} | "
                f"{d['threshold']:.3f} | {d['FRR']:.2f} | {d['FAR_skilled']:.2f} | "
                f"{d['FAR_random']:.2f} | {d['EER_global']:.2f} / {d['EER_user']:.2f} |"
            )
        print(lines[-1], flush=True)
    info = machine_info()
    text = "\n".join(lines) + (
        f"\n\nSigComp2011-dev, 5 references, 10 folds, seed 1234; EERs a-posteriori, rates in %, "
        f"mean over folds. gamma = 2^-11 / (number of models). Deployed: loo-lcb=0, `balanced` "
        f"calibrated on 001-037 (5 folds), applied to 038-069. "
        f"{time.perf_counter() - start:.0f} s on {info.get('cpu', '?')}.\n"
        f"Command: `{command_line()}`\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "ensemble.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

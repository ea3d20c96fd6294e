"""Does a writer-independent feature transform put users on one scale? (issue 10, exploration).

The gap EER_global - EER_user that the default model (v3) leaves is "in the features"
(``gap_sources.py``: no statistic of a user's references explains where that user's
threshold sits; v6's features leave less of it). Speaker verification aligns speakers'
scores partly in feature space, before any score normalisation: length normalisation and
within-class covariance normalisation (WCCN) make the variation *within* a speaker the
same in every direction, so one distance means the same for everyone. This script asks
whether the same transforms, applied to phi before every per-user SVM (background and
population alike), shrink the gap.

- ``l2``: each feature vector divided by its Euclidean norm.
- ``wccn``: ``x -> W x`` with ``W = (S_w + s * tr(S_w) / d * I)^(-1/2)``, ``S_w`` the
  within-writer covariance of genuine signatures of ``--fit-synthetic`` synthetic writers
  in the generator's *training* styles (seed 5), shrunk by ``s`` (``--shrink``).
- ``l2 + wccn``: both, in that order.

Read on two populations that nothing here is fitted on: SigComp2011 development writers
001-037 and ``--select-synthetic`` synthetic hold-out-style writers (seed 7), each
enrolled as ``Verifier.enroll`` enrolls (``simulate_deployment``: the model's background,
transformed the same way; 5 references, 10 folds, seed 1234), with raw scores and with
the model's normaliser, no forgery cue. **It reads no exploitation writer (038-069) and
no synthetic-b writer, and it chooses nothing**: what it shows can only motivate a plan,
committed before any held-out check.

Usage (reuses ``pair_cue.py``'s feature caches in ``--work``)::

    python scripts/feature_whitening.py --work runs/fr-v3s --out runs/whitening-v3
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forgery_realism import _features, fold_eers, synth_corpus  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("feature_whitening")
TRANSFORMS = ("none", "l2", "wccn", "l2 + wccn")


def l2(x: np.ndarray) -> np.ndarray:
    """Rows divided by their Euclidean norm (a zero row stays zero)."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def within_covariance(x: np.ndarray, writers: np.ndarray) -> np.ndarray:
    """Pooled within-writer covariance: every row minus its writer's mean, ``(d, d)``."""
    centred = np.empty_like(x, dtype=np.float64)
    for w in np.unique(writers):
        rows = writers == w
        centred[rows] = x[rows] - x[rows].mean(axis=0)
    return centred.T @ centred / max(len(x) - len(np.unique(writers)), 1)


def wccn_matrix(x: np.ndarray, writers: np.ndarray, shrink: float) -> np.ndarray:
    """``(S_w + shrink * tr(S_w) / d * I)^(-1/2)``, symmetric.

    Raises
    ------
    ValueError
        ``shrink`` not positive (the within-writer covariance of a few hundred
        signatures in 1024 dimensions is singular).
    """
    if not shrink > 0:
        raise ValueError("shrink must be > 0")
    s = within_covariance(np.asarray(x, np.float64), np.asarray(writers))
    d = s.shape[0]
    s = s + shrink * np.trace(s) / d * np.eye(d)
    vals, vecs = np.linalg.eigh(s)
    return (vecs / np.sqrt(vals)) @ vecs.T


def transform(name: str, x: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """``x`` under the transform ``name`` (``w``: the WCCN matrix, fitted on the same kind
    of input: after ``l2`` for ``l2 + wccn``)."""
    x = np.asarray(x, np.float64)
    if "l2" in name:
        x = l2(x)
    if "wccn" in name:
        x = x @ w
    return x


def _genuine(fs: Any) -> tuple[np.ndarray, np.ndarray]:
    rows = fs.yforg == 0
    return np.asarray(fs.features, np.float64)[rows], np.asarray(fs.user_ids)[fs.y[rows]]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sigver.calibration import _resolve_users, stored_calibration
    from sigver.evaluation import simulate_deployment
    from sigver.features import default_background_path, default_model_path
    from sigver.featureset import load_features
    from sigver.models.checkpoint import load_checkpoint

    model = args.model or default_model_path()
    tag = f"{model.parent.name}-{model.stem}"
    real = _features(
        model,
        ["--data", str(args.sigcomp), "--dataset", "sigcomp2011"],
        args.work / f"sigcomp-{tag}.features.npz",
    )
    npz = synth_corpus(
        args.work, args.fit_synthetic, args.jobs, split="train", seed=5, name="synth-train"
    )
    fit = _features(model, ["--data", str(npz)], args.work / f"synth-train-{tag}.features.npz")
    npz = synth_corpus(args.work, args.select_synthetic, args.jobs, seed=7, name="synth-select")
    select = _features(model, ["--data", str(npz)], args.work / f"synth-select-{tag}.features.npz")
    background = load_features(default_background_path(model))
    norm = stored_calibration(load_checkpoint(model).meta.metrics)["normalization"]
    pops = {
        "SigComp 001-037": (real, tuple(_resolve_users(real, "001-037")), "sigcomp2011"),
        "synthetic (seed 7)": (select, "all", "synthetic-holdout"),
    }
    xg, wg = _genuine(fit)
    out: dict[str, Any] = {"normalization": norm, "shrink": args.shrink, "rows": {}}
    for name in TRANSFORMS:
        w = None
        if "wccn" in name:
            w = wccn_matrix(l2(xg) if "l2" in name else xg, wg, args.shrink)
        bg = replace(background, features=transform(name, background.features, w))
        rows = {}
        for pop, (fs, users, dataset) in pops.items():
            t0 = time.perf_counter()
            sim = simulate_deployment(
                replace(fs, features=transform(name, fs.features, w)),
                users=users,
                background=bg,
                dataset=dataset,
                refs=5,
                folds=10,
                seed=1234,
                normalization=norm,
                n_jobs=args.jobs,
                progress=False,
            )
            raw, normed = fold_eers(sim.scores("none")), fold_eers(sim.scores(norm))
            rows[pop] = {"raw": raw, norm: normed}
            log.info("%s, %s: %.0f s", name, pop, time.perf_counter() - t0)
        out["rows"][name] = rows
    return out


def format_report(out: dict[str, Any], elapsed: float) -> str:
    norm = out["normalization"]
    lines = [
        f"EER_global / EER_user (gap) in %, deployment simulation, no forgery cue; normaliser "
        f"`{norm}`; WCCN shrink {out['shrink']}:",
        "",
        "| transform | population | raw | raw gap | "
        f"{norm} | {norm} gap | gap / raw gap of `none` |",
        "|---|---|---|---|---|---|---|",
    ]
    base = {pop: r["raw"] for pop, r in out["rows"]["none"].items()}
    for name, rows in out["rows"].items():
        for pop, r in rows.items():
            a, b = r["raw"], r[norm]
            ga, gb = a["EER_global"] - a["EER_user"], b["EER_global"] - b["EER_user"]
            g0 = base[pop]["EER_global"] - base[pop]["EER_user"]
            lines.append(
                f"| {name} | {pop} | {a['EER_global']:.2f} / {a['EER_user']:.2f} | {ga:.2f} | "
                f"{b['EER_global']:.2f} / {b['EER_user']:.2f} | {gb:.2f} | {gb / g0:.2f} |"
            )
    lines += ["", f"{elapsed:.0f} s"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="checkpoint (default: shipped)")
    parser.add_argument("--sigcomp", type=Path, default=REPO.parent / "shared/data/sigcomp2011")
    parser.add_argument("--work", type=Path, default=REPO / "runs/forgery-realism")
    parser.add_argument("--out", type=Path, default=REPO / "runs/whitening")
    parser.add_argument("--fit-synthetic", type=int, default=96, metavar="N")
    parser.add_argument("--select-synthetic", type=int, default=48, metavar="N")
    parser.add_argument("--shrink", type=float, default=0.1)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    out = run(args)
    report = format_report(out, time.perf_counter() - start)
    print(report)
    (args.out / "whitening.md").write_text(report)
    (args.out / "whitening.json").write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

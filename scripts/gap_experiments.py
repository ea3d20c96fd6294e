"""Can genuine-only enrollment data close the EER_global - EER_user gap? Two more attempts.

``scripts/threshold_transfer.py`` showed that the per-user affine normalisers of
:mod:`sigver.normalization` keep deployed error rates where they were calibrated,
but narrow the gap between the pooled global-threshold EER and the user-threshold
EER only a little. The user-threshold EER is chosen a-posteriori with each user's
*skilled forgeries*; a normaliser can only close the gap by predicting, per user,
where that threshold lies. This script tries two predictors that need no forgery of
the user, and prints how much of the gap each closes:

``ridge(loo)`` / ``ridge(all)``
    A ridge regression from enrollment statistics to the user's a-posteriori EER
    threshold, fitted on the *calibration* population (whose forgeries may be used
    there) and applied unchanged to the application population. ``loo``: mean and
    standard deviation of the leave-one-out reference scores; ``all`` adds their
    minimum, the mean, standard deviation, 99th percentile and maximum of the cohort
    scores, and the mean distance between the reference features.
``pseudo-two-point`` / ``pseudo-shift``
    Pseudo-forgeries made from the user's own references: each preprocessed
    reference is warped ``--pseudo`` times (random rotation, shear, horizontal scale,
    a smooth random displacement field of ``--amplitude`` pixels, thinner or thicker
    strokes), scored by the user's deployed classifier, and their mean score ``p``
    used as the impostor anchor: ``(s - p) / (loo_mean - p)`` (two-point) or the shift
    ``s - (3 loo_mean + p) / 4``.

Reference rows: ``none`` (raw scores), ``loo-lcb=0.5`` (the product's normaliser)
and ``oracle shift`` (each user's own a-posteriori threshold subtracted: the bound
that a perfect per-user shift reaches, never available in deployment).

A second table asks whether *more genuine data* would do it
(:func:`more_genuine_rows`): half of each user's test genuines act as extra genuine
signatures collected at enrollment, and the other half is scored.

Populations, protocol and directions are those of ``threshold_transfer.py``: every
user enrolled as ``Verifier.enroll`` enrolls (``sigver.evaluation.simulate_deployment``),
5 references, 10 folds, seed 1234; EERs a-posteriori on the application population.
Usage::

    python scripts/gap_experiments.py --sigcomp ../shared/data/sigcomp2011 --out runs/gap
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from threshold_transfer import HELD_OUT, _caches, _users, add_corpus_arguments  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def warp(img: np.ndarray, n: int, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` random warps of one preprocessed image (ink high on 0), uint8 (n, H, W)."""
    import cv2

    h, w = img.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out = np.empty((n, h, w), dtype=np.uint8)
    for k in range(n):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-4, 4), 1.0)
        m[0, :2] *= rng.uniform(0.92, 1.08)
        m[0, 1] += rng.uniform(-0.15, 0.15)
        inv = cv2.invertAffineTransform(m)
        field = []
        for _ in range(2):
            d = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 10)
            field.append(d * (amplitude / (d.std() + 1e-9)))
        mx = (inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2] + field[0]).astype(np.float32)
        my = (inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2] + field[1]).astype(np.float32)
        o = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        pen = int(rng.integers(-1, 2))
        if pen:
            o = (cv2.dilate if pen > 0 else cv2.erode)(o, np.ones((2, 2), np.uint8))
        out[k] = o
    return out


def _user_rows(run: Any, fs: Any) -> list[dict[str, Any]]:
    """Per fold and user: test scores, enrollment statistics and the oracle threshold."""
    from sigver.metrics import eer_threshold

    rows = []
    for f, (fold, split) in enumerate(zip(run.raw, run.splits, strict=True)):
        for i in range(len(fold.genuine)):
            loo = np.asarray(run.loo[f][i], np.float64)
            coh = np.asarray(run.cohort[f][i], np.float64)
            refs = fs.features[split.refs[i]].astype(np.float64)
            dist = np.linalg.norm(refs[:, None] - refs[None], axis=-1)
            stats = [loo.mean(), loo.std(ddof=1), loo.min(), coh.mean(), coh.std(ddof=1)]
            stats += [np.quantile(coh, 0.99), coh.max(), dist[np.triu_indices(len(refs), 1)].mean()]
            rows.append(
                {
                    "fold": f,
                    "genuine": fold.genuine[i],
                    "skilled": fold.skilled[i],
                    "tau": eer_threshold(fold.genuine[i], fold.skilled[i]),
                    "stats": np.asarray(stats),
                    "loo": loo,
                    "pseudo": float(np.mean(run.probes[f][i])),
                }
            )
    return rows


def _eers(rows: list[dict[str, Any]], loc: np.ndarray, scale: np.ndarray) -> tuple[float, float]:
    """Mean over folds of the a-posteriori global and user-threshold EERs of normalised scores."""
    from sigver.metrics import eer_global, eer_user_thresholds

    eg, eu = [], []
    for f in sorted({r["fold"] for r in rows}):
        idx = [k for k, r in enumerate(rows) if r["fold"] == f]
        gen = [(rows[k]["genuine"] - loc[k]) / scale[k] for k in idx]
        sk = [(rows[k]["skilled"] - loc[k]) / scale[k] for k in idx]
        eg.append(eer_global(np.concatenate(gen), np.concatenate(sk))[0])
        eu.append(eer_user_thresholds(gen, sk))
    return 100 * float(np.mean(eg)), 100 * float(np.mean(eu))


def _gap_lines(label: str, rows: list[dict[str, Any]], methods: dict[str, tuple]) -> list[str]:
    """One table row per method: EERs of ``rows`` normalised by it, and the gap against the
    first method's (raw scores)."""
    lines, raw_gap = [], None
    for name, (loc, scale) in methods.items():
        eg, eu = _eers(rows, loc, scale)
        raw_gap = eg - eu if raw_gap is None else raw_gap
        lines.append(
            f"| {label} | {name} | {eg:.2f} | {eu:.2f} | {eg - eu:.2f} | "
            f"{(eg - eu) / raw_gap:.2f} |"
        )
    return lines


def _methods(cal: list[dict[str, Any]], app: list[dict[str, Any]]) -> dict[str, tuple]:
    """(loc, scale) per user of ``app`` for every method (ridge ones fitted on ``cal``)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sigver.normalization import MIN_SCALE

    stats = np.array([r["stats"] for r in app])
    one, zero = np.ones(len(app)), np.zeros(len(app))
    mean, std = stats[:, 0], stats[:, 1]
    pseudo = np.array([r["pseudo"] for r in app])
    out = {
        "none": (zero, one),
        "loo-lcb=0.5": (mean - 0.5 * std, one),
        "pseudo-two-point": (pseudo, np.maximum(mean - pseudo, MIN_SCALE)),
        "pseudo-shift": ((3 * mean + pseudo) / 4, one),
    }
    cal_stats, cal_tau = np.array([r["stats"] for r in cal]), np.array([r["tau"] for r in cal])
    for name, cols in (("ridge(loo)", [0, 1]), ("ridge(all)", list(range(stats.shape[1])))):
        reg = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 12)))
        reg.fit(cal_stats[:, cols], cal_tau)
        out[name] = (reg.predict(stats[:, cols]), one)
    out["oracle shift"] = (np.array([r["tau"] for r in app]), one)
    return out


def more_genuine_rows(rows: list[dict[str, Any]]) -> tuple[list[dict], dict[str, tuple]]:
    """Would more genuine signatures per user place the threshold? The split test.

    Each user's test genuines are split in two: the first half plays *extra genuine
    signatures collected at enrollment and never trained on*, the second half (and
    all skilled forgeries) is what is scored. Returns the rows restricted to the
    second half and, per method, ``(loc, scale)``: the LOO mean (the product's
    ``loo-lcb=0``), the mean of the extra genuines, the mean of both pooled, and the
    mean of the very scores being evaluated (in-sample: an optimistic bound, since it
    centres each user on its own test data).
    """
    test, extra = [], []
    for r in rows:
        g = np.asarray(r["genuine"], np.float64)
        k = len(g) // 2
        test.append({**r, "genuine": g[k:]})
        extra.append(g[:k])
    loo = [np.asarray(r["loo"], np.float64) for r in rows]
    one = np.ones(len(rows))
    return test, {
        "none": (np.zeros(len(rows)), one),
        "LOO mean (loo-lcb=0)": (np.array([v.mean() for v in loo]), one),
        "mean of the extra genuines": (np.array([e.mean() for e in extra]), one),
        "mean of LOO and extra genuines": (
            np.array([np.r_[v, e].mean() for v, e in zip(loo, extra, strict=True)]),
            one,
        ),
        "in-sample mean of the scored genuines": (
            np.array([t["genuine"].mean() for t in test]),
            one,
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_arguments(parser)
    parser.add_argument("--out", type=Path, default=REPO / "runs/gap")
    parser.add_argument("--pseudo", type=int, default=4, help="warps per reference")
    parser.add_argument("--amplitude", type=float, default=4.0, help="displacement, pixels")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work = args.work or args.out / "work"
    start = time.perf_counter()

    from sigver._util import atomic_write, command_line, format_machine_info, machine_info
    from sigver.evaluation import simulate_deployment
    from sigver.features import default_background_path, default_model_path
    from sigver.featureset import load_features
    from sigver.inference import open_extractor

    print(f"command: {command_line()}")
    print(format_machine_info(), flush=True)
    model = default_model_path()
    extractor = open_extractor(model)
    background = load_features(default_background_path(Path(model)))
    caches = _caches(args)
    feats, warped = {}, {}
    for name, cache in caches.items():
        feats[name] = extractor.extract_featureset(cache, progress=False)
        # Warps of every image, seeded by its row, so a reference gets the same ones in
        # every fold; only the references' are ever scored.
        imgs = np.concatenate(
            [
                warp(cache.x[k, 0], args.pseudo, args.amplitude, np.random.default_rng(k))
                for k in range(len(cache.x))
            ]
        )
        warped[name] = extractor.extract(imgs[:, None]).reshape(len(cache.x), args.pseudo, -1)
    rows = {}
    for pop in ("synthetic-a", "synthetic-b", "sigcomp-dev", "sigcomp-exp"):
        key = "synthetic" if pop.startswith("synthetic") else "sigcomp"
        fs, pf = feats[key], warped[key]

        def probe(user: Any, split: Any, i: int, pf: np.ndarray = pf) -> np.ndarray:
            return user.raw_scores(pf[split.refs[i]].reshape(-1, pf.shape[-1]))

        run = simulate_deployment(
            fs,
            users=_users(pop, fs),
            background=background,
            folds=args.folds,
            statistics=True,
            probe=probe,
            n_jobs=args.jobs,
            progress=False,
        )
        rows[pop] = _user_rows(run, fs)
        print(f"simulated {pop}", flush=True)

    lines = [
        "| calibrated on → applied to | method | EER global (a-post.) | EER user (a-post.) | "
        "gap | gap / raw gap |",
        "|---|---|---|---|---|---|",
    ]
    for cal, app in HELD_OUT:
        lines += _gap_lines(f"{cal} → {app}", rows[app], _methods(rows[cal], rows[app]))
    lines += [
        "",
        "More genuine data instead: each user's test genuines split in half, the first half "
        "used as extra genuine signatures (never trained on), the second half and the skilled "
        "forgeries scored; EERs a-posteriori on those:",
        "",
        "| population | method | EER global | EER user | gap | gap / raw gap |",
        "|---|---|---|---|---|---|",
    ]
    for pop in ("sigcomp-exp", "synthetic-b"):
        lines += _gap_lines(pop, *more_genuine_rows(rows[pop]))
    lines += [
        "",
        "Correlation of each user's a-posteriori EER threshold with enrollment statistics:",
        "",
        "| population | LOO mean | LOO std | cohort mean | reference spread | mean warp score |",
        "|---|---|---|---|---|---|",
    ]
    for pop, pop_rows in rows.items():
        tau = np.array([r["tau"] for r in pop_rows])
        stats = np.array([r["stats"] for r in pop_rows])
        cols = [stats[:, 0], stats[:, 1], stats[:, 3], stats[:, 7]]
        cols.append(np.array([r["pseudo"] for r in pop_rows]))
        cells = " | ".join(f"{np.corrcoef(c, tau)[0, 1]:.2f}" for c in cols)
        lines.append(f"| {pop} | {cells} |")
    info = machine_info()
    lines += [
        "",
        f"{args.pseudo} warps per reference of amplitude {args.amplitude} px; 5 references, "
        f"{args.folds} folds, seed 1234; EERs in %, mean over folds. Model "
        f"{extractor.model_id}. {time.perf_counter() - start:.0f} s on {info.get('cpu', '?')}.",
        f"Command: `{command_line()}`",
    ]
    text = "\n".join(lines) + "\n"
    atomic_write(args.out / "gap.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the EER_global - EER_user gap left after per-user normalisation is made of.

Issue 10 asks that per-user normalisation halve the gap between the a-posteriori
global-threshold EER and the user-threshold EER. ``threshold_transfer.py`` measures
the gap and its floor (exchangeable users, ``sigver.metrics.aligned_gap``). This
script asks what the rest is made of, and whether anything an enrollment can see
(genuine references only) predicts it. Per population, the users are enrolled as
``Verifier.enroll`` enrolls them (``sigver.evaluation.simulate_deployment`` with the
model's own normaliser, then the model's stored cue, as ``Verifier.verify`` decides
with it on), and the scores are re-aligned per user in several ways:

- the product's ``loo-lcb=K`` family (leave-one-out statistics of the references);
- **pseudo-forgery anchors**: each reference is warped (smooth random displacement
  field and a small rotation, shear and x-scale, on the preprocessed image); the
  user's classifier scores the copies (in-sample: it was trained on the references
  they come from), the copies lose the cue's penalties as the test scores do, and the
  user's location moves from the references' leave-one-out mean towards the copies'
  mean (``loc = (1 - a) * mean_loo + a * mean_pseudo``);
- two **oracles** that read the user's *test* scores, so they are bounds and not
  methods: the median of the user's test genuines, and the midpoint between the
  medians of their test genuines and skilled forgeries.

Every re-alignment is a per-user shift, so EER_user is the same in every row (checked);
only EER_global (and so the gap) moves. A last table gives the in-sample R^2 of a
linear fit of each user's a-posteriori EER threshold, after the model's normaliser
(and the cue), on genuine-only statistics (reference LOO mean and spread,
pseudo-forgery mean): how much of what the product's shift leaves these statistics
explain, fitted on the same users.

Nothing here is chosen: every row is reported on every population.

Usage::

    python scripts/gap_sources.py --sigcomp ../shared/data/sigcomp2011 \\
        --work runs/tt-v6/work --out runs/gap-sources [--model M] [--jobs 2]

``--work`` is the synthetic corpus folder of ``threshold_transfer.py`` (made there when
missing). Writes ``OUT/gap_sources.md``, ``OUT/gap_sources.json``, ``OUT/gap_sources.png``
and ``OUT/pseudo_forgeries.png`` (references and their warped copies).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from threshold_transfer import (  # noqa: E402
    _caches,
    add_study_arguments,
    decision_of,
    open_model,
    protocol_record,
    simulate_population,
    with_cue,
    write_report,
)

from sigver._util import atomic_write  # noqa: E402
from sigver.metrics import aligned_gap, eer_global, eer_threshold, eer_user_thresholds  # noqa: E402

POPULATIONS = ("synthetic-a", "sigcomp-dev", "synthetic-b", "sigcomp-exp")
#: ``loo-lcb`` strengths reported (the product family).
LCB = (0.0, 0.5, 1.0)
#: Pseudo-forgery anchor weights reported.
ANCHORS = (0.25, 0.5, 1.0)


def warp(image: np.ndarray, rng: np.random.Generator, *, alpha: float, sigma: float) -> np.ndarray:
    """A warped copy of one preprocessed image (ink bright on a dark canvas).

    A smooth random displacement field (white noise blurred with ``sigma`` pixels,
    scaled to ``alpha`` pixels of standard deviation) plus a rotation of up to 4
    degrees, a shear of up to 0.1 and an x-scale of 0.92-1.08 about the ink centroid:
    the shape errors of a forger copying the signature, not the pen.
    """
    import cv2

    h, w = image.shape
    field = []
    for _ in range(2):
        d = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), sigma)
        field.append(d * (alpha / (float(d.std()) + 1e-9)))
    m = cv2.moments(image)
    cx, cy = (m["m10"] / m["m00"], m["m01"] / m["m00"]) if m["m00"] else (w / 2, h / 2)
    angle = np.deg2rad(rng.uniform(-4, 4))
    shear, sx = rng.uniform(-0.1, 0.1), rng.uniform(0.92, 1.08)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = xs - cx, ys - cy
    c, s = np.cos(angle), np.sin(angle)
    map_x = (c * x - s * y) / sx + shear * y + cx + field[0]
    map_y = (s * x + c * y) + cy + field[1]
    return cv2.remap(
        image, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR, borderValue=0
    )


def pseudo_features(
    extractor: Any, cache: Any, *, copies: int, alpha: float, sigma: float, seed: int
) -> np.ndarray:
    """Features of ``copies`` warped copies of every genuine image, shape (N, copies, D).

    Rows of forgeries stay zero (only references are ever warped). Extracted through
    ``extractor`` (the backend enrollment uses) from the same preprocessed images.
    """
    from sigver.cache import SignatureCache

    rng = np.random.default_rng(seed)
    gen = np.flatnonzero(cache.yforg == 0)
    x = np.stack(
        [warp(cache.x[i, 0], rng, alpha=alpha, sigma=sigma) for i in gen for _ in range(copies)]
    )
    warped = SignatureCache(
        x=x[:, None],
        y=np.repeat(cache.y[gen], copies),
        yforg=np.zeros(len(x), dtype=int),
        user_ids=cache.user_ids,
        filenames=np.repeat(cache.filenames[gen], copies),
        meta=dict(cache.meta),
    )
    feats = extractor.extract_featureset(warped, progress=False).features
    out = np.zeros((len(cache.x), copies, feats.shape[1]), np.float32)
    out[gen] = feats.reshape(len(gen), copies, -1)
    return out


def gap_of(folds: list[tuple[list[np.ndarray], list[np.ndarray]]]) -> dict[str, float]:
    """Fold means of EER_global, EER_user and their gap (fractions)."""
    eg = [eer_global(np.concatenate(g), np.concatenate(s))[0] for g, s in folds]
    eu = [eer_user_thresholds(g, s) for g, s in folds]
    return {
        "EER_global": float(np.mean(eg)),
        "EER_user": float(np.mean(eu)),
        "gap": float(np.mean(eg) - np.mean(eu)),
    }


def shifted(scores: list[Any], locs: list[list[float]]) -> list[tuple[list, list]]:
    """Genuine and skilled scores of every fold with each user's ``loc`` subtracted."""
    return [
        (
            [np.asarray(g) - loc for g, loc in zip(fold.genuine, fold_locs, strict=True)],
            [np.asarray(s) - loc for s, loc in zip(fold.skilled, fold_locs, strict=True)],
        )
        for fold, fold_locs in zip(scores, locs, strict=True)
    ]


def oracle_locs(scores: list[Any], kind: str) -> list[list[float]]:
    """Per-user locations read off the test scores (bounds, not methods).

    ``"genuine"``: the median of the user's test genuines; ``"mid"``: the midpoint of
    the medians of their test genuines and skilled forgeries (the genuine median for a
    user without forgeries; 0 for a user without test genuines).
    """

    def one(g: np.ndarray, s: np.ndarray) -> float:
        g, s = np.ravel(g), np.ravel(s)
        if not g.size:
            return 0.0
        if kind == "genuine" or not s.size:
            return float(np.median(g))
        return 0.5 * (float(np.median(g)) + float(np.median(s)))

    return [[one(g, s) for g, s in zip(fold.genuine, fold.skilled, strict=True)] for fold in scores]


def threshold_r2(scores: list[Any], columns: list[np.ndarray]) -> float:
    """In-sample R^2 of a least-squares fit of per-user EER thresholds on ``columns``.

    ``columns``: one array per statistic, one value per (fold, user) in the order of
    ``scores``; an intercept is added. Users without both kinds of scores are left out.
    """
    t, rows = [], []
    k = 0
    for fold in scores:
        for g, s in zip(fold.genuine, fold.skilled, strict=True):
            if np.size(g) and np.size(s):
                t.append(eer_threshold(np.ravel(g), np.ravel(s)))
                rows.append([c[k] for c in columns])
            k += 1
    t_arr = np.asarray(t)
    x = np.c_[np.ones(len(rows)), np.asarray(rows)]
    beta, *_ = np.linalg.lstsq(x, t_arr, rcond=None)
    resid = t_arr - x @ beta
    return float(1.0 - resid.var() / t_arr.var()) if t_arr.var() > 0 else float("nan")


def product_locs(run: Any, method: str) -> list[list[float]]:
    """Per fold and user, the location the product's normaliser ``method`` fits.

    A ``loo-lcb`` normaliser has scale 1, so its scores are the un-normalised ones shifted
    by this (:func:`shifted`), without recomputing the cue's penalties for every method.
    """
    return [[n.loc for n in fold] for fold in run.normalizers(method)]


def _same_scores(pairs: list[tuple[list, list]], scores: list[Any]) -> bool:
    """Whether :func:`shifted`'s genuine and skilled scores equal those of ``scores``."""
    return all(
        np.allclose(a, b)
        for (genuine, skilled), fold in zip(pairs, scores, strict=True)
        for mine, theirs in ((genuine, fold.genuine), (skilled, fold.skilled))
        for a, b in zip(mine, theirs, strict=True)
    )


def copy_scores(run: Any, pseudo: np.ndarray, image: Any = None) -> list[list[np.ndarray]]:
    """Per fold and user, the warped copies' scores as ``run`` decides its test scores.

    ``run.probes`` holds the copies' raw scores (the user's classifier); the copies of a
    user are the rows of ``pseudo`` of their references (:func:`decided_extra`).
    """
    d = pseudo.shape[2]
    copies = [[pseudo[refs].reshape(-1, d) for refs in split.refs] for split in run.splits]
    return decided_extra(run, copies, run.probes, image)


def decided_extra(
    run: Any, extra: list[list[np.ndarray]], raw: list[list[Any]], image: Any = None
) -> list[list[np.ndarray]]:
    """Per fold and user, scores of extra feature rows as ``run`` decides its test scores.

    ``extra[f][i]`` are feature rows scored by user ``i`` of fold ``f``, and ``raw[f][i]``
    their raw scores (the user's classifier). When ``run`` decides with a cue
    (:meth:`~sigver.evaluation.DeploymentRun.with_forgery_cue`, whose image cue ``image``
    scores the rows, and ``with_pair_cue``), each row also loses the image penalty,
    re-centred on the references' as :func:`sigver.evaluation.subtract_penalty` does, and
    the pair penalty against the user's references, as
    :func:`sigver.evaluation.subtract_pair_penalty` does.
    """
    if run.penalty is not None and image is None:
        # The rows' image penalty needs the cue itself, not only the test rows' penalties.
        raise ValueError("run decides with an image cue: pass it as image")
    out = []
    for split, fold_extra, fold_raw in zip(run.splits, extra, raw, strict=True):
        scores = []
        for i, (rows, r) in enumerate(zip(fold_extra, fold_raw, strict=True)):
            refs = split.refs[i]
            v = np.asarray(r, dtype=np.float64)
            if run.penalty is not None:
                shift = float(np.mean(run.penalty[refs])) if run.centre_penalty else 0.0
                v = v - image.weight * image.z(rows) + shift
            if run.pair_cue is not None:
                pair = run.pair_cue
                pair = pair[split.users[i]] if isinstance(pair, Mapping) else pair
                v = v - pair.applied_penalty(rows, run.pair_features[refs])
            scores.append(v)
        out.append(scores)
    return out


def _population(
    name: str, fs: Any, pseudo: np.ndarray, background: Any, cue: Any, norm: str, args: Any
) -> dict[str, Any]:
    """Every row of one population (cue off and, when the model has one, on)."""
    d = pseudo.shape[2]
    run = simulate_population(
        name,
        fs,
        background,
        norm,
        args,
        probe=lambda model, split, i: model.raw_scores(pseudo[split.refs[i]].reshape(-1, d)),
    )
    mu = [[float(np.mean(v)) for v in fold] for fold in run.loo]
    sd = [[float(np.std(v, ddof=1)) for v in fold] for fold in run.loo]
    variants = {"cue off": (run, copy_scores(run, pseudo))}
    if cue is not None:
        image, pair, _ = cue
        on = with_cue(run, image, pair, fs)
        variants["cue on"] = (on, copy_scores(on, pseudo, image))
    raw = gap_of([(f.genuine, f.skilled) for f in run.scores("none")])
    out: dict[str, Any] = {"raw": raw, "variants": {}}
    for label, (v, copies) in variants.items():
        base = v.scores("none")  # raw minus the cue's penalties
        own = v.scores(norm)  # the product path, once: floor, R^2, and checks the shifts
        if not _same_scores(shifted(base, product_locs(v, norm)), own):
            raise RuntimeError(f"{name} {label}: {norm} is not a per-user shift of the scores")
        mp = [[float(np.mean(c)) for c in fold] for fold in copies]
        rows = {}
        for k in LCB:
            rows[f"loo-lcb={k:g}"] = gap_of(shifted(base, product_locs(v, f"loo-lcb={k:g}")))
        for a in ANCHORS:
            locs = [
                [(1 - a) * m + a * p for m, p in zip(fm, fp, strict=True)]
                for fm, fp in zip(mu, mp, strict=True)
            ]
            rows[f"pseudo-forgery anchor a={a:g}"] = gap_of(shifted(base, locs))
        for kind in ("genuine", "mid"):
            rows[f"oracle: {kind}"] = gap_of(shifted(base, oracle_locs(base, kind)))
        floor = float(
            np.mean(
                [
                    aligned_gap(f.genuine, f.skilled, rounds=args.floor_rounds, seed=i)
                    for i, f in enumerate(own)
                ]
            )
        )
        flat = [np.concatenate([np.asarray(x) for x in cols]) for cols in (mu, sd, mp)]
        r2 = {
            "loo mean, loo sd": threshold_r2(own, flat[:2]),
            "loo mean, loo sd, pseudo mean": threshold_r2(own, flat),
        }
        eu = [r["EER_user"] for r in rows.values()]
        if not np.allclose(eu, eu[0]):
            # Every row is a per-user shift of the same scores: a moved EER_user is a bug.
            raise RuntimeError(f"{name} {label}: EER_user differs between rows: {eu}")
        out["variants"][label] = {"rows": rows, "floor": floor, "threshold_r2": r2}
    return out


def _plot(results: dict[str, Any], norm: str, path: Path) -> None:
    """Gap per re-alignment and population (cue on when present), floor and target."""
    from sigver.plots import _pyplot, _save

    plt = _pyplot()
    names = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4.2), sharey=True)
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        res = results[name]
        label = "cue on" if "cue on" in res["variants"] else "cue off"
        v = res["variants"][label]
        keys = list(v["rows"])
        gaps = [100 * v["rows"][k]["gap"] for k in keys]
        colors = [
            "#777" if k.startswith("oracle") else ("#2a6" if k.startswith("pseudo") else "#36c")
            for k in keys
        ]
        ax.barh(range(len(keys)), gaps, color=colors)
        ax.axvline(100 * v["floor"], color="k", ls=":", label="floor (exchangeable users)")
        ax.axvline(50 * res["raw"]["gap"], color="r", ls="--", label="target: half the raw gap")
        ax.set_yticks(range(len(keys)), keys)
        ax.invert_yaxis()
        ax.set_title(f"{name} ({label})", fontsize=10)
        ax.set_xlabel("EER_global - EER_user (points)")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=9, frameon=False)
    fig.suptitle(
        f"gap left per re-alignment; model normaliser {norm}; grey rows read the test scores"
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    _save(plt, fig, path)


def _preview(cache: Any, path: Path, *, alpha: float, sigma: float) -> None:
    """Four genuine signatures (left) and three warped copies of each."""
    import cv2

    rng = np.random.default_rng(0)
    gen = np.flatnonzero(cache.yforg == 0)[:4]
    rows = [
        np.hstack(
            [cache.x[i, 0]] + [warp(cache.x[i, 0], rng, alpha=alpha, sigma=sigma) for _ in range(3)]
        )
        for i in gen
    ]
    sheet = 255 - np.vstack(rows)  # dark ink on white, as people look at signatures
    ok, png = cv2.imencode(".png", sheet)
    if ok:
        atomic_write(path, png.tobytes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_study_arguments(parser, "runs/gap-sources")
    parser.add_argument("--floor-rounds", type=int, default=20)
    parser.add_argument("--copies", type=int, default=4, help="warped copies per reference")
    parser.add_argument("--alpha", type=float, default=3.0, help="displacement std (pixels)")
    parser.add_argument("--sigma", type=float, default=8.0, help="displacement smoothness (pixels)")
    args = parser.parse_args(argv)
    if args.copies < 1 or args.floor_rounds < 1 or args.alpha < 0 or args.sigma <= 0:
        parser.error("--copies and --floor-rounds must be >= 1, --alpha >= 0, --sigma > 0")
    start = time.perf_counter()
    model, extractor, background = open_model(parser, args)

    cue, norm = decision_of(parser, extractor, model, needs_lcb=True)
    caches = _caches(args)
    feats = {k: extractor.extract_featureset(c, progress=False) for k, c in caches.items()}
    pseudo = {
        k: pseudo_features(
            extractor, c, copies=args.copies, alpha=args.alpha, sigma=args.sigma, seed=7
        )
        for k, c in caches.items()
    }
    _preview(
        caches["sigcomp"], args.out / "pseudo_forgeries.png", alpha=args.alpha, sigma=args.sigma
    )
    results = {}
    for name in POPULATIONS:
        key = "synthetic" if name.startswith("synthetic") else "sigcomp"
        t0 = time.perf_counter()
        results[name] = _population(name, feats[key], pseudo[key], background, cue, norm, args)
        logging.info("%s in %.1f s", name, time.perf_counter() - t0)
    _plot(results, norm, args.out / "gap_sources.png")

    def pct(v: float) -> str:
        return f"{100 * v:.2f}"

    lines = [
        "# What the EER_global - EER_user gap is made of "
        f"({extractor.model_id}, normaliser {norm})",
        "",
        "Every row is a per-user shift of the same scores, so EER_user is the same in every "
        "row of a population and cue setting; gap / raw = the gap over the raw scores' gap "
        "(issue 10's target: <= 0.5). Oracle rows read the user's test scores: bounds, not "
        "methods. Rates in %, mean over folds.",
        "",
    ]
    for name, res in results.items():
        r = res["raw"]
        lines += [
            f"## {name}",
            "",
            f"Raw SVM scores: EER_global {pct(r['EER_global'])}, EER_user {pct(r['EER_user'])}, "
            f"gap {pct(r['gap'])} (target {pct(r['gap'] / 2)}).",
            "",
            "| re-alignment | "
            + " | ".join(f"{lab}: EER_g / gap / gap÷raw" for lab in res["variants"])
            + " |",
            "|---|" + "---|" * len(res["variants"]),
        ]
        keys = list(next(iter(res["variants"].values()))["rows"])
        for k in keys:
            cells = []
            for v in res["variants"].values():
                row = v["rows"][k]
                cells.append(
                    f"{pct(row['EER_global'])} / {pct(row['gap'])} / {row['gap'] / r['gap']:.2f}"
                )
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
        lines.append(
            "| EER_user (every row) | "
            + " | ".join(
                pct(next(iter(v["rows"].values()))["EER_user"]) for v in res["variants"].values()
            )
            + " |"
        )
        lines.append(
            "| floor (exchangeable users) | "
            + " | ".join(pct(v["floor"]) for v in res["variants"].values())
            + " |"
        )
        for stat in next(iter(res["variants"].values()))["threshold_r2"]:
            lines.append(
                f"| R² of the user's EER threshold on {stat} | "
                + " | ".join(f"{v['threshold_r2'][stat]:.2f}" for v in res["variants"].values())
                + " |"
            )
        lines.append("")
    lines += [
        f"Protocol: {args.refs} references, {args.folds} folds, seed {args.seed}; users enrolled "
        "as Verifier.enroll enrolls them; cue on = the model's stored cue, as Verifier.verify "
        f"decides with it. Pseudo-forgeries: {args.copies} warped copies per reference, "
        f"alpha {args.alpha:g} px, sigma {args.sigma:g} px. Synthetic writers: seed "
        f"{args.synth_seed}, {args.synth_writers} writers (halves a / b).",
    ]
    write_report(
        args.out,
        "gap_sources",
        lines,
        {
            "model": extractor.model_id,
            "normalization": norm,
            "results": results,
            "pseudo": {"copies": args.copies, "alpha": args.alpha, "sigma": args.sigma},
            **protocol_record(args),
        },
        start,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""What separates skilled forgeries from genuine signatures, in plain image statistics.

``scripts/forgery_realism.py`` found that synthetic skilled forgeries teach a
probe nothing about real ones (AUC 0.48-0.52), and that the SigNet-F forgery
head of the synthetic-only v5 base scores real forgeries *below* chance (0.45).
This script asks why, with statistics anyone can read: stroke width, ink
texture, ink darkness, edge sharpness, connected components, contour roughness
and the ink's bounding box, measured on the raw images (Otsu ink mask). For
each statistic it reports

- the pooled AUC of "forgery" against "genuine" (0.5 = no difference; below
  0.5 = forgeries have *lower* values), and
- the median over writers of the forgeries' offset from the writer's own
  genuine signatures, in units of that writer's genuine standard deviation.

Populations: the SigComp2011 **development** writers 001-037 (no exploitation
writer is read), and synthetic hold-out writers of the v2 generator and of the
v3 generator (forgers who write with their own pen; same writers and genuine
images as v2). A histogram figure shows the statistics with the largest
differences.

What it found first (an exploratory run, before this script was written):
SigComp2011's forgeries are written with *thinner* strokes and *more textured*
ink than the genuine signatures, while the v2 generator's forgers draw with a
blunter pen, pressing harder: thicker, smoother strokes. The signs are opposite
for stroke width, ink texture, edge sharpness, connected components and
relative roughness.

Rule for the experiment this motivated (written and committed before its
training run started). The v3 generator removes the target-relative pen bias:
a forger's pen, ink and pressure are drawn like any writer's. A model is
trained exactly as v3 was (``scripts/train_v2_model.py --loss signet-f --lamb
0.5``, 3,000 writers, 8 epochs) on a v3-generator corpus (``--synth-version
3``), so that the only change from v3's base is the forgeries' pen. It is a
diagnostic run, not a candidate to ship (v5 was trained on 6,000 writers).
Read on development writers only (``scripts/forgery_realism.py`` on its base
model): if its forgery head's AUC on real forgeries reaches 0.55, or the
synthetic-to-real probe's AUC reaches 0.55, the v3 generator becomes the
training corpus of the next full-scale model. Otherwise the pen bias was not
what kept synthetic forgeries from transferring. Its SigComp2011-dev EERs
(exploitation writers) are reported next to v3's, not used to decide.

``--model M`` (repeatable) then asks how much of what a model's features
know about real forging is this ink. On the development writers (fitted on
001-021, tested on 022-037 and the reverse, as ``forgery_realism.py`` does), it
compares the AUC of the product's forgery probe (:mod:`sigver.forgery_cue`)
fitted on the statistics alone, on the features, and on the features with the
statistics regressed out (a linear fit on the training half), and reports the
correlation of the features' probe score with each statistic.

Usage::

    python scripts/forgery_stats.py --sigcomp ../shared/data/sigcomp2011 --out runs/forgery-stats
    python scripts/forgery_stats.py --model models/sigver-sigresnet-v5.pt --out runs/forgery-stats
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeAlias

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("forgery_stats")
#: (writer, label 1 = skilled forgery / 0 = genuine, statistics)
Rows: TypeAlias = list[tuple[str, int, dict[str, float]]]

#: Statistic -> what it measures (for the table).
STATS: dict[str, str] = {
    "stroke_width": "mean stroke width, 2 x ink area / contour length (px)",
    "ink_texture": "std of ink grey levels / ink contrast",
    "ink_darkness": "(paper - median ink) / paper",
    "edge_sharpness": "90th percentile gradient at the ink / ink contrast",
    "components": "connected ink components",
    "roughness": "contour deviation from its running mean / stroke width",
    "aspect": "ink bounding box width / height",
    "ink_height": "ink bounding box height (px)",
}


def image_stats(img: np.ndarray) -> dict[str, float]:
    """Plain statistics of one grayscale signature image (dark ink on light paper).

    Parameters
    ----------
    img : numpy.ndarray
        ``(H, W)`` uint8 image.

    Returns
    -------
    dict
        One value per key of :data:`STATS`.
    """
    if img.ndim != 2 or img.dtype != np.uint8:
        raise ValueError(f"expected a (H, W) uint8 image, got {img.dtype} {img.shape}")
    grey = img.astype(np.float32)
    paper = float(np.median(grey))
    _, mask = cv2.threshold(img, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    ink = mask > 0
    if ink.sum() < 10:
        raise ValueError("no ink found")
    ys, xs = np.nonzero(ink)
    height = float(ys.max() - ys.min() + 1)
    width = float(xs.max() - xs.min() + 1)
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(len(c) for c in contours)
    stroke = 2.0 * float(ink.sum()) / max(perimeter, 1)
    values = grey[ink]
    contrast = max(paper - float(values.mean()), 1.0)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    gradient = np.hypot(gx, gy)
    dev = []
    for c in contours:
        if len(c) < 60:
            continue
        pts = c[:, 0, :].astype(np.float64)
        k = 7  # running mean over 15 contour pixels: what is left is wobble
        pad = np.concatenate([pts[-k:], pts, pts[:k]])
        kernel = np.ones(2 * k + 1) / (2 * k + 1)
        smooth = np.stack([np.convolve(pad[:, i], kernel, "valid") for i in range(2)], axis=1)
        dev.append(float(np.mean(np.linalg.norm(pts - smooth, axis=1))))
    return {
        "stroke_width": stroke,
        "ink_texture": float(values.std()) / contrast,
        "ink_darkness": (paper - float(np.median(values))) / max(paper, 1.0),
        "edge_sharpness": float(np.percentile(gradient[ink], 90)) / contrast,
        "components": float(cv2.connectedComponents(mask)[0] - 1),
        "roughness": (float(np.mean(dev)) if dev else 0.0) / max(stroke, 1e-6),
        "aspect": width / height,
        "ink_height": height,
    }


def compare(rows: Rows) -> dict[str, dict[str, float]]:
    """Forgery-vs-genuine differences of each statistic.

    Parameters
    ----------
    rows : list of (writer, label, stats)
        ``label`` 1 for a skilled forgery, 0 for a genuine signature.

    Returns
    -------
    dict
        ``{stat: {"auc": pooled AUC, "offset": median per-writer offset}}``;
        the offset is ``(mean forgery - mean genuine) / std genuine`` of each
        writer with at least two genuine signatures and one forgery.
    """
    from sklearn.metrics import roc_auc_score

    labels = np.array([r[1] for r in rows])
    if labels.min() == labels.max():
        raise ValueError("need both genuine signatures and forgeries")
    writers = sorted({r[0] for r in rows})
    out: dict[str, dict[str, float]] = {}
    for key in STATS:
        values = np.array([r[2][key] for r in rows])
        offsets = []
        for w in writers:
            mine = np.array([r[0] == w for r in rows])
            gen, forg = values[mine & (labels == 0)], values[mine & (labels == 1)]
            if len(gen) >= 2 and len(forg):
                offsets.append((forg.mean() - gen.mean()) / (gen.std() + 1e-9))
        out[key] = {
            "auc": float(roc_auc_score(labels, values)),
            "offset": float(np.median(offsets)) if offsets else float("nan"),
        }
    return out


def sigcomp_rows(root: Path, last_dev: int = 37) -> dict[str, tuple[str, int, dict[str, float]]]:
    """Statistics of the SigComp2011 development writers (001-``last_dev``) only.

    Keyed by the image's path relative to ``root`` (a feature set's ``filenames``).
    """
    rows: dict[str, tuple[str, int, dict[str, float]]] = {}
    writers = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    for w in (w for w in writers if int(w) <= last_dev):
        for label, folder in ((0, root / w), (1, root / f"{w}_forg")):
            for path in sorted(folder.glob("*.png")) if folder.is_dir() else ():
                img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
                if img is None:
                    raise ValueError(f"cannot read {path}")
                rows[path.relative_to(root).as_posix()] = (w, label, image_stats(img))
    if not rows:
        raise SystemExit(f"no SigComp2011 development writer found in {root}")
    return rows


def synth_rows(version: int, writers: int, seed: int = 3) -> Rows:
    """Statistics of synthetic hold-out-style writers (10 genuine, 5 forgeries each)."""
    from sigver.synth.corpus import generate_writer

    rows: Rows = []
    for i in range(writers):
        _, genuine, forgeries = generate_writer(seed, i, 10, 5, version=version, split="holdout")
        rows += [(str(i), 0, image_stats(img)) for img in genuine]
        rows += [(str(i), 1, image_stats(img)) for img in forgeries]
    return rows


def ink_probe(features: Any, stats: np.ndarray) -> dict[str, Any]:
    """Real -> real forgery probes on statistics, features and features without the statistics.

    Parameters
    ----------
    features : sigver.featureset.FeatureSet
        Features of SigComp2011 (development writers are selected here).
    stats : ndarray (N, len(STATS))
        :func:`image_stats` of the same rows, in :data:`STATS` order.

    Returns
    -------
    dict
        Mean AUC over the two directions for ``"statistics"``, ``"features"``
        and ``"features - statistics"``, and ``"correlation"``: Pearson
        correlation of the feature probe's score with each statistic.
    """
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import roc_auc_score

    from sigver.forgery_cue import fit_forgery_cue

    writer = np.array([int(str(u)) for u in features.user_ids])[features.y]
    forg = (features.yforg == 1).astype(int)
    halves = [(writer >= 1) & (writer <= 21), (writer >= 22) & (writer <= 37)]
    halves = [h & (features.yforg < 2) for h in halves]
    x = features.features.astype(np.float64)
    zs = (stats - stats.mean(0)) / (stats.std(0) + 1e-9)
    aucs: dict[str, list[float]] = {"statistics": [], "features": [], "features - statistics": []}
    scores = np.zeros(len(x))
    for a, b in ((halves[0], halves[1]), (halves[1], halves[0])):
        resid = LinearRegression().fit(zs[a], x[a])
        for name, xa, xb in (
            ("statistics", zs[a], zs[b]),
            ("features", x[a], x[b]),
            ("features - statistics", x[a] - resid.predict(zs[a]), x[b] - resid.predict(zs[b])),
        ):
            z = fit_forgery_cue(xa, forg[a], weight=1.0).z(xb)
            aucs[name].append(float(roc_auc_score(forg[b], z)))
            if name == "features":
                scores[b] = z
    dev = halves[0] | halves[1]
    corr = {k: float(np.corrcoef(scores[dev], stats[dev, i])[0, 1]) for i, k in enumerate(STATS)}
    return {**{k: float(np.mean(v)) for k, v in aucs.items()}, "correlation": corr}


def _probe_table(args: argparse.Namespace, dev: dict[str, tuple[str, int, dict]]) -> str:
    from sigver.cli import main as sigver
    from sigver.featureset import load_features

    rows = []
    for model in args.model:
        out = args.out / f"sigcomp-{model.parent.name}-{model.stem}.features.npz"
        if not out.is_file():
            argv = ["features", "--model", str(model), "--data", str(args.sigcomp), "--dataset",
                    "sigcomp2011", "--out", str(out), "--no-progress", "-q"]  # fmt: skip
            if sigver(argv) != 0:
                raise SystemExit(f"feature extraction failed: {argv}")
        fs = load_features(out)
        stats = np.full((len(fs.y), len(STATS)), np.nan)
        writer = np.array([int(str(u)) for u in fs.user_ids])[fs.y]
        for i in np.flatnonzero((writer <= 37) & (fs.yforg < 2)):
            # The statistics of the table above, not a second pass over the images.
            row = dev.get(str(fs.filenames[i]))
            if row is None:
                raise SystemExit(f"{fs.filenames[i]} has features but no statistics")
            stats[i] = [row[2][k] for k in STATS]
        keep = ~np.isnan(stats[:, 0])
        fs_dev = type(fs)(fs.features[keep], fs.y[keep], fs.yforg[keep], fs.user_ids,
                          fs.filenames[keep], fs.meta)  # fmt: skip
        res = ink_probe(fs_dev, stats[keep])
        top = sorted(res["correlation"].items(), key=lambda kv: -abs(kv[1]))[:3]
        rows.append(
            f"| {model.name} | {res['statistics']:.3f} | {res['features']:.3f} | "
            f"{res['features - statistics']:.3f} | "
            + ", ".join(f"{k} {v:+.2f}" for k, v in top)
            + " |"
        )
    head = [
        "| model | probe on statistics | probe on features | features - statistics | "
        "probe score vs statistic (Pearson r) |",
        "|---|---|---|---|---|",
    ]
    return "\n".join(head + rows)


def _plot(populations: dict[str, Rows], keys: Iterable[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(keys)
    fig, axes = plt.subplots(
        len(populations), len(keys), figsize=(3.2 * len(keys), 2.4 * len(populations))
    )
    axes = np.atleast_2d(axes)
    for r, (name, rows) in enumerate(populations.items()):
        labels = np.array([row[1] for row in rows])
        for c, key in enumerate(keys):
            ax = axes[r, c]
            values = np.array([row[2][key] for row in rows])
            bins = np.linspace(*np.percentile(values, [1, 99]), 30)
            ax.hist(values[labels == 0], bins, alpha=0.6, density=True, label="genuine")
            ax.hist(values[labels == 1], bins, alpha=0.6, density=True, label="skilled forgery")
            ax.set_title(f"{name}: {key}", fontsize=9)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigcomp", type=Path, default=REPO.parent / "shared/data/sigcomp2011")
    parser.add_argument("--out", type=Path, default=REPO / "runs/forgery-stats")
    parser.add_argument("--writers", type=int, default=40, help="synthetic writers per generator")
    parser.add_argument(
        "--model", type=Path, action="append", help="also run the ink probes of this model"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.writers < 2:
        parser.error("--writers must be >= 2")
    if not args.sigcomp.is_dir():
        parser.error(f"--sigcomp {args.sigcomp} is not a folder")
    args.out.mkdir(parents=True, exist_ok=True)

    log.info("SigComp2011 development writers")
    dev = sigcomp_rows(args.sigcomp)
    populations = {"SigComp2011 001-037": list(dev.values())}
    for version in (2, 3):
        log.info("synthetic writers, generator v%d", version)
        populations[f"synthetic v{version}"] = synth_rows(version, args.writers)
    results = {name: compare(rows) for name, rows in populations.items()}

    names = list(results)
    lines = [
        "| statistic | " + " | ".join(f"{n}: AUC / offset" for n in names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for key in STATS:
        cells = [f"{results[n][key]['auc']:.3f} / {results[n][key]['offset']:+.2f}" for n in names]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    (args.out / "stats.md").write_text(table + "\n")
    (args.out / "stats.json").write_text(json.dumps(results, indent=2) + "\n")
    _plot(populations, ("stroke_width", "ink_texture", "edge_sharpness"), args.out / "stats.png")
    print(table)
    print(f"wrote {args.out / 'stats.md'}, stats.json and stats.png")
    if args.model:
        probes = _probe_table(args, dev)
        (args.out / "probes.md").write_text(probes + "\n")
        print(probes)
    return 0


if __name__ == "__main__":
    sys.exit(main())

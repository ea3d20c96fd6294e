"""Is the EER_global - EER_user gap a scale problem of the per-user classifiers?

Issue 10 asks that per-user normalisation halve the gap between the a-posteriori
global-threshold EER and the user-threshold EER. Every per-user shift tried so far
(``gap_sources.py``, ``forgeability.py``) leaves most of it. One reading is that each
user's SVM has a scale of its own that genuine-only statistics cannot undo. This
script tests that reading with scorers that have *no* per-user part: a
writer-independent pair classifier ``z(q, r)`` on ``|phi(q) - phi(r)|``, fitted once
on SigComp 001-037 and on synthetic writers in the generator's training styles
(``pair_cue.py --pair-synthetic``'s corpus), scores a questioned signature by its
mean over the user's references, ``-mean_r z(q, r)``. One function serves every
user, so if the gap came from per-user scales alone, these scores would show none
beyond the floor of exchangeable users (:func:`sigver.metrics.aligned_gap`).

Three pair classifiers are fitted, each on standardised differences: the product's
(class-balanced logistic regression, ``C`` = :data:`sigver.pair_cue.DEFAULT_C`), a
one-hidden-layer MLP and gradient-boosted trees. Each is reported alone (one function
for every user) and centred on the user's references (the user's references against
each other subtracted: a per-user shift from genuine data). Last, the strongest
(the trees, centred) is added to the product's decided scores, ``s - w (p - p_refs)``,
for a grid of ``w``: does a stronger writer-independent term close the gap? The rows
use the product's own folds and references, on two populations that neither the pair
classifiers nor the model's cue were fitted on: SigComp 038-069 and synthetic-b.

Nothing here is chosen; every row is reported.

Usage::

    python scripts/writer_independent_gap.py --sigcomp ../shared/data/sigcomp2011 \\
        --work runs/tt-v3-boot/work --pair-work runs/fr-v3s --out runs/wi-gap [--jobs 2]

``--pair-work`` holds ``pair_cue.py``'s corpora and feature caches (made there when
missing). Writes ``OUT/wi_gap.md`` and ``OUT/wi_gap.json``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from forgeability import decided_run  # noqa: E402
from gap_sources import gap_of  # noqa: E402
from threshold_transfer import (  # noqa: E402
    _caches,
    add_study_arguments,
    decision_of,
    open_model,
    protocol_record,
    write_report,
)

from sigver.metrics import aligned_gap  # noqa: E402
from sigver.pair_cue import DEFAULT_C, pair_indices  # noqa: E402

#: Populations no scorer here was fitted on.
POPULATIONS = ("synthetic-b", "sigcomp-exp")
SCORERS = ("logistic", "mlp", "trees")
#: Weights of the trees' centred term added to the product's scores.
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


class PairScorer:
    """A pair classifier on standardised ``|a - b|``; :meth:`z` is in units of its
    decision values' standard deviation on the fitting pairs (higher = forged)."""

    def __init__(self, kind: str, *, seed: int = 0) -> None:
        self.kind = kind
        self.seed = seed

    def fit(self, x: np.ndarray, writers: np.ndarray, forged: np.ndarray) -> PairScorer:
        from sklearn.preprocessing import StandardScaler

        model = self._model()  # an unknown kind is refused before any work
        ia, ib, y = pair_indices(writers, forged)
        if np.unique(y).size != 2:
            raise ValueError("pairs of both kinds are needed (genuine signatures and forgeries)")
        d = np.abs(x[ia] - x[ib])
        self.scaler_ = StandardScaler().fit(d)
        self.model_ = model.fit(self.scaler_.transform(d), y)
        self.sd_ = float(np.std(self._raw(d))) or 1.0
        self.n_pairs_ = int(len(y))
        return self

    def _model(self) -> Any:
        if self.kind == "logistic":
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(C=DEFAULT_C, max_iter=3000, class_weight="balanced")
        if self.kind == "mlp":
            from sklearn.neural_network import MLPClassifier

            return MLPClassifier(
                (256,), alpha=1e-2, max_iter=200, early_stopping=True, random_state=self.seed
            )
        if self.kind == "trees":
            from sklearn.ensemble import HistGradientBoostingClassifier

            return HistGradientBoostingClassifier(max_iter=300, random_state=self.seed)
        raise ValueError(f"unknown pair scorer {self.kind!r}; expected one of {SCORERS}")

    def _raw(self, d: np.ndarray) -> np.ndarray:
        z = self.scaler_.transform(d)
        if hasattr(self.model_, "decision_function"):
            return np.asarray(self.model_.decision_function(z), np.float64)
        p = np.clip(self.model_.predict_proba(z)[:, 1], 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))

    def z(self, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        """Forgery evidence of each row of ``q`` against the one reference ``r``."""
        return self._raw(np.abs(np.atleast_2d(q) - np.asarray(r)[None, :])) / self.sd_


def penalties(scorer: Any, q: np.ndarray, refs: np.ndarray) -> tuple[np.ndarray, float]:
    """``p(q)`` = mean over the references of ``scorer.z``, and ``p_refs``: the mean of
    each reference's ``p`` against the other references (0 with one reference)."""
    p = np.mean([scorer.z(q, r) for r in refs], axis=0) if len(q) else np.zeros(0)
    if len(refs) < 2:
        return p, 0.0
    loo = [np.mean([scorer.z(refs[j : j + 1], r)[0] for r in np.delete(refs, j, 0)])
           for j in range(len(refs))]  # fmt: skip
    return p, float(np.mean(loo))


def user_penalties(run: Any, x: np.ndarray, scorer: Any) -> list[list[dict[str, Any]]]:
    """Per fold and user: the test genuines' and skilled forgeries' ``p`` and ``p_refs``."""
    out = []
    for split in run.splits:
        fold = []
        for i, refs in enumerate(split.refs):
            # One pass over the references for both kinds (and one LOO term).
            n = len(split.test_genuine[i])
            q = x[np.r_[split.test_genuine[i], split.skilled[i]].astype(int)]
            p, p_refs = penalties(scorer, q, x[refs])
            fold.append({"genuine": p[:n], "skilled": p[n:], "p_refs": p_refs})
        out.append(fold)
    return out


def scored(
    pen: list[list[dict[str, Any]]], *, centred: bool, base: Any = None, weight: float = 1.0
) -> list[tuple[list[np.ndarray], list[np.ndarray]]]:
    """Genuine and skilled scores per fold: ``-(p - c)`` alone (``base`` None), or
    ``base - weight (p - c)``, with ``c = p_refs`` when ``centred`` and 0 otherwise."""
    out = []
    for k, fold in enumerate(pen):
        g_all, s_all = [], []
        for i, u in enumerate(fold):
            c = u["p_refs"] if centred else 0.0
            if base is None:
                g, s = -(u["genuine"] - c), -(u["skilled"] - c)
            else:
                g = np.asarray(base[k].genuine[i]) - weight * (u["genuine"] - c)
                s = np.asarray(base[k].skilled[i]) - weight * (u["skilled"] - c)
            g_all.append(g)
            s_all.append(s)
        out.append((g_all, s_all))
    return out


def summary(folds: list[tuple[list, list]], raw_gap: float, rounds: int) -> dict[str, float]:
    """:func:`gap_of` of the folds, the floor of exchangeable users, and gap / raw gap."""
    out = gap_of(folds)
    out["floor"] = float(
        np.mean([aligned_gap(g, s, rounds=rounds, seed=i) for i, (g, s) in enumerate(folds)])
    )
    out["ratio"] = out["gap"] / raw_gap
    return out


def _pair_rows(args: argparse.Namespace, model: Path, sigcomp: Any) -> tuple[np.ndarray, ...]:
    """Features, writers and forgery flags of 001-037 and the synthetic training-style writers."""
    from forgery_realism import _features, synth_corpus

    npz = synth_corpus(
        args.pair_work, args.pair_synthetic, args.jobs, split="train", seed=5, name="synth-train"
    )
    tag = f"{model.parent.name}-{model.stem}"
    cache = args.pair_work / f"synth-train-{tag}.features.npz"
    extra = _features(model, ["--data", str(npz)], cache)
    parts = []
    for fs, prefix, keep in ((sigcomp, "", (1, 37)), (extra, "synthetic/", None)):
        ids = np.asarray(fs.user_ids).astype(str)
        writers = ids[np.asarray(fs.y)]
        mask = np.ones(len(writers), bool)
        if keep:
            mask = np.array([w.isdigit() and keep[0] <= int(w) <= keep[1] for w in writers])
        parts.append(
            (
                np.asarray(fs.features, np.float64)[mask],
                np.char.add(prefix, writers[mask]),
                np.asarray(fs.yforg)[mask] == 1,
            )
        )
    return tuple(np.concatenate(col) for col in zip(*parts, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_study_arguments(parser, "runs/wi-gap")
    parser.add_argument("--pair-work", type=Path, default=Path("runs/pair-cue"))
    parser.add_argument("--pair-synthetic", type=int, default=96)
    parser.add_argument("--floor-rounds", type=int, default=20)
    args = parser.parse_args(argv)
    if args.floor_rounds < 1 or args.pair_synthetic < 1:
        parser.error("--floor-rounds and --pair-synthetic must be >= 1")
    start = time.perf_counter()
    model, extractor, background = open_model(parser, args)
    args.pair_work.mkdir(parents=True, exist_ok=True)

    cue, norm = decision_of(parser, extractor, model)
    caches = _caches(args)
    feats = {key: extractor.extract_featureset(c, progress=False) for key, c in caches.items()}
    x_pairs, w_pairs, f_pairs = _pair_rows(args, model, feats["sigcomp"])
    scorers = {}
    for kind in SCORERS:
        t0 = time.perf_counter()
        scorers[kind] = PairScorer(kind).fit(x_pairs, w_pairs, f_pairs)
        logging.info("%s pair scorer: %.1f s", kind, time.perf_counter() - t0)

    results: dict[str, Any] = {}
    for name in POPULATIONS:
        key = "synthetic" if name.startswith("synthetic") else "sigcomp"
        t0 = time.perf_counter()
        pop = decided_run(name, feats[key], background, cue, norm, args)
        x = np.asarray(feats[key].features, np.float64)
        raw_gap, rounds = pop["raw_gap"], args.floor_rounds
        rows: dict[str, Any] = {
            "product (decided scores)": summary(
                [(f.genuine, f.skilled) for f in pop["decided"]], raw_gap, rounds
            )
        }
        pens = {kind: user_penalties(pop["run"], x, s) for kind, s in scorers.items()}
        for kind, pen in pens.items():
            for centred in (False, True):
                label = f"{kind} pair classifier alone{', centred' if centred else ''}"
                rows[label] = summary(scored(pen, centred=centred), raw_gap, rounds)
        for w in WEIGHTS[1:]:
            rows[f"product - {w:g} (trees p - p_refs)"] = summary(
                scored(pens["trees"], centred=True, base=pop["decided"], weight=w), raw_gap, rounds
            )
        results[name] = {"raw_gap": raw_gap, "rows": rows}
        logging.info("%s in %.1f s", name, time.perf_counter() - t0)

    def pct(v: float) -> str:
        return f"{100 * v:.2f}"

    lines = [
        f"# Writer-independent scorers and the gap ({extractor.model_id}, normaliser {norm})",
        "",
        "EER_global / EER_user / gap / floor of exchangeable users, in %, and gap ÷ the raw SVM "
        "scores' gap, on the product's folds and references. Pair classifiers fitted on "
        f"SigComp 001-037 and {args.pair_synthetic} synthetic training-style writers "
        f"({scorers['logistic'].n_pairs_} pairs).",
        "",
        "| scores | " + " | ".join(POPULATIONS) + " |",
        "|---|" + "---|" * len(POPULATIONS),
    ]
    for label in results[POPULATIONS[0]]["rows"]:
        cells = []
        for name in POPULATIONS:
            r = results[name]["rows"][label]
            cells.append(
                f"{pct(r['EER_global'])} / {pct(r['EER_user'])} / {pct(r['gap'])} / "
                f"{pct(r['floor'])}, {r['ratio']:.2f}"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(
        "| raw SVM scores' gap | "
        + " | ".join(pct(results[n]["raw_gap"]) for n in POPULATIONS)
        + " |"
    )
    lines += [
        "",
        f"Protocol: {args.refs} references, {args.folds} folds, seed {args.seed}; users enrolled "
        "as Verifier.enroll enrolls them, decided with the model's stored cue. Synthetic "
        f"writers: seed {args.synth_seed}, {args.synth_writers} writers (synthetic-b: the "
        "second half).",
    ]
    write_report(
        args.out,
        "wi_gap",
        lines,
        {
            "model": extractor.model_id,
            "normalization": norm,
            "results": results,
            "pairs": scorers["logistic"].n_pairs_,
            **protocol_record(args),
        },
        start,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

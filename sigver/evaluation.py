"""Train and score the writer-dependent classifiers of a protocol, fast.

Two engines give the same scores on the same data:

``"naive"``
    The textbook loop: for each user, scale, ``SVC.fit`` on the user's
    references + negatives, ``SVC.decision_function`` on its scored sets.
``"fast"``
    Exploits the structure of the protocol. Every training sample of every
    user in a fold is either a shared negative or a reference, so the fold's
    *training pool* is ``negatives + all references``. With one scaler per
    fold, the kernel matrix over the pool is computed once (one BLAS product)
    and each user's SVM is trained on a slice of it with
    ``SVC(kernel="precomputed")``; the shared negatives-by-negatives block is
    copied once per worker and only the user's reference rows are rewritten.
    Scores are ``K(test, support vectors) @ dual_coef + intercept`` with the
    kernel of every test genuine against the pool also computed once.

Scaling (``scaling``):

``"fold"`` (default)
    ``StandardScaler(with_mean=False)`` fit once per fold on the training pool
    (the union of all users' training sets: development negatives and all
    exploitation references of the fold; no test sample). This is the
    documented variant the fast engine needs: a per-user scale would change
    the kernel of every pair of negatives for every user.
``"user"``
    The published recipe: the scaler is fit on each user's own training set
    (``WriterDependentClassifier``, reference luizgh/sigver). Only the naive
    engine implements it. With ~N negatives and a handful of references the two
    scales differ by O(refs / N); ``scripts/bench_protocol.py`` reports both.

Both engines, for the same ``scaling``, produce decision values equal to
floating-point rounding (tests and the benchmark check this).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn import config_context
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from sigver._util import atomic_open, atomic_write, json_safe, write_json
from sigver.classifier import KERNELS, kernel_matrix, resolve_class_weight
from sigver.errors import SigverError
from sigver.featureset import FeatureSet
from sigver.metrics import compute_metrics, eer_threshold, far, operating_point
from sigver.protocol import (
    FoldSplit,
    ProtocolConfig,
    ResolvedProtocol,
    make_splits,
    population_splits,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ClassifierConfig",
    "FoldScores",
    "EvaluationResult",
    "score_fold",
    "evaluate",
    "a_priori_other_folds",
    "fixed_threshold_point",
    "DeploymentRun",
    "result_from_scores",
    "simulate_deployment",
    "load_fold_scores",
    "SUMMARY_METRICS",
]

#: Metrics summarised (mean, std over folds) in every report.
SUMMARY_METRICS = ("EER_global", "EER_user", "FRR", "FAR_random", "FAR_skilled", "AUC")

ENGINES = ("fast", "naive")
SCALINGS = ("fold", "user")


@dataclass(frozen=True)
class ClassifierConfig:
    """Writer-dependent SVM settings (published defaults)."""

    kernel: str = "rbf"
    C: float = 1.0
    gamma: float = 2**-11
    scaling: str = "fold"

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise SigverError(f"kernel must be one of {KERNELS}, got {self.kernel!r}")
        if self.scaling not in SCALINGS:
            raise SigverError(f"scaling must be one of {SCALINGS}, got {self.scaling!r}")
        if not (self.C > 0 and self.gamma > 0):
            raise SigverError("C and gamma must be positive")

    @classmethod
    def for_features(cls, meta: Any = None, **overrides: Any) -> ClassifierConfig:
        """The SVM the features' model asks for (``classifier_params_for(meta)``), as
        enrollment trains it; ``overrides`` (e.g. ``scaling``) on top."""
        from sigver.usermodel import classifier_params_for

        p = classifier_params_for(meta)
        return cls(**{"kernel": p["kernel"], "C": p["C"], "gamma": p["gamma"], **overrides})


@dataclass
class FoldScores:
    """Decision values of one fold, per exploitation user (sorted user order)."""

    genuine: list[np.ndarray]
    random: list[np.ndarray]
    skilled: list[np.ndarray]
    simple: list[np.ndarray]
    n_support: list[int] = field(default_factory=list)


@dataclass
class EvaluationResult:
    """Scores, per-fold metrics and summary of a protocol run."""

    protocol: ResolvedProtocol
    classifier: ClassifierConfig
    folds: list[dict[str, Any]]
    scores: list[FoldScores]
    summary: dict[str, dict[str, float]]
    a_priori: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    #: Operating point at a threshold given by the caller (:func:`fixed_threshold_point`),
    #: None when no threshold was given.
    fixed_threshold: dict[str, Any] | None = None


# -- engines -------------------------------------------------------------------------

#: Skip scikit-learn's NaN/inf check of each user's precomputed gram matrix in the
#: fast engine (the fold's kernel is checked once instead). Only
#: scripts/bench_protocol.py turns it off, to measure what the check costs.
ASSUME_FINITE_GRAM = True


def _svc(cfg: ClassifierConfig, kernel: str, y: np.ndarray) -> SVC:
    classes = np.array([0, 1])
    return SVC(
        kernel=kernel,
        C=cfg.C,
        gamma=cfg.gamma,
        class_weight=resolve_class_weight("skew", classes, y),
    )


def _labels(n_pos: int, n_neg: int) -> np.ndarray:
    return np.r_[np.ones(n_pos, dtype=np.int64), np.zeros(n_neg, dtype=np.int64)]


def _naive_user(
    x: np.ndarray, split: FoldSplit, i: int, cfg: ClassifierConfig, fold_scale: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    refs, negs = split.refs[i], split.training_negatives(i)
    train = x[np.r_[refs, negs]].astype(np.float64)
    y = _labels(refs.size, negs.size)
    scale = StandardScaler(with_mean=False).fit(train).scale_ if fold_scale is None else fold_scale
    svc = _svc(cfg, cfg.kernel, y).fit(train / scale, y)

    def score(idx: np.ndarray) -> np.ndarray:
        if idx.size == 0:
            return np.zeros(0)
        return svc.decision_function(x[idx].astype(np.float64) / scale)

    return (
        score(split.test_genuine[i]),
        score(split.random_forgeries(i)),
        score(split.skilled[i]),
        score(split.simple[i]),
        int(svc.support_.size),
    )


def _fold_pool(split: FoldSplit) -> np.ndarray:
    """Training pool of a fold: shared negatives then every user's references."""
    return np.concatenate([split.negatives, *split.refs])


def _fold_scale(x: np.ndarray, split: FoldSplit) -> np.ndarray:
    pool = x[_fold_pool(split)].astype(np.float64)
    return StandardScaler(with_mean=False).fit(pool).scale_


def _fast_chunk(
    users: list[int],
    split: FoldSplit,
    cfg: ClassifierConfig,
    k_pool: np.ndarray,
    k_gen: np.ndarray,
    pool_pos: dict[int, int],
    xs_pool: np.ndarray,
    x: np.ndarray,
    scale: np.ndarray,
    gen_offsets: np.ndarray,
    tick: Callable[[], None],
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]]:
    n_neg = split.negatives.size
    neg_pos = np.arange(n_neg)
    buf: np.ndarray | None = None
    out = []
    for i in users:
        ref_pos = np.array([pool_pos[int(s)] for s in split.refs[i]], dtype=np.int64)
        extra = split.exp_negatives[i] if split.exp_negatives else np.zeros(0, dtype=np.int64)
        r = ref_pos.size
        if extra.size == 0:
            # The negatives block is the same for every user with the same number of
            # references: fill it once per worker, then overwrite the reference rows/cols.
            train_pos = np.r_[ref_pos, neg_pos]
            if buf is None or buf.shape[0] != r + n_neg:
                buf = np.empty((r + n_neg, r + n_neg))
                buf[r:, r:] = k_pool[:n_neg, :n_neg]
            buf[:r, :] = k_pool[np.ix_(ref_pos, train_pos)]
            buf[r:, :r] = k_pool[np.ix_(neg_pos, ref_pos)]
            gram = buf
        else:
            extra_pos = np.array([pool_pos[int(s)] for s in extra], dtype=np.int64)
            train_pos = np.r_[ref_pos, neg_pos, extra_pos]
            gram = k_pool[np.ix_(train_pos, train_pos)]
        y = _labels(r, train_pos.size - r)
        # The kernel was checked for NaN/inf once per fold (score_fold); scikit-learn's
        # own check of every user's (n x n) gram costs as much as libsvm's fit.
        # config_context is thread-local, hence set here, inside the worker.
        with config_context(assume_finite=ASSUME_FINITE_GRAM):
            svc = _svc(cfg, "precomputed", y).fit(gram, y)
        sv_pos = train_pos[svc.support_]
        dual = svc.dual_coef_[0]
        b = float(svc.intercept_[0])
        gen_scores = k_gen[:, sv_pos] @ dual + b
        lo, hi = gen_offsets[i], gen_offsets[i + 1]
        sv_x = xs_pool[sv_pos]

        def score(idx: np.ndarray, sv_x: np.ndarray = sv_x, dual: Any = dual, b: float = b):
            if idx.size == 0:
                return np.zeros(0)
            xs = x[idx].astype(np.float64) / scale
            return kernel_matrix(xs, sv_x, cfg.kernel, cfg.gamma) @ dual + b

        out.append(
            (
                gen_scores[lo:hi],
                np.r_[gen_scores[:lo], gen_scores[hi:]],
                score(split.skilled[i]),
                score(split.simple[i]),
                int(sv_pos.size),
            )
        )
        tick()
    return out


def score_fold(
    x: np.ndarray,
    split: FoldSplit,
    cfg: ClassifierConfig,
    *,
    engine: str = "fast",
    n_jobs: int = 1,
    progress: bool = False,
    users: list[int] | None = None,
) -> FoldScores:
    """Train every exploitation user's classifier of one fold and score its test sets.

    Parameters
    ----------
    x : ndarray, shape (N, D)
        Features of the whole dataset.
    split : FoldSplit
    cfg : ClassifierConfig
    engine : {"fast", "naive"}
    n_jobs : int
        Threads over users (libsvm and BLAS release the GIL).
    progress : bool
        tqdm bar over users.
    users : list of int, optional
        Positions (in ``split.users``) of the users to process; all by default
        (benchmarks time a subset). Random forgeries still come from every user.

    Returns
    -------
    FoldScores
    """
    if engine not in ENGINES:
        raise SigverError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "fast" and cfg.scaling != "fold":
        raise SigverError("the fast engine implements scaling='fold' only; use engine='naive'")
    from sigver._util import progress_bar

    todo = np.arange(len(split.users)) if users is None else np.asarray(users, dtype=np.int64)
    n_users = int(todo.size)
    n_jobs = max(1, min(int(n_jobs), n_users))
    bar = progress_bar(
        total=n_users, desc=f"fold {split.fold}", unit="user", enabled=progress, leave=False
    )
    # Contiguous chunks keep each worker's reusable kernel buffer warm.
    chunks = [c.tolist() for c in np.array_split(todo, n_jobs) if c.size]
    with bar:
        if engine == "naive":
            fold_scale = _fold_scale(x, split) if cfg.scaling == "fold" else None

            def run_naive(users: list[int]) -> list[Any]:
                res = []
                for i in users:
                    res.append(_naive_user(x, split, i, cfg, fold_scale))
                    bar.update(1)
                return res

            parts = Parallel(n_jobs=n_jobs, prefer="threads")(delayed(run_naive)(c) for c in chunks)
        else:
            pool = _fold_pool(split)
            pool_pos = {int(s): p for p, s in enumerate(pool)}
            xp = x[pool].astype(np.float64)
            scale = StandardScaler(with_mean=False).fit(xp).scale_
            xs_pool = xp / scale
            del xp
            k_pool = kernel_matrix(xs_pool, xs_pool, cfg.kernel, cfg.gamma)
            if not np.isfinite(k_pool).all():
                raise SigverError("features give a non-finite kernel (NaN or inf in features)")
            gen_all = split.all_test_genuine
            k_gen = kernel_matrix(
                x[gen_all].astype(np.float64) / scale, xs_pool, cfg.kernel, cfg.gamma
            )
            gen_offsets = np.r_[0, np.cumsum([g.size for g in split.test_genuine])]
            parts = Parallel(n_jobs=n_jobs, prefer="threads")(
                delayed(_fast_chunk)(
                    c,
                    split,
                    cfg,
                    k_pool,
                    k_gen,
                    pool_pos,
                    xs_pool,
                    x,
                    scale,
                    gen_offsets,
                    lambda: bar.update(1),
                )
                for c in chunks
            )
    flat = [r for part in parts for r in part]
    return FoldScores(
        genuine=[r[0] for r in flat],
        random=[r[1] for r in flat],
        skilled=[r[2] for r in flat],
        simple=[r[3] for r in flat],
        n_support=[r[4] for r in flat],
    )


# -- protocol ------------------------------------------------------------------------


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0)


def _mean_std(values: list[float]) -> dict[str, float]:
    """Mean and std (``ddof=0``) over the folds where the value is defined."""
    vals = np.asarray(values, dtype=np.float64)
    vals = vals[~np.isnan(vals)]
    # A metric undefined in every fold (e.g. AUC without skilled forgeries) stays NaN
    # rather than tripping numpy's empty-slice warnings.
    if vals.size:
        return {"mean": float(vals.mean()), "std": float(vals.std())}
    return {"mean": float("nan"), "std": float("nan")}


def a_priori_other_folds(scores: list[FoldScores]) -> dict[str, Any]:
    """A-priori operating point: global EER threshold chosen on the *other* folds.

    For fold ``k`` the threshold is the global-EER threshold of the pooled
    genuine vs skilled scores of every fold but ``k``, then FRR / FAR_random /
    FAR_skilled are measured on fold ``k`` at that threshold. It is a-priori
    with respect to fold ``k``'s scores; note the other folds hold the same
    users (different reference draws), so it is optimistic compared to a
    threshold tuned on disjoint development users.
    """
    if len(scores) < 2:
        return {"available": False, "reason": "needs at least 2 folds"}
    per_fold = []
    for k, fold in enumerate(scores):
        others = [s for j, s in enumerate(scores) if j != k]
        g = _cat([a for s in others for a in s.genuine])
        sk = _cat([a for s in others for a in s.skilled])
        if g.size == 0 or sk.size == 0:
            return {"available": False, "reason": "no skilled forgeries to choose a threshold"}
        t = eer_threshold(g, sk)
        per_fold.append(
            operating_point(_cat(fold.genuine), _cat(fold.random), _cat(fold.skilled), t)
        )
    out: dict[str, Any] = {
        "available": True,
        "method": "global EER threshold (genuine vs skilled) chosen on the other folds",
        "per_fold": per_fold,
    }
    for key in ("FRR", "FAR_random", "FAR_skilled", "HTER_skilled"):
        vals = np.array([p[key] for p in per_fold])
        out[key] = {"mean": float(np.mean(vals)), "std": float(np.std(vals))}
    return out


def fixed_threshold_point(
    scores: list[FoldScores], threshold: float, source: str = "given"
) -> dict[str, Any]:
    """A-priori operating point at a threshold chosen elsewhere (e.g. on development users).

    The threshold is applied unchanged to every fold: FRR, FAR_random,
    FAR_skilled (and their skilled mean, HTER_skilled) are measured per fold on
    the pooled scores of the exploitation users, then summarised over folds.
    Typically ``threshold`` is a model's calibrated default
    (``meta.metrics["calibration"]["threshold"]``, chosen on development writers
    by :func:`sigver.calibration.calibrate_threshold`), which makes this the
    honest a-priori figure; it is only meaningful on the score scale it was
    chosen on. Calibration trains the per-user-scaled SVM (``scaling="user"``),
    which ``evaluate`` reproduces exactly with ``ClassifierConfig(scaling="user")``;
    the fast engine's per-fold scaling gives slightly different decision values.

    Parameters
    ----------
    scores : list of FoldScores
        Scores of every fold.
    threshold : float
        Finite decision threshold (accept when ``score >= threshold``).
    source : str
        Where the threshold comes from (recorded verbatim in the reports).

    Returns
    -------
    dict
        ``threshold``, ``source``, ``per_fold`` (one :func:`~sigver.metrics.operating_point`
        dict per fold, with its ``fold`` index) and ``summary`` (mean and std over folds,
        ``ddof=0``, of FRR, FAR_random, FAR_skilled, HTER_skilled; NaN where undefined).

    Raises
    ------
    SigverError
        If ``threshold`` is not a finite number.
    """
    t = float(threshold)
    if not np.isfinite(t):
        raise SigverError(f"the fixed threshold must be a finite number, got {threshold!r}")
    per_fold = []
    for k, fold in enumerate(scores):
        point = operating_point(_cat(fold.genuine), _cat(fold.random), _cat(fold.skilled), t)
        per_fold.append({"fold": k, **point})
    summary = {
        key: _mean_std([p[key] for p in per_fold])
        for key in ("FRR", "FAR_random", "FAR_skilled", "HTER_skilled")
    }
    return {"threshold": t, "source": source, "per_fold": per_fold, "summary": summary}


def evaluate(
    fs: FeatureSet,
    protocol: ProtocolConfig,
    classifier: ClassifierConfig | None = None,
    *,
    engine: str = "fast",
    n_jobs: int = 2,
    progress: bool = True,
    threshold: float | None = None,
    threshold_source: str = "given",
) -> EvaluationResult:
    """Run a writer-dependent protocol on a feature set.

    Parameters
    ----------
    fs : FeatureSet
    protocol : ProtocolConfig
    classifier : ClassifierConfig, optional
        Published defaults when omitted.
    engine : {"fast", "naive"}
        ``scaling="user"`` forces ``"naive"``.
    n_jobs : int
        Threads over users.
    progress : bool
    threshold : float, optional
        Also report the operating point at this fixed threshold (chosen on
        development users, e.g. a model's calibrated default), see
        :func:`fixed_threshold_point`.
    threshold_source : str
        Where ``threshold`` comes from, recorded in the reports.

    Returns
    -------
    EvaluationResult
        Per-fold metrics (threshold 0 = the classifiers' own), summary
        (mean and std over folds, ``ddof=0``), the a-priori operating point
        (threshold from the other folds) and, with ``threshold``, the
        fixed-threshold operating point.
    """
    cfg = classifier or ClassifierConfig()
    if threshold is not None and not np.isfinite(float(threshold)):
        # Fail before the expensive part.
        raise SigverError(f"the fixed threshold must be a finite number, got {threshold!r}")
    if cfg.scaling == "user" and engine == "fast":
        logger.info("scaling='user' is only implemented by the naive engine; using it")
        engine = "naive"
    resolved, splits = make_splits(fs.y, fs.yforg, fs.user_ids, protocol)
    logger.info(
        "%d exploitation users, %d development users, %d folds, %d negatives per user (fold 0)",
        resolved.exp_users.size,
        resolved.dev_users.size,
        len(splits),
        splits[0].training_negatives(0).size,
    )
    all_scores = [
        score_fold(fs.features, split, cfg, engine=engine, n_jobs=n_jobs, progress=progress)
        for split in splits
    ]
    return result_from_scores(
        resolved,
        splits,
        all_scores,
        cfg,
        meta={"engine": engine, "n_jobs": n_jobs, **fs.meta},
        threshold=threshold,
        threshold_source=threshold_source,
    )


def result_from_scores(
    resolved: ResolvedProtocol,
    splits: list[FoldSplit],
    all_scores: list[FoldScores],
    cfg: ClassifierConfig,
    *,
    meta: dict[str, Any],
    threshold: float | None = None,
    threshold_source: str = "given",
) -> EvaluationResult:
    """Per-fold metrics, summary and operating points of already computed scores.

    Shared by :func:`evaluate` and the deployment simulation, so both report
    the same metrics with the same definitions.
    """
    folds = []
    for split, scores in zip(splits, all_scores, strict=True):
        m = dict(compute_metrics(scores.genuine, scores.random, scores.skilled))
        simple = _cat(scores.simple)
        if simple.size:
            m["FAR_simple"] = far(simple)
            m["n_simple"] = int(simple.size)
        m["fold"] = split.fold
        m["seed"] = split.seed
        if scores.n_support:
            m["mean_n_support"] = float(np.mean(scores.n_support))
        logger.info(
            "fold %d: EER_global %.2f%%  EER_user %.2f%%",
            split.fold,
            100 * m["EER_global"],
            100 * m["EER_user"],
        )
        folds.append(m)
    keys = list(SUMMARY_METRICS) + (["FAR_simple"] if "FAR_simple" in folds[0] else [])
    summary = {key: _mean_std([f[key] for f in folds]) for key in keys}
    return EvaluationResult(
        protocol=resolved,
        classifier=cfg,
        folds=folds,
        scores=all_scores,
        summary=summary,
        a_priori=a_priori_other_folds(all_scores),
        meta=meta,
        fixed_threshold=(
            None
            if threshold is None
            else fixed_threshold_point(all_scores, threshold, threshold_source)
        ),
    )


#: Issue 10's bound on FRR and FAR_skilled at a fixed threshold, over EER_global.
TRANSFER_BOUND = 1.25
#: Issue 10's target for the gap EER_global - EER_user, over the raw scores' gap.
GAP_TARGET = 0.5


def transfer_check(
    decided: list[FoldScores],
    raw: list[FoldScores],
    measured: Mapping[str, float],
    *,
    floor_rounds: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """How well a fixed operating point and the per-user decision hold on these users.

    Issue 10's two questions, asked of one deployment simulation:

    - do the rates at the fixed threshold match the a-posteriori global EER of the same
      scores (``FRR / EER_global`` and ``FAR_skilled / EER_global`` within
      :data:`TRANSFER_BOUND`)?
    - how much of the raw SVM scores' gap ``EER_global - EER_user`` (no normaliser, no
      cue) is left by the decision (at most :data:`GAP_TARGET`)? ``floor`` is the gap the
      decided scores would leave with the users made exchangeable
      (:func:`sigver.metrics.aligned_gap`, ``floor_rounds`` dealings per fold): a per-user
      normalisation fitted without the test scores is not expected to go below it, so a
      target below the floor cannot be met by normalisation alone.

    Parameters
    ----------
    decided, raw : list of FoldScores
        The scores the product decides with, and the same users' raw SVM scores (no
        normaliser, no cue: :attr:`DeploymentRun.raw`).
    measured : mapping
        Fold means of ``FRR`` and ``FAR_skilled`` at the threshold.
    floor_rounds : int
        Dealings per fold for the floor.
    seed : int
        Seed of the first fold's dealings (the next folds take ``seed + 1``, ...).

    Returns
    -------
    dict
        Fractions and ratios; a ratio is None where it is undefined (its denominator not
        positive, or either side not finite). ``threshold_holds`` and ``gap_halved`` are
        False when undefined. ``defined`` is False when no user has both test genuines and
        skilled forgeries, and then every figure is undefined. Fold means leave out folds
        where a figure is undefined, as the fold summaries do.
    """
    from sigver.metrics import aligned_gap

    def eers(scores: list[FoldScores]) -> dict[str, float]:
        m = [compute_metrics(f.genuine, f.random, f.skilled) for f in scores]
        # The fold summaries' mean, so that ``decided`` is the result's own summary.
        eg = _mean_std([x["EER_global"] for x in m])["mean"]
        eu = _mean_std([x["EER_user"] for x in m])["mean"]
        return {"EER_global": eg, "EER_user": eu, "gap": eg - eu}

    def ratio(a: float, b: float) -> float | None:
        return float(a / b) if np.isfinite(a) and np.isfinite(b) and b > 0 else None

    defined = any(
        np.size(g) and np.size(s)
        for f in decided
        for g, s in zip(f.genuine, f.skilled, strict=True)
    )
    if not defined:
        # Without a user having both genuine test signatures and skilled forgeries there is
        # no EER to compare with (a dataset without skilled forgeries, say).
        nan = {"EER_global": float("nan"), "EER_user": float("nan"), "gap": float("nan")}
        own, base, floor = dict(nan), dict(nan), float("nan")
    else:
        own, base = eers(decided), eers(raw)
        floors = [
            aligned_gap(f.genuine, f.skilled, rounds=floor_rounds, seed=seed + i)
            for i, f in enumerate(decided)
        ]
        floor = _mean_std(floors)["mean"]
    frr_r = ratio(measured["FRR"], own["EER_global"])
    far_r = ratio(measured["FAR_skilled"], own["EER_global"])
    gap_r = ratio(own["gap"], base["gap"])
    return {
        "FRR_over_EER_global": frr_r,
        "FAR_skilled_over_EER_global": far_r,
        "bound": TRANSFER_BOUND,
        "threshold_holds": bool(
            frr_r is not None
            and far_r is not None
            and frr_r <= TRANSFER_BOUND
            and far_r <= TRANSFER_BOUND
        ),
        "decided": own,
        "raw": base,
        "gap_ratio": gap_r,
        "gap_target": GAP_TARGET,
        "gap_halved": bool(gap_r is not None and gap_r <= GAP_TARGET),
        "floor": floor,
        "floor_ratio": ratio(floor, base["gap"]),
        "floor_rounds": floor_rounds,
        "defined": bool(defined),
    }


def format_transfer(check: Mapping[str, Any]) -> str:
    """Lines of :func:`transfer_check`'s figures, for the console and results.md.

    Works on a check read back from ``deployment.json`` too, where undefined figures are
    None (JSON has no NaN).
    """

    def finite(v: Any) -> bool:
        return v is not None and bool(np.isfinite(v))

    def x(v: float | None) -> str:
        return f"{v:.2f}x" if finite(v) else "undefined"

    def pts(v: float | None) -> str:
        return f"{100 * v:.2f}" if finite(v) else "undefined"

    if not check.get("defined", True):
        return (
            "threshold on these users: not checked (no user has both test genuine signatures "
            "and skilled forgeries, so there is no EER to compare the rates with)"
        )
    d, r = check["decided"], check["raw"]
    rates = (check["FRR_over_EER_global"], check["FAR_skilled_over_EER_global"])
    if all(finite(v) for v in rates):
        verdict = ("within" if check["threshold_holds"] else "outside") + f" {check['bound']:g}x"
    else:
        verdict = "not checked: EER_global is 0 or undefined"
    if finite(check["gap_ratio"]):
        share = f"{check['gap_ratio']:.2f} of the raw scores' {pts(r['gap'])}"
    elif finite(r["gap"]) and r["gap"] <= 0:
        share = "raw scores' gap not positive"
    else:
        share = "share of the raw scores' gap undefined"
    lines = [
        f"threshold on these users: FRR {x(rates[0])} and FAR_skilled {x(rates[1])} of the "
        f"a-posteriori EER_global ({verdict})",
        f"gap EER_global - EER_user: {pts(d['gap'])} points ({pts(d['EER_global'])} - "
        f"{pts(d['EER_user'])}), {share} (target {check['gap_target']:g}; floor of "
        f"exchangeable users {pts(check['floor'])} points"
        + (f" = {check['floor_ratio']:.2f}" if finite(check["floor_ratio"]) else "")
        + ")",
    ]
    iv = check.get("intervals")
    if iv:

        def span(k: str) -> str:
            lo, hi = iv[k]
            return f"{lo:.2f}-{hi:.2f}" if finite(lo) and finite(hi) else "undefined"

        def share_of(k: str) -> str:
            return f"{100 * iv[k]:.0f} %" if finite(iv[k]) else "no"

        lines.append(
            f"{round(100 * iv['level'])} % intervals over {iv['rounds']} writer bootstraps: "
            f"FRR / EER_global {span('FRR_over_EER_global')}, FAR_skilled / EER_global "
            f"{span('FAR_skilled_over_EER_global')} (both within {check['bound']:g}x in "
            f"{share_of('share_holds')} of draws), gap ratio {span('gap_ratio')} (at most "
            f"{check['gap_target']:g} in {share_of('share_halved')} of draws)"
        )
    return "\n".join(lines)


# -- deployment simulation ----------------------------------------------------------


@dataclass
class DeploymentRun:
    """Raw scores of a deployment simulation and what is needed to normalise them.

    Attributes
    ----------
    resolved : ResolvedProtocol
    splits : list of FoldSplit
    raw : list of FoldScores
        SVM decision values (un-normalised), per fold and user.
    loo : list of list of ndarray
        Leave-one-out reference scores per fold and user (empty when not computed).
    cohort : list of list of ndarray
        Cohort scores per fold and user (empty when no cohort).
    normalization : str
        Normaliser the classifiers were trained for (the product's choice).
    info : dict
        Negatives, cohort and classifier facts for the reports.
    """

    resolved: ResolvedProtocol
    splits: list[FoldSplit]
    raw: list[FoldScores]
    loo: list[list[np.ndarray]]
    cohort: list[list[np.ndarray]]
    normalization: str
    info: dict[str, Any] = field(default_factory=dict)
    #: Per fold and user, what ``simulate_deployment(probe=...)`` returned (research).
    probes: list[list[Any]] = field(default_factory=list)
    #: Per row of the population's features, what the model's forgery cue subtracts from
    #: the normalised score (:mod:`sigver.forgery_cue`); ``None`` without a cue.
    penalty: np.ndarray | None = None
    #: Centre each user's penalty on the mean penalty of their references (a centred cue).
    centre_penalty: bool = False
    #: A pairwise cue (:class:`sigver.pair_cue.PairCue`) whose penalty each user's
    #: scores also lose, computed against that user's references; or a mapping from the
    #: index of a user in the population to the cue that user is scored with
    #: (cross-fitting); ``None`` without one.
    pair_cue: Any = None
    #: The population's features the pair cue reads (rows of ``splits``).
    pair_features: np.ndarray | None = None

    def normalizers(self, method: str | None = None) -> list[list[Any]]:
        """Per fold and user, the normaliser ``method`` (default: the run's) fits."""
        from sigver.normalization import fit_normalizer

        method = method or self.normalization
        return [
            [
                fit_normalizer(
                    method,
                    loo_genuine=loo if loo.size else None,
                    cohort=coh if coh.size else None,
                )
                for loo, coh in zip(fold_loo, fold_coh, strict=True)
            ]
            for fold_loo, fold_coh in zip(self.loo, self.cohort, strict=True)
        ]

    def scores(self, method: str | None = None) -> list[FoldScores]:
        """Scores of every fold normalised per user with ``method`` (minus the cue's penalty)."""
        out = []
        for fold, split, norms in zip(self.raw, self.splits, self.normalizers(method), strict=True):
            parts = {
                part: [n.transform(a) for n, a in zip(norms, getattr(fold, part), strict=True)]
                for part in _SCORE_PARTS
            }
            scores = FoldScores(**parts, n_support=list(fold.n_support))
            if self.penalty is not None:
                scores = subtract_penalty(scores, split, self.penalty, centred=self.centre_penalty)
            if self.pair_cue is not None:
                scores = subtract_pair_penalty(scores, split, self.pair_cue, self.pair_features)
            out.append(scores)
        return out

    def with_forgery_cue(self, cue: Any, fs: FeatureSet) -> DeploymentRun:
        """This run decided with ``cue`` (:class:`~sigver.forgery_cue.ForgeryCue`) on ``fs``."""
        return replace(
            self, penalty=cue.weight * cue.z(fs.features), centre_penalty=bool(cue.centred)
        )

    def with_pair_cue(self, pair: Any, fs: FeatureSet) -> DeploymentRun:
        """This run decided with the pairwise cue ``pair`` (:mod:`sigver.pair_cue`) on ``fs``.

        ``pair`` is one :class:`~sigver.pair_cue.PairCue` for every user, or a mapping
        from user id to the cue that user is scored with (a cross-fitted calibration).
        """
        if isinstance(pair, Mapping):
            ids = [str(u) for u in fs.user_ids]
            users = {i for split in self.splits for i in split.users}
            missing = sorted(ids[i] for i in users if ids[i] not in pair)
            if missing:
                raise ValueError(f"no pair cue for users {missing[:5]}")
            pair = {i: pair[ids[i]] for i in users}
        return replace(self, pair_cue=pair, pair_features=np.asarray(fs.features))

    def result(
        self,
        method: str | None = None,
        *,
        threshold: float | None = None,
        threshold_source: str = "given",
        meta: dict[str, Any] | None = None,
    ) -> EvaluationResult:
        """Metrics of the ``method``-normalised scores and the operating point at ``threshold``."""
        method = method or self.normalization
        return result_from_scores(
            self.resolved,
            self.splits,
            self.scores(method),
            # The SVM the users were enrolled with (the model's, e.g. an ensemble's gamma),
            # so the report names it rather than the generic default.
            ClassifierConfig.for_features(
                {"classifier_params": self.info.get("classifier_params") or {}}, scaling="user"
            ),
            meta={
                **(meta or {}),
                "mode": "deployment simulation (negatives: model)",
                "normalization": method,
                **self.info,
            },
            threshold=threshold,
            threshold_source=threshold_source,
        )


#: The parts of :class:`FoldScores`, in order.
_SCORE_PARTS = ("genuine", "random", "skilled", "simple")


def subtract_penalty(
    scores: FoldScores, split: FoldSplit, penalty: np.ndarray, *, centred: bool = False
) -> FoldScores:
    """``scores`` of ``split`` minus each image's ``penalty`` (one value per feature row).

    ``centred``: each user's penalties relative to the mean penalty of that user's
    references in the fold (a centred forgery cue).
    """
    shift = [float(np.mean(penalty[r])) if centred else 0.0 for r in split.refs]
    parts = {
        part: [
            v - penalty[_part_rows(split, part, i)] + shift[i]
            for i, v in enumerate(getattr(scores, part))
        ]
        for part in _SCORE_PARTS
    }
    return FoldScores(**parts, n_support=list(scores.n_support))


def subtract_pair_penalty(
    scores: FoldScores, split: FoldSplit, pair: Any, features: np.ndarray | None
) -> FoldScores:
    """``scores`` of ``split`` minus the pair cue's penalty against each user's references.

    ``pair.applied_penalty(x[rows], x[refs])`` (:class:`sigver.pair_cue.PairCue`): what
    ``Verifier.verify`` subtracts, from the user's stored reference features.
    """
    if features is None:
        raise ValueError("a pair cue needs the population's features")
    x = np.asarray(features)
    parts = {}
    for part in _SCORE_PARTS:
        values = []
        for i, v in enumerate(getattr(scores, part)):
            rows = _part_rows(split, part, i)
            refs = x[split.refs[i]]
            cue = pair[split.users[i]] if isinstance(pair, Mapping) else pair
            values.append(v - cue.applied_penalty(x[rows], refs) if rows.size else v)
        parts[part] = values
    return FoldScores(**parts, n_support=list(scores.n_support))


def _part_rows(split: FoldSplit, part: str, i: int) -> np.ndarray:
    """Feature rows behind ``FoldScores.<part>[i]`` of ``split``."""
    if part == "random":
        return split.random_forgeries(i)
    return {"genuine": split.test_genuine, "skilled": split.skilled, "simple": split.simple}[part][
        i
    ]


def _deploy_user(
    x: np.ndarray,
    split: FoldSplit,
    i: int,
    background: np.ndarray,
    cohort: np.ndarray | None,
    params: dict[str, Any],
    normalization: str,
    statistics: bool,
    probe: Callable[[Any, FoldSplit, int], Any] | None = None,
) -> tuple[Any, ...]:
    from sigver.usermodel import train_user_model

    others = x[split.exp_negatives[i]] if split.exp_negatives else None
    model = train_user_model(
        x[split.refs[i]],
        background,
        others,
        params=params,
        normalization=normalization,
        cohort=cohort,
        statistics=statistics,
    )

    def raw(idx: np.ndarray) -> np.ndarray:
        return model.raw_scores(x[idx]) if idx.size else np.zeros(0)

    return (
        *(raw(_part_rows(split, part, i)) for part in _SCORE_PARTS),
        model.loo_genuine,
        model.cohort_scores,
        np.asarray(model.classifier.support_vectors_.shape[0]),
        None if probe is None else probe(model, split, i),
    )


def simulate_deployment(
    fs: FeatureSet,
    *,
    users: Any,
    background: FeatureSet | None,
    dataset: str | None = None,
    refs: int = 5,
    folds: int = 5,
    seed: int = 1234,
    normalization: str = "none",
    params: dict[str, Any] | None = None,
    cohort_fraction: float | None = None,
    statistics: bool = False,
    probe: Callable[[Any, FoldSplit, int], Any] | None = None,
    forgery_cue: Any = None,
    pair_cue: Any = None,
    n_jobs: int = 1,
    progress: bool = True,
) -> DeploymentRun:
    """Enroll every user of a population as the product does, and score its test sets.

    Per fold (seeds from :func:`sigver.protocol.fold_seeds`) and user: ``refs``
    random genuine references are enrolled with
    :func:`sigver.usermodel.train_user_model` (the code path of
    :meth:`enrollment.Verifier.enroll`): negatives are the model's background
    set (rows of the population's own writers dropped, the cohort held out
    when the normaliser needs it or ``statistics``) and the references of every
    other user of the population (all of them are enrolled). Scored: the user's
    other genuines, all their skilled forgeries, and the other users' test
    genuines as random forgeries.

    Parameters
    ----------
    fs : FeatureSet
        The population's features.
    users : UserSpec or str
        Users of ``fs`` to enroll (a :class:`~sigver.protocol.ProtocolConfig`
        ``exp_users`` value: ids, a ``(start, stop)`` range or ``"all"``).
    background : FeatureSet or None
        The model's background set (with writer ids, for the cohort split).
    dataset : str, optional
        Prefix of the population's ids in ``background`` (default ``fs.meta["dataset"]``).
    refs, folds, seed
        Enrollment size and random draws.
    normalization : str
        The product's normaliser (decides whether the cohort is held out).
    params : dict, optional
        Classifier parameters (when omitted, those the features' model asks for,
        :func:`sigver.usermodel.classifier_params_for`, as enrollment uses).
    cohort_fraction : float, optional
        Share of background writers in the cohort (default
        :data:`sigver.usermodel.DEFAULT_COHORT_FRACTION`).
    statistics : bool
        Compute leave-one-out and cohort scores for every normaliser (research).
    probe : callable, optional
        ``probe(user_model, split, i)`` is called with every trained user
        (:class:`~sigver.usermodel.UserModel`, the fold, the user's index in it);
        its return values are kept in :attr:`DeploymentRun.probes` (research:
        scoring extra samples with the deployed classifiers).
    forgery_cue : ForgeryCue, optional
        The model's writer-independent forgery cue (:mod:`sigver.forgery_cue`): its
        penalty is subtracted from every normalised score, as verification does.
    pair_cue : PairCue, optional
        The pairwise part of the model's cue (:mod:`sigver.pair_cue`), stored with it:
        each user's scores also lose its penalty against their references.
    n_jobs : int
        Threads over users.
    progress : bool

    Returns
    -------
    DeploymentRun
    """
    from sigver._util import progress_bar
    from sigver.calibration import foreign_mask
    from sigver.normalization import NEEDS_COHORT, family
    from sigver.usermodel import DEFAULT_COHORT_FRACTION, classifier_params_for, split_cohort

    family(normalization)  # a clear error for an unknown method, before any training
    fraction = DEFAULT_COHORT_FRACTION if cohort_fraction is None else float(cohort_fraction)
    # The SVM the features' model asks for (an ensemble's gamma), as enrollment uses.
    params = dict(params or classifier_params_for(fs.meta))
    resolved, splits = population_splits(
        fs, users, refs=refs, folds=folds, seed=seed, name="deployment"
    )
    ids = [str(fs.user_ids[u]) for u in resolved.exp_users]
    dataset = dataset if dataset is not None else fs.meta.get("dataset")
    dim = fs.dim
    if background is not None and len(background):
        keep = foreign_mask(background, fs, ids, dataset)
        writers = background.user_ids[background.y][keep]
        feats = background.features[keep]
        in_cohort = (
            split_cohort(writers, fraction)
            if (statistics or family(normalization) in NEEDS_COHORT)
            else np.zeros(len(writers), dtype=bool)
        )
        bg, cohort = feats[~in_cohort], feats[in_cohort]
        dropped = int(np.count_nonzero(~keep))
        n_cohort_writers = len(set(writers[in_cohort].tolist()))
    else:
        bg, cohort = np.zeros((0, dim), np.float32), np.zeros((0, dim), np.float32)
        dropped = n_cohort_writers = 0
    if family(normalization) in NEEDS_COHORT and not len(cohort):
        raise SigverError(f"{normalization} needs a background set to draw the cohort from")
    raw, loo, coh, probes = [], [], [], []
    n_users = len(ids)
    bar = progress_bar(
        total=n_users * len(splits), desc="deployment", unit="user", enabled=bool(progress)
    )
    with bar:
        for split in splits:

            def one(i: int, split: FoldSplit = split) -> tuple[np.ndarray, ...]:
                out = _deploy_user(
                    fs.features,
                    split,
                    i,
                    bg,
                    cohort if len(cohort) else None,
                    params,
                    normalization,
                    statistics,
                    probe,
                )
                bar.update(1)
                return out

            res = Parallel(n_jobs=max(1, int(n_jobs)), prefer="threads")(
                delayed(one)(i) for i in range(n_users)
            )
            raw.append(
                FoldScores(
                    genuine=[r[0] for r in res],
                    random=[r[1] for r in res],
                    skilled=[r[2] for r in res],
                    simple=[r[3] for r in res],
                    n_support=[int(r[6]) for r in res],
                )
            )
            loo.append([r[4] for r in res])
            coh.append([r[5] for r in res])
            probes.append([r[7] for r in res])
    info = {
        "negatives": {
            "background": int(len(bg)),
            "background_dropped_as_population_writers": dropped,
            "other_users_references": int(splits[0].exp_negatives[0].size),
        },
        "cohort": {
            "fraction": fraction,
            "writers": n_cohort_writers,
            "signatures": int(len(cohort)),
            "rule": "sha256(writer id) in the lowest fraction (sigver.usermodel.split_cohort)",
        },
        "classifier_params": params,
        "trainer": "sigver.usermodel.train_user_model (the code path of Verifier.enroll)",
    }
    run = DeploymentRun(resolved, splits, raw, loo, coh, normalization, info, probes)
    if pair_cue is not None:
        info["pair_cue"] = {
            "weight": pair_cue.weight,
            "users": len(pair_cue.users),
            "n_pairs": pair_cue.n_pairs,
            "extra": dict(pair_cue.extra),
            "centred": bool(pair_cue.centred),
        }
        run = run.with_pair_cue(pair_cue, fs)
    if forgery_cue is None:
        return run
    info["forgery_cue"] = {
        "weight": forgery_cue.weight,
        "users": len(forgery_cue.users),
        "centred": bool(forgery_cue.centred),
    }
    return run.with_forgery_cue(forgery_cue, fs)


# -- reports -------------------------------------------------------------------------

#: Column labels of the results tables (a-posteriori EERs labelled as such).
LABELS = {
    "EER_global": "EER global thr. (a-post.)",
    "EER_user": "EER user thr. (a-post.)",
    "FRR": "FRR",
    "FAR_random": "FAR random",
    "FAR_skilled": "FAR skilled",
    "AUC": "mean AUC",
    "FAR_simple": "FAR simple",
}


def _pct(stat: dict[str, float], key: str) -> str:
    if key == "AUC":
        return f"{stat['mean']:.4f} ± {stat['std']:.4f}"
    return f"{100 * stat['mean']:.2f} ± {100 * stat['std']:.2f}"


#: Summary metrics measured at score 0 (the SVM's own threshold).
ZERO_THRESHOLD_METRICS = ("FRR", "FAR_random", "FAR_skilled", "FAR_simple")

#: Metrics of the fixed-threshold operating point shown in the tables and the CSV.
FIXED_METRICS = ("FRR", "FAR_random", "FAR_skilled")


def _fixed_label(fixed: dict[str, Any], key: str) -> str:
    return f"{LABELS[key]} @ T={fixed['threshold']:.4g} (given: {fixed['source']})"


def format_table(result: EvaluationResult, *, markdown: bool = False) -> str:
    """Mean ± std over folds of every summary metric (rates in %), plus the a-priori points.

    In a deployment simulation the scores are normalised per user, so rates at score 0 are
    no operating point of the product; they stay in the JSON and CSV but not in the table,
    whose decision rows are the ones at the deployed threshold ("@ T").
    """
    deployed = str(result.meta.get("mode", "")).startswith("deployment")
    keys = [k for k in result.summary if not (deployed and k in ZERO_THRESHOLD_METRICS)]
    rows = [(LABELS.get(k, k), _pct(result.summary[k], k)) for k in keys]
    ap = result.a_priori
    if ap.get("available"):
        for k in ("FRR", "FAR_random", "FAR_skilled"):
            rows.append((f"a-priori {LABELS[k]}", _pct(ap[k], k)))
    fixed = result.fixed_threshold
    if fixed is not None:
        rows += [(_fixed_label(fixed, k), _pct(fixed["summary"][k], k)) for k in FIXED_METRICS]
    n_folds = len(result.folds)
    if markdown:
        lines = [f"| metric | mean ± std ({n_folds} folds) |", "|---|---|"]
        lines += [f"| {name} | {val} |" for name, val in rows]
        lines.append("")
        lines.append(
            "Rates in %, AUC in [0, 1]. "
            + (
                "Deployment simulation: scores normalised per user as at enrollment. "
                if deployed
                else "FRR / FAR at the classifiers' own threshold (0). "
            )
            + "a-priori: global EER threshold chosen on the other folds."
            + (
                ""
                if fixed is None
                else " @ T: the given threshold T, applied unchanged to every fold."
            )
        )
        return "\n".join(lines) + "\n"
    width = max(len(n) for n, _ in rows)
    lines = [f"{'metric':<{width}}  mean ± std over {n_folds} folds (%)"]
    lines += [f"{name:<{width}}  {val}" for name, val in rows]
    return "\n".join(lines)


def results_dict(result: EvaluationResult, user_ids: np.ndarray) -> dict[str, Any]:
    """JSON-serialisable results: protocol, seeds, classifier, per-fold values, summary.

    Undefined metrics (NaN) become None so that the JSON written from it is strict.
    """
    data: dict[str, Any] = {
        "protocol": result.protocol.to_dict(user_ids),
        "classifier": {
            "kernel": result.classifier.kernel,
            "C": result.classifier.C,
            "gamma": result.classifier.gamma,
            "scaling": result.classifier.scaling,
            "class_weight": "genuine = #negatives / #positives",
        },
        "threshold": 0.0,
        "folds": result.folds,
        "summary": result.summary,
        "a_priori": result.a_priori,
        "meta": result.meta,
    }
    if result.fixed_threshold is not None:
        data["fixed_threshold"] = result.fixed_threshold
    return json_safe(data)


#: Score parts ``scores.npz`` keeps, each with its ``<part>_fold`` and ``<part>_user``.
SCORE_FILE_PARTS = ("genuine", "random", "skilled")


def _score_index(scores: list[FoldScores]) -> dict[str, np.ndarray]:
    """Fold and user (position in the protocol's exploitation users) of every pooled score."""
    out = {}
    for part in SCORE_FILE_PARTS:
        folds, users = [], []
        for k, fold in enumerate(scores):
            for u, a in enumerate(getattr(fold, part)):
                n = np.size(a)
                folds.append(np.full(n, k, np.int32))
                users.append(np.full(n, u, np.int32))
        out[f"{part}_fold"] = _cat(folds).astype(np.int32)
        out[f"{part}_user"] = _cat(users).astype(np.int32)
    return out


def load_fold_scores(path: Any, *, folds: int, users: int) -> list[FoldScores]:
    """The per-fold, per-user scores of a ``scores.npz`` that :func:`write_results` wrote.

    Parameters
    ----------
    path : path-like
        The file.
    folds, users
        The protocol's folds and exploitation users (``results.json``): a user without a
        score of some kind still gets an (empty) entry.

    Raises
    ------
    SigverError
        The file is not one of these, or was written before sigver kept the fold and user
        of each score.
    """
    import zipfile
    from pathlib import Path

    path = Path(path)
    try:
        # allow_pickle=False: a scores file is data, never code.
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise SigverError(f"{path}: not a scores file ({exc})") from exc
    missing = [
        k for p in SCORE_FILE_PARTS for k in (p, f"{p}_fold", f"{p}_user") if k not in arrays
    ]
    if missing:
        raise SigverError(
            f"{path} lacks {', '.join(missing)}: it was written by an older sigver or is not "
            "an evaluation's scores; run sigver evaluate again"
        )
    parts: dict[str, list[list[np.ndarray]]] = {}
    for p in SCORE_FILE_PARTS:
        v, f, u = arrays[p], arrays[f"{p}_fold"], arrays[f"{p}_user"]
        if not (len(v) == len(f) == len(u)):
            raise SigverError(f"{path}: {p} has {len(v)} scores but {len(f)} / {len(u)} indices")
        if len(v) and (f.min() < 0 or f.max() >= folds or u.min() < 0 or u.max() >= users):
            raise SigverError(f"{path}: {p} indices outside {folds} folds x {users} users")
        parts[p] = [
            [v[(f == k) & (u == i)].astype(np.float64) for i in range(users)] for k in range(folds)
        ]
    return [
        FoldScores(
            genuine=parts["genuine"][k],
            random=parts["random"][k],
            skilled=parts["skilled"][k],
            simple=[np.zeros(0) for _ in range(users)],
        )
        for k in range(folds)
    ]


def write_results(
    result: EvaluationResult,
    user_ids: np.ndarray,
    out_dir: Any,
    *,
    plots: bool = True,
    extra_md: str = "",
) -> dict[str, Any]:
    """Write ``results.json``, ``results.csv``, ``results.md``, ``scores.npz`` and plots.

    ``extra_md`` is appended to ``results.md`` (one write: the file is never seen without it).

    Returns
    -------
    dict
        The content of ``results.json``.
    """
    import csv
    import io
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = results_dict(result, user_ids)
    write_json(out / "results.json", data)
    keys = list(result.summary)
    fixed = result.fixed_threshold
    # Fixed-threshold columns (named "<metric>@T") only when a threshold was given, so the
    # default CSV is unchanged; T itself is in results.json / results.md.
    fixed_keys = list(FIXED_METRICS) if fixed is not None else []
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["fold", "seed", *keys, *(f"{k}@T" for k in fixed_keys)])
    for i, f in enumerate(result.folds):
        fixed_vals = [fixed["per_fold"][i][k] for k in fixed_keys] if fixed else []
        writer.writerow(
            [
                f["fold"],
                f["seed"],
                *(f"{f[k]:.6f}" for k in keys),
                *(f"{v:.6f}" for v in fixed_vals),
            ]
        )
    for stat in ("mean", "std"):
        writer.writerow(
            [
                stat,
                "",
                *(f"{result.summary[k][stat]:.6f}" for k in keys),
                *(f"{fixed['summary'][k][stat]:.6f}" for k in fixed_keys),
            ]
        )
    atomic_write(out / "results.csv", buf.getvalue())
    cfg = result.protocol.config
    header = (
        f"# Writer-dependent evaluation: {cfg.name or 'custom protocol'}\n\n"
        f"Features: {result.meta.get('model_id', 'unknown')}; classifier: "
        f"{result.classifier.kernel} SVM (C={result.classifier.C}, "
        f"gamma={result.classifier.gamma:g}, scaling={result.classifier.scaling}); "
        f"{result.protocol.exp_users.size} exploitation users, {cfg.refs} references, "
        f"seed {cfg.seed}.\n\n"
    )
    atomic_write(out / "results.md", header + format_table(result, markdown=True) + extra_md)
    g = _cat([a for s in result.scores for a in s.genuine])
    r = _cat([a for s in result.scores for a in s.random])
    s = _cat([a for s in result.scores for a in s.skilled])
    with atomic_open(out / "scores.npz", "wb") as fh:
        np.savez(fh, genuine=g, random=r, skilled=s, **_score_index(result.scores))
    if plots:
        from sigver.plots import write_plots

        write_plots(
            g,
            r,
            s,
            out,
            title=f"{cfg.name or 'custom protocol'}, {result.meta.get('model_id', 'features')} "
            "(folds pooled)",
            threshold=None if fixed is None else float(fixed["threshold"]),
        )
    return data

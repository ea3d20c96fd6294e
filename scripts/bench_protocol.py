"""Benchmark: naive per-user ``StandardScaler + SVC.fit`` loop vs the fast engine.

Synthetic Gaussian features at GPDS-300 scale by default: 300 exploitation users
(12 references, 10 test genuines, 30 skilled forgeries each), 581 development
users x 14 genuines = 8,134 shared negatives, 2048-d features, one fold.

The fast engine runs on every user of the fold, twice: with scikit-learn's
finiteness check of every user's precomputed gram matrix, and with
``assume_finite`` as the engine ships (the fold's kernel is checked once).
The naive loop costs ~4 s per user on 2 cores at this scale (about 3 h for
300 users x 10 folds), so it is timed on ``--naive-users`` users of the same
fold (scoring the same samples)
and both times are reported per user and extrapolated to users x folds. The
naive loop is run twice on those users:

- ``naive[fold]``: scaler fit on the fold's training pool, then ``SVC.fit``
  per user -- same classifier as the fast engine; decision values and EERs must
  be equal (max |difference| printed);
- ``naive[user]``: the published recipe (scaler per user); shows the effect of
  the documented scaling variant on the EERs.

Usage::

    python scripts/bench_protocol.py                       # full scale, ~6 min on 2 cores
    python scripts/bench_protocol.py --users 60 --dev 120 --dim 512 --naive-users 10
    python scripts/bench_protocol.py --users 100 --dev 200 --fast-only checked   # one mode
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from sigver import evaluation
from sigver._util import command_line, format_machine_info, machine_info
from sigver.evaluation import ClassifierConfig, score_fold
from sigver.metrics import compute_metrics
from sigver.protocol import ProtocolConfig, make_splits


def synthetic(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(args.seed)
    n_users = args.users + args.dev
    n_gen = args.refs + args.test
    counts = np.r_[np.full(args.users, n_gen + args.skilled), np.full(args.dev, args.per_dev)]
    y = np.repeat(np.arange(n_users), counts)
    yforg = np.concatenate(
        [np.r_[np.zeros(n_gen, int), np.ones(args.skilled, int)] for _ in range(args.users)]
        + [np.zeros(args.per_dev, int) for _ in range(args.dev)]
    )
    means = rng.standard_normal((n_users, args.dim), dtype=np.float32)
    x = means[y] * 0.5 + rng.standard_normal((y.size, args.dim), dtype=np.float32)
    # Skilled forgeries: near the user's mean, shifted.
    x[yforg == 1] += 0.3
    return x, y, yforg, np.array([f"{u:04d}" for u in range(n_users)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=300, help="exploitation users")
    p.add_argument("--dev", type=int, default=581, help="development users")
    p.add_argument("--per-dev", type=int, default=14, help="negatives per development user")
    p.add_argument("--refs", type=int, default=12)
    p.add_argument("--test", type=int, default=10)
    p.add_argument("--skilled", type=int, default=30)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--folds", type=int, default=10, help="for the extrapolation only")
    p.add_argument("--naive-users", type=int, default=10)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--fast-only",
        choices=("checked", "assume-finite"),
        help="run only the fast engine, with or without the per-user finiteness check (for "
        "timing each mode as a whole process, e.g. paired runs of the two)",
    )
    args = p.parse_args(argv)

    from threadpoolctl import threadpool_info

    print(f"command: {command_line()}")
    print(format_machine_info(machine_info(include_torch=True)))
    print(f"BLAS: {[(i['internal_api'], i['num_threads']) for i in threadpool_info()]}")
    x, y, yforg, ids = synthetic(args)
    cfg = ProtocolConfig(
        exp_users=(0, args.users),
        dev_users=(args.users, args.users + args.dev),
        refs=args.refs,
        test_genuine=args.test,
        forg_from_dev=args.per_dev,
        folds=1,
    )
    _, (split,) = make_splits(y, yforg, ids, cfg)
    print(
        f"scale: {args.users} exploitation users, {split.negatives.size} negatives, "
        f"{args.dim}-d, {args.refs} refs, {args.test} test genuines, {args.skilled} skilled; "
        f"naive on {args.naive_users} users"
    )

    def sub(scores, n=None):
        k = slice(0, n)
        return scores.genuine[k], scores.random[k], scores.skilled[k]

    clf = ClassifierConfig()
    if args.fast_only:
        evaluation.ASSUME_FINITE_GRAM = args.fast_only == "assume-finite"
        t0 = time.perf_counter()
        score_fold(x, split, clf, engine="fast", n_jobs=args.jobs)
        print(f"fast engine ({args.fast_only}): {time.perf_counter() - t0:.2f} s")
        return 0
    # The fast engine with scikit-learn's per-user finiteness check of the precomputed
    # gram (as before assume_finite), then as shipped; same scores either way.
    evaluation.ASSUME_FINITE_GRAM = False
    t0 = time.perf_counter()
    checked = score_fold(x, split, clf, engine="fast", n_jobs=args.jobs, progress=True)
    t_checked = time.perf_counter() - t0
    evaluation.ASSUME_FINITE_GRAM = True
    t0 = time.perf_counter()
    fast = score_fold(x, split, clf, engine="fast", n_jobs=args.jobs, progress=True)
    t_fast = time.perf_counter() - t0
    same = all(
        np.array_equal(a, b)
        for fa, fb in zip(sub(fast), sub(checked), strict=True)
        for a, b in zip(fa, fb, strict=True)
    )
    print(
        f"fast engine, {args.users} users: {t_checked:.1f} s with the per-user finiteness "
        f"check, {t_fast:.1f} s with assume_finite ({t_checked / t_fast:.2f}x); "
        f"identical scores: {same}"
    )
    subset = list(range(args.naive_users))
    t0 = time.perf_counter()
    naive = score_fold(x, split, clf, engine="naive", n_jobs=args.jobs, users=subset)
    t_naive = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = score_fold(
        x,
        split,
        ClassifierConfig(scaling="user"),
        engine="naive",
        n_jobs=args.jobs,
        users=subset,
    )
    t_ref = time.perf_counter() - t0

    diff = max(
        float(np.max(np.abs(a - b)))
        for fa, na in zip(sub(fast, len(subset)), sub(naive), strict=True)
        for a, b in zip(fa, na, strict=True)
    )
    m_fast = compute_metrics(*sub(fast, len(subset)))
    m_naive = compute_metrics(*sub(naive))
    m_ref = compute_metrics(*sub(ref))
    m_all = compute_metrics(*sub(fast))
    per_fast = t_fast / args.users
    per_naive = t_naive / len(subset)
    per_ref = t_ref / len(subset)
    total = args.users * args.folds
    print(f"\n{'engine':<28}{'s/user':>10}{'extrapolated ' + str(total) + ' user-folds':>34}")
    for name, per in (
        ("fast (measured all users)", per_fast),
        ("naive[fold] (subset)", per_naive),
        ("naive[user] (subset)", per_ref),
    ):
        print(f"{name:<28}{per:>10.3f}{per * total / 60:>28.1f} min")
    print(
        f"\nspeed-up fast vs naive[fold]: {per_naive / per_fast:.1f}x; "
        f"vs naive[user] (published recipe): {per_ref / per_fast:.1f}x"
    )
    print(f"max |decision fast - naive[fold]| on the subset: {diff:.2e}")
    for key in ("EER_global", "EER_user", "FRR", "FAR_random", "FAR_skilled", "AUC"):
        print(
            f"{key:<12} subset: fast {m_fast[key]:.6f}  naive[fold] {m_naive[key]:.6f}  "
            f"naive[user] {m_ref[key]:.6f}   | fast, all users: {m_all[key]:.6f}"
        )
    equal = all(m_fast[k] == m_naive[k] for k in ("EER_global", "EER_user", "FRR", "FAR_skilled"))
    print("EERs equal (fast vs naive[fold]):", equal)
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())

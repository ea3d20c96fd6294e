"""GPDS-style writer-dependent evaluation protocol: user sets, folds, splits.

Users are split into **exploitation** users (the enrolled "system users", whose
classifiers are evaluated; never used to train feature extractors) and
**development** users (whose genuine signatures serve as negatives). For each
fold, with its own recorded seed, and each exploitation user:

- ``refs`` genuine signatures drawn at random are the **references** (positives
  for training the user's classifier). A reference is never scored.
- ``test_genuine`` of the remaining genuines (all of them by default) are the
  user's **test genuines**.
- all of the user's skilled (and simple) forgeries are scored.
- the test genuines of the *other* exploitation users are its **random forgeries**.
- **negatives**: ``forg_from_dev`` genuines drawn from each development user
  (all of them when ``None``), shared by every user of the fold; plus, when
  ``forg_from_exp > 0``, that many of *each other exploitation user's
  references* (drawn per user). Only references are ever used, so no scored
  sample (the user's own test genuines or forgeries, or anyone's test
  genuines) is ever a training sample. With ``forg_from_exp = 0`` (default)
  no exploitation user's data is a negative.

User sets are given over the users sorted in natural order (``"u2" < "u10"``),
either as ``(start, stop)`` position ranges (``--exp-users 0 300``) or as
explicit id lists. This mirrors luizgh/sigver ``sigver/wd/{data,training}.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from sigver.datasets import natural_key
from sigver.errors import DatasetError, SigverError

logger = logging.getLogger(__name__)

__all__ = [
    "ProtocolError",
    "UserSpec",
    "ProtocolConfig",
    "PRESETS",
    "get_preset",
    "FoldSplit",
    "ResolvedProtocol",
    "resolve_users",
    "fold_seeds",
    "make_splits",
    "population_splits",
]

#: A user set: ``(start, stop)`` range over sorted users, a tuple of ids,
#: ``"all"`` (exploitation: every user not in the development set) or
#: ``"none"`` (development: no development users).
UserSpec = tuple[int, int] | tuple[str, ...] | str


class ProtocolError(SigverError, ValueError):
    """The protocol settings are invalid or do not fit the data."""


@dataclass(frozen=True)
class ProtocolConfig:
    """Settings of the writer-dependent protocol (see module docstring).

    Parameters
    ----------
    exp_users : UserSpec, default "all"
    dev_users : UserSpec, default "none"
    refs : int, default 12
        Genuine references per exploitation user.
    test_genuine : int or None, default None
        Test genuines per exploitation user (``None``: all remaining).
    forg_from_dev : int or None, default 14
        Genuines of each development user used as negatives (``None``: all).
    forg_from_exp : int, default 0
        References of each other exploitation user used as negatives.
    folds : int, default 10
    seed : int, default 1234
        Master seed; per-fold seeds are derived by :func:`fold_seeds`.
    name : str or None
        Preset name, for reports.
    """

    exp_users: UserSpec = "all"
    dev_users: UserSpec = "none"
    refs: int = 12
    test_genuine: int | None = None
    forg_from_dev: int | None = 14
    forg_from_exp: int = 0
    folds: int = 10
    seed: int = 1234
    name: str | None = None

    def __post_init__(self) -> None:
        if self.refs < 1:
            raise ProtocolError(f"refs must be >= 1, got {self.refs}")
        if self.test_genuine is not None and self.test_genuine < 1:
            raise ProtocolError(f"test_genuine must be >= 1, got {self.test_genuine}")
        if self.forg_from_dev is not None and self.forg_from_dev < 1:
            raise ProtocolError(f"forg_from_dev must be >= 1 (or all), got {self.forg_from_dev}")
        if self.forg_from_exp < 0:
            raise ProtocolError(f"forg_from_exp must be >= 0, got {self.forg_from_exp}")
        if self.forg_from_exp > self.refs:
            raise ProtocolError(
                f"forg_from_exp ({self.forg_from_exp}) cannot exceed refs ({self.refs}): "
                "exploitation negatives are drawn from other users' references"
            )
        if self.folds < 1:
            raise ProtocolError(f"folds must be >= 1, got {self.folds}")
        for what, spec in (("exp_users", self.exp_users), ("dev_users", self.dev_users)):
            _check_spec(what, spec)
        if self.exp_users == "none":
            raise ProtocolError("exp_users cannot be 'none'")
        if self.dev_users == "all":
            raise ProtocolError("dev_users cannot be 'all'")

    def replace(self, **changes: Any) -> ProtocolConfig:
        """Copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (ranges as lists)."""
        d = asdict(self)
        for key in ("exp_users", "dev_users"):
            spec = d[key]
            d[key] = spec if isinstance(spec, str) else list(spec)
        return d


def _check_spec(what: str, spec: Any) -> None:
    if isinstance(spec, str):
        if spec not in ("all", "none"):
            raise ProtocolError(f"{what} must be a range, a list of ids, 'all' or 'none'")
        return
    if not isinstance(spec, tuple) or not spec:
        raise ProtocolError(f"{what} must be a (start, stop) range or a non-empty tuple of ids")
    if all(isinstance(v, str) for v in spec):
        return
    if len(spec) == 2 and all(isinstance(v, int | np.integer) for v in spec):
        start, stop = int(spec[0]), int(spec[1])
        if not 0 <= start < stop:
            raise ProtocolError(f"{what} range must satisfy 0 <= start < stop, got {spec}")
        return
    raise ProtocolError(f"{what} must be a (start, stop) range of ints or a tuple of id strings")


def _ids(numbers: Sequence[int]) -> tuple[str, ...]:
    return tuple(f"{n:03d}" for n in numbers)


#: Named protocols. Settings follow Hafemann, Sabourin & Oliveira, "Learning
#: features for offline handwritten signature verification using deep
#: convolutional neural networks", Pattern Recognition 70 (2017), and the
#: defaults of its reference code, as far as they could be checked offline.
#: Assumptions (not verifiable here) are marked below.
PRESETS: dict[str, ProtocolConfig] = {
    # /work/shared/data/README.md, "SigComp2011-dev": writers are matched by id.
    "sigcomp2011-dev": ProtocolConfig(
        name="sigcomp2011-dev",
        exp_users=_ids(range(38, 70)),
        dev_users=_ids([1, 2, 3, 4, 6, 9, *range(12, 38)]),
        refs=5,
        test_genuine=None,
        forg_from_dev=None,
        folds=10,
    ),
    # GPDS-960 grey (881 users): exploitation 0-160 / 0-300, development 300-881,
    # 12 references, 10 test genuines, 14 genuines per development user.
    "gpds160": ProtocolConfig(
        name="gpds160",
        exp_users=(0, 160),
        dev_users=(300, 881),
        refs=12,
        test_genuine=10,
        forg_from_dev=14,
    ),
    "gpds300": ProtocolConfig(
        name="gpds300",
        exp_users=(0, 300),
        dev_users=(300, 881),
        refs=12,
        test_genuine=10,
        forg_from_dev=14,
    ),
    # MCYT-75 (15 genuine per user): every user is an exploitation user; there
    # is no development set, so negatives are other users' references.
    # Assumption: all 10 references of every other user are negatives.
    "mcyt": ProtocolConfig(
        name="mcyt",
        exp_users="all",
        dev_users="none",
        refs=10,
        test_genuine=None,
        forg_from_dev=None,
        forg_from_exp=10,
        folds=5,
    ),
    # CEDAR (55 users, 24 genuine each): as MCYT; assumption: 12 references,
    # the other 12 genuines as tests, all 12 references of other users as negatives.
    "cedar": ProtocolConfig(
        name="cedar",
        exp_users="all",
        dev_users="none",
        refs=12,
        test_genuine=None,
        forg_from_dev=None,
        forg_from_exp=12,
    ),
    # Brazilian PUC-PR (168 users): exploitation = first 60 users (40 genuine,
    # 10 simple, 10 skilled each), development = the 108 others (genuine only).
    # 15 references and 10 test genuines per the paper; assumption: 14
    # genuines per development user as negatives (same as GPDS).
    "brazilian": ProtocolConfig(
        name="brazilian",
        exp_users=(0, 60),
        dev_users=(60, 168),
        refs=15,
        test_genuine=10,
        forg_from_dev=14,
    ),
}


def get_preset(name: str) -> ProtocolConfig:
    """Named protocol (see :data:`PRESETS`); raises :class:`ProtocolError` if unknown."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ProtocolError(
            f"unknown protocol preset {name!r}; available: {', '.join(sorted(PRESETS))}"
        ) from None


@dataclass(frozen=True)
class ResolvedProtocol:
    """A protocol bound to a dataset: which users are which, and each fold's seed."""

    config: ProtocolConfig
    exp_users: np.ndarray  # user indices (into user_ids), in sorted user order
    dev_users: np.ndarray
    seeds: tuple[int, ...]

    def to_dict(self, user_ids: np.ndarray) -> dict[str, Any]:
        """JSON-serialisable description with the resolved user ids."""
        return {
            **self.config.to_dict(),
            "exp_user_ids": [str(user_ids[u]) for u in self.exp_users],
            "dev_user_ids": [str(user_ids[u]) for u in self.dev_users],
            "fold_seeds": list(self.seeds),
            "seed_derivation": "numpy.random.SeedSequence(seed).generate_state(folds, uint32); "
            "fold k uses numpy.random.default_rng(fold_seeds[k])",
        }


@dataclass
class FoldSplit:
    """Sample indices of one fold.

    Per-user lists follow ``users`` (exploitation user indices, sorted order).
    """

    fold: int
    seed: int
    users: np.ndarray
    refs: list[np.ndarray]
    test_genuine: list[np.ndarray]
    skilled: list[np.ndarray]
    simple: list[np.ndarray]
    negatives: np.ndarray
    exp_negatives: list[np.ndarray] = field(default_factory=list)

    def random_forgeries(self, i: int) -> np.ndarray:
        """Random forgeries of the ``i``-th user: the other users' test genuines."""
        others = [g for j, g in enumerate(self.test_genuine) if j != i]
        return np.concatenate(others) if others else np.zeros(0, dtype=np.int64)

    def training_negatives(self, i: int) -> np.ndarray:
        """Negatives of the ``i``-th user's classifier (shared + from other references)."""
        if self.exp_negatives and self.exp_negatives[i].size:
            return np.concatenate([self.negatives, self.exp_negatives[i]])
        return self.negatives

    @property
    def all_test_genuine(self) -> np.ndarray:
        """Every user's test genuines, concatenated in user order."""
        return np.concatenate(self.test_genuine)


def sorted_users(user_ids: np.ndarray) -> np.ndarray:
    """User indices ordered by natural sort of their ids."""
    return np.array(sorted(range(len(user_ids)), key=lambda i: natural_key(str(user_ids[i]))))


def _norm_id(uid: str) -> str:
    # "38" and "038" name the same writer in numbered datasets.
    return str(int(uid)) if uid.isdigit() else uid


def _resolve_spec(
    spec: UserSpec, what: str, user_ids: np.ndarray, order: np.ndarray
) -> np.ndarray | None:
    if isinstance(spec, str):
        return None
    if all(isinstance(v, str) for v in spec):
        exact = {str(u): i for i, u in enumerate(user_ids)}
        normed = {_norm_id(str(u)): i for i, u in enumerate(user_ids)}
        idx, missing = [], []
        for uid in spec:
            i = exact.get(uid, normed.get(_norm_id(uid)))
            (missing if i is None else idx).append(uid if i is None else i)
        if missing:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise ProtocolError(f"{what}: {len(missing)} user id(s) not in the data: {shown}")
        wanted = set(idx)
        return np.array([u for u in order if u in wanted], dtype=np.int64)
    start, stop = int(spec[0]), int(spec[1])
    if stop > len(order):
        raise ProtocolError(
            f"{what} range {start}-{stop} exceeds the {len(order)} users of the data"
        )
    return order[start:stop].astype(np.int64)


def resolve_users(config: ProtocolConfig, user_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exploitation and development user indices for a dataset's ``user_ids``.

    Raises
    ------
    ProtocolError
        On unknown ids, out-of-range ranges or overlapping sets.
    """
    order = sorted_users(np.asarray(user_ids))
    dev = _resolve_spec(config.dev_users, "dev_users", user_ids, order)
    dev = np.zeros(0, dtype=np.int64) if dev is None else dev
    exp = _resolve_spec(config.exp_users, "exp_users", user_ids, order)
    if exp is None:
        exp = np.array([u for u in order if u not in set(dev.tolist())], dtype=np.int64)
    overlap = set(exp.tolist()) & set(dev.tolist())
    if overlap:
        raise ProtocolError(
            f"{len(overlap)} user(s) are both exploitation and development users, e.g. "
            f"{user_ids[min(overlap)]}"
        )
    if exp.size == 0:
        raise ProtocolError("no exploitation users")
    if dev.size == 0 and config.forg_from_exp == 0:
        raise ProtocolError(
            "no development users and forg_from_exp = 0: the classifiers would have no "
            "negatives (give --dev-users or --forg-from-exp)"
        )
    if config.forg_from_exp and exp.size < 2:
        raise ProtocolError("forg_from_exp needs at least 2 exploitation users")
    return exp, dev


def fold_seeds(seed: int, folds: int) -> tuple[int, ...]:
    """Per-fold seeds derived from the master seed (recorded in results)."""
    state = np.random.SeedSequence(int(seed)).generate_state(folds, dtype=np.uint32)
    return tuple(int(s) for s in state)


def make_splits(
    y: np.ndarray, yforg: np.ndarray, user_ids: np.ndarray, config: ProtocolConfig
) -> tuple[ResolvedProtocol, list[FoldSplit]]:
    """Draw every fold of the protocol.

    Parameters
    ----------
    y : ndarray of int, shape (N,)
        User index of each sample.
    yforg : ndarray of int, shape (N,)
        0 genuine, 1 skilled, 2 simple.
    user_ids : ndarray of str, shape (U,)
    config : ProtocolConfig

    Returns
    -------
    ResolvedProtocol
    list of FoldSplit
        One per fold; identical for identical inputs.

    Raises
    ------
    DatasetError
        When an exploitation user has too few genuine signatures.
    ProtocolError
        For invalid user sets.
    """
    y = np.asarray(y)
    yforg = np.asarray(yforg)
    exp, dev = resolve_users(config, user_ids)
    gen_of = {u: np.flatnonzero((y == u) & (yforg == 0)) for u in (*exp.tolist(), *dev.tolist())}
    need = config.refs + (config.test_genuine or 1)
    short = [str(user_ids[u]) for u in exp if gen_of[int(u)].size < need]
    if short:
        raise DatasetError(
            f"{len(short)} exploitation user(s) have fewer than {need} genuine signatures "
            f"(refs={config.refs} + test): {', '.join(short[:10])}"
        )
    skilled = [np.flatnonzero((y == u) & (yforg == 1)) for u in exp]
    simple = [np.flatnonzero((y == u) & (yforg == 2)) for u in exp]
    seeds = fold_seeds(config.seed, config.folds)
    splits = []
    for k, s in enumerate(seeds):
        rng = np.random.default_rng(s)
        refs, tests = [], []
        for u in exp:
            perm = rng.permutation(gen_of[int(u)])
            refs.append(np.sort(perm[: config.refs]))
            end = None if config.test_genuine is None else config.refs + config.test_genuine
            tests.append(np.sort(perm[config.refs : end]))
        neg_parts = []
        for u in dev:
            g = gen_of[int(u)]
            if config.forg_from_dev is None or g.size <= config.forg_from_dev:
                neg_parts.append(g)
            else:
                neg_parts.append(np.sort(rng.choice(g, config.forg_from_dev, replace=False)))
        negatives = np.concatenate(neg_parts) if neg_parts else np.zeros(0, dtype=np.int64)
        exp_neg = []
        if config.forg_from_exp:
            for i in range(len(exp)):
                parts = [
                    np.sort(rng.choice(refs[j], config.forg_from_exp, replace=False))
                    for j in range(len(exp))
                    if j != i
                ]
                exp_neg.append(np.concatenate(parts))
        splits.append(
            FoldSplit(
                fold=k,
                seed=s,
                users=exp.copy(),
                refs=refs,
                test_genuine=tests,
                skilled=skilled,
                simple=simple,
                negatives=negatives.astype(np.int64),
                exp_negatives=exp_neg,
            )
        )
    logger.debug(
        "protocol %s: %d exploitation / %d development users, %d folds",
        config.name or "custom",
        exp.size,
        dev.size,
        config.folds,
    )
    return ResolvedProtocol(config, exp, dev, seeds), splits


def population_splits(
    features: Any,
    users: UserSpec,
    *,
    refs: int,
    folds: int,
    seed: int,
    name: str,
) -> tuple[ResolvedProtocol, list[FoldSplit]]:
    """Folds over one population, as a deployment sees it (no development users).

    Each user's ``refs`` references are drawn per fold; the other users'
    references are its negatives (``forg_from_exp = refs``) and their remaining
    genuine signatures stay unseen, serving as random forgeries. Used by the
    deployment simulation and by threshold calibration, so both draw the same
    folds from the same seed.

    Parameters
    ----------
    features : FeatureSet
        Anything with ``y``, ``yforg`` and ``user_ids``.
    users : UserSpec
        The population.
    refs, folds, seed : int
        References per user, folds and the protocol seed.
    name : str
        Protocol name recorded in the results.
    """
    config = ProtocolConfig(
        name=name,
        exp_users=users,
        dev_users="none",
        refs=refs,
        test_genuine=None,
        forg_from_exp=refs,
        folds=folds,
        seed=seed,
    )
    return make_splits(features.y, features.yforg, features.user_ids, config)

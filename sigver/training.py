"""Writer-independent feature learning: the SigNet / SigNet-F training recipe.

A network is trained to classify the writers of a development set (and, for
SigNet-F, to tell skilled forgeries from genuine signatures); its penultimate
representation is then frozen and used as the feature extractor φ(X).

Recipe (defaults of :class:`TrainConfig`, as published): SGD with Nesterov
momentum 0.9, learning rate 1e-3 divided by 10 every ``epochs // 3`` epochs,
weight decay 1e-4, batch 32, 60 epochs, random 150x220 crops of the 170x242
preprocessed images (centre crops for validation), gradient values clipped at
10 as in the reference implementation. Losses (Hafemann et al. 2017):

* SigNet: cross-entropy over writers on genuine signatures;
* SigNet-F (``forg=True``): ``(1 - λ) CE(writer | genuine) + λ BCE(forgery | all)``
  with a one-unit forgery head, λ = 0.95 by default.

Why the published λ = 0.95 did not learn in v1, and the two switches that fix
it (see ``NOTES-issue-9.md`` for the experiments): the forgery head can only
separate forgeries once the features know the writers (a forgery is a
forgery *of someone*), but at λ = 0.95 the writer loss gets 1/19 of the
weight, so the features never get there; and with few forgeries per writer
(4 vs 24 genuine in v1, where the published corpus had 30 vs 24) the BCE's
cheapest solution is the class prior, whose gradient vanishes. ``lamb_warmup``
trains the writer loss alone first and ramps λ linearly to its target over
that many epochs; ``forg_balance`` weights forgeries by ``n_genuine /
n_forgeries`` in the BCE so the prior is no longer a minimum;
``forg_normalise`` divides the loss by ``1 - λ`` so that the writer term keeps
the learning rate it was tuned for.

Fine-tuning (``init``): the backbone starts from a trained checkpoint, the
writer (and forgery) heads are new, and the first ``freeze`` blocks (see
:meth:`sigver.models.FeatureNet.trainable_blocks`) are frozen with their
BatchNorm statistics: ``freeze = 0`` retrains all layers, ``freeze = -1``
retrains only the last (fully connected) block.

Data are held in memory as uint8 tensors and cropped in the training loop
(vectorised gather), so no DataLoader workers are needed. The same code runs
single-process or under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``):
DistributedDataParallel with a DistributedSampler, NCCL on GPU and gloo on CPU;
only rank 0 writes checkpoints and logs. On CUDA, automatic mixed precision
(``torch.autocast`` + ``GradScaler``) is used.

A run folder holds ``last.pt`` (weights + optimizer state, for ``--resume``),
``best.pt`` (best validation writer accuracy), their ``.sha256`` sidecars,
``log.csv``/``log.json`` (one row per epoch) and ``curves.png``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from sigver import __version__
from sigver._util import atomic_write
from sigver.datasets import natural_key
from sigver.errors import DatasetError, ModelError, SigverError

logger = logging.getLogger(__name__)

__all__ = [
    "SIGCOMP_EXPLOITATION",
    "DataSource",
    "TrainConfig",
    "TrainData",
    "TrainResult",
    "UserFilter",
    "load_training_data",
    "parse_users",
    "prepare_training_data",
    "train",
]

#: SigComp2011 exploitation writers: never train on them.
SIGCOMP_EXPLOITATION: tuple[str, str] = ("038", "069")
_SIGCOMP_NAMES = {"sigcomp2011"}


# ----------------------------------------------------------------------------- config


@dataclass
class TrainConfig:
    """Hyper-parameters of a training run (JSON-able, stored in checkpoints).

    Attributes
    ----------
    arch : str
        Registry name of the architecture.
    arch_config : dict
        Builder keyword arguments.
    epochs : int
        Total number of epochs (a resumed run continues up to this number).
    batch_size : int
        Images per optimisation step and per process.
    lr, momentum, weight_decay : float
        SGD with Nesterov momentum.
    lr_decay : float
        Learning-rate multiplier applied every ``max(1, epochs // lr_decay_times)`` epochs.
    lr_decay_times : int
        See ``lr_decay``.
    forg : bool
        SigNet-F: add the forgery loss (needs skilled forgeries in the data).
    lamb : float
        Weight λ of the forgery loss.
    val_fraction : float
        Fraction of each writer's genuine signatures (and forgeries) held out.
    seed : int
        Seed of initialisation, split, shuffling and crops.
    grad_clip : float
        Clip gradient values to ``[-grad_clip, grad_clip]`` (0 disables).
    amp : bool
        Mixed precision on CUDA (ignored on CPU).
    cpu_bf16 : bool
        bfloat16 autocast on CPU (ignored on CUDA): convolutions and matrix products run in
        bfloat16 through oneDNN, while weights, optimiser state, losses and validation stay
        float32. On an AVX512-BF16 CPU a v3-size step was 1.84x faster and an epoch of v3's
        base 1.49x (``scripts/bench_extraction.py --cpu-bf16``), but that run ended with
        worse EERs (``models/sigver-sigresnet-v3.notes.md``). Off by default: a recipe's
        numbers hold only for the precision it was run with.
    channels_last : bool
        NHWC memory format (faster convolutions on CPU with oneDNN).
    name, version : str
        Name/version written to the checkpoints' metadata.
    lamb_warmup : int
        SigNet-F: λ is ``lamb * min(1, epoch / lamb_warmup)`` (epoch 0-based), so the
        first epoch trains the writer loss alone; 0 uses ``lamb`` from the start.
    forg_balance : bool
        SigNet-F: weight forgeries by ``n_genuine / n_forgeries`` (training split) in
        the BCE, so that predicting the class prior is not a minimum.
    forg_normalise : bool
        SigNet-F: divide the loss by ``1 - λ``, i.e. ``CE + λ / (1 - λ) BCE``: λ still
        sets the balance of the two terms, but the writer term keeps the learning
        rate it was tuned for (at λ = 0.95 it otherwise trains 20x slower).
    init : str
        Checkpoint the backbone starts from (fine-tuning); empty for a random start.
    init_sha256 : str
        SHA-256 of ``init`` (recorded, and checked on resume).
    freeze : int
        Fine-tuning: freeze the first N trainable blocks (-1: all but the last).
    """

    arch: str = "signet"
    arch_config: dict[str, Any] = field(default_factory=dict)
    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_decay: float = 0.1
    lr_decay_times: int = 3
    forg: bool = False
    lamb: float = 0.95
    val_fraction: float = 0.1
    seed: int = 42
    grad_clip: float = 10.0
    amp: bool = True
    cpu_bf16: bool = False
    channels_last: bool = True
    name: str = ""
    version: str = "1"
    lamb_warmup: int = 0
    forg_balance: bool = False
    forg_normalise: bool = False
    init: str = ""
    init_sha256: str = ""
    freeze: int = 0

    def __post_init__(self) -> None:
        if self.arch == "ensemble":
            raise SigverError(
                "an ensemble is not trained: build it from trained checkpoints with "
                "scripts/build_ensemble.py, or fine-tune one of its members"
            )
        if self.lamb_warmup < 0:
            raise SigverError(f"lamb_warmup must be >= 0, got {self.lamb_warmup}")
        if self.freeze < -1:
            raise SigverError(f"freeze must be >= -1, got {self.freeze}")
        if self.epochs < 1:
            raise SigverError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 2:
            raise SigverError(f"batch_size must be >= 2 (BatchNorm), got {self.batch_size}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise SigverError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0.0 <= self.lamb <= 1.0:
            raise SigverError(f"lamb must be in [0, 1], got {self.lamb}")
        if self.lr <= 0 or self.lr_decay_times < 1:
            raise SigverError("lr must be > 0 and lr_decay_times >= 1")

    def lamb_at(self, epoch: int) -> float:
        """Forgery-loss weight used during ``epoch`` (0-based)."""
        if self.lamb_warmup <= 0:
            return self.lamb
        return self.lamb * min(1.0, epoch / self.lamb_warmup)

    @property
    def lr_step(self) -> int:
        """Epochs between learning-rate decays."""
        return max(1, self.epochs // self.lr_decay_times)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        return dataclasses.asdict(self)

    def recipe(self) -> dict[str, Any]:
        """The hyper-parameters a model card reports."""
        out = self.to_dict()
        for key in ("name", "version", "arch", "arch_config"):
            out.pop(key)
        out["optimizer"] = "SGD (Nesterov)"
        out["lr_schedule"] = f"x{self.lr_decay} every {self.lr_step} epochs"
        out["loss"] = (
            f"(1-{self.lamb}) writer CE on genuines + {self.lamb} forgery BCE"
            + (f", lambda ramped from 0 over {self.lamb_warmup} epochs" if self.lamb_warmup else "")
            + (", forgeries weighted n_genuine/n_forgeries" if self.forg_balance else "")
            + (", divided by (1 - lambda)" if self.forg_normalise else "")
            if self.forg
            else "writer cross-entropy on genuines"
        )
        if not self.init:
            for key in ("init", "init_sha256", "freeze"):
                out.pop(key)
        out["augmentation"] = "random 150x220 crops of 170x242 images"
        return out


# ------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class UserFilter:
    """Users to keep or drop, optionally restricted to one dataset.

    Parameters
    ----------
    items : tuple of (str, str)
        Inclusive ranges ``(first, last)`` in natural order (a single id is ``(id, id)``).
    dataset : str or None
        Apply only to sources of this dataset (``sigcomp2011:001-037``); all sources if None.
    """

    items: tuple[tuple[str, str], ...]
    dataset: str | None = None

    def matches(self, user: str) -> bool:
        """Whether ``user`` is in one of the ranges."""
        key = natural_key(user)
        return any(natural_key(lo) <= key <= natural_key(hi) for lo, hi in self.items)

    def applies_to(self, dataset: str | None) -> bool:
        """Whether this filter concerns a source of ``dataset``."""
        return self.dataset is None or (dataset is not None and dataset == self.dataset)


def parse_users(spec: str) -> UserFilter:
    """Parse ``[DATASET:]ID|FIRST-LAST|FIRST..LAST[,...]``, e.g. ``001-037`` or
    ``sigcomp2011:001-037,040``.

    ``FIRST..LAST`` is a range whatever the ids hold, for ids with a dash of their
    own (BHSig260: ``B-001..B-010``). ``A-B`` is a range when ``A`` sorts before
    ``B`` (``001-037``); otherwise it is one id (``B-001``, ``H-017``).

    Raises
    ------
    SigverError
        On an empty or malformed specification, or a range of numbers that runs
        backwards (``037-001``).
    """
    dataset: str | None = None
    text = spec.strip()
    if ":" in text:
        dataset, text = (part.strip() for part in text.split(":", 1))
        dataset = dataset.lower() or None
    items: list[tuple[str, str]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if ".." in part:
            lo, _, hi = (p.strip() for p in part.partition(".."))
            if not lo or not hi or natural_key(lo) > natural_key(hi):
                raise SigverError(f"empty user range {part!r} in {spec!r}")
            items.append((lo, hi))
            continue
        match = re.fullmatch(r"([^-\s]+)\s*-\s*([^-\s]+)", part)
        lo, hi = (match.group(1), match.group(2)) if match else (part, part)
        if natural_key(lo) > natural_key(hi):
            if lo.isdigit() and hi.isdigit():
                raise SigverError(f"empty user range {part!r} in {spec!r}")
            lo = hi = part  # an id with a dash in it (BHSig260's B-001)
        items.append((lo, hi))
    if not items:
        raise SigverError(f"no users in {spec!r}")
    return UserFilter(tuple(items), dataset)


@dataclass(frozen=True)
class DataSource:
    """One ``--data`` argument: a cache file or a dataset folder with its reader."""

    path: Path
    dataset: str | None = None

    @classmethod
    def parse(cls, spec: str, default_dataset: str | None = None) -> DataSource:
        """``PATH`` or ``READER:PATH`` (the prefix only counts if it names a reader)."""
        from sigver.datasets import available_readers

        head, sep, tail = spec.partition(":")
        if sep and head.lower() in available_readers():
            return cls(Path(tail), head.lower())
        return cls(Path(spec), default_dataset)


@dataclass
class TrainData:
    """Training images with contiguous class labels.

    Attributes
    ----------
    x : ndarray of uint8, shape (N, 1, H, W)
        Preprocessed images.
    y : ndarray of int64, shape (N,)
        Class (writer) index into ``classes``.
    yforg : ndarray of int8, shape (N,)
        1 for forgeries (skilled or simple), 0 for genuine signatures.
    classes : list of str
        ``source/user`` names of the classes.
    preprocess : dict
        Preprocessing preset of the images (``PreprocessConfig.to_dict()``).
    description : dict
        What the data are (sources, user counts, image counts) for the model card.
    """

    x: np.ndarray
    y: np.ndarray
    yforg: np.ndarray
    classes: list[str]
    preprocess: dict[str, Any]
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        """Number of writers."""
        return len(self.classes)

    def fingerprint(self) -> str:
        """Short hash of labels and class names; guards ``--resume`` against other data."""
        digest = hashlib.sha256()
        digest.update(json.dumps(self.classes).encode())
        digest.update(np.ascontiguousarray(self.y).tobytes())
        digest.update(np.ascontiguousarray(self.yforg).tobytes())
        digest.update(str(self.x.shape).encode())
        return digest.hexdigest()[:16]


def prepare_training_data(
    sources: Sequence[tuple[str, Any]],
    *,
    users: Sequence[UserFilter] = (),
    exclude_users: Sequence[UserFilter] = (),
    forg: bool = False,
    allow_exploitation: bool = False,
    preprocess: Mapping[str, Any] | None = None,
) -> TrainData:
    """Merge signature caches into one training set.

    Parameters
    ----------
    sources : sequence of (str, SignatureCache)
        A short name for each source (used to namespace its user ids) and its cache.
    users, exclude_users : sequence of UserFilter
        Keep only users matched by an applicable ``users`` filter (sources with no
        applicable filter keep everyone), then drop users matched by ``exclude_users``.
    forg : bool
        Keep forgeries (SigNet-F); otherwise only genuine signatures are used.
    allow_exploitation : bool
        Allow SigComp2011 exploitation writers 038-069 (refused by default: they are
        the test writers of the SigComp2011-dev protocol).
    preprocess : mapping, optional
        Preprocessing preset to record; the first source's canvas otherwise.

    Raises
    ------
    DatasetError
        On exploitation writers, image-size mismatches or empty selections.
    """
    xs, ys, yforgs, classes = [], [], [], []
    description: dict[str, Any] = {"sources": []}
    img_size: tuple[int, int] | None = None
    for name, cache in sources:
        dataset = cache.dataset
        selected = np.ones(len(cache), dtype=bool)
        users_of = cache.users
        kept_users = set(cache.user_ids.tolist())
        applicable = [f for f in users if f.applies_to(dataset)]
        if applicable:
            kept_users = {u for u in kept_users if any(f.matches(u) for f in applicable)}
        for f in exclude_users:
            if f.applies_to(dataset):
                kept_users = {u for u in kept_users if not f.matches(u)}
        if dataset in _SIGCOMP_NAMES:
            lo, hi = (natural_key(v) for v in SIGCOMP_EXPLOITATION)
            bad = sorted(u for u in kept_users if lo <= natural_key(u) <= hi)
            if bad and not allow_exploitation:
                raise DatasetError(
                    f"{name}: SigComp2011 exploitation writers {bad[0]}..{bad[-1]} "
                    f"({len(bad)} writers) are the test writers of SigComp2011-dev and must "
                    "not be used for training; add e.g. --users sigcomp2011:001-037 "
                    "(or --allow-exploitation-writers if you really mean it)"
                )
            if bad:
                logger.warning(
                    "TRAINING ON %d SigComp2011 EXPLOITATION WRITERS: results on "
                    "SigComp2011-dev will be meaningless",
                    len(bad),
                )
        selected &= np.isin(users_of, sorted(kept_users))
        if not forg:
            selected &= cache.yforg == 0
        sub = cache.subset(selected)
        if len(sub) == 0:
            logger.warning("%s: no images left after filtering", name)
            continue
        if img_size is None:
            img_size = sub.img_size
        elif sub.img_size != img_size:
            raise DatasetError(
                f"{name}: images are {sub.img_size}, other sources {img_size}; "
                "preprocess all sources to the same size"
            )
        present = [u for u in sub.user_ids.tolist() if u in kept_users]
        present = [u for u in present if np.any(sub.users == u)]
        offset = len(classes)
        index = {u: offset + i for i, u in enumerate(present)}
        classes.extend(f"{name}/{u}" for u in present)
        xs.append(sub.x)
        ys.append(np.array([index[u] for u in sub.users.tolist()], dtype=np.int64))
        yforgs.append((sub.yforg > 0).astype(np.int8))
        description["sources"].append(
            {
                "name": name,
                "dataset": dataset,
                "writers": len(present),
                "first_writer": present[0] if present else None,
                "last_writer": present[-1] if present else None,
                "genuine": int(np.sum(sub.yforg == 0)),
                "forgeries": int(np.sum(sub.yforg > 0)),
            }
        )
    if not xs:
        raise DatasetError("no training images left after user/label filtering")
    if preprocess is None:
        first = sources[0][1]
        canvas = first.canvas_size
        preprocess = {
            "canvas_size": list(canvas) if canvas else [952, 1360],
            "img_size": list(img_size or (170, 242)),
            "input_size": [150, 220],
        }
    data = TrainData(
        x=np.concatenate(xs),
        y=np.concatenate(ys),
        yforg=np.concatenate(yforgs),
        classes=classes,
        preprocess=dict(preprocess),
        description=description,
    )
    description.update(
        writers=data.n_classes,
        images=int(len(data.y)),
        genuine=int(np.sum(data.yforg == 0)),
        forgeries=int(np.sum(data.yforg == 1)),
    )
    return data


def load_training_data(
    specs: Sequence[str],
    *,
    dataset: str | None = None,
    users: Sequence[str] = (),
    exclude_users: Sequence[str] = (),
    forg: bool = False,
    allow_exploitation: bool = False,
    allow_pickle: bool = False,
    n_jobs: int = 2,
    progress: bool = True,
    canvas_size: tuple[int, int] | None = None,
) -> TrainData:
    """Load ``--data`` specifications (caches or ``READER:FOLDER``) and merge them.

    See :func:`prepare_training_data` for the filters; ``users``/``exclude_users``
    are :func:`parse_users` strings. ``canvas_size`` preprocesses folders on that
    canvas (fine-tuning uses the initial model's) instead of each reader's own.
    """
    from sigver.cache import load_signatures

    loaded = []
    for i, spec in enumerate(specs):
        src = DataSource.parse(str(spec), dataset)
        cache = load_signatures(
            src.dataset,
            src.path,
            allow_pickle=allow_pickle,
            canvas_size=canvas_size,
            n_jobs=n_jobs,
            progress=progress,
        )
        if canvas_size is not None and cache.canvas_size is not None:
            if tuple(cache.canvas_size) != tuple(canvas_size):
                logger.warning(
                    "%s was preprocessed on a %s canvas; the model will record %s",
                    spec,
                    tuple(cache.canvas_size),
                    tuple(canvas_size),
                )
        loaded.append((f"{i}-{cache.dataset or src.path.stem}", cache))
    return prepare_training_data(
        loaded,
        users=[parse_users(s) for s in users],
        exclude_users=[parse_users(s) for s in exclude_users],
        forg=forg,
        allow_exploitation=allow_exploitation,
        preprocess=None
        if canvas_size is None
        else {
            "canvas_size": list(canvas_size),
            "img_size": list(loaded[0][1].img_size),
            "input_size": [150, 220],
        },
    )


def split_train_val(
    y: np.ndarray, yforg: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-writer hold-out: ``round(fraction * n)`` of each writer's genuines and forgeries.

    Writers keep at least one genuine signature in training. Returns sorted index
    arrays ``(train, val)``.
    """
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    if fraction > 0:
        for cls in np.unique(y):
            for label in (0, 1):
                idx = np.flatnonzero((y == cls) & (yforg == label))
                n_val = int(round(fraction * len(idx)))
                if label == 0:
                    n_val = min(n_val, len(idx) - 1)
                if n_val > 0:
                    val.append(rng.choice(idx, size=n_val, replace=False))
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(len(y)), val_idx)
    return train_idx, val_idx


# ---------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    best_path, last_path : Path
        Checkpoints (``best.pt`` has the best validation writer accuracy).
    history : list of dict
        One row per epoch (also in ``log.csv``/``log.json``).
    best : dict
        The history row of the best epoch.
    training_time_s : float
        Wall-clock time of the epochs run by this call plus earlier (resumed) ones.
    model : FeatureNet
        The backbone after the last epoch (eval mode; this process's copy).
    """

    best_path: Path
    last_path: Path
    history: list[dict[str, Any]]
    best: dict[str, Any]
    training_time_s: float
    model: nn.Module | None = None


@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _setup_distributed() -> _Dist:
    """Join the process group torchrun describes in the environment (if any)."""

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_initialized():
        return _Dist(dist.get_rank(), dist.get_world_size(), local_rank)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
    else:
        # Each process gets its share of the cores instead of all of them.
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return _Dist(rank, world, local_rank, initialized_here=True)


class TrainingNetwork(nn.Module):
    """What is optimised end to end: backbone + writer head (+ forgery head for SigNet-F).

    Keeping the heads inside one module lets DistributedDataParallel synchronise
    their gradients together with the backbone's.
    """

    def __init__(self, backbone: nn.Module, n_classes: int, forg: bool) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Linear(backbone.feature_dim, n_classes)
        self.forgery = nn.Linear(backbone.feature_dim, 1) if forg else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Writer logits and (SigNet-F) forgery logits of a batch."""
        features = self.backbone(x)
        forg_logits = None if self.forgery is None else self.forgery(features)[:, 0]
        return self.classifier(features), forg_logits


def _crop_batch(
    x: torch.Tensor,
    idx: torch.Tensor,
    size: tuple[int, int],
    generator: torch.Generator | None,
    channels_last: bool,
) -> torch.Tensor:
    """uint8 images ``x[idx]`` -> float crops in [0, 1]; random if ``generator`` else centre.

    Vectorised gather: each sample gets its own offset without a Python loop.
    """

    h, w = size
    batch = x[idx]
    n, _, height, width = batch.shape
    if generator is None:
        top = (height - h) // 2
        left = (width - w) // 2
        crops = batch[:, :, top : top + h, left : left + w]
    else:
        dev = batch.device
        tops = torch.randint(0, height - h + 1, (n,), generator=generator).to(dev)
        lefts = torch.randint(0, width - w + 1, (n,), generator=generator).to(dev)
        rows = tops[:, None] + torch.arange(h, device=dev)
        cols = lefts[:, None] + torch.arange(w, device=dev)
        crops = batch[
            torch.arange(n, device=dev)[:, None, None], 0, rows[:, :, None], cols[:, None, :]
        ][:, None]
    out = crops.float().div_(255.0)
    if channels_last:
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def _losses(
    logits: torch.Tensor,
    forg_logits: torch.Tensor | None,
    y: torch.Tensor,
    yforg: torch.Tensor,
    lamb: float,
    pos_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and its parts; counts for accuracies (as tensors, summed later).

    ``pos_weight`` weights the forgery (positive) terms of the BCE.
    """

    genuine = yforg == 0
    n_gen = genuine.sum()
    if forg_logits is None:
        class_loss = F.cross_entropy(logits.float(), y)
        loss = class_loss
    else:
        if bool(n_gen > 0):
            class_loss = F.cross_entropy(logits[genuine].float(), y[genuine])
        else:
            # Keeps every parameter in the graph (DDP needs it) with a zero gradient.
            class_loss = logits.sum() * 0.0
        forg_loss = F.binary_cross_entropy_with_logits(
            forg_logits.float(), yforg.float(), pos_weight=pos_weight
        )
        loss = (1.0 - lamb) * class_loss + lamb * forg_loss
    with torch.no_grad():
        stats = {
            "loss_sum": loss.detach() * len(y),
            "n": torch.tensor(float(len(y)), device=y.device),
            "class_loss_sum": class_loss.detach() * n_gen,
            "correct": (logits.argmax(1)[genuine] == y[genuine]).sum().float(),
            "n_gen": n_gen.float(),
        }
        if forg_logits is not None:
            stats["forg_loss_sum"] = forg_loss.detach() * len(y)
            stats["forg_correct"] = ((forg_logits > 0).long() == yforg).sum().float()
            # Per-class hits: the balanced accuracy shows a head stuck at the prior.
            stats["forg_tp"] = ((forg_logits > 0) & (yforg == 1)).sum().float()
            stats["forg_tn"] = ((forg_logits <= 0) & (yforg == 0)).sum().float()
            stats["n_forg"] = (yforg == 1).sum().float()
    return loss, stats


def _summarise(stats: Mapping[str, float], prefix: str) -> dict[str, float]:
    n = max(stats.get("n", 0.0), 1.0)
    n_gen = max(stats.get("n_gen", 0.0), 1.0)
    out = {
        f"{prefix}loss": stats.get("loss_sum", 0.0) / n,
        f"{prefix}acc": stats.get("correct", 0.0) / n_gen,
    }
    if "forg_correct" in stats:
        out[f"{prefix}forg_loss"] = stats["forg_loss_sum"] / n
        out[f"{prefix}forg_acc"] = stats["forg_correct"] / n
        n_forg = stats.get("n_forg", 0.0)
        if n_forg > 0 and n - n_forg > 0:
            out[f"{prefix}forg_bacc"] = 0.5 * (
                stats["forg_tp"] / n_forg + stats["forg_tn"] / (stats["n"] - n_forg)
            )
    return out


def _reduce(stats: dict[str, Any], dist_info: _Dist) -> dict[str, float]:

    keys = sorted(stats)
    if not keys:
        return {}
    vec = torch.stack([torch.as_tensor(stats[k], dtype=torch.float64).reshape(()) for k in keys])
    if dist_info.enabled:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        vec = vec.to(device)
        dist.all_reduce(vec)
    return dict(zip(keys, vec.cpu().tolist(), strict=True))


def _cpu_has_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


def _evaluate(
    net: TrainingNetwork,
    x: torch.Tensor,
    y: torch.Tensor,
    yforg: torch.Tensor,
    config: TrainConfig,
    device: torch.device,
) -> dict[str, float]:

    if len(y) == 0:
        return {}
    net.eval()
    totals: dict[str, float] = {}
    with torch.inference_mode():
        for start in range(0, len(y), 128):
            idx = torch.arange(start, min(start + 128, len(y)), device=x.device)
            inputs = _crop_batch(x, idx, (150, 220), None, config.channels_last).to(device)
            logits, forg_logits = net(inputs)
            _, stats = _losses(
                logits, forg_logits, y[idx].to(device), yforg[idx].to(device), config.lamb
            )
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + float(value)
    return _summarise(totals, "val_")


def _write_logs(out_dir: Path, history: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in history:
        columns.extend(k for k in row if k not in columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    csv_bytes = buf.getvalue().encode()
    atomic_write(out_dir / "log.csv", csv_bytes)
    json_bytes = (json.dumps(history, indent=1) + "\n").encode()
    atomic_write(out_dir / "log.json", json_bytes)


def plot_history(
    history: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Loss and accuracy curves (train/validation) as a PNG, written atomically.

    Accuracies are drawn in %; ``title`` (the run: model, architecture, loss) heads
    the figure. Legends sit below the axes so they never cover a curve.
    """
    from sigver.plots import _pyplot, _save

    plt = _pyplot()
    path = Path(path)
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, style in (("train_loss", "-"), ("val_loss", "--")):
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            # Markers: one epoch is one point, which a bare line would not draw.
            ax_loss.plot(epochs, values, style, marker="o", ms=3, label=key)
    for key, style in (
        ("train_acc", "-"),
        ("val_acc", "--"),
        ("train_forg_acc", "-"),
        ("val_forg_acc", "--"),
    ):
        values = [None if row.get(key) is None else 100.0 * row[key] for row in history]
        if any(v is not None for v in values):
            ax_acc.plot(epochs, values, style, marker="o", ms=3, label=key)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_ylim(0, 100)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), fontsize=8, ncol=2)
    fig.suptitle(f"Training curves: {title}" if title else "Training curves", fontsize=10)
    return _save(plt, fig, path)


def _run_title(cfg: TrainConfig) -> str:
    """Model, architecture and loss of a run, for the curves' title."""
    loss = f"SigNet-F lambda {cfg.lamb:g}" if cfg.forg else "writer loss"
    init = ", fine-tuned" if cfg.init else ""
    return f"{cfg.name or 'model'} v{cfg.version} ({cfg.arch}, {loss}{init})"


def _batches(indices: Iterable[int], batch_size: int) -> Iterator[list[int]]:
    chunk: list[int] = []
    for i in indices:
        chunk.append(i)
        if len(chunk) == batch_size:
            yield chunk
            chunk = []
    # BatchNorm cannot train on a single sample; a last batch of one is dropped
    # (on every rank alike, since DistributedSampler gives equal counts).
    if len(chunk) > 1:
        yield chunk


def train(
    data: TrainData,
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    resume: str | os.PathLike[str] | None = None,
    device: str | None = None,
    progress: bool = True,
    command: str = "",
) -> TrainResult:
    """Train a feature extractor on ``data`` and write the run folder ``out_dir``.

    Parameters
    ----------
    data : TrainData
        Training images (see :func:`load_training_data`).
    config : TrainConfig
        Hyper-parameters.
    out_dir : path-like
        Run folder (created); rank 0 writes ``last.pt``, ``best.pt``, logs and the plot.
    resume : path-like, optional
        A ``last.pt`` to continue from (same data and architecture). Optimizer,
        scheduler and history are restored; crops and shuffling depend only on
        (seed, epoch, rank), so an interrupted run resumes exactly. ``epochs`` may
        be raised; the learning-rate step size of the original run is kept.
    device : str, optional
        ``"cpu"``, ``"cuda"``...; CUDA (this process's local rank) when available.
    progress : bool
        Progress (rank 0): tqdm bars on a terminal, a log line every 30 s elsewhere.
    command : str
        Command line recorded in the metadata.

    Returns
    -------
    TrainResult
        On every rank.

    Raises
    ------
    ModelError
        If ``resume`` does not match the data or architecture.
    """
    from sigver._util import progress_bar
    from sigver.models import get_model
    from sigver.models.checkpoint import WeightsMeta, load_checkpoint, save_checkpoint

    dist_info = _setup_distributed()
    try:
        out_dir = Path(out_dir)
        if device is None:
            device = f"cuda:{dist_info.local_rank}" if torch.cuda.is_available() else "cpu"
        dev = torch.device(device)
        use_amp = config.amp and dev.type == "cuda"
        use_bf16 = config.cpu_bf16 and dev.type == "cpu"
        if use_bf16 and not _cpu_has_bf16():
            logger.warning(
                "cpu_bf16: this CPU has no native bfloat16 (AVX512-BF16/AMX); bfloat16 "
                "autocast is emulated there and may be slower than float32"
            )
        channels_last = config.channels_last and dev.type == "cpu"
        cfg = dataclasses.replace(config, channels_last=channels_last)
        if cfg.init and not cfg.init_sha256:
            from sigver.models.checkpoint import file_sha256

            cfg = dataclasses.replace(cfg, init_sha256=file_sha256(cfg.init))

        train_idx, val_idx = split_train_val(data.y, data.yforg, cfg.val_fraction, cfg.seed)
        # Whole training set in memory, on the device (uint8: ~41 kB per image).
        x_all = torch.from_numpy(np.ascontiguousarray(data.x))
        y_all = torch.from_numpy(data.y)
        f_all = torch.from_numpy(data.yforg.astype(np.int64))
        x_tr, y_tr, f_tr = (t[train_idx].to(dev) for t in (x_all, y_all, f_all))
        x_va, y_va, f_va = (t[val_idx].to(dev) for t in (x_all, y_all, f_all))
        if cfg.forg and not bool((f_tr == 1).any()):
            raise DatasetError("--forg needs forgeries in the training data; none found")

        torch.manual_seed(cfg.seed)
        backbone = get_model(cfg.arch, **cfg.arch_config)
        if channels_last and _min_conv_channels(backbone) < 8:
            # oneDNN's NHWC kernels crash intermittently (SIGSEGV/SIGFPE in backward) on
            # convolutions with fewer than 8 output channels (seen with torch 2.x on CPU).
            logger.debug("channels_last disabled: a convolution has < 8 output channels")
            channels_last = False
            cfg = dataclasses.replace(cfg, channels_last=False)
        frozen: list[nn.Module] = []
        # A fine-tune keeps its init's feature space, so it keeps the SVM settings
        # chosen for it (e.g. the distilled v6's gamma) instead of the generic ones.
        init_classifier: dict[str, Any] = {}
        if cfg.init:
            frozen, init_classifier = _init_backbone(backbone, cfg)
        net = TrainingNetwork(backbone, data.n_classes, cfg.forg).to(dev)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(
            [p for p in net.parameters() if p.requires_grad],
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=True,
            weight_decay=cfg.weight_decay,
        )
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, cfg.lr_step, cfg.lr_decay)
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

        history: list[dict[str, Any]] = []
        best: dict[str, Any] = {}
        start_epoch = 0
        elapsed_before = 0.0
        fingerprint = data.fingerprint()
        if resume is not None:
            ckpt = load_checkpoint(resume, map_location=dev)
            state = ckpt.training_state
            if not state or ckpt.heads is None:
                raise ModelError(f"{resume}: not a training checkpoint (no optimizer state)")
            if state.get("data_fingerprint") != fingerprint:
                raise ModelError(f"{resume}: was trained on different data; cannot resume")
            saved_cfg = state.get("config", {})
            for key in ("arch", "arch_config", "forg", "init_sha256", "freeze"):
                if saved_cfg.get(key, type(getattr(cfg, key))()) != getattr(cfg, key):
                    raise ModelError(
                        f"{resume}: {key}={saved_cfg.get(key)!r} differs from {getattr(cfg, key)!r}"
                    )
            net.backbone.load_state_dict(ckpt.state_dict)
            net.classifier.load_state_dict(ckpt.heads["classifier"])
            if net.forgery is not None:
                net.forgery.load_state_dict(ckpt.heads["forgery"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            history = list(state.get("history", []))
            best = dict(state.get("best", {}))
            start_epoch = int(state["epoch"])
            if start_epoch >= cfg.epochs:
                # Nothing would run, and the run folder would hold no best.pt to report.
                raise SigverError(
                    f"{resume} already finished {start_epoch} epoch(s); raise epochs above "
                    f"{start_epoch} to continue it"
                )
            elapsed_before = float(state.get("elapsed_s", 0.0))
            if dist_info.is_main:
                logger.info("resuming from %s at epoch %d", resume, start_epoch + 1)

        model: Any = net
        if dist_info.enabled:
            model = DistributedDataParallel(
                net, device_ids=[dev.index] if dev.type == "cuda" else None
            )

        sampler = DistributedSampler(
            range(len(train_idx)),
            num_replicas=dist_info.world_size,
            rank=dist_info.rank,
            shuffle=True,
            seed=cfg.seed,
        )
        if dist_info.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            logger.info(
                "training %s on %d images of %d writers (%d held out), %d process(es) on %s",
                cfg.arch,
                len(train_idx),
                data.n_classes,
                len(val_idx),
                dist_info.world_size,
                dev,
            )

        def make_meta(metrics: Mapping[str, Any], elapsed: float) -> WeightsMeta:
            return WeightsMeta.for_model(
                net.backbone,
                name=cfg.name or f"{cfg.arch}-{out_dir.name}",
                version=cfg.version,
                preprocess=dict(data.preprocess),
                training_data=dict(data.description),
                recipe=cfg.recipe(),
                command=command,
                code_version=__version__,
                metrics=dict(metrics),
                training_time_s=round(elapsed, 1),
                classifier=dict(init_classifier),
                extra={
                    "processes": dist_info.world_size,
                    "device": dev.type,
                    "torch": str(torch.__version__),
                },
            )

        def amp_ctx() -> contextlib.AbstractContextManager[Any]:
            if use_amp:
                return torch.autocast("cuda", dtype=torch.float16)
            if use_bf16:
                return torch.autocast("cpu", dtype=torch.bfloat16)
            return contextlib.nullcontext()

        show = progress and dist_info.is_main
        pos_weight = None
        if cfg.forg and cfg.forg_balance:
            n_forg = int((f_tr == 1).sum())
            pos_weight = torch.tensor((len(f_tr) - n_forg) / n_forg, device=dev)
        crop_gen = torch.Generator()
        start_time = time.perf_counter()
        for epoch in range(start_epoch, cfg.epochs):
            epoch_start = time.perf_counter()
            net.train()
            for module in frozen:
                module.eval()  # frozen blocks keep their BatchNorm statistics
            lamb = cfg.lamb_at(epoch)
            sampler.set_epoch(epoch)
            # Crops depend only on (seed, epoch, rank): a resumed run sees the same ones.
            crop_gen.manual_seed(cfg.seed * 1_000_003 + epoch * 1009 + dist_info.rank)
            order = list(sampler)
            n_batches = sum(1 for _ in _batches(order, cfg.batch_size))
            totals: dict[str, Any] = {}
            bar = progress_bar(
                total=n_batches,
                desc=f"epoch {epoch + 1}/{cfg.epochs}",
                unit="batch",
                enabled=bool(show),
                leave=False,
            )
            for step, batch in enumerate(_batches(order, cfg.batch_size)):
                idx = torch.as_tensor(batch, device=x_tr.device)
                inputs = _crop_batch(x_tr, idx, (150, 220), crop_gen, channels_last)
                yb, fb = y_tr[idx], f_tr[idx]
                with amp_ctx():
                    logits, forg_logits = model(inputs)
                if use_bf16:
                    # Cross-entropy in float32: in bfloat16 it loses the small probabilities
                    # of thousands of writers (_losses already takes the BCE in float32).
                    logits = logits.float()
                loss, stats = _losses(logits, forg_logits, yb, fb, lamb, pos_weight)
                if cfg.forg and cfg.forg_normalise and lamb < 1.0:
                    loss = loss / (1.0 - lamb)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_value_(net.parameters(), cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                for key, value in stats.items():
                    totals[key] = totals.get(key, 0.0) + value.detach()
                if show and (step % 10 == 0 or step == n_batches - 1):
                    running = _summarise({k: float(v) for k, v in totals.items()}, "")
                    bar.set_postfix(
                        {k: f"{v:.3f}" for k, v in running.items() if k in ("loss", "acc")}
                    )
                bar.update(1)
            bar.close()
            scheduler.step()
            if dist_info.enabled:
                # DDP syncs BatchNorm statistics at the start of each forward, so after the
                # last step every rank holds its own; take rank 0's so that validation,
                # the "best" choice and the returned model agree across ranks.

                for buffer in net.buffers():
                    dist.broadcast(buffer, 0)
            train_metrics = _summarise(_reduce(totals, dist_info), "train_")
            val_metrics = _evaluate(net, x_va, y_va, f_va, cfg, dev)
            epoch_time = time.perf_counter() - epoch_start
            elapsed = elapsed_before + (time.perf_counter() - start_time)
            row: dict[str, Any] = {
                "epoch": epoch + 1,
                **({"lamb": round(lamb, 6)} if cfg.forg else {}),
                # The lr used during this epoch (the scheduler has already stepped).
                "lr": float(f"{_lr_during(cfg, epoch):.6g}"),
                **{k: round(v, 6) for k, v in train_metrics.items()},
                **{k: round(v, 6) for k, v in val_metrics.items()},
                "epoch_time_s": round(epoch_time, 2),
                "images_per_s": round(len(train_idx) / max(epoch_time, 1e-9), 1),
            }
            history.append(row)
            score = row.get("val_acc", row.get("train_acc", 0.0))
            is_best = not best or score >= best.get("score", -math.inf)
            if is_best:
                best = {**row, "score": score}
            if dist_info.is_main:
                logger.info(
                    "epoch %d/%d  %s",
                    epoch + 1,
                    cfg.epochs,
                    "  ".join(
                        f"{k}={v:.4f}"
                        for k, v in row.items()
                        if k.startswith(("train_", "val_")) and isinstance(v, float)
                    ),
                )
                metrics = {k: v for k, v in best.items() if k.startswith(("val_", "train_"))}
                metrics["best_epoch"] = best["epoch"]
                heads = {
                    "classifier": net.classifier.state_dict(),
                    "forgery": None if net.forgery is None else net.forgery.state_dict(),
                }
                training_state = {
                    "epoch": epoch + 1,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict() if use_amp else None,
                    "history": history,
                    "best": best,
                    "config": cfg.to_dict(),
                    "data_fingerprint": fingerprint,
                    "classes": list(data.classes),
                    "elapsed_s": elapsed,
                }
                if is_best:
                    save_checkpoint(
                        out_dir / "best.pt",
                        net.backbone,
                        make_meta({**metrics, "epoch": epoch + 1}, elapsed),
                        heads=heads,
                    )
                save_checkpoint(
                    out_dir / "last.pt",
                    net.backbone,
                    make_meta({**{k: v for k, v in row.items() if k != "lr"}}, elapsed),
                    heads=heads,
                    training_state=training_state,
                )
                _write_logs(out_dir, history)
                try:
                    plot_history(history, out_dir / "curves.png", title=_run_title(cfg))
                except Exception as exc:  # noqa: BLE001 - a plot must never kill a run
                    logger.warning("could not draw the training curves: %s", exc)
            if dist_info.enabled:
                dist.barrier()
        total = elapsed_before + (time.perf_counter() - start_time)
        return TrainResult(
            best_path=out_dir / "best.pt",
            last_path=out_dir / "last.pt",
            history=history,
            best=best,
            training_time_s=total,
            model=net.backbone.eval(),
        )
    finally:
        if dist_info.initialized_here:
            dist.destroy_process_group()


def _init_backbone(backbone: nn.Module, cfg: TrainConfig) -> tuple[list[nn.Module], dict[str, Any]]:
    """Load ``cfg.init`` into ``backbone`` and freeze its first ``cfg.freeze`` blocks.

    Returns the frozen blocks (to be kept in eval mode) and the init's per-model
    SVM settings (``WeightsMeta.classifier``).
    """
    from sigver.models.checkpoint import file_sha256, load_weights

    weights = load_weights(cfg.init)
    if weights.meta.arch != cfg.arch or dict(weights.meta.arch_config) != dict(cfg.arch_config):
        raise ModelError(
            f"--init {cfg.init}: is a {weights.meta.arch} {weights.meta.arch_config}, "
            f"not {cfg.arch} {cfg.arch_config}"
        )
    if cfg.init_sha256 and file_sha256(cfg.init) != cfg.init_sha256:
        raise ModelError(f"--init {cfg.init}: has changed since this run started")
    backbone.load_state_dict(weights.state_dict)
    names = backbone.trainable_blocks()
    n = len(names) - 1 if cfg.freeze == -1 else cfg.freeze
    if n >= len(names):
        raise SigverError(
            f"--freeze {cfg.freeze}: {cfg.arch} has {len(names)} trainable blocks "
            f"({', '.join(names)}); freezing all of them leaves nothing to train"
        )
    blocks = dict(backbone.blocks())
    frozen = [blocks[name] for name in names[:n]]
    for module in frozen:
        module.requires_grad_(False)
    logger.info(
        "fine-tuning from %s: frozen %s, trained %s",
        cfg.init,
        ", ".join(names[:n]) or "nothing",
        ", ".join(names[n:]),
    )
    return frozen, dict(weights.meta.classifier)


def _min_conv_channels(model: nn.Module) -> int:

    widths = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    return min(widths) if widths else 0


def _lr_during(config: TrainConfig, epoch: int) -> float:
    """Learning rate of epoch ``epoch`` (0-based) under the step schedule."""
    return config.lr * config.lr_decay ** (epoch // config.lr_step)

"""End-to-end demonstration on synthetic signatures (``sigver demo``).

Creates a small synthetic population with :mod:`sigver.synth`, enrolls every
writer with the shipped model, verifies held-out genuine signatures, skilled
forgeries and random forgeries (other writers' genuine signatures), and
summarises the outcome per user and as error rates. Everything it writes
(images, the user store, ``results.json``) stays in one folder so that the
operator can replay single steps with ``sigver verify``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from enrollment.config import Settings
from enrollment.errors import EnrollmentError
from sigver._util import to_strict_json, write_json, write_png

__all__ = ["DemoConfig", "DemoReport", "run_demo"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    """What the demo generates.

    Attributes
    ----------
    n_writers : int
        Synthetic writers, all enrolled.
    n_references : int
        Genuine signatures used for enrollment per writer.
    n_genuine_tests : int
        Held-out genuine signatures verified per writer.
    n_forgeries : int
        Skilled forgeries verified per writer.
    n_random : int
        Random forgeries per writer (genuine test signatures of other writers).
    seed : int
        Seed of the synthetic corpus.
    """

    n_writers: int = 6
    n_references: int = 10
    n_genuine_tests: int = 5
    n_forgeries: int = 5
    n_random: int = 5
    seed: int = 2024

    def __post_init__(self) -> None:
        if self.n_writers < 2:
            raise EnrollmentError("the demo needs at least 2 writers (random forgeries)")
        for name in ("n_references", "n_genuine_tests", "n_forgeries"):
            if getattr(self, name) < 1:
                raise EnrollmentError(f"{name} must be at least 1")
        if self.n_random < 0 or self.seed < 0:
            raise EnrollmentError("n_random and seed must be non-negative")


@dataclass
class DemoReport:
    """Outcome of :func:`run_demo` (also written to ``<out>/results.json``)."""

    out: Path
    model_id: str
    threshold: float
    threshold_source: str
    users: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {
            "out": str(self.out),
            "model_id": self.model_id,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "users": self.users,
            "metrics": self.metrics,
            "timings": self.timings,
        }

    def to_json(self) -> str:
        """Strict JSON text of :meth:`to_dict` (undefined metrics, NaN, become null)."""
        return to_strict_json(self.to_dict())


def run_demo(
    out: str | os.PathLike[str] | None = None,
    config: DemoConfig | None = None,
    *,
    model: str | os.PathLike[str] | None = None,
    echo: Callable[[str], None] | None = None,
    backend: str | None = None,
) -> DemoReport:
    """Generate, enroll, verify and measure.

    Parameters
    ----------
    out : path-like, optional
        Folder for the demo's files (a new temporary folder when omitted); it
        must be empty or absent, so that a previous store is never mixed in.
    config : DemoConfig, optional
        Population size and seed.
    model : path-like, optional
        Checkpoint to use instead of the shipped model.
    echo : callable, optional
        Receives progress lines (the CLI passes ``print``).
    backend : {"auto", "torch", "onnx"}, optional
        Inference backend (:func:`sigver.inference.open_extractor`).

    Returns
    -------
    DemoReport

    Raises
    ------
    sigver.errors.ModelError
        If no shipped model exists and ``model`` is not given (nothing is written).

    Notes
    -----
    If the demo fails, ``out`` is left as it was (absent or empty), so running
    it again with the same ``out`` works.
    """
    from enrollment.verifier import Verifier, load_extractor

    config = config or DemoConfig()
    folder = None if out is None else Path(out).expanduser().resolve()
    if folder is not None and folder.exists():
        if not folder.is_dir():
            raise EnrollmentError(f"--out {folder} is a file; give a new or empty folder")
        if any(folder.iterdir()):
            raise EnrollmentError(
                f"{folder} is not empty (a previous demo?); remove it or give another --out"
            )
    # The model first: a missing or broken model must fail before anything is written.
    start = time.perf_counter()
    extractor, model_path = load_extractor(model, backend=backend)
    load_s = time.perf_counter() - start
    created = folder is None or not folder.exists()
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="sigver-demo-"))
    else:
        folder.mkdir(parents=True, exist_ok=True)
    try:
        verifier = Verifier(
            home=folder / "home",
            model=model_path,
            extractor=extractor,
            settings=Settings.from_env(),
        )
        return _run(folder, config, verifier, load_s, echo)
    except BaseException:
        # Leave --out as it was (absent or empty) so that a retry is not blocked.
        # (The store opens a connection per operation, so nothing holds its files.)
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            for child in folder.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise


def _run(
    folder: Path,
    config: DemoConfig,
    verifier: Any,
    load_s: float,
    echo: Callable[[str], None] | None,
) -> DemoReport:
    from sigver.metrics import compute_metrics
    from sigver.synth import generate_writer

    say = echo or (lambda line: logger.info("%s", line))
    timings: dict[str, float] = {"load_model_s": load_s}
    say(
        f"model {verifier.model_id} ({verifier.extractor.backend} backend); threshold "
        f"{verifier.default_threshold:+.4f} ({verifier.threshold_source})"
    )

    start = time.perf_counter()
    n_gen = config.n_references + config.n_genuine_tests
    writers: dict[str, dict[str, list[Path]]] = {}
    for w in range(config.n_writers):
        user = f"writer-{w:03d}"
        _, genuine, forgeries = generate_writer(config.seed, w, n_gen, config.n_forgeries)
        wdir = folder / "images" / user
        wdir.mkdir(parents=True)
        writers[user] = {
            "references": [
                write_png(wdir / f"ref-{i:02d}.png", img)
                for i, img in enumerate(genuine[: config.n_references])
            ],
            "genuine": [
                write_png(wdir / f"genuine-{i:02d}.png", img)
                for i, img in enumerate(genuine[config.n_references :])
            ],
            "skilled": [
                write_png(wdir / f"forgery-{i:02d}.png", img) for i, img in enumerate(forgeries)
            ],
        }
    timings["synthesis_s"] = time.perf_counter() - start
    say(
        f"generated {config.n_writers} writers x ({n_gen} genuine + {config.n_forgeries} "
        f"skilled forgeries) in {timings['synthesis_s']:.1f} s -> {folder / 'images'}"
    )

    start = time.perf_counter()
    for user, files in writers.items():
        verifier.enroll(user, files["references"])
    timings["enroll_s"] = time.perf_counter() - start
    say(
        f"enrolled {len(writers)} users in {timings['enroll_s']:.1f} s "
        f"({timings['enroll_s'] / len(writers):.2f} s each)"
    )

    start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    names = list(writers)
    scores: dict[str, dict[str, np.ndarray]] = {}
    report_users = []
    n_verified = 0
    for user in names:
        others = [p for u in names if u != user for p in writers[u]["genuine"]]
        pick = rng.choice(len(others), min(config.n_random, len(others)), replace=False)
        sets = {
            "genuine": writers[user]["genuine"],
            "skilled": writers[user]["skilled"],
            "random": [others[i] for i in sorted(pick)],
        }
        results = {k: verifier.verify_batch(user, v) if v else [] for k, v in sets.items()}
        n_verified += sum(len(v) for v in results.values())
        scores[user] = {k: np.array([r.score for r in v]) for k, v in results.items()}
        report_users.append(
            {
                "user_id": user,
                "references": len(writers[user]["references"]),
                "genuine_accepted": sum(r.accepted for r in results["genuine"]),
                "genuine_total": len(results["genuine"]),
                "skilled_rejected": sum(not r.accepted for r in results["skilled"]),
                "skilled_total": len(results["skilled"]),
                "random_rejected": sum(not r.accepted for r in results["random"]),
                "random_total": len(results["random"]),
                "mean_score_genuine": float(scores[user]["genuine"].mean()),
                "mean_score_skilled": float(scores[user]["skilled"].mean()),
                "mean_score_random": (
                    float(scores[user]["random"].mean()) if len(results["random"]) else None
                ),
            }
        )
    timings["verify_s"] = time.perf_counter() - start
    timings["verify_per_image_ms"] = 1000 * timings["verify_s"] / max(n_verified, 1)

    metrics = compute_metrics(
        [scores[u]["genuine"] for u in names],
        [scores[u]["random"] for u in names],
        [scores[u]["skilled"] for u in names],
        threshold=verifier.default_threshold,
    )
    report = DemoReport(
        out=folder,
        model_id=verifier.model_id,
        threshold=verifier.default_threshold,
        threshold_source=verifier.threshold_source,
        users=report_users,
        metrics={k: float(v) for k, v in metrics.items()},
        timings={k: round(v, 3) for k, v in timings.items()},
    )
    from sigver.plots import plot_score_distributions

    plot_score_distributions(
        np.concatenate([scores[u]["genuine"] for u in names]),
        np.concatenate([scores[u]["random"] for u in names]),
        np.concatenate([scores[u]["skilled"] for u in names]),
        folder / "scores.png",
        title=f"sigver demo, {len(names)} synthetic writers, {verifier.model_id}",
        threshold=verifier.default_threshold,
    )
    write_json(folder / "results.json", report.to_dict())
    return report

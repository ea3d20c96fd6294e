"""Timing loops shared by the ``scripts/bench_*.py`` benchmarks (imported, never run)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def extraction_rate(extractor: Any, images: np.ndarray, batch: int, seconds: float) -> float:
    """Images per second of ``extractor.extract`` on ``images[:batch]`` for about ``seconds``."""
    start, done = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        extractor.extract(images[:batch], batch_size=batch)
        done += batch
    return done / (time.perf_counter() - start)


def verify_latencies_ms(
    verifier: Any, user_id: str, image: Any, repeats: int, *, warmup: int = 10
) -> list[float]:
    """Wall-clock milliseconds of ``repeats`` calls of ``verifier.verify`` after ``warmup``."""
    for _ in range(warmup):
        verifier.verify(user_id, image)
    latencies = []
    for _ in range(repeats):
        start = time.perf_counter()
        verifier.verify(user_id, image)
        latencies.append(1000 * (time.perf_counter() - start))
    return latencies

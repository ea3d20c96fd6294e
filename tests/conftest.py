"""Shared pytest fixtures.

Real data lives outside the repository (``../shared/data`` beside the
checkout, or ``$SIGVER_SHARED_DATA``); tests that need it skip cleanly when it
is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Folder holding the shared real datasets (may not exist)."""
    env = os.environ.get("SIGVER_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny, fast model (fresh per test module, so no module sees another's changes)."""
    from enrollment.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def sigcomp_path() -> Path:
    """Path to the real ICDAR 2011 SigComp (Dutch) offline set; skips when absent."""
    path = shared_data_dir() / "sigcomp2011"
    if not path.is_dir():
        pytest.skip(f"real data not available at {path}")
    return path


@pytest.fixture(scope="session")
def postgres_server():
    """URL of a throwaway PostgreSQL server for the session; skips with the reason if none.

    ``$SIGVER_TEST_POSTGRES`` may name an existing server instead (its
    ``postgres`` database must allow ``CREATE DATABASE``).
    """
    url = os.environ.get("SIGVER_TEST_POSTGRES")
    if url:
        yield url
        return
    from enrollment.testing import postgres_unavailable_reason, temporary_postgres

    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    with temporary_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty database on the session's PostgreSQL server."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base, _, _ = postgres_server.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(autouse=True)
def _isolated_inference_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never touch the real user cache; default to the torch backend.

    The ONNX backend exports and verifies each new checkpoint once (seconds), so
    tests opt into it explicitly (tests/test_inference.py) instead of paying that
    for every temporary model.
    """
    monkeypatch.setenv("SIGVER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "sigver-cache"))
    monkeypatch.setenv("SIGVER_BACKEND", "torch")

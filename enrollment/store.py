"""The user store: enrolled users, API keys, tenants and the audit trail.

Two backends share one interface (:class:`BaseStore`):

* :class:`UserStore` — an embedded SQLite database ``<home>/users.sqlite3``
  (the default; one host);
* :class:`PostgresStore` — a PostgreSQL database reached through a
  ``psycopg`` connection pool (several API processes on several hosts).

:func:`open_store` picks one from a URL (``postgresql://...``), a
``sqlite:///path`` URL or a folder; ``$SIGVER_STORE`` provides the default.

Layout (schema version 2)::

    tenants(tenant_id PK, created_at)
    users(tenant_id, user_id, model_id, model_sha256, feature_dim, n_references,
          n_negatives, threshold NULL, classifier BLOB (npz, no pickle),
          classifier_params JSON, created_at, updated_at, revision, mac,
          PK (tenant_id, user_id))
    user_references(tenant_id, user_id, position, image_sha256, features BLOB
                    (float32 LE), image BLOB NULL, created_at, model_sha256,
                    sample_key, PK (tenant_id, user_id, position))
    api_keys(key_id PK, name (unique among active keys), tenant_id, scope,
             salt, digest, created_at, revoked_at NULL)
    audit(event_id, time, tenant_id, key_id, user_id, action, decision, score,
          threshold, operating_point, model_id, image_sha256, detail JSON)

Design choices:

* User and tenant ids are only ever bound as SQL parameters, never used as
  paths; they are validated anyway so that they stay printable and URL-safe.
* Every write is one transaction: an enrollment (and its audit event) either
  commits completely or leaves the previous state untouched.
* Users are namespaced by tenant: every user query carries the tenant.
* Each stored classifier carries an HMAC-SHA256 (``mac``) over everything that
  decides its user's verifications: identity, extractor, threshold override,
  operating point, classifier blob, score normaliser and other classifier
  parameters, and the reference features in order (a compact classifier rebuilds
  its support vectors from them; the pairwise cue reads them). It is keyed by a
  secret kept *outside* the database (``<home>/store.key`` or
  ``$SIGVER_STORE_SECRET``); a user edited in the database (say an intercept set to
  +inf, a normaliser's offset, another writer's features) is refused, never scored.
  Schema version 3 added the normaliser, operating point and references to the
  tag; opening an older store re-tags the rows whose old tag holds.
* Negatives are sampled in the database: each reference row has a random
  ``sample_key`` (indexed), and a sample is a range scan from a seeded start,
  so enrollment reads ``limit`` rows whatever the size of the store.
* The audit table is append-only: triggers abort any ``UPDATE`` or ``DELETE``.
* Arrays are stored as raw little-endian float32 or as ``.npz`` blobs read
  back with ``allow_pickle=False``: nothing in the database is unpickled.
* Schema migrations are versioned per backend (``meta.schema_version``); a
  first-release store (version 1) is migrated in place when opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import logging
import math
import os
import re
import secrets
import sqlite3
import threading
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from enrollment import auth
from enrollment.config import ENV_STORE, ENV_STORE_SECRET, resolve_home
from enrollment.errors import (
    AlreadyExistsError,
    ApiKeyNotFoundError,
    ConcurrentUpdateError,
    InvalidUserIdError,
    StoreError,
    TenantNotFoundError,
    UserExistsError,
    UserNotFoundError,
)

__all__ = [
    "AUDIT_ACTIONS",
    "DB_FILENAME",
    "DEFAULT_TENANT",
    "SCHEMA_VERSION",
    "AuditEvent",
    "BaseStore",
    "EnrollmentRecord",
    "PostgresStore",
    "ReferenceRecord",
    "UserRecord",
    "UserStore",
    "decode_arrays",
    "encode_arrays",
    "open_store",
    "validate_tenant_id",
    "validate_user_id",
]

logger = logging.getLogger(__name__)

#: File name of the database inside the home folder.
DB_FILENAME = "users.sqlite3"
#: File name of the classifier-integrity secret inside the home folder.
SECRET_FILENAME = "store.key"
#: Version written to ``meta``; a store with a newer version is refused.
SCHEMA_VERSION = 3
#: Tenant of everything created without naming one (and of first-release stores).
DEFAULT_TENANT = "default"
#: Actions recorded in the audit trail.
AUDIT_ACTIONS = (
    "enroll",
    "verify",
    "set_threshold",
    "set_operating_point",
    "remove",
    "key_create",
    "key_revoke",
    "tenant_create",
    "references_read",
)
#: Scopes of API keys: ``tenant`` keys see their tenant's users; ``admin`` keys
#: also manage tenants and keys and read every tenant's audit trail.
KEY_SCOPES = ("tenant", "admin")

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_FLOAT32_LE = np.dtype("<f4")
_BUSY_RETRIES = 5
_SAMPLE_KEY_MAX = 2**62

# -- schema -------------------------------------------------------------------

_SQLITE_V1 = """
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    model_id TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    feature_dim INTEGER NOT NULL CHECK (feature_dim > 0),
    n_references INTEGER NOT NULL CHECK (n_references > 0),
    n_negatives INTEGER NOT NULL,
    threshold REAL,
    classifier BLOB NOT NULL,
    classifier_params TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS user_references (
    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    image_sha256 TEXT NOT NULL,
    features BLOB NOT NULL,
    image BLOB,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, position),
    UNIQUE (user_id, image_sha256)
);
CREATE INDEX IF NOT EXISTS users_by_model ON users(model_sha256);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    salt BLOB NOT NULL,
    digest BLOB NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
"""

# Version 2, written so that the same text works on SQLite and PostgreSQL
# after the type substitutions of _ddl().
_V2_TABLES = """
CREATE TABLE tenants (
    tenant_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE users2 (
    tenant_id TEXT NOT NULL REFERENCES tenants(tenant_id),
    user_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    feature_dim INTEGER NOT NULL CHECK (feature_dim > 0),
    n_references INTEGER NOT NULL CHECK (n_references > 0),
    n_negatives INTEGER NOT NULL,
    threshold DOUBLE PRECISION,
    classifier {blob} NOT NULL,
    classifier_params TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision INTEGER NOT NULL DEFAULT 1,
    mac TEXT NOT NULL,
    operating_point TEXT,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE TABLE user_references2 (
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    image_sha256 TEXT NOT NULL,
    features {blob} NOT NULL,
    image {blob},
    created_at TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    sample_key BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, position),
    UNIQUE (tenant_id, user_id, image_sha256),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, user_id) ON DELETE CASCADE
);
CREATE TABLE api_keys2 (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(tenant_id),
    scope TEXT NOT NULL CHECK (scope IN ('tenant', 'admin')),
    salt {blob} NOT NULL,
    digest {blob} NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE audit (
    event_id {serial},
    time TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    key_id TEXT,
    user_id TEXT,
    action TEXT NOT NULL,
    decision TEXT,
    score DOUBLE PRECISION,
    threshold DOUBLE PRECISION,
    operating_point TEXT,
    model_id TEXT,
    image_sha256 TEXT,
    detail TEXT
)
"""

_V2_INDEXES = """
CREATE INDEX users_by_model ON users(tenant_id, model_sha256);
CREATE INDEX refs_by_sample ON user_references(tenant_id, model_sha256, sample_key);
CREATE UNIQUE INDEX api_keys_active_name ON api_keys(name) WHERE revoked_at IS NULL;
CREATE INDEX audit_by_tenant_time ON audit(tenant_id, time);
CREATE INDEX audit_by_user ON audit(tenant_id, user_id, time)
"""

_SQLITE_AUDIT_GUARDS = """
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END
"""

_PG_AUDIT_GUARDS = """
CREATE FUNCTION sigver_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON audit
FOR EACH STATEMENT EXECUTE FUNCTION sigver_audit_append_only()
"""


def _statements(text: str) -> list[str]:
    """Split DDL on ``;`` at line ends (trigger bodies keep their inner ``;``)."""
    parts = re.split(r";\s*\n(?=CREATE|ALTER|INSERT|DROP)", text.strip())
    return [p.strip().rstrip(";") for p in parts if p.strip()]


def validate_user_id(user_id: object) -> str:
    """Return ``user_id`` if it is acceptable, else raise :class:`InvalidUserIdError`.

    Accepted: 1-64 characters from ``A-Z a-z 0-9 . _ @ -``, starting with a
    letter or digit. This rules out empty ids, path separators, ``..`` at
    the start, NUL and other control characters, whitespace and over-long ids.
    """
    return _validate_id(user_id, "user id")


def validate_tenant_id(tenant: object) -> str:
    """Like :func:`validate_user_id`, for tenant ids."""
    return _validate_id(tenant, "tenant id")


def _validate_id(value: object, what: str) -> str:
    if not isinstance(value, str) or _ID_RE.fullmatch(value) is None:
        shown = repr(value) if not isinstance(value, str) or len(value) <= 80 else "<long>"
        raise InvalidUserIdError(
            f"invalid {what} {shown}: use 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return value


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def encode_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise named arrays as an ``.npz`` blob (object arrays refused)."""
    clean: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise StoreError(f"array {name!r} has dtype object, which cannot be stored safely")
        clean[name] = arr
    buffer = io.BytesIO()
    np.savez(buffer, **clean)
    return buffer.getvalue()


def decode_arrays(blob: bytes) -> dict[str, np.ndarray]:
    """Inverse of :func:`encode_arrays`; never unpickles.

    Raises
    ------
    StoreError
        On anything but a well-formed pickle-free ``.npz`` (corrupt zip, CRC
        error, truncated member...).
    """
    try:
        with np.load(io.BytesIO(bytes(blob)), allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise StoreError(f"stored classifier is unreadable: {exc}") from exc


def _features_to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=_FLOAT32_LE).tobytes()


def _blob_to_features(blob: bytes, dim: int) -> np.ndarray:
    data = bytes(blob)
    # Checked before frombuffer, which raises a bare ValueError on a ragged length.
    if len(data) != dim * _FLOAT32_LE.itemsize:
        raise StoreError(
            f"stored feature vector has {len(data)} bytes, expected {dim} float32 values"
        )
    return np.frombuffer(data, dtype=_FLOAT32_LE).astype(np.float32)


@dataclass(frozen=True)
class ReferenceRecord:
    """One reference signature to store.

    Attributes
    ----------
    image_sha256 : str
        SHA-256 of the enrolled image (file bytes, or array bytes for arrays).
    features : numpy.ndarray
        Feature vector, shape ``(d,)``.
    image : bytes, optional
        The encoded image, only when images are stored on request.
    """

    image_sha256: str
    features: np.ndarray
    image: bytes | None = None


@dataclass(frozen=True)
class EnrollmentRecord:
    """Everything written for one enrollment, in one transaction.

    Attributes
    ----------
    user_id, model_id, model_sha256 : str
        Who, and which extractor produced the features.
    references : sequence of ReferenceRecord
        All references of the user after this enrollment (existing ones
        included when adding).
    classifier : mapping of str to numpy.ndarray
        Fitted classifier state as plain arrays.
    classifier_params : mapping
        JSON-serialisable hyper-parameters and provenance.
    n_negatives : int
        Negatives used for training.
    threshold : float or None
        Per-user threshold override (``None`` = global default).
    tenant : str
        Namespace of the user.
    """

    user_id: str
    model_id: str
    model_sha256: str
    references: Sequence[ReferenceRecord]
    classifier: Mapping[str, np.ndarray]
    classifier_params: Mapping[str, object]
    n_negatives: int
    threshold: float | None = None
    tenant: str = DEFAULT_TENANT


@dataclass(frozen=True)
class AuditEvent:
    """One entry of the append-only audit trail.

    Attributes
    ----------
    action : str
        One of :data:`AUDIT_ACTIONS`.
    tenant : str
    key_id : str or None
        API key that made the request (``None`` for local CLI / Python calls).
    user_id : str or None
    decision : str or None
        ``"accept"`` / ``"reject"`` for verifications.
    score, threshold : float or None
    operating_point : str or None
        Named operating point the threshold came from, where known.
    model_id : str or None
    image_sha256 : str or None
        The questioned image (verify) or the enrolled images, comma-separated.
    detail : mapping, optional
        Extra JSON facts (enrollment mode, counts...).
    time : str
        ISO-8601 UTC; filled in when written.
    """

    action: str
    tenant: str = DEFAULT_TENANT
    key_id: str | None = None
    user_id: str | None = None
    decision: str | None = None
    score: float | None = None
    threshold: float | None = None
    operating_point: str | None = None
    model_id: str | None = None
    image_sha256: str | None = None
    detail: Mapping[str, Any] | None = None
    time: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON view (the ``/v1/audit`` item)."""
        return {
            "time": self.time,
            "tenant": self.tenant,
            "key_id": self.key_id,
            "user_id": self.user_id,
            "action": self.action,
            "decision": self.decision,
            "score": self.score,
            "threshold": self.threshold,
            "operating_point": self.operating_point,
            "model_id": self.model_id,
            "image_sha256": self.image_sha256,
            "detail": dict(self.detail) if self.detail else None,
        }


@dataclass(frozen=True)
class UserRecord:
    """An enrolled user as stored (without the bulky arrays).

    Attributes
    ----------
    user_id, model_id, model_sha256 : str
    feature_dim, n_references, n_negatives : int
    threshold : float or None
        Per-user override; ``None`` means the model's global default.
    classifier_params : dict
    created_at, updated_at : str
        ISO-8601 UTC timestamps.
    revision : int
        Incremented by every write; with ``updated_at`` it keys classifier caches.
    image_sha256 : tuple of str
        Hashes of the enrolled images, in enrollment order.
    stored_images : int
        How many references have their image stored.
    tenant : str
    mac : str
        Integrity tag of the stored classifier (part of the cache key).
    operating_point : str or None
        The user's named operating point of the model's calibration; ``None``
        means the store-wide one. A threshold override takes precedence.
    """

    user_id: str
    model_id: str
    model_sha256: str
    feature_dim: int
    n_references: int
    n_negatives: int
    threshold: float | None
    classifier_params: dict[str, object]
    created_at: str
    updated_at: str
    revision: int
    image_sha256: tuple[str, ...] = field(default_factory=tuple)
    stored_images: int = 0
    tenant: str = DEFAULT_TENANT
    mac: str = ""
    operating_point: str | None = None

    @property
    def cache_key(self) -> tuple[object, ...]:
        """Key under which a loaded classifier may be cached."""
        # The threshold is part of it: a threshold edited behind sigver's back
        # misses the cache, and the reload fails the integrity check.
        return (self.tenant, self.user_id, self.updated_at, self.revision, self.mac, self.threshold)

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly view."""
        return {
            "user_id": self.user_id,
            "tenant": self.tenant,
            "model_id": self.model_id,
            "model_sha256": self.model_sha256,
            "feature_dim": self.feature_dim,
            "n_references": self.n_references,
            "n_negatives": self.n_negatives,
            "threshold": self.threshold,
            "classifier_params": dict(self.classifier_params),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "revision": self.revision,
            "image_sha256": list(self.image_sha256),
            "stored_images": self.stored_images,
            "operating_point": self.operating_point,
        }


_USER_COLUMNS = (
    "user_id, model_id, model_sha256, feature_dim, n_references, n_negatives, threshold, "
    "classifier_params, created_at, updated_at, revision, tenant_id, mac, operating_point"
)
_AUDIT_COLUMNS = (
    "time, tenant_id, key_id, user_id, action, decision, score, threshold, operating_point, "
    "model_id, image_sha256, detail"
)


def _user_from_row(
    row: Sequence[object], hashes: Sequence[str] = (), stored_images: int = 0
) -> UserRecord:
    """Build a record, turning any malformed column into a :class:`StoreError`."""
    try:
        params = json.loads(str(row[7]))
        if not isinstance(params, dict):
            raise ValueError("classifier parameters are not a JSON object")
        threshold = None if row[6] is None else float(row[6])  # type: ignore[arg-type]
        if threshold is not None and not math.isfinite(threshold):
            raise ValueError(f"threshold {threshold} is not finite")
        record = UserRecord(
            user_id=str(row[0]),
            model_id=str(row[1]),
            model_sha256=str(row[2]),
            feature_dim=int(row[3]),  # type: ignore[arg-type]
            n_references=int(row[4]),  # type: ignore[arg-type]
            n_negatives=int(row[5]),  # type: ignore[arg-type]
            threshold=threshold,
            classifier_params=params,
            created_at=str(row[8]),
            updated_at=str(row[9]),
            revision=int(row[10]),  # type: ignore[arg-type]
            image_sha256=tuple(hashes),
            stored_images=stored_images,
            tenant=str(row[11]),
            mac=str(row[12] or ""),
            operating_point=None if row[13] is None else str(row[13]),
        )
    except (ValueError, TypeError, OverflowError) as exc:
        raise StoreError(f"corrupt stored record for user {row[0]!r}: {exc}") from exc
    if record.feature_dim <= 0:
        raise StoreError(f"corrupt stored record for user {row[0]!r}: feature_dim <= 0")
    return record


def _references_digest(rows: Sequence[tuple[str, bytes]]) -> str:
    """SHA-256 of the references ``(image_sha256, features blob)`` in position order."""
    h = hashlib.sha256()
    for image_sha256, features in rows:
        blob = bytes(features)
        h.update(str(image_sha256).encode() + b"\x00")
        h.update(len(blob).to_bytes(8, "little"))
        h.update(blob)
    return h.hexdigest()


@dataclass(frozen=True)
class _Tagged:
    """What a user's integrity tag covers (schema version 3)."""

    tenant: str
    user_id: str
    model_sha256: str
    feature_dim: int
    threshold: float | None
    operating_point: str | None
    classifier_blob: bytes
    params_json: str
    references: str  # :func:`_references_digest`

    def message(self) -> bytes:
        parts = [
            "sigver-classifier-v3",
            self.tenant,
            self.user_id,
            self.model_sha256,
            str(int(self.feature_dim)),
            # + 0.0: SQLite stores -0.0 as 0, which must not break the tag.
            "none" if self.threshold is None else (float(self.threshold) + 0.0).hex(),
            "none" if self.operating_point is None else "op:" + self.operating_point,
            hashlib.sha256(bytes(self.classifier_blob)).hexdigest(),
            hashlib.sha256(self.params_json.encode()).hexdigest(),
            self.references,
        ]
        return "\x00".join(parts).encode()


def _mac_message_v2(
    tenant: str,
    user_id: str,
    model_sha256: str,
    feature_dim: int,
    threshold: float | None,
    classifier_blob: bytes,
) -> bytes:
    """The tag message of schema version 2 (read only to re-tag an older store)."""
    parts = [
        "sigver-classifier-v1",
        tenant,
        user_id,
        model_sha256,
        str(int(feature_dim)),
        "none" if threshold is None else float(threshold).hex(),
        hashlib.sha256(bytes(classifier_blob)).hexdigest(),
    ]
    return "\x00".join(parts).encode()


def _audit_from_row(row: Sequence[Any]) -> AuditEvent:
    detail = None
    if row[11]:
        with contextlib.suppress(ValueError):
            detail = json.loads(str(row[11]))
    return AuditEvent(
        time=str(row[0]),
        tenant=str(row[1]),
        key_id=row[2],
        user_id=row[3],
        action=str(row[4]),
        decision=row[5],
        score=None if row[6] is None else float(row[6]),
        threshold=None if row[7] is None else float(row[7]),
        operating_point=row[8],
        model_id=row[9],
        image_sha256=row[10],
        detail=detail,
    )


class _Conn:
    """A connection with ``?`` placeholders on either backend."""

    def __init__(self, raw: Any, paramstyle: str) -> None:
        self.raw = raw
        self._pg = paramstyle == "format"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self._pg:
            # No parameters: let psycopg skip placeholder parsing (DDL bodies).
            return self.raw.execute(sql.replace("?", "%s"), tuple(params) if params else None)
        return self.raw.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self._pg:
            with self.raw.cursor() as cur:
                cur.executemany(sql.replace("?", "%s"), [tuple(r) for r in rows])
        else:
            self.raw.executemany(sql, [tuple(r) for r in rows])


class BaseStore:
    """The store interface, independent of the database engine.

    Subclasses provide ``_read()`` / ``_write()`` context managers yielding a
    :class:`_Conn`, ``_migrate()`` and ``location``. Every user method takes a
    ``tenant`` keyword (default :data:`DEFAULT_TENANT`).
    """

    backend = "abstract"
    home: Path | None = None
    _secret: bytes = b""

    # -- engine hooks ------------------------------------------------------------

    @contextlib.contextmanager
    def _read(self) -> Iterator[_Conn]:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    @contextlib.contextmanager
    def _write(self, *, serialize: bool = True) -> Iterator[_Conn]:  # pragma: no cover
        raise NotImplementedError
        yield

    @property
    def location(self) -> str:  # pragma: no cover - abstract
        """Where the store lives (for messages; no password)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release pooled connections (no-op for SQLite)."""

    def ping(self) -> None:
        """Raise :class:`StoreError` unless the database answers a query."""
        with self._read() as conn:
            conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()

    def schema_version(self) -> int:
        """Version recorded in the database."""
        with self._read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])

    # -- integrity -----------------------------------------------------------------

    def _mac(self, tagged: _Tagged) -> str:
        return hmac.new(self._secret, tagged.message(), hashlib.sha256).hexdigest()

    def _mac_v2(
        self,
        tenant: str,
        user_id: str,
        model_sha256: str,
        feature_dim: int,
        threshold: float | None,
        blob: bytes,
    ) -> str:
        msg = _mac_message_v2(tenant, user_id, model_sha256, feature_dim, threshold, blob)
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    @staticmethod
    def _reference_rows(conn: _Conn, tenant: str, user_id: str) -> list[tuple[str, bytes]]:
        rows = conn.execute(
            "SELECT image_sha256, features FROM user_references "
            "WHERE tenant_id = ? AND user_id = ? ORDER BY position",
            (tenant, user_id),
        ).fetchall()
        return [(str(r[0]), bytes(r[1])) for r in rows]

    def _checked_user(
        self, conn: _Conn, tenant: str, user_id: str
    ) -> tuple[UserRecord, bytes, list[tuple[str, bytes]], _Tagged]:
        """The user's record, classifier blob and references, integrity-checked together.

        One snapshot (``conn``'s): the classifier and the references it is scored
        with can never come from two enrollments.

        Raises
        ------
        UserNotFoundError
        StoreError
            A corrupt or tampered row.
        """
        validate_user_id(user_id)
        validate_tenant_id(tenant)
        row = conn.execute(
            f"SELECT {_USER_COLUMNS}, classifier FROM users WHERE tenant_id = ? AND user_id = ?",
            (tenant, user_id),
        ).fetchone()
        if row is None:
            raise UserNotFoundError(user_id)
        refs = self._reference_rows(conn, tenant, user_id)
        record = _user_from_row(row[:-1], [h for h, _ in refs])
        blob = bytes(row[-1])
        tagged = _Tagged(
            tenant=record.tenant,
            user_id=record.user_id,
            model_sha256=record.model_sha256,
            feature_dim=record.feature_dim,
            threshold=record.threshold,
            operating_point=record.operating_point,
            classifier_blob=blob,
            params_json=str(row[7] or ""),
            references=_references_digest(refs),
        )
        if not hmac.compare_digest(self._mac(tagged), record.mac):
            raise StoreError(
                f"stored enrollment of user {record.user_id!r} failed its integrity check "
                "(modified outside sigver, or the store secret changed); re-enroll the user"
            )
        return record, blob, refs, tagged

    def _retag_v3(self, conn: _Conn) -> int:
        """Schema 2 -> 3: extend every user's tag to its normaliser, point and references.

        A row whose schema-3 tag already holds is left alone (an earlier, partial
        run); one whose schema-2 tag holds is re-tagged, trusting what that tag could
        not see, as every reader of a schema-2 store did. The others are counted and
        left untouched. Returns their number: the caller keeps the store at schema 2
        while it is not 0, so that a process with the wrong secret (every row fails)
        writes nothing and a later open with the right one finishes the job.
        """
        rows = conn.execute(
            "SELECT tenant_id, user_id, model_sha256, feature_dim, threshold, classifier, "
            "classifier_params, operating_point, mac FROM users"
        ).fetchall()
        updates, refused = [], []
        for r in rows:
            tenant, user_id, mac = str(r[0]), str(r[1]), str(r[8] or "")
            try:
                threshold = None if r[4] is None else float(r[4])
                tagged = _Tagged(
                    tenant=tenant,
                    user_id=user_id,
                    model_sha256=str(r[2]),
                    feature_dim=int(r[3]),
                    threshold=threshold,
                    operating_point=None if r[7] is None else str(r[7]),
                    classifier_blob=bytes(r[5]),
                    params_json=str(r[6] or ""),
                    references=_references_digest(self._reference_rows(conn, tenant, user_id)),
                )
                if hmac.compare_digest(self._mac(tagged), mac):
                    continue  # already schema 3
                old = self._mac_v2(tenant, user_id, str(r[2]), int(r[3]), threshold, bytes(r[5]))
            except (TypeError, ValueError, OverflowError):
                refused.append(f"{tenant}/{user_id}")
                continue
            if hmac.compare_digest(old, mac):
                updates.append((self._mac(tagged), tenant, user_id))
            else:
                refused.append(f"{tenant}/{user_id}")
        if refused and len(refused) == len(rows):
            # Every row fails: most likely this process has another secret than the one
            # the store was written with. Re-tagging nothing is the only safe move.
            logger.error(
                "user store %s: none of its %d users passes the integrity check with this "
                "process's secret; is %s set as for the processes that wrote it? The store "
                "stays at schema version 2 (nothing was changed)",
                self.location,
                len(rows),
                ENV_STORE_SECRET,
            )
            return len(refused)
        for mac, tenant, user_id in updates:
            conn.execute(
                "UPDATE users SET mac = ? WHERE tenant_id = ? AND user_id = ?",
                (mac, tenant, user_id),
            )
        if updates:
            logger.info(
                "user store %s: integrity tags of %d users extended to schema version 3",
                self.location,
                len(updates),
            )
        if refused:
            logger.warning(
                "user store %s: %d user(s) fail their integrity check and stay refused until "
                "re-enrolled or removed (%s); the store stays at schema version 2 until then",
                self.location,
                len(refused),
                ", ".join(refused[:5]) + (" ..." if len(refused) > 5 else ""),
            )
        return len(refused)

    # -- tenants -------------------------------------------------------------------

    def create_tenant(
        self, tenant: str, *, exist_ok: bool = False, key_id: str | None = None
    ) -> str:
        """Create a tenant (:class:`StoreError` if it exists, unless ``exist_ok``)."""
        validate_tenant_id(tenant)
        with self._write() as conn:
            row = conn.execute("SELECT 1 FROM tenants WHERE tenant_id = ?", (tenant,)).fetchone()
            if row is not None:
                if exist_ok:
                    return tenant
                raise AlreadyExistsError(f"tenant {tenant!r} already exists")
            conn.execute(
                "INSERT INTO tenants (tenant_id, created_at) VALUES (?, ?)", (tenant, _now())
            )
            self._insert_audit(conn, [AuditEvent("tenant_create", tenant=tenant, key_id=key_id)])
        return tenant

    def list_tenants(self) -> list[dict[str, object]]:
        """Tenants with their user and active-key counts."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT t.tenant_id, t.created_at, "
                "(SELECT COUNT(*) FROM users u WHERE u.tenant_id = t.tenant_id), "
                "(SELECT COUNT(*) FROM api_keys k WHERE k.tenant_id = t.tenant_id "
                "AND k.revoked_at IS NULL) FROM tenants t ORDER BY t.tenant_id"
            ).fetchall()
        return [
            {"tenant": str(r[0]), "created_at": str(r[1]), "users": int(r[2]), "keys": int(r[3])}
            for r in rows
        ]

    def _require_tenant(self, conn: _Conn, tenant: str) -> None:
        if conn.execute("SELECT 1 FROM tenants WHERE tenant_id = ?", (tenant,)).fetchone() is None:
            raise TenantNotFoundError(tenant)

    # -- users ---------------------------------------------------------------------

    @staticmethod
    def _user_row(conn: _Conn, user_id: str, tenant: str) -> Any:
        """The user's row of ``_USER_COLUMNS`` (ids validated first), or ``None``."""
        validate_user_id(user_id)
        validate_tenant_id(tenant)
        return conn.execute(
            f"SELECT {_USER_COLUMNS} FROM users WHERE tenant_id = ? AND user_id = ?",
            (tenant, user_id),
        ).fetchone()

    def find_user(self, user_id: str, *, tenant: str = DEFAULT_TENANT) -> UserRecord | None:
        """The stored user, or ``None`` if not enrolled."""
        with self._read() as conn:
            return self._find_user_in(conn, user_id, tenant)

    def _find_user_in(self, conn: _Conn, user_id: str, tenant: str) -> UserRecord | None:
        row = self._user_row(conn, user_id, tenant)
        if row is None:
            return None
        refs = conn.execute(
            "SELECT image_sha256, image IS NOT NULL FROM user_references "
            "WHERE tenant_id = ? AND user_id = ? ORDER BY position",
            (tenant, user_id),
        ).fetchall()
        return _user_from_row(row, [r[0] for r in refs], sum(int(r[1]) for r in refs))

    def _written_user(self, conn: _Conn, user_id: str, tenant: str) -> UserRecord:
        """The user as this write transaction leaves it.

        Read inside the transaction: read after the commit, a concurrent write could
        hand back another revision, and a caller caching its own classifier under that
        revision's key would keep serving it.
        """
        record = self._find_user_in(conn, user_id, tenant)
        if record is None:  # pragma: no cover - written in this very transaction
            raise UserNotFoundError(user_id)
        return record

    def get_user(self, user_id: str, *, tenant: str = DEFAULT_TENANT) -> UserRecord:
        """The stored user; raises :class:`UserNotFoundError` if not enrolled."""
        record = self.find_user(user_id, tenant=tenant)
        if record is None:
            raise UserNotFoundError(user_id)
        return record

    def user_summary(self, user_id: str, *, tenant: str = DEFAULT_TENANT) -> UserRecord:
        """Like :meth:`get_user` but without the per-image hashes (one cheap query)."""
        with self._read() as conn:
            row = self._user_row(conn, user_id, tenant)
        if row is None:
            raise UserNotFoundError(user_id)
        return _user_from_row(row)

    def list_users(self, *, tenant: str = DEFAULT_TENANT) -> list[UserRecord]:
        """The tenant's users, sorted by id (hashes omitted)."""
        validate_tenant_id(tenant)
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE tenant_id = ? ORDER BY user_id",
                (tenant,),
            ).fetchall()
        return [_user_from_row(row) for row in rows]

    def count_users(self, *, tenant: str | None = None) -> int:
        """Number of enrolled users (of one tenant, or of all with ``None``)."""
        with self._read() as conn:
            if tenant is None:
                return int(conn.execute("SELECT COUNT(*) FROM users").fetchone()[0])
            return int(
                conn.execute(
                    "SELECT COUNT(*) FROM users WHERE tenant_id = ?", (tenant,)
                ).fetchone()[0]
            )

    def load_classifier(
        self, user_id: str, *, tenant: str = DEFAULT_TENANT
    ) -> tuple[UserRecord, dict[str, np.ndarray]]:
        """User record and classifier arrays, read in one snapshot and integrity-checked.

        Raises
        ------
        UserNotFoundError
        StoreError
            Corrupt or tampered classifier.
        """
        record, arrays, _, _ = self.load_enrollment(user_id, tenant=tenant)
        return record, arrays

    def load_enrollment(
        self, user_id: str, *, tenant: str = DEFAULT_TENANT
    ) -> tuple[UserRecord, dict[str, np.ndarray], np.ndarray, list[str]]:
        """Record, classifier arrays, reference features and hashes: one checked snapshot.

        Returns
        -------
        record : UserRecord
        arrays : dict
            The classifier's arrays.
        features : ndarray (n, d) float32
            Reference features in enrollment order.
        hashes : list of str
            Their images' SHA-256.

        Raises
        ------
        UserNotFoundError
        StoreError
            Corrupt or tampered enrollment.
        """
        with self._read() as conn:
            record, blob, refs, _ = self._checked_user(conn, tenant, user_id)
        if not refs:
            raise StoreError(f"user {user_id!r} has no stored references")
        feats = np.stack([_blob_to_features(b, record.feature_dim) for _, b in refs])
        return record, decode_arrays(blob), feats, [h for h, _ in refs]

    def load_references(
        self, user_id: str, *, tenant: str = DEFAULT_TENANT
    ) -> tuple[np.ndarray, list[str]]:
        """Reference features ``(n, d)`` float32 and their image hashes (integrity-checked)."""
        _, _, feats, hashes = self.load_enrollment(user_id, tenant=tenant)
        return feats, hashes

    def load_reference_images(
        self, user_id: str, *, tenant: str = DEFAULT_TENANT
    ) -> list[tuple[str, bytes]]:
        """Stored images ``(sha256, bytes)`` of a user (only those stored on request)."""
        validate_user_id(user_id)
        with self._read() as conn:
            rows = conn.execute(
                "SELECT image_sha256, image FROM user_references "
                "WHERE tenant_id = ? AND user_id = ? AND image IS NOT NULL ORDER BY position",
                (tenant, user_id),
            ).fetchall()
        return [(str(r[0]), bytes(r[1])) for r in rows]

    def other_references(
        self,
        exclude_user: str,
        model_sha256: str,
        *,
        limit: int | None = None,
        seed: int = 0,
        tenant: str = DEFAULT_TENANT,
        dim: int | None = None,
    ) -> np.ndarray:
        """Reference features of the tenant's other users enrolled with the same extractor.

        With ``limit`` the sample is drawn *in the database*: rows are visited
        in ``sample_key`` order (random, indexed) from a start derived from
        ``seed``, wrapping around, so at most about ``limit`` rows are read
        however many users are stored. The same seed on the same data gives
        the same sample.

        Rows whose feature blob does not have ``dim`` values (or the modal size
        of the sample when ``dim`` is omitted) are skipped with a warning, so
        one corrupt row cannot break everybody else's enrollment.

        Parameters
        ----------
        exclude_user : str
            The user being enrolled.
        model_sha256 : str
            Only users enrolled with this extractor contribute (other extractors'
            features live in a different space).
        limit : int, optional
            Keep at most this many vectors.
        seed : int
            Seed of the sample, so that re-enrolling is reproducible.
        tenant : str
            Negatives never cross tenants.
        dim : int, optional
            Expected feature size.

        Returns
        -------
        numpy.ndarray
            ``(n, d)`` float32, possibly with ``n == 0``.
        """
        validate_tenant_id(tenant)
        base = (
            "SELECT features FROM user_references WHERE tenant_id = ? AND model_sha256 = ? "
            "AND user_id != ?"
        )
        args: tuple[Any, ...] = (tenant, model_sha256, exclude_user)
        with self._read() as conn:
            if limit is None:
                rows = conn.execute(base + " ORDER BY user_id, position", args).fetchall()
            else:
                start = int(np.random.default_rng(seed).integers(0, _SAMPLE_KEY_MAX))
                rows = conn.execute(
                    base + " AND sample_key >= ? ORDER BY sample_key LIMIT ?",
                    (*args, start, int(limit)),
                ).fetchall()
                if len(rows) < limit:
                    rows += conn.execute(
                        base + " AND sample_key < ? ORDER BY sample_key LIMIT ?",
                        (*args, start, int(limit) - len(rows)),
                    ).fetchall()
        blobs = [bytes(r[0]) for r in rows]
        if not blobs:
            return np.zeros((0, 0 if dim is None else dim), dtype=np.float32)
        if dim is None:
            sizes, counts = np.unique([len(b) for b in blobs], return_counts=True)
            dim = int(sizes[np.argmax(counts)]) // _FLOAT32_LE.itemsize
        good = [b for b in blobs if len(b) == dim * _FLOAT32_LE.itemsize]
        if len(good) < len(blobs):
            logger.warning(
                "skipped %d corrupt reference row(s) while sampling negatives",
                len(blobs) - len(good),
            )
        if not good:
            return np.zeros((0, dim), dtype=np.float32)
        return np.frombuffer(b"".join(good), dtype=_FLOAT32_LE).reshape(-1, dim).astype(np.float32)

    def _write_user_row(
        self,
        conn: _Conn,
        rec: EnrollmentRecord,
        created_at: str,
        revision: int,
        operating_point: str | None = None,
    ) -> str:
        now = _now()
        dim = int(np.asarray(rec.references[0].features).size)
        blob = encode_arrays(rec.classifier)
        threshold = None if rec.threshold is None else float(rec.threshold)
        params_json = json.dumps(dict(rec.classifier_params), sort_keys=True)
        tagged = _Tagged(
            tenant=rec.tenant,
            user_id=rec.user_id,
            model_sha256=rec.model_sha256,
            feature_dim=dim,
            threshold=threshold,
            operating_point=operating_point,
            classifier_blob=blob,
            params_json=params_json,
            references=_references_digest(
                [(r.image_sha256, _features_to_blob(r.features)) for r in rec.references]
            ),
        )
        conn.execute(
            "INSERT INTO users (tenant_id, user_id, model_id, model_sha256, feature_dim, "
            "n_references, n_negatives, threshold, classifier, classifier_params, created_at, "
            "updated_at, revision, mac, operating_point) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rec.tenant,
                rec.user_id,
                rec.model_id,
                rec.model_sha256,
                dim,
                len(rec.references),
                int(rec.n_negatives),
                threshold,
                blob,
                params_json,
                created_at,
                now,
                revision,
                self._mac(tagged),
                operating_point,
            ),
        )
        return now

    def _write_reference(
        self, conn: _Conn, rec: EnrollmentRecord, position: int, ref: ReferenceRecord, now: str
    ) -> None:
        conn.execute(
            "INSERT INTO user_references (tenant_id, user_id, position, image_sha256, features, "
            "image, created_at, model_sha256, sample_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rec.tenant,
                rec.user_id,
                position,
                ref.image_sha256,
                _features_to_blob(ref.features),
                ref.image,
                now,
                rec.model_sha256,
                secrets.randbelow(_SAMPLE_KEY_MAX),
            ),
        )

    def save_enrollment(
        self,
        record: EnrollmentRecord,
        *,
        mode: str = "new",
        expected_revision: int | None = None,
        audit: AuditEvent | None = None,
    ) -> UserRecord:
        """Write a complete enrollment atomically (with its audit event).

        Parameters
        ----------
        record : EnrollmentRecord
            The full new state of the user (all references, the classifier...).
        mode : {"new", "add", "replace"}
            ``"new"`` fails with :class:`UserExistsError` if the user exists;
            ``"add"`` requires the user to exist at ``expected_revision``;
            ``"replace"`` overwrites whatever is there.
        expected_revision : int, optional
            For ``"add"``: the revision the new state was computed from; if another
            process changed the user meanwhile, :class:`ConcurrentUpdateError`.
        audit : AuditEvent, optional
            Written in the same transaction.

        Returns
        -------
        UserRecord
            The stored user.
        """
        validate_user_id(record.user_id)
        validate_tenant_id(record.tenant)
        if mode not in ("new", "add", "replace"):
            raise ValueError(f"unknown mode {mode!r}")
        if not record.references:
            raise StoreError("an enrollment needs at least one reference")
        dims = {int(np.asarray(r.features).size) for r in record.references}
        if len(dims) != 1:
            raise StoreError(f"references have different feature sizes {sorted(dims)}")
        with self._write() as conn:
            self._require_tenant(conn, record.tenant)
            row = conn.execute(
                "SELECT created_at, revision, operating_point FROM users "
                "WHERE tenant_id = ? AND user_id = ?",
                (record.tenant, record.user_id),
            ).fetchone()
            if row is not None and mode == "new":
                raise UserExistsError(record.user_id)
            if mode == "add":
                if row is None:
                    raise UserNotFoundError(record.user_id)
                if expected_revision is not None and int(row[1]) != expected_revision:
                    raise ConcurrentUpdateError(
                        f"user {record.user_id!r} was modified by another process during "
                        "enrollment; retry"
                    )
            created_at = _now() if row is None else str(row[0])
            revision = 1 if row is None else int(row[1]) + 1
            if row is not None:
                conn.execute(
                    "DELETE FROM users WHERE tenant_id = ? AND user_id = ?",
                    (record.tenant, record.user_id),
                )
            # Adding references keeps the user's operating point, as it keeps the threshold.
            point = None if mode != "add" or row is None or row[2] is None else str(row[2])
            now = self._write_user_row(conn, record, created_at, revision, point)
            for position, ref in enumerate(record.references):
                self._write_reference(conn, record, position, ref, now)
            if audit is not None:
                self._insert_audit(conn, [audit])
            written = self._written_user(conn, record.user_id, record.tenant)
        logger.debug("stored user %s/%s (revision %d)", record.tenant, record.user_id, revision)
        return written

    def set_threshold(
        self,
        user_id: str,
        threshold: float | None,
        *,
        tenant: str = DEFAULT_TENANT,
        audit: AuditEvent | None = None,
    ) -> UserRecord:
        """Set (or clear with ``None``) a user's threshold override."""
        validate_user_id(user_id)
        validate_tenant_id(tenant)
        if threshold is not None and not math.isfinite(float(threshold)):
            raise StoreError(f"threshold must be finite, got {threshold}")
        value = None if threshold is None else float(threshold)
        with self._write() as conn:
            # Re-signing a tampered enrollment would launder it: check first.
            _, _, _, tagged = self._checked_user(conn, tenant, user_id)
            mac = self._mac(replace(tagged, threshold=value))
            conn.execute(
                "UPDATE users SET threshold = ?, updated_at = ?, revision = revision + 1, "
                "mac = ? WHERE tenant_id = ? AND user_id = ?",
                (value, _now(), mac, tenant, user_id),
            )
            if audit is not None:
                self._insert_audit(conn, [audit])
            return self._written_user(conn, user_id, tenant)

    def set_operating_point(
        self,
        user_id: str,
        name: str | None,
        *,
        tenant: str = DEFAULT_TENANT,
        audit: AuditEvent | None = None,
    ) -> UserRecord:
        """Set (or clear with ``None``) a user's named operating point.

        The name is stored verbatim; :meth:`enrollment.Verifier.set_operating_point`
        checks it against the model's calibration first.
        """
        validate_user_id(user_id)
        validate_tenant_id(tenant)
        with self._write() as conn:
            # The operating point is tagged: check the row before signing it again.
            _, _, _, tagged = self._checked_user(conn, tenant, user_id)
            mac = self._mac(replace(tagged, operating_point=name))
            conn.execute(
                "UPDATE users SET operating_point = ?, updated_at = ?, revision = revision + 1, "
                "mac = ? WHERE tenant_id = ? AND user_id = ?",
                (name, _now(), mac, tenant, user_id),
            )
            if audit is not None:
                self._insert_audit(conn, [audit])
            return self._written_user(conn, user_id, tenant)

    def operating_point_of(self, user_id: str, *, tenant: str = DEFAULT_TENANT) -> str | None:
        """A user's named operating point (``None``: the store-wide default)."""
        return self.user_summary(user_id, tenant=tenant).operating_point

    def remove_user(
        self, user_id: str, *, tenant: str = DEFAULT_TENANT, audit: AuditEvent | None = None
    ) -> None:
        """Delete a user and all their references; :class:`UserNotFoundError` if absent."""
        validate_user_id(user_id)
        validate_tenant_id(tenant)
        with self._write() as conn:
            conn.execute(
                "DELETE FROM user_references WHERE tenant_id = ? AND user_id = ?",
                (tenant, user_id),
            )
            cur = conn.execute(
                "DELETE FROM users WHERE tenant_id = ? AND user_id = ?", (tenant, user_id)
            )
            if cur.rowcount == 0:
                raise UserNotFoundError(user_id)
            if audit is not None:
                self._insert_audit(conn, [audit])
        logger.info("removed user %s/%s", tenant, user_id)

    def integrity_check(self) -> str:
        """Consistency checks (``"ok"`` when fine)."""
        with self._read() as conn:
            problems = conn.execute(
                "SELECT u.user_id FROM users u LEFT JOIN user_references r "
                "ON r.tenant_id = u.tenant_id AND r.user_id = u.user_id "
                "GROUP BY u.tenant_id, u.user_id "
                "HAVING COUNT(r.user_id) != MAX(u.n_references)"
            ).fetchall()
            orphans = conn.execute(
                "SELECT COUNT(*) FROM user_references r LEFT JOIN users u "
                "ON u.tenant_id = r.tenant_id AND u.user_id = r.user_id WHERE u.user_id IS NULL"
            ).fetchone()[0]
        if problems:
            return f"reference count mismatch for users {[p[0] for p in problems]}"
        if orphans:
            return f"{orphans} orphan references"
        return "ok"

    # -- audit ---------------------------------------------------------------------

    def _insert_audit(self, conn: _Conn, events: Sequence[AuditEvent]) -> None:
        now = _now()
        rows = []
        for ev in events:
            if ev.action not in AUDIT_ACTIONS:
                raise StoreError(f"unknown audit action {ev.action!r}")
            rows.append(
                (
                    ev.time or now,
                    ev.tenant,
                    ev.key_id,
                    ev.user_id,
                    ev.action,
                    ev.decision,
                    None if ev.score is None else float(ev.score),
                    None if ev.threshold is None else float(ev.threshold),
                    ev.operating_point,
                    ev.model_id,
                    ev.image_sha256,
                    None if not ev.detail else json.dumps(dict(ev.detail), sort_keys=True),
                )
            )
        conn.executemany(
            f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def append_audit(self, events: Sequence[AuditEvent]) -> None:
        """Append events to the audit trail (one transaction)."""
        if events:
            # An insert-only transaction: it need not queue behind enrollments
            # (PostgreSQL), which matters because every verification writes one.
            with self._write(serialize=False) as conn:
                self._insert_audit(conn, events)

    def audit_events(
        self,
        *,
        tenant: str | None = DEFAULT_TENANT,
        user_id: str | None = None,
        action: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Audit events, newest first.

        Parameters
        ----------
        tenant : str or None
            Only this tenant's events (``None``: all tenants, for admins).
        user_id, action : str, optional
            Exact filters.
        since, until : str, optional
            ISO-8601 bounds on the event time (``since`` inclusive, ``until`` exclusive).
        limit : int
            At most this many events (1..10000).
        """
        if not 1 <= int(limit) <= 10_000:
            raise StoreError(f"limit must be in 1..10000, got {limit}")
        clauses, args = [], []
        for column, value in (("tenant_id", tenant), ("user_id", user_id), ("action", action)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        for op, value in ((">=", since), ("<", until)):
            if value is not None:
                clauses.append(f"time {op} ?")
                args.append(_normalise_time(value))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_AUDIT_COLUMNS} FROM audit {where} ORDER BY event_id DESC LIMIT ?",
                (*args, int(limit)),
            ).fetchall()
        return [_audit_from_row(r) for r in rows]

    # -- API keys ------------------------------------------------------------------

    def create_api_key(
        self,
        name: str,
        *,
        tenant: str = DEFAULT_TENANT,
        scope: str = "tenant",
        create_tenant: bool = False,
        key_id: str | None = None,
    ) -> tuple[auth.ApiKeyInfo, str]:
        """Create a key; returns its description and the plaintext (shown once).

        A revoked key's name may be reused; active names are unique.
        """
        auth.validate_key_name(name)
        validate_tenant_id(tenant)
        if scope not in KEY_SCOPES:
            raise StoreError(f"scope must be one of {KEY_SCOPES}, got {scope!r}")
        if create_tenant:
            self.create_tenant(tenant, exist_ok=True)
        key = auth.generate_key()
        now = _now()
        with self._write() as conn:
            self._require_tenant(conn, tenant)
            exists = conn.execute(
                "SELECT 1 FROM api_keys WHERE name = ? AND revoked_at IS NULL", (name,)
            ).fetchone()
            if exists is not None:
                raise AlreadyExistsError(f"an active API key named {name!r} already exists")
            conn.execute(
                "INSERT INTO api_keys (key_id, name, tenant_id, scope, salt, digest, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key.key_id, name, tenant, scope, key.salt, key.digest, now),
            )
            self._insert_audit(
                conn,
                [
                    AuditEvent(
                        "key_create",
                        tenant=tenant,
                        key_id=key_id,
                        detail={"key": key.key_id, "name": name, "scope": scope},
                    )
                ],
            )
        return auth.ApiKeyInfo(key.key_id, name, now, None, tenant, scope), key.plaintext

    def list_api_keys(self, *, tenant: str | None = None) -> list[auth.ApiKeyInfo]:
        """Keys, active and revoked (no secrets), of one tenant or all."""
        sql = "SELECT key_id, name, created_at, revoked_at, tenant_id, scope FROM api_keys"
        args: tuple[Any, ...] = ()
        if tenant is not None:
            sql += " WHERE tenant_id = ?"
            args = (tenant,)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY created_at, key_id", args).fetchall()
        return [
            auth.ApiKeyInfo(str(r[0]), str(r[1]), str(r[2]), r[3], str(r[4]), str(r[5]))
            for r in rows
        ]

    def revoke_api_key(
        self, name_or_id: str, *, tenant: str | None = None, key_id: str | None = None
    ) -> auth.ApiKeyInfo:
        """Revoke a key by key id, or by name (the active key of that name).

        Parameters
        ----------
        name_or_id : str
        tenant : str, optional
            Only a key of this tenant may be revoked.
        key_id : str, optional
            Key making the request (for the audit trail).
        """
        with self._write() as conn:
            rows = conn.execute(
                "SELECT key_id, name, created_at, revoked_at, tenant_id, scope FROM api_keys "
                "WHERE key_id = ? OR (name = ? AND revoked_at IS NULL) "
                "ORDER BY (key_id = ?) DESC",
                (name_or_id, name_or_id, name_or_id),
            ).fetchall()
            rows = [r for r in rows if tenant is None or r[4] == tenant]
            if not rows:
                raise ApiKeyNotFoundError(f"no API key named {name_or_id!r}")
            row = rows[0]
            revoked = row[3] or _now()
            conn.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ?", (revoked, row[0]))
            self._insert_audit(
                conn,
                [
                    AuditEvent(
                        "key_revoke",
                        tenant=str(row[4]),
                        key_id=key_id,
                        detail={"key": str(row[0]), "name": str(row[1])},
                    )
                ],
            )
        return auth.ApiKeyInfo(
            str(row[0]), str(row[1]), str(row[2]), revoked, str(row[4]), str(row[5])
        )

    def has_active_api_keys(self) -> bool:
        """Whether at least one key can authenticate."""
        with self._read() as conn:
            row = conn.execute("SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1")
            return row.fetchone() is not None

    def authenticate(self, presented: str | None) -> auth.ApiKeyInfo | None:
        """The active key matching ``presented``, or ``None`` (constant-time compare)."""
        parsed = auth.parse_key(presented)
        if parsed is None:
            return None
        key_id, secret = parsed
        with self._read() as conn:
            row = conn.execute(
                "SELECT key_id, name, created_at, revoked_at, salt, digest, tenant_id, scope "
                "FROM api_keys WHERE key_id = ?",
                (key_id,),
            ).fetchone()
        if row is None:
            auth.secrets_match(secret, None, None)
            return None
        if not auth.secrets_match(secret, bytes(row[4]), bytes(row[5])) or row[3] is not None:
            return None
        return auth.ApiKeyInfo(
            str(row[0]), str(row[1]), str(row[2]), None, str(row[6]), str(row[7])
        )


def _normalise_time(value: str) -> str:
    """An ISO-8601 bound in the stored form (UTC, microseconds), so text order = time order."""
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise StoreError(f"not an ISO-8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _load_or_create_secret(home: Path) -> bytes:
    """The integrity secret: ``$SIGVER_STORE_SECRET``, else ``<home>/store.key`` (created 0600)."""
    env = os.environ.get(ENV_STORE_SECRET)
    if env:
        return env.encode()
    path = home / SECRET_FILENAME
    token = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Existing secret, or another process creating it right now: give it a moment.
        for _ in range(40):
            data = path.read_bytes().strip()
            if len(data) >= 32:
                return data
            time.sleep(0.05)
        raise StoreError(f"{path} is too short to be a store secret") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(token)
        fh.flush()
        os.fsync(fh.fileno())
    return token


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class UserStore(BaseStore):
    """Enrolled users, keys, tenants and audit trail in ``<home>/users.sqlite3``.

    Parameters
    ----------
    home : path-like, optional
        Folder of the store (created with mode 0700 if missing); default from
        :func:`enrollment.config.resolve_home` (``$SIGVER_HOME`` or ``~/.sigver``).
    busy_timeout_s : float
        How long to wait for another process's write lock.

    Raises
    ------
    StoreError
        If the folder cannot be created or the database is not a sigver store.
    """

    backend = "sqlite"

    def __init__(
        self, home: str | os.PathLike[str] | None = None, *, busy_timeout_s: float = 30.0
    ) -> None:
        self.home = resolve_home(home)
        self.path = self.home / DB_FILENAME
        self.busy_timeout_s = float(busy_timeout_s)
        # One connection per thread, reused: opening one and setting its pragmas
        # costs more than the query of a verification (scripts/bench_inference.py).
        self._local = threading.local()
        self._generation = 0
        try:
            self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StoreError(f"cannot create store folder {self.home}: {exc}") from exc
        self._secret = _load_or_create_secret(self.home)
        self._initialise()

    def __repr__(self) -> str:
        return f"UserStore({str(self.home)!r})"

    @property
    def location(self) -> str:
        """Path of the database file."""
        return str(self.path)

    # -- connection handling -------------------------------------------------

    def _connect(self, *, foreign_keys: bool = True) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open user store {self.path}: {exc}") from exc
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        conn.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        # FULL: an acknowledged enrollment survives power loss, and enrollments
        # are rare enough that the extra fsync does not matter.
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    def _acquire(self, foreign_keys: bool) -> tuple[sqlite3.Connection, bool]:
        """This thread's cached connection (``True``), or a one-off without foreign keys."""
        if not foreign_keys:
            return self._connect(foreign_keys=False), False
        local = self._local
        conn = getattr(local, "conn", None)
        # A connection must never cross a fork (SQLite's rule) nor outlive close().
        if conn is not None and (local.pid, local.generation) == (os.getpid(), self._generation):
            return conn, True
        if conn is not None and local.pid == os.getpid():
            self._drop(conn)  # closed since: reopen
        local.conn = None
        conn = self._connect()
        local.conn, local.pid, local.generation = conn, os.getpid(), self._generation
        return conn, True

    def _release(self, conn: sqlite3.Connection, cached: bool, *, broken: bool) -> None:
        if not cached:
            conn.close()
        elif broken:
            # After a database error the connection's state is unknown: start afresh.
            self._drop(conn)

    def _drop(self, conn: sqlite3.Connection) -> None:
        """Forget this thread's cached connection and close it."""
        self._local.conn = None
        with contextlib.suppress(sqlite3.Error):
            conn.close()

    def close(self) -> None:
        """Close this thread's connection; other threads' are reopened on their next use."""
        self._generation += 1
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            self._drop(conn)

    def _begin(self, conn: sqlite3.Connection, *, immediate: bool) -> None:
        if not immediate:
            conn.execute("BEGIN")  # one snapshot for all the statements of the block
            return
        for attempt in range(_BUSY_RETRIES):
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or attempt == _BUSY_RETRIES - 1:
                    raise StoreError(f"user store {self.path} is busy: {exc}") from exc
                time.sleep(0.05 * (attempt + 1))

    @contextlib.contextmanager
    def _transaction(self, *, immediate: bool, foreign_keys: bool = True) -> Iterator[_Conn]:
        """Committed on success, rolled back on error, on this thread's connection."""
        conn, cached = self._acquire(foreign_keys)
        broken = False
        try:
            self._begin(conn, immediate=immediate)
            try:
                yield _Conn(conn, "qmark")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            broken = True
            raise StoreError(f"user store {self.path}: {exc}") from exc
        finally:
            self._release(conn, cached, broken=broken)

    def _read(self) -> contextlib.AbstractContextManager[_Conn]:
        return self._transaction(immediate=False)

    def _write(
        self, *, foreign_keys: bool = True, serialize: bool = True
    ) -> contextlib.AbstractContextManager[_Conn]:
        """One ``BEGIN IMMEDIATE`` transaction.

        (SQLite serialises every writer anyway; ``serialize`` is for the interface.)
        """
        return self._transaction(immediate=True, foreign_keys=foreign_keys)

    def _initialise(self) -> None:
        created = not self.path.exists()
        for attempt in range(_BUSY_RETRIES):
            try:
                conn = self._connect()
                try:
                    # Persistent per database file; several processes may race
                    # here on a new store, hence the retry loop.
                    conn.execute("PRAGMA journal_mode = WAL")
                finally:
                    conn.close()
                break
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or attempt == _BUSY_RETRIES - 1:
                    raise StoreError(f"cannot open user store {self.path}: {exc}") from exc
                time.sleep(0.05 * (attempt + 1))
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path} is not a sigver user store: {exc}") from exc
        if created:
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)
        # Table rebuilds need foreign keys off (SQLite's documented ALTER procedure);
        # the result is checked with foreign_key_check before committing.
        with self._write(foreign_keys=False) as conn:
            version = _stored_schema_version(conn, self.path)
            if version < 1:
                for statement in _statements(_SQLITE_V1):
                    conn.execute(statement)
                version = 1
            if version < 2:
                self._migrate_v1_to_v2(conn)
                version = 2
                broken = conn.execute("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise StoreError(f"migration of {self.path} left dangling rows: {broken[:5]}")
            if version < 3 and self._retag_v3(conn) == 0:
                version = 3
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(version),),
            )

    def _migrate_v1_to_v2(self, conn: _Conn) -> None:
        """First-release layout -> tenants, MACs, sample keys, audit (in the open transaction)."""
        n_users = int(conn.execute("SELECT COUNT(*) FROM users").fetchone()[0])
        if n_users:
            logger.info(
                "migrating user store %s to schema version 2 (%d users)", self.path, n_users
            )
        ddl = _V2_TABLES.format(blob="BLOB", serial="INTEGER PRIMARY KEY AUTOINCREMENT")
        for statement in _statements(ddl):
            conn.execute(statement)
        now = _now()
        conn.execute(
            "INSERT INTO tenants (tenant_id, created_at) VALUES (?, ?)", (DEFAULT_TENANT, now)
        )
        rows = conn.execute(
            "SELECT user_id, model_id, model_sha256, feature_dim, n_references, n_negatives, "
            "threshold, classifier, classifier_params, created_at, updated_at, revision FROM users"
        ).fetchall()
        for r in rows:
            # Trust on first migration: the first release kept no integrity tag.
            try:
                threshold = None if r[6] is None else float(r[6])
                mac = self._mac_v2(
                    DEFAULT_TENANT, str(r[0]), str(r[2]), int(r[3]), threshold, bytes(r[7])
                )
            except (TypeError, ValueError):
                mac = "unverifiable"  # malformed row: it will be refused when used
            conn.execute(
                "INSERT INTO users2 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (DEFAULT_TENANT, *r, mac),
            )
        refs = conn.execute(
            "SELECT r.user_id, r.position, r.image_sha256, r.features, r.image, r.created_at, "
            "u.model_sha256 FROM user_references r JOIN users u ON u.user_id = r.user_id"
        ).fetchall()
        conn.executemany(
            "INSERT INTO user_references2 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(DEFAULT_TENANT, *r, secrets.randbelow(_SAMPLE_KEY_MAX)) for r in refs],
        )
        conn.execute(
            "INSERT INTO api_keys2 SELECT key_id, name, ?, 'tenant', salt, digest, created_at, "
            "revoked_at FROM api_keys",
            (DEFAULT_TENANT,),
        )
        for old in ("user_references", "users", "api_keys"):
            conn.execute(f"DROP TABLE {old}")
        for new in ("users", "user_references", "api_keys"):
            conn.execute(f"ALTER TABLE {new}2 RENAME TO {new}")
        for statement in _statements(_V2_INDEXES) + _statements(_SQLITE_AUDIT_GUARDS):
            conn.execute(statement)


def _parse_version(value: object, where: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise StoreError(f"{where}: corrupt schema version {value!r}") from None


def _stored_schema_version(conn: _Conn, where: object) -> int:
    """Version recorded in ``meta`` (0 for a new database, whose ``meta`` is created).

    Raises
    ------
    StoreError
        The version is corrupt, or newer than this sigver supports.
    """
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = 0 if row is None else _parse_version(row[0], where)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"user store {where} has schema version {version}, newer than this "
            f"sigver supports ({SCHEMA_VERSION}); upgrade sigver"
        )
    return version


class PostgresStore(BaseStore):
    """The same store on PostgreSQL, through a ``psycopg_pool`` connection pool.

    Parameters
    ----------
    url : str
        ``postgresql://user:password@host:port/dbname`` (libpq conninfo).
    min_size, max_size : int
        Pool size per process.
    secret : bytes, optional
        Integrity secret; default ``$SIGVER_STORE_SECRET``. Without one a
        secret is generated and kept in the database's ``meta`` table, which
        still catches corruption but not a deliberate edit by someone who can
        write the database: set ``SIGVER_STORE_SECRET`` on every host.
    """

    backend = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 4,
        secret: bytes | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool, PoolTimeout
        except ImportError as exc:  # pragma: no cover - dependency declared
            raise StoreError("PostgreSQL stores need psycopg[binary,pool] installed") from exc
        self._psycopg = psycopg
        self._pool_timeout = PoolTimeout
        self.url = url
        self.home = None
        self._pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout_s,
            open=False,
            kwargs={"autocommit": True},
        )
        try:
            self._pool.open(wait=True, timeout=timeout_s)
        except Exception as exc:
            self._pool.close()
            raise StoreError(f"cannot connect to {self.location}: {exc}") from exc
        try:
            self._initialise(secret)
        except BaseException:
            # A store that cannot be used (newer schema, failed migration) keeps no
            # server connections open behind the exception.
            self._pool.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r})"

    @property
    def location(self) -> str:
        """The URL without its password."""
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", self.url)

    def close(self) -> None:
        """Close the pool."""
        self._pool.close()

    @contextlib.contextmanager
    def _tx(self, write: bool, serialize: bool = True) -> Iterator[_Conn]:
        psycopg = self._psycopg
        try:
            with self._pool.connection() as raw:
                with raw.transaction():
                    if write:
                        if serialize:
                            # Writers are rare (enrollments, key changes): serialise them
                            # like SQLite's BEGIN IMMEDIATE so read-modify-write checks
                            # stay simple.
                            raw.execute("SELECT pg_advisory_xact_lock(775533)")
                    else:
                        raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    yield _Conn(raw, "format")
        except (psycopg.Error, self._pool_timeout) as exc:
            raise StoreError(f"user store {self.location}: {exc}") from exc

    @contextlib.contextmanager
    def _read(self) -> Iterator[_Conn]:
        with self._tx(False) as conn:
            yield conn

    @contextlib.contextmanager
    def _write(self, *, serialize: bool = True) -> Iterator[_Conn]:
        with self._tx(True, serialize) as conn:
            yield conn

    def _initialise(self, secret: bytes | None) -> None:
        with self._tx(True) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(775534)")
            version = _stored_schema_version(conn, self.location)
            # PostgreSQL stores start at version 2 (the first release had no PostgreSQL).
            if version < 2:
                ddl = _V2_TABLES.format(blob="BYTEA", serial="BIGSERIAL PRIMARY KEY")
                ddl = ddl.replace("users2", "users").replace("user_references2", "user_references")
                ddl = ddl.replace("api_keys2", "api_keys")
                for statement in _statements(ddl) + _statements(_V2_INDEXES):
                    conn.execute(statement)
                for statement in _statements(_PG_AUDIT_GUARDS):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO tenants (tenant_id, created_at) VALUES (?, ?)",
                    (DEFAULT_TENANT, _now()),
                )
                version = 2
            self._load_secret(conn, secret)
            if version < 3 and self._retag_v3(conn) == 0:  # needs the secret
                version = 3
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(version),),
            )

    def _load_secret(self, conn: _Conn, secret: bytes | None) -> None:
        """The integrity secret: ``secret``, ``$SIGVER_STORE_SECRET``, else kept in ``meta``."""
        env = os.environ.get(ENV_STORE_SECRET)
        if secret is not None or env:
            self._secret = secret if secret is not None else str(env).encode()
        else:
            row = conn.execute("SELECT value FROM meta WHERE key = 'mac_secret'").fetchone()
            if row is None:
                token = secrets.token_hex(32)
                conn.execute("INSERT INTO meta(key, value) VALUES ('mac_secret', ?)", (token,))
                row = (token,)
            logger.warning(
                "%s is not set: the classifier integrity secret is kept in the database, "
                "which detects corruption but not deliberate edits",
                ENV_STORE_SECRET,
            )
            self._secret = str(row[0]).encode()


_POOLS_LOCK = threading.Lock()


def open_store(
    store: str | os.PathLike[str] | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    busy_timeout_s: float = 30.0,
    pool_size: int = 4,
) -> BaseStore:
    """Open the store named by ``store`` (URL or folder), ``$SIGVER_STORE``, or ``home``.

    Parameters
    ----------
    store : str or path-like, optional
        ``postgresql://...`` / ``postgres://...`` for PostgreSQL;
        ``sqlite:///abs/folder`` or a folder for SQLite.
    home : path-like, optional
        SQLite folder used when ``store`` is not given (it then wins over
        ``$SIGVER_STORE``, which applies when neither is given).
    busy_timeout_s : float
        SQLite lock wait / PostgreSQL pool wait.
    pool_size : int
        PostgreSQL connections per process.

    Returns
    -------
    BaseStore
    """
    target = store if store not in (None, "") else None
    if target is None and home in (None, ""):
        # An explicit home (``--home``) wins over the environment, like ``$SIGVER_HOME``.
        target = os.environ.get(ENV_STORE) or None
    if target is None:
        return UserStore(home, busy_timeout_s=busy_timeout_s)
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        with _POOLS_LOCK:
            return PostgresStore(text, max_size=pool_size, timeout_s=busy_timeout_s)
    if text.startswith("sqlite://"):
        text = text[len("sqlite://") :]
        if text.startswith("/") and text.startswith("//"):
            text = text[1:]
    elif "://" in text:
        raise StoreError(f"unsupported store URL {text!r} (use postgresql://... or a folder)")
    return UserStore(text, busy_timeout_s=busy_timeout_s)

"""The user store: an embedded SQLite database of enrolled users and API keys.

Layout (schema version 1)::

    users(user_id PK, model_id, model_sha256, feature_dim, n_references, n_negatives,
          threshold NULL, classifier BLOB (npz, no pickle), classifier_params JSON,
          created_at, updated_at, revision)
    user_references(user_id FK, position, image_sha256, features BLOB (float32 LE),
                    image BLOB NULL, created_at)
    api_keys(key_id PK, name UNIQUE, salt, digest, created_at, revoked_at NULL)

Design choices:

* User ids are only ever bound as SQL parameters, never used as paths; they
  are validated by :func:`validate_user_id` anyway so that they stay
  printable and URL-safe.
* Every write is one ``BEGIN IMMEDIATE`` transaction: an enrollment either
  commits completely or leaves the previous state untouched, even if the
  process is killed mid-way (SQLite's journal rolls the partial write back).
* WAL mode lets readers (verification) run while a writer (enrollment)
  commits; writers wait up to ``busy_timeout_s`` for each other and are
  retried a few times on ``SQLITE_BUSY``.
* Each operation opens its own short-lived connection, so the store is safe to
  share between threads and forked worker processes.
* Arrays are stored as raw little-endian float32 or as ``.npz`` blobs read
  back with ``allow_pickle=False``: nothing in the database is unpickled.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from enrollment import auth
from enrollment.config import resolve_home
from enrollment.errors import (
    ConcurrentUpdateError,
    InvalidUserIdError,
    StoreError,
    UserExistsError,
    UserNotFoundError,
)

__all__ = [
    "DB_FILENAME",
    "SCHEMA_VERSION",
    "EnrollmentRecord",
    "ReferenceRecord",
    "UserRecord",
    "UserStore",
    "decode_arrays",
    "encode_arrays",
    "validate_user_id",
]

logger = logging.getLogger(__name__)

#: File name of the database inside the home folder.
DB_FILENAME = "users.sqlite3"
#: Version written to ``meta``; a store with a newer version is refused.
SCHEMA_VERSION = 1

_USER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_FLOAT32_LE = np.dtype("<f4")
_BUSY_RETRIES = 5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
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


def validate_user_id(user_id: object) -> str:
    """Return ``user_id`` if it is acceptable, else raise :class:`InvalidUserIdError`.

    Accepted: 1-64 characters from ``A-Z a-z 0-9 . _ @ -``, starting with a
    letter or digit. This rules out empty ids, path separators, ``..`` at
    the start, NUL and other control characters, whitespace and over-long ids.
    """
    if not isinstance(user_id, str) or _USER_ID_RE.fullmatch(user_id) is None:
        shown = repr(user_id) if not isinstance(user_id, str) or len(user_id) <= 80 else "<long>"
        raise InvalidUserIdError(
            f"invalid user id {shown}: use 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return user_id


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
    """Inverse of :func:`encode_arrays`; never unpickles."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (ValueError, OSError) as exc:
        raise StoreError(f"stored classifier is unreadable: {exc}") from exc


def _features_to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=_FLOAT32_LE).tobytes()


def _blob_to_features(blob: bytes, dim: int) -> np.ndarray:
    vector = np.frombuffer(blob, dtype=_FLOAT32_LE)
    if vector.size != dim:
        raise StoreError(f"stored feature vector has {vector.size} values, expected {dim}")
    return vector.astype(np.float32)


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
    """

    user_id: str
    model_id: str
    model_sha256: str
    references: Sequence[ReferenceRecord]
    classifier: Mapping[str, np.ndarray]
    classifier_params: Mapping[str, object]
    n_negatives: int
    threshold: float | None = None


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

    @property
    def cache_key(self) -> tuple[str, str, int]:
        """Key under which a loaded classifier may be cached."""
        return (self.user_id, self.updated_at, self.revision)

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly view."""
        return {
            "user_id": self.user_id,
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
        }


_USER_COLUMNS = (
    "user_id, model_id, model_sha256, feature_dim, n_references, n_negatives, threshold, "
    "classifier_params, created_at, updated_at, revision"
)


def _user_from_row(
    row: Sequence[object], hashes: Sequence[str] = (), stored_images: int = 0
) -> UserRecord:
    try:
        params = json.loads(str(row[7]))
    except json.JSONDecodeError as exc:
        raise StoreError(f"corrupt classifier parameters for user {row[0]!r}") from exc
    return UserRecord(
        user_id=str(row[0]),
        model_id=str(row[1]),
        model_sha256=str(row[2]),
        feature_dim=int(row[3]),  # type: ignore[arg-type]
        n_references=int(row[4]),  # type: ignore[arg-type]
        n_negatives=int(row[5]),  # type: ignore[arg-type]
        threshold=None if row[6] is None else float(row[6]),  # type: ignore[arg-type]
        classifier_params=params,
        created_at=str(row[8]),
        updated_at=str(row[9]),
        revision=int(row[10]),  # type: ignore[arg-type]
        image_sha256=tuple(hashes),
        stored_images=stored_images,
    )


def _add_operating_point_column(conn: sqlite3.Connection) -> None:
    """Upgrade a store created before per-user operating points (nullable column)."""
    columns = {str(r[1]) for r in conn.execute("PRAGMA table_info(users)").fetchall()}
    if "operating_point" not in columns:
        conn.execute("ALTER TABLE users ADD COLUMN operating_point TEXT")


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class UserStore:
    """Enrolled users and API keys in ``<home>/users.sqlite3``.

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

    def __init__(
        self, home: str | os.PathLike[str] | None = None, *, busy_timeout_s: float = 30.0
    ) -> None:
        self.home = resolve_home(home)
        self.path = self.home / DB_FILENAME
        self.busy_timeout_s = float(busy_timeout_s)
        try:
            self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StoreError(f"cannot create store folder {self.home}: {exc}") from exc
        self._initialise()

    def __repr__(self) -> str:
        return f"UserStore({str(self.home)!r})"

    # -- connection handling -------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open user store {self.path}: {exc}") from exc
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        # FULL: an acknowledged enrollment survives power loss, and enrollments
        # are rare enough that the extra fsync does not matter.
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"user store {self.path}: {exc}") from exc
        finally:
            conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error."""
        conn = self._connect()
        try:
            for attempt in range(_BUSY_RETRIES):
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc) or attempt == _BUSY_RETRIES - 1:
                        raise StoreError(f"user store {self.path} is busy: {exc}") from exc
                    time.sleep(0.05 * (attempt + 1))
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"user store {self.path}: {exc}") from exc
        finally:
            conn.close()

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
        with self._write() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            elif int(row[0]) > SCHEMA_VERSION:
                raise StoreError(
                    f"user store {self.path} has schema version {row[0]}, newer than this "
                    f"sigver supports ({SCHEMA_VERSION}); upgrade sigver"
                )
            _add_operating_point_column(conn)

    # -- users ---------------------------------------------------------------

    def find_user(self, user_id: str) -> UserRecord | None:
        """The stored user, or ``None`` if not enrolled."""
        validate_user_id(user_id)
        with self._read() as conn:
            conn.execute("BEGIN")
            row = conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = ?", (user_id,)
            ).fetchone()
            if row is None:
                conn.execute("COMMIT")
                return None
            refs = conn.execute(
                "SELECT image_sha256, image IS NOT NULL FROM user_references "
                "WHERE user_id = ? ORDER BY position",
                (user_id,),
            ).fetchall()
            conn.execute("COMMIT")
        return _user_from_row(row, [r[0] for r in refs], sum(int(r[1]) for r in refs))

    def get_user(self, user_id: str) -> UserRecord:
        """The stored user; raises :class:`UserNotFoundError` if not enrolled."""
        record = self.find_user(user_id)
        if record is None:
            raise UserNotFoundError(user_id)
        return record

    def user_summary(self, user_id: str) -> UserRecord:
        """Like :meth:`get_user` but without the per-image hashes (one cheap query)."""
        validate_user_id(user_id)
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = ?", (user_id,)
            ).fetchone()
        if row is None:
            raise UserNotFoundError(user_id)
        return _user_from_row(row)

    def list_users(self) -> list[UserRecord]:
        """All users, sorted by id (hashes omitted)."""
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY user_id").fetchall()
        return [_user_from_row(row) for row in rows]

    def count_users(self) -> int:
        """Number of enrolled users."""
        with self._read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM users").fetchone()[0])

    def load_classifier(self, user_id: str) -> tuple[UserRecord, dict[str, np.ndarray]]:
        """User record and classifier arrays, read in one snapshot."""
        validate_user_id(user_id)
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_USER_COLUMNS}, classifier FROM users WHERE user_id = ?", (user_id,)
            ).fetchone()
        if row is None:
            raise UserNotFoundError(user_id)
        return _user_from_row(row[:-1]), decode_arrays(row[-1])

    def load_references(self, user_id: str) -> tuple[np.ndarray, list[str]]:
        """Reference features ``(n, d)`` float32 and their image hashes."""
        validate_user_id(user_id)
        with self._read() as conn:
            conn.execute("BEGIN")
            user = conn.execute(
                "SELECT feature_dim FROM users WHERE user_id = ?", (user_id,)
            ).fetchone()
            rows = conn.execute(
                "SELECT image_sha256, features FROM user_references WHERE user_id = ? "
                "ORDER BY position",
                (user_id,),
            ).fetchall()
            conn.execute("COMMIT")
        if user is None:
            raise UserNotFoundError(user_id)
        dim = int(user[0])
        feats = np.stack([_blob_to_features(r[1], dim) for r in rows]) if rows else None
        if feats is None:
            raise StoreError(f"user {user_id!r} has no stored references")
        return feats, [str(r[0]) for r in rows]

    def load_reference_images(self, user_id: str) -> list[tuple[str, bytes]]:
        """Stored images ``(sha256, bytes)`` of a user (only those stored on request)."""
        validate_user_id(user_id)
        with self._read() as conn:
            rows = conn.execute(
                "SELECT image_sha256, image FROM user_references "
                "WHERE user_id = ? AND image IS NOT NULL ORDER BY position",
                (user_id,),
            ).fetchall()
        return [(str(r[0]), bytes(r[1])) for r in rows]

    def other_references(
        self,
        exclude_user: str,
        model_sha256: str,
        *,
        limit: int | None = None,
        seed: int = 0,
    ) -> np.ndarray:
        """Reference features of the other users enrolled with the same extractor.

        Parameters
        ----------
        exclude_user : str
            The user being enrolled.
        model_sha256 : str
            Only users enrolled with this extractor contribute (other extractors'
            features live in a different space).
        limit : int, optional
            Keep at most this many vectors, chosen at random with ``seed``.
        seed : int
            Seed of the subsampling, so that re-enrolling is reproducible.

        Returns
        -------
        numpy.ndarray
            ``(n, d)`` float32, possibly with ``n == 0``.
        """
        with self._read() as conn:
            rows = conn.execute(
                "SELECT r.features, u.feature_dim FROM user_references r "
                "JOIN users u ON u.user_id = r.user_id "
                "WHERE u.user_id != ? AND u.model_sha256 = ? ORDER BY r.user_id, r.position",
                (exclude_user, model_sha256),
            ).fetchall()
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        if limit is not None and len(rows) > limit:
            keep = np.sort(np.random.default_rng(seed).choice(len(rows), limit, replace=False))
            rows = [rows[i] for i in keep]
        return np.stack([_blob_to_features(blob, int(dim)) for blob, dim in rows])

    def _write_user_row(
        self, conn: sqlite3.Connection, rec: EnrollmentRecord, created_at: str, revision: int
    ) -> str:
        now = _now()
        dim = int(np.asarray(rec.references[0].features).size)
        conn.execute(
            "INSERT INTO users (user_id, model_id, model_sha256, feature_dim, n_references, "
            "n_negatives, threshold, classifier, classifier_params, created_at, updated_at, "
            "revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rec.user_id,
                rec.model_id,
                rec.model_sha256,
                dim,
                len(rec.references),
                int(rec.n_negatives),
                None if rec.threshold is None else float(rec.threshold),
                encode_arrays(rec.classifier),
                json.dumps(dict(rec.classifier_params), sort_keys=True),
                created_at,
                now,
                revision,
            ),
        )
        return now

    def _write_reference(
        self, conn: sqlite3.Connection, user_id: str, position: int, ref: ReferenceRecord, now: str
    ) -> None:
        conn.execute(
            "INSERT INTO user_references (user_id, position, image_sha256, features, image, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                user_id,
                position,
                ref.image_sha256,
                _features_to_blob(ref.features),
                ref.image,
                now,
            ),
        )

    def save_enrollment(
        self, record: EnrollmentRecord, *, mode: str = "new", expected_revision: int | None = None
    ) -> UserRecord:
        """Write a complete enrollment atomically.

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

        Returns
        -------
        UserRecord
            The stored user.
        """
        validate_user_id(record.user_id)
        if mode not in ("new", "add", "replace"):
            raise ValueError(f"unknown mode {mode!r}")
        if not record.references:
            raise StoreError("an enrollment needs at least one reference")
        dims = {int(np.asarray(r.features).size) for r in record.references}
        if len(dims) != 1:
            raise StoreError(f"references have different feature sizes {sorted(dims)}")
        with self._write() as conn:
            row = conn.execute(
                "SELECT created_at, revision, operating_point FROM users WHERE user_id = ?",
                (record.user_id,),
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
                conn.execute("DELETE FROM users WHERE user_id = ?", (record.user_id,))
            now = self._write_user_row(conn, record, created_at, revision)
            for position, ref in enumerate(record.references):
                self._write_reference(conn, record.user_id, position, ref, now)
            if mode == "add" and row is not None and row[2] is not None:
                # Adding references keeps the user's operating point, as it keeps the threshold.
                conn.execute(
                    "UPDATE users SET operating_point = ? WHERE user_id = ?",
                    (row[2], record.user_id),
                )
        logger.debug("stored user %s (revision %d)", record.user_id, revision)
        return self.get_user(record.user_id)

    def set_threshold(self, user_id: str, threshold: float | None) -> UserRecord:
        """Set (or clear with ``None``) a user's threshold override."""
        validate_user_id(user_id)
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE users SET threshold = ?, updated_at = ?, revision = revision + 1 "
                "WHERE user_id = ?",
                (None if threshold is None else float(threshold), _now(), user_id),
            )
            if cur.rowcount == 0:
                raise UserNotFoundError(user_id)
        return self.get_user(user_id)

    # -- per-user operating point (issue 10: nullable column, upgraded in place) --

    def set_operating_point(self, user_id: str, name: str | None) -> UserRecord:
        """Set (or clear with ``None``) a user's named operating point.

        The name is stored verbatim; :meth:`enrollment.Verifier.set_operating_point`
        checks it against the model's calibration first.
        """
        validate_user_id(user_id)
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE users SET operating_point = ?, updated_at = ?, revision = revision + 1 "
                "WHERE user_id = ?",
                (name, _now(), user_id),
            )
            if cur.rowcount == 0:
                raise UserNotFoundError(user_id)
        return self.get_user(user_id)

    def operating_point_of(self, user_id: str) -> str | None:
        """A user's named operating point (``None``: the store-wide default)."""
        validate_user_id(user_id)
        with self._read() as conn:
            row = conn.execute(
                "SELECT operating_point FROM users WHERE user_id = ?", (user_id,)
            ).fetchone()
        if row is None:
            raise UserNotFoundError(user_id)
        return None if row[0] is None else str(row[0])

    def remove_user(self, user_id: str) -> None:
        """Delete a user and all their references; :class:`UserNotFoundError` if absent."""
        validate_user_id(user_id)
        with self._write() as conn:
            cur = conn.execute("DELETE FROM users WHERE user_id = ?", (user_id,))
            if cur.rowcount == 0:
                raise UserNotFoundError(user_id)
        logger.info("removed user %s", user_id)

    def integrity_check(self) -> str:
        """Result of ``PRAGMA integrity_check`` plus consistency checks (``"ok"`` when fine)."""
        with self._read() as conn:
            result = str(conn.execute("PRAGMA integrity_check").fetchone()[0])
            if result != "ok":
                return result
            problems = conn.execute(
                "SELECT u.user_id FROM users u LEFT JOIN user_references r "
                "ON r.user_id = u.user_id GROUP BY u.user_id "
                "HAVING COUNT(r.user_id) != MAX(u.n_references)"
            ).fetchall()
            orphans = conn.execute(
                "SELECT COUNT(*) FROM user_references r LEFT JOIN users u "
                "ON u.user_id = r.user_id WHERE u.user_id IS NULL"
            ).fetchone()[0]
        if problems:
            return f"reference count mismatch for users {[p[0] for p in problems]}"
        if orphans:
            return f"{orphans} orphan references"
        return "ok"

    # -- API keys ------------------------------------------------------------

    def create_api_key(self, name: str) -> tuple[auth.ApiKeyInfo, str]:
        """Create a key; returns its description and the plaintext (shown once)."""
        auth.validate_key_name(name)
        key = auth.generate_key()
        now = _now()
        with self._write() as conn:
            exists = conn.execute("SELECT 1 FROM api_keys WHERE name = ?", (name,)).fetchone()
            if exists is not None:
                raise StoreError(f"an API key named {name!r} already exists")
            conn.execute(
                "INSERT INTO api_keys (key_id, name, salt, digest, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (key.key_id, name, key.salt, key.digest, now),
            )
        return auth.ApiKeyInfo(key.key_id, name, now, None), key.plaintext

    def list_api_keys(self) -> list[auth.ApiKeyInfo]:
        """All keys, active and revoked (no secrets)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT key_id, name, created_at, revoked_at FROM api_keys ORDER BY created_at"
            ).fetchall()
        return [auth.ApiKeyInfo(str(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]

    def revoke_api_key(self, name_or_id: str) -> auth.ApiKeyInfo:
        """Revoke a key by name or key id."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT key_id, name, created_at, revoked_at FROM api_keys "
                "WHERE name = ? OR key_id = ?",
                (name_or_id, name_or_id),
            ).fetchone()
            if row is None:
                raise StoreError(f"no API key named {name_or_id!r}")
            revoked = row[3] or _now()
            conn.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ?", (revoked, row[0]))
        return auth.ApiKeyInfo(str(row[0]), str(row[1]), str(row[2]), revoked)

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
                "SELECT key_id, name, created_at, revoked_at, salt, digest FROM api_keys "
                "WHERE key_id = ?",
                (key_id,),
            ).fetchone()
        if row is None:
            auth.secrets_match(secret, None, None)
            return None
        if not auth.secrets_match(secret, bytes(row[4]), bytes(row[5])) or row[3] is not None:
            return None
        return auth.ApiKeyInfo(str(row[0]), str(row[1]), str(row[2]), None)

"""Tests of the SQLite user store (no model needed: features are hand-made arrays)."""

from __future__ import annotations

import io
import sqlite3

import numpy as np
import pytest

from enrollment.auth import parse_key
from enrollment.errors import (
    ConcurrentUpdateError,
    InvalidUserIdError,
    StoreError,
    UserExistsError,
    UserNotFoundError,
)
from enrollment.store import (
    DB_FILENAME,
    EnrollmentRecord,
    ReferenceRecord,
    UserStore,
    decode_arrays,
    encode_arrays,
    validate_user_id,
)


def _record(user: str, n: int = 3, *, sha: str = "m" * 64, dim: int = 4, base: float = 0.0):
    refs = [
        ReferenceRecord(f"{user}-{i}".ljust(64, "0"), np.arange(dim, dtype=np.float32) + base + i)
        for i in range(n)
    ]
    return EnrollmentRecord(
        user_id=user,
        model_id="toy-1",
        model_sha256=sha,
        references=refs,
        classifier={"w": np.array([1.5, -2.0]), "kernel": np.asarray("rbf")},
        classifier_params={"C": 1.0},
        n_negatives=7,
    )


@pytest.fixture
def store(tmp_path):
    return UserStore(tmp_path / "home")


@pytest.mark.parametrize(
    "user_id",
    ["../x", "a/b", "a\\b", "", "x" * 65, "a\x00b", " a", "a b", ".hidden", "-a", "a\n", "é", 5],
)
def test_invalid_user_ids_are_refused(store, user_id):
    with pytest.raises(InvalidUserIdError):
        validate_user_id(user_id)
    with pytest.raises(InvalidUserIdError):
        store.find_user(user_id)


@pytest.mark.parametrize("user_id", ["a", "alice", "A.b_c-d@example.org", "x" * 64, "007"])
def test_valid_user_ids(user_id):
    assert validate_user_id(user_id) == user_id


def test_new_store_is_wal_and_private(tmp_path):
    store = UserStore(tmp_path / "h")
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert (store.path.stat().st_mode & 0o777) == 0o600
    assert store.integrity_check() == "ok"


def test_save_and_read_back_exact(store):
    rec = _record("alice", 3)
    user = store.save_enrollment(rec)
    assert user.user_id == "alice"
    assert user.n_references == 3 and user.feature_dim == 4 and user.n_negatives == 7
    assert user.revision == 1 and user.threshold is None
    assert user.image_sha256 == tuple(r.image_sha256 for r in rec.references)
    feats, hashes = store.load_references("alice")
    assert feats.dtype == np.float32
    np.testing.assert_array_equal(feats, np.stack([r.features for r in rec.references]))
    _, arrays = store.load_classifier("alice")
    np.testing.assert_array_equal(arrays["w"], [1.5, -2.0])
    assert str(arrays["kernel"]) == "rbf"


def test_duplicate_new_enrollment_is_refused_and_add_replace_work(store):
    store.save_enrollment(_record("alice", 3))
    with pytest.raises(UserExistsError):
        store.save_enrollment(_record("alice", 5))
    assert store.get_user("alice").n_references == 3
    added = store.save_enrollment(_record("alice", 4), mode="add", expected_revision=1)
    assert added.revision == 2 and added.n_references == 4
    with pytest.raises(ConcurrentUpdateError):
        store.save_enrollment(_record("alice", 5), mode="add", expected_revision=1)
    replaced = store.save_enrollment(_record("alice", 3), mode="replace")
    assert replaced.revision == 3 and replaced.n_references == 3
    assert replaced.created_at == added.created_at
    with pytest.raises(UserNotFoundError):
        store.save_enrollment(_record("bob"), mode="add")


def test_other_references_filters_user_and_model(store):
    store.save_enrollment(_record("alice", 2, base=0))
    store.save_enrollment(_record("bob", 3, base=10))
    store.save_enrollment(_record("carol", 4, base=20, sha="o" * 64))
    others = store.other_references("alice", "m" * 64)
    np.testing.assert_array_equal(others[:, 0], [10, 11, 12])  # bob's only
    assert store.other_references("bob", "m" * 64).shape == (2, 4)
    assert store.other_references("x", "z" * 64).shape[0] == 0
    limited = store.other_references("nobody", "m" * 64, limit=3, seed=1)
    assert limited.shape == (3, 4)


def test_threshold_remove_and_list(store):
    store.save_enrollment(_record("bob"))
    store.save_enrollment(_record("alice"))
    assert [u.user_id for u in store.list_users()] == ["alice", "bob"]
    user = store.set_threshold("alice", 0.25)
    assert user.threshold == 0.25 and user.revision == 2
    assert store.set_threshold("alice", None).threshold is None
    store.remove_user("alice")
    assert store.find_user("alice") is None
    with pytest.raises(UserNotFoundError):
        store.remove_user("alice")
    with pytest.raises(UserNotFoundError):
        store.set_threshold("alice", 1.0)
    conn = sqlite3.connect(store.path)
    assert conn.execute(
        "SELECT COUNT(*) FROM user_references WHERE user_id='alice'"
    ).fetchone() == (0,)
    conn.close()
    assert store.integrity_check() == "ok"


def test_failure_mid_transaction_leaves_store_untouched(store, monkeypatch):
    store.save_enrollment(_record("alice", 3))
    calls = {"n": 0}
    original = UserStore._write_reference

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk on fire")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(UserStore, "_write_reference", failing)
    with pytest.raises(RuntimeError):
        store.save_enrollment(_record("bob", 3))
    assert store.find_user("bob") is None
    calls["n"] = 0
    with pytest.raises(RuntimeError):
        store.save_enrollment(_record("alice", 5, base=100), mode="replace")
    alice = store.get_user("alice")
    assert alice.n_references == 3 and alice.revision == 1
    assert store.load_references("alice")[0][0, 0] == 0.0
    assert store.integrity_check() == "ok"


def test_arrays_blob_never_unpickles():
    blob = encode_arrays({"a": np.ones(3)})
    np.testing.assert_array_equal(decode_arrays(blob)["a"], np.ones(3))
    with pytest.raises(StoreError):
        encode_arrays({"o": np.array([{"x": 1}], dtype=object)})
    buffer = io.BytesIO()
    np.savez(buffer, o=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(StoreError):
        decode_arrays(buffer.getvalue())


def test_newer_schema_is_refused(tmp_path):
    store = UserStore(tmp_path / "h")
    conn = sqlite3.connect(store.path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        UserStore(tmp_path / "h")


def test_not_a_database_is_a_store_error(tmp_path):
    home = tmp_path / "h"
    home.mkdir()
    (home / DB_FILENAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        UserStore(home)


def test_api_keys_hashed_checked_and_revoked(store):
    info, key = store.create_api_key("ops")
    assert parse_key(key) is not None and parse_key(key)[0] == info.key_id
    assert store.authenticate(key).name == "ops"
    secret = key.rsplit("_", 1)[1]
    assert secret.encode() not in store.path.read_bytes()
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert store.authenticate(wrong) is None
    assert store.authenticate("sv_000000000000_" + secret) is None  # unknown id
    assert store.authenticate("") is None and store.authenticate(None) is None
    assert store.authenticate("garbage") is None
    with pytest.raises(StoreError):
        store.create_api_key("ops")
    with pytest.raises(ValueError):
        store.create_api_key("../bad")
    assert store.has_active_api_keys()
    store.revoke_api_key("ops")
    assert store.authenticate(key) is None
    assert not store.has_active_api_keys()
    assert [k.active for k in store.list_api_keys()] == [False]
    with pytest.raises(StoreError):
        store.revoke_api_key("nope")

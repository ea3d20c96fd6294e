"""Tests of the user store on both backends (no model needed: features are hand-made arrays).

Every test taking the ``store`` fixture runs on SQLite and on a real
PostgreSQL server (skipped, with the reason, where none can be started).
"""

from __future__ import annotations

import hashlib
import hmac
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
    SCHEMA_VERSION,
    AuditEvent,
    EnrollmentRecord,
    ReferenceRecord,
    UserStore,
    decode_arrays,
    encode_arrays,
    open_store,
    validate_user_id,
)


def _record(
    user: str,
    n: int = 3,
    *,
    sha: str = "m" * 64,
    dim: int = 4,
    base: float = 0.0,
    tenant: str = "default",
):
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
        tenant=tenant,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path, monkeypatch):
    monkeypatch.setenv("SIGVER_STORE_SECRET", "test-secret-" + "x" * 32)
    if request.param == "sqlite":
        opened = UserStore(tmp_path / "home")
    else:
        opened = open_store(request.getfixturevalue("postgres_url"))
    yield opened
    opened.close()


def _raw(store, statement, params=()):
    """Run SQL on the store's database behind its back (``?`` placeholders)."""
    if store.backend == "sqlite":
        conn = sqlite3.connect(store.path)
        try:
            conn.execute(statement, params)
            conn.commit()
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(store.url, autocommit=True) as conn:
        conn.execute(statement.replace("?", "%s"), params)


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
    assert store.other_references("nobody", "m" * 64).shape == (3, 4)  # bob's only
    assert store.integrity_check() == "ok"


def test_failure_mid_transaction_leaves_store_untouched(store, monkeypatch):
    store.save_enrollment(_record("alice", 3))
    calls = {"n": 0}
    original = type(store)._write_reference

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk on fire")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(store), "_write_reference", failing)
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
    # parse_key, not rsplit("_"): the URL-safe secret may itself contain "_".
    secret = parse_key(key)[1]
    if store.backend == "sqlite":
        assert secret.encode() not in store.path.read_bytes()
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert store.authenticate(wrong) is None
    assert store.authenticate("sv_000000000000_" + secret) is None  # unknown id
    assert store.authenticate("") is None and store.authenticate(None) is None
    assert store.authenticate("garbage") is None
    with pytest.raises(StoreError):  # active names are unique
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


# -- schema v2: tenants, audit, keys, sampling, integrity, migration -------------------------


def test_users_are_namespaced_by_tenant(store):
    store.create_tenant("bank-b")
    with pytest.raises(StoreError, match="already exists"):
        store.create_tenant("bank-b")
    from enrollment.errors import TenantNotFoundError

    with pytest.raises(TenantNotFoundError):
        store.save_enrollment(_record("alice", tenant="nowhere"))
    store.save_enrollment(_record("alice", 2, base=0))
    store.save_enrollment(_record("alice", 3, base=50, tenant="bank-b"))  # same id, other tenant
    store.save_enrollment(_record("bob", 4, base=10, tenant="bank-b"))
    assert [u.user_id for u in store.list_users()] == ["alice"]
    assert [u.user_id for u in store.list_users(tenant="bank-b")] == ["alice", "bob"]
    assert store.get_user("alice").n_references == 2
    assert store.get_user("alice", tenant="bank-b").n_references == 3
    assert store.find_user("bob") is None
    # negatives never cross tenants
    np.testing.assert_array_equal(
        store.other_references("x", "m" * 64)[:, 0], [0, 1]
    )  # default: alice only
    assert store.other_references("alice", "m" * 64, tenant="bank-b").shape == (4, 4)
    store.remove_user("alice", tenant="bank-b")
    assert store.get_user("alice").n_references == 2
    with pytest.raises(UserNotFoundError):
        store.remove_user("bob")
    counts = {t["tenant"]: t["users"] for t in store.list_tenants()}
    assert counts == {"bank-b": 1, "default": 1}


def test_sampling_is_in_database_deterministic_and_bounded(store):
    for i in range(30):
        store.save_enrollment(_record(f"u{i:02d}", 4, base=10 * i))
    a = store.other_references("new", "m" * 64, limit=25, seed=7)
    b = store.other_references("new", "m" * 64, limit=25, seed=7)
    c = store.other_references("new", "m" * 64, limit=25, seed=8)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (25, 4) and not np.array_equal(a, c)
    assert len({tuple(r) for r in a}) == 25  # no duplicates
    everything = store.other_references("new", "m" * 64, limit=1000, seed=1)
    assert everything.shape == (120, 4)  # wraps around, each row once
    excluded = store.other_references("u00", "m" * 64, limit=1000, seed=1)
    assert excluded.shape == (116, 4) and not np.any(excluded[:, 0] < 10)


def test_corrupt_reference_rows_are_skipped(store):
    store.save_enrollment(_record("alice", 3, base=0))
    store.save_enrollment(_record("bob", 3, base=10))
    _raw(
        store,
        "UPDATE user_references SET features = ? WHERE user_id = 'bob' AND position = 1",
        (b"\x01\x02\x03",),
    )
    others = store.other_references("carol", "m" * 64, limit=100, dim=4)
    assert others.shape == (5, 4)


def test_audit_trail_filters_and_is_append_only(store):
    store.save_enrollment(
        _record("alice"), audit=AuditEvent("enroll", user_id="alice", key_id="k1")
    )
    store.append_audit(
        [
            AuditEvent("verify", user_id="alice", decision="accept", score=0.5, threshold=0.1),
            AuditEvent("verify", user_id="alice", decision="reject", score=-1.0, threshold=0.1),
        ]
    )
    store.create_tenant("other")
    store.append_audit([AuditEvent("verify", tenant="other", user_id="alice", score=2.0)])
    events = store.audit_events()
    assert [e.action for e in events] == ["verify", "verify", "enroll"]
    assert events[0].decision == "reject" and events[1].score == 0.5  # newest first
    assert all(e.tenant == "default" for e in events)
    assert len(store.audit_events(action="verify")) == 2
    assert len(store.audit_events(tenant=None, action="verify")) == 3
    assert store.audit_events(user_id="bob") == []
    assert len(store.audit_events(limit=1)) == 1
    first = store.audit_events(action="enroll")[0]
    assert first.key_id == "k1"
    assert store.audit_events(action="enroll", since=first.time)[0] == first
    assert store.audit_events(action="enroll", until=first.time) == []
    with pytest.raises(StoreError, match="ISO-8601"):
        store.audit_events(since="yesterday")
    # Nothing can rewrite history, even with SQL behind sigver's back.
    for statement in ("UPDATE audit SET decision = 'accept'", "DELETE FROM audit"):
        with pytest.raises(Exception, match="append-only"):
            _raw(store, statement)
    assert len(store.audit_events(tenant=None, limit=100)) >= 4


def test_revoked_key_name_can_be_reused_and_keys_carry_tenant(store):
    info, key = store.create_api_key("ops")
    assert (info.tenant, info.scope) == ("default", "tenant")
    store.revoke_api_key("ops")
    info2, key2 = store.create_api_key("ops")
    assert info2.key_id != info.key_id
    assert store.authenticate(key) is None and store.authenticate(key2).key_id == info2.key_id
    store.revoke_api_key("ops")  # the active one
    assert store.authenticate(key2) is None
    admin, akey = store.create_api_key("root", tenant="bank-b", scope="admin", create_tenant=True)
    assert store.authenticate(akey).is_admin and store.authenticate(akey).tenant == "bank-b"
    assert [k.name for k in store.list_api_keys(tenant="bank-b")] == ["root"]
    with pytest.raises(StoreError):
        store.revoke_api_key(admin.key_id, tenant="default")  # not that tenant's key
    with pytest.raises(StoreError, match="scope"):
        store.create_api_key("x", scope="god")
    actions = [e.action for e in store.audit_events(tenant=None, limit=50)]
    assert actions.count("key_create") == 3 and actions.count("key_revoke") == 2


def test_tampered_classifier_or_threshold_fails_integrity(store):
    store.save_enrollment(_record("alice"))
    store.load_classifier("alice")
    _raw(store, "UPDATE users SET threshold = -1000000000.0 WHERE user_id = 'alice'")
    with pytest.raises(StoreError, match="integrity"):
        store.load_classifier("alice")
    with pytest.raises(StoreError, match="integrity"):
        store.set_threshold("alice", 1.0)  # a tampered row is not re-signed
    store.save_enrollment(_record("bob"))
    blob = encode_arrays({"w": np.array([1e300, -2.0]), "kernel": np.asarray("rbf")})
    _raw(store, "UPDATE users SET classifier = ? WHERE user_id = 'bob'", (blob,))
    with pytest.raises(StoreError, match="integrity"):
        store.load_classifier("bob")


def test_the_tag_covers_normaliser_operating_point_and_references(store):
    """Every column that decides a verification is tagged, not only the classifier blob."""
    import json

    store.save_enrollment(_record("alice"))
    store.load_enrollment("alice")
    edits = [
        # The score normaliser (classifier_params): an offset that accepts anything.
        (
            "UPDATE users SET classifier_params = ? WHERE user_id = 'alice'",
            (json.dumps({"C": 1.0, "normalization": {"method": "none", "loc": -1e6}}),),
        ),
        # The operating point: a laxer named point.
        ("UPDATE users SET operating_point = ? WHERE user_id = 'alice'", ("far-skilled=50%",)),
        # A reference's features (compact classifiers rebuild support vectors from them).
        (
            "UPDATE user_references SET features = ? WHERE user_id = 'alice' AND position = 1",
            (np.full(4, 9.0, np.dtype("<f4")).tobytes(),),
        ),
        # A reference's hash, or the order of the references.
        (
            "UPDATE user_references SET image_sha256 = ? WHERE user_id = 'alice' AND position = 0",
            ("f" * 64,),
        ),
    ]
    for statement, params in edits:
        store.save_enrollment(_record("alice"), mode="replace")
        store.load_enrollment("alice")
        _raw(store, statement, params)
        for load in (store.load_enrollment, store.load_classifier, store.load_references):
            with pytest.raises(StoreError, match="integrity"):
                load("alice")
        with pytest.raises(StoreError, match="integrity"):
            store.set_operating_point("alice", "balanced")  # never re-signed
    # A reference dropped from the end is caught too.
    store.save_enrollment(_record("alice"), mode="replace")
    _raw(store, "DELETE FROM user_references WHERE user_id = 'alice' AND position = 2")
    with pytest.raises(StoreError, match="integrity"):
        store.load_references("alice")


def test_sanctioned_changes_keep_the_tag(store):
    store.save_enrollment(_record("alice"))
    user = store.set_operating_point("alice", "far-skilled=1%")
    assert user.operating_point == "far-skilled=1%" and user.revision == 2
    record, arrays, feats, hashes = store.load_enrollment("alice")
    assert record.operating_point == "far-skilled=1%"
    assert feats.shape == (3, 4) and hashes == [f"alice-{i}".ljust(64, "0") for i in range(3)]
    store.set_threshold("alice", 0.25)
    # Adding references keeps the operating point, and the tag covers it.
    added = store.save_enrollment(_record("alice", 4), mode="add", expected_revision=3)
    assert added.operating_point == "far-skilled=1%" and added.revision == 4
    assert store.load_enrollment("alice")[2].shape == (4, 4)
    assert store.set_operating_point("alice", None).operating_point is None
    store.load_enrollment("alice")


def test_a_ragged_reference_blob_is_a_store_error(store):
    from enrollment.store import _blob_to_features

    with pytest.raises(StoreError, match="3 bytes, expected 4 float32"):
        _blob_to_features(b"\0\1\2", 4)  # not numpy's bare ValueError
    store.save_enrollment(_record("alice"))
    _raw(store, "UPDATE user_references SET features = ? WHERE user_id = 'alice'", (b"\0\1\2",))
    with pytest.raises(StoreError, match="integrity"):
        store.load_references("alice")


def test_writes_return_the_revision_they_wrote(store, monkeypatch):
    """The returned record is read inside the write: a concurrent write cannot swap it."""
    store.save_enrollment(_record("alice"))

    def concurrent(*args, **kwargs):
        raise AssertionError("read back outside the write transaction")

    monkeypatch.setattr(store, "get_user", concurrent)
    monkeypatch.setattr(store, "find_user", concurrent)
    assert store.save_enrollment(_record("alice"), mode="replace").revision == 2
    assert store.set_threshold("alice", 0.5).revision == 3
    assert store.set_operating_point("alice", "balanced").revision == 4


def _downgrade_to_schema_2(store):
    """Rewrite the store as schema 2 left it: tags over blob, threshold and identity only."""
    from enrollment.store import _mac_message_v2

    with store._read() as conn:
        rows = conn.execute(
            "SELECT tenant_id, user_id, model_sha256, feature_dim, threshold, classifier FROM users"
        ).fetchall()
    for tenant, user, sha, dim, threshold, blob in rows:
        msg = _mac_message_v2(tenant, user, sha, dim, threshold, bytes(blob))
        mac = hmac.new(store._secret, msg, hashlib.sha256).hexdigest()
        _raw(
            store,
            "UPDATE users SET mac = ? WHERE tenant_id = ? AND user_id = ?",
            (mac, tenant, user),
        )
    _raw(store, "UPDATE meta SET value = '2' WHERE key = 'schema_version'")


def _reopen(store, secret=None, monkeypatch=None):
    if secret is not None:
        monkeypatch.setenv("SIGVER_STORE_SECRET", secret)
    return UserStore(store.home) if store.backend == "sqlite" else open_store(store.url)


def test_a_schema_2_store_is_retagged_when_opened(store, caplog):
    store.save_enrollment(_record("alice"))
    store.save_enrollment(_record("bob"))
    store.set_operating_point("alice", "balanced")
    _downgrade_to_schema_2(store)
    # Schema-2 tags do not hold under schema 3 ...
    with pytest.raises(StoreError, match="integrity"):
        store.load_enrollment("alice")
    # ... and bob's row was already tampered with before the upgrade.
    _raw(store, "UPDATE users SET threshold = -1e9 WHERE user_id = 'bob'")
    opened = []
    try:
        with caplog.at_level("WARNING"):
            opened.append(_reopen(store))
        upgraded = opened[-1]
        record, *_ = upgraded.load_enrollment("alice")
        assert record.operating_point == "balanced"
        with pytest.raises(StoreError, match="integrity"):
            upgraded.load_enrollment("bob")  # not laundered by the re-tagging
        assert "1 user(s) fail their integrity check" in caplog.text
        # The store stays at schema 2 until bob is dealt with; then the next open finishes.
        assert upgraded.schema_version() == 2
        upgraded.remove_user("bob")
        opened.append(_reopen(store))
        assert opened[-1].schema_version() == SCHEMA_VERSION == 3
        opened[-1].load_enrollment("alice")  # already re-tagged, left alone
    finally:
        for s in opened:
            if s is not store:
                s.close()


def test_opening_a_schema_2_store_with_another_secret_changes_nothing(store, monkeypatch, caplog):
    store.save_enrollment(_record("alice"))
    store.save_enrollment(_record("bob"))
    _downgrade_to_schema_2(store)
    opened = []
    try:
        with caplog.at_level("ERROR"):
            opened.append(_reopen(store, "another-secret-" + "y" * 32, monkeypatch))
        assert opened[-1].schema_version() == 2
        assert "none of its 2 users passes the integrity check" in caplog.text
        # The right secret still finds every user's schema-2 tag, and migrates.
        opened.append(_reopen(store, "test-secret-" + "x" * 32, monkeypatch))
        assert opened[-1].schema_version() == 3
        opened[-1].load_enrollment("alice")
        opened[-1].load_enrollment("bob")
    finally:
        for s in opened:
            s.close()


def test_a_negative_zero_threshold_keeps_the_tag(store):
    store.save_enrollment(_record("alice"))
    assert store.set_threshold("alice", -0.0).threshold == 0.0
    store.load_enrollment("alice")  # SQLite reads -0.0 back as 0


def test_store_url_selection(tmp_path, monkeypatch):
    monkeypatch.delenv("SIGVER_STORE", raising=False)
    assert isinstance(open_store(tmp_path / "a"), UserStore)
    assert open_store(f"sqlite://{tmp_path}/b").home == (tmp_path / "b").resolve()
    monkeypatch.setenv("SIGVER_STORE", str(tmp_path / "c"))
    assert open_store(None).home == (tmp_path / "c").resolve()
    assert open_store(None, home=tmp_path / "d").home == (tmp_path / "d").resolve()  # explicit
    with pytest.raises(StoreError, match="unsupported"):
        open_store("mysql://x")


_V1_SCRIPT = """
import sys, importlib.util
spec = importlib.util.spec_from_file_location("store_v1", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
sys.modules["store_v1"] = mod
spec.loader.exec_module(mod)
import numpy as np
store = mod.UserStore(sys.argv[2])
for user, base in (("alice", 0.0), ("bob", 10.0)):
    refs = [mod.ReferenceRecord(f"{user}{i}".ljust(64, "0"),
                                np.arange(4, dtype=np.float32) + base + i) for i in range(3)]
    store.save_enrollment(mod.EnrollmentRecord(user, "toy-1", "m" * 64, refs,
                          {"w": np.array([1.5, -2.0])}, {"C": 1.0}, 7, threshold=0.25))
info, key = store.create_api_key("ops")
store.create_api_key("old")
store.revoke_api_key("old")
print(key)
"""


def test_first_release_store_is_migrated(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    old = subprocess.run(
        ["git", "show", "43478e2:enrollment/store.py"], cwd=repo, capture_output=True, text=True
    )
    if old.returncode != 0:
        pytest.skip("first-release store.py not reachable in git history")
    v1 = tmp_path / "store_v1.py"
    v1.write_text(old.stdout)
    home = tmp_path / "home"
    made = subprocess.run(
        [sys.executable, "-c", _V1_SCRIPT, str(v1), str(home)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    conn = sqlite3.connect(home / DB_FILENAME)
    assert conn.execute("SELECT value FROM meta").fetchone() == ("1",)
    conn.close()

    store = UserStore(home)
    assert store.schema_version() == SCHEMA_VERSION
    assert [u.user_id for u in store.list_users()] == ["alice", "bob"]
    alice = store.get_user("alice")
    assert alice.tenant == "default" and alice.threshold == 0.25 and alice.n_references == 3
    _, arrays = store.load_classifier("alice")  # signed on migration
    np.testing.assert_array_equal(arrays["w"], [1.5, -2.0])
    assert store.authenticate(key).name == "ops"
    assert store.create_api_key("old")[0].name == "old"  # revoked name reusable
    assert store.other_references("alice", "m" * 64, limit=10).shape == (3, 4)
    assert store.integrity_check() == "ok"
    # Migrated users follow the store-wide operating point until one is set.
    assert alice.operating_point is None
    assert store.set_operating_point("alice", "balanced").operating_point == "balanced"
    assert store.get_user("alice").threshold == 0.25  # the override is kept
    assert UserStore(home).schema_version() == SCHEMA_VERSION  # reopening is a no-op


def test_sqlite_connection_is_reused_per_thread_and_left_clean(tmp_path, monkeypatch):
    import threading

    monkeypatch.setenv("SIGVER_STORE_SECRET", "test-secret-" + "x" * 32)
    store = UserStore(tmp_path / "home")
    store.save_enrollment(_record("alice"))
    with store._read() as first:
        pass
    with store._read() as second:
        pass
    assert first.raw is second.raw  # one connection per thread, not one per call
    # A failure inside a block rolls its transaction back: the next write goes through.
    with pytest.raises(UserNotFoundError):
        store.load_classifier("nobody")
    assert not second.raw.in_transaction
    store.set_threshold("alice", 0.5)
    assert store.get_user("alice").threshold == 0.5
    # Another thread gets its own connection and sees the committed write.
    seen = {}

    def other():
        with store._read() as conn:
            seen["raw"] = conn.raw
        seen["threshold"] = store.get_user("alice").threshold

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen["raw"] is not first.raw and seen["threshold"] == 0.5
    # close() drops the connection; the store reopens one when used again.
    store.close()
    with store._read() as third:
        pass
    assert third.raw is not first.raw
    assert store.get_user("alice").threshold == 0.5


def test_the_scale_benchmark_fills_users_that_pass_the_integrity_check(tmp_path, monkeypatch):
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    monkeypatch.setenv("SIGVER_STORE_SECRET", "test-secret-" + "x" * 32)
    import bench_store_scale

    store = UserStore(tmp_path / "home")
    background = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    bench_store_scale._fill(store, 3, 2, "toy-1", "m" * 64, background)
    record, _, feats, hashes = store.load_enrollment("filler000002")
    assert feats.shape == (2, 4) and len(hashes) == 2 and record.n_references == 2
    sys.modules.pop("bench_store_scale", None)

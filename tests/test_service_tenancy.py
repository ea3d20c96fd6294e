"""HTTP service: tenant isolation on every endpoint, admin scope, audit, health, metrics, docs."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from enrollment import Verifier
from enrollment.config import Settings
from enrollment.service import create_app
from enrollment.testing import draw_signature, encode_png


@pytest.fixture(scope="module")
def pngs():
    return {(w, s): encode_png(draw_signature(w, s)) for w in (1, 2) for s in range(7)}


@pytest.fixture
def env(model_path, tmp_path):
    settings = Settings(max_file_bytes=200_000, max_request_bytes=1_000_000, max_files=8)
    verifier = Verifier(home=tmp_path / "home", model=model_path, settings=settings)
    store = verifier.store
    _, key_a = store.create_api_key("a", tenant="bank-a", create_tenant=True)
    _, key_b = store.create_api_key("b", tenant="bank-b", create_tenant=True)
    admin_info, key_admin = store.create_api_key("root", scope="admin")
    app = create_app(verifier)

    def client(key):
        c = TestClient(app)
        c.headers["X-API-Key"] = key
        return c

    return {
        "a": client(key_a),
        "b": client(key_b),
        "admin": client(key_admin),
        "anon": TestClient(app),
        "verifier": verifier,
        "admin_id": admin_info.key_id,
    }


def _files(blobs, field="images"):
    return [(field, (f"img{i}.png", blob, "image/png")) for i, blob in enumerate(blobs)]


def test_tenant_b_cannot_touch_tenant_a_users_on_any_endpoint(env, pngs):
    a, b = env["a"], env["b"]
    r = a.post("/v1/users/alice/enroll", files=_files([pngs[1, s] for s in range(4)]))
    assert r.status_code == 201, r.text
    assert a.get("/v1/users").json()["count"] == 1
    # list
    listed = b.get("/v1/users").json()
    assert listed["count"] == 0 and listed["tenant"] == "bank-b"
    # read
    assert b.get("/v1/users/alice").status_code == 404
    # verify
    assert b.post("/v1/users/alice/verify", files=_files([pngs[1, 5]])).status_code == 404
    # re-enroll with add / force: add finds nothing, force creates B's own alice
    r = b.post("/v1/users/alice/enroll", files=_files([pngs[2, 0]]), data={"add": "true"})
    assert r.status_code == 404
    # threshold
    assert b.put("/v1/users/alice/threshold", json={"threshold": -99.0}).status_code == 404
    # delete
    assert b.delete("/v1/users/alice").status_code == 404
    # audit: B sees none of A's events, and may not ask for A's
    assert all(e["tenant"] == "bank-b" for e in b.get("/v1/audit").json()["events"])
    assert b.get("/v1/audit", params={"tenant": "bank-a"}).status_code == 403
    # admin endpoints
    for method, path in (
        ("get", "/v1/admin/tenants"),
        ("post", "/v1/admin/tenants"),
        ("get", "/v1/admin/keys"),
        ("post", "/v1/admin/keys"),
        ("delete", "/v1/admin/keys/a"),
    ):
        assert getattr(b, method)(path).status_code == 403, path
    # A's user is intact after all that
    one = a.get("/v1/users/alice").json()
    assert one["n_references"] == 4 and one["threshold"] is None and one["revision"] == 1
    assert a.post("/v1/users/alice/verify", files=_files([pngs[1, 5]])).status_code == 200
    # same id in B is an independent user
    r = b.post("/v1/users/alice/enroll", files=_files([pngs[2, s] for s in range(4)]))
    assert r.status_code == 201
    assert (
        a.get("/v1/users/alice").json()["image_sha256"]
        != (b.get("/v1/users/alice").json()["image_sha256"])
    )
    assert b.delete("/v1/users/alice").status_code == 200
    assert a.get("/v1/users/alice").status_code == 200


def test_admin_manages_tenants_and_keys(env, pngs):
    admin, anon = env["admin"], env["anon"]
    r = admin.post("/v1/admin/tenants", json={"tenant": "bank-c"})
    assert r.status_code == 201
    assert admin.post("/v1/admin/tenants", json={"tenant": "bank-c"}).status_code == 409
    assert admin.post("/v1/admin/tenants", json={"tenant": "../x"}).status_code == 422
    names = [t["tenant"] for t in admin.get("/v1/admin/tenants").json()["tenants"]]
    assert names == ["bank-a", "bank-b", "bank-c", "default"]
    r = admin.post("/v1/admin/keys", json={"name": "c1", "tenant": "bank-c"})
    assert r.status_code == 201
    key_c = r.json()["key"]
    assert r.json()["tenant"] == "bank-c" and r.json()["scope"] == "tenant"
    assert admin.post("/v1/admin/keys", json={"name": "c1", "tenant": "bank-c"}).status_code == 409
    assert admin.post("/v1/admin/keys", json={"name": "z", "tenant": "nope"}).status_code == 404
    c = TestClient(anon.app, headers={"X-API-Key": key_c})
    assert c.get("/v1/users").json()["tenant"] == "bank-c"
    keys = admin.get("/v1/admin/keys", params={"tenant": "bank-c"}).json()["keys"]
    assert [k["name"] for k in keys] == ["c1"] and "digest" not in keys[0]
    assert admin.delete("/v1/admin/keys/c1").status_code == 200
    assert c.get("/v1/users").status_code == 403  # revoked at once
    assert admin.delete("/v1/admin/keys/c1").status_code == 404
    again = admin.post("/v1/admin/keys", json={"name": "c1", "tenant": "bank-c"})
    assert again.status_code == 201  # a revoked name is reusable
    events = admin.get("/v1/audit", params={"tenant": "bank-c"}).json()["events"]
    actions = [e["action"] for e in events]  # newest first
    assert actions == ["key_create", "key_revoke", "key_create", "tenant_create"]
    assert all(e["key_id"] == env["admin_id"] for e in events)
    everything = admin.get("/v1/audit", params={"tenant": "*", "limit": 1000}).json()["events"]
    assert {e["tenant"] for e in everything} >= {"bank-a", "bank-b", "bank-c", "default"}


def test_audit_records_every_change_and_is_read_only(env, pngs):
    a = env["a"]
    a.post("/v1/users/alice/enroll", files=_files([pngs[1, s] for s in range(4)]))
    v = a.post("/v1/users/alice/verify", files=_files([pngs[1, 5], pngs[2, 5]])).json()
    a.put("/v1/users/alice/threshold", json={"threshold": 0.5})
    a.put("/v1/users/alice/threshold", json={"threshold": None})
    a.delete("/v1/users/alice")
    events = a.get("/v1/audit").json()["events"]
    actions = [e["action"] for e in events]
    assert actions[:6] == ["remove", "set_threshold", "set_threshold", "verify", "verify", "enroll"]
    verifies = [e for e in events if e["action"] == "verify"][::-1]
    for event, result in zip(verifies, v["results"], strict=True):
        assert event["score"] == pytest.approx(result["score"])
        assert event["decision"] == result["decision"]
        assert event["image_sha256"] == result["image_sha256"]
        assert event["threshold"] == result["threshold"] and event["model_id"]
        assert event["user_id"] == "alice" and event["tenant"] == "bank-a"
        assert set(event) >= {"time", "key_id", "operating_point"}
    enroll = events[5]
    assert len(enroll["image_sha256"].split(",")) == 4
    assert [e["threshold"] for e in events[1:3]] == [None, 0.5]
    filtered = a.get("/v1/audit", params={"action": "verify", "limit": 1}).json()["events"]
    assert len(filtered) == 1 and filtered[0]["decision"] == v["results"][1]["decision"]
    assert a.get("/v1/audit", params={"user_id": "bob"}).json()["events"] == []
    assert a.get("/v1/audit", params={"since": "2999-01-01T00:00:00Z"}).json()["events"] == []
    assert a.get("/v1/audit", params={"since": "yesterday"}).status_code == 422
    assert a.get("/v1/audit", params={"action": "hack"}).status_code == 422
    for method in ("post", "put", "delete", "patch"):
        assert getattr(a, method)("/v1/audit").status_code == 405
    assert env["anon"].get("/v1/audit").status_code == 401


def test_health_ready_metrics_and_offline_docs(env, pngs):
    anon, a = env["anon"], env["a"]
    assert anon.get("/health").json()["status"] == "ok"
    ready = anon.get("/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"model": True, "store": True}
    a.post("/v1/users/alice/enroll", files=_files([pngs[1, s] for s in range(4)]))
    a.post("/v1/users/alice/verify", files=_files([pngs[1, 5], pngs[2, 5]]))
    a.get("/v1/users/nobody")
    text = anon.get("/metrics").text
    assert 'sigver_decisions_total{decision="reject"}' in text
    assert "sigver_http_request_seconds_bucket" in text
    assert 'route="/v1/users/{user_id}/verify"' in text and "nobody" not in text
    assert 'sigver_errors_total{kind="404"} 1.0' in text
    assert "sigver_enrollments_total 1.0" in text
    docs = anon.get("/docs").text
    assert "/static/swagger-ui/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    js = anon.get("/static/swagger-ui/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    assert anon.get("/static/swagger-ui/swagger-ui.css").status_code == 200


def test_ready_is_503_when_the_store_does_not_answer(env, monkeypatch):
    from enrollment.errors import StoreError

    def down():
        raise StoreError("connection refused")

    monkeypatch.setattr(env["verifier"].store, "ping", down)
    r = env["anon"].get("/ready")
    assert r.status_code == 503
    assert r.json()["checks"]["store"] is False and "refused" in r.json()["checks"]["store_error"]
    assert env["anon"].get("/health").status_code == 200  # liveness is not readiness


# -- review of 2026-12-07 ---------------------------------------------------------------


def test_behind_a_path_prefix_keys_are_still_checked(env):
    from fastapi.testclient import TestClient

    app = env["a"].app
    key = env["a"].headers["X-API-Key"]
    prefixed = TestClient(app, root_path="/sigver")
    assert prefixed.get("/sigver/v1/users", headers={"X-API-Key": key}).status_code == 200
    assert prefixed.get("/sigver/v1/users").status_code == 401  # still gated
    assert prefixed.get("/sigver/v1/users", headers={"X-API-Key": "sv_x_y"}).status_code == 403


def test_store_outage_during_authentication_is_503_without_server_details(env, monkeypatch):
    from enrollment.errors import StoreError

    store = env["verifier"].store

    def busy(_key):
        raise StoreError(f"user store {store.location}: database is locked")

    monkeypatch.setattr(store, "authenticate", busy)
    app = create_app(env["verifier"])  # the gate binds authenticate when the app is built
    c = TestClient(app)
    r = c.get("/v1/users", headers={"X-API-Key": env["a"].headers["X-API-Key"]})
    assert r.status_code == 503 and r.json()["error"] == "store_error"
    assert store.location not in r.text and str(store.home) not in r.text


def test_ready_does_not_tell_where_the_store_lives(env, monkeypatch):
    from enrollment.errors import StoreError

    store = env["verifier"].store

    def gone():
        raise StoreError(f"user store {store.location}: no such table: meta")

    monkeypatch.setattr(store, "ping", gone)
    r = env["anon"].get("/ready")
    assert r.status_code == 503 and r.json()["checks"]["store"] is False
    assert str(store.home) not in r.text and "server log" in r.json()["checks"]["store_error"]


def test_every_error_body_has_detail_and_error(env, pngs):
    a, admin = env["a"], env["admin"]
    r = a.post("/v1/users/alice/verify", files=_files([pngs[1, 0]] * 9))  # max_files 8
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
    r = a.put("/v1/users/alice/threshold", json={"threshold": "abc"})
    body = r.json()
    assert r.status_code == 422 and body["error"] == "validation_error"
    assert "threshold" in body["detail"] and isinstance(body["errors"], list)
    r = a.put("/v1/users/alice/operating-point", json={"operating_point": 5})
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    r = admin.post("/v1/admin/keys", json={"name": "k2", "tenant": "bank-a", "scope": "superuser"})
    assert r.status_code == 422 and "scope" in r.json()["detail"]
    assert r.json()["error"] == "validation_error"


def test_reading_reference_images_is_audited_and_bad_keys_are_logged(env, pngs, caplog):
    a = env["a"]
    files = _files([pngs[1, s] for s in range(4)])
    assert a.post("/v1/users/alice/enroll", files=files, data={"store_images": "true"}).is_success
    assert a.get("/v1/users/alice/references").json()["stored"] == 4
    events = a.get("/v1/audit", params={"action": "references_read"}).json()["events"]
    assert [(e["user_id"], e["detail"]) for e in events] == [("alice", {"images": 4})]
    with caplog.at_level("WARNING", logger="enrollment.service"):
        r = env["anon"].get("/v1/users", headers={"X-API-Key": "sv_deadbeef_notasecret"})
    assert r.status_code == 403
    assert "refused API key" in caplog.text and "notasecret" not in caplog.text


def test_image_work_is_bounded_and_does_not_hold_the_readiness_probe(model_path, tmp_path, pngs):
    import asyncio
    import threading
    import time

    import httpx

    settings = Settings(max_image_requests=1)
    verifier = Verifier(home=tmp_path / "home", model=model_path, settings=settings)
    _, key = verifier.store.create_api_key("k")
    verifier.enroll("alice", [pngs[1, s] for s in range(4)])
    state = {"now": 0, "most": 0}
    lock = threading.Lock()
    real = verifier.verify_batch

    def slow(*args, **kwargs):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.4)
        with lock:
            state["now"] -= 1
        return real(*args, **kwargs)

    verifier.verify_batch = slow
    app = create_app(verifier)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            h = {"X-API-Key": key}

            async def verify():
                r = await c.post("/v1/users/alice/verify", files=_files([pngs[1, 5]]), headers=h)
                return r.status_code, time.perf_counter()

            jobs = [asyncio.create_task(verify()) for _ in range(3)]
            await asyncio.sleep(0.1)
            ready = await c.get("/ready")
            ready_at = time.perf_counter()
            done = await asyncio.gather(*jobs)
            return ready.status_code, ready_at, done

    status, ready_at, done = asyncio.run(scenario())
    assert [code for code, _ in done] == [200, 200, 200]
    assert state["most"] == 1  # one image request at a time (max_image_requests=1)
    assert status == 200 and ready_at < min(t for _, t in done)  # answered while they queue

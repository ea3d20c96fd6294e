"""HTTP service tests: FastAPI TestClient, plus one real uvicorn server over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from enrollment import Verifier
from enrollment.config import Settings
from enrollment.service import create_app
from enrollment.testing import draw_signature, encode_png, free_port

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pngs():
    return {(w, s): encode_png(draw_signature(w, s)) for w in (1, 2) for s in range(7)}


@pytest.fixture
def env(model_path, tmp_path):
    settings = Settings(max_file_bytes=200_000, max_request_bytes=1_000_000, max_files=8)
    verifier = Verifier(home=tmp_path / "home", model=model_path, settings=settings)
    _, key = verifier.store.create_api_key("tests")
    client = TestClient(create_app(verifier))
    client.headers["X-API-Key"] = key
    return client, verifier, key


def _files(blobs, field="images"):
    return [(field, (f"img{i}.png", blob, "image/png")) for i, blob in enumerate(blobs)]


def test_health_needs_no_key_and_docs_exist(env):
    client, verifier, _ = env
    anon = TestClient(client.app)
    r = anon.get("/health")
    assert r.status_code == 200 and r.json()["model_id"] == verifier.model_id
    assert anon.get("/docs").status_code == 200
    paths = anon.get("/openapi.json").json()["paths"]
    assert "/v1/users/{user_id}/verify" in paths and "/v1/users/{user_id}/enroll" in paths


def test_missing_wrong_and_revoked_keys_are_refused(env, pngs):
    client, verifier, key = env
    anon = TestClient(client.app)
    assert anon.get("/v1/users").status_code == 401
    r = anon.post("/v1/users/alice/verify", files=_files([pngs[1, 0]]))
    assert r.status_code == 401
    assert anon.get("/v1/users", headers={"X-API-Key": key[:-2] + "zz"}).status_code == 403
    assert anon.get("/v1/users", headers={"X-API-Key": "letmein"}).status_code == 403
    assert anon.delete("/v1/users/alice", headers={"X-API-Key": "x"}).status_code == 403
    verifier.store.revoke_api_key("tests")
    assert client.get("/v1/users").status_code == 403


def test_enroll_verify_list_delete(env, pngs):
    client, verifier, _ = env
    r = client.post("/v1/users/alice/enroll", files=_files([pngs[1, s] for s in range(4)]))
    assert r.status_code == 201, r.text
    assert r.json()["n_references"] == 4
    r = client.post("/v1/users/alice/enroll", files=_files([pngs[1, s] for s in range(4)]))
    assert r.status_code == 409 and "already enrolled" in r.json()["detail"]
    assert (
        "--add" not in r.json()["detail"] and "--force" not in r.json()["detail"]
    )  # no CLI advice
    r = client.post("/v1/users/alice/enroll", files=_files([pngs[1, 4]]), data={"add": "true"})
    assert r.status_code == 200 and r.json()["n_references"] == 5

    questioned = [pngs[1, 6], pngs[2, 6]]
    r = client.post("/v1/users/alice/verify", files=_files(questioned))
    assert r.status_code == 200, r.text
    body = r.json()
    expected = verifier.verify_batch("alice", questioned)
    assert [x["score"] for x in body["results"]] == pytest.approx([e.score for e in expected])
    assert [x["filename"] for x in body["results"]] == ["img0.png", "img1.png"]
    assert body["accepted"] == all(e.accepted for e in expected)
    single = client.post("/v1/users/alice/verify", files=_files([pngs[1, 6]], field="image"))
    assert single.json()["results"][0]["score"] == pytest.approx(expected[0].score)

    users = client.get("/v1/users").json()
    assert users["count"] == 1 and users["users"][0]["user_id"] == "alice"
    one = client.get("/v1/users/alice").json()
    assert one["n_references"] == 5 and one["effective_threshold"] == 0.0
    assert client.delete("/v1/users/alice").json() == {"deleted": "alice"}
    assert client.get("/v1/users/alice").status_code == 404
    assert client.delete("/v1/users/alice").status_code == 404


def test_client_errors_are_clear(env, pngs):
    client, _, _ = env
    r = client.post("/v1/users/nobody/verify", files=_files([pngs[1, 0]]))
    assert r.status_code == 404 and "not enrolled" in r.json()["detail"]
    good = [pngs[1, s] for s in range(4)]
    client.post("/v1/users/alice/enroll", files=_files(good))
    blank = encode_png(np.full((80, 120), 255, np.uint8))
    for bad in (b"GIF89a not really", pngs[1, 0][:150], blank, b""):
        r = client.post("/v1/users/alice/verify", files=_files([pngs[1, 5], bad]))
        assert r.status_code == 400, (bad[:10], r.text)
        assert r.json()["source"] == "img1.png" and r.json()["reason"]
    r = client.post("/v1/users/bob/enroll", files=_files([*good[:3], b"junk"]))
    assert r.status_code == 400
    assert client.get("/v1/users/bob").status_code == 404  # nothing half-stored
    r = client.post("/v1/users/bob/enroll", files=_files(good[:2]))
    assert r.status_code == 422 and "at least" in r.json()["detail"]
    for bad_id in ("..x", "a@@@@" + "b" * 70, "-x", "%00x"):
        r = client.post(f"/v1/users/{bad_id}/verify", files=_files([pngs[1, 0]]))
        assert r.status_code == 422, bad_id
    assert client.get("/v1/users/a%2Fb").status_code in (404, 422)
    r = client.post("/v1/users/alice/verify")
    assert r.status_code == 422


def test_upload_limits_return_413(env, pngs):
    client, _, _ = env
    noise = np.random.default_rng(0).integers(0, 255, (400, 400), dtype=np.uint8)
    big = encode_png(noise)  # ~160 kB of incompressible noise...
    big = big + b"\0" * (200_001 - len(big))  # ...padded just over the per-file limit
    r = client.post("/v1/users/alice/verify", files=_files([big]))
    assert r.status_code == 413 and "per file" in r.json()["detail"]
    r = client.post("/v1/users/alice/verify", files=_files([big[:190_000]] * 6))
    assert r.status_code == 413  # > 1 MB request
    r = client.post("/v1/users/alice/verify", files=_files([pngs[1, 0]] * 9))
    assert r.status_code == 413 and "too many" in r.json()["detail"]

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(30):
            yield b"x" * 50_000

    r = client.post(
        "/v1/users/alice/verify",
        content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert r.status_code == 413


def test_real_server_over_http(model_path, tmp_path, pngs):
    home = tmp_path / "srv"
    port = free_port()
    env = {**os.environ, "SIGVER_HOME": str(home)}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "sigver", "serve", "--port", str(port),
            "--model", str(model_path), "--create-key", "itest", "--log-level", "warning",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        key = proc.stdout.readline().strip()
        assert key.startswith("sv_"), proc.stderr.read() if proc.poll() is not None else key
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as http:
            r = http.post("/v1/users/alice/enroll", files=_files([pngs[1, s] for s in range(4)]))
            assert r.status_code == 201, r.text
            r = http.post("/v1/users/alice/verify", files=_files([pngs[1, 6]]))
            assert r.status_code == 200
            served = r.json()["results"][0]
        assert httpx.get(f"{base}/v1/users", timeout=5).status_code == 401
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    local = Verifier(home=home, model=model_path).verify("alice", pngs[1, 6])
    assert served["score"] == pytest.approx(local.score, abs=1e-9)
    assert served["image_sha256"] == local.image_sha256

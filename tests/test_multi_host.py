"""Two ``sigver serve`` processes on one PostgreSQL database see each other's changes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from enrollment.store import open_store
from enrollment.testing import build_tiny_model, draw_signature, encode_png, free_port

REPO = Path(__file__).resolve().parents[1]


def _start(url: str, model: Path, tmp: Path, name: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "SIGVER_STORE": url,
        "SIGVER_STORE_SECRET": "shared-secret-" + "s" * 32,
        "SIGVER_HOME": str(tmp / name),  # must not be used for the store
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "sigver", "serve", "--port", str(port), "--model", str(model),
         "--threads", "1", "--log-level", "warning"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return proc, f"http://127.0.0.1:{port}"


def _wait_ready(proc: subprocess.Popen, base: str) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.3)


def test_two_servers_share_enrollments_removals_and_revocations(postgres_url, tmp_path):
    model = build_tiny_model(tmp_path / "models")
    store = open_store(postgres_url)
    _, admin_key = store.create_api_key("root", scope="admin")
    _, user_key = store.create_api_key("teller", tenant="bank-a", create_tenant=True)
    store.close()
    procs = [_start(postgres_url, model, tmp_path, n) for n in ("one", "two")]
    try:
        for proc, base in procs:
            _wait_ready(proc, base)
        (_, one), (_, two) = procs
        h = {"X-API-Key": user_key}
        refs = [("images", (f"r{i}.png", encode_png(draw_signature(1, i)), "image/png"))
                for i in range(4)]  # fmt: skip
        probe = [("images", ("q.png", encode_png(draw_signature(1, 5)), "image/png"))]
        r = httpx.post(f"{one}/v1/users/alice/enroll", files=refs, headers=h, timeout=60)
        assert r.status_code == 201, r.text
        # enrolled through one, verified through two (same score: same classifier)
        v1 = httpx.post(f"{one}/v1/users/alice/verify", files=probe, headers=h, timeout=60)
        v2 = httpx.post(f"{two}/v1/users/alice/verify", files=probe, headers=h, timeout=60)
        assert v2.status_code == 200, v2.text
        assert v2.json()["results"][0]["score"] == pytest.approx(v1.json()["results"][0]["score"])
        assert [u["user_id"] for u in httpx.get(f"{two}/v1/users", headers=h).json()["users"]] == [
            "alice"
        ]
        # a threshold change through two is seen by one
        r = httpx.put(f"{two}/v1/users/alice/threshold", json={"threshold": 7.5}, headers=h)
        assert r.status_code == 200
        assert httpx.get(f"{one}/v1/users/alice", headers=h).json()["threshold"] == 7.5
        v = httpx.post(f"{one}/v1/users/alice/verify", files=probe, headers=h, timeout=60)
        assert v.json()["results"][0]["threshold"] == 7.5
        # removed through two, gone in one
        assert httpx.delete(f"{two}/v1/users/alice", headers=h).status_code == 200
        r = httpx.post(f"{one}/v1/users/alice/verify", files=probe, headers=h, timeout=60)
        assert r.status_code == 404
        # the audit trail is one, whichever server wrote it
        events = httpx.get(f"{one}/v1/audit", headers=h).json()["events"]
        assert [e["action"] for e in events][:3] == ["remove", "verify", "set_threshold"]
        # a key revoked through one is refused by two at once
        r = httpx.delete(f"{one}/v1/admin/keys/teller", headers={"X-API-Key": admin_key})
        assert r.status_code == 200
        assert httpx.get(f"{two}/v1/users", headers=h).status_code == 403
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert not (tmp_path / "one").exists() and not (tmp_path / "two").exists()

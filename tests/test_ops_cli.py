"""CLI of the production features: keys and tenants, audit, users per tenant, thread defaults."""

from __future__ import annotations

import json

from enrollment import Verifier
from enrollment.config import Settings, default_threads
from enrollment.testing import draw_signature, encode_png
from sigver.cli import main


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_keys_tenants_audit_and_users_cli(model_path, tmp_path, capsys):
    home = str(tmp_path / "home")
    assert main(["keys", "create", "teller", "--tenant", "bank-a", "--home", home, "--json"]) == 0
    first = _json(capsys)
    assert first["tenant"] == "bank-a" and first["scope"] == "tenant" and first["key"]
    assert main(["keys", "create", "root", "--admin", "--home", home, "--json"]) == 0
    assert _json(capsys)["scope"] == "admin"
    assert main(["keys", "create", "teller", "--home", home]) == 2  # active name taken
    capsys.readouterr()
    assert main(["keys", "revoke", "teller", "--home", home]) == 0
    capsys.readouterr()
    assert main(["keys", "create", "teller", "--tenant", "bank-a", "--home", home, "--json"]) == 0
    assert _json(capsys)["key_id"] != first["key_id"]  # revoked name reused
    assert main(["keys", "tenants", "--home", home, "--json"]) == 0
    assert [t["tenant"] for t in _json(capsys)] == ["bank-a", "default"]

    v = Verifier(home=home, model=model_path)
    refs = [encode_png(draw_signature(1, s)) for s in range(4)]
    v.enroll("alice", refs, tenant="bank-a", key_id=first["key_id"])
    v.verify("alice", encode_png(draw_signature(1, 5)), tenant="bank-a")
    assert main(["users", "list", "--home", home, "--json"]) == 0
    assert _json(capsys) == []  # default tenant is empty
    assert main(["users", "list", "--home", home, "--tenant", "bank-a", "--json"]) == 0
    assert [u["user_id"] for u in _json(capsys)] == ["alice"]
    assert (
        main(["users", "set-threshold", "alice", "0.3", "--home", home, "--tenant", "bank-a"]) == 0
    )
    assert main(["users", "remove", "alice", "--home", home, "--tenant", "bank-a"]) == 0
    capsys.readouterr()
    assert main(["audit", "--home", home, "--tenant", "bank-a", "--json"]) == 0
    events = _json(capsys)["events"]
    assert [e["action"] for e in events][:4] == ["remove", "set_threshold", "verify", "enroll"]
    assert events[3]["key_id"] == first["key_id"]
    assert main(["audit", "--home", home, "--tenant", "bank-a", "--action", "verify"]) == 0
    table = capsys.readouterr().out
    assert "verify" in table and "enroll" not in table
    assert main(["audit", "--home", home, "--tenant", "*", "--action", "key_revoke", "--json"]) == 0
    assert len(_json(capsys)["events"]) == 1
    assert main(["audit", "--home", home, "--since", "not-a-time"]) == 2


def test_thread_defaults_never_oversubscribe(monkeypatch):
    import os

    cores = len(os.sched_getaffinity(0))
    for workers in (1, 2, 3, 64):
        threads = default_threads(workers)
        assert threads >= 1
        assert workers * threads <= max(cores, workers)
    monkeypatch.setenv("SIGVER_THREADS", "3")
    assert Settings.from_env().threads == 3
    monkeypatch.delenv("SIGVER_THREADS")
    assert Settings.from_env().threads is None and Settings().blas_threads == 1


def test_configure_threads_caps_torch_and_blas():
    import torch
    from threadpoolctl import threadpool_info

    from enrollment import service

    before = torch.get_num_threads()
    try:
        service.configure_threads(1)
        assert torch.get_num_threads() == 1
        blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
        assert all(p["num_threads"] == 1 for p in blas)
    finally:
        torch.set_num_threads(before)
        while service._THREAD_LIMITS:
            service._THREAD_LIMITS.pop().restore_original_limits()

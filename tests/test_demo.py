"""``sigver demo`` end to end on a tiny random-init model (fast; numbers meaningless)."""

from __future__ import annotations

import json

import pytest

from enrollment import UserStore
from enrollment.demo import DemoConfig, run_demo
from enrollment.errors import EnrollmentError
from sigver.cli import main


def test_demo_cli_runs_end_to_end(model_path, tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--writers", "3", "--references", "4", "--tests", "2"]
    assert main([*argv, "--model", str(model_path)]) == 0
    text = capsys.readouterr().out
    for needle in ("per user", "writer-002", "EER global thr.", "FAR random", str(out)):
        assert needle in text
    results = json.loads((out / "results.json").read_text())
    assert [u["user_id"] for u in results["users"]] == ["writer-000", "writer-001", "writer-002"]
    m = results["metrics"]
    assert m["n_genuine"] == 6 and m["n_skilled"] == 6 and m["n_random"] == 6
    for key in ("EER_global", "EER_user", "FRR", "FAR_skilled", "FAR_random"):
        assert 0.0 <= m[key] <= 1.0
    # per-user counts agree with the pooled rates at the deployed threshold
    users = results["users"]
    frr = 1 - sum(u["genuine_accepted"] for u in users) / sum(u["genuine_total"] for u in users)
    assert m["FRR"] == pytest.approx(frr)
    far_s = 1 - sum(u["skilled_rejected"] for u in users) / 6
    assert m["FAR_skilled"] == pytest.approx(far_s)
    assert len(list((out / "images" / "writer-000").glob("*.png"))) == 4 + 2 + 2
    assert UserStore(out / "home").count_users() == 3


def test_demo_refuses_non_empty_folder_and_bad_config(model_path, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "old.txt").write_text("keep me")
    with pytest.raises(EnrollmentError, match="not empty"):
        run_demo(tmp_path / "x", DemoConfig(n_writers=2), model=model_path)
    with pytest.raises(EnrollmentError):
        DemoConfig(n_writers=1)


def test_demo_without_shipped_model_fails_clearly(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SIGVER_DEFAULT_MODEL", str(tmp_path / "missing.pt"))
    monkeypatch.delenv("SIGVER_MODEL", raising=False)
    assert main(["demo", "--out", str(tmp_path / "d"), "--writers", "2"]) == 2
    assert "default model is missing" in caplog.text


def _refuse_constant(name: str) -> None:
    raise AssertionError(f"results.json contains the non-JSON constant {name}")


def test_demo_results_json_is_strict_without_random_forgeries(model_path, tmp_path):
    # No random forgeries: FAR_random is undefined (NaN) and must be written as null.
    config = DemoConfig(n_writers=2, n_references=4, n_genuine_tests=1, n_forgeries=1, n_random=0)
    report = run_demo(tmp_path / "demo", config, model=model_path)
    text = (tmp_path / "demo" / "results.json").read_text()
    results = json.loads(text, parse_constant=_refuse_constant)
    assert results["metrics"]["FAR_random"] is None
    assert results["metrics"]["n_random"] == 0
    assert json.loads(report.to_json(), parse_constant=_refuse_constant) == results


def test_demo_writes_a_score_plot(model_path, tmp_path):
    config = DemoConfig(n_writers=2, n_references=4, n_genuine_tests=2, n_forgeries=2, n_random=2)
    run_demo(tmp_path / "d", config, model=model_path)
    assert (tmp_path / "d" / "scores.png").stat().st_size > 5000


def test_failed_demo_does_not_block_a_retry(model_path, tmp_path, monkeypatch):
    from enrollment.verifier import Verifier

    config = DemoConfig(n_writers=2, n_references=4, n_genuine_tests=1, n_forgeries=1)
    out = tmp_path / "d"
    # A missing model fails before anything is written.
    assert main(["demo", "--out", str(out), "--model", str(tmp_path / "none.pt")]) == 2
    assert not out.exists()

    def broken(*args, **kwargs):
        raise EnrollmentError("simulated failure half-way")

    monkeypatch.setattr(Verifier, "enroll", broken)
    with pytest.raises(EnrollmentError, match="half-way"):
        run_demo(out, config, model=model_path)
    assert not out.exists()  # it created the folder, so it removed it
    out.mkdir()
    with pytest.raises(EnrollmentError):
        run_demo(out, config, model=model_path)
    assert out.is_dir() and not any(out.iterdir())  # an empty folder given is left empty
    monkeypatch.undo()
    assert run_demo(out, config, model=model_path).users  # the retry works

"""scripts/bench_model_speed.py --verify --cue: both decisions timed over one enrolled user."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import bench_model_speed  # noqa: E402


def test_cue_rows_for_a_model_with_a_cue_and_one_row_without(tmp_path, capsys):
    from test_pair_cue import calibrated_with_pair

    from enrollment.testing import build_tiny_model
    from sigver.inference import open_extractor

    with_cue, *_ = calibrated_with_pair(tmp_path / "cue")
    plain = build_tiny_model(tmp_path / "plain")
    extractors = {
        "cued": open_extractor(with_cue, backend="torch"),
        "plain": open_extractor(plain, backend="torch"),
    }
    verifiers = bench_model_speed._verify_latency(extractors, repeats=2, rounds=1, cue=True)
    assert verifiers["cued +cue"].forgery_cue is not None
    assert verifiers["cued -cue"].forgery_cue is None
    assert verifiers["plain"].forgery_cue is None
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    timed = sorted((r[0], r[1], r[2]) for r in rows if len(r) == 6 and r[-3][0].isdigit())
    assert timed == [
        ("cued", "+cue", "array"),
        ("cued", "+cue", "png"),
        ("cued", "-cue", "array"),
        ("cued", "-cue", "png"),
    ]
    assert sorted(r[:2] for r in rows if len(r) == 5 and r[0] == "plain") == [
        ["plain", "array"],
        ["plain", "png"],
    ]


def test_cue_needs_verify(capsys):
    with pytest.raises(SystemExit):
        bench_model_speed.main(["--cue"])
    assert "give --verify N" in capsys.readouterr().err

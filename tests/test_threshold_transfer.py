"""scripts/threshold_transfer.py: the stage decided with the model's stored forgery cue."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import threshold_transfer  # noqa: E402

#: Toy populations: the calibration writers 001-008 are "sigcomp-dev" (the cue was fitted
#: on them), their halves stand in for the synthetic ones.
TOY_USERS = {
    "synthetic-a": ("001", "002", "003", "004"),
    "synthetic-b": ("005", "006", "007", "008"),
    "sigcomp-dev": tuple(f"{u:03d}" for u in range(1, 9)),
    "sigcomp-exp": ("005", "006", "007", "008"),
}


def test_cue_stage_uses_the_stored_point_for_the_cues_writers_and_calibrates_the_rest(
    tmp_path, monkeypatch
):
    from test_pair_cue import calibrated_with_pair

    from sigver.calibration import operating_point_threshold
    from sigver.evaluation import simulate_deployment
    from sigver.metrics import far, frr
    from sigver.pair_cue import stored_pair_cue

    path, cal, fs, _, kw = calibrated_with_pair(tmp_path)
    monkeypatch.setattr(threshold_transfer, "_users", lambda name, _fs: TOY_USERS[name])
    pops = dict.fromkeys(TOY_USERS, fs)
    simulated = []

    def simulate(norm, statistics):
        simulated.append(norm)
        return {
            name: simulate_deployment(
                fs,
                users=users,
                background=kw["background"],
                normalization=norm,
                refs=4,
                folds=2,
                progress=False,
            )
            for name, users in TOY_USERS.items()
        }

    args = argparse.Namespace(operating_point="balanced", out=tmp_path)
    raw = [{"gap": 0.5}] * len(threshold_transfer.HELD_OUT)
    rows, norm = threshold_transfer._cue_stage(
        path, pops, kw["background"], args, {}, simulate, raw
    )
    assert norm == "loo-lcb=0" and simulated == ["loo-lcb=0"]  # the model's own normaliser
    by_direction = {(r["calibrated_on"], r["applied_to"]): r for r in rows}
    assert list(by_direction) == list(threshold_transfer.HELD_OUT)
    stored_t = cal.forgery_cue["calibration"]["threshold"]
    # Calibrated on the cue's own writers: the stored (cross-fitted) point, not a new one.
    assert by_direction["sigcomp-dev", "sigcomp-exp"]["threshold"] == stored_t
    assert by_direction["sigcomp-dev", "synthetic-b"]["threshold"] == stored_t

    # synthetic-a: the balanced threshold of its cued scores, rebuilt by hand, and the
    # deployed rates on sigcomp-exp at that threshold.
    runs = simulate("loo-lcb=0", False)
    from sigver.forgery_cue import ForgeryCue

    cue = ForgeryCue.from_dict(cal.forgery_cue)
    pair = stored_pair_cue(cal.to_dict())

    def cued(name):
        return runs[name].with_forgery_cue(cue, fs).with_pair_cue(pair, fs).scores()

    cal_scores = cued("synthetic-a")
    g = np.concatenate([np.ravel(a) for sc in cal_scores for a in sc.genuine])
    s = np.concatenate([np.ravel(a) for sc in cal_scores for a in sc.skilled])
    t = operating_point_threshold("balanced", g, s)
    row = by_direction["synthetic-a", "sigcomp-exp"]
    assert row["threshold"] == pytest.approx(t)
    app = cued("sigcomp-exp")
    want_frr = np.mean([frr(np.concatenate([np.ravel(a) for a in sc.genuine]), t) for sc in app])
    want_far = np.mean([far(np.concatenate([np.ravel(a) for a in sc.skilled]), t) for sc in app])
    assert row["FRR"]["mean"] == pytest.approx(want_frr)
    assert row["FAR_skilled"]["mean"] == pytest.approx(want_far)
    assert row["gap_vs_raw"] == pytest.approx(row["gap"] / 0.5)
    assert all(r["forgery_cue"] for r in rows)
    assert sorted(p.name for p in tmp_path.glob("curve-cue-*.png")) == sorted(
        f"curve-cue-{c}-to-{a}.png" for c, a in threshold_transfer.HELD_OUT
    )


def test_cue_stage_skips_a_model_without_a_cue(tmp_path):
    from enrollment.testing import build_tiny_model

    path = build_tiny_model(tmp_path)
    args = argparse.Namespace(operating_point="balanced", out=tmp_path)
    rows, norm = threshold_transfer._cue_stage(
        path, {}, None, args, {}, lambda *a: pytest.fail("nothing to simulate"), []
    )
    assert (rows, norm) == ([], None)

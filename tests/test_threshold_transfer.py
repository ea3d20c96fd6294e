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


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A tiny model with a cue, its calibration and one simulation per toy population."""
    from test_pair_cue import calibrated_with_pair

    from sigver.evaluation import simulate_deployment

    folder = tmp_path_factory.mktemp("transfer")
    path, cal, fs, _, kw = calibrated_with_pair(folder)
    runs = {
        name: simulate_deployment(
            fs,
            users=users,
            background=kw["background"],
            normalization="loo-lcb=0",
            refs=4,
            folds=2,
            progress=False,
        )
        for name, users in TOY_USERS.items()
    }
    return path, cal, fs, kw["background"], runs


def _pooled(scores, part):
    return [np.concatenate([np.ravel(a) for a in getattr(sc, part)]) for sc in scores]


@pytest.mark.parametrize("point", ["balanced", "far-skilled=5%"])
def test_cue_stage_uses_the_stored_point_for_the_cues_writers_and_calibrates_the_rest(
    toy, tmp_path, monkeypatch, point
):
    from sigver.calibration import operating_point_threshold, stored_calibration
    from sigver.metrics import eer_global, eer_user_thresholds, far, frr
    from sigver.models.checkpoint import load_checkpoint

    path, cal, fs, background, runs = toy
    monkeypatch.setattr(threshold_transfer, "_users", lambda name, _fs: TOY_USERS[name])
    pops = dict.fromkeys(TOY_USERS, fs)
    stored = threshold_transfer.stored_cue(
        stored_calibration(load_checkpoint(path).meta.metrics), path.name, point
    )
    args = argparse.Namespace(
        operating_point=point, out=tmp_path, floor_rounds=3, bootstrap=4, seed=1234
    )

    def simulate(norm, statistics):
        pytest.fail("the model's normaliser was simulated already")

    rows, norm = threshold_transfer._cue_stage(
        stored, pops, background, args, {"loo-lcb=0": runs}, simulate
    )
    assert norm == "loo-lcb=0"  # the model's own normaliser, its simulation reused
    by_direction = {(r["calibrated_on"], r["applied_to"]): r for r in rows}
    assert list(by_direction) == list(threshold_transfer.HELD_OUT)
    cue, pair, _ = stored

    def cued(name):
        return runs[name].with_forgery_cue(cue, fs).with_pair_cue(pair, fs).scores()

    def check_rates(row, t, app):
        scores = cued(app)
        want_frr = np.mean([frr(g, t) for g in _pooled(scores, "genuine")])
        want_far = np.mean([far(s, t) for s in _pooled(scores, "skilled")])
        assert row["FRR"]["mean"] == pytest.approx(want_frr)
        assert row["FAR_skilled"]["mean"] == pytest.approx(want_far)

    # Calibrated on the cue's own writers: the stored (cross-fitted) point, not a new one.
    fused_point = cal.forgery_cue["calibration"]["operating_points"][point]
    for app in ("sigcomp-exp", "synthetic-b"):
        row = by_direction["sigcomp-dev", app]
        assert row["threshold"] == fused_point["threshold"]
        assert row["calibrated"]["FRR"] == fused_point["FRR"]
        check_rates(row, fused_point["threshold"], app)

    # synthetic-a: the threshold of its cued scores, rebuilt by hand, and the rates at it.
    scores = cued("synthetic-a")
    g = np.concatenate(_pooled(scores, "genuine"))
    s = np.concatenate(_pooled(scores, "skilled"))
    t = operating_point_threshold(point, g, s)
    row = by_direction["synthetic-a", "sigcomp-exp"]
    assert row["threshold"] == pytest.approx(t)
    check_rates(row, t, "sigcomp-exp")

    # The gap relative to the same enrollments' raw scores.
    raw = runs["sigcomp-exp"].scores("none")
    rg = np.mean(
        [
            eer_global(a, b)[0]
            for a, b in zip(_pooled(raw, "genuine"), _pooled(raw, "skilled"), strict=True)
        ]
    )
    ru = np.mean([eer_user_thresholds(sc.genuine, sc.skilled) for sc in raw])
    assert row["raw_gap"] == pytest.approx(rg - ru)
    assert row["gap_vs_raw"] == pytest.approx(row["gap"] / row["raw_gap"])
    # The floors: aligned_gap of each fold's scores (3 dealings, seeded by fold), cued and raw.
    from sigver.metrics import aligned_gap

    def floor(fold_scores):
        return np.mean(
            [aligned_gap(f.genuine, f.skilled, rounds=3, seed=i) for i, f in enumerate(fold_scores)]
        )

    assert row["floor"] == pytest.approx(floor(cued("sigcomp-exp")))
    assert row["raw_aligned_gap"] == pytest.approx(floor(raw))
    assert row["target"] == pytest.approx(row["raw_gap"] / 2)
    assert all(r["forgery_cue"] and r["operating_point"] == point for r in rows)
    # Each row's interval is drawn from its own populations: the cued application scores,
    # the raw ones, and the calibration writers only where the threshold was calibrated here.
    for (c, a), r in by_direction.items():
        want = threshold_transfer.bootstrap_row(
            cued(a),
            runs[a].scores("none"),
            r["threshold"],
            cal=None if c == "sigcomp-dev" else cued(c),
            operating_point=point,
            rounds=4,
            seed=1234,
        )
        assert r["interval"] == want
    assert by_direction["synthetic-a", "sigcomp-exp"][
        "interval"
    ] != threshold_transfer.bootstrap_row(
        cued("sigcomp-exp"), raw, row["threshold"], operating_point=point, rounds=4, seed=1234
    )
    assert sorted(p.name for p in tmp_path.glob("curve-cue-*.png")) == sorted(
        f"curve-cue-{c}-to-{a}.png" for c, a in threshold_transfer.HELD_OUT
    )


def test_a_model_without_a_cue_skips_stage_3_and_a_missing_point_stops_at_once(toy, tmp_path):
    from enrollment.testing import build_tiny_model
    from sigver.calibration import CalibrationError

    plain = build_tiny_model(tmp_path)
    assert threshold_transfer.stored_cue(None, plain.name, "balanced") is None
    args = argparse.Namespace(operating_point="balanced", out=tmp_path)
    rows, norm = threshold_transfer._cue_stage(
        None, {}, None, args, {}, lambda *a: pytest.fail("nothing to simulate")
    )
    assert (rows, norm) == ([], None)
    _, cal, *_ = toy
    with pytest.raises(CalibrationError, match="no operating point"):
        threshold_transfer.stored_cue(cal.to_dict(), "toy.pt", "far-skilled=2%")


def test_gap_columns_by_hand():
    # raw gap 4 points with a floor of 1; the decision leaves a gap of 1.5 over a floor of 1.
    raw = {"gap": 0.04, "aligned_gap": 0.01}
    row = {"gap": 0.015, "aligned_gap": 0.01}
    got = threshold_transfer.gap_columns(row, raw)
    assert got["target"] == pytest.approx(0.02)
    assert got["floor"] == pytest.approx(0.01)
    assert got["excess_vs_raw"] == pytest.approx(0.005 / 0.03)
    assert got["reachable"] == 1.0
    # A floor above half the raw gap: no normalisation of these scores meets the bound.
    got = threshold_transfer.gap_columns({"gap": 0.03, "aligned_gap": 0.025}, raw)
    assert got["reachable"] == 0.0
    assert got["excess_vs_raw"] == pytest.approx(0.005 / 0.03)
    # Raw scores already at their floor: nothing to remove, no ratio.
    assert np.isnan(
        threshold_transfer.gap_columns(row, {"gap": 0.01, "aligned_gap": 0.01})["excess_vs_raw"]
    )


def _scores(shifts, raw_spread=0.0):
    """Two folds of users whose genuine ~ N(1, 1) and skilled ~ N(-1, 1) scores are moved
    by ``shifts`` (one per user); ``raw_spread`` moves user ``i`` by ``i * raw_spread`` more."""
    from sigver.evaluation import FoldScores

    rng = np.random.default_rng(0)
    g, s = rng.normal(1.0, 1.0, 100), rng.normal(-1.0, 1.0, 100)
    moved = [d + i * raw_spread for i, d in enumerate(shifts)]
    fold = FoldScores(
        genuine=[g + d for d in moved],
        random=[np.full(5, -50.0) for _ in moved],
        skilled=[s + d for d in moved],
        simple=[np.empty(0) for _ in moved],
    )
    return [fold, fold]


def test_bootstrap_of_identical_writers_collapses_onto_the_rows_ratios():
    from sigver.metrics import eer_threshold

    app = _scores([0.0] * 4)
    raw = _scores([0.0] * 4, raw_spread=1.0)  # misaligned raw scores: a positive raw gap
    g = np.concatenate([a for f in app for a in f.genuine])
    s = np.concatenate([a for f in app for a in f.skilled])
    t = eer_threshold(g, s)
    iv = threshold_transfer.bootstrap_row(app, raw, t, rounds=30, seed=1)
    # Every draw of identical writers is the same population: one value per ratio.
    for k in ("FRR/EER", "FAR_skilled/EER"):
        assert iv[k][0] == pytest.approx(iv[k][1])
        assert iv[k][0] == pytest.approx(1.0, abs=0.1)
    # Aligned writers leave no gap, whatever the raw draw's gap is.
    assert iv["gap/raw"] == [0.0, 0.0]
    assert iv["undefined"] == {"FRR/EER": 0, "FAR_skilled/EER": 0, "gap/raw": 0}
    # Raw scores of identical writers have no gap on any draw: the ratio is undefined,
    # every draw is counted so, and the interval says NaN rather than a number.
    none = threshold_transfer.bootstrap_row(app, app, t, rounds=7, seed=1)
    assert none["undefined"]["gap/raw"] == 7
    assert np.isnan(none["gap/raw"]).all()


def test_one_draw_of_writers_serves_the_decided_and_the_raw_scores():
    # Decided = raw, with misaligned writers: the same draw on both gives a ratio of exactly 1.
    app = _scores([0.0, 0.7, -0.4, 1.3, 2.0])
    iv = threshold_transfer.bootstrap_row(app, app, 0.0, rounds=40, seed=2)
    assert iv["gap/raw"] == pytest.approx([1.0, 1.0])


def test_bootstrap_recalibrates_on_each_draw_of_the_calibration_writers():
    app, raw = _scores([0.0] * 4), _scores([0.0] * 4, raw_spread=1.0)
    # Calibrated on writers whose scores are all 100 higher: every genuine is rejected.
    iv = threshold_transfer.bootstrap_row(app, raw, 0.0, cal=_scores([100.0] * 3), rounds=10)
    assert iv["FAR_skilled/EER"] == [0.0, 0.0]
    assert iv["FRR/EER"][0] == iv["FRR/EER"][1] > 5
    # Without cal, the given threshold is used: the same 0.0 on every draw.
    fixed = threshold_transfer.bootstrap_row(app, raw, 0.0, rounds=10)
    assert fixed["FRR/EER"][1] < 2
    # Writers that differ give draws that differ.
    spread = threshold_transfer.bootstrap_row(
        _scores([0.0, 0.5, -0.5, 1.5]), raw, 0.0, cal=_scores([0.0, 1.0, -1.0]), rounds=50
    )
    assert spread["FRR/EER"][0] < spread["FRR/EER"][1]
    with pytest.raises(ValueError, match="rounds"):
        threshold_transfer.bootstrap_row(app, raw, 0.0, rounds=0)
    with pytest.raises(ValueError, match="level"):
        threshold_transfer.bootstrap_row(app, raw, 0.0, level=1.0)

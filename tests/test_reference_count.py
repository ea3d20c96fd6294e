"""scripts/reference_count.py: the rows it reads off deployment.json, its plot, its checks."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import reference_count  # noqa: E402


def _deployment(folder: Path, frr: float, far_s: float, eer: float) -> None:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(
        json.dumps({"protocol": {"refs": 0, "folds": 0}, "meta": {}})
    )
    (folder / "deployment.json").write_text(
        json.dumps(
            {
                "threshold": -0.5,
                "measured": {"FRR": frr, "FAR_skilled": far_s, "FAR_random": 0.001},
                "a_posteriori": {
                    "EER_global": {"mean": eer, "std": 0.01},
                    "EER_user": {"mean": eer / 2, "std": 0.01},
                },
                "calibrated_rates": {"FRR": 0.06, "FAR_skilled": 0.06, "FAR_random": 0.002},
                "intervals": {"FRR": [frr / 2, frr * 2], "FAR_skilled": [far_s / 2, far_s * 2]},
            }
        )
    )


def test_a_row_is_the_deployments_figures_and_their_ratios_to_eer_global(tmp_path):
    _deployment(tmp_path / "e", frr=0.08, far_s=0.04, eer=0.05)
    row = reference_count.read_row(tmp_path / "e", 8)
    assert row["refs"] == 8 and row["threshold"] == -0.5
    assert row["EER_global"] == 0.05 and row["EER_user"] == 0.025  # the fold means
    assert row["FRR/EER"] == pytest.approx(1.6) and row["FAR_s/EER"] == pytest.approx(0.8)
    assert row["calibrated"]["FRR"] == 0.06 and row["intervals"]["FRR"] == [0.04, 0.16]


def test_a_folder_from_the_same_settings_is_reused_and_one_from_others_refused(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(reference_count, "_sigver", lambda argv: pytest.fail("recomputed"))
    _deployment(tmp_path / "e", frr=0.08, far_s=0.04, eer=0.05)
    (tmp_path / "e" / "results.json").write_text(
        json.dumps({"protocol": {"refs": 5, "folds": 10}, "meta": {"model_sha256": "abc"}})
    )
    dep = json.loads((tmp_path / "e" / "deployment.json").read_text())
    dep["intervals"]["rounds"] = 200
    (tmp_path / "e" / "deployment.json").write_text(json.dumps(dep))
    pop = {"features": tmp_path / "f.npz", "model": "abc"}
    same = SimpleNamespace(folds=10, bootstrap=200)
    assert reference_count.evaluate(Path("m"), pop, 5, tmp_path / "e", same)["refs"] == 5
    for refs, p, args in (
        (8, pop, same),  # other references
        (5, pop, SimpleNamespace(folds=5, bootstrap=200)),  # other folds
        (5, pop, SimpleNamespace(folds=10, bootstrap=0)),  # other bootstrap draws
        (5, {**pop, "model": "recalibrated"}, same),  # another checkpoint
    ):
        with pytest.raises(SystemExit, match="remove it"):
            reference_count.evaluate(Path("m"), p, refs, tmp_path / "e", args)


def test_the_plot_is_written_with_and_without_intervals(tmp_path):
    rows = []
    for k in (3, 5):
        _deployment(tmp_path / f"r{k}", frr=0.1 / k, far_s=0.05, eer=0.06)
        rows.append(reference_count.read_row(tmp_path / f"r{k}", k))
    bare = [{**r, "intervals": {}} for r in rows]
    reference_count.plot({"a": rows, "b": bare}, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 5000


def test_bad_arguments_are_refused_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(reference_count, "populations", lambda *a: pytest.fail("worked"))
    for refs in ("1", "21"):
        with pytest.raises(SystemExit):
            reference_count.main(["--refs", refs, "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        reference_count.main(["--synth-seed", "0", "--out", str(tmp_path)])


def test_per_count_thresholds_calibrate_on_the_first_half_and_apply_to_the_rest(monkeypatch):
    import numpy as np

    from sigver.evaluation import FoldScores
    from sigver.metrics import eer_threshold

    rng = np.random.default_rng(0)

    def fold(n, shift):
        return FoldScores(
            genuine=[rng.normal(1 + shift, 1, 6) for _ in range(n)],
            random=[rng.normal(-3, 1, 4) for _ in range(n)],
            skilled=[rng.normal(-1 + shift, 1, 5) for _ in range(n)],
            simple=[np.empty(0)] * n,
        )

    # Synthetic-a (writers 0-3) sits 1 above synthetic-b (4-7): its balanced point is higher.
    def two_halves():
        hi, lo = fold(4, 1.0), fold(4, 0.0)
        parts = ("genuine", "random", "skilled", "simple")
        return FoldScores(**{p: getattr(hi, p) + getattr(lo, p) for p in parts})

    syn = [two_halves() for _ in range(3)]
    real = [fold(5, 0.0) for _ in range(3)]
    monkeypatch.setattr(
        reference_count, "_scores", lambda out: syn if "synthetic" in out.name else real
    )
    results = {
        "synthetic": [{"refs": 5, "threshold": 0.0}, {"refs": 12, "threshold": 0.0}],
        "sigcomp-exp": [{"refs": 5, "threshold": 0.0}],
    }
    saved = reference_count.saved_scores(results, Path("unused"))
    rows = reference_count.per_count_thresholds(results, saved)
    assert [(r["refs"], r["applied_to"]) for r in rows] == [
        (5, "synthetic-b"), (5, "sigcomp-exp"), (12, "synthetic-b")
    ]  # fmt: skip
    g = np.concatenate([x for f in syn for x in f.genuine[:4]])
    s = np.concatenate([x for f in syn for x in f.skilled[:4]])
    assert rows[0]["T_k"] == pytest.approx(eer_threshold(g, s)) and rows[0]["T_k"] > 0.5
    # The higher threshold rejects more of synthetic-b's genuines than the shipped 0 does.
    assert rows[0]["calibrated_at_k"]["FRR"] > rows[0]["shipped"]["FRR"]
    from sigver.evaluation import fixed_threshold_point

    want = fixed_threshold_point(real, rows[1]["T_k"])["summary"]["FAR_skilled"]["mean"]
    assert rows[1]["calibrated_at_k"]["FAR_skilled"] == pytest.approx(want)


def test_dev_threshold_reads_the_decided_operating_point_of_a_saved_calibration(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(reference_count, "_sigver", lambda argv: pytest.fail("recalibrated"))
    args = SimpleNamespace(out=tmp_path, sigcomp=tmp_path, dev_calibration=tmp_path / "x.npz")
    cal = {
        "refs": 8,
        "operating_points": {"balanced": {"threshold": -0.4}},
        "forgery_cue": {
            "on_by_default": True,
            "calibration": {"operating_points": {"balanced": {"threshold": -0.7}}},
        },
    }
    path = tmp_path / "dev-calibration-refs8.json"
    path.write_text(json.dumps(cal))
    assert reference_count.dev_threshold(Path("m"), 8, args) == -0.7  # decided with the cue
    cal["forgery_cue"]["on_by_default"] = False
    path.write_text(json.dumps(cal))
    assert reference_count.dev_threshold(Path("m"), 8, args) == -0.4  # decided without it
    cal["refs"] = 5
    path.write_text(json.dumps(cal))
    with pytest.raises(SystemExit, match="not 8"):
        reference_count.dev_threshold(Path("m"), 8, args)

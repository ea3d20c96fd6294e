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
    (folder / "deployment.json").write_text(
        json.dumps(
            {
                "threshold": -0.5,
                "measured": {"FRR": frr, "FAR_skilled": far_s, "FAR_random": 0.001},
                "a_posteriori": {"EER_global": eer, "EER_user": eer / 2},
                "calibrated_rates": {"FRR": 0.06, "FAR_skilled": 0.06, "FAR_random": 0.002},
                "intervals": {"FRR": [frr / 2, frr * 2], "FAR_skilled": [far_s / 2, far_s * 2]},
            }
        )
    )


def test_a_row_is_the_deployments_figures_and_their_ratios_to_eer_global(tmp_path, monkeypatch):
    # An existing deployment.json is read, not recomputed.
    monkeypatch.setattr(reference_count, "_sigver", lambda argv: pytest.fail("recomputed"))
    _deployment(tmp_path / "e", frr=0.08, far_s=0.04, eer=0.05)
    row = reference_count.evaluate(Path("m.pt"), {}, 8, tmp_path / "e", SimpleNamespace())
    assert row["refs"] == 8 and row["threshold"] == -0.5
    assert row["FRR/EER"] == pytest.approx(1.6) and row["FAR_s/EER"] == pytest.approx(0.8)
    assert row["calibrated"]["FRR"] == 0.06 and row["intervals"]["FRR"] == [0.04, 0.16]


def test_the_plot_is_written_with_and_without_intervals(tmp_path, monkeypatch):
    monkeypatch.setattr(reference_count, "_sigver", lambda argv: None)
    rows = []
    for k in (3, 5):
        _deployment(tmp_path / f"r{k}", frr=0.1 / k, far_s=0.05, eer=0.06)
        rows.append(reference_count.evaluate(Path("m"), {}, k, tmp_path / f"r{k}", None))
    bare = [{**r, "intervals": {}} for r in rows]
    reference_count.plot({"a": rows, "b": bare}, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 5000


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        reference_count.main(["--refs", "1", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        reference_count.main(["--synth-seed", "0", "--out", str(tmp_path)])

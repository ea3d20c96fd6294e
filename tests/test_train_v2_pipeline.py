"""scripts/train_v2_model.py: the stage plan, and a tiny end-to-end run (slow)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_v2_model.py"


def _load():
    spec = importlib.util.spec_from_file_location("train_v2_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_lists_every_stage_without_running(tmp_path: Path, capsys) -> None:
    assert _load().main(["--work", str(tmp_path / "w"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    stages = [line.split("]")[0][1:] for line in out.splitlines() if line.startswith("[")]
    assert stages[0] == "synth" and "base" in stages and "ft_all" in stages
    assert "eval-sigcomp-ft_last" in stages and "eval-holdout-arabic-base" in stages
    assert "--split train" in out and "--split holdout" in out
    assert "--users sigcomp2011:001-037" in out  # never the exploitation writers
    assert not (tmp_path / "w" / "synth").exists()


@pytest.mark.slow
def test_tiny_synthetic_pipeline_runs_and_skips_done_stages(tmp_path: Path, capsys) -> None:
    work = tmp_path / "w"
    argv = ["--work", str(work), "--writers", "16", "--genuine", "4", "--forgeries", "2"]
    argv += ["--holdout-writers", "4", "--epochs", "1", "--no-sigcomp", "--jobs", "1"]
    argv += ["--synth-canvas", "600,860"]
    module = _load()
    assert module.main(argv) == 0
    assert (work / "base" / "best.pt").is_file()
    assert (work / "eval" / "holdout-cjk-base" / "results.json").is_file()
    timings = json.loads((work / "timings.json").read_text())
    assert {"synth", "base", "eval-holdout-arabic-base"} <= set(timings)
    capsys.readouterr()
    assert module.main(argv) == 0  # everything is done: nothing runs again
    assert "[" not in capsys.readouterr().out

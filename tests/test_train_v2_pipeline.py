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
    assert stages[-1] == "ship"  # the pipeline ends with the shipped files
    trains = [line for line in out.splitlines() if line.startswith(("[base]", "[ft_"))]
    assert len(trains) == 3 and all("--seed 42" in line for line in trains)


def test_train_seed_reaches_the_base_and_the_fine_tunes(tmp_path: Path, capsys) -> None:
    assert _load().main(["--work", str(tmp_path / "w"), "--dry-run", "--train-seed", "43"]) == 0
    out = capsys.readouterr().out
    trains = [line for line in out.splitlines() if line.startswith(("[base]", "[ft_"))]
    assert len(trains) == 3 and all("--seed 43" in line for line in trains)
    synth = [line for line in out.splitlines() if line.startswith("[synth]")]
    assert "--seed 0" in synth[0]  # the corpus keeps its own seed


def test_external_base_skips_synthetic_stages_and_fine_tunes_it(
    tmp_path: Path, capsys, model_path: Path, monkeypatch
) -> None:
    module = _load()
    work = ["--work", str(tmp_path / "w"), "--dry-run"]
    canvas = ["--synth-canvas", "645,921"]
    with pytest.raises(SystemExit):  # the corpus is not here, so its canvas must be given
        module.main([*work, "--base-checkpoint", str(model_path), "--ship", "none"])
    assert "--synth-canvas" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # shipping would read the synthetic cache
        module.main([*work, "--base-checkpoint", str(model_path), *canvas])
    assert "--ship none" in capsys.readouterr().err
    unsigned = tmp_path / "unsigned.pt"
    unsigned.write_bytes(model_path.read_bytes())  # no .sha256 beside it: refused up front
    with pytest.raises(SystemExit):
        module.main([*work, "--base-checkpoint", str(unsigned), *canvas, "--ship", "none"])
    assert "sha256" in capsys.readouterr().err

    assert module.load_arch(model_path) == "sigresnet"
    monkeypatch.setattr(module, "load_arch", lambda path: "signet")
    argv = [*work, "--base-checkpoint", str(model_path), *canvas, "--ship", "none"]
    assert module.main(argv) == 0
    out = capsys.readouterr().out
    stages = [line.split("]")[0][1:] for line in out.splitlines() if line.startswith("[")]
    assert not {"synth", "cache-synth", "base", "ship"} & set(stages)
    assert f"--init {model_path} --freeze 0" in out and f"--init {model_path} --freeze -1" in out
    assert f"--model {model_path}" in out  # the external base is evaluated like a trained one
    assert "eval-holdout-cjk-base" in stages and "--canvas 645 921" in out
    assert "--name sigver-signet-v2-ft_all" in out  # fine-tunes are named by the base's arch


def test_external_base_work_folder_is_bound_to_one_base(tmp_path: Path) -> None:
    module = _load()
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"weights a")
    b.write_bytes(b"weights b")
    work = tmp_path / "w"
    work.mkdir()
    module._bind_external_base(work, a)
    module._bind_external_base(work, a)  # the same base again: its done stages are reused
    with pytest.raises(SystemExit, match="another --base-checkpoint"):
        module._bind_external_base(work, b)
    (work / "base").mkdir()
    with pytest.raises(SystemExit, match="trained by this pipeline"):
        module._bind_external_base(tmp_path / "w", a)


def test_ship_choice_uses_validation_accuracy_and_ablations_list_every_eval(tmp_path: Path):
    module = _load()
    for name, accs in (("ft_all", [0.2, 0.61, 0.5]), ("ft_last", [0.3, 0.6])):
        (tmp_path / name).mkdir()
        rows = [{"epoch": i + 1, "val_acc": a} for i, a in enumerate(accs)]
        (tmp_path / name / "log.json").write_text(json.dumps(rows))
    assert module._best_by_validation(tmp_path, ("ft_all", "ft_last")) == "ft_all"
    summary = {"EER_user": {"mean": 0.031, "std": 0.004}, "EER_global": {"mean": 0.07, "std": 0.01}}
    for run in ("sigcomp-v1", "holdout-cjk-base"):
        (tmp_path / "eval" / run).mkdir(parents=True)
        (tmp_path / "eval" / run / "results.json").write_text(json.dumps({"summary": summary}))
    meta, md = module._ablations(tmp_path)
    assert meta["ablations"]["sigcomp-v1"] == {
        "EER_user": "3.10 ± 0.40",
        "EER_global": "7.00 ± 1.00",
    }
    assert "| holdout-cjk-base | 3.10 ± 0.40 | 7.00 ± 1.00 |" in md


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

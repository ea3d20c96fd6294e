"""A new user's first hour: packaging, CLI polish, clear errors, progress, demo retries."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tomllib

from sigver import features
from sigver._util import LoggedProgress, progress_bar
from sigver.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


# -- packaging ---------------------------------------------------------------------


def test_package_list_covers_every_package() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(p.parent.relative_to(REPO).parts)
        for top in ("sigver", "enrollment")
        for p in (REPO / top).rglob("__init__.py")
    }
    assert found | {"sigver._models"} == listed
    assert config["package-dir"]["sigver._models"] == "models"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of the checkout, built from a copy of it."""
    import shutil

    pytest.importorskip("setuptools")
    tmp_path = tmp_path_factory.mktemp("wheel")
    # Build from a copy: an in-tree build would leave build/ and *.egg-info in the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    for name in ("sigver", "enrollment", "models"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {proc.stderr[-300:]}")
    (built,) = tmp_path.glob("sigver-*.whl")
    return built


def test_wheel_ships_the_model_its_hash_card_and_background(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    stem = Path(features.DEFAULT_MODEL_FILE).stem
    for suffix in (".pt", ".pt.sha256", ".background.npz", ".md"):
        assert f"sigver/_models/{stem}{suffix}" in names
    assert "sigver/inference.py" in names and "enrollment/verifier.py" in names


def test_demo_runs_from_an_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    import site
    import sysconfig

    # A fresh environment holding only the wheel; its dependencies (torch, numpy, ...)
    # come from this interpreter's site-packages through a .pth line, which does not
    # run that folder's own .pth files, so this checkout's editable install stays out.
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    deps = [
        p for p in {sysconfig.get_paths()["purelib"], *site.getsitepackages()} if Path(p).is_dir()
    ]
    (Path(purelib) / "deps.pth").write_text("\n".join(deps) + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
         "--target", purelib, str(wheel)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-500:]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGVER_") and k != "PYTHONPATH"}
    env["SIGVER_CACHE_DIR"] = str(tmp_path / "cache")
    run = tmp_path / "elsewhere"
    run.mkdir()
    where = subprocess.run(
        [str(python), "-c", "import sigver as s, enrollment as e; print(s.__file__, e.__file__)"],
        capture_output=True, text=True, cwd=run, env=env,
    )  # fmt: skip
    assert where.stdout.split() and all(p.startswith(purelib) for p in where.stdout.split())
    demo = subprocess.run(
        [str(python), "-m", "sigver", "demo", "--out", str(run / "demo"), "--writers", "2",
         "--references", "4", "--tests", "1", "--backend", "torch"],
        capture_output=True, text=True, cwd=run, env=env,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-800:]
    assert "EER global thr." in demo.stdout
    assert (run / "demo" / "results.json").is_file() and (run / "demo" / "scores.png").is_file()


def test_installed_layout_finds_the_packaged_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In an installed wheel the model is in sigver/_models, and there is no ../models.
    fake_pkg = tmp_path / "site-packages" / "sigver"
    (fake_pkg / "_models").mkdir(parents=True)
    (fake_pkg / "_models" / features.DEFAULT_MODEL_FILE).write_bytes(b"x")
    monkeypatch.setattr(features, "__file__", str(fake_pkg / "features.py"))
    monkeypatch.delenv(features.DEFAULT_MODEL_ENV, raising=False)
    monkeypatch.delenv(features.LEGACY_MODEL_ENV, raising=False)
    assert features.default_model_path() == fake_pkg / "_models" / features.DEFAULT_MODEL_FILE
    (fake_pkg / "_models" / features.DEFAULT_MODEL_FILE).unlink()
    error = features.missing_default_model_error(features.default_model_path())
    assert "reinstall" in str(error) and "scripts/" not in str(error)


def test_one_model_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog) -> None:
    monkeypatch.delenv("SIGVER_DEFAULT_MODEL", raising=False)
    monkeypatch.setenv("SIGVER_MODEL", str(tmp_path / "m.pt"))
    assert features.default_model_path() == tmp_path / "m.pt"
    monkeypatch.delenv("SIGVER_MODEL")
    monkeypatch.setenv("SIGVER_DEFAULT_MODEL", str(tmp_path / "old.pt"))
    with caplog.at_level(logging.WARNING):
        assert features.default_model_path() == tmp_path / "old.pt"
    assert "deprecated" in caplog.text
    with pytest.raises(features.ModelError, match="not found"):
        features.resolve_model_path("no-such-model")
    error = features.missing_default_model_error(tmp_path / "old.pt")
    assert "SIGVER_DEFAULT_MODEL=" in str(error) and "unset" in str(error)


def test_license_file_is_bsd_like_pyproject() -> None:
    text = (REPO / "LICENSE").read_text()
    assert "BSD 3-Clause" in text or "Redistribution and use" in text
    assert 'license = "BSD-3-Clause"' in (REPO / "pyproject.toml").read_text()


# -- CLI polish --------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["-q", "users", "list"],
        ["users", "list", "-q"],
        ["keys", "create", "ops", "--quiet"],
        ["verify", "--user", "a", "x.png", "-q"],
    ],
)
def test_quiet_anywhere(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.quiet is True and args.verbose is False


def test_every_subcommand_takes_quiet_and_verbose_after_its_name() -> None:
    import argparse

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]

    def leaves(p: argparse.ArgumentParser, name: str):
        nested = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not nested:
            yield name, p
        for action in nested:
            for child, cp in action.choices.items():
                yield from leaves(cp, f"{name} {child}")

    seen = 0
    for name, cp in sub.choices.items():
        for full, leaf in leaves(cp, name):
            assert {"-q", "--quiet", "-v", "--verbose"} <= set(leaf._option_string_actions), full
            seen += 1
    assert seen >= 15


def test_head_closing_the_pipe_of_keys_create_prints_no_traceback(tmp_path: Path) -> None:
    # The command of the report, literally; it failed about 40 % of the time.
    home = tmp_path / "h"
    home.mkdir()
    for i in range(4):
        proc = subprocess.run(
            ["sh", "-c", f"{sys.executable} -m sigver keys create ops{i} --home {home} | head -n1"],
            capture_output=True, text=True, env=_env(),
        )  # fmt: skip
        assert len(proc.stdout.strip()) >= 20, proc.stderr
        assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr


def test_verbose_before_is_not_reset_by_the_sub_parser() -> None:
    args = build_parser().parse_args(["-v", "users", "list"])
    assert args.verbose is True


def test_keys_create_prints_only_the_key_on_stdout(tmp_path: Path, capsys) -> None:
    assert main(["keys", "create", "ops", "--home", str(tmp_path / "h")]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 1 and len(out.strip()) >= 20
    assert "not shown again" in err


def test_piping_into_head_prints_no_traceback(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    # `users list` of several users writes many lines; head closes the pipe after one.
    script = (
        f"{sys.executable} -m sigver keys create ops --home {home} 2>/dev/null >/dev/null; "
        f"for i in 1 2 3; do {sys.executable} -m sigver keys create k$i --home {home} "
        f">/dev/null 2>&1; done; "
        f'{sys.executable} -c \'import sys; sys.argv=["sigver","keys","list","--home",'
        f'"{home}"]; from sigver.cli import entry_point; '
        f"import builtins; p=builtins.print; "
        f"builtins.print=lambda *a, **k: [p(*a, **k) for _ in range(2000)] and None; "
        f"entry_point()' | head -n1"
    )
    proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=_env())
    assert proc.stdout.strip()
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr


def test_missing_home_is_refused_not_created(tmp_path: Path, caplog) -> None:
    missing = tmp_path / "typo"
    assert main(["users", "list", "--home", str(missing)]) == 2
    assert main(["keys", "list", "--home", str(missing)]) == 2
    assert main(["audit", "--home", str(missing)]) == 2
    assert "no user store" in caplog.text
    assert not missing.exists()


def test_cli_hint_only_on_the_command_line() -> None:
    from enrollment.errors import ModelMismatchError, UserExistsError

    for exc in (UserExistsError("bob"), ModelMismatchError("bob", "a", "b")):
        assert "--" not in str(exc) and "--" in exc.cli_hint


def test_non_checkpoint_model_message(tmp_path: Path, caplog) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not a model")
    data = tmp_path / "d.npz"
    data.write_bytes(b"not an npz")
    code = main(
        ["features", "--model", str(bad), "--data", str(data), "--out", str(tmp_path / "o.npz")]
    )
    assert code == 2
    assert "is not a model checkpoint" in caplog.text
    assert "pickle" not in caplog.text.lower() and "zip" not in caplog.text.lower()
    caplog.clear()
    from sigver.cache import load_cache
    from sigver.errors import DatasetError

    with pytest.raises(DatasetError) as info:
        load_cache(data)
    assert "not a readable .npz signature cache" in str(info.value)
    assert "pickle" not in str(info.value).lower()
    # The same through the command line, with the shipped model.
    code = main(["features", "--data", str(data), "--out", str(tmp_path / "o.npz")])
    assert code == 2
    assert "not a readable .npz signature cache" in caplog.text
    assert "pickle" not in caplog.text.lower() and "zipfile" not in caplog.text.lower()


def test_data_option_is_spelled_the_same_everywhere() -> None:
    parser = build_parser()
    for argv in (
        ["preprocess", "--dataset", "folder", "--data", "x", "--out", "y.npz"],
        ["preprocess", "--dataset", "folder", "--path", "x", "--out", "y.npz"],
        ["datasets", "--dataset", "folder", "--data", "x"],
    ):
        assert str(parser.parse_args(argv).path) == "x"


def test_evaluate_defaults_to_the_shipped_model(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("SIGVER_MODEL", str(tmp_path / "missing.pt"))
    args = build_parser().parse_args(
        ["evaluate", "--data", "x.npz", "--preset", "sigcomp2011-dev", "--out", str(tmp_path)]
    )
    assert args.model is None  # not required any more
    from sigver.commands import evaluate

    with pytest.raises(features.ModelError, match="default model is missing"):
        evaluate.run(args)


def test_opencv_tiff_warnings_are_not_printed(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    img = np.full((120, 200), 255, np.uint8)
    img[50:70, 30:170] = 0
    # An unknown private tag: libtiff warns, and OpenCV prints "[ WARN:0@...] ..." raw.
    tifffile.imwrite(tmp_path / "s.tif", img, extratags=[(65000, "s", 0, "scanner", True)])
    (tmp_path / "m.csv").write_text("path,user,label\ns.tif,u1,genuine\n")
    env = {k: v for k, v in _env().items() if k != "OPENCV_LOG_LEVEL"}
    argv = ["preprocess", "--dataset", "folder", "--data", str(tmp_path / "m.csv")]
    argv += ["--out", str(tmp_path / "c.npz"), "--jobs", "1"]
    proc = subprocess.run(
        [sys.executable, "-m", "sigver", *argv], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "WARN" not in proc.stderr and "TIFF" not in proc.stderr
    # With -v the native warnings are shown again (they can matter when debugging).
    proc = subprocess.run(
        [sys.executable, "-m", "sigver", "-v", *argv[:-2], "--out", str(tmp_path / "d.npz")],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert "TIFF" in proc.stderr


# -- progress when stderr is not a terminal ----------------------------------------------


def test_progress_is_logged_when_not_a_terminal(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="sigver.progress"):
        bar = progress_bar(total=4, desc="features", unit="img", interval_s=0.0)
        assert isinstance(bar, LoggedProgress)  # pytest's stderr is not a TTY
        with bar:
            bar.update(2)
            bar.update(2)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("features: 2/4 img, 50%")
    assert "4/4" in lines[-1] and lines[-1].endswith("(done)")
    silent = progress_bar(total=4, desc="x", enabled=False)
    silent.update(4)
    silent.close()


def test_progress_is_quiet_for_short_jobs(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="sigver.progress"):
        with progress_bar(total=3, desc="x", interval_s=3600) as bar:
            bar.update(3)
    assert not caplog.records


# -- train refuses to overwrite or to resume nothing -------------------------------------


def test_train_refuses_an_existing_run_folder(tmp_path: Path) -> None:
    from sigver.commands.train import check_run_folder
    from sigver.errors import SigverError

    (tmp_path / "log.csv").write_text("epoch\n")
    with pytest.raises(SigverError, match="already holds a training run"):
        check_run_folder(tmp_path, None, 10, overwrite=False)
    check_run_folder(tmp_path, None, 10, overwrite=True)
    check_run_folder(tmp_path / "new", None, 10, overwrite=False)


def test_train_refuses_to_resume_past_the_last_epoch(tmp_path: Path) -> None:
    import torch

    from sigver.commands.train import check_run_folder
    from sigver.errors import SigverError
    from sigver.models import get_model
    from sigver.models.checkpoint import WeightsMeta, save_checkpoint

    model = get_model("sigresnet", widths=(4, 4, 8, 8), feature_dim=8)
    path = tmp_path / "last.pt"
    save_checkpoint(
        path,
        model,
        WeightsMeta.for_model(model, name="t"),
        heads={"classifier": torch.nn.Linear(8, 2).state_dict(), "forgery": None},
        training_state={"epoch": 3},
    )
    with pytest.raises(SigverError, match="already finished 3 epoch"):
        check_run_folder(tmp_path, path, 3, overwrite=False)
    check_run_folder(tmp_path, path, 4, overwrite=False)


def test_train_default_model_never_targets_the_shipped_model(tmp_path: Path) -> None:
    script = REPO / "scripts" / "train_default_model.py"
    models = tmp_path / "models"
    models.mkdir()
    (models / "sigver-sigresnet-v1.pt").write_bytes(b"shipped")
    proc = subprocess.run(
        [sys.executable, str(script), "--work", str(tmp_path / "w"), "--models", str(models)],
        capture_output=True, text=True, env=_env(),
    )  # fmt: skip
    assert proc.returncode == 2 and "--replace-shipped" in proc.stderr
    assert (models / "sigver-sigresnet-v1.pt").read_bytes() == b"shipped"
    assert "default: WORK/models" in subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, env=_env()
    ).stdout.replace("\n", " ").replace("  ", " ")


# -- plots -------------------------------------------------------------------------------


def test_plots_mark_the_deployed_threshold_and_eer(tmp_path: Path) -> None:
    pytest.importorskip("scipy")
    from sigver.plots import _eer_point, write_plots

    frr = np.array([0.0, 0.2, 0.5, 1.0])
    far = np.array([1.0, 0.6, 0.5, 0.0])
    assert _eer_point(frr, far) == (0.5, 0.5)
    rng = np.random.default_rng(0)
    paths = write_plots(
        rng.normal(1, 1, 50),
        rng.normal(-2, 1, 50),
        rng.normal(0, 1, 50),
        tmp_path,
        title="toy protocol, toy model",
        threshold=0.3,
    )
    assert [p.name for p in paths] == ["det.png", "roc.png", "scores.png"]
    assert all(p.stat().st_size > 5000 for p in paths)


@pytest.fixture
def drawn_figures(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every matplotlib figure closed during the test, drawn, for inspection."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    figures: list = []
    close = plt.close

    def keep(fig=None):  # noqa: ANN001, ANN202 - matplotlib's own signature
        if fig is not None and not isinstance(fig, str):
            fig.canvas.draw()
            figures.append(fig)
        return close(fig)

    monkeypatch.setattr(plt, "close", keep)
    return figures


def _overlaps(a, b) -> bool:  # noqa: ANN001 - matplotlib Bbox
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_plots_show_model_protocol_threshold_and_keep_legends_off_the_data(
    tmp_path: Path, drawn_figures: list
) -> None:
    from sigver.metrics import eer_threshold
    from sigver.plots import write_plots

    rng = np.random.default_rng(1)
    g, r, s = rng.normal(1, 1, 80), rng.normal(-2, 1, 80), rng.normal(0, 1, 80)
    write_plots(g, r, s, tmp_path / "deployed", title="sigcomp2011-dev, model-x", threshold=0.3)
    write_plots(g, r, s, tmp_path / "research", title="sigcomp2011-dev, model-x")
    assert len(drawn_figures) == 6
    for fig in drawn_figures:
        (ax,) = fig.axes
        assert "sigcomp2011-dev, model-x" in ax.get_title()
        assert "%" in ax.get_xlabel() or ax.get_xlabel() == "decision value"
        legend = ax.get_legend()
        assert not _overlaps(legend.get_window_extent(), ax.get_window_extent())
    det, roc, scores, det0, _, scores0 = drawn_figures
    labels = [t.get_text() for t in det.axes[0].get_legend().get_texts()]
    assert any(x.startswith("skilled EER") for x in labels)
    assert any("at t=+0.300" in x for x in labels)  # the deployed operating point
    assert not any("at t=" in t.get_text() for t in det0.axes[0].get_legend().get_texts())

    def vline(fig) -> tuple[float, str]:  # noqa: ANN001
        (line,) = [ln for ln in fig.axes[0].get_lines() if len(set(ln.get_xdata())) == 1]
        return float(line.get_xdata()[0]), line.get_label()

    x, label = vline(scores)
    assert x == 0.3 and "threshold +0.300" in label
    # Without a deployed threshold: the a-posteriori EER threshold, never a bare 0.
    x, label = vline(scores0)
    assert x == pytest.approx(eer_threshold(g, s)) and "EER threshold" in label


def test_training_curves_are_drawn_after_one_epoch(tmp_path: Path) -> None:
    import cv2

    from sigver.training import plot_history

    one = [{"epoch": 1, "train_loss": 2.0, "val_loss": 2.5, "train_acc": 0.2, "val_acc": 0.1}]
    path = plot_history(one, tmp_path / "curves.png", title="toy v1 (sigresnet, writer loss)")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    # Coloured (non-grey) pixels exist only where data are drawn: markers for one epoch.
    b, g, r = (img[..., i].astype(int) for i in range(3))
    assert int(((np.abs(b - r) > 60) | (np.abs(g - r) > 60)).sum()) > 20


def test_training_curves_in_percent_titled_with_legends_off_the_data(
    tmp_path: Path, drawn_figures: list
) -> None:
    from sigver.training import TrainConfig, _run_title, plot_history

    rows = [
        {
            "epoch": e,
            "train_loss": 3.0 / e,
            "val_loss": 3.5 / e,
            "train_acc": 0.2 * e,
            "val_acc": 0.15 * e,
        }
        for e in (1, 2, 3)
    ]
    cfg = TrainConfig(arch="sigresnet", forg=True, lamb=0.5, name="sigver-sigresnet", version="3")
    plot_history(rows, tmp_path / "curves.png", title=_run_title(cfg))
    (fig,) = drawn_figures
    assert "sigver-sigresnet v3 (sigresnet, SigNet-F lambda 0.5)" in fig._suptitle.get_text()
    ax_loss, ax_acc = fig.axes
    assert ax_acc.get_ylabel() == "accuracy (%)" and ax_acc.get_ylim() == (0.0, 100.0)
    val = next(ln for ln in ax_acc.get_lines() if ln.get_label() == "val_acc")
    assert list(val.get_ydata()) == pytest.approx([15.0, 30.0, 45.0])
    for ax in fig.axes:
        assert not _overlaps(ax.get_legend().get_window_extent(), ax.get_window_extent())

"""CLI foundation: ``sigver --help``, ``sigver datasets`` and ``sigver preprocess`` in-process."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from sigver.cache import load_cache, load_signatures
from sigver.cli import main


def draw_signature(path: Path, seed: int) -> None:
    """A white page with a few dark strokes, like a scanned signature.

    Strokes are thick and anti-aliased: preprocessing smooths before thresholding, as the
    reference does, which erases hairline strokes drawn in a flat grey.
    """
    rng = np.random.default_rng(seed)
    img = np.full((180, 400), 255, dtype=np.uint8)
    pts = rng.integers([40, 40], [360, 140], size=(5, 2))
    for a, b in zip(pts[:-1], pts[1:], strict=False):
        cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), 10, 6, cv2.LINE_AA)
    cv2.ellipse(img, (200, 90), (60, 25), int(rng.integers(0, 180)), 0, 300, 10, 6, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def make_gpds_tree(root: Path, *, corrupt: bool = False) -> None:
    for u, user in enumerate(("001", "002")):
        for k in (1, 2):
            draw_signature(root / user / f"c-{user}-{k:02d}.png", seed=10 * u + k)
        draw_signature(root / user / f"cf-{user}-01.png", seed=10 * u + 5)
    (root / "README.txt").write_text("stray file")
    if corrupt:
        (root / "002" / "c-002-03.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated garbage")


def test_help_lists_subcommands(capsys) -> None:
    assert main(["--help"]) == 0  # returned, not raised: main(argv) is embeddable
    out = capsys.readouterr().out
    assert "datasets" in out and "preprocess" in out


def test_no_command_prints_help(capsys) -> None:
    assert main([]) == 2
    assert "datasets" in capsys.readouterr().out


def test_datasets_list(capsys) -> None:
    assert main(["datasets", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines]
    assert names == sorted(names) and "sigcomp2011" in names and "folder" in names
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)  # each has a description


def test_datasets_table_and_json(tmp_path: Path, capsys) -> None:
    make_gpds_tree(tmp_path)
    assert main(["datasets", "--dataset", "gpds", "--path", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].split() == ["user", "genuine", "skilled", "simple"]
    assert [line.split() for line in lines if line.startswith("00")] == [
        ["001", "2", "1", "0"],
        ["002", "2", "1", "0"],
    ]
    assert [line.split() for line in lines if line.startswith("total")] == [
        ["total", "4", "2", "0"]
    ]
    assert "2 users, 6 images" in out
    assert "1 unmatched file(s) ignored: README.txt" in out

    assert main(["datasets", "-d", "gpds", "-p", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n_users"] == 2 and data["n_samples"] == 6
    assert data["totals"] == {"genuine": 4, "skilled": 2, "simple": 0}
    assert data["users"][1] == {"user": "002", "genuine": 2, "skilled": 1, "simple": 0}
    assert data["unmatched"] == {"count": 1, "examples": ["README.txt"]}


def test_datasets_needs_dataset_and_path(caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="sigver"):
        assert main(["datasets"]) == 2
    assert "--dataset" in caplog.text


def test_unknown_dataset_exits_2_with_message(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="sigver"):
        assert main(["datasets", "--dataset", "imaginary", "--path", str(tmp_path)]) == 2
        assert main(["preprocess", "-d", "imaginary", "-p", str(tmp_path), "-o", "x.npz"]) == 2
    assert caplog.text.count("unknown dataset 'imaginary'") == 2
    assert "sigcomp2011" in caplog.text


def test_missing_path_exits_2(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="sigver"):
        assert main(["datasets", "-d", "gpds", "-p", str(tmp_path / "nope")]) == 2
    assert "does not exist" in caplog.text


def test_preprocess_skips_corrupt_file(tmp_path: Path, capsys, caplog) -> None:
    data = tmp_path / "data"
    make_gpds_tree(data, corrupt=True)
    out = tmp_path / "cache" / "gpds.npz"
    with caplog.at_level(logging.WARNING, logger="sigver"):
        code = main(
            ["preprocess", "-d", "gpds", "-p", str(data), "-o", str(out), "--jobs", "1",
             "--canvas", "300", "500", "--no-progress"]
        )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "6 images of 2 users" in printed
    assert "skipped 1 unreadable image(s)" in printed
    assert "002/c-002-03.png" in printed
    assert "c-002-03.png" in caplog.text  # also a warning

    with np.load(out, allow_pickle=False) as raw:
        assert raw["x"].shape == (6, 1, 170, 242)
        assert raw["x"].dtype == np.uint8
    cache = load_cache(out)
    assert cache.user_ids.tolist() == ["001", "002"]
    assert cache.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert cache.yforg.tolist() == [0, 0, 1, 0, 0, 1]
    assert cache.filenames.tolist() == [
        "001/c-001-01.png",
        "001/c-001-02.png",
        "001/cf-001-01.png",
        "002/c-002-01.png",
        "002/c-002-02.png",
        "002/cf-002-01.png",
    ]
    assert cache.canvas_size == (300, 500)
    assert cache.dataset == "gpds"
    assert [name for name, _ in cache.meta["skipped"]] == ["002/c-002-03.png"]
    assert cache.meta["unmatched"] == 1
    # Drawn strokes survive preprocessing: ink (high values) in every image, background 0.
    assert (cache.x.reshape(6, -1).max(axis=1) > 100).all()
    assert (cache.x[:, 0, 0, 0] == 0).all()


def test_preprocess_fails_when_nothing_is_readable(tmp_path: Path, caplog) -> None:
    data = tmp_path / "data"
    (data / "001").mkdir(parents=True)
    (data / "001" / "c-001-01.png").write_bytes(b"not an image")
    out = tmp_path / "c.npz"
    with caplog.at_level(logging.ERROR, logger="sigver"):
        code = main(["preprocess", "-d", "gpds", "-p", str(data), "-o", str(out), "-j", "1"])
    assert code == 2
    assert "none of the 1 image(s)" in caplog.text
    assert not out.exists()


def test_load_signatures_from_folder_matches_cache(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_gpds_tree(data)
    out = tmp_path / "c.npz"
    argv = ["preprocess", "-d", "gpds", "-p", str(data), "-o", str(out), "-j", "1"]
    assert main([*argv, "--no-progress"]) == 0
    from_cache = load_signatures(None, out)
    on_the_fly = load_signatures("gpds", data, n_jobs=1, progress=False)
    np.testing.assert_array_equal(from_cache.x, on_the_fly.x)
    assert from_cache.filenames.tolist() == on_the_fly.filenames.tolist()
    assert from_cache.canvas_size == on_the_fly.canvas_size == (952, 1360)


def test_bad_arguments_and_unwritable_outputs_return_2(tmp_path, capsys, caplog) -> None:
    assert main(["verify"]) == 2  # missing required arguments: argparse's message, no raise
    assert "required" in capsys.readouterr().err
    assert main(["evaluate", "--folds", "abc"]) == 2
    data = tmp_path / "data" / "001"
    data.mkdir(parents=True)
    from enrollment.testing import draw_signature, encode_png

    for s in range(2):
        (data / f"c-001-{s:02d}.png").write_bytes(encode_png(draw_signature(1, s)))
    blocker = tmp_path / "afile"
    blocker.write_text("")
    out = blocker / "x.npz"  # a folder that is a file
    caplog.clear()
    code = main(
        ["preprocess", "-d", "gpds", "-p", str(tmp_path / "data"), "-o", str(out), "-j", "1"]
    )
    assert code == 2 and "afile" in caplog.text
    caplog.clear()
    # evaluate says so before it extracts or scores anything
    code = main(["evaluate", "--features", str(tmp_path / "f.npz"), "--out", str(blocker)])
    assert code == 2 and "is a file, not a folder" in caplog.text


def test_corrupt_feature_files_are_dataset_errors(tmp_path) -> None:
    from sigver.errors import DatasetError
    from sigver.featureset import load_features

    bad = tmp_path / "c.npz"
    bad.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DatasetError, match="not a readable"):
        load_features(bad)


def test_binary_sha256_sidecar_is_a_model_error(tmp_path) -> None:
    from sigver._meta import sha256_sidecar
    from sigver.errors import ModelError

    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"x")
    sha256_sidecar(ckpt).write_bytes(b"\xff\xfe\x00binary")
    from sigver import _meta

    with pytest.raises(ModelError, match="not a sha256 line"):
        _meta.read_sidecar(ckpt)

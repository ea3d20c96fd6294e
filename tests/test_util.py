"""sigver._util: atomic writes, strict JSON, npz meta, machine description."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from sigver._util import (
    atomic_open,
    atomic_write,
    command_line,
    decode_meta,
    encode_meta,
    format_machine_info,
    json_safe,
    machine_info,
    str_vector,
    to_strict_json,
    write_json,
    write_png,
)
from sigver.errors import DatasetError


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    assert atomic_write(target, "first\r\n") == target
    assert target.read_bytes() == b"first\r\n"  # no newline translation
    atomic_write(target, b"\x00second")
    assert target.read_bytes() == b"\x00second"
    assert _listing(tmp_path) == ["a.txt"]  # no temporary file left behind


def test_atomic_write_uses_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "p.bin", b"x")
    finally:
        os.umask(old)
    # mkstemp would have given 0600; a plain open() gives 0666 & ~umask.
    assert (tmp_path / "p.bin").stat().st_mode & 0o777 == 0o640


def test_atomic_open_error_keeps_old_content_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "data.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_open(target, "w") as fh:
        fh.write("half-written new content")
        # The destination is untouched while the block runs.
        assert target.read_text() == "old"
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert _listing(tmp_path) == ["data.json"]


def test_atomic_open_error_on_new_file_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_open(tmp_path / "new.bin") as fh:
        fh.write(b"abc")
        raise KeyboardInterrupt
    assert _listing(tmp_path) == []


def test_atomic_open_text_and_binary_modes(tmp_path: Path) -> None:
    with atomic_open(tmp_path / "t.txt", "w", fsync=False) as fh:
        fh.write("é")
    assert (tmp_path / "t.txt").read_bytes() == "é".encode()
    with atomic_open(tmp_path / "arr.npz", "wb") as fh:
        np.savez(fh, a=np.arange(3))
    # savez on a file object writes exactly there (no ".npz" appended).
    assert _listing(tmp_path) == ["arr.npz", "t.txt"]
    with np.load(tmp_path / "arr.npz") as npz:
        np.testing.assert_array_equal(npz["a"], [0, 1, 2])
    with pytest.raises(ValueError, match="modes"), atomic_open(tmp_path / "x", "a"):
        pass


def test_json_safe_converts_non_finite_and_numpy_values() -> None:
    data = {
        "nan": float("nan"),
        "inf": [float("inf"), -math.inf, 0.5],
        "np": (np.float32(np.nan), np.float64(0.25), np.int64(3), np.bool_(True)),
        "nested": {"ok": 1, "s": "NaN", "none": None},
    }
    out = json_safe(data)
    assert out == {
        "nan": None,
        "inf": [None, None, 0.5],
        "np": [None, 0.25, 3, True],
        "nested": {"ok": 1, "s": "NaN", "none": None},
    }
    assert type(out["np"][2]) is int and type(out["np"][3]) is bool
    assert math.isnan(data["nan"])  # the input is not modified


def _refuse_constant(name: str) -> None:
    raise AssertionError(f"non-JSON constant {name}")


def test_strict_json_never_writes_nan_tokens(tmp_path: Path) -> None:
    data = {"EER": float("nan"), "AUC": 0.9}
    text = to_strict_json(data)
    assert "NaN" not in text
    assert json.loads(text, parse_constant=_refuse_constant) == {"EER": None, "AUC": 0.9}
    path = write_json(tmp_path / "r.json", data)
    assert path.read_text().endswith("}\n")
    assert json.loads(path.read_text(), parse_constant=_refuse_constant)["EER"] is None


def test_meta_round_trip_and_errors() -> None:
    raw = encode_meta({"b": 1, "a": [1, 2]})
    assert raw.shape == (1,) and raw.dtype.kind == "U"
    assert str(raw[0]) == '{"a": [1, 2], "b": 1}'  # sorted keys: stable files
    assert decode_meta(raw, kind="cache", max_version=1) == {"a": [1, 2], "b": 1}
    with pytest.raises(DatasetError, match="JSON-serialisable"):
        encode_meta({"x": object()})
    with pytest.raises(DatasetError, match="one-element"):
        decode_meta(None, kind="cache", max_version=1)
    with pytest.raises(DatasetError, match="not valid JSON"):
        decode_meta(np.array(["{"]), kind="cache", max_version=1)
    with pytest.raises(DatasetError, match="must be an object"):
        decode_meta(np.array(["[1]"]), kind="cache", max_version=1)
    with pytest.raises(DatasetError, match="feature format version 3 is newer"):
        decode_meta(np.array(['{"format_version": 3}']), kind="feature", max_version=2)


def test_str_vector() -> None:
    out = str_vector(np.array(["a", "bb"], dtype=object), "ids")
    assert out.dtype.kind == "U" and out.tolist() == ["a", "bb"]
    assert str_vector(np.array([], dtype=object), "ids").dtype.kind == "U"
    with pytest.raises(DatasetError, match="'ids' must hold strings"):
        str_vector(np.array([1, 2]), "ids")
    with pytest.raises(DatasetError, match="1-D"):
        str_vector(np.array([["a"]]), "ids")


def test_write_png_is_a_valid_png(tmp_path: Path) -> None:
    img = np.zeros((4, 6), np.uint8)
    path = write_png(tmp_path / "x.png", img)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _listing(tmp_path) == ["x.png"]


def test_machine_info_is_json_and_formats() -> None:
    info = machine_info()
    assert info["cpu_count"] == os.cpu_count()
    assert {"platform", "python", "cpu", "numpy", "opencv", "load_average"} <= set(info)
    assert "torch" not in info  # torch only on request (slow import)
    json.dumps(info, allow_nan=False)
    text = format_machine_info(info)
    assert f"({os.cpu_count()} logical cores)" in text
    assert f"python {info['python']}" in text
    fake = {**info, "load_average": None, "torch": "9.9", "torch_threads": 3}
    assert "load average n/a" in format_machine_info(fake)
    assert "torch 9.9 (3 threads)" in format_machine_info(fake)


def test_command_line_quotes_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["script.py", "--out", "a b"])
    assert command_line().endswith("script.py --out 'a b'")

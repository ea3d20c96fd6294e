"""Signature caches: round trip without pickle, reference format, validation, selections."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from sigver import __version__
from sigver.cache import SignatureCache, load_cache, load_signatures, save_cache
from sigver.errors import DatasetError


def toy_cache(n_per_user: int = 2) -> SignatureCache:
    """Three users (001, 002, 038), each with genuine + skilled, user 002 also simple."""
    rows = []  # (user index, label)
    for u in range(3):
        rows += [(u, 0)] * n_per_user + [(u, 1)]
    rows.append((1, 2))
    n = len(rows)
    x = np.zeros((n, 1, 170, 242), dtype=np.uint8)
    for i in range(n):
        x[i, 0, i, :] = 255  # one distinct ink row per image, to check ordering survives
    return SignatureCache(
        x=x,
        y=np.array([r[0] for r in rows]),
        yforg=np.array([r[1] for r in rows]),
        user_ids=np.array(["001", "002", "038"]),
        filenames=np.array([f"{i:02d}.png" for i in range(n)]),
        meta={"dataset": "sigcomp2011", "canvas_size": [840, 1360]},
    )


def test_round_trip_is_pickle_free(tmp_path: Path) -> None:
    cache = toy_cache()
    out = save_cache(tmp_path / "sub" / "c.npz", cache)
    assert out == tmp_path / "sub" / "c.npz"
    assert sorted(p.name for p in out.parent.iterdir()) == ["c.npz"]  # no temp file left

    with np.load(out, allow_pickle=False) as raw:
        assert sorted(raw.files) == ["filenames", "meta", "user_ids", "x", "y", "yforg"]
        for key in raw.files:
            assert raw[key].dtype != object, key
        assert raw["x"].shape == (10, 1, 170, 242) and raw["x"].dtype == np.uint8
        assert raw["user_ids"].dtype.kind == "U"
        assert raw["filenames"].dtype.kind == "U"
        meta = json.loads(str(raw["meta"][0]))
    assert meta["dataset"] == "sigcomp2011"
    assert meta["canvas_size"] == [840, 1360]
    assert meta["sigver_version"] == __version__

    back = load_cache(out)
    np.testing.assert_array_equal(back.x, cache.x)
    np.testing.assert_array_equal(back.y, cache.y)
    np.testing.assert_array_equal(back.yforg, cache.yforg)
    assert back.user_ids.tolist() == ["001", "002", "038"]
    assert back.filenames.tolist() == cache.filenames.tolist()
    assert back.dataset == "sigcomp2011"
    assert back.canvas_size == (840, 1360)
    assert back.img_size == (170, 242)
    assert len(back) == 10


def test_save_overwrites_atomically(tmp_path: Path) -> None:
    out = tmp_path / "c.npz"
    save_cache(out, toy_cache(n_per_user=1))
    save_cache(out, toy_cache(n_per_user=2))
    assert len(load_cache(out)) == 10
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]


def test_counts_and_users() -> None:
    cache = toy_cache()
    assert cache.counts() == {"001": (2, 1, 0), "002": (2, 1, 1), "038": (2, 1, 0)}
    assert cache.users.tolist()[:4] == ["001", "001", "001", "002"]


def test_selection_helpers() -> None:
    cache = toy_cache()
    dev = cache.users_between("001", "037")
    assert dev == ["001", "002"]
    dev_cache = cache.select(users=dev)
    assert dev_cache.counts() == {"001": (2, 1, 0), "002": (2, 1, 1)}
    # user_ids are kept so y means the same thing in every subset.
    assert dev_cache.user_ids.tolist() == ["001", "002", "038"]

    rest = cache.select(exclude_users=dev)
    assert rest.counts() == {"038": (2, 1, 0)}
    genuine_dev = cache.select(users=["001", "002", "999"], labels=[0])
    assert genuine_dev.yforg.tolist() == [0, 0, 0, 0]
    assert genuine_dev.filenames.tolist() == ["00.png", "01.png", "03.png", "04.png"]
    assert cache.genuine().counts() == {"001": (2, 0, 0), "002": (2, 0, 0), "038": (2, 0, 0)}

    by_index = cache.subset([9, 0])
    assert by_index.filenames.tolist() == ["09.png", "00.png"]
    assert by_index.x[0, 0, 9].max() == 255 and by_index.x[1, 0, 0].max() == 255
    assert len(cache.subset(np.zeros(10, dtype=bool))) == 0
    with pytest.raises(DatasetError):
        cache.subset(np.ones(3, dtype=bool))
    with pytest.raises(DatasetError):
        cache.subset([10])
    with pytest.raises(DatasetError):
        cache.label_mask([3])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"x": np.zeros((2, 2, 5, 5), np.uint8)}, r"shape \(N, 1, H, W\)"),
        ({"x": np.zeros((2, 1, 5, 5), np.float32)}, "uint8"),
        ({"y": np.array([0])}, r"'y' must have shape \(2,\)"),
        ({"y": np.array([0, 2])}, "y must index user_ids"),
        ({"yforg": np.array([0, 3])}, r"yforg must be 0, 1 or 2; got \[3\]"),
        ({"filenames": np.array(["a"])}, "filenames has 1 entries for 2 images"),
        ({"user_ids": np.array(["a", "a"])}, "duplicates"),
        ({"y": np.array([0.5, 1.0])}, "must hold integers"),
    ],
)
def test_validation(change: dict, match: str) -> None:
    args = {
        "x": np.zeros((2, 1, 5, 5), np.uint8),
        "y": np.array([0, 1]),
        "yforg": np.array([0, 1]),
        "user_ids": np.array(["a", "b"]),
        "filenames": np.array(["f1", "f2"]),
    }
    args.update(change)
    with pytest.raises(DatasetError, match=match):
        SignatureCache(**args)


def test_three_dim_x_gets_a_channel_and_object_strings_become_unicode() -> None:
    cache = SignatureCache(
        x=np.zeros((2, 5, 5), np.uint8),
        y=[0, 0],
        yforg=[0, 1],
        user_ids=np.array(["a"], dtype=object),
        filenames=np.array(["f1", "f2"], dtype=object),
    )
    assert cache.x.shape == (2, 1, 5, 5)
    assert cache.user_ids.dtype.kind == "U" and cache.filenames.dtype.kind == "U"


# -- reference (luizgh/sigver) format -------------------------------------------------------


def write_reference(path: Path, *, channel: bool = True, object_filenames: bool = True) -> None:
    """An .npz laid out like luizgh/sigver's process_dataset output (pickled user_mapping)."""
    x = np.arange(4 * 170 * 242, dtype=np.uint32).astype(np.uint8).reshape(4, 170, 242)
    if channel:
        x = x[:, None]
    names = ["a/1.png", "a/2.png", "b/1.png", "b/f1.png"]
    np.savez(
        path,
        x=x,
        y=np.array([0, 0, 1, 1], dtype=np.int32),
        yforg=np.array([0, 0, 0, 1], dtype=np.int32),
        user_mapping={0: 12, 1: 40},  # a dict: numpy stores it as a pickled 0-d object array
        filenames=np.array(names, dtype=object) if object_filenames else np.array(names),
    )


def test_reference_format_refused_without_opt_in(tmp_path: Path, caplog) -> None:
    path = tmp_path / "ref.npz"
    write_reference(path)
    with pytest.raises(ValueError, match="allow_pickle"):
        np.load(path, allow_pickle=False)["user_mapping"]  # the file really needs pickle

    with caplog.at_level(logging.WARNING, logger="sigver.cache"):
        cache = load_cache(path)
    # Images and labels load; user ids fall back to the numbers in y, file names to placeholders.
    assert cache.x.shape == (4, 1, 170, 242)
    assert cache.user_ids.tolist() == ["0", "1"]
    assert cache.y.tolist() == [0, 0, 1, 1]
    assert cache.yforg.tolist() == [0, 0, 0, 1]
    assert cache.filenames.tolist() == ["#0", "#1", "#2", "#3"]
    assert "allow_pickle=True" in caplog.text and "--allow-pickle" in caplog.text
    assert cache.meta["format"] == "luizgh/sigver"


def test_reference_format_loaded_with_opt_in(tmp_path: Path) -> None:
    path = tmp_path / "ref.npz"
    write_reference(path, channel=False)
    cache = load_cache(path, allow_pickle=True)
    assert cache.x.shape == (4, 1, 170, 242)
    assert cache.user_ids.tolist() == ["12", "40"]
    assert cache.users.tolist() == ["12", "12", "40", "40"]
    assert cache.filenames.tolist() == ["a/1.png", "a/2.png", "b/1.png", "b/f1.png"]
    assert cache.user_ids.dtype.kind == "U"
    # Re-saving converts it to the pickle-free format.
    out = save_cache(tmp_path / "native.npz", cache)
    again = load_cache(out)
    assert again.user_ids.tolist() == ["12", "40"]


def test_reference_unicode_filenames_need_no_pickle(tmp_path: Path) -> None:
    path = tmp_path / "ref.npz"
    write_reference(path, object_filenames=False)
    cache = load_cache(path)
    assert cache.filenames.tolist() == ["a/1.png", "a/2.png", "b/1.png", "b/f1.png"]


def test_reference_with_pickled_labels_needs_opt_in(tmp_path: Path) -> None:
    path = tmp_path / "ref.npz"
    np.savez(
        path,
        x=np.zeros((2, 1, 4, 4), np.uint8),
        y=np.array([0, 1], dtype=object),
        yforg=np.array([0, 0]),
    )
    with pytest.raises(
        DatasetError, match=r"'y' cannot be read without unpickling.*--allow-pickle"
    ):
        load_cache(path)
    assert load_cache(path, allow_pickle=True).user_ids.tolist() == ["0", "1"]


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x": np.zeros((2, 4, 4), np.float64), "y": [0, 1], "yforg": [0, 0]}, "uint8"),
        ({"x": np.zeros((2, 3, 4, 4), np.uint8), "y": [0, 1], "yforg": [0, 0]}, "shape"),
        ({"x": np.zeros((2, 4, 4), np.uint8), "y": [0, 1, 1], "yforg": [0, 0]}, r"shape \(2,\)"),
        ({"x": np.zeros((2, 4, 4), np.uint8), "y": [0, 1], "yforg": [0, 5]}, "0, 1 or 2"),
        ({"x": np.zeros((2, 4, 4), np.uint8), "yforg": [0, 0]}, "missing key 'y'"),
    ],
)
def test_reference_validation(tmp_path: Path, arrays: dict, match: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    with pytest.raises(DatasetError, match=match):
        load_cache(path)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_cache(tmp_path / "nope.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip")
    with pytest.raises(DatasetError, match="not a readable"):
        load_cache(junk)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(DatasetError, match="single array"):
        load_cache(single)


def test_native_meta_is_checked(tmp_path: Path) -> None:
    path = save_cache(tmp_path / "c.npz", toy_cache())
    # Rewrite with a future format version.
    with np.load(path) as raw:
        arrays = {k: raw[k] for k in raw.files}
    meta = json.loads(str(arrays["meta"][0]))
    meta["format_version"] = 99
    arrays["meta"] = np.array([json.dumps(meta)])
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match="newer"):
        load_cache(path)
    arrays["meta"] = np.array(["{not json"])
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_cache(path)


def test_truncated_cache_is_a_clear_error(tmp_path: Path) -> None:
    path = save_cache(tmp_path / "c.npz", toy_cache())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="c.npz"):
        load_cache(path)


def test_load_signatures_from_cache(tmp_path: Path) -> None:
    path = save_cache(tmp_path / "c.npz", toy_cache())
    assert len(load_signatures(None, path)) == 10
    assert len(load_signatures("SigComp2011", path)) == 10
    with pytest.raises(DatasetError, match="built from dataset 'sigcomp2011', not 'gpds'"):
        load_signatures("gpds", path)
    with pytest.raises(DatasetError, match="does not exist"):
        load_signatures(None, tmp_path / "missing.npz")
    with pytest.raises(DatasetError, match="pass --dataset"):
        load_signatures(None, tmp_path)


@pytest.mark.slow
def test_preprocess_real_sigcomp(sigcomp_path: Path, tmp_path: Path) -> None:
    from sigver.cache import build_cache

    cache = build_cache("sigcomp2011", sigcomp_path, n_jobs=2, progress=False)
    assert len(cache) == 1649
    assert cache.meta["skipped"] == []
    assert len(cache.user_ids) == 64
    assert len(cache.users_between("001", "037")) == 32
    out = save_cache(tmp_path / "sigcomp.npz", cache)
    back = load_cache(out)
    assert back.counts() == cache.counts()
    assert back.filenames[0] == "001/001_01.png"


def test_data_arguments_allow_pickle_opt_in(tmp_path: Path, caplog) -> None:
    import argparse

    from sigver.cache import add_data_arguments, data_from_args

    path = tmp_path / "ref.npz"
    write_reference(path)
    parser = argparse.ArgumentParser()
    add_data_arguments(parser)
    plain = data_from_args(parser.parse_args(["--data", str(path)]))
    assert plain.user_ids.tolist() == ["0", "1"]
    with caplog.at_level(logging.WARNING, logger="sigver.cache"):
        trusted = data_from_args(parser.parse_args(["--data", str(path), "--allow-pickle"]))
    assert trusted.user_ids.tolist() == ["12", "40"]
    assert "arbitrary code" in caplog.text

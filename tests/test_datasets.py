"""Dataset readers: naming conventions, ordering, unmatched files, manifests, real data."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from sigver.datasets import (
    BHSig260Reader,
    DatasetReader,
    Sample,
    available_readers,
    get_reader,
    natural_key,
    parse_label,
    register_reader,
)
from sigver.errors import DatasetError

DUMMY = np.full((4, 6), 255, dtype=np.uint8)


def touch_images(root: Path, names: list[str]) -> None:
    """Write a tiny real image at each relative path (readers only look at names)."""
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        # cv2 picks the encoder from the extension; it only knows lower-case ones.
        tmp = path.with_suffix(path.suffix.lower())
        assert cv2.imwrite(str(tmp), DUMMY), name
        tmp.rename(path)


def touch_files(root: Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not an image")


def summary(result) -> list[tuple[str, str, int]]:
    """(relative path, user, label) for every sample, in scan order."""
    return [(s.path.relative_to(result.root).as_posix(), s.user, s.label) for s in result.samples]


def test_registry_lists_every_reader() -> None:
    assert available_readers() == [
        "bhsig260",
        "brazilian",
        "cedar",
        "folder",
        "gpds",
        "gpds-synthetic",
        "mcyt",
        "sigcomp2011",
    ]
    for name in available_readers():
        reader = get_reader(name)
        assert reader.name == name
        assert reader.description


def test_get_reader_is_case_insensitive_and_errors_list_names() -> None:
    assert get_reader("GPDS").name == "gpds"
    with pytest.raises(DatasetError) as info:
        get_reader("nope")
    message = str(info.value)
    assert "'nope'" in message
    for name in available_readers():
        assert name in message


def test_register_reader_refuses_duplicates() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_reader(BHSig260Reader())


def test_canvas_sizes_come_from_preprocessing() -> None:
    from sigver.preprocessing import CANVAS_SIZES

    assert get_reader("gpds-synthetic").canvas_size == tuple(CANVAS_SIZES["gpds-synthetic"])
    expected_sig = CANVAS_SIZES.get("sigcomp2011", CANVAS_SIZES["default"])
    assert get_reader("sigcomp2011").canvas_size == tuple(expected_sig)

    class Unknown(DatasetReader):
        name = "no-such-dataset-in-canvas-table"

        def classify(self, relpath):
            return None

    assert Unknown().canvas_size == tuple(CANVAS_SIZES["default"])


def test_natural_key_orders_numbers_numerically() -> None:
    assert sorted(["u10", "u2", "u1"], key=natural_key) == ["u1", "u2", "u10"]
    assert sorted(["B-010", "H-001", "B-002"], key=natural_key) == ["B-002", "B-010", "H-001"]


def test_sample_rejects_bad_label() -> None:
    with pytest.raises(DatasetError):
        Sample(Path("a.png"), "u", 3)
    with pytest.raises(DatasetError):
        Sample(Path("a.png"), "", 0)


def test_gpds_mixed_case_extensions_and_strays(tmp_path: Path, caplog) -> None:
    touch_images(
        tmp_path,
        [
            "002/c-002-01.PNG",
            "002/cf-002-01.Jpg",
            "001/c-001-02.tif",
            "001/c-001-01.png",
            "001/cf-001-01.jpeg",
            "001/CF-001-02.bmp",
        ],
    )
    touch_files(tmp_path, ["README.txt", "001/Thumbs.db", "002/.DS_Store", "001/c-001-03.txt"])
    # An image that follows no rule is reported too.
    touch_images(tmp_path, ["001/scan-001.png"])
    with caplog.at_level(logging.WARNING, logger="sigver.datasets"):
        result = get_reader("gpds").scan(tmp_path)
    assert summary(result) == [
        ("001/c-001-01.png", "001", 0),
        ("001/c-001-02.tif", "001", 0),
        ("001/cf-001-01.jpeg", "001", 1),
        ("001/CF-001-02.bmp", "001", 1),
        ("002/c-002-01.PNG", "002", 0),
        ("002/cf-002-01.Jpg", "002", 1),
    ]
    assert [p.relative_to(tmp_path).as_posix() for p in result.unmatched] == [
        "001/c-001-03.txt",
        "001/scan-001.png",
        "001/Thumbs.db",
        "002/.DS_Store",
        "README.txt",
    ]
    assert result.counts() == {"001": (2, 2, 0), "002": (1, 1, 0)}
    assert result.users == ["001", "002"]
    assert "5 file(s)" in caplog.text and "README.txt" in caplog.text


def test_gpds_synthetic_same_names_other_reader(tmp_path: Path) -> None:
    touch_images(tmp_path, ["001/c-001-01.jpg", "001/cf-001-01.jpg", "010/c-010-01.jpg"])
    result = get_reader("gpds-synthetic").scan(tmp_path)
    # Natural order: user 001 before 010 regardless of padding.
    assert summary(result) == [
        ("001/c-001-01.jpg", "001", 0),
        ("001/cf-001-01.jpg", "001", 1),
        ("010/c-010-01.jpg", "010", 0),
    ]


def test_mcyt(tmp_path: Path) -> None:
    touch_images(
        tmp_path,
        ["0000/0000v00.bmp", "0000/0000f01.BMP", "0001/0001v00.bmp", "0001/0001V01.bmp"],
    )
    touch_files(tmp_path, ["0001/0001x00.bmp"])
    result = get_reader("mcyt").scan(tmp_path)
    assert summary(result) == [
        ("0000/0000v00.bmp", "0000", 0),
        ("0000/0000f01.BMP", "0000", 1),
        ("0001/0001v00.bmp", "0001", 0),
        ("0001/0001V01.bmp", "0001", 0),
    ]
    assert [p.name for p in result.unmatched] == ["0001x00.bmp"]


@pytest.mark.parametrize("split", [True, False], ids=["full_org+full_forg", "one-folder"])
def test_cedar_both_layouts(tmp_path: Path, split: bool) -> None:
    names = ["original_1_1.png", "original_1_2.png", "forgeries_1_1.png", "original_10_1.PNG"]
    if split:
        names = [("full_forg/" if n.startswith("forg") else "full_org/") + n for n in names]
    touch_images(tmp_path, names)
    touch_files(tmp_path, ["full_org/Thumbs.db" if split else "Thumbs.db"])
    result = get_reader("cedar").scan(tmp_path)
    got = [(Path(p).name, u, lab) for p, u, lab in summary(result)]
    assert got == [
        ("original_1_1.png", "1", 0),
        ("original_1_2.png", "1", 0),
        ("forgeries_1_1.png", "1", 1),
        ("original_10_1.PNG", "10", 0),
    ]
    assert [p.name for p in result.unmatched] == ["Thumbs.db"]


def test_brazilian_number_ranges(tmp_path: Path) -> None:
    touch_images(
        tmp_path,
        [
            "a001/a001_01.bmp",
            "a001/a001_40.bmp",
            "a001/a001_41.bmp",
            "a001/a001_50.BMP",
            "a001/a001_51.bmp",
            "a001/a001_60.bmp",
            "a001/a001_61.bmp",
            "a001/a001_00.bmp",
            "a002/a002_05.jpg",
        ],
    )
    result = get_reader("brazilian").scan(tmp_path)
    assert [(Path(p).name, u, lab) for p, u, lab in summary(result)] == [
        ("a001_01.bmp", "001", 0),
        ("a001_40.bmp", "001", 0),
        ("a001_51.bmp", "001", 1),
        ("a001_60.bmp", "001", 1),
        ("a001_41.bmp", "001", 2),
        ("a001_50.BMP", "001", 2),
        ("a002_05.jpg", "002", 0),
    ]
    assert sorted(p.name for p in result.unmatched) == ["a001_00.bmp", "a001_61.bmp"]
    assert result.counts() == {"001": (2, 2, 2), "002": (1, 0, 0)}


def test_bhsig260_keeps_scripts_apart(tmp_path: Path) -> None:
    touch_images(
        tmp_path,
        [
            "BHSig260/Bengali/1/B-S-1-G-01.tif",
            "BHSig260/Bengali/1/B-S-1-F-01.tif",
            "BHSig260/Bengali/2/B-S-2-G-01.TIF",
            "BHSig260/Hindi/1/H-S-1-G-01.tif",
            "BHSig260/Hindi/1/H-S-1-G-02.tiff",
            "BHSig260/Hindi/1/H-S-1-F-01.tif",
        ],
    )
    touch_files(tmp_path, ["BHSig260/Hindi/1/list.txt"])
    result = get_reader("bhsig260").scan(tmp_path / "BHSig260")
    assert [(Path(p).name, u, lab) for p, u, lab in summary(result)] == [
        ("B-S-1-G-01.tif", "B-001", 0),
        ("B-S-1-F-01.tif", "B-001", 1),
        ("B-S-2-G-01.TIF", "B-002", 0),
        ("H-S-1-G-01.tif", "H-001", 0),
        ("H-S-1-G-02.tiff", "H-001", 0),
        ("H-S-1-F-01.tif", "H-001", 1),
    ]
    assert result.counts() == {"B-001": (1, 1, 0), "B-002": (1, 0, 0), "H-001": (2, 1, 0)}
    assert len(result.unmatched) == 1


def test_sigcomp2011_both_name_orders_and_folder_check(tmp_path: Path) -> None:
    touch_images(
        tmp_path,
        [
            "001/001_01.png",
            "001/001_02.PNG",
            "001_forg/0119001_01.png",
            "038/01_038.png",
            "038_forg/01_0101038.png",
            # Writer 002's genuine file dropped in writer 001's folder: not trusted.
            "001/002_01.png",
            # A genuine-looking name inside a forgery folder: not trusted either.
            "038_forg/02_038.png",
        ],
    )
    result = get_reader("sigcomp2011").scan(tmp_path)
    assert summary(result) == [
        ("001/001_01.png", "001", 0),
        ("001/001_02.PNG", "001", 0),
        ("001_forg/0119001_01.png", "001", 1),
        ("038/01_038.png", "038", 0),
        ("038_forg/01_0101038.png", "038", 1),
    ]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in result.unmatched) == [
        "001/002_01.png",
        "038_forg/02_038.png",
    ]


def test_scan_is_deterministic(tmp_path: Path) -> None:
    touch_images(tmp_path, [f"{u:03d}/c-{u:03d}-{k:02d}.png" for u in (3, 1, 2) for k in (2, 1)])
    first = get_reader("gpds").scan(tmp_path)
    second = get_reader("gpds").scan(tmp_path)
    assert first == second
    assert [s.user for s in first.samples] == ["001", "001", "002", "002", "003", "003"]


def test_missing_path_and_empty_folder_are_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        get_reader("gpds").scan(tmp_path / "missing")
    touch_files(tmp_path, ["notes.txt"])
    touch_images(tmp_path, ["scan.png"])
    with pytest.raises(DatasetError, match=r"no gpds signatures.*2 unrecognised.*notes.txt"):
        get_reader("gpds").scan(tmp_path)
    with pytest.raises(DatasetError, match="expected a folder"):
        get_reader("gpds").scan(tmp_path / "notes.txt")


# -- folder (manifest) reader -----------------------------------------------------------


def write_manifest(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_folder_manifest(tmp_path: Path) -> None:
    touch_images(tmp_path, ["alice/1.png", "alice/f1.png", "bob/1.png", "bob/s1.png"])
    manifest = write_manifest(
        tmp_path / "manifest.csv",
        "path,user,label,note\n"
        "bob/s1.png,bob,SIMPLE,x\n"
        "alice/f1.png,alice,skilled,\n"
        "\n"
        "alice/1.png, alice ,genuine,\n"
        "bob/1.png,bob,0,\n",
    )
    for target in (manifest, tmp_path):  # the CSV itself or its folder
        result = get_reader("folder").scan(target)
        assert summary(result) == [
            ("alice/1.png", "alice", 0),
            ("alice/f1.png", "alice", 1),
            ("bob/1.png", "bob", 0),
            ("bob/s1.png", "bob", 2),
        ]
        assert result.unmatched == []


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("a.png,u,genuine\n", r"line 1: header must contain path,user,label"),
        ("path,user\na.png,u\n", r"missing label"),
        ("path,user,label\na.png,u,genuine\nb.png,u,forged\n", r"line 3: .*unknown label 'forged'"),
        ("path,user,label\na.png,,genuine\n", r"line 2: empty or missing 'user'"),
        ("path,user,label\na.png,u,genuine\nmissing.png,u,1\n", r"line 3: file not found"),
        ("path,user,label\na.png,u,0\na.png,v,1\n", r"line 3: a.png is already listed on line 2"),
        ("path,user,label\na.png,u,0,extra\n", r"line 2: more fields"),
        ("path,user,label\n", r"no folder signatures"),
    ],
)
def test_folder_manifest_bad_rows(tmp_path: Path, body: str, match: str) -> None:
    touch_images(tmp_path, ["a.png"])
    manifest = write_manifest(tmp_path / "list.csv", body)
    with pytest.raises(DatasetError, match=match):
        get_reader("folder").scan(manifest)


def test_folder_manifest_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="manifest not found"):
        get_reader("folder").scan(tmp_path)


def test_parse_label() -> None:
    assert [parse_label(v) for v in ("genuine", " Skilled", "simple", "0", "1", "2")] == [
        0,
        1,
        2,
        0,
        1,
        2,
    ]
    with pytest.raises(DatasetError):
        parse_label("3")


# -- real data -------------------------------------------------------------------------


def test_sigcomp2011_real_data(sigcomp_path: Path) -> None:
    result = get_reader("sigcomp2011").scan(sigcomp_path)
    counts = result.counts()
    assert len(counts) == 64
    assert len(result.samples) == 1649
    assert result.unmatched == []
    big = {"001", "002", "003", "004", "006", "009", "012", "014", "015"}
    for user, (genuine, skilled, simple) in counts.items():
        expected = 24 if user in big else 23 if user == "016" else 12
        assert genuine == expected, user
        assert 8 <= skilled <= 20, user
        assert simple == 0
    assert result.users[:5] == ["001", "002", "003", "004", "006"]
    assert result.users[-1] == "069"
    assert sum(c[0] for c in counts.values()) == 887
    assert sum(c[1] for c in counts.values()) == 762


def test_linked_user_folders_are_read_once(tmp_path: Path) -> None:
    real = tmp_path / "real"
    touch_images(real, ["001/c-001-01.png", "001/c-001-02.png"])
    data = tmp_path / "data"
    touch_images(data, ["002/c-002-01.png"])
    (data / "001").symlink_to(real / "001", target_is_directory=True)
    (data / "002" / "loop").symlink_to(data, target_is_directory=True)  # a cycle
    result = get_reader("gpds").scan(data)
    assert sorted({s.user for s in result.samples}) == ["001", "002"]
    assert len(result.samples) == 3  # the loop is not walked again


def test_gif_files_are_not_taken_for_signatures(tmp_path: Path) -> None:
    touch_images(tmp_path, ["001/c-001-01.png"])
    (tmp_path / "001" / "c-001-02.gif").write_bytes(b"GIF89a")
    result = get_reader("gpds").scan(tmp_path)
    assert [s.path.name for s in result.samples] == ["c-001-01.png"]


def test_a_manifest_cannot_list_one_file_twice_under_two_spellings(tmp_path: Path) -> None:
    touch_images(tmp_path, ["a.png", "sub/b.png"])
    # sub/../a.png is a.png: it must not be read as genuine and as a skilled forgery.
    manifest = write_manifest(
        tmp_path / "list.csv", "path,user,label\na.png,u,0\nsub/../a.png,u,1\n"
    )
    with pytest.raises(DatasetError, match=r"line 3: sub/../a.png is already listed on line 2"):
        get_reader("folder").scan(manifest)

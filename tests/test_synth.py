"""Tests for the synthetic signature generator (sigver.synth, ``sigver synth``)."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from sigver.cli import main
from sigver.synth import (
    SynthError,
    generate_corpus,
    generate_writer,
    make_writer,
    preview_sheet,
    render_forgery,
    render_genuine,
    sample_rngs,
    save_preview,
)
from sigver.synth import geometry as geo
from sigver.synth.model import STEP, _plan
from sigver.synth.render import MAX_SIZE

# ----------------------------------------------------------------------------- helpers


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def _descriptor(img: np.ndarray) -> np.ndarray:
    """Fixed, non-learned descriptor: 8-bin gradient-orientation energy on an 8 x 12 grid.

    Computed on the SigNet-preprocessed image (GPDS-synthetic canvas), i.e. on
    exactly what a network trained on this corpus would see.
    """
    from sigver.preprocessing import CANVAS_SIZES, preprocess_signature

    x = preprocess_signature(img, CANVAS_SIZES["gpds-synthetic"]).astype(np.float32) / 255.0
    gx = cv2.Sobel(x, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(x, cv2.CV_32F, 0, 1)
    mag = np.hypot(gx, gy)
    bins = np.minimum((np.mod(np.arctan2(gy, gx), np.pi) / np.pi * 8).astype(int), 7)
    d = np.stack(
        [cv2.resize(mag * (bins == k), (12, 8), interpolation=cv2.INTER_AREA) for k in range(8)]
    ).ravel()
    return d / (np.linalg.norm(d) + 1e-9)


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Mann-Whitney AUC (ties count one half)."""
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


N_WRITERS, N_GEN, N_FORG = 24, 3, 2


@pytest.fixture(scope="module")
def sample_set() -> dict[str, list[list[np.ndarray]]]:
    """A small in-memory corpus: 24 writers x (3 genuine + 2 forgeries)."""
    genuine, forgeries = [], []
    for w in range(N_WRITERS):
        _, g, f = generate_writer(11, w, N_GEN, N_FORG)
        genuine.append(g)
        forgeries.append(f)
    return {"genuine": genuine, "forgeries": forgeries}


# ----------------------------------------------------------------------------- geometry


def test_resample_uniform_and_keeps_ends() -> None:
    line = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    out = geo.resample(line, 0.1)
    steps = np.hypot(*np.diff(out, axis=0).T)
    assert np.allclose(steps, 0.1)  # total length 2.0 -> 21 points exactly 0.1 apart
    assert len(out) == 21
    assert np.allclose(out[0], line[0]) and np.allclose(out[-1], line[-1])
    dot = geo.resample(np.array([[2.0, 3.0]]), 0.1)
    assert dot.shape == (2, 2)


def test_gaussian_smooth_keeps_straight_lines() -> None:
    # Odd reflection at the ends: a straight, uniformly sampled line is a fixed point.
    line = np.column_stack([np.linspace(0, 1, 50), np.linspace(0, 2, 50)])
    assert np.allclose(geo.gaussian_smooth(line, 4.0), line)
    zigzag = np.column_stack([np.arange(40.0), np.tile([0.0, 1.0], 20)])
    assert geo.gaussian_smooth(zigzag, 3.0)[5:-5, 1].std() < 0.05


def test_catmull_rom_interpolates_nodes() -> None:
    nodes = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    curve = geo.catmull_rom(nodes, 0.05)
    for node in nodes:
        assert np.hypot(*(curve - node).T).min() < 1e-9
    # Centripetal splines stay near the control polygon (no big overshoot).
    assert curve.min() > -0.25 and curve.max() < 1.25


def test_keypoints_find_the_corner() -> None:
    corner = geo.resample(np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]), 0.02)
    keys = geo.curvature_keypoints(corner, max_gap=1000)
    assert keys[0] == 0 and keys[-1] == len(corner) - 1
    inner = keys[1:-1]
    assert len(inner) >= 1 and np.abs(inner - 50).min() <= 2  # corner at sample 50


# ----------------------------------------------------------------------------- model


def test_same_font_and_name_still_differs_between_writers() -> None:
    # Two writers with the same text and font must not share a shape: the
    # per-writer glyph deformations make them separable.
    a = _plan(np.random.default_rng(1), "Anna Berg", "scripts", True, (), 3.0)
    b = _plan(np.random.default_rng(2), "Anna Berg", "scripts", True, (), 3.0)
    a2 = _plan(np.random.default_rng(1), "Anna Berg", "scripts", True, (), 3.0)
    assert all(np.array_equal(x, y) for x, y in zip(a, a2, strict=True))
    pa, pb = np.vstack(a), np.vstack(b)
    pa = geo.resample(pa - pa.mean(0), STEP)
    pb = geo.resample(pb - pb.mean(0), STEP)
    n = min(len(pa), len(pb))
    assert np.abs(pa[:n] - pb[:n]).mean() > 0.1  # cap heights


def test_render_api_returns_scans() -> None:
    writer = make_writer(3, 0)
    g = render_genuine(writer, *sample_rngs(3, 0, "genuine", 0))
    f = render_forgery(writer, *sample_rngs(3, 0, "forgery", 0))
    for img in (g, f):
        assert img.dtype == np.uint8 and img.ndim == 2
        assert img.shape[0] <= MAX_SIZE[0] and img.shape[1] <= MAX_SIZE[1]
        assert np.median(img) > 200  # light paper
        assert img.min() < 150  # dark ink
    # Same streams -> same image; the single-rng form works too.
    assert np.array_equal(g, render_genuine(writer, *sample_rngs(3, 0, "genuine", 0)))
    assert render_genuine(writer, np.random.default_rng(0)).ndim == 2


@pytest.mark.parametrize("bad", [{"seed": -1}, {"n_writers": 0}, {"n_genuine": 0}, {"n_jobs": 0}])
def test_generate_corpus_rejects_bad_arguments(tmp_path: Path, bad: dict) -> None:
    kwargs = {"n_writers": 1, "n_genuine": 1, "n_forgeries": 0, "seed": 0, "n_jobs": 1} | bad
    with pytest.raises(SynthError):
        generate_corpus(tmp_path / "c", **kwargs)


# ----------------------------------------------------------------------------- corpus


def test_corpus_is_deterministic_across_jobs(tmp_path: Path) -> None:
    a = generate_corpus(tmp_path / "a", 3, 3, 2, seed=4, n_jobs=1, progress=False)
    b = generate_corpus(tmp_path / "b", 3, 3, 2, seed=4, n_jobs=2, progress=False)
    c = generate_corpus(tmp_path / "c", 3, 3, 2, seed=5, n_jobs=2, progress=False)
    fa, fb, fc = _files(a.root), _files(b.root), _files(c.root)
    assert len(fa) == 15 and len(a.files) == 15
    assert fa == fb  # byte-identical whatever the number of workers
    assert fa.keys() == fc.keys()
    assert all(fa[k] != fc[k] for k in fa)  # another seed changes every image
    # The in-memory API yields exactly the written images.
    _, genuine, forgeries = generate_writer(4, 1, 3, 2)
    disk = cv2.imread(str(a.root / "002" / "cf-002-02.png"), cv2.IMREAD_UNCHANGED)
    assert disk.dtype == np.uint8 and disk.ndim == 2
    assert np.array_equal(disk, forgeries[1])


def test_gpds_reader_round_trip(tmp_path: Path) -> None:
    from sigver.datasets import get_reader

    generate_corpus(tmp_path, 3, 3, 2, seed=1, n_jobs=1, progress=False)
    result = get_reader("gpds").scan(tmp_path)
    assert not result.unmatched
    samples = sorted(result.samples, key=lambda s: s.path.name)
    assert len(samples) == 15
    assert sorted({s.user for s in samples}) == ["001", "002", "003"]
    for s in samples:
        expected = 1 if s.path.name.startswith("cf-") else 0
        assert s.label == expected
        assert s.path.parent.name == s.user and f"-{s.user}-" in s.path.name
    names = {s.path.name for s in samples if s.user == "002"}
    assert names == {f"c-002-0{i}.png" for i in (1, 2, 3)} | {"cf-002-01.png", "cf-002-02.png"}


# ----------------------------------------------------------------------------- CLI


def test_cli_writes_corpus_and_preview(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out, sheet = tmp_path / "corpus", tmp_path / "sheet.png"
    argv = ["synth", "--writers", "2", "--genuine", "2", "--forgeries", "1", "--seed", "3"]
    argv += ["--out", str(out), "--jobs", "1", "--preview", str(sheet), "--no-progress"]
    assert main(argv) == 0
    assert sorted(p.name for p in (out / "002").iterdir()) == [
        "c-002-01.png",
        "c-002-02.png",
        "cf-002-01.png",
    ]
    img = cv2.imread(str(sheet), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.ndim == 2 and img.shape[0] > 100
    assert "wrote 6 images" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--writers", "0"], "--writers must be >= 1"),
        (["--writers", "2", "--genuine", "-3"], "--genuine must be >= 1"),
        (["--writers", "2", "--forgeries", "-1"], "--forgeries must be >= 0"),
        (["--writers", "2", "--seed", "-5"], "--seed must be >= 0"),
        (["--writers", "2", "--jobs", "0"], "--jobs must be >= 1"),
        (["--writers", "1", "--preview", "sheet.jpg"], "--preview must name a .png"),
    ],
)
def test_cli_bad_arguments(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, args: list[str], message: str
) -> None:
    out = tmp_path / "c"
    with caplog.at_level(logging.ERROR, logger="sigver"):
        assert main(["synth", *args, "--out", str(out)]) == 2
    assert message in caplog.text
    assert not out.exists()  # validated before anything is written


def test_preview_sheet_layout() -> None:
    sheet = preview_sheet(0, n_writers=2, n_genuine=2, n_forgeries=1, cell=(60, 120))
    assert sheet.dtype == np.uint8
    assert sheet.shape[0] > 2 * 60 and sheet.shape[1] > 3 * 120


def test_save_preview_quantises_grey_levels(tmp_path: Path) -> None:
    sheet = np.array([[0, 60, 64, 200, 255]], np.uint8)
    img = cv2.imread(str(save_preview(tmp_path / "a.png", sheet, levels=2)), cv2.IMREAD_UNCHANGED)
    assert img.tolist() == [[0, 0, 0, 255, 255]]  # step 255: below 127.5 -> 0, above -> 255
    raw = save_preview(tmp_path / "b.png", sheet, levels=None)
    assert cv2.imread(str(raw), cv2.IMREAD_UNCHANGED).tolist() == sheet.tolist()
    with pytest.raises(SynthError):
        save_preview(tmp_path / "c.png", sheet, levels=1)


# ----------------------------------------------------------------------------- realism


def test_distance_ordering_genuine_forgery_other(sample_set: dict) -> None:
    """intra-writer < genuine-vs-skilled-forgery < genuine-vs-other-writers."""
    gen = [np.array([_descriptor(i) for i in g]) for g in sample_set["genuine"]]
    forg = [np.array([_descriptor(i) for i in f]) for f in sample_set["forgeries"]]

    def dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.linalg.norm(a[:, None] - b[None], axis=2)

    same, skilled, other = [], [], []
    iu = np.triu_indices(N_GEN, 1)
    for w in range(N_WRITERS):
        same.append(dist(gen[w], gen[w])[iu].mean())
        skilled.append(dist(gen[w], forg[w]).mean())
        other.append(np.mean([dist(gen[w], gen[o]).mean() for o in range(N_WRITERS) if o != w]))
    same, skilled, other = map(np.asarray, (same, skilled, other))
    logging.getLogger(__name__).info(
        "mean distances: same %.3f skilled %.3f other %.3f",
        same.mean(),
        skilled.mean(),
        other.mean(),
    )
    assert same.mean() < skilled.mean() < other.mean()
    assert (same < skilled).mean() >= 0.7
    assert (skilled < other).mean() >= 0.8


def test_background_statistics_independent_of_class(sample_set: dict) -> None:
    _assert_background_independent_of_class(sample_set)


def _assert_background_independent_of_class(sample_set: dict) -> None:
    def background_stats(img: np.ndarray) -> tuple[float, float]:
        paper = np.median(img)
        ink = (img < paper - 25).astype(np.uint8)
        near_ink = cv2.dilate(ink, np.ones((9, 9), np.uint8)) > 0
        bg = img[~near_ink].astype(np.float64)
        return bg.mean(), bg.std()

    gen = np.array([background_stats(i) for g in sample_set["genuine"] for i in g])
    forg = np.array([background_stats(i) for f in sample_set["forgeries"] for i in f])
    for k, name in enumerate(("mean", "std")):
        auc = _auc(gen[:, k], forg[:, k])
        pooled = np.sqrt((gen[:, k].var() + forg[:, k].var()) / 2)
        effect = abs(gen[:, k].mean() - forg[:, k].mean()) / pooled
        assert 0.3 < auc < 0.7, f"background {name} separates classes (AUC {auc:.2f})"
        assert effect < 0.5, f"background {name} differs by {effect:.2f} std"


# ----------------------------------------------------------------------------- v2


def test_v1_generator_is_unchanged() -> None:
    # The shipped v1 model was trained on this generator: its default output
    # must stay pixel-identical (hash recorded before the v2 generator landed).
    import hashlib

    digest = hashlib.sha256()
    for w in range(4):
        _, g, f = generate_writer(0, w, 2, 2)
        for img in g + f:
            digest.update(img.tobytes())
            digest.update(str(img.shape).encode())
    expected = "9543dcd351f979a7a5536f70da62c78387ca6af4af02961bcd05a71796f74706"
    assert digest.hexdigest() == expected


def test_v2_corpus_is_deterministic_and_lists_writers(tmp_path: Path) -> None:
    from sigver.datasets import get_reader

    kw = {"seed": 2, "progress": False, "version": 2, "scripts": ("arabic", "cjk", "bengali")}
    a = generate_corpus(tmp_path / "a", 4, 2, 2, n_jobs=1, **kw)
    b = generate_corpus(tmp_path / "b", 4, 2, 2, n_jobs=2, **kw)
    assert _files(a.root) == _files(b.root) and len(a.files) == 16
    # Not the v1 writers: same seed, other generator.
    v1 = generate_corpus(tmp_path / "v1", 4, 2, 2, seed=2, n_jobs=1, progress=False)
    assert all(_files(a.root)[k] != _files(v1.root)[k] for k in _files(v1.root))
    csv = (a.root / "writers.csv").read_text().splitlines()
    assert csv[0] == "user,script,style,form,pen"
    assert [line.split(",")[1] for line in csv[1:]] == ["arabic", "cjk", "bengali", "arabic"]
    assert not (v1.root / "writers.csv").exists()
    scan = get_reader("gpds").scan(a.root)
    assert len(scan.samples) == 16
    assert [p.name for p in scan.unmatched] == ["writers.csv"]


def test_v2_every_script_renders_scans() -> None:
    from sigver.synth.scripts import SCRIPTS

    for k, script in enumerate(SCRIPTS):
        writer, genuine, forgeries = generate_writer(5, k, 1, 1, scripts=(script,))
        assert writer.version == 2 and writer.script == script
        for img in genuine + forgeries:
            assert img.dtype == np.uint8 and img.ndim == 2
            assert img.shape[0] <= MAX_SIZE[0] and img.shape[1] <= MAX_SIZE[1]
            assert np.median(img) > 120  # paper (grey or coloured) is lighter than ink
            assert img.min() < np.median(img) - 40, script  # some ink is visible


def test_v2_holdout_styles_are_never_drawn_for_training() -> None:
    from sigver.synth.scripts import SCRIPTS, styles_for

    for script, spec in SCRIPTS.items():
        assert spec.holdout_style not in styles_for(script, "train")
        assert styles_for(script, "holdout") == (spec.holdout_style,)
        train = {make_writer(0, w, scripts=(script,), split="train").style for w in range(12)}
        held = {make_writer(0, w, scripts=(script,), split="holdout").style for w in range(3)}
        assert spec.holdout_style not in train and held == {spec.holdout_style}
    with pytest.raises(SynthError):
        make_writer(0, 0, scripts=("klingon",))
    with pytest.raises(SynthError):
        make_writer(0, 0, split="train")  # splits are a v2 option


def test_v2_cjk_holdout_characters_are_disjoint() -> None:
    from sigver.synth.scripts import _cjk_chars

    a, b = set(_cjk_chars("set_a")), set(_cjk_chars("set_b"))
    assert a and b and not a & b


def test_headline_and_right_to_left_layout() -> None:
    from sigver.synth.scripts import script_font

    font = script_font("devanagari", "hand0")
    plain = _plan(np.random.default_rng(3), "abc de", font, False, (), 3.0)
    headed = _plan(np.random.default_rng(3), "abc de", font, False, (), 3.0, headline=True)
    assert len(headed) == len(plain) + 2  # one head line per word
    arabic = script_font("arabic", "hand0")
    ltr = _plan(np.random.default_rng(4), "ab", arabic, True, (), 3.0)
    rtl = _plan(np.random.default_rng(4), "ab", arabic, True, (), 3.0, rtl=True)
    # Right to left: the first pen-down point lies right of the last body point.
    assert ltr[0][0, 0] < ltr[0][-1, 0]
    assert rtl[0][0, 0] > rtl[0][-1, 0]


@pytest.fixture(scope="module")
def sample_set_v2() -> dict[str, list[list[np.ndarray]]]:
    """16 v2 writers (two of each script) x (3 genuine + 2 forgeries)."""
    genuine, forgeries = [], []
    for w in range(16):
        _, g, f = generate_writer(13, w, 3, 2, version=2)
        genuine.append(g)
        forgeries.append(f)
    return {"genuine": genuine, "forgeries": forgeries}


def test_v2_background_statistics_independent_of_class(sample_set_v2: dict) -> None:
    _assert_background_independent_of_class(sample_set_v2)


def test_cli_v2_scripts(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "corpus"
    argv = ["synth", "--writers", "2", "--genuine", "1", "--forgeries", "1", "--seed", "3"]
    argv += ["--scripts", "greek,initials", "--split", "train", "--out", str(out)]
    assert main([*argv, "--jobs", "1", "--no-progress"]) == 0
    assert "generator v2" in capsys.readouterr().out
    assert (out / "writers.csv").read_text().splitlines()[1].split(",")[1:3] == ["greek", "greeks"]
    bad = ["synth", "--writers", "1", "--scripts", "elvish", "--out", str(tmp_path / "x")]
    assert main(bad) == 2


def test_v2_ink_is_always_found_by_the_preprocessing(sample_set_v2: dict) -> None:
    # Pencil on grey paper, blue ink on coloured paper and pre-printed boxes must all
    # leave the signature clearly darker than everything else on the form.
    from sigver.preprocessing import locate_signature

    for images in sample_set_v2["genuine"] + sample_set_v2["forgeries"]:
        for img in images:
            locate_signature(img)
    for w in range(40):  # more pens and papers, one image each
        locate_signature(generate_writer(21, w, 1, 0, version=2)[1][0])


def test_generator_v3_changes_only_the_forgers_pen():
    """v3 keeps v2's writers and genuine images; its forgers draw their own pen."""
    from sigver.synth.corpus import _forger, generate_writer

    w2, gen2, forg2 = generate_writer(7, 1, 2, 3, version=2)
    w3, gen3, forg3 = generate_writer(7, 1, 2, 3, version=3)
    assert w3.version == 3 and w3.text == w2.text and w3.pen_width == w2.pen_width
    assert all(np.array_equal(a, b) for a, b in zip(gen2, gen3, strict=True))
    same = [a.shape == b.shape and np.array_equal(a, b) for a, b in zip(forg2, forg3, strict=True)]
    assert not any(same)
    f2, f3 = _forger(7, 1, 0, 2), _forger(7, 1, 0, 3)
    assert f2.own_pen is None and f3.own_pen is not None
    # The own pen is drawn after everything else: the forger's habits are v2's.
    assert (f3.skill, f3.size_bias, f3.slant_bias) == (f2.skill, f2.size_bias, f2.slant_bias)
    assert 2.2 <= f3.own_pen.width <= 4.8


def test_generator_v3_forgers_pens_are_not_biased_thicker():
    """The v2 forgers' blunter pen made every forgery thicker; v3's are drawn like writers'."""
    from sigver.synth.corpus import _forger

    f2 = [_forger(0, w, 0, 2).pen_factor for w in range(200)]
    f3 = [_forger(0, w, 0, 3).own_pen.width for w in range(200)]
    assert np.median(f2) > 1.15  # v2: target width x exp(N(0.25, 0.2))
    assert abs(np.median(f3) - 3.5) < 0.3  # v3: U(2.2, 4.8), like any writer

"""Tests for sigver.preprocessing: reading, the SigNet pipeline, cropping, batches.

The agreement tests port the reference algorithm (luizgh/sigver,
``preprocess_signature``) to scikit-image here, from its published description,
and compare it with our OpenCV implementation.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from sigver.errors import ImageError
from sigver.preprocessing import (
    CANVAS_SIZES,
    BatchResult,
    PreprocessConfig,
    PreprocessConfigError,
    center_on_canvas,
    crop_center,
    locate_signature,
    otsu_threshold,
    preprocess_batch,
    preprocess_image,
    preprocess_signature,
    random_crop,
    read_image,
    to_network_input,
)

CANVAS = (400, 560)


def drawing(shape: tuple[int, int] = (200, 300), offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """A signature-like drawing: dark anti-aliased strokes on light, slightly noisy paper."""
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(235, 3, shape), 0, 255).astype(np.uint8)
    oy, ox = offset
    pts = np.array([[40, 120], [80, 60], [120, 140], [160, 70], [200, 130], [250, 90]])
    pts = pts + np.array([ox, oy])
    cv2.polylines(img, [pts.astype(np.int32)], False, 30, thickness=4, lineType=cv2.LINE_AA)
    cv2.ellipse(img, (100 + ox, 100 + oy), (40, 20), 15, 0, 300, 40, 3, cv2.LINE_AA)
    return img


# ----------------------------------------------------------------- reference port


def reference_preprocess(img: np.ndarray, canvas_size, img_size=(170, 242)):
    """The published algorithm with scikit-image; returns (output, canvas, threshold, box)."""
    filters = pytest.importorskip("skimage.filters")
    transform = pytest.importorskip("skimage.transform")
    blurred = filters.gaussian(img, 2, preserve_range=True)
    threshold = filters.threshold_otsu(img)
    r, c = np.where(~(blurred > threshold))
    r_center, c_center = int(r.mean() - r.min()), int(c.mean() - c.min())
    cropped = img[r.min() : r.max(), c.min() : c.max()]
    rows, cols = cropped.shape
    max_rows, max_cols = canvas_size
    assert rows <= max_rows and cols <= max_cols, "test only covers signatures that fit"
    r_start, c_start = max_rows // 2 - r_center, max_cols // 2 - c_center
    r_start = max(0, r_start - max(0, r_start + rows - max_rows))
    c_start = max(0, c_start - max(0, c_start + cols - max_cols))
    canvas = np.full(canvas_size, 255, dtype=np.uint8)
    canvas[r_start : r_start + rows, c_start : c_start + cols] = cropped
    canvas[canvas > threshold] = 255
    inverted = 255 - canvas
    height, width = img_size
    width_ratio, height_ratio = max_cols / width, max_rows / height
    if width_ratio > height_ratio:
        new_h, new_w = height, int(round(max_cols / height_ratio))
    else:
        new_h, new_w = int(round(max_rows / width_ratio)), width
    resized = transform.resize(
        inverted, (new_h, new_w), mode="constant", anti_aliasing=True, preserve_range=True
    ).astype(np.uint8)
    if width_ratio > height_ratio:
        start = int(round((new_w - width) / 2.0))
        out = resized[:, start : start + width]
    else:
        start = int(round((new_h - height) / 2.0))
        out = resized[start : start + height, :]
    box = (int(r.min()), int(r.max()), int(c.min()), int(c.max()), r_center, c_center)
    return out, canvas, int(threshold), box


def assert_agrees(img: np.ndarray, canvas_size) -> None:
    ref_out, ref_canvas, ref_t, ref_box = reference_preprocess(img, canvas_size)
    loc = locate_signature(img)
    assert loc.threshold == ref_t
    assert (loc.rmin, loc.rmax, loc.cmin, loc.cmax, loc.r_center, loc.c_center) == ref_box
    np.testing.assert_array_equal(center_on_canvas(img, canvas_size), ref_canvas)
    out = preprocess_signature(img, canvas_size)
    diff = np.abs(out.astype(int) - ref_out.astype(int))
    # float32 vs float64 arithmetic before the truncation to uint8 flips values lying
    # within ~1e-5 of an integer. Measured: over 207 sigcomp2011 images max |diff| 1 on
    # at most 1 pixel per image; on drawings up to 0.24 % of pixels (small resize factors
    # sample near-integer values more often).
    assert diff.max() <= 1
    assert (diff == 0).mean() > 0.99


@pytest.mark.parametrize(
    ("offset", "canvas"),
    [((0, 0), CANVAS), ((60, 20), CANVAS), ((0, 0), (210, 300)), ((0, 0), (730, 1042))],
)
def test_agrees_with_reference_on_drawings(offset, canvas) -> None:
    img = drawing((300, 420), offset)
    assert_agrees(img, canvas)


def test_agrees_with_reference_on_real_images(sigcomp_path: Path) -> None:
    files = sorted(sigcomp_path.glob("*/*.png"))[::150]
    assert len(files) >= 10
    for f in files:
        assert_agrees(read_image(f), CANVAS_SIZES["sigcomp2011"])


def test_otsu_matches_skimage_on_random_histograms() -> None:
    filters = pytest.importorskip("skimage.filters")
    rng = np.random.default_rng(1)
    for _ in range(30):
        img = np.concatenate(
            [
                rng.normal(rng.uniform(20, 120), rng.uniform(2, 30), 3000),
                rng.normal(rng.uniform(150, 250), rng.uniform(2, 30), 30000),
            ]
        )
        img = np.clip(img, 0, 255).astype(np.uint8).reshape(-1, 300)
        assert otsu_threshold(img) == filters.threshold_otsu(img)


# ----------------------------------------------------------------- geometry


def test_centre_of_mass_lands_on_canvas_centre() -> None:
    img = np.full((100, 200), 250, dtype=np.uint8)
    img[20:31, 150:171] = 10  # an 11x21 ink block, far from the image centre
    canvas = center_on_canvas(img, (300, 400))
    rows, cols = np.nonzero(canvas < 128)
    # Blurred ink box spans more than the block; the block's centre ends up at the centre.
    assert abs(rows.mean() - 150) <= 1 and abs(cols.mean() - 200) <= 1


def test_output_is_inverted_with_background_removed() -> None:
    img = np.full((100, 200), 240, dtype=np.uint8)
    img[40:60, 50:150] = 20
    img[5, 5] = 200  # light paper speck: above the threshold, must vanish
    out = preprocess_signature(img, (170, 242))
    assert out.shape == (170, 242) and out.dtype == np.uint8
    # canvas == img_size: the block is copied 1:1 (up to the blur), ink high, paper exactly 0
    assert out[85, 121] == 235
    assert out[0, 0] == 0 and out[5:20, :].max() == 0
    assert (out > 0).sum() < 30 * 110


def test_relaxed_centering_keeps_signature_inside() -> None:
    # Ink mass concentrated on the right: centring it would push the left part off-canvas.
    img = np.full((60, 400), 245, dtype=np.uint8)
    img[20:40, 10:20] = 0
    img[10:50, 300:390] = 0
    canvas = center_on_canvas(img, (100, 400))
    cols = np.nonzero((canvas < 128).any(axis=0))[0]
    assert cols[0] == 0 and cols[-1] < 400


def test_signature_larger_than_canvas_is_scaled_not_cropped() -> None:
    img = np.full((100, 600), 245, dtype=np.uint8)
    img[40:60, 5:25] = 0  # far-left blob
    img[40:60, 575:595] = 0  # far-right blob
    canvas = center_on_canvas(img, (100, 200))
    ink_cols = np.nonzero((canvas < 128).any(axis=0))[0]
    assert ink_cols[0] < 20 and ink_cols[-1] > 180  # both blobs survive


def test_output_sizes_for_every_preset() -> None:
    img = drawing()
    for name, canvas in CANVAS_SIZES.items():
        out = preprocess_signature(img, canvas)
        assert out.shape == (170, 242), name
        assert out.max() > 100


def test_crop_center_geometry() -> None:
    x = np.arange(170 * 242).reshape(170, 242)
    c = crop_center(x, (150, 220))
    assert c.shape == (150, 220)
    assert c[0, 0] == x[10, 11]
    batch = np.zeros((3, 1, 170, 242))
    assert crop_center(batch, (150, 220)).shape == (3, 1, 150, 220)
    with pytest.raises(ValueError):
        crop_center(x, (171, 10))


def test_random_crop_is_seeded_and_in_bounds() -> None:
    x = np.arange(170 * 242).reshape(170, 242)
    a = random_crop(x, (150, 220), np.random.default_rng(3))
    b = random_crop(x, (150, 220), np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    offsets = set()
    rng = np.random.default_rng(4)
    for _ in range(200):
        c = random_crop(x, (150, 220), rng)
        top, left = divmod(int(c[0, 0]), 242)
        assert 0 <= top <= 20 and 0 <= left <= 22
        offsets.add((top, left))
    assert len(offsets) > 50
    batch = np.stack([x, x + 1])[:, None]
    crops = random_crop(batch, (150, 220), 5)
    assert crops.shape == (2, 1, 150, 220)


def test_to_network_input_scales_to_unit_range() -> None:
    x = to_network_input(np.array([[0, 255, 51]], dtype=np.uint8))
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, [[0.0, 1.0, 0.2]])


def test_config_roundtrip_and_presets() -> None:
    cfg = PreprocessConfig.for_dataset("cedar")
    assert cfg.canvas_size == (730, 1042) and cfg.img_size == (170, 242)
    assert cfg.input_size == (150, 220)
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    assert PreprocessConfig.preset("GPDS").canvas_size == (952, 1360)
    assert set(CANVAS_SIZES) >= {
        "gpds",
        "gpds-synthetic",
        "mcyt",
        "cedar",
        "brazilian",
        "bhsig260",
        "sigcomp2011",
        "default",
    }
    with pytest.raises(PreprocessConfigError):
        PreprocessConfig.for_dataset("nope")
    with pytest.raises(PreprocessConfigError):
        PreprocessConfig.from_dict({"canvas_size": [10, -1]})
    with pytest.raises(PreprocessConfigError):
        PreprocessConfig.from_dict({"canvas_size": [10, 10], "extra": 1})
    with pytest.raises(PreprocessConfigError):
        PreprocessConfig(canvas_size=(500, 500), input_size=(200, 300))


# ----------------------------------------------------------------- input modes


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def palette_png(gray: np.ndarray) -> bytes:
    """Encode a palette (colour type 3) PNG by hand: OpenCV cannot write one."""
    levels, index = np.unique(gray, return_inverse=True)
    index = index.reshape(gray.shape).astype(np.uint8)
    palette = b"".join(bytes([v, v, v]) for v in levels.tolist())
    raw = b"".join(b"\x00" + row.tobytes() for row in index)
    ihdr = struct.pack(">IIBBBBB", gray.shape[1], gray.shape[0], 8, 3, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"PLTE", palette)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


def test_all_input_modes_give_the_same_result(tmp_path: Path) -> None:
    gray = drawing()
    cfg = PreprocessConfig(canvas_size=CANVAS)
    expected = preprocess_image(gray, cfg)

    sources: dict[str, object] = {}
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    sources["gray png"] = tmp_path / "gray.png"
    (tmp_path / "palette.png").write_bytes(palette_png(gray))
    sources["palette png"] = tmp_path / "palette.png"
    bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    cv2.imwrite(str(tmp_path / "rgb.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    sources["rgb jpeg"] = tmp_path / "rgb.jpg"
    bgra = np.zeros(gray.shape + (4,), dtype=np.uint8)  # transparent *black* background
    ink = gray < 128
    bgra[ink, :3] = gray[ink, None]
    bgra[..., 3] = np.where(ink, 255, 0)
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    sources["rgba png"] = tmp_path / "rgba.png"
    cv2.imwrite(str(tmp_path / "g16.png"), gray.astype(np.uint16) * 257)
    sources["16-bit png"] = tmp_path / "g16.png"
    cv2.imwrite(str(tmp_path / "gray.tif"), gray)
    sources["tiff"] = tmp_path / "gray.tif"
    cv2.imwrite(str(tmp_path / "gray.bmp"), bgr)
    sources["bmp"] = tmp_path / "gray.bmp"
    sources["bytes"] = (tmp_path / "gray.png").read_bytes()
    sources["str path"] = str(tmp_path / "gray.png")
    unicode_path = tmp_path / "signature_été_署名.png"
    unicode_path.write_bytes((tmp_path / "gray.png").read_bytes())
    sources["non-ascii path"] = unicode_path
    sources["bgr array"] = bgr
    sources["float array"] = gray / 255.0

    exact = {
        "gray png",
        "palette png",
        "16-bit png",
        "tiff",
        "bmp",
        "bytes",
        "str path",
        "non-ascii path",
        "bgr array",
        "float array",
    }
    for name, src in sources.items():
        np.testing.assert_array_equal(read_image(src).shape, gray.shape, err_msg=name)
        out = preprocess_image(src, cfg)
        diff = np.abs(out.astype(int) - expected.astype(int))
        if name in exact:
            assert diff.max() == 0, name
        else:  # lossy JPEG; RGBA loses the paper texture (transparent = pure white)
            assert diff.mean() < 1.0, (name, diff.mean())


def test_sixteen_bit_is_scaled_not_truncated() -> None:
    img16 = np.array([[0, 257 * 100, 65535, 65535 // 2]], dtype=np.uint16)
    np.testing.assert_array_equal(read_image(img16), [[0, 100, 255, 127]])
    ok, buf = cv2.imencode(".png", img16)
    np.testing.assert_array_equal(read_image(buf.tobytes()), [[0, 100, 255, 127]])


def test_rgba_composites_over_white() -> None:
    bgra = np.array([[[0, 0, 0, 0], [0, 0, 0, 255], [0, 0, 0, 128]]], dtype=np.uint8)
    np.testing.assert_array_equal(read_image(bgra), [[255, 0, 127]])


# ----------------------------------------------------------------- bad inputs


def _reason(source, **kw) -> str:
    with pytest.raises(ImageError) as info:
        preprocess_image(source, PreprocessConfig(canvas_size=CANVAS), **kw)
    return info.value.reason


def test_missing_file(tmp_path: Path) -> None:
    assert "not found" in _reason(tmp_path / "nope.png")


def test_truncated_png(tmp_path: Path) -> None:
    ok, buf = cv2.imencode(".png", drawing())
    p = tmp_path / "cut.png"
    p.write_bytes(buf.tobytes()[: len(buf) // 2])
    assert "corrupt" in _reason(p)


def test_truncated_jpeg(tmp_path: Path) -> None:
    ok, buf = cv2.imencode(".jpg", drawing())
    p = tmp_path / "cut.jpg"
    p.write_bytes(buf.tobytes()[: len(buf) // 2])
    assert "truncated" in _reason(p)


def test_text_file_renamed_png(tmp_path: Path) -> None:
    p = tmp_path / "notes.png"
    p.write_text("hello, this is not an image\n")
    assert "not a recognised image format" in _reason(p)


def test_zero_byte_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    assert "empty" in _reason(p)


def test_directory_and_empty_array(tmp_path: Path) -> None:
    assert _reason(tmp_path)
    assert "empty" in _reason(np.zeros((0, 10), dtype=np.uint8))


@pytest.mark.parametrize("level", [255, 128, 0])
def test_uniform_page_is_refused(level: int) -> None:
    assert "blank" in _reason(np.full((200, 300), level, dtype=np.uint8))


def test_noisy_blank_page_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    page = np.clip(rng.normal(230, 4, (400, 600)), 0, 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "blank.jpg"), page)
    assert "contrast" in _reason(tmp_path / "blank.jpg")


def test_png_bomb_refused_before_decoding(tmp_path: Path) -> None:
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + _png_chunk(b"IEND", b"")
    )
    p = tmp_path / "bomb.png"
    p.write_bytes(data)
    reason = _reason(p)
    assert "100000x100000" in reason and "limit" in reason


def test_max_pixels_applies_to_every_format(tmp_path: Path) -> None:
    img = drawing()
    for ext in (".png", ".jpg", ".tif", ".bmp", ".webp"):
        ok, buf = cv2.imencode(ext, img)
        with pytest.raises(ImageError, match="limit"):
            read_image(buf.tobytes(), max_pixels=1000)
        assert read_image(buf.tobytes()).shape == img.shape
    with pytest.raises(ImageError, match="limit"):
        read_image(img, max_pixels=1000)


def test_file_size_cap(tmp_path: Path) -> None:
    p = tmp_path / "big.png"
    cv2.imwrite(str(p), drawing())
    with pytest.raises(ImageError, match="bytes"):
        read_image(p, max_bytes=100)


# ----------------------------------------------------------------- batches


def test_batch_skips_bad_files_and_keeps_order(tmp_path: Path, caplog) -> None:
    good = []
    for i in range(5):
        p = tmp_path / f"g{i}.png"
        cv2.imwrite(str(p), drawing(offset=(i * 5, i * 3)))
        good.append(p)
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    blank = np.full((50, 50), 255, dtype=np.uint8)
    sources = [good[0], good[1], bad, good[2], blank, good[3], good[4]]
    result = preprocess_batch(sources, CANVAS, n_jobs=2, progress=False, chunk_size=2)
    assert isinstance(result, BatchResult)
    assert result.kept == [0, 1, 3, 5, 6]
    assert result.images.shape == (5, 1, 170, 242) and result.images.dtype == np.uint8
    assert [s for s, _ in result.skipped] == [str(bad), "<array>[4]"]
    assert "not a recognised image format" in result.skipped[0][1]
    assert "blank" in result.skipped[1][1]
    for row, index in enumerate(result.kept):
        np.testing.assert_array_equal(
            result.images[row, 0], preprocess_image(sources[index], PreprocessConfig(CANVAS))
        )
    assert "skipping" in caplog.text
    serial = preprocess_batch(sources, CANVAS, n_jobs=1, progress=False)
    np.testing.assert_array_equal(serial.images, result.images)


def test_empty_batch() -> None:
    result = preprocess_batch([], CANVAS, progress=False)
    assert result.images.shape == (0, 1, 170, 242) and result.kept == [] and result.skipped == []


def test_all_real_images_preprocess(sigcomp_path: Path) -> None:
    files = sorted(sigcomp_path.glob("*/*.png"))
    assert len(files) == 1649
    result = preprocess_batch(files, CANVAS_SIZES["sigcomp2011"], n_jobs=2, progress=False)
    assert result.skipped == []
    assert result.images.shape == (1649, 1, 170, 242)
    # Every signature keeps a reasonable amount of ink.
    ink = (result.images > 0).mean(axis=(1, 2, 3))
    assert ink.min() > 0.005


def test_binarised_image_keeps_thin_strokes() -> None:
    img = np.full((200, 400), 255, dtype=np.uint8)
    cv2.line(img, (20, 100), (380, 60), 0, 2)  # thin stroke spanning the width
    cv2.circle(img, (200, 120), 30, 0, 2)
    loc = locate_signature(img)
    assert loc.threshold == 0
    assert loc.cmin < 30 and loc.cmax > 370
    assert preprocess_signature(img, CANVAS).max() > 200


def test_reused_canvases_leave_no_trace_between_images():
    from sigver import preprocessing as pp

    rng = np.random.default_rng(3)
    first = np.full((300, 700), 250, np.uint8)
    first[100:200, 50:650] = rng.integers(0, 80, (100, 600), dtype=np.uint8)
    second = np.full((120, 200), 245, np.uint8)
    second[40:80, 60:140] = 20
    canvas = (952, 1360)
    before = pp.preprocess_signature(second, canvas)
    pp.preprocess_signature(first, canvas)  # writes a larger region of a pooled canvas
    np.testing.assert_array_equal(pp.preprocess_signature(second, canvas), before)
    assert all(not buf.any() for buf in pp._CANVASES._free.get(canvas, []))
    assert len(pp._CANVASES._free.get(canvas, [])) <= pp._CANVASES.keep


def test_inverted_scans_and_dark_borders_are_refused() -> None:
    from enrollment.testing import draw_signature
    from sigver.preprocessing import locate_signature

    img = draw_signature(1, 0)
    locate_signature(img, "clean")  # dark ink on light paper: fine
    with pytest.raises(ImageError, match="inverted scan"):
        locate_signature(255 - img, "inverted")
    framed = img.copy()
    framed[:, :12] = 0
    framed[-10:, :] = 0  # a scanner border along the left and the bottom
    with pytest.raises(ImageError, match="along the bottom and left edges"):
        locate_signature(framed, "framed")
    # One dark edge is allowed: a signature cropped to its ink box, underline and all.
    underlined = img.copy()
    underlined[-4:, :] = 0
    locate_signature(underlined, "underlined")
    loc = locate_signature(img, "clean")
    tight = img[loc.rmin : loc.rmax + 1, loc.cmin : loc.cmax + 1].copy()
    tight[-3:, :] = 0
    preprocess_signature(tight, (400, 600), (150, 220), source="tight")


def test_real_scans_are_not_mistaken_for_inverted_ones(sigcomp_path: Path) -> None:
    from sigver.preprocessing import locate_signature

    # Measured over all 1,649: at most 29 % of an image and 3 % of its border is ink.
    for f in sorted(sigcomp_path.glob("*/*.png"))[::20]:
        locate_signature(read_image(f), str(f))

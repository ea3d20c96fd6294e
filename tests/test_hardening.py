"""Regression tests of the defects found by probing the first release (issue 11, defects 1-8)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from enrollment import Verifier
from enrollment.config import Settings
from enrollment.errors import EnrollmentError, StoreError
from enrollment.service import create_app
from enrollment.store import decode_arrays, encode_arrays
from enrollment.testing import draw_signature, encode_png
from sigver import preprocessing
from sigver._util import read_file_limited
from sigver.classifier import WriterDependentClassifier
from sigver.errors import ImageError, ModelError


@pytest.fixture(scope="module")
def pngs():
    return {(w, s): encode_png(draw_signature(w, s)) for w in (1, 2, 3) for s in range(6)}


@pytest.fixture
def verifier(model_path, tmp_path):
    return Verifier(home=tmp_path / "home", model=model_path)


def _refs(pngs, writer, n=4):
    return [pngs[writer, s] for s in range(n)]


def _in_thread(fn, timeout=20.0):
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it blocks."""
    box: dict[str, object] = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "call blocked"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


# -- 1: special files ----------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_dev_zero_is_refused_not_read(verifier, pngs):
    verifier.enroll("alice", _refs(pngs, 1))
    with pytest.raises(ImageError, match="not a regular file"):
        _in_thread(lambda: verifier.verify("alice", "/dev/zero"))
    with pytest.raises(ImageError, match="not a regular file"):
        read_file_limited("/dev/zero", 1000)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_refused_without_blocking(verifier, tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="not a regular file"):
        _in_thread(lambda: verifier.extract([fifo]))


def test_file_read_is_bounded_and_directories_refused(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    assert read_file_limited(path, 100) == b"x" * 100
    with pytest.raises(ImageError, match="limit"):
        read_file_limited(path, 99)
    with pytest.raises(ImageError, match="directory"):
        read_file_limited(tmp_path, 99)
    with pytest.raises(ImageError, match="not found"):
        read_file_limited(tmp_path / "nope", 99)


# -- 2: decoded-memory budget ----------------------------------------------------------


def test_decoded_bytes_budget_counts_bit_depth_and_channels():
    rgba16 = np.full((300, 400, 4), 65535, np.uint16)
    rgba16[100:200, 50:350, :3] = 1000
    blob16 = cv2.imencode(".png", rgba16)[1].tobytes()
    gray8 = cv2.imencode(".png", np.full((300, 400), 255, np.uint8))[1].tobytes()
    budget = 300 * 400 * 4  # room for 4 bytes a pixel, not 8
    with pytest.raises(ImageError, match="would take 960000 bytes"):
        preprocessing.read_image(blob16, max_decoded_bytes=budget)
    assert preprocessing.read_image(gray8, max_decoded_bytes=budget).shape == (300, 400)
    # Same pixel count, so the pixel limit alone would have let it through.
    assert preprocessing.read_image(blob16, max_pixels=300 * 400).dtype == np.uint8


def test_strip_conversion_matches_whole_image(monkeypatch):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 65536, (37, 23, 4), dtype=np.uint16)
    whole = preprocessing._strip_to_gray_u8(img, 65535.0)
    monkeypatch.setattr(preprocessing, "_CONVERT_STRIP_PIXELS", 50)  # 2 rows a strip
    np.testing.assert_array_equal(preprocessing._to_gray_u8(img, "x"), whole)


def test_verifier_applies_decode_budget(model_path, tmp_path, pngs):
    settings = Settings(max_decoded_bytes=100_000)
    v = Verifier(home=tmp_path / "h", model=model_path, settings=settings)
    big = cv2.imencode(".png", np.full((200, 320, 4), 60000, np.uint16))[1].tobytes()
    with pytest.raises(ImageError, match="to decode"):
        v.extract([big])
    assert v.extract([pngs[1, 0]]).shape[0] == 1  # 200x320 gray: 64 kB


# -- 3: authentication before the body is read ------------------------------------------


def _asgi_post(app, headers, body_chunks):
    """POST through the raw ASGI interface; returns (status, chunks the app pulled)."""
    pulled = []
    sent = []
    chunks = list(body_chunks)

    async def receive():
        if chunks:
            chunk = chunks.pop(0)
            pulled.append(len(chunk))
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/users/alice/verify",
        "raw_path": b"/v1/users/alice/verify",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"multipart/form-data; boundary=xyz"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, pulled


def test_no_or_bad_key_is_refused_before_reading_the_body(verifier):
    app = create_app(verifier)
    body = [b"x" * 65536] * 16
    assert _asgi_post(app, [], body) == (401, [])
    assert _asgi_post(app, [(b"x-api-key", b"sv_000000000000_" + b"a" * 43)], body) == (403, [])
    _, key = verifier.store.create_api_key("k")
    status, pulled = _asgi_post(app, [(b"x-api-key", key.encode())], body)
    assert pulled  # a valid key gets its body read (and a 4xx for the junk multipart)
    assert status in (400, 422)


# -- 4: corrupt blobs, numeric columns, classifier shapes --------------------------------


def test_corrupt_npz_blobs_are_store_errors():
    blob = bytearray(encode_arrays({"a": np.arange(1000.0)}))
    with pytest.raises(StoreError):
        decode_arrays(b"PK\x03\x04" + b"\0" * 60)
    blob[200] ^= 0xFF  # inside the compressed member: CRC / zip error
    with pytest.raises(StoreError):
        decode_arrays(bytes(blob))


def test_background_with_a_flipped_byte_is_a_model_error(model_path, tmp_path):
    bg = model_path.with_name("tiny.background.npz").read_bytes()
    for offset in (len(bg) // 2, len(bg) - 30):
        broken = bytearray(bg)
        broken[offset] ^= 0x5A
        path = tmp_path / f"bg{offset}.npz"
        path.write_bytes(bytes(broken))
        try:
            Verifier(home=tmp_path / "h", model=model_path, background=path)
        except ModelError:
            continue
        # A flip the npz format cannot notice (inside float data) must still load sanely.
        v = Verifier(home=tmp_path / "h", model=model_path, background=path)
        assert v.n_background > 0


def _sql(verifier, statement, params=()):
    conn = sqlite3.connect(verifier.store.path)
    conn.execute(statement, params)
    conn.commit()
    conn.close()


def test_malformed_columns_and_wrong_dimensions_give_clean_http_errors(verifier, pngs):
    _, key = verifier.store.create_api_key("k")
    client = TestClient(create_app(verifier), raise_server_exceptions=False)
    client.headers["X-API-Key"] = key
    files = [("images", ("q.png", pngs[1, 5], "image/png"))]
    verifier.enroll("alice", _refs(pngs, 1))
    verifier.enroll("bob", _refs(pngs, 2))
    _sql(verifier, "UPDATE users SET feature_dim = 'abc' WHERE user_id = 'alice'")
    r = client.post("/v1/users/alice/verify", files=files)
    assert r.status_code == 503 and "corrupt" in r.json()["detail"]
    assert client.get("/v1/users").status_code == 503
    # bob: a validly signed classifier of the wrong dimension (store-level write)
    clf = WriterDependentClassifier().fit(
        np.random.default_rng(0).normal(size=(20, 5)), np.repeat([0, 1], 10)
    )
    refs, hashes = verifier.store.load_references("bob")
    from enrollment.store import EnrollmentRecord, ReferenceRecord

    rec = EnrollmentRecord(
        "bob",
        verifier.model_id,
        verifier.model_sha256,
        [ReferenceRecord(h, f) for h, f in zip(hashes, refs, strict=True)],
        clf.to_arrays(),
        {},
        10,
    )
    verifier.store.save_enrollment(rec, mode="replace")
    r = client.post("/v1/users/bob/verify", files=files)
    assert r.status_code == 503 and "expects 5 features" in r.json()["detail"]


# -- 5: one corrupt reference row ----------------------------------------------------------


def test_one_corrupt_reference_does_not_break_other_enrollments(verifier, pngs):
    verifier.enroll("alice", _refs(pngs, 1))
    verifier.enroll("bob", _refs(pngs, 2))
    _sql(
        verifier,
        "UPDATE user_references SET features = ? WHERE user_id = 'bob' AND position = 0",
        (b"\x00\x01\x02",),
    )
    result = verifier.enroll("carol", _refs(pngs, 3))
    # background + alice's 4 + bob's 3 intact references
    assert result.n_negatives == verifier.n_background + 4 + 3


# -- 6: arrays refused before any copy ------------------------------------------------------


def test_huge_array_view_is_refused_before_hashing(verifier, pngs, monkeypatch):
    verifier.enroll("alice", _refs(pngs, 1))
    import enrollment.verifier as vmod

    def no_hash(arr):
        raise AssertionError("hashed (copied) before the size check")

    monkeypatch.setattr(vmod, "_sha256_of_array", no_hash)
    huge = np.broadcast_to(np.uint8(255), (100_000, 100_000))
    with pytest.raises(ImageError, match="over the limits"):
        verifier.verify("alice", huge)
    big_bytes = memoryview(np.zeros(20_000_000, np.uint8))
    with pytest.raises(ImageError, match="limit"):
        verifier.verify("alice", big_bytes)


# -- 7: Python API argument checks ----------------------------------------------------------


def test_python_api_arguments_are_checked(verifier, pngs):
    with pytest.raises(EnrollmentError, match="must be a number"):
        verifier.enroll("alice", _refs(pngs, 1), threshold="abc")
    with pytest.raises(EnrollmentError, match="finite"):
        verifier.enroll("alice", _refs(pngs, 1), threshold=float("nan"))
    for bad in (0, -3, 1, 2.5, True):
        with pytest.raises(EnrollmentError, match="min_references"):
            verifier.enroll("alice", _refs(pngs, 1), min_references=bad)
    with pytest.raises(EnrollmentError, match="list of images"):
        verifier.enroll("alice", "ref.png")
    result = verifier.enroll("alice", (img for img in _refs(pngs, 1)))  # generator
    assert result.user.n_references == 4
    assert len(verifier.verify_batch("alice", iter([pngs[1, 5]]))) == 1
    with pytest.raises(EnrollmentError, match="must be a number"):
        verifier.set_threshold("alice", "abc")
    with pytest.raises(EnrollmentError, match="finite"):
        verifier.set_threshold("alice", float("inf"))


# -- 8: integrity of stored classifiers -------------------------------------------------------


def test_edited_intercept_or_threshold_is_refused(verifier, pngs):
    verifier.enroll("alice", _refs(pngs, 1))
    before = verifier.verify("alice", pngs[2, 0])
    assert not before.accepted  # another writer
    conn = sqlite3.connect(verifier.store.path)
    blob = conn.execute("SELECT classifier FROM users WHERE user_id = 'alice'").fetchone()[0]
    conn.close()
    arrays = decode_arrays(blob)
    arrays["intercept"] = np.asarray(1e300)
    edited = encode_arrays(arrays)
    _sql(verifier, "UPDATE users SET classifier = ? WHERE user_id = 'alice'", (edited,))
    # (the running verifier keeps scoring with the classifier it verified when loading it)
    fresh = Verifier(home=verifier.store.home, model=verifier.model_path)
    with pytest.raises(StoreError, match="integrity"):
        fresh.verify("alice", pngs[2, 0])
    _sql(verifier, "UPDATE users SET classifier = ? WHERE user_id = 'alice'", (blob,))
    assert fresh.verify("alice", pngs[2, 0]).score == before.score
    _sql(verifier, "UPDATE users SET threshold = -1e9 WHERE user_id = 'alice'")
    with pytest.raises(StoreError, match="integrity"):  # the cache key covers the tag...
        verifier.verify("alice", pngs[2, 0])
    fresh = Verifier(home=verifier.store.home, model=verifier.model_path)
    with pytest.raises(StoreError, match="integrity"):
        fresh.verify("alice", pngs[2, 0])
    with pytest.raises(StoreError, match="integrity"):  # and no re-signing it either
        fresh.set_threshold("alice", 0.5)


def test_non_finite_classifier_arrays_are_refused():
    clf = WriterDependentClassifier().fit(
        np.random.default_rng(0).normal(size=(20, 5)), np.repeat([0, 1], 10)
    )
    arrays = clf.to_arrays()
    arrays["intercept"] = np.asarray(np.inf)
    with pytest.raises(ModelError, match="non-finite"):
        WriterDependentClassifier.from_arrays(arrays)


def test_unexpected_errors_are_json_500_without_traceback(verifier, pngs, monkeypatch):
    _, key = verifier.store.create_api_key("k")
    client = TestClient(create_app(verifier), raise_server_exceptions=False)
    client.headers["X-API-Key"] = key

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(verifier, "verify_batch", boom)
    r = client.post("/v1/users/alice/verify", files=[("image", ("q.png", pngs[1, 0], "image/png"))])
    assert r.status_code == 500
    assert r.json() == {
        "detail": "internal error (logged on the server)",
        "error": "internal_error",
    }


# -- review of 2026-12-07: the whole enrollment is tagged, one snapshot per verification -----


def test_edited_normaliser_or_references_are_refused(verifier, pngs):
    import json

    verifier.enroll("alice", _refs(pngs, 1))
    impostor = pngs[2, 0]
    assert not verifier.verify("alice", impostor).accepted
    params = json.loads(
        sqlite3.connect(verifier.store.path)
        .execute("SELECT classifier_params FROM users WHERE user_id = 'alice'")
        .fetchone()[0]
    )
    params["normalization"] = {"method": "none", "loc": -1e6, "scale": 1.0}
    _sql(
        verifier,
        "UPDATE users SET classifier_params = ? WHERE user_id = 'alice'",
        (json.dumps(params),),
    )
    fresh = Verifier(home=verifier.store.home, model=verifier.model_path)
    with pytest.raises(StoreError, match="integrity"):
        fresh.verify("alice", impostor)  # before the fix: accepted with a score near 1e6
    verifier.enroll("alice", _refs(pngs, 1), force=True)
    features = fresh.extract([impostor])[0].astype("<f4").tobytes()
    _sql(verifier, "UPDATE user_references SET features = ? WHERE user_id = 'alice'", (features,))
    fresh = Verifier(home=verifier.store.home, model=verifier.model_path)
    with pytest.raises(StoreError, match="integrity"):
        fresh.verify("alice", impostor)
    with pytest.raises(StoreError, match="integrity"):  # nor laundered by adding references
        fresh.enroll("alice", [pngs[1, 4]], add=True)


def test_classifier_and_references_are_read_in_one_snapshot(verifier, pngs, monkeypatch):
    verifier.enroll("alice", _refs(pngs, 1))
    fresh = Verifier(home=verifier.store.home, model=verifier.model_path)

    def second_read(*args, **kwargs):
        raise AssertionError("references read in a second transaction")

    monkeypatch.setattr(fresh.store, "load_references", second_read)
    monkeypatch.setattr(fresh.store, "load_classifier", second_read)
    assert fresh.verify("alice", pngs[1, 5]).score == verifier.verify("alice", pngs[1, 5]).score


def test_overflowing_thresholds_and_empty_arrays_are_clear_errors(verifier, pngs):
    verifier.enroll("alice", _refs(pngs, 1))
    with pytest.raises(EnrollmentError, match="finite"):
        verifier.set_threshold("alice", 10**400)
    with pytest.raises(EnrollmentError, match="finite"):
        verifier.enroll("bob", _refs(pngs, 2), threshold=10**400)
    for empty in (np.zeros((0, 0), np.uint8), np.zeros((0, 5), np.uint8)):
        with pytest.raises(ImageError, match="empty array"):
            verifier.verify("alice", empty)


def test_a_batch_keeps_only_model_size_images(verifier, pngs):
    item = verifier._load_image(pngs[1, 0], 0)
    assert item.pixels is None  # the decoded full-size image is dropped
    assert item.normalised.shape == tuple(verifier.extractor.preprocess_config.img_size)
    array = cv2.imdecode(np.frombuffer(pngs[1, 0], np.uint8), cv2.IMREAD_GRAYSCALE)
    kept = verifier._load_image(array, 0)
    assert kept.pixels is not None  # stored as PNG when asked: the caller's array
    assert np.array_equal(kept.normalised, item.normalised)


def test_verifier_closes_only_the_store_it_opened(model_path, tmp_path, monkeypatch):
    from enrollment.store import UserStore

    closed = []
    monkeypatch.setattr(UserStore, "close", lambda self: closed.append(self))
    with Verifier(home=tmp_path / "a", model=model_path) as owned:
        pass
    assert closed == [owned.store]
    mine = UserStore(tmp_path / "b")
    Verifier(store=mine, model=model_path).close()
    assert closed == [owned.store]

"""Support vectors stored as references to training rows, not float64 copies."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from enrollment import Verifier
from enrollment.errors import StoreError
from enrollment.store import decode_arrays, encode_arrays
from enrollment.testing import draw_signature, encode_png


def _pngs(writer, n=4, start=0):
    return [encode_png(draw_signature(writer, s)) for s in range(start, start + n)]


def _blob(verifier, user):
    conn = sqlite3.connect(verifier.store.path)
    try:
        return conn.execute("SELECT classifier FROM users WHERE user_id = ?", (user,)).fetchone()[0]
    finally:
        conn.close()


def test_compact_support_vectors_score_exactly_like_the_fitted_svm(model_path, tmp_path):
    v = Verifier(home=tmp_path / "h", model=model_path)
    for writer in (1, 2, 3):
        v.enroll(f"u{writer}", _pngs(writer))
    probe = _pngs(1, 2, start=4) + _pngs(2, 1, start=4)
    live = [r.score for r in v.verify_batch("u3", probe)]  # the fitted classifier (cached)
    fresh = Verifier(home=tmp_path / "h", model=model_path)  # rebuilt from the store
    assert [r.score for r in fresh.verify_batch("u3", probe)] == live  # bit-identical
    arrays = decode_arrays(_blob(v, "u3"))
    assert "support_vectors" not in arrays
    source = arrays["sv_source"]
    assert set(np.unique(source)) <= {0, 1, 2} and (source == 0).any()
    # only other users' rows are inline, as float32
    assert arrays["sv_inline"].dtype == np.float32
    assert arrays["sv_inline"].shape[0] == int((source == 2).sum())
    full = v._expand_arrays(arrays, v.store.load_references("u3")[0])
    assert len(_blob(v, "u3")) < len(encode_arrays(full)) / 2


def test_first_release_full_vectors_still_load_and_background_change_is_caught(
    model_path, tmp_path
):
    v = Verifier(home=tmp_path / "h", model=model_path)
    v.enroll("alice", _pngs(1))
    probe = _pngs(1, 1, start=5)
    score = v.verify("alice", probe[0]).score
    arrays = decode_arrays(_blob(v, "alice"))
    full = v._expand_arrays(arrays, v.store.load_references("alice")[0])
    for key in ("sv_source", "sv_index", "sv_inline", "background_sha256"):
        full.pop(key)
    # Write a first-release style classifier (full vectors) through the store API.
    from enrollment.store import EnrollmentRecord, ReferenceRecord

    feats, hashes = v.store.load_references("alice")
    rec = EnrollmentRecord(
        "alice",
        v.model_id,
        v.model_sha256,
        [ReferenceRecord(h, f) for h, f in zip(hashes, feats, strict=True)],
        full,
        {},
        36,
    )
    v.store.save_enrollment(rec, mode="replace")
    assert Verifier(home=tmp_path / "h", model=model_path).verify("alice", probe[0]).score == score
    v.enroll("alice", _pngs(1), force=True)  # compact again
    other_bg = np.asarray(v._background)[::-1].copy()
    moved = Verifier(home=tmp_path / "h", model=model_path, background=other_bg)
    with pytest.raises(StoreError, match="background"):
        moved.verify("alice", probe[0])

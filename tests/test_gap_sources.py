"""scripts/gap_sources.py: the per-user re-alignments, oracles and R^2 on toy scores."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import gap_sources  # noqa: E402


def _fold(genuine, skilled):
    return SimpleNamespace(
        genuine=[np.asarray(g, float) for g in genuine],
        skilled=[np.asarray(s, float) for s in skilled],
    )


def test_an_offset_between_two_users_makes_the_whole_gap_and_the_genuine_oracle_removes_it():
    # Each user alone is perfectly separated (EER_user 0); user 2 sits 10 above user 1,
    # so pooled, user 2's forgeries (10.5-11) pass user 1's genuines (1-2).
    fold = _fold([[1.0, 2.0], [11.0, 12.0]], [[0.0, 0.5], [10.0, 10.5]])
    before = gap_sources.gap_of([(fold.genuine, fold.skilled)])
    assert before["EER_user"] == 0.0
    assert before["gap"] == pytest.approx(before["EER_global"]) and before["gap"] > 0.2
    locs = gap_sources.oracle_locs([fold], "genuine")
    assert locs == [[1.5, 11.5]]
    after = gap_sources.gap_of(gap_sources.shifted([fold], locs))
    assert after == {"EER_global": 0.0, "EER_user": 0.0, "gap": 0.0}


def test_oracle_mid_is_the_midpoint_of_the_medians_and_the_genuine_median_without_forgeries():
    fold = _fold([[1.0, 3.0, 5.0], [2.0, 4.0]], [[0.0, 1.0, 8.0], []])
    assert gap_sources.oracle_locs([fold], "mid") == [[0.5 * (3.0 + 1.0), 3.0]]


def test_a_per_user_shift_never_changes_eer_user():
    rng = np.random.default_rng(0)
    fold = _fold(
        [rng.normal(1 + u, 1, 7) for u in range(5)], [rng.normal(u, 1, 12) for u in range(5)]
    )
    locs = [list(rng.normal(0, 3, 5))]
    a = gap_sources.gap_of([(fold.genuine, fold.skilled)])
    b = gap_sources.gap_of(gap_sources.shifted([fold], locs))
    assert b["EER_user"] == pytest.approx(a["EER_user"])
    assert b["EER_global"] != pytest.approx(a["EER_global"])


def test_threshold_r2_is_one_for_thresholds_linear_in_the_statistic_and_small_for_noise():
    rng = np.random.default_rng(1)
    offsets = rng.normal(0, 2, 40)
    # Genuine at offset + {1, 2}, skilled at offset - {1, 2}: each user's EER threshold is
    # offset + 1 (the lowest genuine), exactly linear in the offset.
    fold = _fold([[o + 1, o + 2] for o in offsets], [[o - 1, o - 2] for o in offsets])
    assert gap_sources.threshold_r2([fold], [offsets]) == pytest.approx(1.0)
    noise = rng.normal(0, 1, 40)
    assert gap_sources.threshold_r2([fold], [noise]) < 0.2


def test_warp_keeps_the_image_and_is_reproducible_from_the_seed():
    img = np.zeros((60, 90), np.uint8)
    img[25:35, 20:70] = 200
    a = gap_sources.warp(img, np.random.default_rng(3), alpha=3.0, sigma=8.0)
    b = gap_sources.warp(img, np.random.default_rng(3), alpha=3.0, sigma=8.0)
    c = gap_sources.warp(img, np.random.default_rng(4), alpha=3.0, sigma=8.0)
    assert a.shape == img.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, img)
    # The ink is moved and stretched (x-scale up to 8 %, a smooth field), not created or lost.
    assert 0.6 < a.astype(float).sum() / img.astype(float).sum() < 1.5


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A tiny model with a centred cue and a pair cue, its population and background."""
    from test_pair_cue import calibrated_with_pair

    from sigver.calibration import stored_calibration
    from sigver.models.checkpoint import load_checkpoint

    path, _, fs, _, kw = calibrated_with_pair(tmp_path_factory.mktemp("gap"))
    cal = stored_calibration(load_checkpoint(path).meta.metrics)
    from threshold_transfer import stored_cue

    cue = stored_cue(cal, path.name, "balanced")
    assert cue is not None and cue[1] is not None
    return fs, kw, cue


def test_population_anchor_zero_is_the_product_row_and_eer_user_never_moves(toy, monkeypatch):
    fs, kw, cue = toy
    # Copies identical to the images themselves: the anchor's location is then the mean
    # in-sample score of the references.
    pseudo = np.repeat(fs.features[:, None, :], 2, axis=1)
    monkeypatch.setattr(gap_sources, "ANCHORS", (0.0, 1.0))
    import threshold_transfer

    # The study's simulation picks the population's users there.
    monkeypatch.setattr(threshold_transfer, "_users", lambda name, f: kw["users"])
    args = SimpleNamespace(refs=4, folds=2, seed=1234, jobs=1, floor_rounds=2)
    res = gap_sources._population("toy", fs, pseudo, kw["background"], cue, "loo-lcb=0", args)
    assert set(res["variants"]) == {"cue off", "cue on"}
    for v in res["variants"].values():
        rows = v["rows"]
        assert rows["pseudo-forgery anchor a=0"] == pytest.approx(rows["loo-lcb=0"])
        assert len({round(r["EER_user"], 12) for r in rows.values()}) == 1
        assert {"oracle: genuine", "oracle: mid"} <= set(rows)
    off, on = (res["variants"][k]["rows"]["loo-lcb=0"] for k in ("cue off", "cue on"))
    assert off != on  # the cue is applied in the second variant
    # The rows derived by shifting equal the product path's normalised scores.
    from sigver.evaluation import simulate_deployment

    run = simulate_deployment(
        fs,
        users=kw["users"],
        background=kw["background"],
        refs=4,
        folds=2,
        normalization="loo-lcb=0",
        progress=False,
    )
    for k in ("loo-lcb=0", "loo-lcb=1"):
        product = gap_sources.gap_of([(f.genuine, f.skilled) for f in run.scores(k)])
        assert res["variants"]["cue off"]["rows"][k] == pytest.approx(product)


def test_copy_scores_centred_image_cue_cancels_on_copies_equal_to_the_references(toy):
    from sigver.evaluation import simulate_deployment

    fs, kw, cue = toy
    image = cue[0]
    assert image.centred and image.weight > 0
    pseudo = np.repeat(fs.features[:, None, :], 3, axis=1)
    d = pseudo.shape[2]
    run = simulate_deployment(
        fs,
        users=kw["users"],
        background=kw["background"],
        refs=4,
        folds=2,
        normalization="loo-lcb=0",
        probe=lambda model, split, i: model.raw_scores(pseudo[split.refs[i]].reshape(-1, d)),
        progress=False,
    )
    plain = gap_sources.copy_scores(run, pseudo)
    cued = gap_sources.copy_scores(run.with_forgery_cue(image, fs), pseudo, image)
    for fold_plain, fold_cued in zip(plain, cued, strict=True):
        for p, c in zip(fold_plain, fold_cued, strict=True):
            # Each copy loses its image penalty and gains the references' mean one: over
            # copies of exactly the references, the two cancel on average.
            assert np.mean(c) == pytest.approx(np.mean(p))
            assert not np.allclose(c, p)

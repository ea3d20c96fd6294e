"""scripts/forgery_transport.py: the displacement bank, transport, the probe and the rule."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import forgery_transport as ft  # noqa: E402
import gap_sources  # noqa: E402

from sigver.featureset import FeatureSet  # noqa: E402


def _toy() -> FeatureSet:
    # Writer "a": genuines (0, 0), (2, 2) -> centroid (1, 1); forgeries (3, 1), (1, 4).
    # Writer "b": genuines (5, 5) only. Writer "c": genuine (0, 1), forgery (0, 0).
    feats = [[0, 0], [2, 2], [3, 1], [1, 4], [5, 5], [0, 1], [0, 0]]
    return FeatureSet(
        features=np.asarray(feats, np.float32),
        y=np.array([0, 0, 0, 0, 1, 2, 2]),
        yforg=np.array([0, 0, 1, 1, 0, 0, 1]),
        user_ids=np.array(["a", "b", "c"]),
        filenames=np.array([f"{i}.png" for i in range(7)]),
    )


def test_bank_holds_each_forgery_minus_its_writers_genuine_centroid():
    rows, owners = ft.displacement_bank(_toy(), ("a", "b", "c"))
    # "b" has no forgery and adds nothing.
    np.testing.assert_allclose(rows, [[2, 0], [0, 3], [0, -1]])
    assert owners.tolist() == ["a", "a", "c"]
    empty, none = ft.displacement_bank(_toy(), ("b",))
    assert empty.shape == (0, 2) and none.size == 0


def test_transport_adds_distinct_bank_rows_to_the_reference_centroid_and_clips():
    bank = np.array([[1.0, -5.0], [2.0, 0.0], [3.0, 1.0]])
    refs = np.array([[0.0, 2.0], [2.0, 2.0]])  # centroid (1, 2)
    points, idx = ft.transported(refs, bank, np.random.default_rng(0), 10, clip=False)
    assert sorted(idx.tolist()) == [0, 1, 2]  # capped at the bank, no repeat
    np.testing.assert_allclose(points, [[2, -3], [3, 2], [4, 3]])
    clipped, _ = ft.transported(refs, bank, np.random.default_rng(0), 10, clip=True)
    np.testing.assert_allclose(clipped, [[2, 0], [3, 2], [4, 3]])
    two, idx2 = ft.transported(refs, bank, np.random.default_rng(1), 2, clip=False)
    assert len(set(idx2.tolist())) == 2 and two.shape == (2, 2)
    with pytest.raises(ValueError, match="empty"):
        ft.transported(refs, bank[:0], np.random.default_rng(0), 2, clip=False)


class _SumModel:
    def raw_scores(self, x):
        return np.asarray(x, np.float64).sum(axis=1)


def test_probe_never_shows_a_writer_their_own_forgeries_and_is_reproducible():
    fs = _toy()
    rows, owners = ft.displacement_bank(fs, ("a", "c"))
    banks = {"rows": rows, "owners": np.stack([np.full(len(owners), "sigcomp"), owners], axis=1)}
    probe = ft._probe(fs, "sigcomp", banks, 5, False, seed=3)
    split = SimpleNamespace(seed=7, users=np.array([0, 2]), refs=[np.array([0, 1]), np.array([5])])
    raw_a, idx_a = probe(_SumModel(), split, 0)
    assert idx_a.tolist() == [2]  # only "c"'s displacement
    assert raw_a.tolist() == pytest.approx([1 + 0 + 1 - 1])  # centroid (1, 1) + (0, -1)
    raw_c, idx_c = probe(_SumModel(), split, 1)
    assert sorted(idx_c.tolist()) == [0, 1]
    again = probe(_SumModel(), split, 1)
    assert np.array_equal(again[1], idx_c) and np.array_equal(again[0], raw_c)
    # The same writer in another population's bank is someone else.
    other = ft._probe(fs, "synthetic", banks, 5, False, seed=3)
    assert sorted(other(_SumModel(), split, 0)[1].tolist()) == [0, 1, 2]


def test_transported_means_are_the_users_mean_score_minus_the_products_location(monkeypatch):
    fs = _toy()
    rows, _ = ft.displacement_bank(fs, ("a", "c"))
    banks = {"rows": rows}
    split = SimpleNamespace(seed=0, users=np.array([0]), refs=[np.array([0, 1])])
    # Scores of centroid (1, 1) plus rows 0 and 2: (3, 1) -> 4 and (1, 0) -> 1, mean 2.5.
    run = SimpleNamespace(
        splits=[split],
        probes=[[(np.array([4.0, 1.0]), np.array([0, 2]))]],
        penalty=None,
        pair_cue=None,
        normalization="loo-lcb=0",
    )
    monkeypatch.setattr(ft, "product_locs", lambda r, m: [[0.5]])
    offset, loc = ft.transported_means({"run": run}, fs, banks, None, clip=False)
    assert offset.tolist() == pytest.approx([2.0]) and loc.tolist() == [0.5]
    # A run that decides with an image cue needs that cue to score extra rows.
    with pytest.raises(ValueError, match="image cue"):
        gap_sources.decided_extra(
            SimpleNamespace(**{**vars(run), "penalty": np.zeros(7)}), [[rows[:1]]], [[[0.0]]]
        )


def test_bank_keys_each_row_by_corpus_and_writer_and_refuses_an_empty_bank():
    fs = _toy()
    bank = ft.bank_of(
        [
            ("sigcomp", *ft.displacement_bank(fs, ("a",))),
            ("synthetic", *ft.displacement_bank(fs, ("b",))),  # no forgery: nothing
            ("synthetic", *ft.displacement_bank(fs, ("a", "c"))),
        ]
    )
    assert bank["rows"].shape == (5, 2)
    assert bank["owners"].tolist() == [
        ["sigcomp", "a"],
        ["sigcomp", "a"],
        ["synthetic", "a"],
        ["synthetic", "a"],
        ["synthetic", "c"],
    ]
    with pytest.raises(ValueError, match="empty"):
        ft.bank_of([("sigcomp", *ft.displacement_bank(fs, ("b",)))])


def _two_folds():
    # Per fold, two perfectly separated users, the second 10 above the first.
    def fold(d):
        return SimpleNamespace(
            genuine=[np.array([1.0, 2.0]) + d, np.array([11.0, 12.0]) + d],
            skilled=[np.array([0.0, 0.5]) + d, np.array([10.0, 10.5]) + d],
        )

    return [fold(0.0), fold(3.0)]


def test_anchor_gaps_move_each_users_location_by_a_times_its_offset(monkeypatch):
    import forgeability

    monkeypatch.setattr(forgeability, "product_locs", lambda run, norm: [[0.0, 0.0], [3.0, 3.0]])
    pop = {"run": None, "base": _two_folds(), "offset": np.array([0.0, 10.0, 0.0, 10.0])}
    gaps = ft.anchor_gaps(pop, "loo-lcb=0", (0.0, 0.5, 1.0))
    # a = 0: the product's locations leave the second user 10 above: one threshold fails.
    assert gaps[0.0]["gap"] > 0.2 and gaps[0.0]["EER_user"] == 0.0
    # a = 1 moves each user by their whole offset, in the right fold and row: gap closed.
    assert gaps[1.0]["gap"] == 0.0 and gaps[1.0]["EER_global"] == 0.0
    assert 0.0 < gaps[0.5]["gap"] <= gaps[0.0]["gap"]
    # Offsets in the wrong row order (user 2's shift on user 1) would widen it instead.
    swapped = {**pop, "offset": np.array([10.0, 0.0, 10.0, 0.0])}
    assert ft.anchor_gaps(swapped, "loo-lcb=0", (1.0,))[1.0]["gap"] > gaps[0.0]["gap"] - 1e-9


def test_gap_ratios_divide_by_the_raw_gap_and_refuse_a_population_without_one():
    pops = {
        "x": {"raw_gap": 0.2, "anchors": {0.0: {"gap": 0.1}, 0.5: {"gap": 0.05}}},
        "y": {"raw_gap": 0.4, "anchors": {0.0: {"gap": 0.4}, 0.5: {"gap": 0.1}}},
    }
    assert ft.gap_ratios(pops) == {"x": {0.0: 0.5, 0.5: 0.25}, "y": {0.0: 1.0, 0.5: 0.25}}
    with pytest.raises(ValueError, match="no positive gap on y"):
        ft.gap_ratios({**pops, "y": {**pops["y"], "raw_gap": 0.0}})


def test_correlations_on_the_base_scale_are_not_made_by_a_shared_location():
    rng = np.random.default_rng(0)
    n = 200
    loc = rng.normal(0, 10, n)  # users' locations vary a lot
    m_t, thr, med = rng.normal(size=(3, n))  # independent of each other on the base scale
    pop = {
        "valid": np.ones(n, bool),
        "offset": m_t - loc,
        "loc": loc,
        "targets": np.stack([thr - loc, med - loc, np.zeros(n)], axis=1),
    }
    rho = ft.correlations(pop)
    assert rho["threshold"] > 0.9 and rho["median skilled"] > 0.9  # the shared -loc
    assert abs(rho["threshold, base scale"]) < 0.2
    assert abs(rho["median skilled, base scale"]) < 0.2


def test_rule_picks_the_lowest_mean_calibration_ratio_and_ignores_held_out_rows():
    ratios = {
        "synthetic-a": {a: 1.0 - 0.2 * a for a in ft.ANCHORS},
        "sigcomp-dev": {a: 1.0 + 0.1 * a for a in ft.ANCHORS},
        "sigcomp-exp": {a: 0.0 if a == 0.1 else 9.0 for a in ft.ANCHORS},
    }
    assert ft.choose_anchor(ratios) == 1.0  # mean 1 - 0.05 a: the largest a
    flat = {n: {a: 0.7 for a in ft.ANCHORS} for n in ft.CALIBRATION}
    assert ft.choose_anchor(flat) == 0.0  # a tie keeps the product


def test_ols_slope_recovers_a_linear_relation_and_survives_a_constant():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    assert ft.ols_slope(x, 0.4 * x - 2) == pytest.approx(0.4)
    assert ft.ols_slope(np.ones(4), x) == 0.0

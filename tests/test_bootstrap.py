"""sigver.bootstrap: writer draws against the plain metric functions, interval behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from sigver.bootstrap import WriterDraws, percentile_interval, writer_intervals
from sigver.evaluation import FoldScores


def _pick(folds, idx):
    """The writers ``idx`` (repeats allowed) of every fold, as an evaluation of their own."""
    return [
        FoldScores(
            genuine=[f.genuine[i] for i in idx],
            random=[f.random[i] for i in idx],
            skilled=[f.skilled[i] for i in idx],
            simple=[f.simple[i] for i in idx],
        )
        for f in folds
    ]


def _fold(shifts, rng, random_level=-3.0):
    return FoldScores(
        genuine=[rng.normal(1 + d, 1, 6) for d in shifts],
        random=[rng.normal(random_level, 1, 8) for _ in shifts],
        skilled=[rng.normal(-1 + d, 1, 9) for d in shifts],
        simple=[np.empty(0) for _ in shifts],
    )


def test_a_writer_draw_matches_the_metrics_of_the_drawn_writers_scores():
    """The precomputed draw against compute_metrics / fixed_threshold_point on the same users."""
    from sigver.evaluation import FoldScores, fixed_threshold_point
    from sigver.metrics import compute_metrics

    rng = np.random.default_rng(3)

    def fold():
        n = 5
        return FoldScores(
            genuine=[rng.normal(1 + 0.4 * u, 1, 6) for u in range(n)],
            random=[rng.normal(-3, 1, 8) for _ in range(n)],
            skilled=[rng.normal(-0.5 * u, 1, 9) for u in range(n)][: n - 1] + [np.empty(0)],
            simple=[np.empty(0)] * n,
        )

    scores = [fold(), fold()]
    writers = WriterDraws(scores)
    for idx in (np.arange(5), np.array([0, 0, 3, 4, 4]), np.array([2, 1, 1, 4, 0])):
        drawn = _pick(scores, idx)
        want = [compute_metrics(f.genuine, f.random, f.skilled) for f in drawn]
        got = writers.draw(idx, threshold=0.2)
        assert got["EER_global"] == pytest.approx(np.mean([m["EER_global"] for m in want]))
        assert got["EER_user"] == pytest.approx(np.mean([m["EER_user"] for m in want]))
        point = fixed_threshold_point(drawn, 0.2)["summary"]
        assert got["FRR"] == pytest.approx(point["FRR"]["mean"])
        assert got["FAR_skilled"] == pytest.approx(point["FAR_skilled"]["mean"])
        assert got["FAR_random"] == pytest.approx(point["FAR_random"]["mean"])


def test_identical_writers_give_one_value_per_figure():
    rng = np.random.default_rng(0)
    fold = _fold([0.0], rng)
    same = FoldScores(
        **{k: getattr(fold, k) * 5 for k in ("genuine", "random", "skilled", "simple")}
    )
    iv = writer_intervals([same, same], threshold=0.0, rounds=25, seed=4)
    for k in ("EER_global", "EER_user", "FRR", "FAR_skilled", "FAR_random"):
        assert iv[k][0] == pytest.approx(iv[k][1]), k
    assert iv["undefined"] == dict.fromkeys(iv["undefined"], 0)
    # Without a threshold only the EERs are drawn.
    assert set(writer_intervals([same], rounds=3)) == {
        "rounds",
        "level",
        "undefined",
        "EER_global",
        "EER_user",
    }


def test_one_writer_whose_genuines_all_fail_widens_the_frr_interval():
    rng = np.random.default_rng(1)
    folds = [_fold([0.0, 0.0, 0.0, -50.0, 0.0], rng) for _ in range(2)]
    iv = writer_intervals(folds, threshold=-0.5, rounds=200, seed=0)
    # Draws without writer 3 (a third of them) have FRR near 7 %, with him twice near 45 %.
    assert iv["FRR"][0] < 0.15
    assert iv["FRR"][1] > 0.4
    again = writer_intervals(folds, threshold=-0.5, rounds=200, seed=0)
    assert again == iv  # seeded


def test_a_fold_that_leaves_a_figure_undefined_is_left_out_of_its_mean():
    rng = np.random.default_rng(5)
    defined = _fold([0.0, 1.0], rng)
    # The same writers with no random forgeries in this fold: FAR_random undefined there.
    empty = FoldScores(
        genuine=defined.genuine,
        random=[np.empty(0), np.empty(0)],
        skilled=defined.skilled,
        simple=defined.simple,
    )
    draws = WriterDraws([defined, empty])
    got = draws.draw(np.array([0, 1]), threshold=-2.0)
    alone = WriterDraws([defined]).draw(np.array([0, 1]), threshold=-2.0)
    assert got["FAR_random"] == pytest.approx(alone["FAR_random"])
    assert np.isnan(WriterDraws([empty]).draw(np.array([0, 1]), threshold=-2.0)["FAR_random"])


def test_bad_input_is_refused():
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="no fold"):
        WriterDraws([])
    with pytest.raises(ValueError, match="different numbers"):
        WriterDraws([_fold([0.0, 1.0], rng), _fold([0.0], rng)])
    short = _fold([0.0, 1.0], rng)
    with pytest.raises(ValueError, match="different numbers"):
        WriterDraws([FoldScores(short.genuine, short.random[:1], short.skilled, short.simple)])
    with pytest.raises(ValueError, match="rounds"):
        writer_intervals([_fold([0.0], rng)], rounds=0)
    with pytest.raises(ValueError, match="level"):
        percentile_interval([1.0, 2.0], level=0.0)
    assert np.isnan(percentile_interval([float("nan")])).all()
    assert percentile_interval([1.0, 2.0, 3.0], level=0.5) == [1.5, 2.5]


def test_paired_intervals_of_two_copies_are_zero_and_b_is_never_lower():
    from sigver.bootstrap import paired_intervals

    rng = np.random.default_rng(5)
    scores = [_fold([0.0, 0.5, 1.0, 1.5], rng) for _ in range(3)]
    out = paired_intervals(scores, scores, (0.0, 0.0), rounds=50, seed=1)
    for k in ("EER_global", "EER_user", "gap", "FRR", "FAR_skilled", "FAR_random"):
        assert out["difference"][k] == [0.0, 0.0], k
        assert out["b_lower"][k] == 0.0
        assert out["point"]["a"][k] == out["point"]["b"][k]
    # Without both thresholds, the rates at a threshold are not compared.
    assert "FRR" not in paired_intervals(scores, scores, (0.0, None), rounds=5)["point"]["a"]


def test_paired_intervals_see_a_per_user_alignment_that_separate_intervals_miss():
    """B = A with every writer's offset removed: the gap shrinks on every draw."""
    from sigver.bootstrap import paired_intervals

    rng = np.random.default_rng(11)
    shifts = np.linspace(-2, 2, 12)
    a = [_fold(shifts, rng) for _ in range(4)]
    b = _aligned(a, shifts)
    out = paired_intervals(a, b, rounds=200, seed=2)
    # A per-user shift leaves EER_user exactly as it is, draw by draw.
    assert out["difference"]["EER_user"] == [0.0, 0.0]
    assert out["difference"]["gap"][1] < 0 and out["b_lower"]["gap"] == 1.0
    # The point figures are the fold means of the plain metric functions.
    from sigver.metrics import eer_global

    expected = np.mean(
        [eer_global(np.concatenate(f.genuine), np.concatenate(f.skilled))[0] for f in b]
    )
    assert out["point"]["b"]["EER_global"] == pytest.approx(expected)


def test_paired_intervals_refuse_different_writers():
    from sigver.bootstrap import paired_intervals

    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="differ"):
        paired_intervals([_fold([0, 1], rng)], [_fold([0, 1, 2], rng)])
    with pytest.raises(ValueError, match="differ"):
        paired_intervals([_fold([0, 1], rng)], [_fold([0, 1], rng)] * 2)


def _aligned(folds, shifts):
    return [
        FoldScores(
            genuine=[g - d for g, d in zip(f.genuine, shifts, strict=True)],
            random=f.random,
            skilled=[s - d for s, d in zip(f.skilled, shifts, strict=True)],
            simple=f.simple,
        )
        for f in folds
    ]


def test_transfer_intervals_match_a_plain_loop_over_the_same_writer_draws():
    from sigver.bootstrap import transfer_intervals
    from sigver.evaluation import fixed_threshold_point, transfer_check

    rng = np.random.default_rng(4)
    shifts = np.linspace(-1.5, 1.5, 8)
    raw = [_fold(shifts, rng) for _ in range(3)]
    decided = _aligned(raw, 0.6 * shifts)  # 60 % of each writer's offset removed
    out = transfer_intervals(decided, raw, 0.1, rounds=40, seed=9)
    # The same draws give the decided scores' own intervals, as writer_intervals does.
    assert out["figures"] == writer_intervals(decided, 0.1, rounds=40, seed=9)
    # The plain loop: the same generator, each draw's writers' scores as their own
    # evaluation, read by transfer_check (the function the deployment report uses).
    gen = np.random.default_rng(9)
    ratios, holds, halved = [], [], []
    for _ in range(40):
        idx = gen.integers(8, size=8)
        d = _pick(decided, idx)
        point = fixed_threshold_point(d, 0.1)["summary"]
        c = transfer_check(
            d,
            _pick(raw, idx),
            {"FRR": point["FRR"]["mean"], "FAR_skilled": point["FAR_skilled"]["mean"]},
            floor_rounds=1,
        )
        ratios.append(c["gap_ratio"])
        holds.append(c["threshold_holds"])
        halved.append(c["gap_halved"])
    assert out["gap_ratio"] == pytest.approx(percentile_interval(ratios, 0.9))
    assert out["share_holds"] == pytest.approx(np.mean(holds))
    assert out["share_halved"] == pytest.approx(np.mean(halved))
    assert out["gap_ratio"][0] < out["gap_ratio"][1] < 1


def test_transfer_intervals_of_unchanged_scores_keep_the_whole_gap():
    from sigver.bootstrap import transfer_intervals

    rng = np.random.default_rng(6)
    raw = [_fold(np.linspace(-2, 2, 10), rng) for _ in range(2)]
    out = transfer_intervals(raw, raw, 0.0, rounds=30, seed=0)
    assert out["gap_ratio"] == pytest.approx([1.0, 1.0]) and out["share_halved"] == 0.0
    aligned = transfer_intervals(_aligned(raw, np.linspace(-2, 2, 10)), raw, 0.0, rounds=30)
    assert aligned["share_halved"] == 1.0
    with pytest.raises(ValueError, match="differ"):
        transfer_intervals(raw, raw[:1], 0.0, rounds=5)

"""Selection rules of the research scripts, on hand-made toy rows."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import svm_grid  # noqa: E402

DEFAULT = {"kernel": "rbf", "C": 1.0, "gamma": 2.0**-11}


def _row(c: float, a_user: float, a_glob: float, d_user: float, d_glob: float) -> dict:
    return {
        "params": {**DEFAULT, "C": c},
        "synthetic-a": {"EER_user": a_user, "EER_global": a_glob},
        "sigcomp-dev": {"EER_user": d_user, "EER_global": d_glob},
    }


def test_svm_grid_adopts_only_a_gain_on_both_populations() -> None:
    base = _row(1.0, 5.0, 9.0, 6.0, 10.0)
    # Mean EER_user 4.5 (gain 0.5 and 0.5), EER_global no worse: adopted.
    good = _row(3.0, 4.5, 9.1, 5.5, 10.0)
    assert svm_grid.decide([base, good], DEFAULT) == (base, good, True)
    # Lower mean (4.45) but only 0.1 better on sigcomp-dev: the default stays.
    lopsided = _row(3.0, 3.0, 9.0, 5.9, 10.0)
    assert svm_grid.decide([base, lopsided], DEFAULT) == (base, lopsided, False)
    # Better EER_user but EER_global 0.3 worse on one population: the default stays.
    costly = _row(3.0, 4.0, 9.3, 5.0, 10.0)
    assert svm_grid.decide([base, costly], DEFAULT)[2] is False
    # The default itself is best: nothing to adopt.
    worse = _row(3.0, 6.0, 9.0, 7.0, 10.0)
    assert svm_grid.decide([worse, base], DEFAULT) == (base, base, False)


def test_forgery_finetune_needs_both_eers_lower_then_takes_the_best_mean() -> None:
    import forgery_finetune as ff

    v3 = {"EER_user": 5.0, "EER_global": 10.0}
    results = {
        "v3": v3,
        "better-user-only": {"EER_user": 3.0, "EER_global": 10.5},  # EER_global worse
        "good": {"EER_user": 4.5, "EER_global": 9.0},  # mean 6.75
        "best": {"EER_user": 4.0, "EER_global": 9.2},  # mean 6.6
    }
    assert ff.decide(results) == "best"
    del results["best"], results["good"]
    assert ff.decide(results) == "v3"
    # Ties with the reference do not qualify.
    assert ff.decide({"v3": v3, "tie": dict(v3)}) == "v3"
    assert ff.mean_eers(
        {"A->B": {"EER_user": 2.0, "EER_global": 6.0}, "B->A": {"EER_user": 4.0, "EER_global": 8.0}}
    ) == {"EER_user": 3.0, "EER_global": 7.0}


def test_gap_experiments_more_genuine_split_on_a_toy_user() -> None:
    import gap_experiments as ge
    import numpy as np

    row = {"genuine": np.array([1.0, 2.0, 3.0, 4.0]), "skilled": np.array([0.0]), "loo": [0.5, 1.5]}
    test, methods = ge.more_genuine_rows([row])
    # The first half is the extra enrollment data, the second half is scored.
    assert test[0]["genuine"].tolist() == [3.0, 4.0]
    assert test[0]["skilled"].tolist() == [0.0]
    loc = {name: float(loc[0]) for name, (loc, _) in methods.items()}
    assert loc == {
        "none": 0.0,
        "LOO mean (loo-lcb=0)": 1.0,
        "mean of the extra genuines": 1.5,
        "mean of LOO and extra genuines": 1.25,
        "in-sample mean of the scored genuines": 3.5,
    }
    assert all(float(scale[0]) == 1.0 for _, scale in methods.values())


def test_background_size_keeps_the_shipped_size_without_a_clear_gain() -> None:
    import background_size as bs

    def row(a_user: float, a_glob: float, d_user: float, d_glob: float) -> dict:
        return {
            "synthetic-a": {"EER_user": a_user, "EER_global": a_glob},
            "sigcomp-dev": {"EER_user": d_user, "EER_global": d_glob},
        }

    shipped = row(3.0, 5.0, 6.0, 8.0)
    # 0.3 better on both, EER_global +0.1 at most: adopted.
    assert bs.decide({80: shipped, 480: row(2.7, 5.1, 5.7, 8.0)}) == (480, True)
    # Better on average, but only 0.1 better on sigcomp-dev.
    assert bs.decide({80: shipped, 480: row(2.0, 5.0, 5.9, 8.0)}) == (480, False)
    # Gains on both, EER_global 0.5 worse on one.
    assert bs.decide({80: shipped, 480: row(2.5, 5.5, 5.5, 8.0)}) == (480, False)
    # The shipped size is best.
    assert bs.decide({0: row(4.0, 6.0, 7.0, 9.0), 80: shipped}) == (80, False)


def test_forgery_realism_probe_reads_a_shared_cue_and_its_direction() -> None:
    import forgery_realism as fr
    import numpy as np
    import pytest

    rng = np.random.default_rng(0)

    def sample(n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
        forg = np.repeat([0, 1], n)
        x = rng.normal(size=(2 * n, 8))
        x[:, 0] += shift * forg  # the forgery cue lives in one dimension
        return x, forg

    x_train, f_train = sample(100, 4.0)
    x_same, f_same = sample(100, 4.0)
    x_flip, f_flip = sample(100, -4.0)
    x_none, f_none = sample(100, 0.0)
    assert fr.probe_auc(x_train, f_train, x_same, f_same) > 0.98
    # A cue that points the other way on the test population gives AUC far below chance.
    assert fr.probe_auc(x_train, f_train, x_flip, f_flip) < 0.02
    assert 0.35 < fr.probe_auc(x_train, f_train, x_none, f_none) < 0.65
    with pytest.raises(ValueError, match="both genuine"):
        fr.probe_auc(x_train, f_train, x_none[:100], f_none[:100])


def test_forgery_realism_fusion_moves_forgeries_by_their_own_probe_value() -> None:
    import forgery_realism as fr
    import numpy as np

    from sigver.evaluation import FoldScores
    from sigver.protocol import FoldSplit

    # Two users; images 0-3 genuine of user 0, 4-7 of user 1, 8-9 / 10-11 their forgeries.
    # Raw scores cannot tell forgeries (0.5) from genuines (0.5); the probe value z can.
    split = FoldSplit(
        fold=0,
        seed=0,
        users=np.array([0, 1]),
        refs=[np.array([0]), np.array([4])],
        test_genuine=[np.array([1, 2, 3]), np.array([5, 6, 7])],
        skilled=[np.array([8, 9]), np.array([10, 11])],
        simple=[np.zeros(0, int), np.zeros(0, int)],
        negatives=np.zeros(0, int),
    )
    z = np.array([0.0] * 8 + [1.0] * 4)
    gen = [np.array([0.5, 0.6, 0.7]), np.array([0.5, 0.6, 0.7])]
    rnd = [np.array([-1.0, -1.0, -1.0])] * 2
    skl = [np.array([0.6, 0.6]), np.array([0.6, 0.6])]
    scores = FoldScores(genuine=gen, random=rnd, skilled=skl, simple=[np.zeros(0)] * 2)
    eers = fr.fused_eers([scores], [split], z, (0.0, 1.0))
    assert eers[0.0]["EER_global"] > 10  # forgeries at 0.6 sit inside the genuine range
    assert eers[1.0] == {"EER_global": 0.0, "EER_user": 0.0, "FAR_random": 0.0}  # separated
    # A population shift of user 1's cue (all of its images, references included) is
    # removed by centring on the references, and only then.
    shifted = z + np.array([0.0] * 4 + [3.0] * 4 + [0.0] * 2 + [3.0] * 2)
    assert fr.fused_eers([scores], [split], shifted, (1.0,))[1.0]["EER_global"] > 10
    centred = fr.fused_eers([scores], [split], shifted, (1.0,), centred=True)
    # ... at a price: user 1's shift (+3) also lifts the other writer's genuine
    # signatures it is asked about (z = 0) to -1 + 3 = 2, so half the random forgeries pass.
    assert centred[1.0] == {"EER_global": 0.0, "EER_user": 0.0, "FAR_random": 50.0}


def test_forgery_realism_counts_random_forgeries_a_weight_lets_through() -> None:
    import forgery_realism as fr
    import numpy as np

    from sigver.evaluation import FoldScores
    from sigver.protocol import FoldSplit

    # Two users: rows 0-4 user 0 (reference, 2 test genuines, 2 skilled forgeries), rows
    # 5-9 user 1 alike. Random forgeries are the other user's test genuines.
    split = FoldSplit(
        fold=0,
        seed=0,
        users=np.array([0, 1]),
        refs=[np.array([0]), np.array([5])],
        test_genuine=[np.array([1, 2]), np.array([6, 7])],
        skilled=[np.array([3, 4]), np.array([8, 9])],
        simple=[np.zeros(0, int), np.zeros(0, int)],
        negatives=np.zeros(0, int),
    )
    scores = FoldScores(
        genuine=[np.array([1.0, 1.2])] * 2,
        random=[np.array([-2.0, -2.0])] * 2,
        skilled=[np.array([0.0, 0.1])] * 2,
        simple=[np.zeros(0)] * 2,
    )
    z = np.zeros(10)
    assert fr.fused_eers([scores], [split], z, (1.0,))[1.0]["FAR_random"] == 0.0
    # The cue rates user 1's test genuines as very genuine-looking (z = -4): as user 0's
    # random forgeries they score -2 + 4 = 2, above the equal-error threshold; still
    # nothing is confused among genuine signatures and skilled forgeries.
    z[[6, 7]] = -4.0
    out = fr.fused_eers([scores], [split], z, (1.0,))[1.0]
    assert out == {"EER_global": 0.0, "EER_user": 0.0, "FAR_random": 50.0}


def test_forgery_realism_far_random_bound_removes_a_weight_from_the_choice() -> None:
    import forgery_realism as fr

    inner = {
        0.0: {"EER_global": 10.0, "EER_user": 5.0, "FAR_random": 0.05},
        0.3: {"EER_global": 9.0, "EER_user": 4.8, "FAR_random": 0.4},
        0.75: {"EER_global": 7.0, "EER_user": 4.5, "FAR_random": 5.0},
    }
    assert fr.choose_weight(inner) == (0.75, True)
    assert fr.choose_weight(inner, max_far_random=0.5) == (0.3, True)
    assert fr.choose_weight(inner, max_far_random=0.1) == (0.0, False)


def test_forgery_realism_weight_needs_a_clear_global_gain() -> None:
    import forgery_realism as fr

    inner = {0.0: {"EER_global": 10.0, "EER_user": 5.0}, 0.5: {"EER_global": 9.4, "EER_user": 5.1}}
    assert fr.choose_weight(inner) == (0.5, True)
    inner[0.5] = {"EER_global": 9.7, "EER_user": 5.0}  # 0.3 points: not enough
    assert fr.choose_weight(inner) == (0.5, False)
    inner[0.5] = {"EER_global": 9.0, "EER_user": 5.3}  # EER_user 0.3 worse
    assert fr.choose_weight(inner) == (0.5, False)
    inner[0.5] = {"EER_global": 10.5, "EER_user": 4.0}
    assert fr.choose_weight(inner) == (0.0, False)


def test_ensemble_concatenation_joins_rows_of_the_same_images_only() -> None:
    import ensemble_experiment as ens
    import numpy as np
    import pytest

    from sigver.errors import DatasetError
    from sigver.featureset import FeatureSet

    def fs(values: list[list[float]], files: list[str]) -> FeatureSet:
        n = len(values)
        return FeatureSet(
            np.array(values), np.zeros(n, int), np.zeros(n, int), np.array(["w"]), np.array(files)
        )

    a = fs([[1.0], [2.0]], ["x.png", "y.png"])
    b = fs([[3.0, 4.0], [5.0, 6.0]], ["x.png", "y.png"])
    joined = ens.concat_featuresets([a, b], "a+b")
    assert joined.features.tolist() == [[1.0, 3.0, 4.0], [2.0, 5.0, 6.0]]
    assert joined.meta["model_id"] == "a+b"
    # Same shapes, other images (v1's background against v2's): refused, not joined.
    with pytest.raises(DatasetError, match="different images"):
        ens.concat_featuresets([a, fs([[0.0], [0.0]], ["y.png", "x.png"])], "a+c")
    with pytest.raises(DatasetError):
        ens.concat_featuresets([], "none")


def test_eval_holdouts_table_means_over_scripts_and_refuses_bad_model_args(tmp_path: Path) -> None:
    import argparse
    import json

    import eval_holdouts
    import pytest

    from sigver.synth.scripts import SCRIPTS

    scripts = list(SCRIPTS)
    for i, script in enumerate(scripts):
        for name, user in (("a", 0.01 * i), ("b", 0.10)):
            out = tmp_path / "eval" / f"holdout-{script}-{name}"
            out.mkdir(parents=True)
            summary = {"EER_user": {"mean": user}, "EER_global": {"mean": 2 * user}}
            (out / "results.json").write_text(json.dumps({"summary": summary}))
    table = eval_holdouts.holdout_table(tmp_path, ["a", "b"]).splitlines()
    assert table[0] == "| script | a | b |"
    assert table[2] == f"| {scripts[0]} | 0.00 / 0.00 | 10.00 / 20.00 |"
    mean_a = 100 * 0.01 * sum(range(len(scripts))) / len(scripts)
    assert table[-1] == f"| **mean** | **{mean_a:.2f} / {2 * mean_a:.2f}** | **10.00 / 20.00** |"
    assert eval_holdouts._model_arg("v6=sigver-sigresnet-v6") == ("v6", "sigver-sigresnet-v6")
    for bad in ("sigver-sigresnet-v6", "=x", "v6="):
        with pytest.raises(argparse.ArgumentTypeError, match="NAME=MODEL"):
            eval_holdouts._model_arg(bad)


def test_pair_cue_rule_bounds_far_random_and_needs_a_margin_over_the_cue() -> None:
    import pair_cue

    def row(g: float, u: float, r: float = 0.1) -> dict:
        return {"EER_global": g, "EER_user": u, "FAR_random": r}

    inner = {("plain", 0.0): row(8.0, 4.5), ("cue", 0.3): row(6.0, 3.0)}
    inner[("pair", 0.5)] = row(5.0, 3.1)  # 1.0 better, user 0.1 worse: better
    inner[("pair, centred", 0.5)] = row(4.0, 2.0, r=0.6)  # best, but over the bound
    assert pair_cue.choose(inner) == {"chosen": ("pair", 0.5), "better_than_cue": True}
    inner[("pair", 0.5)] = row(5.8, 3.0)  # only 0.2 better than the cue
    assert pair_cue.choose(inner) == {"chosen": ("pair", 0.5), "better_than_cue": False}
    inner[("pair", 0.5)] = row(5.0, 3.3)  # user 0.3 worse
    assert pair_cue.choose(inner)["better_than_cue"] is False


def test_pair_cue_extra_writers_join_the_pairs_never_a_real_writer() -> None:
    from types import SimpleNamespace

    import pair_cue

    rng = np.random.default_rng(1)

    def corpus(ids: list[str], per: int) -> SimpleNamespace:
        y = np.repeat(np.arange(len(ids)), per)
        yforg = np.tile(np.r_[np.zeros(per - 2, int), 1, 2], len(ids))  # one skilled, one simple
        return SimpleNamespace(user_ids=np.array(ids), y=y, yforg=yforg,
                               features=rng.normal(size=(len(y), 4)))  # fmt: skip

    # The same id "1" in both sets: namespaced, so no cross-corpus pair is made.
    real, extra = corpus(["1", "2"], 5), corpus(["1"], 6)
    rows = real.yforg < 2
    seen = []
    real_fit = pair_cue.fit_pair_cue
    try:
        pair_cue.fit_pair_cue = lambda x, w, f, **kw: (
            seen.append((x, w, f, kw)) or real_fit(x, w, f, **kw)
        )
        pair_cue._fit_both(real, rows, extra)
    finally:
        pair_cue.fit_pair_cue = real_fit
    x, w, f, kw = seen[0]
    assert len(x) == 8 and sorted(set(w)) == ["1", "2"] and int(f.sum()) == 2
    # The extra writer: 4 genuine + 1 skilled, the simple forgery dropped; fit_pair_cue
    # keeps its writers apart from the real ones (tests/test_pair_cue.py).
    more = kw["extra"]
    assert len(more.features) == 5 and set(more.writers) == {"1"} and int(more.forged.sum()) == 1


def test_pair_cue_selection_reads_mean_eers_and_the_worse_far_random() -> None:
    import pair_cue

    a = {"EER_global": 6.0, "EER_user": 3.0, "FAR_random": 0.1}
    b = {"EER_global": 10.0, "EER_user": 5.0, "FAR_random": 0.6}
    assert pair_cue.combine(a, b) == {"EER_global": 8.0, "EER_user": 4.0, "FAR_random": 0.6}
    # A candidate within the bound on SigComp but over it on the other population is out.
    inner = {("plain", 0.0): a, ("cue", 0.3): a, ("pair", 0.5): pair_cue.combine(a, b)}
    assert pair_cue.choose(inner)["chosen"] is None

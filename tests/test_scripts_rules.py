"""Selection rules of the research scripts, on hand-made toy rows."""

from __future__ import annotations

import sys
from pathlib import Path

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

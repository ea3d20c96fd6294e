"""scripts/calibrate_default_model.py: which normaliser a recalibration uses."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import calibrate_default_model  # noqa: E402


def test_a_plain_rerun_keeps_the_models_normaliser() -> None:
    resolve = calibrate_default_model.resolve_normalization
    calibrated = {"calibration": {"normalization": "loo-lcb=0.5", "threshold": -0.22}}
    assert resolve(calibrated, None) == "loo-lcb=0.5"  # not reset to the default
    assert resolve(calibrated, "loo-lcb=1") == "loo-lcb=1"  # an explicit choice wins


def test_a_model_without_calibration_gets_the_default() -> None:
    resolve = calibrate_default_model.resolve_normalization
    assert resolve(None, None) == calibrate_default_model.DEFAULT_NORMALIZATION
    assert resolve({"calibration": {}}, None) == "loo-lcb=0"


def test_cue_settings_keep_what_is_not_asked_for() -> None:
    from sigver.calibration import CalibrationError, resolve_cue_settings

    stored = {
        "forgery_cue": {
            "weight": 0.3,
            "centred": True,
            "on_by_default": True,
            "pair": {"weight": 0.75, "extra": {"writers": 96}},
        }
    }
    kept = resolve_cue_settings(stored)
    assert kept == {
        "weight": 0.3,
        "centred": True,
        "pair_weight": 0.75,
        "pair_centred": True,  # stored before the flag existed: centred
        "on_by_default": True,
        "pair_extra": {"writers": 96},
    }
    # The pair part alone is still a cue to keep on; with neither part, nothing is.
    alone = resolve_cue_settings(stored, weight=0.0, pair_weight=0.75)
    assert alone["on_by_default"] is True
    assert resolve_cue_settings(stored, weight=0.0, pair_weight=0.0)["on_by_default"] is False
    # Dropping the image part never leaves the pair part deciding alone unasked.
    with pytest.raises(CalibrationError, match="also give --pair-weight"):
        resolve_cue_settings(stored, weight=0.0)
    # What is given wins.
    assert resolve_cue_settings(stored, pair_weight=0.0, on_by_default=False)["pair_weight"] == 0.0
    assert resolve_cue_settings(stored, pair_centred=False)["pair_centred"] is False
    uncentred = {"forgery_cue": {**stored["forgery_cue"], "pair": {"weight": 1, "centred": False}}}
    assert resolve_cue_settings(uncentred)["pair_centred"] is False
    assert resolve_cue_settings(None) == {
        "weight": 0.0,
        "centred": False,
        "pair_weight": 0.0,
        "pair_centred": True,
        "on_by_default": False,
        "pair_extra": {},
    }

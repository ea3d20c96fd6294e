"""scripts/calibrate_default_model.py: which normaliser a recalibration uses."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "calibrate_default_model.py"


def _load():
    spec = importlib.util.spec_from_file_location("calibrate_default_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_plain_rerun_keeps_the_models_normaliser() -> None:
    resolve = _load().resolve_normalization
    calibrated = {"calibration": {"normalization": "loo-lcb=0.5", "threshold": -0.22}}
    assert resolve(calibrated, None) == "loo-lcb=0.5"  # not reset to the default
    assert resolve(calibrated, "loo-lcb=1") == "loo-lcb=1"  # an explicit choice wins


def test_a_model_without_calibration_gets_the_default() -> None:
    module = _load()
    assert module.resolve_normalization(None, None) == module.DEFAULT_NORMALIZATION
    assert module.resolve_normalization({"calibration": {}}, None) == "loo-lcb=0"

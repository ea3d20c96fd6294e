"""scripts/distill_ensemble.py: inputs, cached targets and a tiny student run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import distill_ensemble as module  # noqa: E402


def _images(n: int, seed: int) -> np.ndarray:
    """Preprocessed drawn signatures on the tiny models' canvas, shape (n, 1, H, W)."""
    from enrollment.testing import TINY_CANVAS, draw_signature
    from sigver.preprocessing import PreprocessConfig, preprocess_signature

    cfg = PreprocessConfig(canvas_size=TINY_CANVAS)
    return np.stack(
        [
            preprocess_signature(
                draw_signature(seed + i // 4, i % 4), cfg.canvas_size, cfg.img_size
            )
            for i in range(n)
        ]
    )[:, None]


def _cache(x: np.ndarray, users: list[str]):
    from sigver.cache import SignatureCache

    y = np.arange(len(x)) % len(users)
    return SignatureCache(
        x=x,
        y=y,
        yforg=np.zeros(len(x), dtype=np.int8),
        user_ids=np.array(users),
        filenames=np.array([f"{i}.png" for i in range(len(x))]),
    )


def test_inputs_join_only_sigcomp_development_writers_unless_synthetic_only(tmp_path):
    from sigver.cache import save_cache

    syn = _images(6, 0)
    sc = _images(4, 50)
    save_cache(tmp_path / "synth.npz", _cache(syn, ["s1", "s2"]))
    # Writers 001 and 037 are development writers, 038 and 069 exploitation writers.
    save_cache(tmp_path / "sigcomp2011.npz", _cache(sc, ["001", "037", "038", "069"]))
    x, sizes = module._inputs(tmp_path)
    assert sizes == {"synth": 6, "sigcomp2011 001-037": 2}
    np.testing.assert_array_equal(x[:6], syn)
    np.testing.assert_array_equal(x[6:], sc[:2])  # images 0 and 1 belong to 001 and 037
    x, sizes = module._inputs(tmp_path, sigcomp_dev=False)
    assert sizes == {"synth": 6}
    np.testing.assert_array_equal(x, syn)


def test_student_regresses_the_teacher_and_cached_targets_must_match(tmp_path):
    from enrollment.testing import build_tiny_model
    from sigver.inference import open_extractor
    from sigver.models.checkpoint import load_checkpoint

    teacher = build_tiny_model(tmp_path / "teacher", name="teacher", seed=1, feature_dim=12)
    init = build_tiny_model(tmp_path / "init", name="init", seed=2, feature_dim=6)
    work = tmp_path / "work"
    work.mkdir()
    x = _images(160, 0)
    t = module._targets(work, x, teacher)
    assert t.dtype == np.float16 and t.shape == (160, 12)
    direct = open_extractor(teacher).extract(x)
    np.testing.assert_allclose(t.astype(np.float32), direct, rtol=2e-3, atol=2e-3)
    with pytest.raises(SystemExit, match="160 targets for 150 images"):
        module._targets(work, x[:150], teacher)

    args = argparse.Namespace(
        work=work, teacher=teacher, init=init, seed=0, lr=5e-3, epochs=3, batch_size=16,
        version="9", cpu_bf16=False,
    )  # fmt: skip
    best = module.train(args, x, t, {"synth": 160})
    state = load_checkpoint(best)
    last = load_checkpoint(work / "last.pt").meta.metrics["history"]
    assert [h["epoch"] for h in last] == [1, 2, 3]
    # best.pt is the epoch of the lowest validation loss.
    assert state.meta.metrics["val_loss"] == min(h["val_loss"] for h in last)
    assert last[-1]["train_loss"] < last[0]["train_loss"]  # it learns the teacher's features
    assert state.meta.feature_dim == 12  # the teacher's width, not the init's
    assert state.meta.recipe["teacher"] == load_checkpoint(teacher).model_id
    assert state.meta.training_data["sources"] == ["synthetic v2 (seed 0)"]
    # The body starts from --init: with a zero learning rate its weights stay the init's
    # (batch-norm running statistics still move in training mode).
    frozen = argparse.Namespace(**{**vars(args), "work": tmp_path / "lr0", "lr": 0.0, "epochs": 1})
    frozen.work.mkdir()
    still = load_checkpoint(module.train(frozen, x, t, {"synth": 160})).state_dict
    body = {
        k: v
        for k, v in load_checkpoint(init).state_dict.items()
        if k.startswith("conv_") and not k.split(".")[-1].startswith(("running_", "num_batches"))
    }
    assert body and all(np.array_equal(still[k].numpy(), v.numpy()) for k, v in body.items())

    # A finished run resumes to nothing: no epoch is trained twice.
    again = module.train(args, x, t, {"synth": 160})
    assert again == best
    assert load_checkpoint(work / "last.pt").meta.metrics["history"] == last

"""Training recipe: data selection, crops, losses, a tiny run, resume, SigNet-F, DDP (gloo)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from sigver.cache import SignatureCache, save_cache
from sigver.cli import main
from sigver.errors import DatasetError, ModelError, SigverError
from sigver.features import Extractor
from sigver.models.checkpoint import load_checkpoint
from sigver.training import (
    TrainConfig,
    _crop_batch,
    _losses,
    parse_users,
    prepare_training_data,
    split_train_val,
    train,
)

TINY = {"widths": [4, 8, 8, 16], "feature_dim": 16}


def toy_cache(
    n_writers: int = 4, n_gen: int = 6, n_forg: int = 0, seed: int = 0, dataset: str | None = None
) -> SignatureCache:
    """Writers draw sine strokes of their own frequency; forgeries use a different one."""
    rng = np.random.default_rng(seed)
    xs, ys, fs, names = [], [], [], []
    t = np.linspace(0, 1, 300)
    for w in range(n_writers):
        for label, count in ((0, n_gen), (1, n_forg)):
            for i in range(count):
                img = np.zeros((170, 242), np.uint8)
                freq = (1 + w) * (1.4 if label else 1.0)
                rows = (85 + 40 * np.sin(2 * np.pi * freq * t + rng.normal(0, 0.2))).astype(int)
                cols = (20 + 200 * t).astype(int)
                for d in (0, 1, 2):
                    img[np.clip(rows + d, 0, 169), cols] = 255
                xs.append(img)
                ys.append(w)
                fs.append(label)
                names.append(f"{w:03d}/{label}-{i}.png")
    return SignatureCache(
        x=np.stack(xs)[:, None],
        y=np.array(ys),
        yforg=np.array(fs),
        user_ids=np.array([f"{w + 1:03d}" for w in range(n_writers)]),
        filenames=np.array(names),
        meta={"dataset": dataset} if dataset else {},
    )


def tiny_config(**kw) -> TrainConfig:
    base = dict(
        arch="sigresnet",
        arch_config=TINY,
        epochs=2,
        batch_size=8,
        lr=0.01,
        seed=3,
        channels_last=False,
    )
    base.update(kw)
    return TrainConfig(**base)


# -- data ---------------------------------------------------------------------------------


def test_parse_users() -> None:
    f = parse_users("sigcomp2011:001-037,040")
    assert f.dataset == "sigcomp2011" and f.items == (("001", "037"), ("040", "040"))
    assert f.matches("001") and f.matches("037") and f.matches("040")
    assert not f.matches("038") and not f.matches("041")
    assert f.applies_to("sigcomp2011") and not f.applies_to("gpds")
    assert parse_users("5-12").matches("10")  # natural order, not string order
    for bad in ("", "9-3", "sigcomp2011:", "B-010..B-001", "..B-003"):
        with pytest.raises(SigverError):
            parse_users(bad)
    # BHSig260's ids carry a dash: one id as written, ranges with "..".
    one = parse_users("bhsig260:B-001")
    assert one.matches("B-001") and not one.matches("B-002") and not one.matches("H-001")
    span = parse_users("B-001..B-010,H-003")
    assert span.matches("B-002") and span.matches("B-010") and not span.matches("B-011")
    assert span.matches("H-003") and not span.matches("H-002")


def test_prepare_merges_sources_and_namespaces_users() -> None:
    a = toy_cache(3, 4, n_forg=2)
    b = toy_cache(2, 5, dataset="gpds")
    data = prepare_training_data([("a", a), ("b", b)])
    assert data.classes == ["a/001", "a/002", "a/003", "b/001", "b/002"]
    assert len(data.y) == 3 * 4 + 2 * 5 and (data.yforg == 0).all()
    assert np.bincount(data.y).tolist() == [4, 4, 4, 5, 5]
    data_f = prepare_training_data([("a", a), ("b", b)], forg=True)
    assert int(data_f.yforg.sum()) == 6
    only = prepare_training_data(
        [("a", a), ("b", b)], users=[parse_users("gpds:002")], exclude_users=[parse_users("003")]
    )
    assert only.classes == ["a/001", "a/002", "b/002"]
    assert only.description["writers"] == 3 and only.description["images"] == 13


def test_sigcomp_exploitation_writers_are_refused() -> None:
    cache = toy_cache(40, 2, dataset="sigcomp2011")  # users 001..040
    with pytest.raises(DatasetError, match="exploitation writers 038..040"):
        prepare_training_data([("s", cache)])
    ok = prepare_training_data([("s", cache)], users=[parse_users("sigcomp2011:001-037")])
    assert ok.n_classes == 37
    forced = prepare_training_data([("s", cache)], allow_exploitation=True)
    assert forced.n_classes == 40


def test_split_is_per_writer_and_keeps_a_genuine_in_training() -> None:
    y = np.repeat(np.arange(3), 10)
    yforg = np.tile(np.r_[np.zeros(8), np.ones(2)], 3).astype(np.int8)
    tr, va = split_train_val(y, yforg, 0.25, seed=0)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 30
    for cls in range(3):
        # round(0.25 * 8) = 2 genuine and round(0.25 * 2) = 0 (0.5 rounds to even) forgeries
        assert np.sum((y[va] == cls) & (yforg[va] == 0)) == 2
        assert np.sum((y[va] == cls) & (yforg[va] == 1)) == 0
    tr, va = split_train_val(np.array([0, 1, 1]), np.zeros(3, np.int8), 0.9, seed=0)
    assert sorted(y for y in np.array([0, 1, 1])[tr]) == [0, 1]
    np.testing.assert_array_equal(
        split_train_val(y, yforg, 0.25, 5)[1], split_train_val(y, yforg, 0.25, 5)[1]
    )


def test_crops_match_slices() -> None:
    x = torch.arange(3 * 170 * 242, dtype=torch.int64).reshape(3, 1, 170, 242) % 251
    x = x.to(torch.uint8)
    idx = torch.tensor([2, 0])
    centre = _crop_batch(x, idx, (150, 220), None, channels_last=False)
    torch.testing.assert_close(centre, x[[2, 0], :, 10:160, 11:231].float() / 255)
    gen = torch.Generator().manual_seed(7)
    crops = _crop_batch(x, idx, (150, 220), gen, channels_last=True)
    gen.manual_seed(7)
    tops = torch.randint(0, 21, (2,), generator=gen)
    lefts = torch.randint(0, 23, (2,), generator=gen)
    for k, i in enumerate((2, 0)):
        t, left = int(tops[k]), int(lefts[k])
        expected = x[i, :, t : t + 150, left : left + 220].float() / 255
        torch.testing.assert_close(crops[k], expected)


def test_signet_and_signet_f_losses_by_hand() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 0])
    yforg = torch.tensor([0, 0, 1])
    forg_logits = torch.tensor([-1.0, 0.5, 2.0])
    ce = lambda row, k: -(row[k] - math.log(sum(math.exp(v) for v in row)))  # noqa: E731
    rows = logits.tolist()
    loss, stats = _losses(logits, None, y, torch.zeros(3, dtype=torch.long), 0.95)
    assert loss.item() == pytest.approx((ce(rows[0], 0) + ce(rows[1], 1) + ce(rows[2], 0)) / 3)
    # SigNet-F: writer CE on the two genuines only, BCE on all three.
    class_loss = (ce(rows[0], 0) + ce(rows[1], 1)) / 2
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    bce = -(math.log(1 - sig(-1.0)) + math.log(1 - sig(0.5)) + math.log(sig(2.0))) / 3
    loss, stats = _losses(logits, forg_logits, y, yforg, 0.95)
    assert loss.item() == pytest.approx(0.05 * class_loss + 0.95 * bce, rel=1e-5)
    assert stats["correct"].item() == 2 and stats["n_gen"].item() == 2
    assert stats["forg_correct"].item() == 2  # -1 -> genuine ok, 0.5 -> forgery wrong, 2 ok


# -- runs ---------------------------------------------------------------------------------


def test_tiny_run_writes_checkpoints_logs_plot_and_resumes(tmp_path: Path) -> None:
    data = prepare_training_data([("toy", toy_cache(4, 6))])
    full = train(data, tiny_config(epochs=2), tmp_path / "full", progress=False)
    for name in (
        "best.pt",
        "best.pt.sha256",
        "last.pt",
        "last.pt.sha256",
        "log.csv",
        "log.json",
        "curves.png",
    ):
        assert (tmp_path / "full" / name).is_file(), name
    log = json.loads((tmp_path / "full" / "log.json").read_text())
    assert [row["epoch"] for row in log] == [1, 2]
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr"} <= set(log[0])
    csv_lines = (tmp_path / "full" / "log.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,lr,train_loss") and len(csv_lines) == 3
    assert (tmp_path / "full" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    last = load_checkpoint(tmp_path / "full" / "last.pt")
    assert last.training_state["epoch"] == 2 and last.meta.arch == "sigresnet"
    assert last.meta.preprocess["input_size"] == [150, 220]
    assert last.meta.training_data["writers"] == 4
    ext = Extractor.from_checkpoint(full.best_path)
    assert ext.extract(toy_cache(1, 2).x).shape == (2, 16)

    # 1 epoch, then resume to 2: same history and same final weights as the straight run.
    train(data, tiny_config(epochs=1, lr_decay_times=3), tmp_path / "split", progress=False)
    assert len(json.loads((tmp_path / "split" / "log.json").read_text())) == 1
    resumed = train(
        data,
        tiny_config(epochs=2),
        tmp_path / "split",
        resume=tmp_path / "split" / "last.pt",
        progress=False,
    )
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    a = load_checkpoint(tmp_path / "full" / "last.pt").state_dict
    b = load_checkpoint(tmp_path / "split" / "last.pt").state_dict
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_resume_refuses_other_data(tmp_path: Path) -> None:
    data = prepare_training_data([("toy", toy_cache(4, 6))])
    train(data, tiny_config(epochs=1), tmp_path, progress=False)
    other = prepare_training_data([("toy", toy_cache(3, 6))])
    with pytest.raises(ModelError, match="different data"):
        train(other, tiny_config(epochs=2), tmp_path, resume=tmp_path / "last.pt", progress=False)
    with pytest.raises(SigverError, match="already finished 1 epoch"):
        train(data, tiny_config(epochs=1), tmp_path / "new", resume=tmp_path / "last.pt")
    assert not (tmp_path / "new").exists()


def test_signet_f_run_reports_forgery_accuracy(tmp_path: Path) -> None:
    data = prepare_training_data([("toy", toy_cache(3, 6, n_forg=4))], forg=True)
    result = train(data, tiny_config(epochs=1, forg=True, lamb=0.5), tmp_path, progress=False)
    row = result.history[0]
    assert 0.0 <= row["train_forg_acc"] <= 1.0 and 0.0 <= row["val_forg_acc"] <= 1.0
    weights = load_checkpoint(tmp_path / "best.pt")
    assert weights.heads["forgery"]["weight"].shape == (1, 16)
    no_forg = prepare_training_data([("toy", toy_cache(3, 6))], forg=True)
    with pytest.raises(DatasetError, match="forgeries"):
        train(no_forg, tiny_config(epochs=1, forg=True), tmp_path / "x", progress=False)


def test_train_cli_smoke(tmp_path: Path) -> None:
    cache_path = tmp_path / "toy.npz"
    save_cache(cache_path, toy_cache(3, 5))
    out = tmp_path / "run"
    argv = [
        "train",
        "--data",
        str(cache_path),
        "--arch",
        "sigresnet",
        "--arch-config",
        json.dumps(TINY),
        "--epochs",
        "1",
        "--batch-size",
        "6",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    assert (out / "best.pt").is_file() and (out / "log.csv").is_file()
    assert main(["train", "--data", str(cache_path), "--arch", "nope", "--out", str(out)]) == 2
    assert main([*argv[:-3], "--users", "010-020", "--out", str(out)]) == 2  # no images left


DDP_SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    from sigver.cache import load_cache
    from sigver.training import TrainConfig, prepare_training_data, train
    cache_path, out = sys.argv[1], sys.argv[2]
    data = prepare_training_data([("toy", load_cache(cache_path))])
    cfg = TrainConfig(arch="sigresnet", arch_config={"widths": [4, 8, 8, 16], "feature_dim": 16},
                      epochs=1, batch_size=4, lr=0.05, seed=1)
    result = train(data, cfg, out, progress=False)
    rank = int(os.environ["RANK"])
    torch.save(result.model.state_dict(), os.path.join(out, f"rank{rank}.pt"))
    """
)


def test_distributed_gloo_two_processes_agree(tmp_path: Path) -> None:
    cache_path = tmp_path / "toy.npz"
    save_cache(cache_path, toy_cache(4, 6))
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(cache_path),
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "last.pt").is_file() and (out / "log.json").is_file()
    log = json.loads((out / "log.json").read_text())
    assert len(log) == 1
    p0 = torch.load(out / "rank0.pt", weights_only=True)
    p1 = torch.load(out / "rank1.pt", weights_only=True)
    initial = None
    for key in p0:
        torch.testing.assert_close(p0[key], p1[key], rtol=0, atol=1e-6)
    torch.manual_seed(1)
    from sigver.models import get_model

    initial = get_model("sigresnet", **TINY).state_dict()
    moved = [k for k in p0 if k.endswith("weight") and not torch.equal(p0[k], initial[k])]
    assert moved, "training did not change the weights"


# -- SigNet-F fixes and fine-tuning (issue 9) ---------------------------------------------


def test_lambda_warmup_schedule() -> None:
    cfg = tiny_config(forg=True, lamb=0.9, lamb_warmup=3)
    assert [cfg.lamb_at(e) for e in range(5)] == pytest.approx([0.0, 0.3, 0.6, 0.9, 0.9])
    assert tiny_config(forg=True, lamb=0.9).lamb_at(0) == 0.9
    with pytest.raises(SigverError):
        tiny_config(lamb_warmup=-1)
    assert "ramped from 0 over 3 epochs" in cfg.recipe()["loss"]


def test_balanced_forgery_loss_and_balanced_accuracy_by_hand() -> None:
    logits = torch.zeros(4, 2)
    y = torch.tensor([0, 1, 0, 1])
    yforg = torch.tensor([0, 0, 0, 1])
    forg_logits = torch.tensor([-1.0, -1.0, -1.0, -1.0])  # everything "genuine": the prior
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    # pos_weight 3 (= 3 genuine / 1 forgery) multiplies the forgery term only.
    bce = -(3 * math.log(1 - sig(-1.0)) + 3 * math.log(sig(-1.0))) / 4
    loss, stats = _losses(logits, forg_logits, y, yforg, 1.0, torch.tensor(3.0))
    assert loss.item() == pytest.approx(bce, rel=1e-5)
    from sigver.training import _summarise

    out = _summarise({k: float(v) for k, v in stats.items()}, "val_")
    assert out["val_forg_acc"] == pytest.approx(0.75)  # the prior looks good ...
    assert out["val_forg_bacc"] == pytest.approx(0.5)  # ... and is chance level


def test_signet_f_warmup_and_balance_run_logs_lambda(tmp_path: Path) -> None:
    data = prepare_training_data([("toy", toy_cache(3, 6, n_forg=2))], forg=True)
    cfg = tiny_config(epochs=2, forg=True, lamb=0.95, lamb_warmup=2, forg_balance=True)
    result = train(data, cfg, tmp_path, progress=False)
    assert [row["lamb"] for row in result.history] == pytest.approx([0.0, 0.475])
    assert "train_forg_bacc" in result.history[0]


def _block_params(model: torch.nn.Module, name: str) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in dict(model.blocks())[name].state_dict().items()}


def test_fine_tune_freezes_first_blocks_and_replaces_the_head(tmp_path: Path) -> None:
    base = prepare_training_data([("toy", toy_cache(4, 6))])
    first = train(base, tiny_config(epochs=1), tmp_path / "base", progress=False)
    init = load_checkpoint(first.best_path)
    # A new institution: 3 other writers, genuine signatures only.
    bank = prepare_training_data([("bank", toy_cache(3, 6, seed=9))])
    cfg = tiny_config(epochs=1, init=str(first.best_path), freeze=2)
    tuned = train(bank, cfg, tmp_path / "tuned", progress=False)
    out = load_checkpoint(tuned.last_path)
    assert out.heads["classifier"]["weight"].shape == (3, 16)  # new writer head
    names = tuned.model.trainable_blocks()
    for k, v in init.state_dict.items():
        block = k.split(".")[1]
        same = torch.equal(v, out.state_dict[k])
        if block in names[:2]:
            assert same, k  # frozen, BatchNorm statistics included
    changed = [k for k, v in init.state_dict.items() if not torch.equal(v, out.state_dict[k])]
    assert changed and all(k.split(".")[1] in names[2:] for k in changed)
    assert out.training_state["config"]["init_sha256"]
    assert out.meta.recipe["freeze"] == 2
    # -1: only the last block trains.
    last_only = tiny_config(epochs=1, init=str(first.best_path), freeze=-1)
    res = train(bank, last_only, tmp_path / "last", progress=False)
    changed = {
        k.split(".")[1]
        for k, v in init.state_dict.items()
        if not torch.equal(v, res.model.state_dict()[k])
    }
    assert changed == {names[-1]}
    with pytest.raises(SigverError, match="nothing to train"):
        train(bank, tiny_config(init=str(first.best_path), freeze=6), tmp_path / "x")
    with pytest.raises(ModelError, match="not sigresnet"):
        bad = tiny_config(init=str(first.best_path), arch_config={"widths": [4, 8, 8, 8]})
        train(bank, bad, tmp_path / "y", progress=False)


def test_fine_tune_keeps_the_init_models_svm_settings(tmp_path: Path) -> None:
    import dataclasses

    from sigver.models.checkpoint import save_checkpoint

    base = prepare_training_data([("toy", toy_cache(4, 6))])
    first = train(base, tiny_config(epochs=1), tmp_path / "base", progress=False)
    init = load_checkpoint(first.best_path)
    assert init.meta.classifier == {}  # trained from scratch: the generic settings
    tuned_init = tmp_path / "with-gamma.pt"
    meta = dataclasses.replace(init.meta, classifier={"gamma": 2.0**-13})
    save_checkpoint(tuned_init, init.state_dict, meta)
    bank = prepare_training_data([("bank", toy_cache(3, 6, seed=9))])
    cfg = tiny_config(epochs=1, init=str(tuned_init), freeze=-1)
    tuned = train(bank, cfg, tmp_path / "tuned", progress=False)
    for path in (tuned.best_path, tuned.last_path):
        assert load_checkpoint(path).meta.classifier == {"gamma": 2.0**-13}


def test_fine_tune_cli_on_a_folder_manifest_of_genuine_signatures(tmp_path: Path) -> None:
    import cv2

    base = prepare_training_data([("toy", toy_cache(4, 6))])
    first = train(base, tiny_config(epochs=1), tmp_path / "base", progress=False)
    # The institution's scans: a `folder` manifest, genuine only.
    from sigver.synth import generate_writer

    rows = ["path,user,label"]
    for w in range(3):
        _, genuine, _ = generate_writer(1, w, 4, 0)
        for i, img in enumerate(genuine):
            rel = f"scans/u{w}/{i}.png"
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(tmp_path / rel), img)
            rows.append(f"{rel},client{w},genuine")
    manifest = tmp_path / "bank.csv"
    manifest.write_text("\n".join(rows) + "\n")
    out = tmp_path / "tuned"
    argv = ["train", "--init", str(first.best_path), "--freeze", "-1", "--data"]
    argv += [f"folder:{manifest}", "--epochs", "1", "--batch-size", "4", "--lr", "0.01"]
    argv += ["--out", str(out), "--no-progress", "--jobs", "1"]
    assert main(argv) == 0
    tuned = load_checkpoint(out / "last.pt")
    assert tuned.meta.arch == "sigresnet" and tuned.meta.arch_config == TINY  # from --init
    assert tuned.heads["classifier"]["weight"].shape[0] == 3
    assert tuned.meta.preprocess["canvas_size"] == first_canvas(first.best_path)
    assert main(["train", "--freeze", "2", "--data", str(manifest), "--out", str(out)]) == 2


def first_canvas(path: Path) -> list[int]:
    return list(load_checkpoint(path).meta.preprocess["canvas_size"])


def test_train_cli_records_the_chosen_canvas(tmp_path: Path) -> None:
    cache_path = tmp_path / "toy.npz"
    save_cache(cache_path, toy_cache(3, 5))
    argv = ["train", "--data", str(cache_path), "--arch", "sigresnet", "--arch-config"]
    argv += [json.dumps(TINY), "--epochs", "1", "--batch-size", "6", "--canvas", "300", "400"]
    assert main([*argv, "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert load_checkpoint(tmp_path / "run" / "best.pt").meta.preprocess["canvas_size"] == [
        300,
        400,
    ]


def test_forg_normalise_equals_a_larger_learning_rate(tmp_path: Path) -> None:
    # Without weight decay, SGD's update is linear in the gradient: dividing the loss
    # by (1 - lambda) = 0.5 is exactly training at twice the learning rate.
    data = prepare_training_data([("toy", toy_cache(3, 6, n_forg=3))], forg=True)
    common = dict(epochs=1, forg=True, lamb=0.5, weight_decay=0.0, grad_clip=0.0)
    a = train(
        data, tiny_config(lr=0.01, forg_normalise=True, **common), tmp_path / "a", progress=False
    )
    b = train(data, tiny_config(lr=0.02, **common), tmp_path / "b", progress=False)
    c = train(data, tiny_config(lr=0.01, **common), tmp_path / "c", progress=False)
    sa, sb, sc = (r.model.state_dict() for r in (a, b, c))
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=1e-4, atol=1e-5)
    assert any(not torch.allclose(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())
    assert "divided by (1 - lambda)" in tiny_config(forg_normalise=True, forg=True).recipe()["loss"]


def test_cpu_bf16_autocasts_the_steps_and_keeps_float32_weights(tmp_path: Path) -> None:
    data = prepare_training_data([("toy", toy_cache(4, 6))])
    plain = train(data, tiny_config(epochs=1), tmp_path / "fp32", progress=False)
    bf16 = train(data, tiny_config(epochs=1, cpu_bf16=True), tmp_path / "bf16", progress=False)
    a = load_checkpoint(plain.best_path)
    b = load_checkpoint(bf16.best_path)
    assert b.meta.recipe["cpu_bf16"] is True and a.meta.recipe["cpu_bf16"] is False
    assert all(v.dtype == a.state_dict[k].dtype for k, v in b.state_dict.items())
    # The same seed, data and crops: only the arithmetic differs, so the weights move
    # apart a little (they would be equal if the flag did nothing) and stay close.
    diffs = [float((b.state_dict[k] - a.state_dict[k]).abs().max()) for k in a.state_dict
             if a.state_dict[k].is_floating_point()]  # fmt: skip
    assert max(diffs) > 0
    assert max(diffs) < 0.05
    la, lb = plain.history[0]["train_loss"], bf16.history[0]["train_loss"]
    assert np.isfinite(lb) and abs(la - lb) < 0.05 * abs(la)
    # SigNet-F: the forgery head's logits come out of autocast in bfloat16 too.
    forg = prepare_training_data([("toy", toy_cache(3, 6, n_forg=4))], forg=True)
    cfg = tiny_config(epochs=1, forg=True, lamb=0.5, cpu_bf16=True)
    row = train(forg, cfg, tmp_path / "bf16-f", progress=False).history[0]
    assert np.isfinite(row["train_loss"]) and 0.0 <= row["train_forg_acc"] <= 1.0


def test_train_cli_cpu_bf16_is_recorded(tmp_path: Path) -> None:
    cache_path = tmp_path / "toy.npz"
    save_cache(cache_path, toy_cache(3, 5))
    out = tmp_path / "run"
    argv = ["train", "--data", str(cache_path), "--arch", "sigresnet", "--arch-config",
            json.dumps(TINY), "--epochs", "1", "--batch-size", "6", "--out", str(out),
            "--no-progress", "--cpu-bf16"]  # fmt: skip
    assert main(argv) == 0
    assert load_checkpoint(out / "best.pt").meta.recipe["cpu_bf16"] is True

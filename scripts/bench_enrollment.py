"""Benchmark enrollment and verification (in-process and over HTTP on localhost).

Measures, on synthetic signatures (sigver.synth):

* enrollment time for one user with 12 references (median of several runs);
* verification latency of one signature in-process (p50, p99);
* verification latency over HTTP on 127.0.0.1 (uvicorn in a thread, httpx client);
* throughput of ``verify_batch`` for a few batch sizes.

Uses the shipped model when present; otherwise a random-init model of the
default architecture (same cost, meaningless scores) and says so.

Run::

    python scripts/bench_enrollment.py [--repeats 100] [--model PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _bench import verify_latencies_ms  # scripts/ is on sys.path


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _random_default_model(folder: Path, n_background: int) -> Path:
    """Default architecture with random weights, plus a synthetic background set."""
    import torch

    from sigver.features import DEFAULT_MODEL_FILE, Extractor
    from sigver.featureset import FeatureSet, save_features
    from sigver.models import get_model
    from sigver.models.checkpoint import WeightsMeta, save_checkpoint
    from sigver.preprocessing import PreprocessConfig, preprocess_signature
    from sigver.synth import generate_writer

    torch.manual_seed(0)
    model = get_model("sigresnet")
    config = PreprocessConfig()
    meta = WeightsMeta.for_model(
        model, name="bench-random", version="0", preprocess=config.to_dict()
    )
    path = folder / Path(DEFAULT_MODEL_FILE).name.replace(".pt", "-random.pt")
    save_checkpoint(path, model, meta)
    extractor = Extractor.from_checkpoint(path)
    per_writer = 6
    n_writers = max(1, n_background // per_writer)
    images = []
    for w in range(n_writers):
        _, genuine, _ = generate_writer(99, 1000 + w, per_writer, 0)
        images += [preprocess_signature(g, config.canvas_size, config.img_size) for g in genuine]
    feats = extractor.extract(np.stack(images)[:, None])
    save_features(
        path.with_name(path.stem + ".background.npz"),
        FeatureSet(
            features=feats,
            y=np.repeat(np.arange(n_writers), per_writer),
            yforg=np.zeros(len(feats), np.int8),
            user_ids=np.array([f"bg{w}" for w in range(n_writers)]),
            filenames=np.array([f"bg{i}.png" for i in range(len(feats))]),
            meta={"model_sha256": extractor.sha256},
        ),
    )
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint (default: shipped model, else random init)")
    parser.add_argument("--repeats", type=int, default=100, help="latency samples (default 100)")
    parser.add_argument("--enroll-runs", type=int, default=5, help="enrollment runs (default 5)")
    parser.add_argument(
        "--background", type=int, default=600,
        help="background negatives when building the random-init model (default 600)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    import httpx
    import uvicorn

    from enrollment import Verifier
    from enrollment.service import create_app
    from enrollment.testing import encode_png, free_port
    from sigver._util import command_line, format_machine_info, machine_info
    from sigver.features import default_model_path
    from sigver.synth import generate_writer

    print(f"command: {command_line()}")
    print(format_machine_info(machine_info(include_torch=True)))
    work = Path(tempfile.mkdtemp(prefix="sigver-bench-"))
    if args.model:
        model_path = Path(args.model)
        note = "given checkpoint"
    elif default_model_path().is_file():
        model_path = default_model_path()
        note = "shipped model"
    else:
        t = time.perf_counter()
        model_path = _random_default_model(work, args.background)
        note = (
            f"NO shipped model found: default architecture with RANDOM weights "
            f"(built in {time.perf_counter() - t:.1f} s; timings valid, scores meaningless)"
        )
    t = time.perf_counter()
    verifier = Verifier(home=work / "home", model=model_path)
    print(
        f"model: {verifier.model_id} ({note}); load {time.perf_counter() - t:.2f} s; "
        f"{verifier.n_background} background negatives; feature dim "
        f"{verifier.extractor.feature_dim}"
    )

    _, genuine, forgeries = generate_writer(7, 0, 14, 1)
    references = [encode_png(g) for g in genuine[:12]]
    question = encode_png(genuine[12])
    # a few other users so that negatives include enrolled references, as in production
    for w in range(1, 4):
        _, other, _ = generate_writer(7, w, 12, 0)
        verifier.enroll(f"other{w}", [encode_png(g) for g in other])

    times = []
    for i in range(args.enroll_runs):
        t = time.perf_counter()
        result = verifier.enroll("bench", references, force=i > 0)
        times.append(time.perf_counter() - t)
    print(
        f"enrollment, 12 references, {result.n_negatives} negatives: median "
        f"{statistics.median(times):.3f} s, min {min(times):.3f} s, max {max(times):.3f} s "
        f"({args.enroll_runs} runs)"
    )

    lat = verify_latencies_ms(verifier, "bench", question, args.repeats, warmup=5)
    print(
        f"verify in-process, 1 PNG ({genuine[12].shape[1]}x{genuine[12].shape[0]}): "
        f"p50 {_percentile(lat, 50):.1f} ms, p99 {_percentile(lat, 99):.1f} ms "
        f"({args.repeats} runs)"
    )

    for batch in (1, 8, 32):
        images = [question] * batch
        runs = max(3, 64 // batch)
        t = time.perf_counter()
        for _ in range(runs):
            verifier.verify_batch("bench", images)
        rate = batch * runs / (time.perf_counter() - t)
        print(f"verify_batch throughput, batch {batch:2d}: {rate:.1f} images/s")

    _, key = verifier.store.create_api_key("bench")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(verifier), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.05)
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=30
        ) as http:
            files = {"images": ("q.png", question, "image/png")}
            for _ in range(5):
                http.post("/v1/users/bench/verify", files=files).raise_for_status()
            lat = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                http.post("/v1/users/bench/verify", files=files).raise_for_status()
                lat.append(1000 * (time.perf_counter() - t))
            print(
                f"verify over HTTP (localhost, keep-alive): p50 {_percentile(lat, 50):.1f} ms, "
                f"p99 {_percentile(lat, 99):.1f} ms ({args.repeats} runs)"
            )
            batch_files = [("images", (f"q{i}.png", question, "image/png")) for i in range(8)]
            t = time.perf_counter()
            runs = 8
            for _ in range(runs):
                http.post("/v1/users/bench/verify", files=batch_files).raise_for_status()
            rate = 8 * runs / (time.perf_counter() - t)
            print(f"verify over HTTP, 8 images per request: {rate:.1f} images/s")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    print(f"files: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

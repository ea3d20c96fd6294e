"""Bounded load test of ``sigver serve`` on loopback: throughput, p50/p99 and errors.

Starts ``sigver serve`` (``--workers``, ``--threads``) on 127.0.0.1 with a
fresh SQLite store or a throwaway PostgreSQL cluster, enrolls ``--users``
users through the API, then runs ``--concurrency`` client threads for at most
``--duration`` seconds / ``--max-requests`` requests in one of two scenarios:

* ``verify``: every request verifies one signature of a random user;
* ``mixed``: a fraction ``--enroll-fraction`` of requests re-enrolls a user
  (``force``, 4 references), the rest verify.

The client runs on the same machine and takes CPU from the server: figures
are for the whole loop, machine load included (reported before and after).

Run::

    python scripts/load_test.py --backend sqlite --scenario verify
    python scripts/load_test.py --backend postgresql --scenario mixed --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _pngs(writer: int, n: int) -> list[bytes]:
    import cv2

    from sigver.synth import generate_writer

    _, genuine, _ = generate_writer(11, 300 + writer, n, 0)
    return [cv2.imencode(".png", np.asarray(g))[1].tobytes() for g in genuine]


def _files(blobs: list[bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("images", (f"i{i}.png", b, "image/png")) for i, b in enumerate(blobs)]


def _serve(store: str, args, tmp: Path) -> tuple[subprocess.Popen, str]:
    from enrollment.testing import free_port

    port = free_port()
    env = {
        **os.environ,
        "SIGVER_STORE": store,
        "SIGVER_STORE_SECRET": "load-test-secret-" + "x" * 32,
        "PYTHONPATH": str(REPO),
    }
    cmd = [sys.executable, "-m", "sigver", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(args.workers), "--log-level", "warning"]  # fmt: skip
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    log = open(tmp / "server.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


def _wait_ready(httpx, proc, base: str, tmp: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError((tmp / "server.log").read_text())
        time.sleep(0.5)
    raise RuntimeError("server did not become ready")


def _stats(latencies: list[float]) -> dict[str, float | None]:
    if not latencies:
        return {"p50_ms": None, "p99_ms": None}
    arr = np.asarray(latencies) * 1000
    return {"p50_ms": round(float(np.percentile(arr, 50)), 1),
            "p99_ms": round(float(np.percentile(arr, 99)), 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--scenario", choices=("verify", "mixed"), default="verify")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, help="threads per worker (default: serve's)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds (bounded: <= 300)")
    parser.add_argument("--max-requests", type=int, default=5000)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--enroll-fraction", type=float, default=0.1)
    parser.add_argument("--out", type=Path, help="append the JSON result to this file")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 300:
        parser.error("--duration must be in (0, 300]")

    import httpx

    from enrollment.store import open_store
    from enrollment.testing import temporary_postgres
    from sigver._util import machine_info

    before = machine_info()
    tmp = Path(tempfile.mkdtemp(prefix="sigver-load-"))
    server = temporary_postgres() if args.backend == "postgresql" else None
    store_url = server.__enter__() if server is not None else str(tmp / "home")
    proc = None
    try:
        os.environ["SIGVER_STORE_SECRET"] = "load-test-secret-" + "x" * 32
        st = open_store(store_url)
        _, key = st.create_api_key("load")
        st.close()
        proc, base = _serve(store_url, args, tmp)
        _wait_ready(httpx, proc, base, tmp)
        images = {u: _pngs(u, 6) for u in range(args.users)}
        headers = {"X-API-Key": key}
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            for u, blobs in images.items():
                r = client.post(f"/v1/users/u{u}/enroll", files=_files(blobs[:4]))
                r.raise_for_status()
        results: dict[str, dict[str, list]] = {
            "verify": {"lat": [], "err": []},
            "enroll": {"lat": [], "err": []},
        }
        lock = threading.Lock()
        budget = {"left": args.max_requests}
        stop_at = time.monotonic() + args.duration

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
                while time.monotonic() < stop_at:
                    with lock:
                        if budget["left"] <= 0:
                            return
                        budget["left"] -= 1
                    u = rng.randrange(args.users)
                    enroll = args.scenario == "mixed" and rng.random() < args.enroll_fraction
                    t0 = time.perf_counter()
                    try:
                        if enroll:
                            r = client.post(
                                f"/v1/users/u{u}/enroll",
                                files=_files(images[u][:4]),
                                data={"force": "true"},
                            )
                        else:
                            r = client.post(
                                f"/v1/users/u{u}/verify", files=_files([images[u][4 + seed % 2]])
                            )
                        ok = r.status_code < 300
                        what = None if ok else f"HTTP {r.status_code}: {r.text[:120]}"
                    except httpx.HTTPError as exc:
                        what = f"{type(exc).__name__}: {exc}"
                    elapsed = time.perf_counter() - t0
                    kind = "enroll" if enroll else "verify"
                    with lock:
                        if what is None:
                            results[kind]["lat"].append(elapsed)
                        else:
                            results[kind]["err"].append(what)

        t_start = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t_start
        with httpx.Client(base_url=base, timeout=10) as client:
            metrics = client.get("/metrics").text
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if server is not None:
            server.__exit__(None, None, None)
    after = machine_info()
    report = {
        "command": " ".join(["python", *sys.argv]),
        "backend": args.backend,
        "scenario": args.scenario,
        "workers": args.workers,
        "threads_per_worker": args.threads or "serve default (cores // workers)",
        "concurrency": args.concurrency,
        "wall_s": round(wall, 1),
        "cpu": before["cpu"],
        "cpu_count": before["cpu_count"],
        "load_average_before": before["load_average"],
        "load_average_after": after["load_average"],
    }
    for kind, r in results.items():
        n = len(r["lat"])
        if n or r["err"]:
            report[kind] = {
                "ok": n,
                "errors": len(r["err"]),
                "throughput_rps": round(n / wall, 2),
                **_stats(r["lat"]),
                "first_errors": r["err"][:3],
            }
    report["server_worker_metrics_sample"] = [
        line for line in metrics.splitlines() if line.startswith("sigver_decisions_total")
    ]
    text = json.dumps(report)
    print(text)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark enrollment and verification against stores of 10, 1,000 and 10,000 users.

The big stores are built quickly by inserting synthetic feature rows directly
(``--refs`` references per user, drawn around the model's background
features), not by running thousands of enrollments through the CNN. Then, on
each store, with the shipped model:

* ``sample``: drawing ``max_user_negatives`` (2,000) negatives in the database
  (what enrollment now does), against ``scan``: reading every stored reference
  (what the first release did before subsampling in Python);
* ``enroll``: a full enrollment of a new user from real synthetic signatures
  (CNN features + negatives + SVM + one transaction), median of ``--repeats``;
* ``verify cold``: first verification of that user by a fresh verifier (store
  read + classifier rebuild + CNN), ``verify warm``: p50 of later ones;
* ``bytes/user``: classifier blob and reference rows of the enrolled users.

Run (PostgreSQL is started as a throwaway cluster when its binaries exist)::

    python scripts/bench_store_scale.py [--sizes 10 1000 10000] [--backends sqlite postgresql]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _fill(store, n_users: int, refs: int, model_id: str, model_sha: str, background: np.ndarray):
    """Insert ``n_users`` synthetic users (features only) straight into the store's tables."""
    from enrollment.store import (
        _SAMPLE_KEY_MAX,
        _features_to_blob,
        _now,
        _references_digest,
        _Tagged,
        encode_arrays,
    )

    rng = np.random.default_rng(0)
    d = background.shape[1]
    dummy = encode_arrays({"note": np.asarray("synthetic filler user, never verified")})
    now = _now()
    chunk = 500
    for start in range(0, n_users, chunk):
        users, rows = [], []
        for i in range(start, min(n_users, start + chunk)):
            uid = f"filler{i:06d}"
            base = background[rng.integers(0, len(background), refs)]
            feats = (base + rng.normal(0, 0.05, base.shape)).astype(np.float32)
            hashes = [secrets.token_hex(32) for _ in range(refs)]
            blobs = [_features_to_blob(f) for f in feats]
            # The same tag a real enrollment gets (schema 3: references included).
            mac = store._mac(
                _Tagged(
                    tenant="default",
                    user_id=uid,
                    model_sha256=model_sha,
                    feature_dim=d,
                    threshold=None,
                    operating_point=None,
                    classifier_blob=dummy,
                    params_json="{}",
                    references=_references_digest(list(zip(hashes, blobs, strict=True))),
                )
            )
            users.append(
                ("default", uid, model_id, model_sha, d, refs, 0, None, dummy, "{}", now, now, 1,
                 mac)
            )  # fmt: skip
            for p in range(refs):
                rows.append(
                    ("default", uid, p, hashes[p], blobs[p], None, now, model_sha,
                     secrets.randbelow(_SAMPLE_KEY_MAX))
                )  # fmt: skip
        with store._write() as conn:
            conn.executemany(
                "INSERT INTO users (tenant_id, user_id, model_id, model_sha256, feature_dim, "
                "n_references, n_negatives, threshold, classifier, classifier_params, "
                "created_at, updated_at, revision, mac) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                users,
            )
            conn.executemany(
                "INSERT INTO user_references (tenant_id, user_id, position, image_sha256, "
                "features, image, created_at, model_sha256, sample_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )


def _scan_all(store, model_sha: str) -> tuple[float, int]:
    """The first release's read: every reference row of the model, into numpy."""
    start = time.perf_counter()
    with store._read() as conn:
        rows = conn.execute(
            "SELECT features FROM user_references WHERE model_sha256 = ?", (model_sha,)
        ).fetchall()
    feats = np.stack([np.frombuffer(bytes(r[0]), "<f4") for r in rows])
    return time.perf_counter() - start, int(feats.shape[0])


def _user_bytes(store, verifier, user: str) -> dict[str, int]:
    with store._read() as conn:
        blob = conn.execute(
            "SELECT classifier FROM users WHERE tenant_id = 'default' AND user_id = ?", (user,)
        ).fetchone()[0]
        refs = conn.execute(
            "SELECT features FROM user_references WHERE tenant_id = 'default' AND user_id = ?",
            (user,),
        ).fetchall()
    from enrollment.store import decode_arrays, encode_arrays

    arrays = decode_arrays(bytes(blob))
    full = arrays
    if "sv_source" in arrays:  # what the first release stored: float64 support vectors
        own = verifier.store.load_references(user)[0]
        full = verifier._expand_arrays(arrays, own)
        full = {k: v for k, v in full.items() if not k.startswith(("sv_", "background"))}
    return {
        "classifier": len(bytes(blob)),
        "classifier_full_float64": len(encode_arrays(full)),
        "support_vectors": int(full["support_vectors"].shape[0]),
        "references": sum(len(bytes(r[0])) for r in refs),
    }


def run_backend(backend: str, sizes: list[int], args, images, extractor, model_path) -> list[dict]:
    from enrollment import Verifier
    from enrollment.store import UserStore, open_store
    from enrollment.testing import temporary_postgres

    results = []
    server = temporary_postgres() if backend == "postgresql" else None
    url = server.__enter__() if server is not None else None
    try:
        for n in sizes:
            tmp = tempfile.TemporaryDirectory(prefix="sigver-scale-")
            if url:
                import psycopg

                name = f"scale{n}"
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {name}")
                    conn.execute(f"CREATE DATABASE {name}")
                store = open_store(url.rsplit("/", 1)[0] + "/" + name)
            else:
                store = UserStore(Path(tmp.name) / "home")
            verifier = Verifier(store=store, extractor=extractor, model=model_path)
            bg = verifier._background
            t0 = time.perf_counter()
            _fill(store, n, args.refs, verifier.model_id, verifier.model_sha256, bg)
            fill_s = time.perf_counter() - t0
            samples = []
            for i in range(args.repeats):
                t0 = time.perf_counter()
                got = store.other_references(
                    f"new{i}", verifier.model_sha256, limit=2000, seed=i, dim=bg.shape[1]
                )
                samples.append(time.perf_counter() - t0)
            scan_s, scanned = _scan_all(store, verifier.model_sha256)
            enroll_s, cold_s, warm_s = [], [], []
            for i in range(args.repeats):
                refs = images[i % len(images)]
                t0 = time.perf_counter()
                verifier.enroll(f"bench{i}", refs[:-1])
                enroll_s.append(time.perf_counter() - t0)
                fresh = Verifier(store=store, extractor=extractor, model=model_path)
                t0 = time.perf_counter()
                fresh.verify(f"bench{i}", refs[-1])
                cold_s.append(time.perf_counter() - t0)
                for _ in range(5):
                    t0 = time.perf_counter()
                    fresh.verify(f"bench{i}", refs[-1])
                    warm_s.append(time.perf_counter() - t0)
            sizes_b = _user_bytes(store, verifier, "bench0")
            row = {
                "backend": backend,
                "users": n + args.repeats,
                "fill_s": round(fill_s, 2),
                "sample_2000_ms": round(1000 * statistics.median(samples), 1),
                "sampled_rows": int(got.shape[0]),
                "scan_all_ms": round(1000 * scan_s, 1),
                "scanned_rows": scanned,
                "enroll_ms_median": round(1000 * statistics.median(enroll_s), 1),
                "verify_cold_ms_median": round(1000 * statistics.median(cold_s), 1),
                "verify_warm_ms_p50": round(1000 * statistics.median(warm_s), 1),
                "classifier_bytes_per_user": sizes_b["classifier"],
                "classifier_bytes_if_float64_copies": sizes_b["classifier_full_float64"],
                "support_vectors": sizes_b["support_vectors"],
                "reference_bytes_per_user": sizes_b["references"],
            }
            print(json.dumps(row), flush=True)
            results.append(row)
            store.close()
            tmp.cleanup()
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 10000])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--refs", type=int, default=5, help="references per filler user (5)")
    parser.add_argument("--repeats", type=int, default=3, help="enrollments per size (3)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)

    from enrollment.testing import postgres_unavailable_reason
    from enrollment.verifier import load_extractor
    from sigver._util import format_machine_info, machine_info
    from sigver.synth import generate_writer

    info = machine_info(include_torch=True)
    print(format_machine_info(info), flush=True)
    extractor, model_path = load_extractor(None)
    images = []
    for w in range(args.repeats):
        _, genuine, _ = generate_writer(7, 500 + w, 6, 0)
        images.append([np.asarray(g) for g in genuine])
    results = []
    for backend in args.backends:
        if backend == "postgresql" and postgres_unavailable_reason():
            print(f"skipping postgresql: {postgres_unavailable_reason()}", flush=True)
            continue
        results += run_backend(backend, args.sizes, args, images, extractor, model_path)
    info_after = machine_info()
    report = {
        "command": " ".join(["python", *sys.argv]),
        "machine": info,
        "load_average_after": info_after["load_average"],
        "results": results,
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({"load_average_after": info_after["load_average"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

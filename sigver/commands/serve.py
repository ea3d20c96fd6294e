"""``sigver serve``: run the HTTP enrollment/verification service (FastAPI + uvicorn).

Every ``/v1`` endpoint needs an API key in the ``X-API-Key`` header; create
one with ``sigver keys create NAME`` (or ``--create-key NAME`` here).
``/health``, ``/ready`` and ``/metrics`` need none. Interactive API
documentation (served from local assets) is at ``/docs``.

Each worker uses ``--threads`` torch/BLAS threads (default: usable cores //
workers), so that workers x threads never exceeds the cores.
"""

from __future__ import annotations

import argparse

from enrollment._cli import (
    add_forgery_cue_argument,
    add_model_argument,
    add_operating_point_argument,
    add_store_argument,
)

NAME = "serve"
HELP = "run the HTTP service (enroll/verify endpoints, API-key auth, docs at /docs)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` options."""
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes, each with its own model copy (default 1)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch/BLAS threads per worker (default: usable cores // workers, at least 1; "
        "or $SIGVER_THREADS)",
    )
    add_store_argument(parser, tenant=False)
    add_model_argument(parser)
    add_operating_point_argument(parser)
    add_forgery_cue_argument(parser)
    parser.add_argument(
        "--create-key",
        metavar="NAME",
        help="create an API key of tenant 'default' named NAME, print it once, then serve",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn log level (default info)",
    )


def run(args: argparse.Namespace) -> int:
    """Check the set-up, then serve until interrupted."""
    import logging
    import os

    import uvicorn

    from enrollment.config import (
        ENV_HOME,
        ENV_MODEL,
        ENV_STORE,
        ENV_THREADS,
        Settings,
        default_threads,
        resolve_home,
    )
    from enrollment.errors import EnrollmentError
    from enrollment.service import configure_threads, create_app
    from enrollment.verifier import Verifier, load_extractor

    log = logging.getLogger("sigver.commands.serve")
    if args.workers < 1:
        raise EnrollmentError(f"--workers must be at least 1, got {args.workers}")
    if not 0 < args.port < 65536:
        raise EnrollmentError(f"--port must be in 1..65535, got {args.port}")
    if args.threads is not None and args.threads < 1:
        raise EnrollmentError(f"--threads must be at least 1, got {args.threads}")
    settings = Settings.from_env()
    threads = args.threads or settings.threads or default_threads(args.workers)
    # Before torch / BLAS start their pools here and in the spawned workers.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    os.environ[ENV_THREADS] = str(threads)
    settings = Settings.from_env()
    configure_threads(threads)
    home = resolve_home(args.home)
    store_url = args.store or os.environ.get(ENV_STORE) or None
    # Load the model here even with several workers: a bad model fails once,
    # with a clear message, instead of in every worker.
    extractor, model_path = load_extractor(args.model, backend=args.backend)
    verifier = Verifier(
        home=home,
        model=model_path,
        extractor=extractor,
        settings=settings,
        store=store_url,
        operating_point=args.operating_point,
        forgery_cue=args.forgery_cue,
    )
    store = verifier.store
    if args.create_key:
        try:
            info, plaintext = store.create_api_key(args.create_key)
        except ValueError as exc:
            raise EnrollmentError(str(exc)) from None
        print(plaintext, flush=True)
        print(f"# API key {info.name!r} created; it is not shown again.", flush=True)
    if not store.has_active_api_keys():
        log.warning(
            "no active API key in %s: every /v1 request will be refused; "
            "create one with 'sigver keys create NAME'",
            store.location,
        )
    log.info(
        "serving model %s, store %s on http://%s:%d (docs at /docs), %d worker(s) x %d thread(s)",
        verifier.model_id,
        store.location,
        args.host,
        args.port,
        args.workers,
        threads,
    )
    if args.workers == 1:
        uvicorn.run(create_app(verifier), host=args.host, port=args.port, log_level=args.log_level)
        return 0
    # Worker processes cannot receive the Verifier; they rebuild it from the environment.
    store.close()
    os.environ[ENV_HOME] = str(home)
    if store_url:
        os.environ[ENV_STORE] = store_url
    if model_path is not None:
        os.environ[ENV_MODEL] = str(model_path)
    if args.operating_point:
        from enrollment.verifier import ENV_OPERATING_POINT

        os.environ[ENV_OPERATING_POINT] = verifier.operating_point
    if args.forgery_cue is not None:
        from enrollment.verifier import ENV_FORGERY_CUE

        os.environ[ENV_FORGERY_CUE] = "1" if args.forgery_cue else "0"
    # Workers open the model again: give them the backend already chosen (and, for
    # onnx, already exported and verified into the cache) by this process.
    os.environ["SIGVER_BACKEND"] = extractor.backend
    uvicorn.run(
        "enrollment.service:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
    )
    return 0

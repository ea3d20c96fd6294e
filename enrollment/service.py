"""HTTP service (FastAPI): enroll and verify over HTTP with tenant-scoped API keys.

Endpoints (all under ``/v1`` need the ``X-API-Key`` header; the key's tenant
scopes every user operation, so a key only ever sees its own tenant's users)::

    GET    /health                         liveness (no key)
    GET    /ready                          readiness: store reachable, model loaded (no key)
    GET    /metrics                        Prometheus metrics (no key)
    GET    /docs                           Swagger UI, assets served locally (no key)
    GET    /v1/users                       list the tenant's users
    GET    /v1/users/{user_id}             one user
    DELETE /v1/users/{user_id}             remove a user
    PUT    /v1/users/{user_id}/threshold   JSON {"threshold": number | null}
    POST   /v1/users/{user_id}/enroll      multipart: images=<file> (repeated), add, force,
                                           threshold, store_images
    POST   /v1/users/{user_id}/verify      multipart: images=<file> (repeated) or image=<file>
    GET    /v1/audit                       audit trail (user_id, action, since, until, limit;
                                           admin keys may pass tenant)
    GET    /v1/admin/tenants               (admin) tenants
    POST   /v1/admin/tenants               (admin) JSON {"tenant": "..."}
    GET    /v1/admin/keys                  (admin) keys, optionally ?tenant=
    POST   /v1/admin/keys                  (admin) JSON {"name", "tenant", "scope"}; key shown once
    DELETE /v1/admin/keys/{key}            (admin) revoke by key id or name

plus the operator console at ``/`` and the endpoints it uses (``POST
/v1/preprocess``, ``GET /v1/users/{user_id}/references``): see
:mod:`enrollment.console_api`.

Errors are JSON ``{"detail": "...", "error": "<kind>"}`` with 400 (unreadable
image, with the reason), 401 (no key), 403 (wrong or revoked key, or not an
admin key), 404 (unknown user or tenant), 409 (already enrolled, model
mismatch), 413 (upload too large), 422 (invalid id or parameters), 500
(unexpected, logged) and 503 (store or model problem).

The key is checked by an ASGI middleware *before* the request body is read:
a client without a valid key cannot make the server spool an upload.

Run it with ``sigver serve`` or any ASGI server::

    uvicorn --factory enrollment.service:app_from_env   # SIGVER_STORE / SIGVER_HOME / SIGVER_MODEL
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

import anyio
import anyio.to_thread
from fastapi import Body, Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool as _to_thread
from starlette.exceptions import HTTPException as StarletteHTTPException

from enrollment.auth import ApiKeyInfo
from enrollment.config import Settings
from enrollment.console_api import console_router
from enrollment.errors import StoreError, http_status_for
from enrollment.store import AUDIT_ACTIONS, KEY_SCOPES, validate_tenant_id, validate_user_id
from enrollment.verifier import Verifier
from sigver import __version__
from sigver.errors import ImageError, SigverError

__all__ = [
    "API_KEY_HEADER",
    "ApiKeyGate",
    "BodySizeLimit",
    "app_from_env",
    "configure_threads",
    "create_app",
]

logger = logging.getLogger(__name__)

#: Header carrying the API key.
API_KEY_HEADER = "X-API-Key"

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[None]]

# Kept referenced: threadpoolctl limits last as long as their controller lives.
_THREAD_LIMITS: list[Any] = []


def configure_threads(threads: int | None) -> None:
    """Cap torch and BLAS threads of this process (``None``: leave the defaults).

    With ``W`` workers on ``C`` cores each worker should use ``C // W``
    threads; otherwise every worker starts one thread per core and they
    oversubscribe the CPU under load.
    """
    if threads is None:
        return
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(int(threads))
    _THREAD_LIMITS.append(threadpool_limits(limits=int(threads)))
    logger.info("limited torch and BLAS to %d thread(s) in process %d", threads, os.getpid())


async def _send_json(
    send: _Send, status: int, body: dict[str, Any], headers: dict | None = None
) -> None:
    response = JSONResponse(body, status_code=status, headers=headers)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> _Message:  # pragma: no cover - never awaited by JSONResponse
    return {"type": "http.disconnect"}


def _route_path(scope: _Scope) -> str:
    """The path without the ``root_path`` prefix (``uvicorn --root-path``), as routing sees it."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", "") or "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


#: Refused keys logged per minute at most (a flood of bad keys must not flood the log).
_REFUSAL_LOG_PER_MINUTE = 10
_refusals = {"minute": 0, "count": 0, "suppressed": 0}
_refusals_lock = threading.Lock()


def _log_refusal(presented: str, client: str) -> None:
    """Warn about a refused key: its id prefix and the client, never the secret."""
    from enrollment.auth import parse_key

    parsed = parse_key(presented)
    key_id = parsed[0] if parsed else "<malformed>"
    minute = int(time.time() // 60)
    with _refusals_lock:
        if _refusals["minute"] != minute:
            if _refusals["suppressed"]:
                logger.warning("%d more refused API keys not logged", _refusals["suppressed"])
            _refusals.update(minute=minute, count=0, suppressed=0)
        _refusals["count"] += 1
        if _refusals["count"] > _REFUSAL_LOG_PER_MINUTE:
            _refusals["suppressed"] += 1
            return
    logger.warning("refused API key %s from %s (invalid or revoked)", key_id, client)


def _public_message(exc: BaseException, hidden: tuple[str, ...]) -> str:
    """``str(exc)``, unless it names where the store lives (a path, a host): then a
    generic sentence, the full message going to the server log only."""
    text = str(exc)
    if isinstance(exc, StoreError) and any(h and h in text for h in hidden):
        return "the user store is unavailable or refused the operation (details in the server log)"
    return text


def _public_error(exc: SigverError, status: int, hidden: tuple[str, ...]) -> dict[str, Any]:
    """The JSON body of an error (see :func:`_public_message`)."""
    return {"detail": _public_message(exc, hidden), "error": _error_kind(exc)}


def _store_places(store: Any) -> tuple[str, ...]:
    """Strings that locate the store on this server (its location, its home folder)."""
    places = [str(getattr(store, "location", "") or "")]
    home = getattr(store, "home", None)
    if home is not None:
        places.append(str(home))
    return tuple(p for p in places if p)


class ApiKeyGate:
    """ASGI middleware: authenticate ``/v1`` requests from their headers, before any body is read.

    The authenticated :class:`~enrollment.auth.ApiKeyInfo` is put in
    ``scope["state"]["api_key"]``; ``/v1/admin`` additionally needs an admin key.
    """

    def __init__(
        self,
        app: _ASGIApp,
        authenticate: Callable[[str], ApiKeyInfo | None],
        hidden: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.hidden = hidden

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        path = _route_path(scope) if scope["type"] == "http" else ""
        if not (path == "/v1" or path.startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        presented = None
        for name, value in scope.get("headers", []):
            if name == b"x-api-key":
                presented = value.decode("latin-1")
                break
        if not presented:
            await _send_json(
                send,
                401,
                {
                    "detail": f"missing API key: send it in the {API_KEY_HEADER} header",
                    "error": "authentication_error",
                },
                {"WWW-Authenticate": "ApiKey"},
            )
            return
        try:
            info = await _to_thread(self.authenticate, presented)
        except SigverError as exc:
            # Outside FastAPI's handlers: a store outage must answer 503 (retry), not 500.
            status = http_status_for(exc)
            logger.error("authenticating %s %s: %s", scope.get("method"), path, exc)
            await _send_json(send, status, _public_error(exc, status, self.hidden))
            return
        if info is None:
            client = scope.get("client") or ("?", 0)
            _log_refusal(presented, str(client[0]))
            await _send_json(
                send, 403, {"detail": "invalid or revoked API key", "error": "forbidden"}
            )
            return
        if path.startswith("/v1/admin") and not info.is_admin:
            await _send_json(
                send, 403, {"detail": "this endpoint needs an admin key", "error": "forbidden"}
            )
            return
        scope.setdefault("state", {})["api_key"] = info
        await self.app(scope, receive, send)


class BodySizeLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` with 413.

    A declared ``Content-Length`` over the limit is refused before anything is
    read; bodies without one (chunked uploads) are counted while streaming and
    cut off as soon as they exceed the limit.
    """

    def __init__(self, app: _ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await _send_json(
                        send,
                        413,
                        {
                            "detail": f"request body of {declared} bytes exceeds "
                            f"{self.max_bytes} bytes",
                            "error": "payload_too_large",
                        },
                    )
                    return
        received = 0
        limit = self.max_bytes

        async def limited_receive() -> _Message:
            nonlocal received
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI re-raises HTTPExceptions from body parsing unchanged.
                    raise HTTPException(413, f"request body exceeds {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)


class _Metrics:
    """Prometheus metrics of one application (own registry: several apps per process in tests)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sigver_http_requests",
            "HTTP requests by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sigver_http_request_seconds",
            "HTTP request latency by method and route",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.decisions = Counter(
            "sigver_decisions", "Verification decisions", ["decision"], registry=self.registry
        )
        self.errors = Counter(
            "sigver_errors", "Error responses by kind", ["kind"], registry=self.registry
        )
        self.enrollments = Counter(
            "sigver_enrollments", "Successful enrollments", registry=self.registry
        )
        self.info = Gauge(
            "sigver_model_info", "Loaded model", ["model_id", "version"], registry=self.registry
        )


class _MetricsMiddleware:
    def __init__(self, app: _ASGIApp, metrics: _Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: _Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            # The route template, never the raw path: user ids must not become labels.
            label = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, label, str(status["code"])).inc()
            self.metrics.latency.labels(method, label).observe(time.perf_counter() - start)
            if status["code"] >= 400:
                self.metrics.errors.labels(str(status["code"])).inc()


#: ``error`` of the JSON body of an HTTPException, by status code.
_HTTP_ERROR_KINDS = {
    400: "bad_request",
    401: "authentication_error",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    503: "unavailable",
}


def _error_kind(exc: BaseException) -> str:
    name = type(exc).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def _swagger_assets() -> str | None:
    try:
        import swagger_ui_bundle
    except ImportError:  # pragma: no cover - declared dependency
        return None
    return str(swagger_ui_bundle.swagger_ui_path)


def create_app(
    verifier: Verifier | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    model: str | os.PathLike[str] | None = None,
    settings: Settings | None = None,
    store: str | None = None,
) -> FastAPI:
    """Build the FastAPI application.

    Parameters
    ----------
    verifier : Verifier, optional
        Shared verifier; built from ``home``/``model``/``settings``/``store`` when omitted.
    home, model : path-like, optional
        Store folder and model (see :class:`~enrollment.verifier.Verifier`).
    settings : Settings, optional
        Upload limits and defaults (from the environment when omitted).
    store : str, optional
        Store URL (``postgresql://...``) or folder; default ``$SIGVER_STORE``.

    Returns
    -------
    fastapi.FastAPI
    """
    if verifier is None:
        verifier = Verifier(home=home, model=model, settings=settings, store=store)
    settings = verifier.settings
    configure_threads(settings.threads)
    store_ = verifier.store
    metrics = _Metrics()
    metrics.info.labels(verifier.model_id, __version__).set(1)

    app = FastAPI(
        title="sigver",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        description=(
            "Offline handwritten signature verification: enroll users from reference "
            "signatures, then verify questioned signatures. Authenticate with the "
            f"`{API_KEY_HEADER}` header (create a key with `sigver keys create NAME`); "
            "the key's tenant scopes every user operation."
        ),
    )
    app.state.verifier = verifier
    app.state.metrics = metrics
    # Added last = outermost: metrics see everything, the key gate runs before
    # the body-size limit, and both before FastAPI reads any body.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    hidden = _store_places(store_)
    app.add_middleware(ApiKeyGate, authenticate=store_.authenticate, hidden=hidden)
    app.add_middleware(_MetricsMiddleware, metrics=metrics)

    assets = _swagger_assets()
    if assets is not None:
        from fastapi.staticfiles import StaticFiles

        app.mount("/static/swagger-ui", StaticFiles(directory=assets), name="swagger-ui")

    # Declared for the OpenAPI schema (the "Authorize" button); ApiKeyGate enforces it.
    key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)

    def caller(request: Request, _: str | None = Depends(key_header)) -> ApiKeyInfo:
        info = getattr(request.state, "api_key", None)
        if info is None:  # pragma: no cover - ApiKeyGate guarantees it under /v1
            raise HTTPException(401, "missing API key")
        return info

    @app.exception_handler(SigverError)
    async def _sigver_error(request: Request, exc: SigverError) -> JSONResponse:
        status = http_status_for(exc)
        body: dict[str, Any] = _public_error(exc, status, hidden)
        if isinstance(exc, ImageError):
            body["reason"] = exc.reason
            body["source"] = exc.source
        if status >= 500:
            logger.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(body, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The documented error shape everywhere: {"detail": ..., "error": ...}.
        return JSONResponse(
            {"detail": exc.detail, "error": _HTTP_ERROR_KINDS.get(exc.status_code, "http_error")},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors())
        parts = []
        for err in errors:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", ""))
        return JSONResponse(
            {
                "detail": "; ".join(parts) or "invalid request",
                "error": "validation_error",
                "errors": errors,
            },
            status_code=422,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": "internal error (logged on the server)", "error": "internal_error"},
            status_code=500,
        )

    image_slots = anyio.CapacityLimiter(settings.max_image_requests)

    async def image_work(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run decoding / extraction in a thread of its own limiter.

        Requests over ``max_image_requests`` wait here without a thread, so a flood
        of uploads never takes the default pool's threads that authentication,
        ``/ready`` and the store endpoints run on.
        """
        return await anyio.to_thread.run_sync(
            functools.partial(fn, *args, **kwargs), limiter=image_slots
        )

    async def _read_uploads(files: list[UploadFile]) -> list[bytes]:
        if not files:
            raise HTTPException(422, "no image uploaded (multipart field 'images')")
        if len(files) > settings.max_files:
            raise HTTPException(413, f"too many files ({len(files)}); at most {settings.max_files}")
        blobs = []
        for upload in files:
            name = upload.filename or "<upload>"
            if upload.size is not None and upload.size > settings.max_file_bytes:
                raise HTTPException(
                    413, f"{name}: {upload.size} bytes exceeds {settings.max_file_bytes} per file"
                )
            data = await upload.read(settings.max_file_bytes + 1)
            if len(data) > settings.max_file_bytes:
                raise HTTPException(
                    413, f"{name}: file exceeds {settings.max_file_bytes} bytes per file"
                )
            blobs.append(data)
        return blobs

    def _names(files: list[UploadFile]) -> list[str]:
        return [f.filename or f"<upload {i}>" for i, f in enumerate(files)]

    def _rename_image_error(exc: ImageError, files: list[UploadFile]) -> ImageError:
        # The verifier names byte uploads "<image i>"; report the uploaded file name.
        for i, name in enumerate(_names(files)):
            if exc.source == f"<image {i}>":
                return ImageError(name, exc.reason)
        return exc

    # -- service -----------------------------------------------------------------

    @app.get("/health", tags=["service"])
    async def health() -> dict[str, Any]:
        """Liveness: the process answers (no authentication, no store access)."""
        return {
            "status": "ok",
            "version": __version__,
            "model_id": verifier.model_id,
            "default_threshold": verifier.default_threshold,
            "operating_point": verifier.operating_point,
            "forgery_cue": verifier.forgery_cue is not None,
        }

    @app.get("/ready", tags=["service"])
    async def ready() -> JSONResponse:
        """Readiness: the store answers a query and the model is loaded."""
        checks: dict[str, Any] = {"model": verifier.extractor is not None}
        try:
            await run_in_threadpool(store_.ping)
            checks["store"] = True
        except SigverError as exc:
            # Unauthenticated: where the store lives (paths, hosts) stays in the log.
            logger.error("readiness: the store does not answer: %s", exc)
            checks["store"] = False
            checks["store_error"] = _public_message(exc, hidden)
        ok = bool(checks["model"] and checks["store"])
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks, "backend": store_.backend},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", tags=["service"], include_in_schema=False)
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition of this worker's metrics."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        """Swagger UI from locally served assets (works offline)."""
        if assets is None:  # pragma: no cover - declared dependency
            raise HTTPException(503, "swagger-ui-bundle is not installed")
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="sigver API",
            swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/swagger-ui/favicon-32x32.png",
        )

    # -- users -------------------------------------------------------------------

    @app.get("/v1/users", tags=["users"])
    async def list_users(key: ApiKeyInfo = Depends(caller)) -> dict[str, Any]:
        """The caller's tenant's enrolled users."""
        users = await run_in_threadpool(store_.list_users, tenant=key.tenant)
        return {"users": [u.to_dict() for u in users], "count": len(users), "tenant": key.tenant}

    @app.get("/v1/users/{user_id}", tags=["users"])
    async def get_user(user_id: str, key: ApiKeyInfo = Depends(caller)) -> dict[str, Any]:
        """One enrolled user (classifier parameters, counts, image hashes, threshold)."""
        validate_user_id(user_id)
        user = await run_in_threadpool(store_.get_user, user_id, tenant=key.tenant)
        body = user.to_dict()
        threshold, decided_by, rates = verifier.operating_point_for(user)
        body["effective_threshold"] = threshold
        body["effective_operating_point"] = decided_by
        body["calibrated_rates"] = rates
        # As verification results say it: the reference count the rates were calibrated at.
        body["calibrated_references"] = (verifier.calibration or {}).get("refs") if rates else None
        return body

    @app.get("/v1/operating-points", tags=["users"])
    async def list_operating_points(_: ApiKeyInfo = Depends(caller)) -> dict[str, Any]:
        """The model's named operating points with the error rates they were calibrated for."""
        return {
            "default": verifier.operating_point,
            "normalization": verifier.normalization,
            "operating_points": verifier.operating_points(),
        }

    @app.put("/v1/users/{user_id}/operating-point", tags=["users"])
    async def set_operating_point(
        user_id: str, body: dict[str, Any] = Body(...), key: ApiKeyInfo = Depends(caller)
    ) -> dict[str, Any]:
        """Set a user's named operating point (``{"operating_point": "far-skilled=1%"}``;
        ``null`` returns the user to the store-wide default)."""
        from sigver.calibration import CalibrationError

        validate_user_id(user_id)
        name = body.get("operating_point")
        if name is not None and not isinstance(name, str):
            raise HTTPException(422, "operating_point must be a string or null")
        try:
            user = await run_in_threadpool(
                verifier.set_operating_point, user_id, name, tenant=key.tenant, key_id=key.key_id
            )
        except CalibrationError as exc:
            raise HTTPException(422, str(exc)) from None
        threshold, decided_by, rates = verifier.operating_point_for(user)
        return {
            "user_id": user_id,
            "operating_point": user.operating_point,
            "effective_operating_point": decided_by,
            "effective_threshold": threshold,
            "calibrated_rates": rates,
        }

    @app.delete("/v1/users/{user_id}", tags=["users"])
    async def delete_user(user_id: str, key: ApiKeyInfo = Depends(caller)) -> dict[str, Any]:
        """Remove a user and all their data."""
        validate_user_id(user_id)
        await run_in_threadpool(verifier.remove_user, user_id, tenant=key.tenant, key_id=key.key_id)
        return {"deleted": user_id}

    @app.put("/v1/users/{user_id}/threshold", tags=["users"])
    async def set_threshold(
        user_id: str,
        threshold: float | None = Body(..., embed=True, description="null clears the override"),
        key: ApiKeyInfo = Depends(caller),
    ) -> dict[str, Any]:
        """Set (or clear with null) a user's threshold override."""
        validate_user_id(user_id)
        user = await run_in_threadpool(
            verifier.set_threshold, user_id, threshold, tenant=key.tenant, key_id=key.key_id
        )
        body = user.to_dict()
        body["effective_threshold"] = verifier.threshold_for(user)
        return body

    @app.post("/v1/users/{user_id}/enroll", tags=["enrollment"], status_code=201)
    async def enroll(
        user_id: str,
        images: list[UploadFile] = File(..., description="reference signatures"),
        add: bool = Form(False, description="add references to an existing enrollment"),
        force: bool = Form(False, description="replace an existing enrollment"),
        threshold: float | None = Form(None, description="per-user threshold override"),
        store_images: bool = Form(False, description="keep the images in the store"),
        key: ApiKeyInfo = Depends(caller),
    ) -> JSONResponse:
        """Enroll (or extend with ``add``, or replace with ``force``) a user."""
        validate_user_id(user_id)
        blobs = await _read_uploads(images)
        try:
            result = await image_work(
                verifier.enroll,
                user_id,
                blobs,
                add=add,
                force=force,
                threshold=threshold,
                store_images=store_images,
                tenant=key.tenant,
                key_id=key.key_id,
            )
        except ImageError as exc:
            raise _rename_image_error(exc, images) from exc
        metrics.enrollments.inc()
        status = 201 if result.user.revision == 1 else 200
        return JSONResponse(result.to_dict(), status_code=status)

    @app.post("/v1/users/{user_id}/verify", tags=["verification"])
    async def verify(
        user_id: str,
        images: list[UploadFile] | None = File(None, description="questioned signatures"),
        image: UploadFile | None = File(None, description="one questioned signature"),
        key: ApiKeyInfo = Depends(caller),
    ) -> dict[str, Any]:
        """Verify questioned signature(s) against a user's enrollment."""
        validate_user_id(user_id)
        files = list(images or []) + ([image] if image is not None else [])
        blobs = await _read_uploads(files)
        try:
            results = await image_work(
                verifier.verify_batch, user_id, blobs, tenant=key.tenant, key_id=key.key_id
            )
        except ImageError as exc:
            raise _rename_image_error(exc, files) from exc
        items = []
        for name, res in zip(_names(files), results, strict=True):
            item = res.to_dict()
            item["filename"] = name
            items.append(item)
            metrics.decisions.labels("accept" if res.accepted else "reject").inc()
        return {
            "user_id": user_id,
            "accepted": all(r.accepted for r in results),
            "results": items,
        }

    app.include_router(console_router(verifier, caller, image_work=image_work))

    # -- audit -------------------------------------------------------------------

    @app.get("/v1/audit", tags=["audit"])
    async def audit(
        user_id: str | None = Query(None),
        action: str | None = Query(None, description=f"one of {', '.join(AUDIT_ACTIONS)}"),
        since: str | None = Query(None, description="ISO-8601, inclusive"),
        until: str | None = Query(None, description="ISO-8601, exclusive"),
        limit: int = Query(100, ge=1, le=10_000),
        tenant: str | None = Query(None, description="admin keys only; '*' for all tenants"),
        key: ApiKeyInfo = Depends(caller),
    ) -> dict[str, Any]:
        """The audit trail, newest first, scoped to the caller's tenant (read-only)."""
        scope: str | None = key.tenant
        if tenant is not None and tenant != key.tenant:
            if not key.is_admin:
                raise HTTPException(403, "only admin keys may read another tenant's audit trail")
            scope = None if tenant == "*" else validate_tenant_id(tenant)
        if user_id is not None:
            validate_user_id(user_id)
        if action is not None and action not in AUDIT_ACTIONS:
            raise HTTPException(422, f"action must be one of {', '.join(AUDIT_ACTIONS)}")
        for name, value in (("since", since), ("until", until)):
            if value is not None:
                try:
                    datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    raise HTTPException(422, f"{name} must be an ISO-8601 time") from None
        events = await run_in_threadpool(
            store_.audit_events,
            tenant=scope,
            user_id=user_id,
            action=action,
            since=since,
            until=until,
            limit=limit,
        )
        return {"events": [e.to_dict() for e in events]}

    # -- admin -------------------------------------------------------------------

    @app.get("/v1/admin/tenants", tags=["admin"])
    async def list_tenants(_: ApiKeyInfo = Depends(caller)) -> dict[str, Any]:
        """All tenants with their user and key counts."""
        return {"tenants": await run_in_threadpool(store_.list_tenants)}

    @app.post("/v1/admin/tenants", tags=["admin"], status_code=201)
    async def create_tenant(
        tenant: str = Body(..., embed=True), key: ApiKeyInfo = Depends(caller)
    ) -> dict[str, Any]:
        """Create a tenant."""
        validate_tenant_id(tenant)
        await run_in_threadpool(store_.create_tenant, tenant, key_id=key.key_id)
        return {"tenant": tenant}

    @app.get("/v1/admin/keys", tags=["admin"])
    async def list_keys(
        tenant: str | None = Query(None), _: ApiKeyInfo = Depends(caller)
    ) -> dict[str, Any]:
        """API keys (no secrets), of one tenant or all."""
        keys = await run_in_threadpool(store_.list_api_keys, tenant=tenant)
        return {"keys": [k.to_dict() for k in keys]}

    @app.post("/v1/admin/keys", tags=["admin"], status_code=201)
    async def create_key(
        name: str = Body(...),
        tenant: str = Body(...),
        scope: str = Body("tenant"),
        key: ApiKeyInfo = Depends(caller),
    ) -> dict[str, Any]:
        """Create a key for an existing tenant; the plaintext is in the answer, once."""
        if scope not in KEY_SCOPES:
            raise HTTPException(422, f"scope must be one of {', '.join(KEY_SCOPES)}, not {scope!r}")
        try:
            info, plaintext = await run_in_threadpool(
                store_.create_api_key, name, tenant=tenant, scope=scope, key_id=key.key_id
            )
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return {**info.to_dict(), "key": plaintext}

    @app.delete("/v1/admin/keys/{name_or_id}", tags=["admin"])
    async def revoke_key(name_or_id: str, key: ApiKeyInfo = Depends(caller)) -> dict[str, Any]:
        """Revoke a key by key id or (active) name."""
        info = await run_in_threadpool(store_.revoke_api_key, name_or_id, key_id=key.key_id)
        return info.to_dict()

    return app


def app_from_env() -> FastAPI:
    """Application factory for ASGI servers (``uvicorn --factory``).

    Reads ``SIGVER_STORE`` / ``SIGVER_HOME``, ``SIGVER_MODEL``, ``SIGVER_THREADS``
    and the limit variables of :class:`~enrollment.config.Settings`; each
    worker process calls it once.
    """
    return create_app()

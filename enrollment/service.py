"""HTTP service (FastAPI): enroll and verify over HTTP with API-key authentication.

Endpoints (all under ``/v1`` need the ``X-API-Key`` header)::

    GET    /health                         liveness + model id (no auth)
    GET    /v1/users                       list enrolled users
    GET    /v1/users/{user_id}             one user
    DELETE /v1/users/{user_id}             remove a user
    POST   /v1/users/{user_id}/enroll      multipart: images=<file> (repeated), add, force,
                                           threshold, store_images
    POST   /v1/users/{user_id}/verify      multipart: images=<file> (repeated) or image=<file>

Errors are JSON ``{"detail": "...", "error": "<kind>"}`` with 400 (unreadable
image, with the reason), 401 (no key), 403 (wrong or revoked key), 404
(unknown user), 409 (already enrolled, model mismatch), 413 (upload too
large), 422 (invalid user id or parameters) and 503 (store or model problem).

Run it with ``sigver serve`` or any ASGI server::

    uvicorn --factory enrollment.service:app_from_env   # SIGVER_HOME / SIGVER_MODEL

Each worker process builds its own :class:`~enrollment.verifier.Verifier`
(one model load per worker) and the store opens a fresh SQLite connection per
operation, so several workers and concurrent requests share one store safely.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader

from enrollment.config import Settings
from enrollment.errors import http_status_for
from enrollment.store import validate_user_id
from enrollment.verifier import Verifier
from sigver import __version__
from sigver.errors import ImageError, SigverError

__all__ = ["API_KEY_HEADER", "BodySizeLimit", "app_from_env", "create_app"]

logger = logging.getLogger(__name__)

#: Header carrying the API key.
API_KEY_HEADER = "X-API-Key"

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]


class BodySizeLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` with 413.

    A declared ``Content-Length`` over the limit is refused before anything is
    read; bodies without one (chunked uploads) are counted while streaming and
    cut off as soon as they exceed the limit.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def _refuse(self, send: _Send, detail: str) -> None:
        response = JSONResponse({"detail": detail, "error": "payload_too_large"}, status_code=413)
        await response({"type": "http"}, _no_receive, send)

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
                    await self._refuse(
                        send, f"request body of {declared} bytes exceeds {self.max_bytes} bytes"
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


async def _no_receive() -> _Message:  # pragma: no cover - never awaited by JSONResponse
    return {"type": "http.disconnect"}


def _error_kind(exc: BaseException) -> str:
    name = type(exc).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def create_app(
    verifier: Verifier | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    model: str | os.PathLike[str] | None = None,
    settings: Settings | None = None,
) -> FastAPI:
    """Build the FastAPI application.

    Parameters
    ----------
    verifier : Verifier, optional
        Shared verifier; built from ``home``/``model``/``settings`` when omitted.
    home, model : path-like, optional
        Store folder and model (see :class:`~enrollment.verifier.Verifier`).
    settings : Settings, optional
        Upload limits and defaults (from the environment when omitted).

    Returns
    -------
    fastapi.FastAPI
    """
    if verifier is None:
        verifier = Verifier(home=home, model=model, settings=settings)
    settings = verifier.settings
    store = verifier.store

    app = FastAPI(
        title="sigver",
        version=__version__,
        description=(
            "Offline handwritten signature verification: enroll users from reference "
            "signatures, then verify questioned signatures. Authenticate with the "
            f"`{API_KEY_HEADER}` header (create a key with `sigver keys create NAME`)."
        ),
    )
    app.state.verifier = verifier
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)

    key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)

    async def require_key(key: str | None = Depends(key_header)) -> str:
        if not key:
            raise HTTPException(
                401,
                f"missing API key: send it in the {API_KEY_HEADER} header",
                headers={"WWW-Authenticate": "ApiKey"},
            )
        info = await run_in_threadpool(store.authenticate, key)
        if info is None:
            raise HTTPException(403, "invalid or revoked API key")
        return info.name

    @app.exception_handler(SigverError)
    async def _sigver_error(request: Request, exc: SigverError) -> JSONResponse:
        status = http_status_for(exc)
        body: dict[str, Any] = {"detail": str(exc), "error": _error_kind(exc)}
        if isinstance(exc, ImageError):
            body["reason"] = exc.reason
            body["source"] = exc.source
        if status >= 500:
            logger.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(body, status_code=status)

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

    @app.get("/health", tags=["service"])
    async def health() -> dict[str, Any]:
        """Liveness check: model and store facts (no authentication)."""
        return {
            "status": "ok",
            "version": __version__,
            "model_id": verifier.model_id,
            "default_threshold": verifier.default_threshold,
            "operating_point": verifier.operating_point,
        }

    @app.get("/v1/users", tags=["users"])
    async def list_users(_: str = Depends(require_key)) -> dict[str, Any]:
        """All enrolled users."""
        users = await run_in_threadpool(store.list_users)
        return {"users": [u.to_dict() for u in users], "count": len(users)}

    @app.get("/v1/users/{user_id}", tags=["users"])
    async def get_user(user_id: str, _: str = Depends(require_key)) -> dict[str, Any]:
        """One enrolled user (classifier parameters, counts, image hashes, threshold)."""
        validate_user_id(user_id)
        user = await run_in_threadpool(store.get_user, user_id)
        body = user.to_dict()
        threshold, decided_by, rates = verifier.operating_point_for(user)
        body["effective_threshold"] = threshold
        body["operating_point"] = store.operating_point_of(user_id)
        body["effective_operating_point"] = decided_by
        body["calibrated_rates"] = rates
        return body

    @app.get("/v1/operating-points", tags=["users"])
    async def list_operating_points(_: str = Depends(require_key)) -> dict[str, Any]:
        """The model's named operating points with the error rates they were calibrated for."""
        return {
            "default": verifier.operating_point,
            "normalization": verifier.normalization,
            "operating_points": verifier.operating_points(),
        }

    @app.put("/v1/users/{user_id}/operating-point", tags=["users"])
    async def set_operating_point(
        user_id: str, body: dict[str, Any], _: str = Depends(require_key)
    ) -> dict[str, Any]:
        """Set a user's named operating point (``{"operating_point": "far-skilled=1%"}``;
        ``null`` returns the user to the store-wide default)."""
        from sigver.calibration import CalibrationError

        validate_user_id(user_id)
        name = body.get("operating_point")
        if name is not None and not isinstance(name, str):
            raise HTTPException(422, "operating_point must be a string or null")
        try:
            user = await run_in_threadpool(verifier.set_operating_point, user_id, name)
        except CalibrationError as exc:
            raise HTTPException(422, str(exc)) from None
        threshold, decided_by, rates = verifier.operating_point_for(user)
        return {
            "user_id": user_id,
            "operating_point": store.operating_point_of(user_id),
            "effective_operating_point": decided_by,
            "effective_threshold": threshold,
            "calibrated_rates": rates,
        }

    @app.delete("/v1/users/{user_id}", tags=["users"])
    async def delete_user(user_id: str, _: str = Depends(require_key)) -> dict[str, Any]:
        """Remove a user and all their data."""
        validate_user_id(user_id)
        await run_in_threadpool(verifier.remove_user, user_id)
        return {"deleted": user_id}

    @app.post("/v1/users/{user_id}/enroll", tags=["enrollment"], status_code=201)
    async def enroll(
        user_id: str,
        images: list[UploadFile] = File(..., description="reference signatures"),
        add: bool = Form(False, description="add references to an existing enrollment"),
        force: bool = Form(False, description="replace an existing enrollment"),
        threshold: float | None = Form(None, description="per-user threshold override"),
        store_images: bool = Form(False, description="keep the images in the store"),
        _: str = Depends(require_key),
    ) -> JSONResponse:
        """Enroll (or extend with ``add``, or replace with ``force``) a user."""
        validate_user_id(user_id)
        blobs = await _read_uploads(images)
        try:
            result = await run_in_threadpool(
                verifier.enroll,
                user_id,
                blobs,
                add=add,
                force=force,
                threshold=threshold,
                store_images=store_images,
            )
        except ImageError as exc:
            raise _rename_image_error(exc, images) from exc
        status = 201 if result.user.revision == 1 else 200
        return JSONResponse(result.to_dict(), status_code=status)

    @app.post("/v1/users/{user_id}/verify", tags=["verification"])
    async def verify(
        user_id: str,
        images: list[UploadFile] | None = File(None, description="questioned signatures"),
        image: UploadFile | None = File(None, description="one questioned signature"),
        _: str = Depends(require_key),
    ) -> dict[str, Any]:
        """Verify questioned signature(s) against a user's enrollment."""
        validate_user_id(user_id)
        files = list(images or []) + ([image] if image is not None else [])
        blobs = await _read_uploads(files)
        try:
            results = await run_in_threadpool(verifier.verify_batch, user_id, blobs)
        except ImageError as exc:
            raise _rename_image_error(exc, files) from exc
        items = []
        for name, res in zip(_names(files), results, strict=True):
            item = res.to_dict()
            item["filename"] = name
            items.append(item)
        return {
            "user_id": user_id,
            "accepted": all(r.accepted for r in results),
            "results": items,
        }

    return app


def app_from_env() -> FastAPI:
    """Application factory for ASGI servers (``uvicorn --factory``).

    Reads ``SIGVER_HOME`` and ``SIGVER_MODEL`` (and the limit variables of
    :class:`~enrollment.config.Settings`); each worker process calls it once.
    """
    return create_app()

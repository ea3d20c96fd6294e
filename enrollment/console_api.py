"""The operator console's static page and the public endpoints it is built on.

The console (``enrollment/console/``: plain HTML, CSS and JavaScript, no
external assets) talks to the service with the same keyed HTTP API as any
integrator; the endpoints below are part of that API::

    GET  /                                  redirect to /console/
    GET  /console/                          the page (index.html, app.js, style.css)
    POST /v1/preprocess                     multipart images=<file> (repeated): per file, the
                                            normalised image or the reason it is refused
    GET  /v1/users/{user_id}/references     normalised stored reference images

``/v1/preprocess`` reports errors per file (200 with ``ok: false``) so that an
operator sees every bad file of a batch at once; it goes through
:meth:`enrollment.verifier.Verifier.preprocess`, the loading and preprocessing
that enrollment and verification use, so a file it accepts is a file enrollment
accepts. Thumbnails are PNGs (base64) of the normalised image with the ink
dark on white again (``255 - x``) for display; otherwise they are the
network's input before the centre crop.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, File, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from enrollment.store import AuditEvent, validate_user_id
from enrollment.verifier import Verifier
from sigver.errors import ImageError

__all__ = ["CONSOLE_ASSETS", "SECURITY_HEADERS", "console_router"]

#: Files of the console, with their media types (nothing else is served).
CONSOLE_ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

#: Headers on every console asset: no external or inline code, no framing, no
#: referrer (the page never puts the key in a URL, but defence in depth).
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _thumbnail_png(normalised: np.ndarray) -> str:
    import cv2

    ok, buf = cv2.imencode(".png", 255 - normalised)
    if not ok:  # pragma: no cover - PNG encoding of a uint8 image does not fail
        raise RuntimeError("PNG encoding failed")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def _asset(name: str) -> bytes:
    return resources.files("enrollment").joinpath("console", name).read_bytes()


def console_router(
    verifier: Verifier,
    require_key: Callable[..., Any],
    *,
    image_work: Callable[..., Awaitable[Any]] | None = None,
) -> APIRouter:
    """Routes of the console page and of the endpoints it needs.

    Parameters
    ----------
    verifier : Verifier
        The service's verifier (its limits apply to uploads).
    require_key : callable
        The service's API-key dependency (it yields the caller's
        :class:`~enrollment.auth.ApiKeyInfo`); every ``/v1`` route here depends
        on it and is scoped to the key's tenant.
    image_work : async callable, optional
        ``await image_work(fn, *args)`` runs image decoding in the service's image
        limiter; default: the shared thread pool.

    Returns
    -------
    fastapi.APIRouter
    """
    settings = verifier.settings
    store = verifier.store
    router = APIRouter()
    run_images = image_work or run_in_threadpool

    @router.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    @router.get("/console", include_in_schema=False)
    async def console_slash() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    @router.get("/console/{name:path}", include_in_schema=False)
    async def console_asset(name: str) -> Response:
        name = name or "index.html"
        if name not in CONSOLE_ASSETS:
            raise HTTPException(404, "not found")
        return Response(_asset(name), media_type=CONSOLE_ASSETS[name], headers=SECURITY_HEADERS)

    def _preprocess_one(index: int, name: str, data: bytes) -> dict[str, Any]:
        try:
            normalised, sha256 = verifier.preprocess(data, index)
        except ImageError as exc:
            return {"filename": name, "ok": False, "error": "image_error", "reason": exc.reason}
        height, width = normalised.shape
        return {
            "filename": name,
            "ok": True,
            "sha256": sha256,
            "width": int(width),
            "height": int(height),
            "png_base64": _thumbnail_png(normalised),
        }

    @router.post("/v1/preprocess", tags=["enrollment"])
    async def preprocess(
        images: list[UploadFile] = File(..., description="signature images to check"),
        _: Any = Depends(require_key),
    ) -> dict[str, Any]:
        """Check images before enrolling: each one as the system sees it, or why not.

        Each result is ``{"filename", "ok": true, "sha256", "width", "height",
        "png_base64"}`` (the normalised image, ink dark on white, as PNG) or
        ``{"filename", "ok": false, "error", "reason"}`` (unreadable, blank,
        too large). Nothing is stored. Files with the same ``sha256`` count
        once at enrollment.
        """
        if len(images) > settings.max_files:
            raise HTTPException(
                413, f"too many files ({len(images)}); at most {settings.max_files}"
            )
        results = []
        for index, upload in enumerate(images):
            name = upload.filename or f"<upload {index}>"
            data = await upload.read(settings.max_file_bytes + 1)
            if len(data) > settings.max_file_bytes:
                results.append(
                    {
                        "filename": name,
                        "ok": False,
                        "error": "payload_too_large",
                        "reason": f"file exceeds the {settings.max_file_bytes}-byte limit",
                    }
                )
                continue
            results.append(await run_images(_preprocess_one, index, name, data))
        return {
            "results": results,
            "ok": sum(r["ok"] for r in results),
            "failed": sum(not r["ok"] for r in results),
            "min_references": settings.min_references,
        }

    def _references(user_id: str, tenant: str, key_id: str | None) -> dict[str, Any]:
        user = store.get_user(user_id, tenant=tenant)
        references = []
        for index, (sha256, data) in enumerate(store.load_reference_images(user_id, tenant=tenant)):
            entry: dict[str, Any] = {"image_sha256": sha256}
            try:
                entry["png_base64"] = _thumbnail_png(verifier.preprocess(data, index)[0])
            except ImageError as exc:  # accepted once, so only a changed limit gets here
                entry["reason"] = exc.reason
            references.append(entry)
        # Who saw a user's signature images is part of the trail, like who verified.
        store.append_audit(
            [
                AuditEvent(
                    "references_read",
                    tenant=tenant,
                    key_id=key_id,
                    user_id=user_id,
                    detail={"images": len(references)},
                )
            ]
        )
        return {
            "user_id": user_id,
            "n_references": user.n_references,
            "stored": len(references),
            "references": references,
        }

    @router.get("/v1/users/{user_id}/references", tags=["users"])
    async def references(user_id: str, key: Any = Depends(require_key)) -> dict[str, Any]:
        """The user's stored reference images, normalised (as ``/v1/preprocess``).

        Images are only kept when the user was enrolled with ``store_images``
        (the console does so by default); ``stored`` may therefore be smaller
        than ``n_references``, down to 0.
        """
        validate_user_id(user_id)
        return await run_images(_references, user_id, key.tenant, key.key_id)

    return router

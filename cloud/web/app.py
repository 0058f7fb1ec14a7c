"""The web application: the User Portal (/portal/), the admin console (/admin/), single sign-on
(/sso/) and the JSON API (/api/v1/), one FastAPI app.

Each part is a router in its own module; this module only assembles them with what they share:
the signed session cookie, security headers on every answer, static files, and one place where a
refusal becomes an answer (a page that says what to do, or under /api/ the documented JSON error
``{"ok": false, "error": {"code", "message", "field"?, "retry_after"?}}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import JSONResponse, RedirectResponse, Response

from cloud.web import admin_pages, api, auth_pages, portal_pages, sso
from cloud.web.context import (
    CsrfFailed,
    Forbidden,
    ReturnStores,
    SignInRequired,
    Stores,
    render,
    sign_in_url,
)
from cloud.web.errors import bug_report, status_of
from cloud.web.limits import BodyLimits, TargetLimit, limit_for
from cloud.web.settings import WebSettings
from protocol.errors import MfdError

log = logging.getLogger(__name__)

#: How long a browser session lasts without a new sign-in (the portal session in the store
#: has its own, shorter or equal, expiry and is checked on every request).
COOKIE_MAX_AGE = 12 * 3600

_SECURITY_HEADERS = {
    # Scripts and styles only from this site: an injected <script> cannot run.
    "content-security-policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


def create_app(settings: WebSettings, *, clock: Callable[[], float] = time.time) -> FastAPI:
    stores = Stores(settings, clock)
    if settings.oidc is not None:
        try:
            with stores.lease() as lease:
                sso.check_config(settings.oidc, lease.store)
        except BaseException:
            stores.close()
            raise

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.threads:
            # Plain ``def`` routes run on this pool, each with a store connection lent to it.
            anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        purging = (asyncio.create_task(_purge(stores, settings.purge_interval))
                   if settings.purge_interval > 0 else None)
        try:
            yield
        finally:
            if purging is not None:
                purging.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purging  # a purge under way finishes before its store closes
            stores.close()

    # No interactive docs page: FastAPI's loads its scripts from a CDN, which the CSP refuses.
    # The document itself is /api/v1/openapi.json.
    app = FastAPI(title="mfdkit cloud", version="1",
                  description="The JSON API of mfdkit's reference cloud: print clients, the "
                  "mobile app, devices and the User Portal. Every answer is a JSON object; "
                  "every refusal is `{\"ok\": false, \"error\": {\"code\", \"message\", "
                  "\"field\"?, \"retry_after\"?}}` (ErrorAnswer). Credentials go in "
                  "`Authorization: Bearer` headers or JSON bodies, never in the URL. Request "
                  "bodies need a Content-Length (no chunked bodies).", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url="/api/v1/openapi.json")
    app.state.settings = settings
    app.state.stores = stores
    app.state.clock = clock

    # Innermost: page bodies are bounded before any route or form parser reads them; inside
    # the session (its refusal is the error page) and the security headers.
    app.add_middleware(BodyLimits, limit=lambda path: limit_for(path, settings.max_upload))
    # Around it: a request target too long for any route is refused before anything reads it.
    app.add_middleware(TargetLimit)

    @app.middleware("http")
    async def security_headers(request: Request,
                               call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        try:
            response = await call_next(request)
        except Exception as exc:
            # Answered here, not by Starlette's outermost handler, which would answer and then
            # re-raise for the server to log the exception with its message.
            response = await _crashed(request, exc)
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if settings.https_only:
            # Behind TLS: browsers keep to https:// for this host from now on.
            response.headers.setdefault("strict-transport-security", "max-age=31536000")
        if not request.url.path.startswith("/static/"):
            # Pages show a person's jobs and tokens: never from a shared cache.
            response.headers.setdefault("cache-control", "no-store")
        return response

    app.add_middleware(SessionMiddleware, secret_key=settings.secret_key.hex(),
                       session_cookie="mfd_session", max_age=COOKIE_MAX_AGE, same_site="lax",
                       https_only=bool(settings.https_only))
    # Outermost: the store a request borrowed goes back after everything else is done with it.
    app.add_middleware(ReturnStores, stores=stores)
    app.mount("/static", StaticFiles(directory=str(Path(__file__).with_name("static"))),
              name="static")
    for module in (auth_pages, portal_pages, admin_pages, sso, api):
        app.include_router(module.router)
    _errors(app)
    _api_only_openapi(app)
    return app


async def _purge(stores: Stores, interval: float) -> None:
    """Expired tokens, sessions and requests go, now and every ``interval`` seconds."""
    while True:
        try:
            await anyio.to_thread.run_sync(_purge_once, stores)
        except Exception:
            log.exception("web: purge failed; will retry")
        await asyncio.sleep(interval)


def _purge_once(stores: Stores) -> None:
    with stores.lease() as lease:
        lease.linking.purge()


def _api_only_openapi(app: FastAPI) -> None:
    """The OpenAPI document describes the JSON API only (pages are not an API), and its one
    error answer: FastAPI's own 422 validation answer is never sent (a bad field is a 400 in
    the documented error shape), so it is not documented either."""
    for route in app.routes:
        if getattr(route, "include_in_schema", False) and \
                not str(getattr(route, "path", "")).startswith("/api/"):
            route.include_in_schema = False  # type: ignore[attr-defined]
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for item in schema.get("paths", {}).values():
                for operation in item.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _json_error(status: int, code: str, message: str, field: str | None = None,
                retry_after: int | None = None,
                headers: Mapping[str, str] | None = None) -> JSONResponse:
    answer = api.error_answer(status, code, message, field, retry_after)
    answer.headers.update(headers or {})
    return answer


def _errors(app: FastAPI) -> None:
    @app.exception_handler(SignInRequired)
    async def sign_in(request: Request, exc: SignInRequired) -> Response:
        if _is_api(request):
            return _json_error(401, "invalid_session", exc.message)
        return RedirectResponse(sign_in_url(exc.next_path), status_code=303)

    @app.exception_handler(MfdError)
    async def refused(request: Request, exc: MfdError) -> Response:
        status = 403 if isinstance(exc, (Forbidden, CsrfFailed)) else status_of(exc.code)
        if _is_api(request):
            return _json_error(status, exc.code, exc.message, field=getattr(exc, "field", None),
                               retry_after=getattr(exc, "retry_after", None))
        return render(request, "error.html", status_code=status, message=exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        message = str(exc.detail) if exc.detail else "refused"
        if exc.status_code == 400 and _is_api(request):
            message = "the body is not JSON (UTF-8)"  # FastAPI's words name no field
        if _is_api(request):
            # 405 names the allowed methods (Allow).
            return _json_error(exc.status_code, code, message, headers=exc.headers)
        return render(request, "error.html", status_code=exc.status_code,
                      message="There is no such page." if exc.status_code == 404 else message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        loc = tuple(first.get("loc", ()))
        where = [str(p) for p in loc if p not in ("body", "query", "form", "header")]
        field = ".".join(where) or None
        message = f"{field or 'request'}: {first.get('msg', 'invalid')}"
        if _is_api(request):
            if first.get("type") == "json_invalid":
                return _json_error(400, "bad_request", "the body is not JSON")
            if loc == ("body",):
                return _json_error(400, "bad_request", "the body must be a JSON object")
            return _json_error(400, "invalid_field", message, field=field)
        return render(request, "error.html", status_code=400, message=message)

    app.add_exception_handler(Exception, _crashed)


async def _crashed(request: Request, exc: Exception) -> Response:
    # The path only (never the query), and of the exception its type and place: its message
    # may quote a token or a password.
    log.error("web: %s %s failed: %s", request.method, request.url.path, bug_report(exc))
    if _is_api(request):
        return _json_error(500, "internal", "something went wrong on our side; try again")
    return render(request, "error.html", status_code=500,
                  message="Something went wrong on our side. Try again in a moment.")

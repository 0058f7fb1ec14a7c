"""How much body a page route takes: known before a byte of it is read.

FastAPI's form parsing (and ``check_csrf``'s ``request.form()``) spools multipart file parts of
any size to temporary files before a route or a check runs, so a limit inside a route comes too
late: an anonymous POST of 300 MB to the sign-in form would fill the disk first. This ASGI
middleware stands in front of every page route and decides from the headers alone:

- a body in ``Transfer-Encoding`` (chunked) is refused (411): its size is unknown until it has
  been read, and the server then ignores Content-Length;
- a POST needs a Content-Length (411), and one larger than the path's limit is refused (413):
  :data:`FORM_LIMIT` for forms, the upload limit plus :data:`MULTIPART_SLACK` for Print from the
  browser, the import limit plus the slack for the directory import;
- ``receive`` is wrapped so nothing past the declared length reaches the app.

A refusal is a *lingering close*: the whole answer goes out at once, then the connection stays
open while the unread body is read and thrown away, and only then closes: for a body that
declares at most :data:`LINGER_BYTES`, for at most :data:`LINGER_S` in all and
:data:`LINGER_IDLE_S` without a byte. A larger declared body is not waited for. Closing with a
body still arriving makes the kernel reset the connection, and a browser that is still sending
then loses the answer too and shows its own bare "HTTP ERROR 413" instead of our page saying
what to do.

The JSON API (/api/) bounds its bodies itself (cloud/web/api.py) and is passed through.

:class:`TargetLimit` bounds the request target (path and query) of every route, the API's too,
at :data:`MAX_TARGET`: 414. The HTTP server's own bound (h11's, on a request head it has not yet
seen whole) depends on how the bytes arrived: a 70 KB request line that came in one read was
parsed and routed (a page's 404), one that came in two was refused, so the limit a client met
depended on TCP segmentation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.web import context as web
from cloud.web.admin_pages import MAX_IMPORT
from cloud.web.api import error_answer

#: A form of ours: sign-in, settings, a few fields. Nothing a person types comes near it.
FORM_LIMIT = 64 * 1024
#: Room around an uploaded file in a multipart body: boundaries, part headers, the other fields.
MULTIPART_SLACK = 64 * 1024

#: How much of a refused body is read and thrown away before closing, and for how long: enough
#: for an upload a few times over the limit to finish sending and see the page, not so much that
#: a refusal can be used to keep a connection busy.
LINGER_BYTES = 64 * 1024 * 1024
LINGER_S = 10.0
LINGER_IDLE_S = 2.0

#: The longest request target (path and ``?`` query, bytes as sent) any route takes. Ours are
#: short (a job id, a page number, a filter): 8 KB is what common servers and proxies allow in
#: a request line, so whatever passes a proxy in front passes here.
MAX_TARGET = 8192

PRINT_PATH = "/portal/print"
IMPORT_PATH = "/admin/users/import"


def limit_for(path: str, max_upload: int) -> int:
    """The largest body a request to ``path`` may declare."""
    if path == PRINT_PATH:
        return max_upload + MULTIPART_SLACK
    if path == IMPORT_PATH:
        return MAX_IMPORT + MULTIPART_SLACK
    return FORM_LIMIT


class BodyLimits:
    """ASGI middleware bounding the request bodies of page routes (everything but /api/)."""

    def __init__(self, app: ASGIApp, limit: Callable[[str], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope["headers"]}
        if b"transfer-encoding" in headers:
            await _refuse(scope, receive, send, 411, "Send the form again from its page: a "
                          "body of unknown length (chunked) is not accepted here.")
            return
        raw = headers.get(b"content-length")
        if raw is None:
            if scope["method"] == "POST":
                await _refuse(scope, receive, send, 411, "Your browser did not say how much "
                              "it was sending; send the form again from its page.")
                return
            declared = 0
        elif not raw.isdigit():
            await _refuse(scope, receive, send, 400, "The request's Content-Length is not a "
                          "number.")
            return
        else:
            declared = int(raw)
        limit = self.limit(scope["path"])
        if declared > limit:
            await _refuse(scope, receive, send, 413, f"What you sent is larger than this page "
                          f"takes ({_size(limit)}): send less, or a smaller file.",
                          linger=declared <= LINGER_BYTES)
            return
        await self.app(scope, _bounded(receive, declared), send)


class TargetLimit:
    """ASGI middleware refusing a request target longer than :data:`MAX_TARGET` (414): the
    API's routes with its JSON error, pages with the error page."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _target_length(scope) <= MAX_TARGET:
            await self.app(scope, receive, send)
            return
        message = (f"The address is longer than this service takes ({_size(MAX_TARGET)}); "
                   "open the page from its link instead.")
        if scope["path"].startswith("/api/"):
            response = error_answer(414, "uri_too_long", message)
            response.headers["connection"] = "close"
            await response(scope, receive, send)
            return
        await _refuse(scope, receive, send, 414, message, linger=False)


def _target_length(scope: Scope) -> int:
    raw = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    return len(raw) + (len(query) + 1 if query else 0)


def _bounded(receive: Receive, declared: int) -> Receive:
    """``receive`` that hands the app at most ``declared`` body bytes, then says the body
    ended (the server frames by Content-Length too; this holds whatever it does)."""
    left = declared

    async def bounded() -> Message:
        nonlocal left
        message = await receive()
        if message["type"] != "http.request":
            return message
        body: bytes = message.get("body", b"")
        if len(body) >= left:
            body, left = body[:left], 0
            return {"type": "http.request", "body": body, "more_body": False}
        left -= len(body)
        return {**message, "body": body}

    return bounded


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MB" if n >= 1024 * 1024 else f"{n // 1024} KB"


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int,
                  message: str, *, linger: bool = True) -> None:
    request = Request(scope, receive)
    # The error page, as every refusal of a page; render may read the store (who is signed
    # in), so it runs on the pool's threads, not the event loop.
    response = await run_in_threadpool(web.render, request, "error.html", status, message=message)
    response.headers["connection"] = "close"  # the unread body must not be taken for a request

    async def lingering(message: Message) -> None:
        # The answer's last part is held back until the body has been drained: the server
        # closes the connection when the answer ends, and must not while the client sends.
        if (linger and message["type"] == "http.response.body"
                and not message.get("more_body", False)):
            await send({**message, "more_body": True})
            await _drain(receive)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await send(message)

    await response(scope, receive, lingering)


async def _drain(receive: Receive) -> None:
    """Read and discard the request's body: until it ends, the client goes, or the bounds."""
    left, deadline = LINGER_BYTES, time.monotonic() + LINGER_S
    while left > 0:
        wait = min(LINGER_IDLE_S, deadline - time.monotonic())
        if wait <= 0:
            return
        try:
            message = await asyncio.wait_for(receive(), wait)
        except TimeoutError:
            return
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        left -= len(message.get("body", b""))

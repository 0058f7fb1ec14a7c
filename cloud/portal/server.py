"""The portal's HTTP API: what print clients, the mobile app and the User Portal speak.

Theory of operation
-------------------
JSON over HTTP/1.0 (one request per connection), on the standard library's HTTP server: the
API is a dozen small routes, so a framework would add a dependency without removing code. The
server accepts connections on one thread and hands each to a fixed pool of handler threads. The
pool bounds how much work strangers can start at once, and it lets each handler thread keep one
store connection and one :class:`~cloud.linking.Linking` for its lifetime, the way each MQTT
worker owns its store (threads hand off, never share).

Every answer is a JSON object: ``{"ok": true, ...}`` or ``{"ok": false, "error": {"code",
"message", "field"?, "retry_after"?}}`` with the codes of protocol.errors.ErrorCode and
cloud.linking.LinkCode, and an HTTP status that matches (:data:`STATUS`). Nothing a client sends
can stop the server: a refusal is an error answer, an unexpected exception is logged and
answered ``internal``, a client that stalls is cut off by the socket timeout.

Credentials travel in ``Authorization: Bearer`` headers or JSON bodies, never in paths or query
strings, so access logs (ours logs the route, never the path's query, the headers or the body)
hold no secrets. The job's owner is decided by :meth:`Linking.submit` from the token alone: the
job routes read no user from the request.

Routes (all JSON unless noted; "client token" is the install's or the mobile app's user token):

==========  ================================  =============================================
GET         /api/v1/health                    liveness
POST        /api/v1/clients                   register a computer/Chromebook (installer token)
GET         /api/v1/client                    link state, queues, held jobs (client token)
POST        /api/v1/jobs                      submit a document (client token; raw body)
POST        /api/v1/mobile/link               mobile app: email + password, or linking code
POST        /api/v1/invitations/accept        portal invitation: first password, signs in
POST        /api/v1/portal/signin             email + password (+ share link's org)
POST        /api/v1/portal/signout            end the portal session
GET         /api/v1/portal/devices            the user and their linked clients
POST        /api/v1/portal/installer          "Set up my devices": personal installer token
POST        /api/v1/portal/linking-code       one-time code for the mobile app
POST        /api/v1/portal/aop                what an Authenticate-on-Print link would link
POST        /api/v1/portal/aop/confirm        link it; pending jobs join or are discarded
==========  ================================  =============================================
"""


from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from cloud import devices
from cloud.linking import (
    MAX_DOCUMENT,
    LinkCode,
    Linking,
    LinkingError,
)
from cloud.portal.routes import (
    MAX_JSON,
    PURGE_INTERVAL,
    ROUTES,
    SOCKET_TIMEOUT,
    STATUS,
    HttpError,
)
from cloud.storage.factory import open_store
from protocol.errors import ErrorCode, MfdError

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- handler


class _Handler(BaseHTTPRequestHandler):
    server: PortalServer
    protocol_version = "HTTP/1.0"
    # Answer even an unparseable request with a status line and headers (0.9 would send the
    # bare body).
    default_request_version = "HTTP/1.0"
    server_version = "mfdkit-portal/1"
    sys_version = ""
    timeout = SOCKET_TIMEOUT

    def version_string(self) -> str:
        return self.server_version

    @property
    def linking(self) -> Linking:
        return self.server.linking()

    @property
    def source(self) -> str:
        return str(self.client_address[0])

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        route = ROUTES.get(path)
        self._route = path if route else "-"
        headers: dict[str, str] = {}
        try:
            if route is None:
                raise HttpError("not_found", f"no such API: {method} {path[:80]}")
            if method != route.method:
                headers["Allow"] = route.method
                raise HttpError("method_not_allowed", f"{path} takes {route.method}")
            status, body = route.handler(self)
            body = {"ok": True, **body}
        except (LinkingError, HttpError) as exc:
            # Tokens and sessions reach Linking from the Authorization header: name that.
            field = "Authorization" if exc.field in ("token", "session") else exc.field
            status, body = self._error(exc.code, exc.message, field,
                                       getattr(exc, "retry_after", None))
            if status == 429 and body["error"].get("retry_after"):
                headers["Retry-After"] = str(body["error"]["retry_after"])
        except (TimeoutError, ConnectionError):
            self.close_connection = True
            return
        except UnicodeDecodeError:
            status, body = self._error(ErrorCode.BAD_REQUEST, "text must be UTF-8 (percent-"
                                       "encoded in headers)", None, None)
        except MfdError as exc:
            # A store refusal that linking did not translate (e.g. an org deleted under us).
            log.warning("portal: %s on %s: %s", exc.code, path, exc.message)
            code = exc.code if exc.code in STATUS else ErrorCode.BUSY
            status, body = self._error(code, exc.message if code != ErrorCode.BUSY else
                                       "the print service cannot reach its store; try again",
                                       None, None)
        except Exception:
            log.exception("portal: internal error on %s %s", method, path)
            status, body = self._error(ErrorCode.INTERNAL, "the portal failed on this request; "
                                       "try again", None, None)
        self._send(status, body, headers, head=method == "HEAD")

    @staticmethod
    def _error(code: str, message: str, field: str | None,
               retry_after: int | None) -> tuple[int, dict[str, Any]]:
        error: dict[str, Any] = {"code": str(code), "message": message}
        if field is not None:
            error["field"] = field
        if retry_after is not None:
            error["retry_after"] = retry_after
        return STATUS.get(str(code), 400), {"ok": False, "error": error}

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str],
              *, head: bool = False) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            # Answers carry tokens: no cache may keep them.
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if not head:
                self.wfile.write(data)
        except (TimeoutError, ConnectionError):
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """The standard library's own refusals (malformed request line, header too long,
        unknown method) as our JSON, not its HTML page."""
        self.close_connection = True
        self._route = "-"
        kind = {404: "not_found", 405: "method_not_allowed", 414: ErrorCode.TOO_LARGE,
                431: ErrorCode.TOO_LARGE, 501: "method_not_allowed"}.get(code,
                                                                       ErrorCode.BAD_REQUEST)
        _status, body = self._error(kind, message or "bad request", None, None)
        self._send(code, body, {})

    # -- what handlers read

    def bearer(self, what: str) -> str:
        value = self.headers.get("Authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            code = ErrorCode.INVALID_SESSION if what == "session" else LinkCode.INVALID_TOKEN
            raise HttpError(code, f"send the {what} as 'Authorization: Bearer ...'",
                            "Authorization")
        return token.strip()

    def body(self, limit: int) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise HttpError("length_required", "send a Content-Length; chunked bodies are not "
                            "accepted")
        raw = self.headers.get("Content-Length")
        if raw is None:
            self.close_connection = True
            raise HttpError("length_required", "a Content-Length header is required")
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise HttpError(ErrorCode.BAD_REQUEST, "Content-Length must be a whole number")
        if length > limit:
            # The body stays unread: the connection is closed after the answer.
            self.close_connection = True
            raise HttpError(ErrorCode.TOO_LARGE, f"the body is larger than {limit} bytes",
                            "Content-Length")
        data = self.rfile.read(length)
        if len(data) != length:
            self.close_connection = True
            raise HttpError(ErrorCode.BAD_REQUEST, "the body ended before Content-Length")
        return data

    def json_body(self) -> dict[str, Any]:
        data = self.body(MAX_JSON)
        try:
            obj = json.loads(data.decode("utf-8")) if data else {}
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise HttpError(ErrorCode.BAD_REQUEST, "the body is not JSON") from None
        if not isinstance(obj, dict):
            raise HttpError(ErrorCode.BAD_REQUEST, "the body must be a JSON object")
        return obj

    # -- logging: route and status only (paths carry no secrets; headers and bodies do)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("%s %s %s -> %s", self.source, self.command, getattr(self, "_route", "-"),
                  code)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("portal: " + format, *args)


# ---------------------------------------------------------------------------- server


class PortalServer(ThreadingHTTPServer):
    """The portal: an accept thread and a fixed pool of handler threads. Use as a context
    manager or call :meth:`close`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], store_url: str, *,
                 public_url: str | None = None, max_document: int = MAX_DOCUMENT,
                 threads: int = 8, clock: Callable[[], float] = time.time,
                 accounts: devices.BrokerAccounts | None = None,
                 device_broker_url: str = "") -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.store_url = store_url
        #: Where new devices' broker accounts go; None: device registration is off.
        self.accounts = accounts
        self.device_broker_url = device_broker_url
        self.max_document = max_document
        self.clock = clock
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"
        self.public_url = (public_url or self.url).rstrip("/")
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="portal")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()  # connections accepted and not yet closed
        self._thread: threading.Thread | None = None
        self._next_purge = 0.0

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def linking(self) -> Linking:
        """This thread's Linking on this thread's own store connection."""
        linking: Linking | None = getattr(self._local, "linking", None)
        if linking is None:
            linking = Linking(open_store(self.store_url), base_url=self.public_url,
                              clock=self.clock, max_document=self.max_document)
            self._local.linking = linking
        return linking

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self._open.add(request)
        self._pool.submit(self.process_request_thread, request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("portal: connection from %s failed", client_address[0])

    def service_actions(self) -> None:
        # Runs on the accept thread between polls: housekeeping without a thread of its own.
        now = time.monotonic()
        if now >= self._next_purge:
            self._next_purge = now + PURGE_INTERVAL
            try:
                self.linking().purge()
            except Exception:
                log.exception("portal: purge failed; will retry")

    def start(self) -> PortalServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="portal-accept", daemon=True)
        self._thread.start()
        return self

    def close(self, grace: float = 2.0) -> None:
        """Stop accepting, give the requests in hand ``grace`` seconds to finish, then cut the
        connections still open (a stalled client must not hold up a shutdown for the whole
        socket timeout), and release the port."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server_close()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self._lock:
                if not self._open:
                    break
            time.sleep(0.02)
        with self._lock:
            stragglers = list(self._open)
        for conn in stragglers:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._pool.shutdown(wait=True, cancel_futures=True)
        for conn in stragglers:  # queued ones never reached a handler that would close them
            with contextlib.suppress(OSError):
                conn.close()

    def __enter__(self) -> PortalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_portal(store_url: str, host: str = "127.0.0.1", port: int = 0, *,
                 public_url: str | None = None, max_document: int = MAX_DOCUMENT,
                 threads: int = 8, clock: Callable[[], float] = time.time,
                 accounts: devices.BrokerAccounts | None = None,
                 device_broker_url: str = "") -> PortalServer:
    """Serve the portal API on ``host:port`` (0: a free port; see ``.url``) in the background.

    The store URL is opened once here, so a bad URL or an unreachable store fails now, and the
    portal's public URL is recorded in the store for the links ``mfd admin`` prints."""
    store = open_store(store_url)
    try:
        setup = Linking(store)
    except BaseException:
        store.close()
        raise
    try:
        server = PortalServer((host, port), store_url, public_url=public_url,
                              max_document=max_document, threads=threads, clock=clock,
                              accounts=accounts, device_broker_url=device_broker_url)
    except OSError as exc:
        store.close()
        raise MfdError(f"cannot serve the portal on {host}:{port}: {exc.strerror}",
                       code="config_invalid") from None
    try:
        setup.set_public_url(server.public_url)
    finally:
        store.close()
    log.info("portal serving on %s (public %s)", server.url, server.public_url)
    return server.start()

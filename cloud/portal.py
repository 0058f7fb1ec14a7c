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
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from cloud import devices
from cloud.linking import (
    MAX_DOCUMENT,
    Issued,
    LinkCode,
    Linking,
    LinkingError,
    PortalSession,
    Registered,
)
from cloud.storage.factory import open_store
from cloud.storage.port import ClientInstall, Job, User
from protocol.errors import ErrorCode, MfdError

log = logging.getLogger(__name__)

#: A JSON request body is a few fields; anything bigger is not a client of ours.
MAX_JSON = 64 * 1024
#: Seconds a connection may stall between bytes before its thread is freed.
SOCKET_TIMEOUT = 20.0
PURGE_INTERVAL = 600.0

STATUS: dict[str, int] = {
    ErrorCode.BAD_REQUEST: 400, ErrorCode.INVALID_FIELD: 400, LinkCode.WEAK_PASSWORD: 400,
    LinkCode.IMPORT_INVALID: 400, LinkCode.CHECKSUM_MISMATCH: 400, LinkCode.UNKNOWN_QUEUE: 400,
    LinkCode.INVALID_TOKEN: 401, LinkCode.TOKEN_EXPIRED: 401, LinkCode.INVALID_CODE: 401,
    ErrorCode.INVALID_PASSWORD: 401, ErrorCode.INVALID_SESSION: 401,
    ErrorCode.NOT_ALLOWED: 403, LinkCode.UNKNOWN_USER: 404, "not_found": 404,
    "registration_refused": 403, "not_enabled": 501,
    "method_not_allowed": 405, LinkCode.CONFLICT: 409, "length_required": 411,
    ErrorCode.TOO_LARGE: 413, ErrorCode.LOCKED_OUT: 429, ErrorCode.INTERNAL: 500,
    ErrorCode.BUSY: 503,
}


class HttpError(MfdError):
    """A refusal of the HTTP layer itself (route, method, framing)."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


# ---------------------------------------------------------------------------- JSON views


def _user(u: User | None) -> dict[str, Any] | None:
    return None if u is None else {"id": u.id, "email": u.email, "display_name": u.display_name}


def _client(i: ClientInstall) -> dict[str, Any]:
    return {"id": i.id, "kind": i.kind, "machine": i.machine, "os_user": i.os_user,
            "linked": i.linked, "via": i.via, "created_at": i.created_at,
            "linked_at": i.linked_at}


def _job(j: Job) -> dict[str, Any]:
    return {"id": j.id, "name": j.name, "pages": j.pages, "color": j.color, "duplex": j.duplex,
            "copies": j.copies, "size": j.size, "submitted_at": j.submitted_at,
            "source": j.source}


def _registered(r: Registered, key: str) -> dict[str, Any]:
    return {key: r.token, "client": _client(r.install), "user": _user(r.user),
            "queues": list(r.queues)}


def _issued(i: Issued, key: str, now: float) -> dict[str, Any]:
    out: dict[str, Any] = {key: i.token, "expires_in": max(0, int(i.expires_at - now))}
    if i.url:
        out["url"] = i.url
    return out


# ---------------------------------------------------------------------------- routes


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    handler: Callable[[_Handler], tuple[int, dict[str, Any]]]


def _health(h: _Handler) -> tuple[int, dict[str, Any]]:
    return 200, {"service": "mfdkit-portal", "version": 1}


def _register(h: _Handler) -> tuple[int, dict[str, Any]]:
    body = h.json_body()
    r = h.linking.register(_arg(body, "installer_token"), kind=_str(body, "kind", "workstation"),
                           machine=_arg(body, "machine"), os_user=body.get("os_user") or "",
                           source=h.source)
    return 201, _registered(r, "client_token")


def _client_state(h: _Handler) -> tuple[int, dict[str, Any]]:
    s = h.linking.client_state(h.bearer("token"))
    return 200, {"client": _client(s.install), "user": _user(s.user), "queues": list(s.queues),
                 "held_jobs": [_job(j) for j in s.held_jobs], "held_total": s.held_total}


def _submit(h: _Handler) -> tuple[int, dict[str, Any]]:
    token = h.bearer("token")
    hdr = h.headers
    name = unquote(hdr.get("X-Job-Name", "") or "Untitled", errors="strict")
    queue = hdr.get("X-Job-Queue")
    sha = hdr.get("X-Content-SHA256")
    pages = _int_header(hdr.get("X-Job-Pages"), "X-Job-Pages", 1)
    copies = _int_header(hdr.get("X-Job-Copies"), "X-Job-Copies", 1)
    color = _bool_header(hdr.get("X-Job-Color"), "X-Job-Color")
    duplex = _bool_header(hdr.get("X-Job-Duplex"), "X-Job-Duplex")
    data = h.body(h.server.max_document)
    # Whatever else the request says (an "owner", a user header), the owner comes from the
    # token inside Linking.submit.
    s = h.linking.submit(token, name, data, pages=pages, copies=copies, color=color,
                         duplex=duplex, queue=unquote(queue) if queue else None, sha256=sha)
    out: dict[str, Any] = {"job_id": s.job_id, "state": s.state, "size": s.size,
                           "sha256": s.sha256, "owner": _user(s.owner), "message": s.message}
    if s.sign_in_url:
        out["sign_in_url"] = s.sign_in_url
        return 202, out
    return 201, out


def _mobile_link(h: _Handler) -> tuple[int, dict[str, Any]]:
    body = h.json_body()
    app_id = _arg(body, "app_id")
    if body.get("linking_code") is not None:
        r = h.linking.mobile_link_code(body["linking_code"], app_id=app_id, source=h.source)
    else:
        r = h.linking.mobile_sign_in(_arg(body, "email"), _arg(body, "password"), app_id=app_id,
                                     source=h.source)
    return 201, _registered(r, "user_token")


def _session(s: PortalSession, now: float) -> dict[str, Any]:
    return {"session": s.token, "user": _user(s.user),
            "expires_in": max(0, int(s.expires_at - now))}


def _accept(h: _Handler) -> tuple[int, dict[str, Any]]:
    body = h.json_body()
    s = h.linking.accept_invitation(_arg(body, "invitation"), _arg(body, "password"),
                                    source=h.source)
    return 200, _session(s, h.linking.clock())


def _sign_in(h: _Handler) -> tuple[int, dict[str, Any]]:
    body = h.json_body()
    s = h.linking.sign_in(_arg(body, "email"), _arg(body, "password"),
                          org_token=body.get("org") or None, source=h.source)
    return 200, _session(s, h.linking.clock())


def _sign_out(h: _Handler) -> tuple[int, dict[str, Any]]:
    h.linking.sign_out(h.bearer("session"))
    return 200, {}


def _devices(h: _Handler) -> tuple[int, dict[str, Any]]:
    user, installs = h.linking.my_devices(h.bearer("session"))
    return 200, {"user": _user(user), "clients": [_client(i) for i in installs]}


def _installer(h: _Handler) -> tuple[int, dict[str, Any]]:
    issued = h.linking.setup_devices(h.bearer("session"))
    return 201, _issued(issued, "installer_token", h.linking.clock())


def _linking_code(h: _Handler) -> tuple[int, dict[str, Any]]:
    issued = h.linking.create_linking_code(h.bearer("session"))
    return 201, _issued(issued, "linking_code", h.linking.clock())


def _aop(h: _Handler) -> tuple[int, dict[str, Any]]:
    session = h.bearer("session")
    r = h.linking.aop_request(session, _arg(h.json_body(), "request"))
    return 200, {"client": _client(r.install), "pending_jobs": list(r.pending_jobs),
                 "policy": r.policy,
                 "expires_in": max(0, int(r.expires_at - h.linking.clock()))}


def _aop_confirm(h: _Handler) -> tuple[int, dict[str, Any]]:
    session = h.bearer("session")
    o = h.linking.aop_confirm(session, _arg(h.json_body(), "request"))
    return 200, {"client": _client(o.install), "user": _user(o.user), "joined": list(o.joined),
                 "discarded": list(o.discarded), "message": o.message}


def _device_register(h: _Handler) -> tuple[int, dict[str, Any]]:
    """A new device trades its one-time code for broker credentials and configuration."""
    server = h.server
    assert isinstance(server, PortalServer)
    if server.accounts is None:
        raise HttpError("not_enabled", "device registration is not enabled on this service: "
                        "run mfd cloud with --broker-admin")
    body = h.json_body()
    code = _arg(body, "code")
    if not isinstance(code, str) or not 8 <= len(code) <= 64:
        raise HttpError("invalid_field", "code must be the registration code", "code")
    store = h.linking.store
    reg = devices.register(store, code, server.accounts, server.clock())
    return 201, {"device_id": reg.device_id, "name": reg.name, "username": reg.username,
                 "password": reg.password, "broker_url": server.device_broker_url,
                 "config": reg.config}


ROUTES: dict[str, Route] = {
    "/api/v1/devices/register": Route("POST", _device_register),
    "/api/v1/health": Route("GET", _health),
    "/api/v1/clients": Route("POST", _register),
    "/api/v1/client": Route("GET", _client_state),
    "/api/v1/jobs": Route("POST", _submit),
    "/api/v1/mobile/link": Route("POST", _mobile_link),
    "/api/v1/invitations/accept": Route("POST", _accept),
    "/api/v1/portal/signin": Route("POST", _sign_in),
    "/api/v1/portal/signout": Route("POST", _sign_out),
    "/api/v1/portal/devices": Route("GET", _devices),
    "/api/v1/portal/installer": Route("POST", _installer),
    "/api/v1/portal/linking-code": Route("POST", _linking_code),
    "/api/v1/portal/aop": Route("POST", _aop),
    "/api/v1/portal/aop/confirm": Route("POST", _aop_confirm),
}


def _arg(body: dict[str, Any], key: str) -> Any:
    """A field as sent; Linking checks its type and content."""
    return body.get(key)


def _str(body: dict[str, Any], key: str, default: str) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise HttpError(ErrorCode.INVALID_FIELD, f"{key} must be a string", key)
    return value


def _int_header(value: str | None, name: str, default: int) -> int:
    if value is None or not value.strip():
        return default
    try:
        return int(value.strip(), 10)
    except ValueError:
        raise HttpError(ErrorCode.INVALID_FIELD, f"{name} must be a whole number", name) from None


def _bool_header(value: str | None, name: str) -> bool:
    v = (value or "false").strip().lower()
    if v in ("1", "true", "yes"):
        return True
    if v in ("0", "false", "no", ""):
        return False
    raise HttpError(ErrorCode.INVALID_FIELD, f"{name} must be true or false", name)


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

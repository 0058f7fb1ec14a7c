"""The portal's routes: each one parses a request, calls one :class:`~cloud.linking.Linking`
use-case (or device registration), and shapes its answer as JSON. The HTTP framing, the
error answers and the server are cloud/portal/server.py's."""


from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from cloud import devices
from cloud.linking import (
    Issued,
    LinkCode,
    PortalSession,
    Registered,
)
from cloud.storage.port import ClientInstall, Job, User
from protocol.errors import ErrorCode, MfdError

if TYPE_CHECKING:  # the handler and server types only: server.py imports this module
    from cloud.portal.server import _Handler

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
    from cloud.portal.server import PortalServer  # at call time: server.py imports this module

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

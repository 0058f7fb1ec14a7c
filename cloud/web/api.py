"""The JSON API under /api/v1/: what print clients, the mobile app, devices and the User Portal's
scripts speak. Its OpenAPI document is /api/v1/openapi.json.

Every answer is a JSON object: ``{"ok": true, ...}`` or the one documented error
``{"ok": false, "error": {"code", "message", "field"?, "retry_after"?}}`` with the codes of
protocol.errors.ErrorCode and cloud.linking.LinkCode and the status of cloud/web/errors.py STATUS.
Each route parses its request with pydantic models, calls one cloud/linking use-case (or device
registration) and shapes the answer; the models are what the OpenAPI document shows.

Framing is this module's (:class:`ApiRoute`), kept as the first server had it so every client
keeps working: a request body needs a Content-Length (no chunked bodies: the size is known before
anything is read), JSON bodies are at most :data:`MAX_JSON` bytes and documents
``WebSettings.max_document``; a body that does not arrive within :data:`BODY_TIMEOUT` is refused.

Credentials travel in ``Authorization: Bearer`` headers or JSON bodies, never in paths or query
strings, and nothing here logs a header or a body (the server's access log is off). The job's
owner is decided by :meth:`Linking.submit` from the token alone: no route reads a user from the
request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from cloud import devices
from cloud.linking import Issued, LinkCode, Linking, LinkingError, PortalSession, Registered
from cloud.web import context as web
from cloud.web.api_models import (
    AcceptInvitation,
    AopAsk,
    AopDone,
    AopView,
    ClientRegistered,
    ClientStateView,
    ClientView,
    DeviceRegistered,
    DevicesView,
    Empty,
    ErrorAnswer,
    Health,
    InstallerIssued,
    JobView,
    LinkingCodeIssued,
    MobileLink,
    MobileLinked,
    RegisterClient,
    RegisterDevice,
    SessionView,
    SignIn,
    SubmittedView,
    UserView,
)
from cloud.web.errors import STATUS, bug_report, status_of
from protocol.assignment import broker_order
from protocol.errors import ErrorCode, MfdError

log = logging.getLogger(__name__)

#: A JSON request body is a few fields; anything bigger is not a client of ours.
MAX_JSON = 64 * 1024
#: Seconds a request body may take to arrive (a stalled client is refused, not waited for).
BODY_TIMEOUT = 20.0


class ApiError(MfdError):
    """A refusal of the API itself (framing, a header, a feature that is off)."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


# ---------------------------------------------------------------------------- the error answer


_WHY = {400: "the request is malformed or a field is invalid",
        401: "the token, session, code or password is not valid (any more)",
        403: "not allowed (another organisation's computer, a refused registration)",
        404: "the user behind this token or session no longer exists",
        409: "a concurrent request did the same",
        411: "no Content-Length (or a chunked body)", 413: "the body is too large",
        429: "too many attempts: wait retry_after seconds",
        501: "this service does not offer it", 503: "the service cannot reach its store"}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route: 400, 404 and 503 always, and these."""
    return {s: {"model": ErrorAnswer, "description": _WHY[s]}
            for s in sorted({400, 404, 503, *statuses})}


def error_answer(status: int, code: str, message: str, field: str | None = None,
                 retry_after: int | None = None) -> JSONResponse:
    error: dict[str, Any] = {"code": str(code), "message": message}
    if field is not None:
        error["field"] = field
    if retry_after is not None:
        error["retry_after"] = retry_after
    headers = {"retry-after": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"ok": False, "error": error}, status_code=status, headers=headers)


def refusal(exc: MfdError) -> JSONResponse:
    """A refusal as the API answers it."""
    code = str(exc.code)
    if not isinstance(exc, (LinkingError, ApiError, devices.RegistrationError)) \
            and code not in STATUS:
        # A store refusal that no use-case translated (an org deleted under us, a store that
        # went away): the client should try again later.
        log.warning("api: %s: %s", code, exc.message)
        return error_answer(503, ErrorCode.BUSY, "the print service cannot reach its store; "
                            "try again")
    field = getattr(exc, "field", None)
    # Tokens and sessions reach Linking from the Authorization header: name that.
    if field in ("token", "session"):
        field = "Authorization"
    return error_answer(status_of(code), code, exc.message, field,
                        getattr(exc, "retry_after", None))


# ---------------------------------------------------------------------------- framing

#: Request bodies by route: JSON (MAX_JSON) or a document (WebSettings.max_document).
_BODIES: dict[str, Literal["json", "document"]] = {}


class ApiRoute(APIRoute):
    """Checks a request's framing and reads its body before the route parses it, and answers
    every refusal (and a bug) as the documented JSON error."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        path = self.path

        async def guarded(request: Request) -> Response:
            try:
                kind = _BODIES.get(path)
                if kind is not None:
                    limit = (MAX_JSON if kind == "json"
                             else web.settings(request).max_document)
                    await _read_body(request, limit)
                return await handler(request)
            except MfdError as exc:
                return refusal(exc)
            except UnicodeDecodeError:
                return error_answer(400, ErrorCode.BAD_REQUEST,
                                    "text must be UTF-8 (percent-encoded in headers)")
            except (RequestValidationError, StarletteHTTPException):
                raise  # answered by the app's handlers (cloud/web/app.py)
            except Exception as exc:
                # The route's name only (its query, headers and body may hold secrets), and of
                # the exception its type and place, not its words.
                log.error("api: internal error on %s %s: %s", request.method, path,
                          bug_report(exc))
                return error_answer(500, ErrorCode.INTERNAL,
                                    "the service failed on this request; try again")

        return guarded


async def _read_body(request: Request, limit: int) -> None:
    if request.headers.get("transfer-encoding"):
        raise ApiError("length_required", "send a Content-Length; chunked bodies are not "
                       "accepted")
    raw = request.headers.get("content-length")
    if raw is None:
        raise ApiError("length_required", "a Content-Length header is required")
    try:
        length = int(raw)
    except ValueError:
        length = -1
    if length < 0:
        raise ApiError(ErrorCode.BAD_REQUEST, "Content-Length must be a whole number")
    if length > limit:
        raise ApiError(ErrorCode.TOO_LARGE, f"the body is larger than {limit} bytes",
                       "Content-Length")
    try:
        # Read now, with a deadline; Starlette keeps the bytes for the route's own parsing.
        await asyncio.wait_for(request.body(), BODY_TIMEOUT)
    except TimeoutError:
        raise ApiError(ErrorCode.BAD_REQUEST, "the body did not arrive in time") from None
    except ClientDisconnect:
        raise ApiError(ErrorCode.BAD_REQUEST, "the body ended before Content-Length") from None


# strict_content_type off: a JSON body without a Content-Type is read as JSON, as the first
# server did (credentials are Bearer headers, not cookies, so a cross-site form gains nothing).
router = APIRouter(prefix="/api/v1", route_class=ApiRoute, tags=["api"],
                   strict_content_type=False)


_Route = TypeVar("_Route", bound=Callable[..., Any])


def _post(path: str, body: Literal["json", "document"] | None,
          **kw: Any) -> Callable[[_Route], _Route]:
    if body is not None:
        _BODIES["/api/v1" + path] = body
    # Answers leave out the optional fields a route did not set (url, sign_in_url).
    decorate: Callable[[_Route], _Route] = router.post(path, response_model_exclude_unset=True,
                                                       **kw)
    return decorate


def _get(path: str, **kw: Any) -> Callable[[_Route], _Route]:
    decorate: Callable[[_Route], _Route] = router.get(path, response_model_exclude_unset=True,
                                                      **kw)
    return decorate


# ---------------------------------------------------------------------------- use-cases


def linking(request: Request) -> Linking:
    """The request's Linking (cloud/web/context.py), with the API's document limit."""
    return web.linking(request)


def source(request: Request) -> str:
    return request.client.host if request.client else ""


# ---------------------------------------------------------------------------- credentials

_client_scheme = HTTPBearer(scheme_name="ClientToken", auto_error=False,
                            description="a client token (mfc_...) or the mobile app's user "
                            "token (mfu_...)")
_session_scheme = HTTPBearer(scheme_name="PortalSession", auto_error=False,
                             description="a User Portal session (mfs_...) from /portal/signin "
                             "or /invitations/accept")


def client_token(cred: Annotated[HTTPAuthorizationCredentials | None,
                                 Depends(_client_scheme)]) -> str:
    if cred is None:
        raise ApiError(LinkCode.INVALID_TOKEN, "send the token as 'Authorization: Bearer ...'",
                       "Authorization")
    return cred.credentials.strip()


def portal_session(cred: Annotated[HTTPAuthorizationCredentials | None,
                                   Depends(_session_scheme)]) -> str:
    if cred is None:
        raise ApiError(ErrorCode.INVALID_SESSION,
                       "send the session as 'Authorization: Bearer ...'", "Authorization")
    return cred.credentials.strip()


ClientToken = Annotated[str, Depends(client_token)]
SessionToken = Annotated[str, Depends(portal_session)]
Uses = Annotated[Linking, Depends(linking)]


def _left(at: float, now: float) -> int:
    return max(0, int(at - now))


def _registered(r: Registered) -> dict[str, Any]:
    return {"client": ClientView.of(r.install), "user": UserView.of(r.user),
            "queues": list(r.queues)}


def _session(s: PortalSession, now: float) -> SessionView:
    return SessionView(session=s.token, user=UserView.of(s.user),
                       expires_in=_left(s.expires_at, now))


def _issued(i: Issued, now: float) -> dict[str, Any]:
    out: dict[str, Any] = {"expires_in": _left(i.expires_at, now)}
    if i.url:
        out["url"] = i.url
    return out


# ---------------------------------------------------------------------------- routes


@_get("/health", response_model=Health, summary="Liveness")
def health() -> Health:
    return Health(service="mfdkit-portal", version=1)


@_post("/clients", "json", status_code=201, response_model=ClientRegistered,
       responses=_errors(401, 409, 411, 413, 429), summary="Register a computer or Chromebook")
def register_client(request: Request, body: RegisterClient, uses: Uses) -> ClientRegistered:
    r = uses.register(body.installer_token, kind=body.kind, machine=body.machine,
                      os_user=body.os_user or "", source=source(request))
    return ClientRegistered(client_token=r.token, **_registered(r))


@_get("/client", response_model=ClientStateView, responses=_errors(401),
      summary="A client's link state, queues and held jobs")
def client_state(token: ClientToken, uses: Uses) -> ClientStateView:
    s = uses.client_state(token)
    return ClientStateView(client=ClientView.of(s.install), user=UserView.of(s.user),
                           queues=list(s.queues), held_jobs=[JobView.of(j) for j in s.held_jobs],
                           held_total=s.held_total)


async def _document(request: Request) -> bytes:
    return await request.body()  # read (and bounded) by ApiRoute already


_DOCUMENT_BODY = {"requestBody": {"required": True, "description": "the document, as it is "
                                  "(PDF, PostScript, PCL); Content-Length required",
                                  "content": {"application/octet-stream": {
                                      "schema": {"type": "string", "format": "binary"}}}}}


@_post("/jobs", "document", status_code=201, response_model=SubmittedView,
       responses={202: {"model": SubmittedView, "description": "held until the client's user "
                        "signs in at sign_in_url (Authenticate-on-Print)"},
                  **_errors(401, 409, 411, 413)},
       openapi_extra=_DOCUMENT_BODY, summary="Submit a document (held for the token's user)")
def submit(response: Response, token: ClientToken, uses: Uses,
           data: Annotated[bytes, Depends(_document)],
           x_job_name: Annotated[str | None, Header(alias="X-Job-Name", description=
                                                     "percent-encoded UTF-8")] = None,
           x_job_queue: Annotated[str | None, Header(alias="X-Job-Queue")] = None,
           x_content_sha256: Annotated[str | None, Header(alias="X-Content-SHA256")] = None,
           x_job_pages: Annotated[str | None, Header(alias="X-Job-Pages")] = None,
           x_job_copies: Annotated[str | None, Header(alias="X-Job-Copies")] = None,
           x_job_color: Annotated[str | None, Header(alias="X-Job-Color")] = None,
           x_job_duplex: Annotated[str | None, Header(alias="X-Job-Duplex")] = None,
           ) -> SubmittedView:
    name = unquote(x_job_name or "Untitled", errors="strict")
    pages = _int_header(x_job_pages, "X-Job-Pages", 1)
    copies = _int_header(x_job_copies, "X-Job-Copies", 1)
    color = _bool_header(x_job_color, "X-Job-Color")
    duplex = _bool_header(x_job_duplex, "X-Job-Duplex")
    queue = unquote(x_job_queue, errors="strict") if x_job_queue else None
    # Whatever else the request says (an "owner", a user header), the owner comes from the
    # token inside Linking.submit.
    s = uses.submit(token, name, data, pages=pages, copies=copies, color=color, duplex=duplex,
                    queue=queue, sha256=x_content_sha256)
    out = SubmittedView(job_id=s.job_id, state=s.state, size=s.size, sha256=s.sha256,
                        owner=UserView.of(s.owner), message=s.message)
    if s.sign_in_url:
        out.sign_in_url = s.sign_in_url
        response.status_code = 202
    return out


@_post("/mobile/link", "json", status_code=201, response_model=MobileLinked,
       responses=_errors(401, 409, 411, 413, 429),
       summary="Link the mobile app (email and password, or a linking code)")
def mobile_link(request: Request, body: MobileLink, uses: Uses) -> MobileLinked:
    if body.linking_code is not None:
        r = uses.mobile_link_code(body.linking_code, app_id=body.app_id, source=source(request))
    else:
        r = uses.mobile_sign_in(_required(body.email, "email"),
                                _required(body.password, "password"), app_id=body.app_id,
                                source=source(request))
    return MobileLinked(user_token=r.token, **_registered(r))


@_post("/invitations/accept", "json", response_model=SessionView,
       responses=_errors(401, 411, 413, 429),
       summary="Accept a User Portal invitation: first password, signed in")
def accept_invitation(request: Request, body: AcceptInvitation, uses: Uses) -> SessionView:
    s = uses.accept_invitation(body.invitation, body.password, source=source(request))
    return _session(s, uses.clock())


@_post("/portal/signin", "json", response_model=SessionView,
       responses=_errors(401, 411, 413, 429), summary="Sign in to the User Portal")
def sign_in(request: Request, body: SignIn, uses: Uses) -> SessionView:
    s = uses.sign_in(body.email, body.password, org_token=body.org or None,
                     source=source(request))
    return _session(s, uses.clock())


@_post("/portal/signout", None, response_model=Empty, responses=_errors(401),
       summary="End the portal session")
def sign_out(session: SessionToken, uses: Uses) -> Empty:
    uses.sign_out(session)
    return Empty()


@_get("/portal/devices", response_model=DevicesView, responses=_errors(401),
      summary="The signed-in user and their linked clients")
def my_devices(session: SessionToken, uses: Uses) -> DevicesView:
    user, installs = uses.my_devices(session)
    return DevicesView(user=UserView.of(user), clients=[ClientView.of(i) for i in installs])


@_post("/portal/installer", None, status_code=201, response_model=InstallerIssued,
       responses=_errors(401), summary="Set up my devices: a personal installer token")
def installer(session: SessionToken, uses: Uses) -> InstallerIssued:
    issued = uses.setup_devices(session)
    return InstallerIssued(installer_token=issued.token, **_issued(issued, uses.clock()))


@_post("/portal/linking-code", None, status_code=201, response_model=LinkingCodeIssued,
       responses=_errors(401), summary="A one-time linking code for the mobile app")
def linking_code(session: SessionToken, uses: Uses) -> LinkingCodeIssued:
    issued = uses.create_linking_code(session)
    return LinkingCodeIssued(linking_code=issued.token, **_issued(issued, uses.clock()))


@_post("/portal/aop", "json", response_model=AopView, responses=_errors(401, 403, 411, 413),
       summary="What an Authenticate-on-Print request would link")
def aop(session: SessionToken, body: AopAsk, uses: Uses) -> AopView:
    r = uses.aop_request(session, body.request)
    return AopView(client=ClientView.of(r.install), pending_jobs=list(r.pending_jobs),
                   policy=r.policy, expires_in=_left(r.expires_at, uses.clock()))


@_post("/portal/aop/confirm", "json", response_model=AopDone,
       responses=_errors(401, 403, 409, 411, 413),
       summary="Link the client; its pending jobs join the queue or are discarded")
def aop_confirm(session: SessionToken, body: AopAsk, uses: Uses) -> AopDone:
    o = uses.aop_confirm(session, body.request)
    return AopDone(client=ClientView.of(o.install), user=UserView.of(o.user),
                   joined=list(o.joined), discarded=list(o.discarded), message=o.message)


@_post("/devices/register", "json", status_code=201, response_model=DeviceRegistered,
       responses=_errors(403, 411, 413, 501),
       summary="A new device trades its one-time code for broker credentials")
def device_register(request: Request, body: RegisterDevice,
                    uses: Uses) -> DeviceRegistered:
    settings = web.settings(request)
    if settings.accounts is None:
        raise ApiError("not_enabled", "device registration is not enabled on this service: "
                       "run mfd cloud with --broker-admin")
    reg = devices.register(uses.store, body.code, settings.accounts, uses.clock())
    # Several brokers: the device's own order (home broker first); older devices read the
    # first only, from broker_url.
    urls = broker_order(reg.device_id, settings.device_broker_urls)
    return DeviceRegistered(device_id=reg.device_id, name=reg.name, username=reg.username,
                            password=reg.password, broker_url=urls[0] if urls else "",
                            broker_urls=list(urls), config=reg.config,
                            offline_key=reg.offline_key)


# ---------------------------------------------------------------------------- header values


def _required(value: str | None, name: str) -> str:
    if value is None:
        raise ApiError(ErrorCode.INVALID_FIELD, f"{name} is required", name)
    return value


def _int_header(value: str | None, name: str, default: int) -> int:
    if value is None or not value.strip():
        return default
    try:
        return int(value.strip(), 10)
    except ValueError:
        raise ApiError(ErrorCode.INVALID_FIELD, f"{name} must be a whole number", name) from None


def _bool_header(value: str | None, name: str) -> bool:
    v = (value or "false").strip().lower()
    if v in ("1", "true", "yes"):
        return True
    if v in ("0", "false", "no", ""):
        return False
    raise ApiError(ErrorCode.INVALID_FIELD, f"{name} must be true or false", name)

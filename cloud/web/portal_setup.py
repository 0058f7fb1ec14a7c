"""The User Portal's linking pages: accept an invitation (/portal/welcome), the Classic
Invitation's installer download (/install), Set up my devices (/portal/devices) and
Authenticate-on-Print (/portal/aop).

Links from the cloud carry their token in the URL fragment (``#invitation=``, ``#installer=``,
``#request=``), which a browser never sends to a server, so tokens stay out of access logs. A
static script (cloud/web/static/portal_link.js) moves the fragment into the page's form; without
JavaScript the page asks the person to paste the link (or the token), and the server takes
either (:func:`token_of`).

Authenticate-on-Print must survive a sign-in in between: the script keeps the request in the
tab's sessionStorage while the person signs in, and the page picks it up when the sign-in
brings them back here. Nothing secret goes into a URL or the session cookie.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import segno
from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from cloud.identity import MIN_PASSWORD
from cloud.linking import DEFAULT_QUEUE
from cloud.linking.portal_extra import PortalExtra
from cloud.storage.port import User
from cloud.web import context as web
from cloud.web import portal_bundle
from protocol.errors import ErrorCode, MfdError

router = APIRouter(include_in_schema=False)

User_ = Annotated[User, Depends(web.current_user)]
#: Session key: what an Authenticate-on-Print confirmation did, for the page after the redirect.
AOP_DONE = "aop_done"


def token_of(value: str, key: str) -> str:
    """A pasted link (``...#key=TOKEN`` or ``?key=TOKEN``) or the bare token."""
    value = value.strip()
    if "://" in value or "#" in value:
        parts = urlsplit(value)
        found = parse_qs(parts.fragment).get(key) or parse_qs(parts.query).get(key)
        return found[0] if found else ""
    return value


def _extra(request: Request) -> PortalExtra:
    return web.linking(request)


def _session(request: Request) -> str:
    token = web.portal_token(request)
    if token is None:  # current_user ran first; a session that ended meanwhile
        raise web.SignInRequired(request.url.path)
    return token


def _sentence(message: str) -> str:
    message = message.strip()
    return (message[:1].upper() + message[1:] + ("" if message.endswith(".") else "."))


# -- accepting a User Portal invitation


@router.get("/portal/welcome")
def welcome_page(request: Request) -> Response:
    return web.render(request, "portal/welcome.html", invitation="", error=None,
                      min_password=MIN_PASSWORD)


@router.post("/portal/welcome", dependencies=[Depends(web.check_csrf)])
def welcome(request: Request, invitation: Annotated[str, Form(max_length=2048)],
            password: Annotated[str, Form(max_length=1024)],
            repeat: Annotated[str, Form(max_length=1024)]) -> Response:
    token = token_of(invitation, "invitation")
    error = None
    status = 400
    if not token:
        error = "Paste the whole link from your invitation email."
    elif password != repeat:
        error = "The two passwords are not the same; type them again."
    if error is None:
        try:
            session = web.linking(request).accept_invitation(
                token, password, source=request.client.host if request.client else "")
        except MfdError as exc:
            error = _sentence(exc.message)
            status = 429 if exc.code == ErrorCode.LOCKED_OUT else 400
        else:
            web.start_session(request, session.token)
            web.notice(request, f"Welcome, {session.user.display_name}: your password is set. "
                       "Set up your devices below.")
            return RedirectResponse("/portal/devices", status_code=303)
    return web.render(request, "portal/welcome.html", status_code=status, invitation=invitation,
                      error=error, min_password=MIN_PASSWORD)


# -- the Classic Invitation's personalised installer


@router.get("/install")
def install_page(request: Request) -> Response:
    return web.render(request, "portal/install.html", installer="", error=None,
                      installers=portal_bundle.REAL_INSTALLERS)


@router.post("/install", dependencies=[Depends(web.check_csrf)])
def install(request: Request, installer: Annotated[str, Form(max_length=2048)]) -> Response:
    token = token_of(installer, "installer")
    try:
        if not token:
            raise MfdError("paste the whole link from your invitation email", code="bad_request")
        info = _extra(request).installer_info(token)
    except MfdError as exc:
        return web.render(request, "portal/install.html", status_code=400, installer=installer,
                          error=_sentence(exc.message), installers=portal_bundle.REAL_INSTALLERS)
    link = f"{info.portal_url}/install#installer={token}"
    return _zip(portal_bundle.build(link, token, user=info.user, org=info.org_name,
                                    portal_url=info.portal_url, expires_at=info.expires_at),
                portal_bundle.filename(info.user))


def _zip(data: bytes, name: str) -> Response:
    return Response(data, media_type="application/zip",
                    headers={"content-disposition": f'attachment; filename="{name}"'})


# -- Set up my devices


def _devices_page(request: Request, user: User, **values: Any) -> Response:
    _user, installs = web.linking(request).my_devices(_session(request))
    return web.render(request, "portal/devices.html", user=user, installs=installs,
                      installers=portal_bundle.REAL_INSTALLERS, **values)


@router.get("/portal/devices")
def devices(request: Request, user: User_) -> Response:
    return _devices_page(request, user)


@router.post("/portal/devices/installer", dependencies=[Depends(web.check_csrf)])
def download_installer(request: Request, user: User_) -> Response:
    issued = web.linking(request).setup_devices(_session(request))
    info = _extra(request).installer_info(issued.token)
    return _zip(portal_bundle.build(issued.url, issued.token, user=user, org=info.org_name,
                                    portal_url=info.portal_url, expires_at=issued.expires_at),
                portal_bundle.filename(user))


@router.post("/portal/devices/code", dependencies=[Depends(web.check_csrf)])
def linking_code(request: Request, user: User_) -> Response:
    """A code for the mobile app, shown on this answer only (never kept to show again)."""
    linking = web.linking(request)
    issued = linking.create_linking_code(_session(request))
    payload = f"mfdkit:link?portal={linking.base_url}&code={issued.token}"
    qr = segno.make(payload, error="m")
    minutes = max(1, round((issued.expires_at - request.app.state.clock()) / 60))
    return _devices_page(request, user, code=issued.token, code_minutes=minutes,
                         qr=qr.svg_data_uri(scale=5, border=2, dark="#000", light="#fff"))


@router.post("/portal/devices/unlink", dependencies=[Depends(web.check_csrf)])
def unlink(request: Request, user: User_,
           install_id: Annotated[str, Form(max_length=64)]) -> Response:
    try:
        install = _extra(request).unlink_device(_session(request), install_id)
    except MfdError as exc:
        web.notice(request, _sentence(exc.message), "error")
    else:
        web.notice(request, f"{install.machine} is unlinked: it no longer prints as you.")
    return RedirectResponse("/portal/devices", status_code=303)


@router.post("/portal/devices/signout-everywhere", dependencies=[Depends(web.check_csrf)])
def sign_out_everywhere(request: Request, user: User_) -> Response:
    web.linking(request).sign_out_everywhere(_session(request))
    request.session.clear()
    web.notice(request, "You are signed out everywhere.")
    return RedirectResponse("/portal/signin", status_code=303)


# -- Authenticate-on-Print


@router.get("/portal/aop")
def aop_page(request: Request) -> Response:
    user = web.optional_user(request)
    return web.render(request, "portal/aop.html", user=user, request_token="", error=None)


@router.post("/portal/aop", dependencies=[Depends(web.check_csrf)])
def aop_review(request: Request, user: User_,
               request_token: Annotated[str, Form(alias="request", max_length=2048)]
               ) -> Response:
    token = token_of(request_token, "request")
    try:
        if not token:
            raise MfdError("paste the whole sign-in link your computer opened",
                           code="bad_request")
        details = web.linking(request).aop_request(_session(request), token)
    except MfdError as exc:
        return web.render(request, "portal/aop.html", status_code=400, user=user,
                          request_token=request_token, error=_sentence(exc.message))
    return web.render(request, "portal/aop_review.html", user=user, token=token,
                      details=details)


@router.post("/portal/aop/confirm", dependencies=[Depends(web.check_csrf)])
def aop_confirm(request: Request, user: User_,
                request_token: Annotated[str, Form(alias="request", max_length=256)]
                ) -> Response:
    try:
        outcome = web.linking(request).aop_confirm(_session(request), request_token)
    except MfdError as exc:
        return web.render(request, "portal/aop.html", status_code=400, user=user,
                          request_token="", error=_sentence(exc.message))
    request.session[AOP_DONE] = {"install": outcome.install.id,
                                 "machine": outcome.install.machine,
                                 "message": outcome.message,
                                 "joined": len(outcome.joined),
                                 "discarded": len(outcome.discarded)}
    return RedirectResponse("/portal/aop/done", status_code=303)


@router.get("/portal/aop/done")
def aop_done(request: Request, user: User_) -> Response:
    done = request.session.get(AOP_DONE)
    if not isinstance(done, dict):
        return RedirectResponse("/portal/", status_code=303)
    queues = _extra(request).deployed_queues(_session(request), str(done["install"]))
    return web.render(request, "portal/aop_done.html", user=user, done=done, queues=queues,
                      default_queue=DEFAULT_QUEUE)

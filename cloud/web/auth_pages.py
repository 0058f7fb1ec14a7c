"""Signing in and out of the User Portal and the admin console with a password (single sign-on
is sso.py's). Both consoles share one sign-in: an administrator is a user whose role is admin.

Sign-in is rate limited per client address (on top of the per-account lockout that
cloud/linking counts), so one address cannot try many accounts quickly either."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from cloud.web import context as web
from protocol.errors import ErrorCode, MfdError

router = APIRouter(include_in_schema=False)

#: Sign-in attempts from one address: one every SIGNIN_INTERVAL seconds on average, in bursts of
#: SIGNIN_BURST.
SIGNIN_INTERVAL = 2.0
SIGNIN_BURST = 10


class TooManyAttempts(MfdError):
    code = ErrorCode.LOCKED_OUT

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many sign-in attempts from here; wait {retry_after} seconds and "
                         "try again")
        self.retry_after = retry_after


def client_address(request: Request) -> str:
    """The client's address: the subject of the per-address guessing lockout, so one
    address guessing locks only itself (a shared subject such as "web" would lock everyone)."""
    return request.client.host if request.client else "unknown"


def rate_limit_sign_in(request: Request) -> None:
    """Spend one sign-in attempt of this client address; refuse past the burst."""
    address = client_address(request)
    store = web.store(request)
    now = request.app.state.clock()
    with store.transaction():
        ahead = store.spend_token("web_signin", address, now, SIGNIN_INTERVAL)
    if ahead > SIGNIN_INTERVAL * SIGNIN_BURST:
        raise TooManyAttempts(max(1, math.ceil(ahead - SIGNIN_INTERVAL * SIGNIN_BURST)))


def landing(user_role: str) -> str:
    return "/admin/" if user_role == "admin" else "/portal/"


@router.get("/")
def home(request: Request) -> Response:
    user = web.optional_user(request)
    if user is None:
        return RedirectResponse("/portal/signin", status_code=303)
    return RedirectResponse(landing(user.role), status_code=303)


@router.get("/portal/signin")
def sign_in_page(request: Request, org: str = "", next: str = "") -> Response:
    return web.render(request, "signin.html", org=org, next=web.safe_next(next, ""),
                      email="", error=None)


@router.post("/portal/signin", dependencies=[Depends(web.check_csrf)])
def sign_in(request: Request, email: Annotated[str, Form(max_length=320)],
            password: Annotated[str, Form(max_length=1024)],
            org: Annotated[str, Form(max_length=256)] = "",
            next: Annotated[str, Form(max_length=2048)] = "") -> Response:
    rate_limit_sign_in(request)
    try:
        session = web.linking(request).sign_in(email, password, org_token=org or None,
                                               source=client_address(request))
    except MfdError as exc:
        if exc.code == ErrorCode.LOCKED_OUT or exc.code == "invalid_token":
            status = 429 if exc.code == ErrorCode.LOCKED_OUT else 401
        else:
            status = 401
        # The same words for a wrong password and an unknown email: which emails have
        # accounts is not for strangers to learn here.
        message = (exc.message if exc.code in (ErrorCode.LOCKED_OUT, "invalid_token")
                   else "That email and password do not match an account.")
        return web.render(request, "signin.html", status_code=status, org=org,
                          next=web.safe_next(next, ""), email=email, error=message)
    web.start_session(request, session.token)
    return RedirectResponse(web.safe_next(next, landing(session.user.role)),
                            status_code=303)


@router.post("/portal/signout", dependencies=[Depends(web.check_csrf)])
def sign_out(request: Request) -> Response:
    web.end_session(request)
    web.notice(request, "You are signed out.")
    return RedirectResponse("/portal/signin", status_code=303)

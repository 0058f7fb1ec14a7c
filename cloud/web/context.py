"""What every page stands on: the store and linking use-cases of the request's thread, the
signed session cookie (who is signed in, the CSRF token, one-shot notices), templates, and the
refusals that become a page (or a JSON error under /api/).

Why a store per thread: FastAPI runs plain ``def`` routes on a pool of threads, and a store
connection is not shared between threads (cloud/storage); each pool thread opens one the first
time it needs it and keeps it, the way each MQTT worker owns its store.

The session cookie is Starlette's (signed with the app's key, HttpOnly, SameSite=Lax). It holds
the portal session token (checked against the store on every request, so signing out or an
administrator's revocation ends it at once), the CSRF token and pending notices, never a
password or a card number.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from cloud.linking import Linking
from cloud.storage.factory import open_store
from cloud.storage.port import CloudStore, User
from cloud.web.settings import WebSettings
from protocol.errors import MfdError

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))

#: Session keys.
PORTAL_TOKEN = "portal"  # noqa: S105 - a session key, not a secret
CSRF = "csrf"
NOTICES = "notices"


class SignInRequired(MfdError):
    """The page needs a signed-in person; answered with a redirect to the sign-in page."""

    code = "invalid_session"

    def __init__(self, next_path: str) -> None:
        super().__init__("sign in to see this page")
        self.next_path = next_path


class Forbidden(MfdError):
    """Signed in, but not allowed here (a user on an admin page)."""

    code = "not_allowed"


class CsrfFailed(MfdError):
    code = "csrf_failed"

    def __init__(self) -> None:
        super().__init__("this form was out of date or not ours; go back, reload the page and "
                         "try again")


class Stores:
    """One store and one Linking per thread, opened on first use, all closed at shutdown."""

    def __init__(self, settings: WebSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self._local = threading.local()
        self._opened: list[CloudStore] = []
        self._lock = threading.Lock()

    def store(self) -> CloudStore:
        store: CloudStore | None = getattr(self._local, "store", None)
        if store is None:
            store = open_store(self.settings.store_url)
            self._local.store = store
            with self._lock:
                self._opened.append(store)
        return store

    def linking(self) -> Linking:
        linking: Linking | None = getattr(self._local, "linking", None)
        if linking is None:
            linking = Linking(self.store(), base_url=self.settings.public_url or None,
                              clock=self.clock)
            self._local.linking = linking
        return linking

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for store in opened:
            store.close()


def stores(request: Request) -> Stores:
    s: Stores = request.app.state.stores
    return s


def store(request: Request) -> CloudStore:
    return stores(request).store()


def linking(request: Request) -> Linking:
    return stores(request).linking()


def settings(request: Request) -> WebSettings:
    s: WebSettings = request.app.state.settings
    return s


# -- who is signed in


def start_session(request: Request, portal_token: str) -> None:
    """Sign in: a fresh session (a new CSRF token too), so a cookie planted before sign-in
    is worth nothing after it."""
    request.session.clear()
    request.session[PORTAL_TOKEN] = portal_token
    request.session[CSRF] = secrets.token_urlsafe(32)


def end_session(request: Request) -> None:
    token = request.session.get(PORTAL_TOKEN)
    request.session.clear()
    if isinstance(token, str):
        try:
            linking(request).sign_out(token)
        except MfdError:
            pass  # already ended or expired: signed out either way


def portal_token(request: Request) -> str | None:
    token = request.session.get(PORTAL_TOKEN)
    return token if isinstance(token, str) else None


def optional_user(request: Request) -> User | None:
    token = portal_token(request)
    if token is None:
        return None
    try:
        return linking(request).session_user(token)
    except MfdError:
        request.session.pop(PORTAL_TOKEN, None)
        return None


def _here(request: Request) -> str:
    path = request.url.path
    return path + (f"?{request.url.query}" if request.url.query else "")


def current_user(request: Request) -> User:
    """A dependency: the signed-in person, or a redirect to sign in and come back here."""
    user = optional_user(request)
    if user is None:
        raise SignInRequired(_here(request))
    return user


def current_admin(request: Request) -> User:
    """A dependency: a signed-in administrator of their org (users.role)."""
    user = current_user(request)
    if user.role != "admin":
        raise Forbidden("this page is for your organisation's administrators")
    return user


# -- forms


def csrf_token(request: Request) -> str:
    token = request.session.get(CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[CSRF] = token
    return token


async def check_csrf(request: Request) -> None:
    """A dependency for every form POST: the form's ``csrf`` field must be this session's
    token (a page of ours put it there; another site cannot read it)."""
    expected = request.session.get(CSRF)
    sent: Any = request.headers.get("x-csrf-token")
    if sent is None:
        form = await request.form()
        sent = form.get("csrf")
    if not (isinstance(expected, str) and isinstance(sent, str)
            and hmac.compare_digest(expected, sent)):
        raise CsrfFailed()


def notice(request: Request, text: str, kind: str = "ok") -> None:
    """A one-shot message shown on the next page (after a redirect): what just happened."""
    pending = list(request.session.get(NOTICES, []))
    pending.append({"kind": kind, "text": text})
    request.session[NOTICES] = pending[-5:]


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> Response:
    """A page, with what every page needs: who is signed in, the CSRF token, the notices."""
    notices = request.session.pop(NOTICES, [])
    user = values.pop("user", None)
    if user is None and PORTAL_TOKEN in request.session:
        user = optional_user(request)
    oidc = settings(request).oidc
    context = {"user": user, "csrf": csrf_token(request), "notices": notices,
               "sso": oidc is not None, "sso_label": oidc.label if oidc else "", **values}
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)


def sign_in_url(next_path: str) -> str:
    return "/portal/signin?next=" + quote(next_path, safe="/")


def safe_next(value: str | None, default: str = "/portal/") -> str:
    """Where to go after sign-in: only a path on this site (an open redirect would let a mail
    link send a person to a look-alike sign-in page)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default

"""What every page stands on: the store and linking use-cases lent to the request, the
signed session cookie (who is signed in, the CSRF token, one-shot notices), templates, and the
refusals that become a page (or a JSON error under /api/).

Why a store per request: FastAPI runs plain ``def`` routes on a pool of threads, and a store
connection is used by one thread at a time (cloud/storage); each request borrows one from a
small pool the first time it needs it and gives it back when its answer is sent.

The session cookie is Starlette's (signed with the app's key, HttpOnly, SameSite=Lax). It holds
the portal session token (checked against the store on every request, so signing out or an
administrator's revocation ends it at once), the CSRF token and pending notices, never a
password or a card number.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
import threading
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

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


class _Lease:
    """A store connection and the Linking on it, lent to one request at a time."""

    __slots__ = ("linking", "store")

    def __init__(self, store: CloudStore, linking: Linking) -> None:
        self.store = store
        self.linking = linking


#: Where a request keeps its lease (the ASGI scope's state, which the route's thread and the
#: middleware that gives it back both see).
_LEASE = "mfd_store_lease"


class Stores:
    """Store connections lent to requests: a request takes one the first time it needs it and
    gives it back when its answer is sent (:class:`ReturnStores`), so connections are reused
    across requests and threads, and there are never more than requests at once. (A store per
    pool thread leaked: the pool retires idle threads and starts new ones, and each new thread
    opened a connection that was only closed at shutdown.) At most ``keep`` idle connections
    are kept open; the rest are closed when given back."""

    def __init__(self, settings: WebSettings, clock: Callable[[], float], *,
                 keep: int = 16) -> None:
        self.settings = settings
        self.clock = clock
        self.keep = keep
        self._idle: list[_Lease] = []
        self._lock = threading.Lock()
        self._closed = False
        #: Connections open now, lent or idle (a test's view of the pool).
        self.open_count = 0

    @property
    def idle_count(self) -> int:
        """Connections given back and not lent now."""
        with self._lock:
            return len(self._idle)

    def _take(self) -> _Lease:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self.open_count += 1
        try:
            store = open_store(self.settings.store_url)
        except BaseException:
            with self._lock:
                self.open_count -= 1
            raise
        return _Lease(store, Linking(store, base_url=self.settings.public_url or None,
                                     clock=self.clock,
                                     max_document=self.settings.max_document))

    def _give(self, lease: _Lease) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.keep:
                self._idle.append(lease)
                return
            self.open_count -= 1
        lease.store.close()

    @contextlib.contextmanager
    def lease(self) -> Iterator[_Lease]:
        """A store for work outside a request (housekeeping)."""
        lease = self._take()
        try:
            yield lease
        finally:
            self._give(lease)

    def for_request(self, request: Request) -> _Lease:
        state = request.scope.setdefault("state", {})
        lease: _Lease | None = state.get(_LEASE)
        if lease is None:
            lease = self._take()
            state[_LEASE] = lease
        return lease

    def give_back(self, scope: MutableMapping[str, Any]) -> None:
        state = scope.get("state")
        lease = state.pop(_LEASE, None) if isinstance(state, dict) else None
        if lease is not None:
            self._give(lease)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self.open_count -= len(idle)
        for lease in idle:
            lease.store.close()


class ReturnStores:
    """ASGI middleware: whatever store a request borrowed goes back once its answer is sent
    (streamed bodies included), whether the route succeeded or not."""

    def __init__(self, app: ASGIApp, stores: Stores) -> None:
        self.app = app
        self.stores = stores

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            self.stores.give_back(scope)


def stores(request: Request) -> Stores:
    s: Stores = request.app.state.stores
    return s


def store(request: Request) -> CloudStore:
    return stores(request).for_request(request).store


def linking(request: Request) -> Linking:
    return stores(request).for_request(request).linking


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

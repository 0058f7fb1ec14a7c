"""Client linking's shared ground: limits and lifetimes, error codes, input checks, and
:class:`LinkingBase`, which every flow (cloud/linking/*.py) extends."""

from __future__ import annotations

import contextlib
import math
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum

from cloud.hashing import new_token, token_hash
from cloud.identity import FAILURE_WINDOW, LOCK_SECONDS, MAX_FAILURES
from cloud.linking.values import Issued
from cloud.storage.port import ClientInstall, CloudStore, User, new_id
from protocol.errors import ErrorCode, MfdError

DEFAULT_PORTAL_URL = "http://127.0.0.1:8631"
#: The printer every client adds; queues the admin deploys come on top once the client is linked.
DEFAULT_QUEUE = "mfdkit Printer"
KINDS = ("workstation", "chromebook", "mobile")

DAY = 86_400.0
#: How long each secret is good for. A Classic Invitation must survive a holiday; "Set up my
#: devices" is used right away; a bulk installer is baked into an MDM package for a year.
CLASSIC_TTL = 30 * DAY
PORTAL_INVITE_TTL = 14 * DAY
SETUP_TTL = 1 * DAY
BULK_TTL = 365 * DAY
PORTAL_SESSION_TTL = 8 * 3600.0
LINKING_CODE_TTL = 600.0
#: An Authenticate-on-Print sign-in link, and the pending job it holds.
AOP_TTL = 3600.0
MAX_DOCUMENT = 50 * 1024 * 1024
#: Wrong passwords or linking codes from one address before it is locked. Higher than the
#: per-account limit: one address can be a whole office behind NAT.
ADDRESS_MAX_FAILURES = 20

USER_SCOPE = "user"  # the same scope cloud/identity.py uses for passwords at the copier
ADDR_SCOPE = "portal-addr"

_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a screen, typed
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class LinkCode(StrEnum):
    """Error codes of linking and the portal API beyond protocol.errors.ErrorCode (whose
    ``invalid_field``, ``bad_request``, ``invalid_password``, ``invalid_session``,
    ``locked_out``, ``not_allowed``, ``too_large`` and ``internal`` are used as they are)."""

    INVALID_TOKEN = "invalid_token"  # unknown, revoked, replaced or already used  # noqa: S105
    TOKEN_EXPIRED = "token_expired"  # noqa: S105
    INVALID_CODE = "invalid_code"  # a linking code that is unknown, used or expired
    WEAK_PASSWORD = "password_invalid"  # noqa: S105 - a new password too short
    UNKNOWN_QUEUE = "unknown_queue"
    UNKNOWN_USER = "unknown_user"
    CONFLICT = "conflict"  # a name or key that exists already
    IMPORT_INVALID = "import_invalid"
    CHECKSUM_MISMATCH = "checksum_mismatch"


class LinkingError(MfdError):
    """A refusal: ``code`` from :class:`LinkCode` or ``ErrorCode``; ``field`` names the input.

    ``trace`` is an audit entry (action, subject, detail) and ``guess`` the (scope, subject)
    pairs a wrong guess counts against; both are written after the refused work rolls back.
    """

    def __init__(self, code: str, message: str, *, field: str | None = None,
                 retry_after: int | None = None, trace: tuple[str, str, str] | None = None,
                 actor: str = "portal",
                 guess: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message, code=str(code))
        self.field = field
        self.retry_after = retry_after
        #: Every refused row of an import, for a page that lists them all (the message holds
        #: the first 20, on one line).
        self.rows: list[str] = []
        self.trace = trace
        self.actor = actor
        self.guess = tuple(guess)



# ---------------------------------------------------------------------------- helpers


def _text(value: object, name: str, *, max_len: int = 128, required: bool = True) -> str:
    """A short, printable, single-line string from untrusted input."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise LinkingError(ErrorCode.INVALID_FIELD, f"{name} must be a string", field=name)
    value = value.strip()
    if required and not value:
        raise LinkingError(ErrorCode.INVALID_FIELD, f"{name} is required", field=name)
    if len(value) > max_len or _CONTROL_RE.search(value):
        raise LinkingError(ErrorCode.INVALID_FIELD,
                           f"{name} must be at most {max_len} printable characters", field=name)
    return value


def normalize_code(code: str) -> str:
    """What a person typed, as stored: dashes and spaces dropped, upper case."""
    return re.sub(r"[\s-]", "", code).upper()


def _code_hash(code: str) -> str:
    # The app does not know the org, so a linking code is looked up on its own: an unkeyed
    # hash. Codes are one-time and live minutes, and wrong ones are counted and locked.
    return token_hash("link-code:" + normalize_code(code))


def _new_code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def _locked(scope: str, until: float, now: float) -> LinkingError:
    who = "this account" if scope == USER_SCOPE else "your address"
    return LinkingError(ErrorCode.LOCKED_OUT, f"too many wrong attempts: {who} is locked until "
                        f"{time.strftime('%H:%M', time.localtime(until))}",
                        retry_after=max(1, math.ceil(until - now)))


def _install_with_user(install: ClientInstall, user_id: str, now: float) -> ClientInstall:
    return ClientInstall(install.id, install.org_id, install.kind, install.machine,
                         install.os_user, user_id, "aop", install.created_at, now, None)


class LinkingBase:
    """What every flow stands on: the store and clock, one transaction per public method with
    refusals traced and guesses counted after the rollback, users, queues and link URLs, and
    the issuing of installer tokens and linking codes (invitations and the portal both issue).

    ``base_url`` is the portal's public address used in links; by default the one the portal
    recorded in the store when it started (``mfd cloud --http``), else :data:`DEFAULT_PORTAL_URL`.
    """

    def __init__(self, store: CloudStore, *, base_url: str | None = None,
                 clock: Callable[[], float] = time.time,
                 new_token: Callable[[], str] = new_token,
                 max_document: int = MAX_DOCUMENT) -> None:
        self.store = store
        self.clock = clock
        self._token = new_token
        self.max_document = max_document
        self._base_url = base_url.rstrip("/") if base_url else None

    # ------------------------------------------------------------------ plumbing

    @property
    def base_url(self) -> str:
        with self.store.transaction():
            return self._base()

    def _base(self) -> str:
        """The links' base URL; call inside a transaction (backends need not nest them)."""
        if self._base_url:
            return self._base_url
        return self.store.portal_setting("public_url") or DEFAULT_PORTAL_URL

    def set_public_url(self, url: str) -> None:
        """Record where the portal is reachable, for links made elsewhere (mfd admin)."""
        url = url.rstrip("/")
        with self.store.transaction():
            self.store.set_portal_setting("public_url", url)

    def _new(self, prefix: str) -> str:
        return f"{prefix}_{self._token()}"

    @contextlib.contextmanager
    def _work(self) -> Iterator[None]:
        """One transaction. A refusal rolls it back, then its audit entry and counted guesses
        are written on their own, and a guess past the limit turns into ``locked_out``."""
        try:
            with self.store.transaction():
                yield
        except LinkingError as exc:
            if exc.trace or exc.guess:
                locked = self._after_refusal(exc)
                if locked is not None:
                    raise locked from None
            raise

    def _after_refusal(self, exc: LinkingError) -> LinkingError | None:
        now = self.clock()
        locked: LinkingError | None = None
        with self.store.transaction():
            if exc.trace:
                action, subject, detail = exc.trace
                self.store.audit(now, exc.actor, action, subject, detail)
            for scope, subject in exc.guess:
                if not subject:
                    continue
                limit = MAX_FAILURES if scope == USER_SCOPE else ADDRESS_MAX_FAILURES
                if self.store.record_failure(scope, subject, now, FAILURE_WINDOW) >= limit:
                    until = now + LOCK_SECONDS
                    self.store.lock(scope, subject, until)
                    self.store.clear_failures(scope, subject)
                    self.store.audit(now, "cloud", "lockout", f"{scope}:{subject}",
                                     f"{limit} wrong guesses within {FAILURE_WINDOW / 60:g} min")
                    locked = _locked(scope, until, now)
        return locked

    def _check_locks(self, pairs: Sequence[tuple[str, str]], now: float) -> None:
        for scope, subject in pairs:
            if not subject:
                continue
            until = self.store.locked_until(scope, subject, now)
            if until is not None:
                raise _locked(scope, until, now)

    def _user(self, user_id: str) -> User:
        user = self.store.user(user_id)
        if user is None:
            raise LinkingError(LinkCode.UNKNOWN_USER, "that user no longer exists")
        return user

    def _user_by_email(self, email: str) -> User:
        user = self.store.user_by_email(email)
        if user is None:
            raise LinkingError(LinkCode.UNKNOWN_USER, f"no user {email}", field="email")
        return user

    def _queues_for(self, install: ClientInstall) -> tuple[str, ...]:
        """The default printer for everyone; the org's deployed queues once linked."""
        if not install.linked:
            return (DEFAULT_QUEUE,)
        return (DEFAULT_QUEUE, *self._queues(install.org_id))

    def _queues(self, org_id: str) -> tuple[str, ...]:
        return self.store.queue_names(org_id)

    def _org_name(self, org_id: str) -> str:
        return self.store.org_name(org_id) or org_id

    def _issue_installer(self, org_id: str, user: User | None, purpose: str, ttl: float,
                         actor: str) -> Issued:
        now = self.clock()
        token = self._new("mfi")
        token_id = new_id("inst")
        self.store.add_installer_token(token_id, token_hash(token), org_id,
                                       user.id if user else None, purpose, now, now + ttl)
        self.store.audit(now, actor, "installer.issue", f"installer:{token_id}",
                         f"{purpose}, {'user:' + user.id if user else 'anonymous'}, "
                         f"expires {_when(now + ttl)}")
        return Issued(token_id, token, f"{self._base()}/install#installer={token}", now + ttl,
                      user)

    def _issue_code(self, user: User, ttl: float, actor: str) -> tuple[str, str]:
        now = self.clock()
        while True:
            code = _new_code()
            if not self.store.linking_code_taken(_code_hash(code)):
                break
        code_id = new_id("lc")
        self.store.add_linking_code(code_id, _code_hash(code), user.id, now, now + ttl)
        self.store.audit(now, actor, "linking_code.issue", f"user:{user.id}",
                         f"code:{code_id}, expires {_when(now + ttl)}")
        return code, code_id

    def purge(self) -> int:
        """Forget sessions, codes and sign-in links a day past their expiry."""
        before = self.clock() - DAY
        with self.store.transaction():
            return self.store.purge_linking(before)

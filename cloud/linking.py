"""Client linking: which person is behind every print job.

Theory of operation
-------------------
A print client (the printer a workstation's client adds, the Chrome extension on a Chromebook,
the mobile app) is a *client install*: one row per seat = (org, kind, machine, OS user), holding
the SHA-256 of the client token the install was given when it registered. The token lives in
that OS user's profile, which is why an install belongs to one OS user on one machine: another
OS user on the same computer has no token and registers an install of their own. Registering a
seat again replaces the seat's install (its token stops working), so a seat has one install.

An install is *linked* when it has a user. A job's owner is the user of the install found by
the token's hash -- never a field of the request -- so holding a token is the only way to print
as someone, and a token prints only as its own user.

How an install gets its user (the seed's methods, docs/client-linking.md shows each one):

* a *personalised installer token* (the link in a Classic Invitation email; "Set up my devices"
  in the User Portal, reached through a User Portal invitation or the org's share link): the
  install is linked the moment it registers;
* the org-wide *anonymous installer token* (bulk deployment with an MDM tool): the install
  registers unlinked. Its first job is stored PENDING_AUTH and answered with a sign-in URL that
  carries a one-time auth-request token (Authenticate-on-Print). The user signs in to the portal
  and confirms; the install is linked and its pending jobs join the user's queue, or are
  discarded and the user is asked to print again (``OrgSettings.aop_pending``);
* a Chromebook's extension registers like a computer, its extension install id as the machine;
* the mobile app signs in with email + password, or with a one-time linking code the user makes
  in the portal (or finds in a Classic Invitation); it registers as a linked install of kind
  ``mobile`` whose token is the app's *user token*.

Secrets: every token is random (cloud/hashing.py) and stored only as its SHA-256; it is shown
once, when issued. Tokens carry a short prefix (``mfi_`` installer, ``mfc_`` client, ``mfu_`` user,
``mfs_`` portal session, ``mfa_`` auth request, ``mfv_`` invitation) so a leaked one is
recognisable by secret scanners. Links put tokens in the URL *fragment*, which browsers never
send to a server, so tokens stay out of access logs. The share link is not stored at all: it is
an HMAC under the org's secret, so the admin can print it again at any time and rotate it.

Guessing: a wrong password counts against the account (scope ``user``, shared with the copier's
username + password login, so both channels draw on one budget) and against the caller's address
(scope ``portal-addr``); a wrong linking code against the address. Past the limit the scope is
locked, exactly as cloud/identity.py does at the copier.

Transactions: each public method is one store transaction. A refusal rolls its transaction back;
its audit entry and any counted guess are then written in a transaction of their own, so a
refusal leaves a trace without leaving half of its work. Password hashes (scrypt, tens of ms) are
checked outside any transaction: on SQLite a transaction holds the write lock the copiers'
requests need too.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import hmac
import io
import math
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from cloud.hashing import (
    card_hash,
    code_hash,
    hash_password,
    new_token,
    token_hash,
    verify_password,
)
from cloud.identity import (
    FAILURE_WINDOW,
    LOCK_SECONDS,
    MAX_FAILURES,
    MIN_PASSWORD,
    check_access_code,
)
from cloud.storage.port import ClientInstall, CloudStore, ConflictError, Job, User, new_id
from protocol.errors import ErrorCode, MfdError, StoreError

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
        self.trace = trace
        self.actor = actor
        self.guess = tuple(guess)


# ---------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Issued:
    """A secret issued once: the token (or code), the link that carries it, its expiry."""

    id: str
    token: str
    url: str
    expires_at: float
    user: User | None = None


@dataclass(frozen=True, slots=True)
class Registered:
    """A client install that has just registered; ``token`` goes into its user's profile."""

    install: ClientInstall
    token: str
    user: User | None
    queues: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClientState:
    install: ClientInstall
    user: User | None
    queues: tuple[str, ...]
    held_jobs: tuple[Job, ...]
    held_total: int


@dataclass(frozen=True, slots=True)
class Submitted:
    job_id: str
    state: str  # HELD or PENDING_AUTH
    size: int
    sha256: str
    owner: User | None
    sign_in_url: str | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class PortalSession:
    token: str
    user: User
    expires_at: float


@dataclass(frozen=True, slots=True)
class Invitation:
    kind: str  # classic or portal
    user: User
    subject: str
    body: str  # the email text, with its links: a secret for the invitee only
    url: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """What the portal shows before the user confirms Authenticate-on-Print."""

    install: ClientInstall
    pending_jobs: tuple[str, ...]  # names
    policy: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class AopOutcome:
    install: ClientInstall
    user: User
    joined: tuple[str, ...]
    discarded: tuple[str, ...]
    message: str


@dataclass(frozen=True, slots=True)
class ImportReport:
    users: int
    cards: int
    codes: int


@dataclass(slots=True)
class _Row:
    line: int
    email: str
    name: str
    card: str
    code: str
    errors: list[str] = field(default_factory=list)


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


class Linking:
    """Client linking over a :class:`CloudStore` (its tables are the store's: cloud/storage/).

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

    # ------------------------------------------------------------------ admin

    def bulk_installer(self, org_id: str, *, ttl: float = BULK_TTL) -> Issued:
        """The org-wide anonymous installer token for MDM deployment."""
        with self._work():
            self.store.org_settings(org_id)  # the org exists
            return self._issue_installer(org_id, None, "bulk", ttl, "admin")

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

    def revoke_installer(self, token_id: str) -> None:
        with self._work():
            now = self.clock()
            if not self.store.revoke_installer_token(token_id, now):
                raise LinkingError(LinkCode.INVALID_TOKEN, f"no active installer {token_id}")
            self.store.audit(now, "admin", "installer.revoke", f"installer:{token_id}")

    def invite_classic(self, email: str, *, ttl: float = CLASSIC_TTL) -> Invitation:
        """The Classic Invitation: an email with a personalised installer link (computers and
        the Chromebook extension) and a linking code (the mobile app)."""
        with self._work():
            user = self._user_by_email(email)
            issued = self._issue_installer(user.org_id, user, "classic", ttl, "admin")
            code, _code_id = self._issue_code(user, ttl, "admin")
            now = self.clock()
            self.store.add_invitation(new_id("inv"), "classic", user.org_id, user.id,
                                      token_hash=None, installer_id=issued.id, now=now,
                                      expires_at=issued.expires_at)
            self.store.audit(now, "admin", "invite.classic", f"user:{user.id}",
                             f"installer:{issued.id}")
            org = self._org_name(user.org_id)
        subject = f"Print from your devices at {org}"
        body = (
            f"To: {user.email}\nSubject: {subject}\n\n"
            f"Hello {user.display_name},\n\n"
            f"{org} uses mfdkit secure printing: what you print waits for you at any copier "
            "until you log in there with your badge or access code.\n\n"
            "Windows, macOS or Linux computer - download and run your personal installer:\n"
            f"  {issued.url}\n"
            "Chromebook - open the same link on the Chromebook; the mfdkit extension your "
            "administrator deployed links itself to you.\n"
            "Phone or tablet - install the mfdkit app and enter this linking code:\n"
            f"  {code}\n\n"
            f"The link and the code are personal and work until {_when(issued.expires_at)}. "
            "Do not forward this email: anyone with it could print in your name.\n"
            "Each person who logs in to a shared computer installs the printer with their own "
            "invitation.\n")
        return Invitation("classic", user, subject, body, issued.url, issued.expires_at)

    def invite_portal(self, email: str, *, ttl: float = PORTAL_INVITE_TTL) -> Invitation:
        """A User Portal invitation: a link to choose a password and sign in; the user then
        sets up their devices from the portal."""
        with self._work():
            user = self._user_by_email(email)
            now = self.clock()
            token = self._new("mfv")
            invite_id = new_id("inv")
            self.store.add_invitation(invite_id, "portal", user.org_id, user.id,
                                      token_hash=token_hash(token), installer_id=None, now=now,
                                      expires_at=now + ttl)
            self.store.audit(now, "admin", "invite.portal", f"user:{user.id}",
                             f"invitation:{invite_id}, expires {_when(now + ttl)}")
            org = self._org_name(user.org_id)
            url = f"{self._base()}/portal/welcome#invitation={token}"
        subject = f"Your {org} User Portal account"
        body = (
            f"To: {user.email}\nSubject: {subject}\n\n"
            f"Hello {user.display_name},\n\n"
            f"{org} uses mfdkit secure printing. Open this link to choose your password and "
            "sign in to the User Portal:\n"
            f"  {url}\n\n"
            "In the portal, \"Set up my devices\" gives you the installer for your computer "
            "and a linking code for the mobile app.\n"
            f"The link is personal, works once, and expires {_when(now + ttl)}.\n")
        return Invitation("portal", user, subject, body, url, now + ttl)

    def share_link(self, org_id: str, *, rotate: bool = False) -> str:
        """The org's User Portal sign-in link. Not a credential (a password is still needed),
        but it names the org, so it is derived from the org secret instead of stored:
        printable again at any time, and ``rotate`` makes every earlier link invalid."""
        with self._work():
            self.store.org_settings(org_id)
            stored = self.store.share_generation(org_id)
            generation = stored or 1
            if stored is None:
                self.store.set_share_generation(org_id, generation)
            elif rotate:
                generation += 1
                self.store.set_share_generation(org_id, generation)
                self.store.audit(self.clock(), "admin", "share_link.rotate", f"org:{org_id}",
                                 f"generation {generation}")
            return f"{self._base()}/portal/signin?org={self._share_token(org_id, generation)}"

    def _share_token(self, org_id: str, generation: int) -> str:
        mac = hmac.new(self.store.org_secret(org_id), f"share-link:{generation}".encode(),
                       hashlib.sha256).hexdigest()[:32]
        return f"{org_id}.{mac}"

    def _org_of_share_token(self, token: str) -> str | None:
        org_id, _, _mac = token.rpartition(".")
        if not org_id:
            return None
        generation = self.store.share_generation(org_id)
        if generation is None:
            return None
        want = self._share_token(org_id, generation)
        return org_id if hmac.compare_digest(want, token) else None

    def add_queue(self, org_id: str, name: str) -> str:
        name = _text(name, "name", max_len=64)
        with self._work():
            self.store.org_settings(org_id)
            queue_id = new_id("q")
            now = self.clock()
            if name == DEFAULT_QUEUE or not self.store.add_queue(queue_id, org_id, name, now):
                raise LinkingError(LinkCode.CONFLICT, f"queue {name!r} exists already",
                                   field="name")
            self.store.audit(now, "admin", "queue.add", f"queue:{queue_id}", name)
        return queue_id

    def queues(self, org_id: str) -> tuple[str, ...]:
        """The org's deployed queues (without the default printer)."""
        with self.store.transaction():
            return self._queues(org_id)

    def installs(self, org_id: str, *,
                 include_revoked: bool = False) -> list[tuple[ClientInstall, User | None]]:
        with self.store.transaction():
            out = []
            for inst in self.store.installs_of_org(org_id, include_revoked):
                out.append((inst, self.store.user(inst.user_id) if inst.user_id else None))
        return out

    def revoke_install(self, install_id: str) -> None:
        """A lost laptop or phone: its token stops working at once."""
        with self._work():
            now = self.clock()
            if not self.store.revoke_install(install_id, now):
                raise LinkingError(LinkCode.INVALID_TOKEN, f"no active client {install_id}")
            self._discard_pending(install_id, now, "client revoked")
            self.store.audit(now, "admin", "client.revoke", f"client:{install_id}")

    # ------------------------------------------------------------------ admin: directory

    def import_users(self, org_id: str, text: str, *, name: str = "") -> ImportReport:
        """Users from CSV or TSV (email, display name, optional card number, optional access
        code), all or nothing: every bad row is reported with its line number and nothing is
        imported unless every row is good."""
        rows = _parse_import(text, tab=name.lower().endswith(".tsv"))
        _check_rows(rows)
        bad = _bad_rows(rows)
        if bad:
            raise LinkingError(LinkCode.IMPORT_INVALID, _import_message(name, bad))
        now = self.clock()
        with self._work():
            secret = self.store.org_secret(org_id)
            for r in rows:
                if self.store.user_by_email(r.email) is not None:
                    r.errors.append(f"user {r.email} exists already")
                if r.card and self.store.user_by_card(org_id, card_hash(secret, r.card)):
                    r.errors.append("that card belongs to another user")
                if r.code and self.store.user_by_code(org_id, code_hash(secret, r.code)):
                    r.errors.append("that access code is taken")
            bad = _bad_rows(rows)
            if bad:
                raise LinkingError(LinkCode.IMPORT_INVALID, _import_message(name, bad))
            for r in rows:
                user_id = self.store.add_user(org_id, r.email, r.name)
                if r.card:
                    self.store.add_card(org_id, card_hash(secret, r.card), user_id, now)
                if r.code:
                    self.store.set_access_code(org_id, code_hash(secret, r.code), user_id)
            report = ImportReport(len(rows), sum(1 for r in rows if r.card),
                                  sum(1 for r in rows if r.code))
            self.store.audit(now, "admin", "users.import", f"org:{org_id}",
                             f"{name or 'import'}: {report.users} user(s), {report.cards} "
                             f"card(s), {report.codes} code(s)")
        return report

    def remove_cards(self, email: str, number: str | None = None) -> int:
        """One card of a user, or (no number) all of them."""
        with self._work():
            user = self._user_by_email(email)
            now = self.clock()
            if number is None:
                removed = self.store.remove_cards_of(user.id)
            else:
                h = card_hash(self.store.org_secret(user.org_id), number)
                owner = self.store.user_by_card(user.org_id, h)
                if owner is None or owner.id != user.id:
                    raise LinkingError(ErrorCode.INVALID_FIELD,
                                       f"{email} has no such card", field="number")
                removed = int(self.store.remove_card(user.org_id, h))
            self.store.audit(now, "admin", "card.remove", f"user:{user.id}",
                             f"{removed} card(s)")
        return removed

    def reset_access_code(self, email: str) -> str:
        """A new random 8-digit access code, not trivially guessable and not taken in the org.
        Returned once; the store keeps its hash."""
        with self._work():
            user = self._user_by_email(email)
            secret = self.store.org_secret(user.org_id)
            while True:
                code = f"{secrets.randbelow(10**8):08d}"
                try:
                    check_access_code(code)
                except StoreError:
                    continue
                h = code_hash(secret, code)
                taken = self.store.user_by_code(user.org_id, h)
                if taken is None or taken.id == user.id:
                    break
            self.store.set_access_code(user.org_id, h, user.id)
            self.store.audit(self.clock(), "admin", "code.reset", f"user:{user.id}")
        return code

    def _org_name(self, org_id: str) -> str:
        return self.store.org_name(org_id) or org_id

    # ------------------------------------------------------------------ portal: sign-in

    def _check_password(self, email: str, password: str, *, source: str,
                        org_id: str | None = None, what: str = "portal") -> User:
        """Email + password with the guessing lockout; scrypt runs outside transactions."""
        subject = _text(email, "email", max_len=254).lower()
        if not isinstance(password, str) or not password:
            raise LinkingError(ErrorCode.INVALID_FIELD, "password is required", field="password")
        pairs = [(USER_SCOPE, subject), (ADDR_SCOPE, source)]
        with self._work():
            self._check_locks(pairs, self.clock())
            user = self.store.user_by_email(subject)
            stored = self.store.password_hash(user.id) if user else None
        ok = verify_password(password, stored)
        if user is None or not ok or (org_id is not None and user.org_id != org_id):
            wrong = LinkingError(ErrorCode.INVALID_PASSWORD,
                                 "the email or password is wrong", field="password",
                                 trace=(f"{what}.wrong_password",
                                        f"user:{user.id}" if user else "-",
                                        f"from {source or '-'}"),
                                 guess=pairs)
            locked = self._after_refusal(wrong)
            raise locked or wrong
        with self.store.transaction():
            self.store.clear_failures(USER_SCOPE, subject)
        return user

    def sign_in(self, email: str, password: str, *, org_token: str | None = None,
                source: str = "") -> PortalSession:
        """Sign in to the User Portal. With the share link's ``org_token``, only that org's
        users can sign in there."""
        org_id = None
        if org_token:
            with self.store.transaction():
                org_id = self._org_of_share_token(_text(org_token, "org", max_len=256))
            if org_id is None:
                raise LinkingError(LinkCode.INVALID_TOKEN, "this sign-in link is not valid "
                                   "(any more); ask your administrator for the current one",
                                   field="org")
        user = self._check_password(email, password, source=source, org_id=org_id)
        with self._work():
            return self._open_session(user, "password" + (" via share link" if org_id else ""))

    def _open_session(self, user: User, how: str) -> PortalSession:
        now = self.clock()
        token = self._new("mfs")
        self.store.add_portal_session(token_hash(token), user.id, now, now + PORTAL_SESSION_TTL)
        self.store.audit(now, f"user:{user.id}", "portal.sign_in", f"user:{user.id}", how)
        return PortalSession(token, user, now + PORTAL_SESSION_TTL)

    def _session_user(self, token: str) -> User:
        row = self.store.portal_session(token_hash(_text(token, "session", max_len=256)))
        if row is None or row[2] or row[1] <= self.clock():
            raise LinkingError(ErrorCode.INVALID_SESSION, "your portal session has ended; "
                               "sign in again", field="session")
        return self._user(row[0])

    def session_user(self, token: str) -> User:
        with self._work():
            return self._session_user(token)

    def sign_out(self, token: str) -> None:
        with self._work():
            user = self._session_user(token)
            self.store.end_portal_session(token_hash(token))
            self.store.audit(self.clock(), f"user:{user.id}", "portal.sign_out",
                             f"user:{user.id}")

    def my_devices(self, token: str) -> tuple[User, list[ClientInstall]]:
        """The signed-in user and their linked installs (the "Set up my devices" page)."""
        with self._work():
            user = self._session_user(token)
            installs = self.store.installs_of_user(user.id)
        return user, installs

    def accept_invitation(self, token: str, password: str, *, source: str = "") -> PortalSession:
        """A User Portal invitation: choose the first password, and be signed in."""
        token = _text(token, "invitation", max_len=256)
        if not isinstance(password, str) or len(password) < MIN_PASSWORD:
            raise LinkingError(LinkCode.WEAK_PASSWORD, f"a password has at least {MIN_PASSWORD}"
                               " characters", field="password")
        if len(password) > 1024:
            raise LinkingError(LinkCode.WEAK_PASSWORD, "a password has at most 1024 characters",
                               field="password")
        hashed = hash_password(password)  # scrypt, before the transaction takes the lock
        with self._work():
            now = self.clock()
            row = self.store.one_time("invitation", token_hash(token))
            if row is None or row.spent:
                raise LinkingError(LinkCode.INVALID_TOKEN, "this invitation link is not valid "
                                   "or was used already; ask your administrator for a new one",
                                   field="invitation",
                                   trace=("invite.refused", "-", f"from {source or '-'}"))
            if row.expires_at <= now:
                raise LinkingError(LinkCode.TOKEN_EXPIRED, "this invitation has expired; ask "
                                   "your administrator for a new one", field="invitation")
            if not self.store.spend("invitation", row.id, now):
                raise LinkingError(LinkCode.INVALID_TOKEN, "this invitation was used already",
                                   field="invitation")
            user = self._user(row.owner)
            self.store.set_password_hash(user.id, hashed)
            self.store.audit(now, f"user:{user.id}", "invite.accept", f"invitation:{row.id}",
                             "password set")
            return self._open_session(user, "invitation")

    def setup_devices(self, session_token: str) -> Issued:
        """"Set up my devices": a personalised installer for the signed-in user."""
        with self._work():
            user = self._session_user(session_token)
            return self._issue_installer(user.org_id, user, "setup", SETUP_TTL,
                                         f"user:{user.id}")

    def create_linking_code(self, session_token: str) -> Issued:
        """A one-time code for the mobile app, made by the signed-in user."""
        with self._work():
            user = self._session_user(session_token)
            code, code_id = self._issue_code(user, LINKING_CODE_TTL, f"user:{user.id}")
            return Issued(code_id, code, "", self.clock() + LINKING_CODE_TTL, user)

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

    # ------------------------------------------------------------------ clients

    def register(self, installer_token: str, *, kind: str = "workstation", machine: str,
                 os_user: str = "", source: str = "") -> Registered:
        """A computer or Chromebook registers with an installer token. Personal token: linked
        now; the org's anonymous token: linked at the first print (Authenticate-on-Print)."""
        if kind not in ("workstation", "chromebook"):
            raise LinkingError(ErrorCode.INVALID_FIELD, "kind must be workstation or chromebook"
                               " (the mobile app links with a password or a linking code)",
                               field="kind")
        token = _text(installer_token, "installer_token", max_len=256)
        machine = _text(machine, "machine")
        os_user = _text(os_user, "os_user", max_len=64, required=kind == "workstation")
        with self._work():
            now = self.clock()
            row = self.store.installer_token(token_hash(token))
            if row is None or row[5]:
                raise LinkingError(LinkCode.INVALID_TOKEN, "this installer is not valid (any "
                                   "more); ask your administrator for a new one",
                                   field="installer_token",
                                   trace=("client.register_refused", "-",
                                          f"unknown installer token from {source or '-'}"))
            if row[4] <= now:
                raise LinkingError(LinkCode.TOKEN_EXPIRED, "this installer has expired; get a "
                                   "new one from your invitation or the User Portal",
                                   field="installer_token",
                                   trace=("client.register_refused", f"installer:{row[0]}",
                                          "expired"))
            user = self._user(row[2]) if row[2] else None
            self.store.count_installer_use(row[0])
            return self._register(row[1], kind, machine, os_user, user,
                                  f"installer:{row[3]}", f"installer:{row[0]}")

    def _register(self, org_id: str, kind: str, machine: str, os_user: str, user: User | None,
                  via: str, actor: str) -> Registered:
        now = self.clock()
        for old_id in self.store.seat_installs(org_id, kind, machine, os_user):
            self.store.revoke_install(old_id, now)
            self._discard_pending(old_id, now, "client replaced")
            self.store.audit(now, actor, "client.replace", f"client:{old_id}",
                             "the same seat registered again")
        token = self._new("mfu" if kind == "mobile" else "mfc")
        install = ClientInstall(new_id("ci"), org_id, kind, machine, os_user,
                                user.id if user else None, via, now, now if user else None, None)
        try:
            self.store.add_install(install, token_hash(token))
        except ConflictError:
            # Another registration of this seat committed between the revocation and this insert.
            raise LinkingError(LinkCode.CONFLICT, "this device is registering twice at once; "
                               "try again") from None
        seat = f"{kind} {machine!r}" + (f" os user {os_user!r}" if os_user else "")
        self.store.audit(now, actor, "client.register", f"client:{install.id}",
                         f"{seat}, " + (f"linked to user:{user.id}" if user else "anonymous"))
        return Registered(install, token, user, self._queues_for(install))

    def _discard_pending(self, install_id: str, now: float, why: str) -> None:
        for job in self.store.jobs_of_client(install_id, "PENDING_AUTH"):
            if self.store.delete_job(job.id, now):
                self.store.audit(now, "cloud", "job.discard", f"job:{job.id}", why)
        self.store.close_auth_requests(install_id, now)

    def _install_by_token(self, token: str) -> ClientInstall:
        install = self.store.install_by_token(token_hash(_text(token, "token", max_len=256)))
        if install is None:
            raise LinkingError(LinkCode.INVALID_TOKEN, "this client is not registered (or was "
                               "replaced or revoked); link it again", field="token")
        return install

    def client_state(self, token: str) -> ClientState:
        """What a client shows: who it is linked to, its queues, the user's held jobs."""
        with self._work():
            install = self._install_by_token(token)
            user = self._user(install.user_id) if install.user_id else None
            held: list[Job] = []
            total = 0
            if user is not None:
                held, total = self.store.held_jobs(user.id, 0, 50, self.clock())
            queues = self._queues_for(install)
        return ClientState(install, user, queues, tuple(held), total)

    def submit(self, token: str, name: str, data: bytes, *, pages: int = 1, color: bool = False,
               duplex: bool = False, copies: int = 1, queue: str | None = None,
               sha256: str | None = None) -> Submitted:
        """A job from a client. The owner is the install's user, from the token alone. An
        unlinked install's job waits PENDING_AUTH behind a one-time sign-in link."""
        name = _text(name, "name", max_len=255)
        if not data:
            raise LinkingError(ErrorCode.INVALID_FIELD, "the document is empty", field="document")
        if len(data) > self.max_document:
            raise LinkingError(ErrorCode.TOO_LARGE, f"the document is larger than "
                               f"{self.max_document} bytes", field="document")
        for value, what, top in ((pages, "pages", 100_000), (copies, "copies", 999)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise LinkingError(ErrorCode.INVALID_FIELD, f"{what} must be 1 to {top}",
                                   field=what)
        digest = hashlib.sha256(data).hexdigest()
        if sha256 is not None and not hmac.compare_digest(sha256.lower(), digest):
            raise LinkingError(LinkCode.CHECKSUM_MISMATCH, "the document does not match its "
                               "SHA-256; it was damaged on the way", field="sha256")
        with self._work():
            now = self.clock()
            install = self._install_by_token(token)
            queues = self._queues_for(install)
            queue = queue or DEFAULT_QUEUE
            if queue not in queues:
                raise LinkingError(LinkCode.UNKNOWN_QUEUE, f"queue {queue!r} is not deployed to "
                                   "this client", field="queue")
            settings = self.store.org_settings(install.org_id)
            source = {"workstation": install.machine, "chromebook": "Chromebook",
                      "mobile": "Mobile app"}[install.kind][:40]
            actor = f"client:{install.id}"
            if install.user_id is not None:
                user = self._user(install.user_id)
                job_id = self.store.add_job(
                    user.id, name, data, digest, pages=pages, color=color, duplex=duplex,
                    copies=copies, source=source, submitted_at=now,
                    expires_at=now + settings.hold_hours * 3600, client_id=install.id)
                self.store.audit(now, actor, "job.submit", f"job:{job_id}",
                                 f"owner user:{user.id}, queue {queue!r}, {len(data)} bytes")
                return Submitted(job_id, "HELD", len(data), digest, user,
                                 message=f"held for {user.display_name}")
            job_id = self.store.add_job(None, name, data, digest, pages=pages, color=color,
                                        duplex=duplex, copies=copies, source=source,
                                        submitted_at=now, expires_at=now + AOP_TTL,
                                        state="PENDING_AUTH", client_id=install.id)
            request = self._new("mfa")
            request_id = new_id("ar")
            self.store.add_auth_request(request_id, token_hash(request), install.id, job_id, now,
                                        now + AOP_TTL)
            self.store.audit(now, actor, "job.pending_auth", f"job:{job_id}",
                             f"auth request {request_id}, {len(data)} bytes")
            after = ("your document then waits for you at the copier"
                     if settings.aop_pending == "join" else
                     "then print your document again")
            return Submitted(job_id, "PENDING_AUTH", len(data), digest, None,
                             sign_in_url=f"{self._base()}/portal/aop#request={request}",
                             message="Sign in to link this computer to your account; " + after)

    # ------------------------------------------------------------------ Authenticate-on-Print

    def _auth_request(self, request: str) -> tuple[str, ClientInstall, float]:
        row = self.store.one_time("auth_request",
                                  token_hash(_text(request, "request", max_len=256)))
        if row is None or row.spent:
            raise LinkingError(LinkCode.INVALID_TOKEN, "this sign-in link is not valid or was "
                               "used already; print again to get a new one", field="request",
                               trace=("aop.refused", "-", "unknown or used auth request"))
        if row.expires_at <= self.clock():
            raise LinkingError(LinkCode.TOKEN_EXPIRED, "this sign-in link has expired; print "
                               "again to get a new one", field="request")
        inst = self.store.install(row.owner)
        if inst is None or inst.revoked_at is not None:
            raise LinkingError(LinkCode.INVALID_TOKEN, "this computer's printer was removed; "
                               "print again", field="request")
        return row.id, inst, row.expires_at

    def aop_request(self, session_token: str, request: str) -> AuthRequest:
        """What the user is about to confirm: which machine and OS user, which jobs."""
        with self._work():
            user = self._session_user(session_token)
            _rid, install, expires = self._auth_request(request)
            if install.org_id != user.org_id:
                raise LinkingError(ErrorCode.NOT_ALLOWED, "this computer belongs to another "
                                   "organisation", field="request")
            pending = self.store.jobs_of_client(install.id, "PENDING_AUTH")
            policy = self.store.org_settings(install.org_id).aop_pending
        return AuthRequest(install, tuple(j.name for j in pending), policy, expires)

    def aop_confirm(self, session_token: str, request: str) -> AopOutcome:
        """The signed-in user confirms: the install is theirs from now on; its pending jobs
        join their queue or are discarded, per the org's policy."""
        with self._work():
            user = self._session_user(session_token)
            request_id, install, _expires = self._auth_request(request)
            now = self.clock()
            if install.org_id != user.org_id:
                raise LinkingError(ErrorCode.NOT_ALLOWED, "this computer belongs to another "
                                   "organisation", field="request", actor=f"user:{user.id}",
                                   trace=("aop.refused", f"client:{install.id}", "other org"))
            # Guarded: of two people racing with two sign-in links of one install, one wins.
            if not self.store.link_install(install.id, user.id, now, "aop"):
                raise LinkingError(LinkCode.INVALID_TOKEN, "this computer is linked already",
                                   field="request")
            self.store.close_auth_requests(install.id, now)
            self.store.set_auth_request_user(request_id, user.id)
            settings = self.store.org_settings(install.org_id)
            joined: list[str] = []
            discarded: list[str] = []
            for job in self.store.jobs_of_client(install.id, "PENDING_AUTH"):
                if settings.aop_pending == "join":
                    # Guarded too: a job that expired meanwhile stays expired.
                    if self.store.adopt_pending_job(
                            job.id, user.id, job.submitted_at + settings.hold_hours * 3600, now):
                        joined.append(job.id)
                        self.store.audit(now, f"user:{user.id}", "job.join", f"job:{job.id}",
                                         f"owner user:{user.id} after sign-in")
                elif self.store.delete_job(job.id, now):
                    discarded.append(job.id)
                    self.store.audit(now, "cloud", "job.discard", f"job:{job.id}",
                                     "print again after sign-in (org policy)")
            linked = _install_with_user(install, user.id, now)
            self.store.audit(now, f"user:{user.id}", "client.link", f"client:{install.id}",
                             f"Authenticate-on-Print, {len(joined)} joined, "
                             f"{len(discarded)} discarded")
        if joined:
            message = (f"This computer is linked to you. {len(joined)} document(s) wait for you "
                       "at the copier.")
        elif discarded:
            message = ("This computer is linked to you. Please print your document again: "
                       "it will then wait for you at the copier.")
        else:
            message = "This computer is linked to you."
        return AopOutcome(linked, user, tuple(joined), tuple(discarded), message)

    # ------------------------------------------------------------------ mobile

    def mobile_sign_in(self, email: str, password: str, *, app_id: str,
                       source: str = "") -> Registered:
        """The mobile app links with the user's email and password."""
        app_id = _text(app_id, "app_id")
        user = self._check_password(email, password, source=source, what="mobile")
        with self._work():
            return self._register(user.org_id, "mobile", app_id, "", user, "mobile:password",
                                  f"user:{user.id}")

    def mobile_link_code(self, code: str, *, app_id: str, source: str = "") -> Registered:
        """The mobile app links with a one-time linking code."""
        app_id = _text(app_id, "app_id")
        code = _text(code, "linking_code", max_len=32)
        pairs = [(ADDR_SCOPE, source)]
        with self._work():
            now = self.clock()
            self._check_locks(pairs, now)
            row = self.store.one_time("linking_code", _code_hash(code))
            if row is None or row.spent or row.expires_at <= now:
                raise LinkingError(LinkCode.INVALID_CODE, "this linking code is not valid; make "
                                   "a new one in the User Portal", field="linking_code",
                                   trace=("mobile.wrong_code",
                                          f"code:{row.id}" if row else "-",
                                          f"from {source or '-'}"),
                                   guess=pairs)
            if not self.store.spend("linking_code", row.id, now):
                raise LinkingError(LinkCode.INVALID_CODE, "this linking code was used already",
                                   field="linking_code")
            user = self._user(row.owner)
            return self._register(user.org_id, "mobile", app_id, "", user, "mobile:code",
                                  f"user:{user.id}")

    # ------------------------------------------------------------------ housekeeping

    def purge(self) -> int:
        """Forget sessions, codes and sign-in links a day past their expiry."""
        before = self.clock() - DAY
        with self.store.transaction():
            return self.store.purge_linking(before)


def _install_with_user(install: ClientInstall, user_id: str, now: float) -> ClientInstall:
    return ClientInstall(install.id, install.org_id, install.kind, install.machine,
                         install.os_user, user_id, "aop", install.created_at, now, None)


def _locked(scope: str, until: float, now: float) -> LinkingError:
    who = "this account" if scope == USER_SCOPE else "your address"
    return LinkingError(ErrorCode.LOCKED_OUT, f"too many wrong attempts: {who} is locked until "
                        f"{time.strftime('%H:%M', time.localtime(until))}",
                        retry_after=max(1, math.ceil(until - now)))


# ---------------------------------------------------------------------------- import

def _parse_import(text: str, *, tab: bool) -> list[_Row]:
    if text.startswith("\ufeff"):  # a spreadsheet's byte order mark
        text = text[1:]
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = "\t" if tab or "\t" in first else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows: list[_Row] = []
    header_seen = False
    for cells in reader:
        line = reader.line_num
        cells = [c.strip() for c in cells]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if not header_seen and not rows and cells[0].lower() in ("email", "e-mail"):
            header_seen = True
            continue
        padded = [*cells, "", "", "", ""]
        row = _Row(line, padded[0], padded[1], padded[2], padded[3])
        if len(cells) > 4 and any(cells[4:]):
            row.errors.append(f"{len(cells)} columns; expected email, display name, card "
                              "number, access code")
        rows.append(row)
    return rows


def _check_rows(rows: list[_Row]) -> None:
    seen: dict[str, int] = {}
    cards: dict[str, int] = {}
    codes: dict[str, int] = {}
    for r in rows:
        r.email = r.email.lower()
        if not _EMAIL_RE.fullmatch(r.email) or len(r.email) > 254:
            r.errors.append(f"{r.email!r} is not an email address")
        elif r.email in seen:
            r.errors.append(f"{r.email} is on line {seen[r.email]} already")
        else:
            seen[r.email] = r.line
        if not r.name or len(r.name) > 128 or _CONTROL_RE.search(r.name):
            r.errors.append("the display name is missing or longer than 128 characters")
        if r.card:
            if len(r.card) > 64 or not r.card.isprintable() or " " in r.card:
                r.errors.append("the card number must be up to 64 characters without spaces")
            elif r.card in cards:
                r.errors.append(f"the card is on line {cards[r.card]} already")
            else:
                cards[r.card] = r.line
        if r.code:
            try:
                check_access_code(r.code)
            except StoreError as exc:
                r.errors.append(exc.message)
            else:
                if r.code in codes:
                    r.errors.append(f"the access code is on line {codes[r.code]} already")
                codes.setdefault(r.code, r.line)
    if not rows:
        raise LinkingError(LinkCode.IMPORT_INVALID, "the file has no users")


def _bad_rows(rows: list[_Row]) -> list[str]:
    return [f"line {r.line}: {', and '.join(r.errors)}" for r in rows if r.errors]


def _import_message(name: str, bad: list[str]) -> str:
    # One line (the CLI's errors are one line each); rows are set apart by " | ".
    shown = bad[:20] + ([f"... and {len(bad) - 20} more"] if len(bad) > 20 else [])
    return f"{name or 'the import'}: nothing imported; fix these rows: " + " | ".join(shown)

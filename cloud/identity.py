"""Where a number becomes a user: badge, access code, username + password, badge + PIN, and the
session a copier then holds.

Theory of operation
-------------------
A device asks "who is this?" with what its reader or keypad produced (protocol ``identify``), or
links a badge to whoever proves who they are (``associate``). The answer is a session: an opaque
random token the store keeps only as SHA-256, bound to (device, user), with a sliding expiry; a
token presented by another device is refused and audited.

* Card numbers and access codes are looked up by their keyed hash under the device's org's
  secret (cloud/hashing.py): the store never sees one in clear.
* A technician's badge or code (cloud/admin.py issues them, under the same hashes) is looked
  up after the users': it answers with ``role`` "technician", no user, and a session that opens
  nothing (:data:`NO_SESSION`), so the copier shows its diagnostics screen and no one's jobs.
  Each use is audited with the device. A technician's code is a guess like any other: wrong
  ones count towards the device's lockout, and a locked device refuses technicians too.
* Badge lookups are throttled per device and per org (cloud/throttle.py): unknown badges spend
  tokens, and once a bucket is empty every badge lookup from that device (or org) is refused
  alike, known badges included, *before* the card is looked at, so the answer cannot tell a
  card from a non-card.
* A card number or access code that proves who someone is passes here in clear: its offline
  verifier is recorded then if the store has none (cloud/offline.py), and so is "this user
  signed in at this device", for the offline bundles' "recent" policy.
* Guessing (codes, passwords, PINs) counts against the device and, where one is named, the
  user; past :data:`MAX_FAILURES` within :data:`FAILURE_WINDOW` the scope is locked for
  :data:`LOCK_SECONDS`. Failures and locks are stored, so they survive a restart and are shared
  by every worker. The portal's password sign-in (cloud/linking/signin.py) draws on the same
  ``user`` budget.

Every method runs inside the caller's store transaction (cloud/service.py opens one per
request); a refusal is :class:`Refused`, which the service turns into an error answer. An
``identify`` transaction commits without waiting for the disk (cloud/storage/durability.py):
a session or a sign-in's audit row lost in a database crash costs a second tap. What must
outlast a crash (a wrong guess towards a lockout, a throttle started) makes it durable. A badge
with no PIN is looked up, and signed in or counted as unknown, by one call to the store
(cloud/storage/sign_in.py ``card_sign_in``); on PostgreSQL that is one statement committing by
itself before the rest of the request begins its transaction.
"""

from __future__ import annotations

import logging
import math
import re
import time
import typing
from collections.abc import Callable

from cloud import offline
from cloud.hashing import card_hash, code_hash, new_token, token_hash, verify_password
from cloud.refusal import Refused, shown
from cloud.storage.durability import commit_durably
from cloud.storage.port import MAX_CARDS_PER_USER, Store, Technician, User
from cloud.storage.sign_in import (
    Budget,
    CardBudgets,
    CardSession,
    NewSession,
    ThrottleHit,
    UnknownCard,
    card_lookup,
    card_sign_in,
    sign_in,
    take_unknown_count,
    use_session,
)
from cloud.throttle import THROTTLES, UNKNOWN_AUDIT_EVERY, ThrottlePolicy, Throttles
from protocol import messages as m
from protocol.errors import ErrorCode, StoreError

log = logging.getLogger(__name__)

DEFAULT_SESSION_TTL = 300.0
#: Guessing: this many wrong codes or passwords for one user, or from one device, within the
#: window lock that user (for passwords) or device (for codes and passwords) for LOCK_SECONDS.
MAX_FAILURES = 5
FAILURE_WINDOW = 600.0
LOCK_SECONDS = 900.0
MIN_PASSWORD = 8

#: The ``session`` of a technician's answer: the field is required on the wire (older devices
#: decode it), but a technician gets no session; this one is stored nowhere, so a device that
#: does not know the role and asks for jobs with it is told the session has ended.
NO_SESSION = "-"
TECHNICIAN_NAME = "Technician"

CODE_RE = re.compile(r"^[0-9A-Za-z]{6,10}$")
_RUNS = "0123456789", "abcdefghijklmnopqrstuvwxyz"


def check_access_code(code: str) -> str:
    """6-10 letters or digits, and not trivially guessable: no single repeated character and no
    straight run up or down (000000, 123456, 987654, abcdef)."""
    if not CODE_RE.fullmatch(code):
        raise StoreError("an access code is 6 to 10 letters or digits", code="code_invalid")
    low = code.lower()
    if len(set(low)) == 1 or any(low in run or low in run[::-1] for run in _RUNS):
        raise StoreError("that access code is too easy to guess; choose another",
                         code="code_trivial")
    return code


def check_language(tag: str) -> str:
    """A user's preferred language as given (trimmed), if it is a language tag ("de", "ja",
    "fr-CH"; "" for none): the shape an identify answer may carry (protocol.messages)."""
    tag = tag.strip()
    if not m.is_language_tag(tag):
        raise StoreError(f"{tag!r} is not a language tag; give one such as \"de\", \"ja\" or "
                         "\"fr-CH\" (or \"\" for none)", code="invalid_field")
    return tag


def _bucket(scope: str, subject: str, policy: ThrottlePolicy) -> Budget:
    """The store's view of a policy's bucket for ``subject``."""
    return Budget(scope, subject, policy.interval, policy.headroom)


class Identity:
    """Identification, badge self-association, lockout and sessions over the storage port."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 session_ttl: float = DEFAULT_SESSION_TTL,
                 new_token: Callable[[], str] = new_token,
                 throttles: Throttles = THROTTLES) -> None:
        self.store = store
        self.clock = clock
        self.session_ttl = session_ttl
        self.new_token = new_token
        self.throttles = throttles
        self._device_orgs: dict[str, tuple[str, float]] = {}
        self._org_secrets: dict[str, bytes] = {}
        #: The store's offline-mode side, if it has one (cloud/offline.py).
        self._offline = offline.with_offline(store)
        self._lately = offline.Lately()

    def org_of(self, device_id: str) -> str:
        """The org of a registered device, or refused ``unknown_device``."""
        return self._org_of(device_id)

    def org_secret(self, org_id: str) -> bytes:
        return self._secret(org_id)

    def _remember(self, org_id: str, kind: str, cred_hash: str, value: str) -> None:
        """A card number or code is in clear here: its offline verifier, if missing
        (cloud/offline.py; one scrypt, then never again for that credential)."""
        if self._offline is not None:
            offline.remember(self._offline, self._secret(org_id), org_id, kind, cred_hash,
                             value, self.clock(), self._lately)

    def _org_of(self, device_id: str) -> str:
        # A device's org is read once a minute at most: it is on every identify's path, and a
        # device moves between orgs only by re-registration.
        now = time.monotonic()
        cached = self._device_orgs.get(device_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        org_id = self.store.device_org(device_id)
        if org_id is None:
            raise Refused(ErrorCode.UNKNOWN_DEVICE,
                          f"device {device_id} is not registered; ask an administrator")
        if len(self._device_orgs) > 10_000:
            self._device_orgs.clear()
        self._device_orgs[device_id] = (org_id, now + 60.0)
        return org_id

    def _secret(self, org_id: str) -> bytes:
        # An org's secret never changes (every stored card hash depends on it).
        secret = self._org_secrets.get(org_id)
        if secret is None:
            secret = self._org_secrets[org_id] = self.store.org_secret(org_id)
        return secret

    def identify(self, device_id: str, req: m.Identify) -> m.IdentifyResult:
        org_id = self._org_of(device_id)
        if req.method == "card":
            # The throttle and the card in one read, and a known card's sign-in with it where
            # there is no PIN to check first; while a throttle holds, no user comes back and the
            # answer is the throttle's, whatever the card.
            now = self.clock()
            h = card_hash(self._secret(org_id), req.value)
            token, budget, ahead, unknown = "", None, None, None
            if req.pin is None:
                token, budget = self.new_token(), self._budget(device_id)
                hit, user, tech, ahead, unknown = card_sign_in(
                    self.store, device_id, org_id, h, self._card_budgets(device_id, org_id),
                    CardSession(token_hash(token), now + self.session_ttl, req.method), now)
            else:
                hit, user, tech = card_lookup(self.store, device_id, org_id, h, now)
            if hit is not None:
                self._refuse_throttled(hit, now)
            if user is None:
                if tech is None:
                    if unknown is None:
                        self._unknown_card(device_id, org_id)
                    else:
                        self._unknown_counted(device_id, org_id, unknown, now)
                    raise Refused(ErrorCode.UNKNOWN_CARD, "this card is not known", "value")
                if req.pin is not None:
                    # A technician's badge has no PIN: where the copier asks for one, the
                    # technician's code is the way in, and a PIN typed here is a wrong guess.
                    now = self.clock()
                    self._check_lock("device", device_id, now)
                    self._failed_guess(now, device_id, None, "pin")
                    raise Refused(ErrorCode.WRONG_PIN, "the PIN does not match this badge",
                                  "pin")
                return self._technician(device_id, tech, req.method)
            if req.pin is not None:
                self._check_pin(device_id, org_id, user, req.pin)
                # A token of the device's sign-in budget, spent with the session's writes.
                answer = self._login(device_id, user, req.method, budget=True)
            else:
                assert ahead is not None  # a user's card, no PIN: the sign-in was made
                answer = self._signed_in(device_id, user, token, budget, ahead, now)
            self._remember(org_id, "card", h, req.value)
            return answer
        else:
            who = self._prove(device_id, org_id, req.method, req.value, req.username,
                              technicians=True)
            if isinstance(who, Technician):
                return self._technician(device_id, who, req.method)
            user = who
        return self._login(device_id, user, req.method)

    def _technician(self, device_id: str, tech: Technician, method: str) -> m.IdentifyResult:
        """A technician at a copier: audited with the device, answered with the role and no
        user, jobs or session."""
        self.store.audit(self.clock(), f"device:{device_id}", "technician.use",
                         f"technician:{tech.id}", method)
        log.info("technician %s at device %s", tech.id, device_id)
        return m.IdentifyResult(session=NO_SESSION, user_id=tech.id,
                                display_name=TECHNICIAN_NAME, expires_in=0,
                                role=m.ROLE_TECHNICIAN)

    def _check_throttle(self, device_id: str, org_id: str) -> None:
        """Refuse every badge lookup while this device or its org is throttled, before the
        card is looked at: the answer must not depend on the card."""
        now = self.clock()
        hit = self.store.throttled(device_id, org_id, now)
        if hit is not None:
            self._refuse_throttled(hit, now)

    def _refuse_throttled(self, hit: ThrottleHit, now: float) -> typing.NoReturn:
        scope, _subject, until = hit
        raise Refused(ErrorCode.THROTTLED, self._throttled_message(scope, until),
                      retry_after=max(1, math.ceil(until - now)))

    def _throttled_message(self, scope: str, until: float) -> str:
        when = time.strftime("%H:%M", time.localtime(until))
        where = "at this copier" if scope == "device" else "in your organisation"
        return f"too many badge attempts {where}: badge sign-in is paused until {when}"

    def _unknown_card(self, device_id: str, org_id: str) -> None:
        """An unknown badge: audited in aggregate, and a token of the device's and the org's
        bucket. The one that finds a bucket empty starts the throttle and is answered by it."""
        now = self.clock()
        n = self.store.unknown_card_to_audit(device_id, now, UNKNOWN_AUDIT_EVERY)
        if n:
            self.store.audit(now, f"device:{device_id}", "identify.unknown_card", "-",
                             f"{n} unknown card(s)", org_id=org_id)
        for scope, subject, policy in (("device", device_id, self.throttles.device),
                                       ("org", org_id, self.throttles.org)):
            self._spend(scope, scope, subject, policy, self._unknown_why(policy))

    def _unknown_counted(self, device_id: str, org_id: str, unknown: UnknownCard,
                         now: float) -> None:
        """:meth:`_unknown_card` where the store has counted the badge and spent its tokens
        with the lookup: the audit row if one is due, the throttle if a bucket was empty."""
        before = now - UNKNOWN_AUDIT_EVERY
        if unknown.unaudited and unknown.audited_at <= before:
            n = take_unknown_count(self.store, device_id, unknown.unaudited, now, before)
            if n:
                self.store.audit(now, f"device:{device_id}", "identify.unknown_card", "-",
                                 f"{n} unknown card(s)", org_id=org_id)
        for scope, subject, policy, ahead in (
                ("device", device_id, self.throttles.device, unknown.device_ahead),
                ("org", org_id, self.throttles.org, unknown.org_ahead)):
            # The org's token is not spent once the device's bucket is empty: that one throttles.
            assert ahead is not None, "the org's token is spent within the device's limit"
            if ahead > policy.headroom:
                self._over_budget(scope, subject, policy, self._unknown_why(policy), now)

    @staticmethod
    def _unknown_why(policy: ThrottlePolicy) -> str:
        return (f"more than {policy.burst} unknown badges at once or "
                f"{60 / policy.interval:g} a minute")

    def _card_budgets(self, device_id: str, org_id: str) -> CardBudgets:
        return CardBudgets(self._budget(device_id),
                           _bucket("device", device_id, self.throttles.device),
                           _bucket("org", org_id, self.throttles.org))

    def _spend(self, scope: str, bucket: str, subject: str, policy: ThrottlePolicy,
               why: str) -> None:
        """A token of ``bucket`` (a scope's own bucket, or a device's "login" bucket); the one
        that finds it empty starts the throttle of ``scope`` and is answered by it."""
        now = self.clock()
        ahead = self.store.spend_token(bucket, subject, now, policy.interval)
        if ahead <= policy.headroom:
            return
        self._over_budget(scope, subject, policy, why, now)

    def _over_budget(self, scope: str, subject: str, policy: ThrottlePolicy, why: str,
                     now: float) -> typing.NoReturn:
        """The token that found the bucket empty: start the throttle of ``scope`` (audited
        once, by the worker that starts it) and refuse."""
        until = now + policy.duration
        commit_durably(self.store)  # a throttle started survives a crash
        if self.store.start_throttle(scope, subject, now, until):
            self.store.audit(now, "cloud", "throttle", f"{scope}:{subject}",
                             f"{why}; badge sign-in paused {policy.duration / 60:g} min")
            log.warning("%s %s throttled for %g s: %s", scope, subject, policy.duration, why)
        raise Refused(ErrorCode.THROTTLED, self._throttled_message(scope, until),
                      retry_after=math.ceil(policy.duration))

    def _login(self, device_id: str, user: User, method: str, note: str = "", *,
               budget: bool = False) -> m.IdentifyResult:
        """A session for ``user`` at this device, audited. ``budget``: first a token of the
        device's badge sign-in budget; none left, the throttle starts and nothing else is
        written (one call to the store either way: cloud/storage/sign_in.py)."""
        now = self.clock()
        token = self.new_token()
        spend = self._budget(device_id) if budget else None
        # The org named: saves the store a look-up of the user's org for the audit row.
        session = NewSession(token_hash(token), device_id, user.id, now + self.session_ttl,
                             user.org_id, method)
        ahead = sign_in(self.store, spend, session, now)
        return self._signed_in(device_id, user, token, spend, ahead, now, note)

    def _budget(self, device_id: str) -> Budget:
        """The device's badge sign-in budget (a token per sign-in)."""
        return _bucket("login", device_id, self.throttles.login)

    def _signed_in(self, device_id: str, user: User, token: str, spend: Budget | None,
                   ahead: float, now: float, note: str = "") -> m.IdentifyResult:
        """The answer to a sign-in the store has made (``ahead``: how far ``spend``'s bucket
        runs ahead; past its limit no session was made, and the throttle starts)."""
        if spend is not None and ahead > spend.limit:
            login = self.throttles.login
            self._over_budget("device", device_id, login,
                              f"more than {login.burst} badge sign-ins at once or "
                              f"{60 / login.interval:g} a minute", now)
        # Who signed in where, for offline mode's "recent" policy (cloud/offline.py).
        if self._offline is not None:
            offline.note_sign_in(self._offline, device_id, user.id, now, self._lately)
        # A tag the contract cannot carry (written into the store by hand) is not sent: the
        # user still signs in, in the copier's language.
        language = user.language if m.is_language_tag(user.language) else ""
        return m.IdentifyResult(session=token, user_id=user.id,
                                display_name=shown(user.display_name),
                                expires_in=int(self.session_ttl), note=note, language=language)

    @typing.overload
    def _prove(self, device_id: str, org_id: str, method: str, value: str,
               username: str | None) -> User: ...

    @typing.overload
    def _prove(self, device_id: str, org_id: str, method: str, value: str,
               username: str | None, *, technicians: bool) -> User | Technician: ...

    def _prove(self, device_id: str, org_id: str, method: str, value: str,
               username: str | None, *, technicians: bool = False) -> User | Technician:
        """Who is this, by access code or username + password, with the guessing lockout.
        ``technicians``: a technician's code answers too (identify, not self-association:
        a technician's code links no badge)."""
        now = self.clock()
        self._check_lock("device", device_id, now)
        if method == "code":
            h = code_hash(self._secret(org_id), value)
            user = self.store.user_by_code(org_id, h)
            tech = self.store.technician_by_secret(org_id, "code", h) \
                if user is None and technicians else None
            if tech is not None:
                return tech
            if user is None:
                self._failed_guess(now, device_id, None, "code")
                raise Refused(ErrorCode.UNKNOWN_CODE, "this access code is not known", "value")
            self._remember(org_id, "code", h, value)
            return user
        if not username:
            raise Refused(ErrorCode.INVALID_FIELD, "username is required with a password",
                          "username")
        subject = username.strip().lower()
        self._check_lock("user", subject, now)
        user = self.store.user_by_email(subject)
        ok = verify_password(value, self.store.password_hash(user.id) if user else None)
        if user is None or user.org_id != org_id or not ok:
            self._failed_guess(now, device_id, subject, "password")
            raise Refused(ErrorCode.INVALID_PASSWORD, "the username or password is wrong",
                          "value")
        self.store.clear_failures("user", subject)
        return user

    def _check_pin(self, device_id: str, org_id: str, user: User, pin: str) -> None:
        """Card + PIN: the PIN is the user's access code. Wrong PINs count as guesses against
        the user (a stolen badge gives five tries) and the device."""
        now = self.clock()
        self._check_lock("device", device_id, now)
        self._check_lock("user", user.email, now)
        h = code_hash(self._secret(org_id), pin)
        owner = self.store.user_by_code(org_id, h)
        if owner is None or owner.id != user.id:
            self._failed_guess(now, device_id, user.email, "pin")
            raise Refused(ErrorCode.WRONG_PIN, "the PIN does not match this badge", "pin")
        self._remember(org_id, "code", h, pin)

    def _check_lock(self, scope: str, subject: str, now: float) -> None:
        until = self.store.locked_until(scope, subject, now)
        if until is not None:
            raise Refused(ErrorCode.LOCKED_OUT, self._locked_message(scope, until),
                          retry_after=math.ceil(until - now))

    def _locked_message(self, scope: str, until: float) -> str:
        when = time.strftime("%H:%M", time.localtime(until))
        who = "this copier" if scope == "device" else "this account"
        return f"too many wrong attempts: {who} is locked until {when}"

    def _failed_guess(self, now: float, device_id: str, user: str | None, method: str) -> None:
        # Counts towards a lockout: kept through a crash, even in a sign-in's lazy transaction.
        commit_durably(self.store)
        self.store.audit(now, f"device:{device_id}", f"identify.wrong_{method}",
                         f"user:{user}" if user else "-")
        for scope, subject in (("device", device_id), ("user", user)):
            if subject is None:
                continue
            if self.store.record_failure(scope, subject, now, FAILURE_WINDOW) >= MAX_FAILURES:
                until = now + LOCK_SECONDS
                self.store.lock(scope, subject, until)
                self.store.clear_failures(scope, subject)
                self.store.audit(now, "cloud", "lockout", f"{scope}:{subject}",
                                 f"{MAX_FAILURES} wrong {method}s within "
                                 f"{FAILURE_WINDOW / 60:g} min")
                raise Refused(ErrorCode.LOCKED_OUT, self._locked_message(scope, until),
                              retry_after=math.ceil(LOCK_SECONDS))

    def associate(self, device_id: str, req: m.Associate) -> m.IdentifyResult:
        org_id = self._org_of(device_id)
        # A badge lookup too: "someone else's badge" tells cards from non-cards.
        self._check_throttle(device_id, org_id)
        secret = self._secret(org_id)
        h = card_hash(secret, req.card)
        owner = self.store.user_by_card(org_id, h)
        user = self._prove(device_id, org_id, req.method, req.value, req.username)
        now = self.clock()
        if self.store.technician_by_secret(org_id, "badge", h) is not None:
            # Users are looked up first: linked to a user, a technician's badge would sign in
            # as that user (and show their jobs) instead of opening the diagnostics.
            self.store.audit(now, f"device:{device_id}", "card.associate_refused",
                             f"user:{user.id}", "card is a technician's badge")
            raise Refused(ErrorCode.NOT_ALLOWED, "this card can't be linked; ask your "
                          "administrator", "card")
        if owner is not None and owner.id != user.id:
            self.store.audit(now, f"device:{device_id}", "card.associate_refused",
                             f"user:{user.id}", "card belongs to another user")
            self._unknown_card(device_id, org_id)
            raise Refused(ErrorCode.NOT_ALLOWED, "this card belongs to someone else; ask your "
                          "administrator", "card")
        note = "Your card is linked: next time, just tap it."
        if owner is None:
            cards = self.store.user_cards(user.id)
            if len(cards) >= MAX_CARDS_PER_USER:
                if self.store.org_settings(org_id).card_policy == "refuse":
                    raise Refused(ErrorCode.CARD_LIMIT, f"you have {len(cards)} cards already; "
                                  "ask your administrator to remove one", "card")
                self.store.remove_card(org_id, cards[0][0])
                self.store.audit(now, f"user:{user.id}", "card.replaced", f"user:{user.id}",
                                 "oldest card replaced by self-association")
                note = "Your card is linked; it replaces your oldest card."
            self.store.add_card(org_id, h, user.id, now)
            self.store.audit(now, f"device:{device_id}", "card.self_associate",
                             f"user:{user.id}", req.method)
        self._remember(org_id, "card", h, req.card)
        return self._login(device_id, user, f"associate:{req.method}", note)

    def session_user(self, device_id: str, token: str) -> User:
        now = self.clock()
        h = token_hash(token)
        session, user = use_session(self.store, device_id, h, now, now + self.session_ttl)
        if session is None or session.ended or session.expires_at <= now:
            raise Refused(ErrorCode.INVALID_SESSION, "the session has ended; log in again",
                          "session")
        if session.device_id != device_id:
            self.store.audit(now, f"device:{device_id}", "session.wrong_device",
                             f"user:{session.user_id}", f"bound to {session.device_id}")
            raise Refused(ErrorCode.WRONG_DEVICE, "this session belongs to another device",
                          "session")
        if user is None:
            raise Refused(ErrorCode.INVALID_SESSION, "the session's user no longer exists",
                          "session")
        return user

    def logout(self, device_id: str, req: m.Logout) -> m.Ack:
        user = self.session_user(device_id, req.session)
        self.store.end_session(token_hash(req.session))
        self.store.audit(self.clock(), f"device:{device_id}", "logout", f"user:{user.id}",
                         org_id=user.org_id)
        return m.Ack(of=req.TYPE)

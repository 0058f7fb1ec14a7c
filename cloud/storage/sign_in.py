"""A badge sign-in in fewer trips to the store: the two steps of cloud/identity.py that every
badge takes, each one call here instead of two or three.

* :func:`card_lookup`: the throttle in force on the device or its org, the card's user and, for
  a card no user has, the technician whose badge it is, in one read. Neither is returned while
  a throttle holds: the answer still cannot tell a card from a non-card.
* :func:`sign_in`: a token of the sign-in budget, then (within budget) the session and the
  sign-in's audit row; one statement on PostgreSQL.
* :func:`card_sign_in`: both for a badge with no PIN to check, the whole of a known badge's
  sign-in. On PostgreSQL it is one statement that commits by itself, where the caller's lazy
  transaction has sent nothing yet (cloud/storage/postgres.py): a known badge then costs one
  round trip, not four (BEGIN, lookup, sign-in, COMMIT).
* :func:`use_session`: a device's session checked, its user read and its sliding expiry moved
  (every list of held jobs); on PostgreSQL one statement where nothing has been sent yet.

PostgreSQL implements both (cloud/storage/sql_sign_in.py, cloud/storage/postgres.py), where
each statement is a round trip to the server; a store without them (SQLite: in process, no
round trips to save) gets the same effect from the port's own calls. They are not in the
:class:`~cloud.storage.port.Store` protocol yet.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

from cloud.storage.capability import implements
from cloud.storage.port import Session, Store, Technician, User

#: (scope, subject, until) of a throttle in force, as ``Store.throttled`` answers.
ThrottleHit = tuple[str, str, float]


class CardLookup(NamedTuple):
    """What a badge is: refused by a throttle in force (then nothing else is said), a user's,
    a technician's (only where no user has it: users are looked up first), or unknown."""

    throttle: ThrottleHit | None
    user: User | None = None
    technician: Technician | None = None


@dataclass(frozen=True, slots=True)
class Budget:
    """The bucket a sign-in spends a token of, and how far its arrival time may run ahead of
    now (seconds) for the sign-in to go ahead (cloud/throttle.py)."""

    scope: str
    subject: str
    interval: float
    limit: float


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session to create, with the sign-in's audit row."""

    token_hash: str
    device_id: str
    user_id: str
    expires_at: float
    org_id: str
    method: str


class UnknownCard(NamedTuple):
    """An unknown badge counted and its tokens spent, where the store does that with the
    lookup: how far the device's bucket runs ahead, the org's (None: not spent, the device's
    was past its limit), and the device's unknown badges not yet audited, last audited when."""

    device_ahead: float
    org_ahead: float | None
    unaudited: int
    audited_at: float


class CardSignIn(NamedTuple):
    """:class:`CardLookup`, and for a user's card how far the sign-in budget now runs ahead
    (``ahead``; past the budget's limit no session was made); None where no user was found.
    ``unknown``: a card no one has, counted and spent already; None where the caller still
    must (or the card is known)."""

    throttle: ThrottleHit | None
    user: User | None = None
    technician: Technician | None = None
    ahead: float | None = None
    unknown: UnknownCard | None = None


@dataclass(frozen=True, slots=True)
class CardBudgets:
    """The buckets a badge lookup spends from: a known badge's sign-in (the device's
    ``login``), an unknown badge's (the device's and, within that, the org's)."""

    login: Budget
    device: Budget
    org: Budget


@dataclass(frozen=True, slots=True)
class CardSession:
    """The session a badge sign-in makes if the card is a user's (whose, the lookup says)."""

    token_hash: str
    expires_at: float
    method: str


@runtime_checkable
class SignInStore(Protocol):
    def card_lookup(self, device_id: str, org_id: str, card_hash: str,
                    now: float) -> CardLookup: ...
    def sign_in(self, budget: Budget | None, session: NewSession, now: float) -> float: ...


class SessionInUse(NamedTuple):
    """A session presented by a device: as stored (None: no such token), and its user where it
    is good here (not ended, not expired, this device's, its user there), its expiry then
    extended; else None and nothing written."""

    session: Session | None
    user: User | None


@runtime_checkable
class SessionUseStore(Protocol):
    def use_session(self, device_id: str, token_hash: str, now: float,
                    expires_at: float) -> SessionInUse: ...


@runtime_checkable
class UnknownCountStore(Protocol):
    def take_unknown_count(self, device_id: str, n: int, now: float, before: float) -> int: ...


@runtime_checkable
class CardSignInStore(Protocol):
    def card_sign_in(self, device_id: str, org_id: str, card_hash: str,
                     budgets: CardBudgets, session: CardSession, now: float) -> CardSignIn: ...


def _fused(store: Store) -> bool:
    return implements(store, SignInStore)


def card_lookup(store: Store, device_id: str, org_id: str, card_hash: str,
                now: float) -> CardLookup:
    """The throttle in force (counted as one more refused lookup), else whose card it is."""
    if _fused(store):
        return typing.cast(SignInStore, store).card_lookup(device_id, org_id, card_hash, now)
    hit = store.throttled(device_id, org_id, now)
    if hit is not None:
        return CardLookup(hit)
    user = store.user_by_card(org_id, card_hash)
    if user is not None:
        return CardLookup(None, user)
    return CardLookup(None, None, store.technician_by_secret(org_id, "badge", card_hash))


def card_sign_in(store: Store, device_id: str, org_id: str, card_hash: str,
                 budgets: CardBudgets, session: CardSession, now: float) -> CardSignIn:
    """:func:`card_lookup`, then, for a user's card, :func:`sign_in` with ``budgets.login``;
    a store that can also counts an unknown card and spends its tokens (``unknown``)."""
    if implements(store, CardSignInStore):
        return typing.cast(CardSignInStore, store).card_sign_in(device_id, org_id, card_hash,
                                                                budgets, session, now)
    return card_sign_in_steps(store, device_id, org_id, card_hash, budgets.login, session,
                              now)


def card_sign_in_steps(store: Store, device_id: str, org_id: str, card_hash: str,
                       budget: Budget, session: CardSession, now: float) -> CardSignIn:
    """:func:`card_sign_in` as two calls to the store (an unknown card left to the caller)."""
    found = card_lookup(store, device_id, org_id, card_hash, now)
    if found.throttle is not None or found.user is None:
        return CardSignIn(*found)
    user = found.user
    ahead = sign_in(store, budget, NewSession(session.token_hash, device_id, user.id,
                                              session.expires_at, user.org_id, session.method),
                    now)
    return CardSignIn(None, user, None, ahead)


def use_session(store: Store, device_id: str, token_hash: str, now: float,
                expires_at: float) -> SessionInUse:
    """The session of ``token_hash``, and where it is good at ``device_id`` its user, its
    sliding expiry moved to ``expires_at``; one statement on PostgreSQL where it can be."""
    if implements(store, SessionUseStore):
        return typing.cast(SessionUseStore, store).use_session(device_id, token_hash, now,
                                                               expires_at)
    return use_session_steps(store, device_id, token_hash, now, expires_at)


def usable_here(session: Session, device_id: str, now: float) -> bool:
    """Not ended, not expired, and this device's (its user is checked apart)."""
    return not session.ended and session.expires_at > now and session.device_id == device_id


def use_session_steps(store: Store, device_id: str, token_hash: str, now: float,
                      expires_at: float) -> SessionInUse:
    """:func:`use_session` as three calls to the store."""
    session = store.session(token_hash)
    if session is None or not usable_here(session, device_id, now):
        return SessionInUse(session, None)
    user = store.user(session.user_id)
    if user is not None:
        store.extend_session(token_hash, expires_at)
    return SessionInUse(session, user)


def take_unknown_count(store: Store, device_id: str, n: int, now: float, before: float) -> int:
    """Take the ``n`` unknown badges :class:`UnknownCard` counted to audit now (a store that
    fills ``unknown`` has this too); 0 where another worker took them first."""
    return typing.cast(UnknownCountStore, store).take_unknown_count(device_id, n, now, before)


def sign_in(store: Store, budget: Budget | None, session: NewSession, now: float) -> float:
    """Spend a token of ``budget``; within it, create the session and audit the sign-in.
    Returns how far the bucket now runs ahead of ``now`` (0 without a budget): past
    ``budget.limit``, nothing but the token was written and the caller refuses."""
    if _fused(store):
        return typing.cast(SignInStore, store).sign_in(budget, session, now)
    ahead = 0.0
    if budget is not None:
        ahead = store.spend_token(budget.scope, budget.subject, now, budget.interval)
        if ahead > budget.limit:
            return ahead
    write_session(store, session, now)
    return ahead


def write_session(store: Store, session: NewSession, now: float) -> None:
    store.create_session(session.token_hash, session.device_id, session.user_id,
                         session.expires_at)
    store.audit(now, f"device:{session.device_id}", "login", f"user:{session.user_id}",
                session.method, org_id=session.org_id)

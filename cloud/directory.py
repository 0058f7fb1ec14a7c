"""Directory operations used by the admin CLI, the simulator and tests: cards, access codes,
passwords and job submission. What a valid code or password is, and how a number is looked up,
is cloud/identity.py's; card numbers and codes are hashed here, before they reach the store."""

from __future__ import annotations

import hashlib
import re
import time

from cloud import offline
from cloud.hashing import card_hash, code_hash, hash_password
from cloud.identity import MIN_PASSWORD, check_access_code
from cloud.storage.port import CloudStore
from protocol.errors import StoreError

#: What an identify request can carry as a card number (protocol.messages.Identify.value): a
#: number outside it could be stored but never matched by a device.
_CARD_RE = re.compile(r"[!-~]{1,128}")


def add_card(store: CloudStore, email: str, number: str) -> None:
    if not _CARD_RE.fullmatch(number):
        # The number itself stays out of the message: card numbers are never shown in clear.
        raise StoreError("a card number is 1 to 128 characters without spaces, exactly as the "
                         "reader gives it (mfd reader watch shows it)", code="invalid_field")
    with store.transaction():
        user = store.user_by_email(email)
        if user is None:
            raise StoreError(f"no user {email}")
        h = card_hash(store.org_secret(user.org_id), number)
        if store.technician_by_secret(user.org_id, "badge", h) is not None:
            # Users are looked up first at the copier: the technician's badge would stop
            # opening the diagnostics without a word.
            raise StoreError("that card is a technician's badge; revoke it first "
                             "(mfd admin technician list)", code="card_taken")
        store.add_card(user.org_id, h, user.id, time.time())
        store.audit(time.time(), "admin", "card.add", f"user:{user.id}")
        # The number is in clear only now: its offline verifier (docs/offline.md) too.
        if (kept := offline.with_offline(store)) is not None:
            offline.remember(kept, store.org_secret(user.org_id), user.org_id, "card", h,
                             number, time.time())


def submit_job(store: CloudStore, email: str, name: str, document: bytes, *, pages: int = 1,
               color: bool = False, duplex: bool = False, copies: int = 1,
               source: str = "", submitted_at: float | None = None) -> str:
    with store.transaction():
        user = store.user_by_email(email)
        if user is None:
            raise StoreError(f"no user {email}")
        submitted = submitted_at or time.time()
        hold = store.org_settings(user.org_id).hold_hours * 3600
        job_id = store.add_job(user.id, name, document, hashlib.sha256(document).hexdigest(),
                               pages=pages, color=color, duplex=duplex, copies=copies,
                               source=source, submitted_at=submitted,
                               expires_at=submitted + hold)
        store.audit(time.time(), f"user:{user.id}", "job.submit", f"job:{job_id}", name)
        return job_id


def set_access_code(store: CloudStore, email: str, code: str) -> None:
    check_access_code(code)
    with store.transaction():
        user = store.user_by_email(email)
        if user is None:
            raise StoreError(f"no user {email}")
        h = code_hash(store.org_secret(user.org_id), code)
        if store.technician_by_secret(user.org_id, "code", h) is not None:
            # A user's code is looked up first: the technician's would stop working.
            raise StoreError("that access code is taken; choose another", code="code_taken")
        store.set_access_code(user.org_id, h, user.id)
        store.audit(time.time(), "admin", "code.set", f"user:{user.id}")
        if (kept := offline.with_offline(store)) is not None:
            offline.remember(kept, store.org_secret(user.org_id), user.org_id, "code", h, code,
                             time.time())


def set_password(store: CloudStore, email: str, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise StoreError(f"a password has at least {MIN_PASSWORD} characters",
                         code="password_invalid")
    with store.transaction():
        user = store.user_by_email(email)
        if user is None:
            raise StoreError(f"no user {email}")
        store.set_password_hash(user.id, hash_password(password))
        now = time.time()
        store.audit(now, "admin", "password.set", f"user:{user.id}")
        # A new password is often a reaction to a stolen one: whoever signed in with the old
        # one is signed out, in the same transaction.
        ended = store.end_portal_sessions_of(user.id)
        if ended:
            store.audit(now, "admin", "portal.sessions_end", f"user:{user.id}",
                        f"{ended} session(s), password set")

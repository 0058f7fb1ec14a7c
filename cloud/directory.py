"""Directory operations used by the admin CLI, the simulator and tests: orgs, users, cards,
devices and job submission. Card numbers are hashed here, before they reach the store."""

from __future__ import annotations

import hashlib
import re
import time

from cloud.hashing import card_hash, code_hash, hash_password
from cloud.storage.port import CloudStore
from protocol.errors import StoreError


def add_card(store: CloudStore, email: str, number: str) -> None:
    with store.transaction():
        user = store.user_by_email(email)
        if user is None:
            raise StoreError(f"no user {email}")
        store.add_card(user.org_id, card_hash(store.org_secret(user.org_id), number), user.id,
                       time.time())
        store.audit(time.time(), "admin", "card.add", f"user:{user.id}")


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


def set_access_code(store: CloudStore, email: str, code: str) -> None:
    check_access_code(code)
    with store.transaction():
        user = store.user_by_email(email)
        if user is None:
            raise StoreError(f"no user {email}")
        store.set_access_code(user.org_id, code_hash(store.org_secret(user.org_id), code), user.id)
        store.audit(time.time(), "admin", "code.set", f"user:{user.id}")


MIN_PASSWORD = 8


def set_password(store: CloudStore, email: str, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise StoreError(f"a password has at least {MIN_PASSWORD} characters",
                         code="password_invalid")
    with store.transaction():
        user = store.user_by_email(email)
        if user is None:
            raise StoreError(f"no user {email}")
        store.set_password_hash(user.id, hash_password(password))
        store.audit(time.time(), "admin", "password.set", f"user:{user.id}")

"""Directory operations used by the admin CLI, the simulator and tests: orgs, users, cards,
devices and job submission. Card numbers are hashed here, before they reach the store."""

from __future__ import annotations

import hashlib
import time

from cloud.service import card_hash
from cloud.store import SqliteStore
from protocol.errors import StoreError


def add_card(store: SqliteStore, email: str, number: str) -> None:
    with store.transaction():
        user = store.user_by_email(email)
        if user is None:
            raise StoreError(f"no user {email}")
        store.add_card(user.org_id, card_hash(store.org_secret(user.org_id), number), user.id,
                       time.time())
        store.audit(time.time(), "admin", "card.add", f"user:{user.id}")


def submit_job(store: SqliteStore, email: str, name: str, document: bytes, *, pages: int = 1,
               color: bool = False, duplex: bool = False, copies: int = 1,
               source: str = "", submitted_at: float | None = None) -> str:
    with store.transaction():
        user = store.user_by_email(email)
        if user is None:
            raise StoreError(f"no user {email}")
        job_id = store.add_job(user.id, name, document, hashlib.sha256(document).hexdigest(),
                               pages=pages, color=color, duplex=duplex, copies=copies,
                               source=source, submitted_at=submitted_at or time.time())
        store.audit(time.time(), f"user:{user.id}", "job.submit", f"job:{job_id}", name)
        return job_id

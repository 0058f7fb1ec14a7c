"""One-time secrets, redeemed in one place: an invitation link, an Authenticate-on-Print sign-in
link, a mobile linking code, a device's registration code.

Every one is stored as a hash, found by the hash of what was presented, refused when unknown or
spent, refused when past its expiry, and spent by a guarded update, so of two requests racing
with one secret exactly one wins (the other is told it was just used). A flow chooses its
answers: one answer for unknown, spent and expired alike when the secret is short and must not
be probed (linking and registration codes), or distinct ones when the holder can act on them.
"""

from __future__ import annotations

from collections.abc import Callable

from cloud.storage.port import CloudStore, Redeemable
from protocol.errors import MfdError


def redeem(store: CloudStore, kind: str, secret_hash: str, now: float, *,
           refused: Callable[[Redeemable | None], MfdError],
           expired: Callable[[Redeemable], MfdError] | None = None,
           raced: MfdError | None = None) -> Redeemable:
    """The secret of ``kind`` whose hash this is, checked and, when ``raced`` is given, spent.

    Unknown or spent: ``refused(row)``; past its expiry: ``expired(row)``, or ``refused(row)``
    for a flow with one answer. ``raced`` is raised when another request spent the secret
    between the look-up and the update; without it the caller spends the secret later, in the
    same transaction (Authenticate-on-Print spends every link of the install at once)."""
    row = store.one_time(kind, secret_hash)
    if row is None or row.spent:
        raise refused(row)
    if row.expires_at <= now:
        raise (expired or refused)(row)
    if raced is not None and not store.spend(kind, row.id, now):
        raise raced
    return row

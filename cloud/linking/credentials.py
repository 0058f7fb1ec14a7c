"""The administrator's card and access-code chores: removing a user's cards, and a new random
access code."""

from __future__ import annotations

import secrets

from cloud import offline
from cloud.hashing import card_hash, code_hash
from cloud.identity import check_access_code
from cloud.linking.base import LinkingBase, LinkingError
from protocol.errors import ErrorCode, StoreError


class CardAdmin(LinkingBase):
    """Removing cards and resetting access codes."""

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
            # In clear only now: its offline verifier (cloud/offline.py), so the new code
            # works offline before its first use online.
            keeps = offline.with_offline(self.store)
            if keeps is not None:
                offline.remember(keeps, secret, user.org_id, "code", h, code, self.clock())
            self.store.audit(self.clock(), "admin", "code.reset", f"user:{user.id}")
        return code

"""The mobile app: it links with email + password or a one-time linking code, and registers
as an install of kind ``mobile`` whose token is the app's user token."""

from __future__ import annotations

from cloud.linking.base import ADDR_SCOPE, LinkCode, LinkingError, _code_hash, _text
from cloud.linking.clients import ClientRegistration
from cloud.linking.redeem import redeem
from cloud.linking.signin import PortalSignIn
from cloud.linking.values import Registered


class Mobile(ClientRegistration, PortalSignIn):
    """The mobile app's two ways to link."""

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
            # One answer for unknown, used and expired: a short code is not to be probed.
            row = redeem(
                self.store, "linking_code", _code_hash(code), now,
                refused=lambda row: LinkingError(
                    LinkCode.INVALID_CODE, "this linking code is not valid; make a new one in "
                    "the User Portal", field="linking_code",
                    trace=("mobile.wrong_code", f"code:{row.id}" if row else "-",
                           f"from {source or '-'}"),
                    guess=pairs),
                raced=LinkingError(LinkCode.INVALID_CODE, "this linking code was used already",
                                   field="linking_code"))
            user = self._user(row.owner)
            return self._register(user.org_id, "mobile", app_id, "", user, "mobile:code",
                                  f"user:{user.id}")

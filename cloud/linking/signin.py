"""Portal sign-in: the org's share link, email + password with the guessing lockout, portal
sessions, and what a signed-in user does ("Set up my devices", linking codes)."""

from __future__ import annotations

import hashlib
import hmac

from cloud.hashing import token_hash, verify_password
from cloud.linking.base import (
    ADDR_SCOPE,
    LINKING_CODE_TTL,
    PORTAL_SESSION_TTL,
    SETUP_TTL,
    USER_SCOPE,
    LinkCode,
    LinkingBase,
    LinkingError,
    _text,
)
from cloud.linking.values import Issued, PortalSession
from cloud.storage.port import ClientInstall, User
from protocol.errors import ErrorCode


class PortalSignIn(LinkingBase):
    """The User Portal's sign-in and sessions."""

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

    def sign_out_everywhere(self, token: str) -> int:
        """End every portal session of the signed-in user, this one included; how many."""
        with self._work():
            user = self._session_user(token)
            ended = self.store.end_portal_sessions_of(user.id)
            self.store.audit(self.clock(), f"user:{user.id}", "portal.sessions_end",
                             f"user:{user.id}", f"{ended} session(s), by the user")
            return ended

    def my_devices(self, token: str) -> tuple[User, list[ClientInstall]]:
        """The signed-in user and their linked installs (the "Set up my devices" page)."""
        with self._work():
            user = self._session_user(token)
            installs = self.store.installs_of_user(user.id)
        return user, installs

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

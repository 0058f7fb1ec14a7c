"""Invitations: the org's bulk installer token, Classic Invitations (a personal installer link
and a linking code by email), User Portal invitations and their acceptance."""

from __future__ import annotations

import math

from cloud.hashing import hash_password, token_hash
from cloud.identity import MIN_PASSWORD
from cloud.linking.base import (
    BULK_TTL,
    CLASSIC_TTL,
    PORTAL_INVITE_TTL,
    LinkCode,
    LinkingError,
    _text,
    _when,
)
from cloud.linking.redeem import redeem
from cloud.linking.signin import PortalSignIn
from cloud.linking.values import Invitation, Issued, PortalSession
from cloud.storage.port import Redeemable, new_id
from protocol.errors import ErrorCode

#: Invitation acceptances from one address: one every ACCEPT_INTERVAL seconds on average, in
#: bursts of ACCEPT_BURST (a person mistyping a password a few times is never held up).
ACCEPT_INTERVAL = 2.0
ACCEPT_BURST = 10


class Invitations(PortalSignIn):
    """Issuing and accepting invitations, and the installer tokens the admin hands out."""

    def bulk_installer(self, org_id: str, *, ttl: float = BULK_TTL) -> Issued:
        """The org-wide anonymous installer token for MDM deployment."""
        with self._work():
            self.store.org_settings(org_id)  # the org exists
            return self._issue_installer(org_id, None, "bulk", ttl, "admin")

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

    def _spend_accept_attempt(self, source: str) -> None:
        with self.store.transaction():
            ahead = self.store.spend_token("invite_accept", source or "unknown", self.clock(),
                                           ACCEPT_INTERVAL)
        if ahead > ACCEPT_INTERVAL * ACCEPT_BURST:
            wait = max(1, math.ceil(ahead - ACCEPT_INTERVAL * ACCEPT_BURST))
            raise LinkingError(ErrorCode.LOCKED_OUT, f"too many attempts from here; wait {wait} "
                               "seconds and try again", retry_after=wait)

    def accept_invitation(self, token: str, password: str, *, source: str = "") -> PortalSession:
        """A User Portal invitation: choose the first password, and be signed in.

        Cheap refusals first: the address's attempts are counted (one every
        :data:`ACCEPT_INTERVAL` seconds, bursts of :data:`ACCEPT_BURST`), then the token is
        looked up; only a valid token pays for hashing the password (scrypt), so guessing
        tokens costs neither CPU nor an audit flood."""
        token = _text(token, "invitation", max_len=256)
        if not isinstance(password, str) or len(password) < MIN_PASSWORD:
            raise LinkingError(LinkCode.WEAK_PASSWORD, f"a password has at least {MIN_PASSWORD}"
                               " characters", field="password")
        if len(password) > 1024:
            raise LinkingError(LinkCode.WEAK_PASSWORD, "a password has at most 1024 characters",
                               field="password")
        self._spend_accept_attempt(source)
        secret = token_hash(token)

        def check(spend: bool) -> Redeemable:
            return redeem(
                self.store, "invitation", secret, self.clock(),
                refused=lambda _row: LinkingError(
                    LinkCode.INVALID_TOKEN, "this invitation link is not valid or was used "
                    "already; ask your administrator for a new one", field="invitation",
                    trace=("invite.refused", "-", f"from {source or '-'}")),
                expired=lambda _row: LinkingError(
                    LinkCode.TOKEN_EXPIRED, "this invitation has expired; ask your "
                    "administrator for a new one", field="invitation"),
                raced=LinkingError(LinkCode.INVALID_TOKEN, "this invitation was used already",
                                   field="invitation") if spend else None)

        with self._work():
            check(spend=False)
        hashed = hash_password(password)  # scrypt, outside the transaction and its lock
        with self._work():
            now = self.clock()
            row = check(spend=True)
            user = self._user(row.owner)
            self.store.set_password_hash(user.id, hashed)
            self.store.audit(now, f"user:{user.id}", "invite.accept", f"invitation:{row.id}",
                             "password set")
            # Sessions opened before the new password (a stolen one) end; the one opened
            # below, after this, is the only one left.
            ended = self.store.end_portal_sessions_of(user.id)
            if ended:
                self.store.audit(now, f"user:{user.id}", "portal.sessions_end",
                                 f"user:{user.id}", f"{ended} session(s), invitation accepted")
            return self._open_session(user, "invitation")

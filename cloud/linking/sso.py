"""Single sign-on: a portal session for a person whom the org's OpenID provider vouched for.

The web layer (cloud/web/sso.py) has already checked the provider's ID token (signature from the
provider's keys, issuer, audience, nonce, expiry) and that the provider verified the email. Here
the email is matched to a user of the store: single sign-on never creates a user (an
administrator adds people, by hand or by import), so an unknown email is refused, with an audit
entry naming it for the administrator who is then asked about it.

A user locked out by wrong password guesses is refused here too: the lock is on the account,
and signing in another way is not a way around it. The session is audited like a password
sign-in (``portal.sign_in``), with the provider and the provider's subject for the person.
"""

from __future__ import annotations

from cloud.linking.base import USER_SCOPE, LinkCode, LinkingError, _text
from cloud.linking.signin import PortalSignIn
from cloud.linking.values import PortalSession


class SingleSignOn(PortalSignIn):
    """Portal sessions from single sign-on (OpenID Connect)."""

    def sign_in_sso(self, email: str, issuer: str, subject: str, *,
                    source: str = "web") -> PortalSession:
        """Open a portal session for the user whose email the provider ``issuer`` verified for
        its account ``subject``."""
        address = _text(email, "email", max_len=254).lower()
        issuer = _text(issuer, "issuer", max_len=512)
        subject = _text(subject, "subject", max_len=255)
        with self._work():
            self._check_locks([(USER_SCOPE, address)], self.clock())
            user = self.store.user_by_email(address)
            if user is None:
                raise LinkingError(
                    LinkCode.UNKNOWN_USER,
                    f"there is no account for {address} here; ask your administrator to add "
                    "you, then sign in again", field="email",
                    trace=("sso.unknown_email", "-",
                           f"{address} from {issuer} (subject {subject}), via {source or '-'}"))
            return self._open_session(user, f"single sign-on via {issuer}, subject {subject}")

"""Single sign-on: a portal session for a person whom the org's OpenID provider vouched for.

The web layer (cloud/web/sso.py) has already checked the provider's ID token (signature from the
provider's keys, issuer, audience, nonce, expiry) and that the provider verified the email. Here
the email is matched to a user of the store: single sign-on never creates a user (an
administrator adds people, by hand or by import), so an unknown email is refused, with an audit
entry naming it for the administrator who is then asked about it.

A user locked out by wrong password guesses is refused here too: the lock is on the account,
and signing in another way is not a way around it. The session is audited like a password
sign-in (``portal.sign_in``), with the provider and the provider's subject for the person.

The provider vouches for emails only: it is trusted for one org (``org_id``; several orgs and
none named refuses everything) and, optionally, some email domains. The provider's subject of a
user's first single sign-on is recorded (``sso_identities``); another subject for that user, or
that subject for another user, is refused afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence

from cloud.linking.base import USER_SCOPE, LinkCode, LinkingError, _text
from cloud.linking.signin import PortalSignIn
from cloud.linking.values import PortalSession
from protocol.errors import ErrorCode


class SingleSignOn(PortalSignIn):
    """Portal sessions from single sign-on (OpenID Connect)."""

    def sign_in_sso(self, email: str, issuer: str, subject: str, *, source: str = "web",
                    org_id: str | None = None,
                    domains: Sequence[str] = ()) -> PortalSession:
        """Open a portal session for the user whose email the provider ``issuer`` verified for
        its account ``subject``.

        The provider vouches for emails, not for orgs: only users of ``org_id`` (the org the
        provider is the operator's choice for) and, when given, of the email ``domains`` may
        sign in. Without an org, a store of more than one org refuses (fail closed: whoever
        runs the provider could otherwise sign in as any org's administrator)."""
        address = _text(email, "email", max_len=254).lower()
        issuer = _text(issuer, "issuer", max_len=512)
        subject = _text(subject, "subject", max_len=255)
        if not subject:
            raise LinkingError(ErrorCode.INVALID_FIELD, "the provider named no subject",
                               field="subject")
        with self._work():
            now = self.clock()
            if org_id is None and len(self.store.orgs()) > 1:
                raise LinkingError(
                    "config_invalid", "single sign-on is not set up for a service of several "
                    "organisations: the operator names the provider's (--oidc-org)",
                    trace=("sso.refused", "-", "no org configured, several in the store"))
            self._check_locks([(USER_SCOPE, address)], now)
            user = self.store.user_by_email(address)
            domain = address.rpartition("@")[2]
            outside = user is not None and (
                (org_id is not None and user.org_id != org_id)
                or (bool(domains) and domain not in {d.lower() for d in domains}))
            if user is None or outside:
                # Someone of another org is refused like a stranger (no hint they exist).
                raise LinkingError(
                    LinkCode.UNKNOWN_USER,
                    f"there is no account for {address} here; ask your administrator to add "
                    "you, then sign in again", field="email",
                    trace=("sso.other_org" if outside else "sso.unknown_email",
                           "-" if org_id is None else f"org:{org_id}",
                           f"{address} from {issuer} (subject {subject}), via {source or '-'}"))
            bound = self.store.sso_identity(user.id, issuer)
            owner = self.store.sso_user(issuer, subject)
            if (bound is not None and bound != subject) or (owner not in (None, user.id)):
                raise LinkingError(
                    ErrorCode.NOT_ALLOWED, "this single sign-on account is not the one "
                    f"{address} signed in with before; ask your administrator",
                    field="subject", actor=f"user:{user.id}",
                    trace=("sso.subject_mismatch", f"user:{user.id}",
                           f"{issuer} subject {subject}, recorded {bound or '-'}, via "
                           f"{source or '-'}"))
            if bound is None:
                self.store.add_sso_identity(user.id, issuer, subject, now)
                self.store.audit(now, f"user:{user.id}", "sso.bind", f"user:{user.id}",
                                 f"{issuer} subject {subject}")
            return self._open_session(user, f"single sign-on via {issuer}, subject {subject}")

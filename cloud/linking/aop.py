"""Authenticate-on-Print: the signed-in user confirms a sign-in link from an unlinked install's
first job; the install becomes theirs and its pending jobs join their queue or are discarded."""

from __future__ import annotations

from cloud.hashing import token_hash
from cloud.linking.base import LinkCode, LinkingError, _install_with_user, _text
from cloud.linking.redeem import redeem
from cloud.linking.signin import PortalSignIn
from cloud.linking.values import AopOutcome, AuthRequest
from cloud.storage.port import ClientInstall
from protocol.errors import ErrorCode


class AuthenticateOnPrint(PortalSignIn):
    """Authenticate-on-Print: the user behind an anonymous install's first job."""

    def _auth_request(self, request: str) -> tuple[str, ClientInstall, float]:
        # Not spent here: confirming spends every open link of the install at once.
        row = redeem(
            self.store, "auth_request", token_hash(_text(request, "request", max_len=256)),
            self.clock(),
            refused=lambda _row: LinkingError(
                LinkCode.INVALID_TOKEN, "this sign-in link is not valid or was used already; "
                "print again to get a new one", field="request",
                trace=("aop.refused", "-", "unknown or used auth request")),
            expired=lambda _row: LinkingError(
                LinkCode.TOKEN_EXPIRED, "this sign-in link has expired; print again to get a "
                "new one", field="request"))
        inst = self.store.install(row.owner)
        if inst is None or inst.revoked_at is not None:
            raise LinkingError(LinkCode.INVALID_TOKEN, "this computer's printer was removed; "
                               "print again", field="request")
        return row.id, inst, row.expires_at

    def aop_request(self, session_token: str, request: str) -> AuthRequest:
        """What the user is about to confirm: which machine and OS user, which jobs."""
        with self._work():
            user = self._session_user(session_token)
            _rid, install, expires = self._auth_request(request)
            if install.org_id != user.org_id:
                raise LinkingError(ErrorCode.NOT_ALLOWED, "this computer belongs to another "
                                   "organisation", field="request")
            pending = self.store.jobs_of_client(install.id, "PENDING_AUTH")
            policy = self.store.org_settings(install.org_id).aop_pending
        return AuthRequest(install, tuple(j.name for j in pending), policy, expires)

    def aop_confirm(self, session_token: str, request: str) -> AopOutcome:
        """The signed-in user confirms: the install is theirs from now on; its pending jobs
        join their queue or are discarded, per the org's policy."""
        with self._work():
            user = self._session_user(session_token)
            request_id, install, _expires = self._auth_request(request)
            now = self.clock()
            if install.org_id != user.org_id:
                raise LinkingError(ErrorCode.NOT_ALLOWED, "this computer belongs to another "
                                   "organisation", field="request", actor=f"user:{user.id}",
                                   trace=("aop.refused", f"client:{install.id}", "other org"))
            # Guarded: of two people racing with two sign-in links of one install, one wins.
            if not self.store.link_install(install.id, user.id, now, "aop"):
                raise LinkingError(LinkCode.INVALID_TOKEN, "this computer is linked already",
                                   field="request")
            self.store.close_auth_requests(install.id, now)
            self.store.set_auth_request_user(request_id, user.id)
            settings = self.store.org_settings(install.org_id)
            joined: list[str] = []
            discarded: list[str] = []
            for job in self.store.jobs_of_client(install.id, "PENDING_AUTH"):
                if settings.aop_pending == "join":
                    # Guarded too: a job that expired meanwhile stays expired.
                    if self.store.adopt_pending_job(
                            job.id, user.id, job.submitted_at + settings.hold_hours * 3600, now):
                        joined.append(job.id)
                        self.store.audit(now, f"user:{user.id}", "job.join", f"job:{job.id}",
                                         f"owner user:{user.id} after sign-in")
                elif self.store.delete_job(job.id, now):
                    discarded.append(job.id)
                    self.store.audit(now, "cloud", "job.discard", f"job:{job.id}",
                                     "print again after sign-in (org policy)")
            linked = _install_with_user(install, user.id, now)
            self.store.audit(now, f"user:{user.id}", "client.link", f"client:{install.id}",
                             f"Authenticate-on-Print, {len(joined)} joined, "
                             f"{len(discarded)} discarded")
        if joined:
            message = (f"This computer is linked to you. {len(joined)} document(s) wait for you "
                       "at the copier.")
        elif discarded:
            message = ("This computer is linked to you. Please print your document again: "
                       "it will then wait for you at the copier.")
        else:
            message = "This computer is linked to you."
        return AopOutcome(linked, user, tuple(joined), tuple(discarded), message)

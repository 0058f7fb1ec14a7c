"""Job intake: a job from a client install. The owner is the install's user, from the token
alone; an unlinked install's job waits PENDING_AUTH behind a one-time sign-in link."""

from __future__ import annotations

import hashlib
import hmac

from cloud.hashing import token_hash
from cloud.linking.base import AOP_TTL, DEFAULT_QUEUE, LinkCode, LinkingError, _text
from cloud.linking.clients import ClientRegistration
from cloud.linking.values import Submitted
from cloud.storage.port import new_id
from protocol.errors import ErrorCode


class JobIntake(ClientRegistration):
    """Jobs from print clients."""

    def submit(self, token: str, name: str, data: bytes, *, pages: int = 1, color: bool = False,
               duplex: bool = False, copies: int = 1, queue: str | None = None,
               sha256: str | None = None) -> Submitted:
        """A job from a client. The owner is the install's user, from the token alone. An
        unlinked install's job waits PENDING_AUTH behind a one-time sign-in link."""
        name = _text(name, "name", max_len=255)
        if not data:
            raise LinkingError(ErrorCode.INVALID_FIELD, "the document is empty", field="document")
        if len(data) > self.max_document:
            raise LinkingError(ErrorCode.TOO_LARGE, f"the document is larger than "
                               f"{self.max_document} bytes", field="document")
        for value, what, top in ((pages, "pages", 100_000), (copies, "copies", 999)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise LinkingError(ErrorCode.INVALID_FIELD, f"{what} must be 1 to {top}",
                                   field=what)
        digest = hashlib.sha256(data).hexdigest()
        if sha256 is not None and not hmac.compare_digest(sha256.lower(), digest):
            raise LinkingError(LinkCode.CHECKSUM_MISMATCH, "the document does not match its "
                               "SHA-256; it was damaged on the way", field="sha256")
        with self._work():
            now = self.clock()
            install = self._install_by_token(token)
            queues = self._queues_for(install)
            queue = queue or DEFAULT_QUEUE
            if queue not in queues:
                raise LinkingError(LinkCode.UNKNOWN_QUEUE, f"queue {queue!r} is not deployed to "
                                   "this client", field="queue")
            settings = self.store.org_settings(install.org_id)
            source = {"workstation": install.machine, "chromebook": "Chromebook",
                      "mobile": "Mobile app"}[install.kind][:40]
            actor = f"client:{install.id}"
            if install.user_id is not None:
                user = self._user(install.user_id)
                job_id = self.store.add_job(
                    user.id, name, data, digest, pages=pages, color=color, duplex=duplex,
                    copies=copies, source=source, submitted_at=now,
                    expires_at=now + settings.hold_hours * 3600, client_id=install.id)
                self.store.audit(now, actor, "job.submit", f"job:{job_id}",
                                 f"owner user:{user.id}, queue {queue!r}, {len(data)} bytes")
                return Submitted(job_id, "HELD", len(data), digest, user,
                                 message=f"held for {user.display_name}")
            job_id = self.store.add_job(None, name, data, digest, pages=pages, color=color,
                                        duplex=duplex, copies=copies, source=source,
                                        submitted_at=now, expires_at=now + AOP_TTL,
                                        state="PENDING_AUTH", client_id=install.id)
            request = self._new("mfa")
            request_id = new_id("ar")
            self.store.add_auth_request(request_id, token_hash(request), install.id, job_id, now,
                                        now + AOP_TTL)
            self.store.audit(now, actor, "job.pending_auth", f"job:{job_id}",
                             f"auth request {request_id}, {len(data)} bytes")
            after = ("your document then waits for you at the copier"
                     if settings.aop_pending == "join" else
                     "then print your document again")
            return Submitted(job_id, "PENDING_AUTH", len(data), digest, None,
                             sign_in_url=f"{self._base()}/portal/aop#request={request}",
                             message="Sign in to link this computer to your account; " + after)

"""The reference cloud's request handling: bytes in, bytes out, storage behind a port.

Theory of operation
-------------------
``CloudService.handle(device_id, payload)`` is everything a worker does with one request. The
device id comes from the MQTT topic, which the broker's ACL ties to the device's credentials; the
service trusts nothing else about who is asking. One request is one store transaction:

* a malformed request gets an error answer naming the field (never an exception);
* a mutating request (one with ``request_id``) first looks for a stored answer under
  (device, request_id) and returns it: a QoS 1 redelivery or a retry never does the work twice;
  the new answer is stored in the same transaction as the work;
* refusals (unknown card, job not held, ...) are checked before anything is written, so a refused
  release leaves every job as it was;
* anything unexpected is logged and answered ``internal``; the worker keeps serving.

Sessions are opaque random tokens; the store keeps only their SHA-256, bound to (device, user),
with a sliding expiry. A token presented by another device is refused and audited.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable

from cloud.store import Job, JobStateError, Store, User, new_id
from protocol import messages as m
from protocol.errors import ErrorCode, MfdError, ProtocolError, StoreError

log = logging.getLogger(__name__)

DEFAULT_SESSION_TTL = 300.0


class Refused(MfdError):
    """A well-formed request the cloud will not do; becomes an ``ok: false`` answer."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message, code=code.value)
        self.error_code = code
        self.field = field


def card_hash(org_secret: bytes, number: str) -> str:
    """How a card number is stored: HMAC-SHA256 under the org's secret, hex."""
    return hmac.new(org_secret, number.encode("utf-8"), hashlib.sha256).hexdigest()


def code_hash(org_secret: bytes, code: str) -> str:
    """How an access code is stored and looked up: HMAC-SHA256 under the org's secret, in a
    domain of its own so a code can never match a card number's hash."""
    return hmac.new(org_secret, b"code:" + code.encode("utf-8"), hashlib.sha256).hexdigest()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class CloudService:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 session_ttl: float = DEFAULT_SESSION_TTL,
                 new_token: Callable[[], str] = lambda: secrets.token_urlsafe(24)) -> None:
        self.store = store
        self.clock = clock
        self.session_ttl = session_ttl
        self.new_token = new_token

    def handle(self, device_id: str, payload: bytes) -> bytes:
        try:
            request = m.decode_request(payload)
        except ProtocolError as exc:
            log.info("device %s sent a bad request: %s (%s)", device_id, exc.message, exc.code)
            return m.error_from(exc, m.request_type_of(payload))
        try:
            return self._handle(device_id, request)
        except Exception:
            log.exception("internal error on %s from device %s", request.TYPE, device_id)
            return m.encode_error(request.TYPE, ErrorCode.INTERNAL,
                                  "the print service failed on this request; try again")

    def _handle(self, device_id: str, request: m.Request) -> bytes:
        mutating = m.is_mutating(request)
        request_id: str = getattr(request, "request_id", "")
        for attempt in (1, 2):
            try:
                with self.store.transaction():
                    if mutating:
                        stored = self.store.stored_reply(device_id, request_id)
                        if stored is not None:
                            kind, answer = stored
                            if kind != request.TYPE:
                                return m.encode_error(
                                    request.TYPE, ErrorCode.INVALID_FIELD,
                                    f"request_id {request_id} was used for a {kind} request; "
                                    "every request needs a new one", "request_id")
                            log.debug("repeat of %s %s answered from store", request.TYPE,
                                      request_id)
                            return answer
                    reply = self._answer(device_id, request)
                    if mutating:
                        self.store.store_reply(device_id, request_id, request.TYPE, reply,
                                               self.clock())
                    return reply
            except StoreError:
                # A concurrent worker stored the same request_id first (a QoS 1 redelivery
                # raced us): our transaction rolled back; the second pass returns its answer.
                if attempt == 2 or not mutating:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _answer(self, device_id: str, request: m.Request) -> bytes:
        try:
            result = self._dispatch(device_id, request)
        except Refused as exc:
            return m.encode_error(request.TYPE, exc.error_code, exc.message, exc.field)
        return m.encode_result(result, request.TYPE)

    def _dispatch(self, device_id: str, request: m.Request) -> m.Result:
        match request:
            case m.Identify():
                return self._identify(device_id, request)
            case m.ListJobs():
                return self._list(device_id, request)
            case m.Release():
                return self._release(device_id, request)
            case m.FetchDocument():
                return self._document(device_id, request)
            case m.JobPrinted():
                return self._printed(device_id, request)
            case m.JobFailed():
                return self._failed(device_id, request)
            case m.Logout():
                return self._logout(device_id, request)
        raise Refused(ErrorCode.UNKNOWN_TYPE, f"{request.TYPE} is not handled", "type")

    # ------------------------------------------------------------------ identity

    def _identify(self, device_id: str, req: m.Identify) -> m.IdentifyResult:
        now = self.clock()
        org_id = self.store.device_org(device_id)
        if org_id is None:
            raise Refused(ErrorCode.UNKNOWN_DEVICE,
                          f"device {device_id} is not registered; ask an administrator")
        secret = self.store.org_secret(org_id)
        if req.method == "card":
            user = self.store.user_by_card(org_id, card_hash(secret, req.value))
        else:
            user = self.store.user_by_code(org_id, code_hash(secret, req.value))
        if user is None:
            self.store.audit(now, f"device:{device_id}", f"identify.unknown_{req.method}", "-")
            if req.method == "card":
                raise Refused(ErrorCode.UNKNOWN_CARD, "this card is not known", "value")
            raise Refused(ErrorCode.UNKNOWN_CODE, "this access code is not known", "value")
        token = self.new_token()
        self.store.create_session(token_hash(token), device_id, user.id, now + self.session_ttl)
        self.store.audit(now, f"device:{device_id}", "login", f"user:{user.id}", req.method)
        return m.IdentifyResult(session=token, user_id=user.id, display_name=user.display_name,
                                expires_in=int(self.session_ttl))

    def _session_user(self, device_id: str, token: str) -> User:
        now = self.clock()
        h = token_hash(token)
        session = self.store.session(h)
        if session is None or session.ended or session.expires_at <= now:
            raise Refused(ErrorCode.INVALID_SESSION, "the session has ended; log in again",
                          "session")
        if session.device_id != device_id:
            self.store.audit(now, f"device:{device_id}", "session.wrong_device",
                             f"user:{session.user_id}", f"bound to {session.device_id}")
            raise Refused(ErrorCode.WRONG_DEVICE, "this session belongs to another device",
                          "session")
        user = self.store.user(session.user_id)
        if user is None:
            raise Refused(ErrorCode.INVALID_SESSION, "the session's user no longer exists",
                          "session")
        self.store.extend_session(h, now + self.session_ttl)
        return user

    def _logout(self, device_id: str, req: m.Logout) -> m.Ack:
        user = self._session_user(device_id, req.session)
        self.store.end_session(token_hash(req.session))
        self.store.audit(self.clock(), f"device:{device_id}", "logout", f"user:{user.id}")
        return m.Ack(of=req.TYPE)

    # ------------------------------------------------------------------ jobs

    def _list(self, device_id: str, req: m.ListJobs) -> m.JobList:
        user = self._session_user(device_id, req.session)
        jobs, total = self.store.held_jobs(user.id, req.offset, req.limit)
        return m.JobList(jobs=tuple(_summary(j) for j in jobs), total=total, offset=req.offset)

    def _release(self, device_id: str, req: m.Release) -> m.ReleaseResult:
        user = self._session_user(device_id, req.session)
        if len(set(req.job_ids)) != len(req.job_ids):
            raise Refused(ErrorCode.INVALID_FIELD, "a job is listed twice", "job_ids")
        found = {j.id: j for j in self.store.jobs(list(req.job_ids))}
        for i, job_id in enumerate(req.job_ids):
            job = found.get(job_id)
            # Another user's job is reported exactly like a missing one: no probing.
            if job is None or job.owner_id != user.id:
                raise Refused(ErrorCode.JOB_NOT_FOUND, f"job {job_id} is not among your jobs",
                              f"job_ids[{i}]")
            if job.state != "HELD":
                raise Refused(ErrorCode.JOB_NOT_HELD,
                              f"job {job_id} is not waiting for release (it is {job.state})",
                              f"job_ids[{i}]")
        now = self.clock()
        release_id = new_id("rel")
        self.store.create_release(release_id, device_id, user.id, now)
        for job_id in req.job_ids:
            self.store.set_releasing(job_id, release_id, device_id, now)
        self.store.audit(now, f"user:{user.id}", "release", release_id,
                         f"device {device_id}: {', '.join(req.job_ids)}")
        return m.ReleaseResult(release_id=release_id, jobs=tuple(
            m.ReleasedJob(job_id=j.id, name=j.name, size=j.size, sha256=j.sha256, pages=j.pages,
                          copies=j.copies) for j in (found[i] for i in req.job_ids)))

    def _released_job(self, device_id: str, release_id: str, job_id: str) -> Job:
        owner = self.store.release_device(release_id)
        if owner is None:
            raise Refused(ErrorCode.UNKNOWN_RELEASE, f"no release {release_id}", "release_id")
        if owner != device_id:
            self.store.audit(self.clock(), f"device:{device_id}", "release.wrong_device",
                             release_id)
            raise Refused(ErrorCode.WRONG_DEVICE, "this release belongs to another device",
                          "release_id")
        jobs = self.store.jobs([job_id])
        if not jobs or jobs[0].release_id != release_id:
            raise Refused(ErrorCode.JOB_NOT_FOUND, f"job {job_id} is not in release {release_id}",
                          "job_id")
        return jobs[0]

    def _document(self, device_id: str, req: m.FetchDocument) -> m.DocumentChunk:
        job = self._released_job(device_id, req.release_id, req.job_id)
        if job.state != "RELEASING":
            raise Refused(ErrorCode.JOB_NOT_HELD, f"job {job.id} is {job.state}", "job_id")
        try:
            data = self.store.document(job.id, req.offset, req.length)
        except JobStateError as exc:
            raise Refused(exc.error_code, exc.message, "job_id") from None
        return m.DocumentChunk(job_id=job.id, offset=req.offset, data=data, total=job.size)

    def _printed(self, device_id: str, req: m.JobPrinted) -> m.Ack:
        job = self._released_job(device_id, req.release_id, req.job_id)
        if job.state == "RELEASING":
            now = self.clock()
            self.store.set_printed(job.id, now)
            self.store.audit(now, f"device:{device_id}", "printed", f"job:{job.id}",
                             req.release_id)
        elif job.state != "PRINTED":
            raise Refused(ErrorCode.JOB_NOT_HELD, f"job {job.id} is {job.state}", "job_id")
        return m.Ack(of=req.TYPE)

    def _failed(self, device_id: str, req: m.JobFailed) -> m.Ack:
        job = self._released_job(device_id, req.release_id, req.job_id)
        if job.state == "PRINTED":
            raise Refused(ErrorCode.JOB_NOT_HELD, f"job {job.id} was printed already", "job_id")
        if job.state == "RELEASING":
            now = self.clock()
            self.store.set_held(job.id, now)
            self.store.audit(now, f"device:{device_id}", "print.failed", f"job:{job.id}",
                             req.reason[:200])
        return m.Ack(of=req.TYPE)


def _summary(j: Job) -> m.JobSummary:
    return m.JobSummary(job_id=j.id, name=j.name, pages=j.pages, color=j.color, duplex=j.duplex,
                        copies=j.copies, size=j.size, submitted_at=j.submitted_at, source=j.source)


def record_status(store: Store, device_id: str, payload: bytes, now: float) -> bool:
    """Keep a device's retained status if it supersedes what we know (epoch rule)."""
    try:
        status = m.decode_status(payload)
    except ProtocolError as exc:
        log.info("device %s sent a bad status: %s", device_id, exc.message)
        return False
    with store.transaction():
        known = store.device_status(device_id)
        if known is None:
            return False
        current = None if known[1] < 0 else m.DeviceStatus(state=known[0], epoch=known[1])
        if not m.status_supersedes(current, status):
            return False
        store.record_status(device_id, status.state, status.epoch, now)
    return True

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

Who is asking (badge, code, password, PIN, the guessing lockout, the badge throttle, sessions)
is cloud/identity.py's: this module hands it identify, associate and logout, and asks it for the
session's user on every job request.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from cloud.hashing import new_token
from cloud.identity import DEFAULT_SESSION_TTL, Identity
from cloud.refusal import Refused, shown
from cloud.storage.port import Job, JobStateError, Store, User, new_id
from cloud.throttle import DEVICE_POLICY, ORG_POLICY, UNKNOWN_AUDIT_EVERY, ThrottlePolicy
from protocol import messages as m
from protocol.errors import ErrorCode, ProtocolError, StoreError

log = logging.getLogger(__name__)

#: Stored answers are kept this long for repeats; a device retries within seconds.
REPLY_RETENTION = 24 * 3600.0
RELEASE_ALL_LIMIT = 500
#: A released job whose document no device fetched within this long goes back to HELD (the
#: release answer was lost, or the device died at once). A fetched job is never lapsed: only
#: the device's journal knows whether it printed.
RELEASE_LEASE = 600.0

__all__ = ["CloudService", "Refused", "record_status"]


class CloudService:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 session_ttl: float = DEFAULT_SESSION_TTL,
                 new_token: Callable[[], str] = new_token,
                 device_throttle: ThrottlePolicy = DEVICE_POLICY,
                 org_throttle: ThrottlePolicy = ORG_POLICY) -> None:
        self.store = store
        self.clock = clock
        #: Who is asking: identification, lockout and sessions (cloud/identity.py).
        self.identity = Identity(store, clock=clock, session_ttl=session_ttl,
                                 new_token=new_token, device_throttle=device_throttle,
                                 org_throttle=org_throttle)

    def handle(self, device_id: str, payload: bytes) -> bytes:
        try:
            request = m.decode_request(payload)
        except ProtocolError as exc:
            log.info("device %s sent a bad request: %s (%s)", device_id, exc.message, exc.code)
            return m.error_from(exc, m.request_type_of(payload))
        except Exception:
            # The codec raises only ProtocolError by design; should a payload find a way past
            # that, the device still gets an answer and the worker keeps serving.
            log.exception("the codec failed on a request from device %s", device_id)
            return m.encode_error("error", ErrorCode.INTERNAL,
                                  "the print service failed on this request")
        try:
            return self._handle(device_id, request)
        except Exception:
            log.exception("internal error on %s from device %s", request.TYPE, device_id)
            return m.encode_error(request.TYPE, ErrorCode.INTERNAL,
                                  "the print service failed on this request; try again")

    def _handle(self, device_id: str, request: m.Request) -> bytes:
        # An association's answer holds a session token, which is never stored in clear; a
        # repeat instead runs again, and finds the card linked already (so it links once).
        mutating = m.is_mutating(request) and not isinstance(request, m.Associate)
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
            return m.encode_error(request.TYPE, exc.error_code, exc.message, exc.field,
                                  exc.retry_after)
        return m.encode_result(result, request.TYPE)

    def _dispatch(self, device_id: str, request: m.Request) -> m.Result:
        match request:
            case m.Identify():
                return self.identity.identify(device_id, request)
            case m.Associate():
                return self.identity.associate(device_id, request)
            case m.DeleteJobs():
                return self._delete(device_id, request)
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
                return self.identity.logout(device_id, request)
        raise Refused(ErrorCode.UNKNOWN_TYPE, f"{request.TYPE} is not handled", "type")

    # ------------------------------------------------------------------ jobs

    def _list(self, device_id: str, req: m.ListJobs) -> m.JobList:
        user = self.identity.session_user(device_id, req.session)
        jobs, total = self.store.held_jobs(user.id, req.offset, req.limit, self.clock())
        return m.JobList(jobs=tuple(_summary(j) for j in jobs), total=total, offset=req.offset)

    def _owned_held(self, user: User, job_ids: tuple[str, ...]) -> list[Job]:
        """The jobs, all of them the user's and held, or a refusal naming the first that is
        not. Another user's job is reported exactly like a missing one: no probing."""
        if len(set(job_ids)) != len(job_ids):
            raise Refused(ErrorCode.INVALID_FIELD, "a job is listed twice", "job_ids")
        now = self.clock()
        found = {j.id: j for j in self.store.jobs(job_ids)}
        for i, job_id in enumerate(job_ids):
            job = found.get(job_id)
            if job is None or job.owner_id != user.id:
                raise Refused(ErrorCode.JOB_NOT_FOUND, f"job {job_id} is not among your jobs",
                              f"job_ids[{i}]")
            if job.state != "HELD" or job.expires_at <= now:
                state = "EXPIRED" if job.state == "HELD" else job.state
                raise Refused(ErrorCode.JOB_NOT_HELD,
                              f"job {job_id} is not waiting for release (it is {state})",
                              f"job_ids[{i}]")
        return [found[i] for i in job_ids]

    def _release(self, device_id: str, req: m.Release) -> m.ReleaseResult:
        user = self.identity.session_user(device_id, req.session)
        now = self.clock()
        if req.all_held:
            if req.job_ids:
                raise Refused(ErrorCode.INVALID_FIELD, "give job_ids or all_held, not both",
                              "job_ids")
            held, _total = self.store.held_jobs(user.id, 0, RELEASE_ALL_LIMIT, now)
            if not held:
                raise Refused(ErrorCode.JOB_NOT_FOUND, "no jobs are waiting for you", "all_held")
            jobs = held
        elif not req.job_ids:
            raise Refused(ErrorCode.INVALID_FIELD, "job_ids must name at least one job "
                          "(or set all_held)", "job_ids")
        else:
            jobs = self._owned_held(user, req.job_ids)
        changes = req.grayscale or req.duplex or req.copies is not None
        if changes and not self.store.org_settings(user.org_id).release_changes:
            changed = ("grayscale" if req.grayscale else "duplex" if req.duplex else "copies")
            raise Refused(ErrorCode.NOT_ALLOWED,
                          "your organisation does not allow changes at release", changed)
        release_id = new_id("rel")
        options = json.dumps({"grayscale": req.grayscale, "duplex": req.duplex,
                              "copies": req.copies}) if changes else ""
        self.store.create_release(release_id, device_id, user.id, now, options)
        for job in jobs:
            self.store.set_releasing(job.id, release_id, device_id, now)
        self.store.audit(now, f"user:{user.id}", "release", release_id,
                         f"device {device_id}: {len(jobs)} job(s)"
                         + (f", changes {options}" if changes else ""))
        return m.ReleaseResult(release_id=release_id, jobs=tuple(
            m.ReleasedJob(job_id=j.id, name=shown(j.name), size=j.size, sha256=j.sha256,
                          pages=j.pages,
                          copies=req.copies or j.copies, color=j.color and not req.grayscale,
                          duplex=j.duplex or req.duplex) for j in jobs))

    def _delete(self, device_id: str, req: m.DeleteJobs) -> m.Ack:
        user = self.identity.session_user(device_id, req.session)
        jobs = self._owned_held(user, req.job_ids)
        now = self.clock()
        for job in jobs:
            self.store.delete_job(job.id, now)
        self.store.audit(now, f"user:{user.id}", "jobs.delete", f"device:{device_id}",
                         ", ".join(j.id for j in jobs))
        return m.Ack(of=req.TYPE)

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
        if req.offset >= job.size:
            # Nothing to read; and an offset past the document may not fit the store's
            # 32-bit slice arguments (PostgreSQL's substring).
            self.store.mark_fetched(job.id, self.clock())
            return m.DocumentChunk(job_id=job.id, offset=req.offset, data=b"", total=job.size)
        try:
            data = self.store.document(job.id, req.offset, req.length)
        except JobStateError as exc:
            raise Refused(exc.error_code, exc.message, "job_id") from None
        self.store.mark_fetched(job.id, self.clock())
        return m.DocumentChunk(job_id=job.id, offset=req.offset, data=data, total=job.size)

    def _printed(self, device_id: str, req: m.JobPrinted) -> m.Ack:
        job = self._released_job(device_id, req.release_id, req.job_id)
        if job.state == "RELEASING":
            now = self.clock()
            # The state above was read before the guarded update: a racing report of the same
            # printing (a redelivery, a reconcile) may have won meanwhile, and then it is
            # recorded already; anything else that won is what the job is now.
            if self.store.set_printed(job.id, now):
                self.store.audit(now, f"device:{device_id}", "printed", f"job:{job.id}",
                                 req.release_id)
                return m.Ack(of=req.TYPE)
            job = self._released_job(device_id, req.release_id, req.job_id)
        if job.state != "PRINTED":
            raise Refused(ErrorCode.JOB_NOT_HELD, f"job {job.id} is {job.state}", "job_id")
        return m.Ack(of=req.TYPE)

    def _failed(self, device_id: str, req: m.JobFailed) -> m.Ack:
        job = self._released_job(device_id, req.release_id, req.job_id)
        if job.state == "PRINTED":
            raise Refused(ErrorCode.JOB_NOT_HELD, f"job {job.id} was printed already", "job_id")
        if job.state == "RELEASING":
            now = self.clock()
            if self.store.set_held(job.id, now):  # guarded, as in _printed
                self.store.audit(now, f"device:{device_id}", "print.failed", f"job:{job.id}",
                                 req.reason[:200])
            elif self.store.jobs([job.id])[0].state == "PRINTED":
                raise Refused(ErrorCode.JOB_NOT_HELD, f"job {job.id} was printed already",
                              "job_id")
        return m.Ack(of=req.TYPE)

    # ------------------------------------------------------------------ housekeeping

    def housekeeping(self) -> dict[str, int]:
        """Expire held jobs past their org's hold time (each one audited) and drop stored
        answers and sessions nobody can use any more. Workers call it every half minute; it is
        safe to run from several at once."""
        now = self.clock()
        with self.store.transaction():
            expired = self.store.expire_jobs(now)
            for job in expired:
                self.store.audit(now, "cloud", "job.expired", f"job:{job.id}",
                                 f"owner user:{job.owner_id}, held since {job.submitted_at:.0f}")
            lapsed = self.store.lapse_unfetched_releases(now - RELEASE_LEASE, now)
            for job_id in lapsed:
                self.store.audit(now, "cloud", "release.lapsed", f"job:{job_id}",
                                 "no device fetched it; back to held")
            replies = self.store.purge_replies(now - REPLY_RETENTION)
            sessions = self.store.purge_sessions(now - 3600)
            # Unknown badges counted but not yet written (the tail of a burst).
            for device_id, n in self.store.unknown_cards_unaudited(now, UNKNOWN_AUDIT_EVERY):
                self.store.audit(now, f"device:{device_id}", "identify.unknown_card", "-",
                                 f"{n} unknown card(s)")
        if expired:
            log.info("expired %d held job(s)", len(expired))
        return {"expired": len(expired), "lapsed": len(lapsed), "replies": replies,
                "sessions": sessions}


def _summary(j: Job) -> m.JobSummary:
    return m.JobSummary(job_id=j.id, name=shown(j.name), pages=j.pages, color=j.color,
                        duplex=j.duplex, copies=j.copies, size=j.size,
                        submitted_at=j.submitted_at, source=shown(j.source))


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

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

Badge lookups are throttled per device and per org (cloud/throttle.py): unknown badges spend
tokens, and once a bucket is empty every badge lookup from that device (or org) is refused alike,
known badges included, before the card is looked at.

Sessions are opaque random tokens; the store keeps only their SHA-256, bound to (device, user),
with a sliding expiry. A token presented by another device is refused and audited.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable

from cloud.hashing import card_hash, code_hash, new_token, token_hash, verify_password
from cloud.storage.port import MAX_CARDS_PER_USER, Job, JobStateError, Store, User, new_id
from cloud.throttle import DEVICE_POLICY, ORG_POLICY, UNKNOWN_AUDIT_EVERY, ThrottlePolicy
from protocol import messages as m
from protocol.errors import ErrorCode, MfdError, ProtocolError, StoreError

log = logging.getLogger(__name__)

DEFAULT_SESSION_TTL = 300.0
#: Guessing: this many wrong codes or passwords for one user, or from one device, within the
#: window lock that user (for passwords) or device (for codes and passwords) for LOCK_SECONDS.
MAX_FAILURES = 5
FAILURE_WINDOW = 600.0
LOCK_SECONDS = 900.0
#: Stored answers are kept this long for repeats; a device retries within seconds.
REPLY_RETENTION = 24 * 3600.0
RELEASE_ALL_LIMIT = 500
#: A released job whose document no device fetched within this long goes back to HELD (the
#: release answer was lost, or the device died at once). A fetched job is never lapsed: only
#: the device's journal knows whether it printed.
RELEASE_LEASE = 600.0

__all__ = ["CloudService", "Refused", "card_hash", "code_hash", "record_status", "token_hash"]


class Refused(MfdError):
    """A well-formed request the cloud will not do; becomes an ``ok: false`` answer."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message, code=code.value)
        self.error_code = code
        self.field = field
        self.retry_after = retry_after


class CloudService:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 session_ttl: float = DEFAULT_SESSION_TTL,
                 new_token: Callable[[], str] = new_token,
                 device_throttle: ThrottlePolicy = DEVICE_POLICY,
                 org_throttle: ThrottlePolicy = ORG_POLICY) -> None:
        self.store = store
        self.clock = clock
        self.session_ttl = session_ttl
        self.new_token = new_token
        self.device_throttle = device_throttle
        self.org_throttle = org_throttle
        self._device_orgs: dict[str, tuple[str, float]] = {}
        self._org_secrets: dict[str, bytes] = {}

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
                return self._identify(device_id, request)
            case m.Associate():
                return self._associate(device_id, request)
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
                return self._logout(device_id, request)
        raise Refused(ErrorCode.UNKNOWN_TYPE, f"{request.TYPE} is not handled", "type")

    # ------------------------------------------------------------------ identity

    def _org_of(self, device_id: str) -> str:
        # A device's org is read once a minute at most: it is on every identify's path, and a
        # device moves between orgs only by re-registration.
        now = time.monotonic()
        cached = self._device_orgs.get(device_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        org_id = self.store.device_org(device_id)
        if org_id is None:
            raise Refused(ErrorCode.UNKNOWN_DEVICE,
                          f"device {device_id} is not registered; ask an administrator")
        if len(self._device_orgs) > 10_000:
            self._device_orgs.clear()
        self._device_orgs[device_id] = (org_id, now + 60.0)
        return org_id

    def _secret(self, org_id: str) -> bytes:
        # An org's secret never changes (every stored card hash depends on it).
        secret = self._org_secrets.get(org_id)
        if secret is None:
            secret = self._org_secrets[org_id] = self.store.org_secret(org_id)
        return secret

    def _identify(self, device_id: str, req: m.Identify) -> m.IdentifyResult:
        org_id = self._org_of(device_id)
        if req.method == "card":
            self._check_throttle(device_id, org_id)
            user = self.store.user_by_card(org_id, card_hash(self._secret(org_id),
                                                             req.value))
            if user is None:
                self._unknown_card(device_id, org_id)
                raise Refused(ErrorCode.UNKNOWN_CARD, "this card is not known", "value")
            if req.pin is not None:
                self._check_pin(device_id, org_id, user, req.pin)
        else:
            user = self._prove(device_id, org_id, req.method, req.value, req.username)
        return self._login(device_id, user, req.method)

    def _check_throttle(self, device_id: str, org_id: str) -> None:
        """Refuse every badge lookup while this device or its org is throttled, before the
        card is looked at: the answer must not depend on the card."""
        now = self.clock()
        hit = self.store.throttled(device_id, org_id, now)
        if hit is not None:
            scope, _subject, until = hit
            raise Refused(ErrorCode.THROTTLED, self._throttled_message(scope, until),
                          retry_after=max(1, math.ceil(until - now)))

    def _throttled_message(self, scope: str, until: float) -> str:
        when = time.strftime("%H:%M", time.localtime(until))
        where = "at this copier" if scope == "device" else "in your organisation"
        return f"too many unknown badges {where}: badge sign-in is paused until {when}"

    def _unknown_card(self, device_id: str, org_id: str) -> None:
        """An unknown badge: audited in aggregate, and a token of the device's and the org's
        bucket. The one that finds a bucket empty starts the throttle and is answered by it."""
        now = self.clock()
        n = self.store.unknown_card_to_audit(device_id, now, UNKNOWN_AUDIT_EVERY)
        if n:
            self.store.audit(now, f"device:{device_id}", "identify.unknown_card", "-",
                             f"{n} unknown card(s)")
        for scope, subject, policy in (("device", device_id, self.device_throttle),
                                       ("org", org_id, self.org_throttle)):
            ahead = self.store.spend_token(scope, subject, now, policy.interval)
            if ahead <= policy.burst * policy.interval:
                continue
            until = now + policy.duration
            if self.store.start_throttle(scope, subject, now, until):
                self.store.audit(now, "cloud", "throttle", f"{scope}:{subject}",
                                 f"more than {policy.burst} unknown badges at once or "
                                 f"{60 / policy.interval:g} a minute; badge sign-in paused "
                                 f"{policy.duration / 60:g} min")
                log.warning("%s %s throttled for %g s: too many unknown badges", scope, subject,
                            policy.duration)
            raise Refused(ErrorCode.THROTTLED, self._throttled_message(scope, until),
                          retry_after=math.ceil(policy.duration))

    def _login(self, device_id: str, user: User, method: str, note: str = "") -> m.IdentifyResult:
        now = self.clock()
        token = self.new_token()
        self.store.create_session(token_hash(token), device_id, user.id, now + self.session_ttl)
        self.store.audit(now, f"device:{device_id}", "login", f"user:{user.id}", method)
        return m.IdentifyResult(session=token, user_id=user.id,
                                display_name=_shown(user.display_name),
                                expires_in=int(self.session_ttl), note=note)

    def _prove(self, device_id: str, org_id: str, method: str, value: str,
               username: str | None) -> User:
        """Who is this, by access code or username + password, with the guessing lockout."""
        now = self.clock()
        self._check_lock("device", device_id, now)
        if method == "code":
            user = self.store.user_by_code(org_id, code_hash(self._secret(org_id),
                                                             value))
            if user is None:
                self._failed_guess(now, device_id, None, "code")
                raise Refused(ErrorCode.UNKNOWN_CODE, "this access code is not known", "value")
            return user
        if not username:
            raise Refused(ErrorCode.INVALID_FIELD, "username is required with a password",
                          "username")
        subject = username.strip().lower()
        self._check_lock("user", subject, now)
        user = self.store.user_by_email(subject)
        ok = verify_password(value, self.store.password_hash(user.id) if user else None)
        if user is None or user.org_id != org_id or not ok:
            self._failed_guess(now, device_id, subject, "password")
            raise Refused(ErrorCode.INVALID_PASSWORD, "the username or password is wrong",
                          "value")
        self.store.clear_failures("user", subject)
        return user

    def _check_pin(self, device_id: str, org_id: str, user: User, pin: str) -> None:
        """Card + PIN: the PIN is the user's access code. Wrong PINs count as guesses against
        the user (a stolen badge gives five tries) and the device."""
        now = self.clock()
        self._check_lock("device", device_id, now)
        self._check_lock("user", user.email, now)
        owner = self.store.user_by_code(org_id, code_hash(self._secret(org_id), pin))
        if owner is None or owner.id != user.id:
            self._failed_guess(now, device_id, user.email, "pin")
            raise Refused(ErrorCode.WRONG_PIN, "the PIN does not match this badge", "pin")

    def _check_lock(self, scope: str, subject: str, now: float) -> None:
        until = self.store.locked_until(scope, subject, now)
        if until is not None:
            raise Refused(ErrorCode.LOCKED_OUT, self._locked_message(scope, until),
                          retry_after=math.ceil(until - now))

    def _locked_message(self, scope: str, until: float) -> str:
        when = time.strftime("%H:%M", time.localtime(until))
        who = "this copier" if scope == "device" else "this account"
        return f"too many wrong attempts: {who} is locked until {when}"

    def _failed_guess(self, now: float, device_id: str, user: str | None, method: str) -> None:
        self.store.audit(now, f"device:{device_id}", f"identify.wrong_{method}",
                         f"user:{user}" if user else "-")
        for scope, subject in (("device", device_id), ("user", user)):
            if subject is None:
                continue
            if self.store.record_failure(scope, subject, now, FAILURE_WINDOW) >= MAX_FAILURES:
                until = now + LOCK_SECONDS
                self.store.lock(scope, subject, until)
                self.store.clear_failures(scope, subject)
                self.store.audit(now, "cloud", "lockout", f"{scope}:{subject}",
                                 f"{MAX_FAILURES} wrong {method}s within "
                                 f"{FAILURE_WINDOW / 60:g} min")
                raise Refused(ErrorCode.LOCKED_OUT, self._locked_message(scope, until),
                              retry_after=math.ceil(LOCK_SECONDS))

    def _associate(self, device_id: str, req: m.Associate) -> m.IdentifyResult:
        org_id = self._org_of(device_id)
        # A badge lookup too: "someone else's badge" tells cards from non-cards.
        self._check_throttle(device_id, org_id)
        secret = self._secret(org_id)
        h = card_hash(secret, req.card)
        owner = self.store.user_by_card(org_id, h)
        user = self._prove(device_id, org_id, req.method, req.value, req.username)
        now = self.clock()
        if owner is not None and owner.id != user.id:
            self.store.audit(now, f"device:{device_id}", "card.associate_refused",
                             f"user:{user.id}", "card belongs to another user")
            self._unknown_card(device_id, org_id)
            raise Refused(ErrorCode.NOT_ALLOWED, "this card belongs to someone else; ask your "
                          "administrator", "card")
        note = "Your card is linked: next time, just tap it."
        if owner is None:
            cards = self.store.user_cards(user.id)
            if len(cards) >= MAX_CARDS_PER_USER:
                if self.store.org_settings(org_id).card_policy == "refuse":
                    raise Refused(ErrorCode.CARD_LIMIT, f"you have {len(cards)} cards already; "
                                  "ask your administrator to remove one", "card")
                self.store.remove_card(org_id, cards[0][0])
                self.store.audit(now, f"user:{user.id}", "card.replaced", f"user:{user.id}",
                                 "oldest card replaced by self-association")
                note = "Your card is linked; it replaces your oldest card."
            self.store.add_card(org_id, h, user.id, now)
            self.store.audit(now, f"device:{device_id}", "card.self_associate",
                             f"user:{user.id}", req.method)
        return self._login(device_id, user, f"associate:{req.method}", note)

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
        user = self._session_user(device_id, req.session)
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
            m.ReleasedJob(job_id=j.id, name=_shown(j.name), size=j.size, sha256=j.sha256,
                          pages=j.pages,
                          copies=req.copies or j.copies, color=j.color and not req.grayscale,
                          duplex=j.duplex or req.duplex) for j in jobs))

    def _delete(self, device_id: str, req: m.DeleteJobs) -> m.Ack:
        user = self._session_user(device_id, req.session)
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
    return m.JobSummary(job_id=j.id, name=_shown(j.name), pages=j.pages, color=j.color,
                        duplex=j.duplex, copies=j.copies, size=j.size,
                        submitted_at=j.submitted_at, source=_shown(j.source))


def _shown(text: str) -> str:
    """Text from the store as the protocol carries it: a NUL (which a SQLite store can hold,
    from a print client's job name) would make the device refuse the whole answer."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


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

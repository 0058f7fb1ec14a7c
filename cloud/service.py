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
* anything unexpected is logged and answered ``internal``; the worker keeps serving;
* every transaction is on disk before it is answered, except a sign-in's (``identify``) and a
  list's (``jobs.list``: a session's sliding expiry), which may be lost in a crash of the
  database: cloud/storage/durability.py says why that is safe.

This module decides nothing about the requests themselves: who is asking (badge, code,
password, PIN, the guessing lockout, the badge throttle, sessions) is cloud/identity.py's, and
the job requests (list, release, delete, fetch, printed, failed) are cloud/jobs.py's, offline
mode's (bundle, sealed documents, report) cloud/offline.py's and cloud/offline_report.py's. It
frames them: decoding, one transaction each, stored answers, error answers, and housekeeping.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from cloud import release_orders
from cloud.hashing import new_token
from cloud.identity import DEFAULT_SESSION_TTL, Identity
from cloud.jobs import Jobs
from cloud.offline import Offline, with_offline
from cloud.offline_report import Reconcile
from cloud.refusal import Refused
from cloud.statuses import changes
from cloud.storage.durability import lazy_transaction
from cloud.storage.port import Store
from cloud.throttle import THROTTLES, UNKNOWN_AUDIT_EVERY, Throttles
from protocol import messages as m
from protocol.errors import ErrorCode, ProtocolError, StoreError, StoreUnavailable

log = logging.getLogger(__name__)

#: Stored answers are kept this long for repeats; a device retries within seconds.
REPLY_RETENTION = 24 * 3600.0
#: Verifiers of removed cards and replaced codes are purged this often (seconds): a scan of
#: them all, so not at every housekeeping round.
VERIFIER_PURGE_EVERY = 600.0
#: Offline bundles are kept this long after they expire (seconds): a report of what was
#: printed under one comes when the link is back, maybe days later, and is checked against it.
BUNDLE_GRACE = 7 * 24 * 3600.0
#: A released job whose document no device fetched within this long goes back to HELD (the
#: release answer was lost, or the device died at once). A fetched job is never lapsed: only
#: the device's journal knows whether it printed.
RELEASE_LEASE = 600.0

#: Seconds a device is told to wait when the database cannot be reached (a PostgreSQL restart
#: takes a few; the device retries a request itself within its own timeout).
STORE_RETRY_AFTER = 2
#: While the database is out of reach, at most one log line per this many seconds.
OUTAGE_LOG_EVERY = 30.0

__all__ = ["CloudService", "Refused", "record_status"]


class _Outage:
    """One warning when the database goes out of reach, a count every ``OUTAGE_LOG_EVERY``
    seconds while it stays so, and one line when it answers again: a worker answering hundreds
    of requests a second must not write a traceback for each."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.down = False
        self.since = 0.0
        self.logged = 0.0
        self.refused = 0
        self._lock = threading.Lock()

    def seen(self, exc: StoreUnavailable) -> None:
        now = self.clock()
        with self._lock:
            self.refused += 1
            if not self.down:
                self.down, self.since, self.logged = True, now, now
                log.warning("the store cannot be reached (%s); answering busy until it can",
                            exc.message)
            elif now - self.logged >= OUTAGE_LOG_EVERY:
                self.logged = now
                log.warning("the store is still out of reach after %.0f s (%d requests "
                            "answered busy): %s", now - self.since, self.refused, exc.message)

    def back(self) -> None:
        """A request went through the store: if it was out of reach, it is back."""
        with self._lock:
            if self.down:
                log.warning("the store answers again after %.0f s (%d requests answered busy)",
                            self.clock() - self.since, self.refused)
                self.down, self.refused = False, 0


class CloudService:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 session_ttl: float = DEFAULT_SESSION_TTL,
                 new_token: Callable[[], str] = new_token,
                 throttles: Throttles = THROTTLES) -> None:
        self.store = store
        self.clock = clock
        #: Who is asking: identification, lockout and sessions (cloud/identity.py).
        self.identity = Identity(store, clock=clock, session_ttl=session_ttl,
                                 new_token=new_token, throttles=throttles)
        #: The signed-in user's held jobs, releases and the device's printing reports.
        self.jobs = Jobs(store, self.identity, clock=clock)
        self._outage = _Outage(clock)
        #: Offline mode: the device's signed bundle, its sealed documents, its report of what
        #: it did offline (cloud/offline.py, cloud/offline_report.py).
        self.offline = Offline(store, self.identity, clock=clock)
        self.reconcile = Reconcile(store, self.identity, clock=clock)
        self._verifiers_purged = -VERIFIER_PURGE_EVERY

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
            reply = self._handle(device_id, request)
        except StoreUnavailable as exc:
            # The database is restarting or out of reach: nothing was done (or a commit's fate
            # is unknown, and a repeat with the same request_id finds its stored answer), so
            # the device is told to ask again shortly, which it does on its own.
            self._outage.seen(exc)
            return m.encode_error(request.TYPE, ErrorCode.BUSY,
                                  "the print service cannot reach its database; try again",
                                  retry_after=STORE_RETRY_AFTER)
        except Exception:
            log.exception("internal error on %s from device %s", request.TYPE, device_id)
            return m.encode_error(request.TYPE, ErrorCode.INTERNAL,
                                  "the print service failed on this request; try again")
        if self._outage.down:
            self._outage.back()
        return reply

    def _handle(self, device_id: str, request: m.Request) -> bytes:
        # An association's answer holds a session token, which is never stored in clear; a
        # repeat instead runs again, and finds the card linked already (so it links once).
        mutating = m.is_mutating(request) and not isinstance(request, m.Associate)
        request_id: str = getattr(request, "request_id", "")
        for attempt in (1, 2):
            try:
                with self._transaction(request):
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

    def _transaction(self, request: m.Request) -> contextlib.AbstractContextManager[None]:
        """A badge, code or password sign-in, and a list of held jobs, commit without waiting
        for the disk: what they write (a session, its audit row, a token of a budget, a
        session's later expiry) may be lost in a database crash, and the person then signs in
        again; whatever in a sign-in must last (a lockout, a throttle started) makes it durable
        itself (cloud/identity.py). Everything else, releases, deletes, printed reports and
        logouts first, is on disk before it is answered (cloud/storage/durability.py). A
        sealed chunk writes nothing, and an offline bundle little that matters (its sequence
        number, lost, is exceeded by the clock's next), except the jobs it lists, which
        cloud/offline.py makes durable; an offline report is durable."""
        if isinstance(request, (m.Identify, m.ListJobs, m.OfflineSync, m.FetchOffline)):
            return lazy_transaction(self.store)
        return self.store.transaction()

    def _answer(self, device_id: str, request: m.Request) -> bytes:
        try:
            result = self._dispatch(device_id, request)
        except Refused as exc:
            return m.encode_error(request.TYPE, exc.error_code, exc.message, exc.field,
                                  exc.retry_after)
        return m.encode_result(result, request.TYPE)

    def _dispatch(self, device_id: str, request: m.Request) -> m.Result:
        match request:
            # A user's answer carries their first page of jobs where the device asks for it
            # (one round trip to the list instead of two), read in this same transaction.
            case m.Identify():
                return self.jobs.with_first_page(self.identity.identify(device_id, request),
                                                 request.page_size)
            case m.Associate():
                return self.jobs.with_first_page(self.identity.associate(device_id, request),
                                                 request.page_size)
            case m.DeleteJobs():
                return self.jobs.delete(device_id, request)
            case m.ListJobs():
                return self.jobs.held(device_id, request)
            case m.Release():
                return self.jobs.release(device_id, request)
            # The device's first word about a release ordered from the portal is its taking
            # it: the workers stop pushing the order (cloud/release_orders.py).
            case m.FetchDocument():
                return self._taken(device_id, request.release_id,
                                   self.jobs.document(device_id, request))
            case m.JobPrinted():
                return self._taken(device_id, request.release_id,
                                   self.jobs.printed(device_id, request))
            case m.JobFailed():
                return self._taken(device_id, request.release_id,
                                   self.jobs.failed(device_id, request))
            case m.Logout():
                return self.identity.logout(device_id, request)
            case m.OfflineSync():
                return self.offline.sync(device_id, request)
            case m.FetchOffline():
                return self.offline.document(device_id, request)
            case m.OfflineReport():
                return self.reconcile.report(device_id, request)
        raise Refused(ErrorCode.UNKNOWN_TYPE, f"{request.TYPE} is not handled", "type")

    def _taken(self, device_id: str, release_id: str, result: m.Result) -> m.Result:
        release_orders.taken(self.store, device_id, release_id, self.clock())
        return result

    # ------------------------------------------------------------------ notices

    def devices_to_tell(self, limit: int = 500) -> list[str]:
        """The devices to tell "your user's jobs changed": where the owner of a job that just
        became HELD is signed in, each device once; the notices are taken (a worker that
        crashes before publishing loses a prompt, never a job)."""
        with self.store.transaction():
            return self.store.take_job_notices(self.clock(), limit)

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
            verifiers = self._purge_verifiers()
            bundles = self._purge_bundles(now)
            sessions = self.store.purge_sessions(now - 3600)
            # Unknown badges counted but not yet written (the tail of a burst).
            for device_id, n in self.store.unknown_cards_unaudited(now, UNKNOWN_AUDIT_EVERY):
                self.store.audit(now, f"device:{device_id}", "identify.unknown_card", "-",
                                 f"{n} unknown card(s)")
        if expired:
            log.info("expired %d held job(s)", len(expired))
        return {"expired": len(expired), "lapsed": len(lapsed), "replies": replies,
                "sessions": sessions, "verifiers": verifiers, "bundles": bundles}

    def _purge_verifiers(self) -> int:
        """Offline verifiers of credentials that are gone (cloud/offline.py), now and then."""
        store = with_offline(self.store)
        if store is None or time.monotonic() - self._verifiers_purged < VERIFIER_PURGE_EVERY:
            return 0
        self._verifiers_purged = time.monotonic()
        return store.purge_offline_verifiers()


    def _purge_bundles(self, now: float) -> int:
        """Offline bundles expired more than :data:`BUNDLE_GRACE` ago: a device reports what it
        printed under one when the link is back, which may be after it expired."""
        store = with_offline(self.store)
        return 0 if store is None else store.purge_offline_bundles(now - BUNDLE_GRACE)


def record_status(store: Store, device_id: str, payload: bytes, now: float) -> bool:
    """Keep a device's retained status if it supersedes what we know (epoch rule) and is not
    what we know already; True if it was written. The replay every connect brings (the same
    state and epoch) is one read and no commit; the write itself applies the epoch rule, so a
    status read as newer but overtaken meanwhile by another worker's changes nothing."""
    try:
        status = m.decode_status(payload)
    except ProtocolError as exc:
        log.info("device %s sent a bad status: %s", device_id, exc.message)
        return False
    if not changes(store.device_status(device_id), status):
        return False
    with store.transaction():
        return store.supersede_status(device_id, status.state, status.epoch, now)

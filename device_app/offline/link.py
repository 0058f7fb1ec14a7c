"""A cloud link that answers for the cloud when the cloud is gone.

Theory of operation
-------------------
``OfflineLink`` wraps the device's real link (device_app/link.py) and is the app's link
(device_app/ports.py ``CloudLink``). Its worker thread (never the app's loop) does, while the
policy has offline mode on:

* **online**: first the pending ``offline.report`` (what was done offline, in order, at most
  500 events and MAX_REQUEST_BYTES less a margin encoded a report, under a request id kept in
  the store so a resend is the same report; asked again until the cloud answers; after
  ``too_large`` fewer go under a new id), then ``offline.sync`` on link-up and every
  ``sync_every`` seconds: the bundle is checked (``open_bundle``) and kept, or refused with its
  reason code in the log (never its content) and the old one stays. Then the sealed chunks of
  the bundle's jobs not here yet are fetched (``offline.document``), a few at a time; the copies
  of jobs the bundle no longer lists are dropped.
* **offline**: once the real link has been down for ``policy.offline_grace`` seconds and the
  bundle can sign people in, the link says it is up (``on_connection(True)``, with ``local``
  set, so the panel says it is in offline mode) and the desk (desk.py) answers everything.

Requests about what the desk made (a local session, an ``off-`` release) are always answered
locally, also once the cloud is back: a print started offline finishes and reports locally,
and a session started offline stays so until it ends; new sign-ins go to the cloud again as
soon as the real link is up.

Until the cloud has answered the report of a job printed offline (or while an offline release
prints it), the cloud may still hold that job: so every online job list and first page the link
passes to the app leaves those jobs out, an online release naming one is refused
(``job_not_held``), one of "everything held" is answered ``busy``, and a release order naming
one is dropped. Once the report is answered nothing is filtered. (A printed event the cloud
refused outright stays in the journal and filtered until a restart: store.py.)

The real link calls back on its own thread (paho's network thread): every callback here catches
whatever the store raises, logs it and has the worker try again, so a full disk never kills
that thread.
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from device_app.offline.desk import Desk
from device_app.ports import CloudLink, Reply
from protocol import messages as m
from protocol import offline as off
from protocol.errors import ErrorCode, LinkError, MfdError, ProtocolError, RemoteError
from protocol.managed import Policy

log = logging.getLogger(__name__)

#: How often the bundle is asked for while online (and offline mode is on).
SYNC_EVERY_S = 300.0
#: Chunks of pre-delivery in flight at once.
FETCHES_IN_FLIGHT = 4
#: After an unanswered report or sync, wait this long before asking again.
RETRY_S = 10.0
#: Answers a report can never get past (it would be refused again as it is): logged, dropped.
#: ``too_large`` is not among them: nothing was done, fewer events go under a new id; and a
#: ``printed`` event is never dropped (store.py ``report_refused``).
_HOPELESS = frozenset({"bad_request", "invalid_field"})
_TICK_S = 0.1


def _request_id() -> str:
    return "o" + secrets.token_hex(12)


class OfflineLink:
    """The app's cloud link, with offline mode (module doc)."""

    def __init__(self, inner: CloudLink, desk: Desk, *, policy: Callable[[], Policy],
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 grace: float | None = None, sync_every: float = SYNC_EVERY_S,
                 fetches: int = FETCHES_IN_FLIGHT, retry: float = RETRY_S) -> None:
        self.inner = inner
        self.desk = desk
        self.policy = policy
        self.clock = clock
        self.monotonic = monotonic
        #: Seconds down before going offline; None: the policy's ``offline_grace``.
        self.grace = grace
        self.sync_every = sync_every
        self.fetches = fetches
        self.retry = retry
        self.on_connection: Callable[[bool], None] | None = None
        self._on_command: Callable[[bytes], None] | None = None
        self.connected = bool(inner.connected)
        #: Answering for the cloud (offline mode): what the panel shows.
        self.local = False
        self._lock = threading.RLock()  # the desk's
        self._down_since: float | None = None if inner.connected else monotonic()
        self._sync_due = 0.0  # monotonic: sync now
        self._report_due = 0.0
        self._reporting = False
        self._syncing = False
        self._in_flight: set[tuple[str, int]] = set()
        #: Chunks the cloud refused: not asked for again until the next bundle.
        self._refused_chunks: set[tuple[str, int]] = set()
        #: Chunks may be missing: look (after a bundle, an answer, a reconnect).
        self._want_more = True
        self._stop = threading.Event()
        self._wake = threading.Event()
        #: What happened, for tests and a technician: counts of syncs, refusals, reports.
        self.synced = 0
        self.refused: list[str] = []
        self.reported = 0
        self.raced: list[str] = []
        #: The time (monotonic) a finished step of the worker looked at: a test's signal.
        self.stepped_at = 0.0
        # Connection changes seen by the real link, and the count the last finished step saw:
        # a step that began before a change has not acted on it (``caught_up``).
        self._changes = 0
        self._stepped_changes = 0
        inner.on_connection = self._inner_changed
        # The runner wires the cmd topic on the real link before wrapping it: its handler is
        # kept and called through the filter (release orders of jobs printed offline).
        self.on_command = getattr(inner, "on_command", None)
        self._thread = threading.Thread(target=self._run, name="offline-link", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ what the app touches

    @property
    def on_notify(self) -> Callable[[bytes], None] | None:
        return getattr(self.inner, "on_notify", None)

    @on_notify.setter
    def on_notify(self, value: Callable[[bytes], None] | None) -> None:
        self.inner.on_notify = value  # type: ignore[attr-defined]

    @property
    def on_command(self) -> Callable[[bytes], None] | None:
        return self._on_command

    @on_command.setter
    def on_command(self, value: Callable[[bytes], None] | None) -> None:
        self._on_command = value
        if value is not None or hasattr(self.inner, "on_command"):
            self.inner.on_command = (  # type: ignore[attr-defined]
                None if value is None else self._command)

    def _command(self, data: bytes) -> None:
        # paho's thread: a release order naming a job printed offline and not reported yet is
        # dropped (the cloud pushes it again; once the report is taken it knows the job went).
        target = self._on_command
        if target is None:
            return
        try:
            order = m.decode_command(data)
        except ProtocolError:
            order = None  # not ours to judge: the app refuses it as before
        try:
            if order is not None:
                held = self._unreported()
                named = [j.job_id for j in order.jobs if j.job_id in held]
                if named:
                    log.warning("release order %s dropped: job %s was printed offline and "
                                "the print service is being told", order.release_id, named[0])
                    return
        except Exception:
            log.exception("offline link: a release order could not be checked; dropped")
            return
        target(data)

    def __getattr__(self, name: str) -> Any:
        # device_id, round_trips, publish_event, start, engine, firmware...: the real link's.
        if name in ("inner", "desk"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def request(self, request: m.Request, reply: Reply, timeout: float | None = None) -> None:
        if self._local_for(request):
            reply(self._answer(request))
            return
        refused = self._refuse_online(request)
        if refused is not None:
            reply(refused)
            return
        self.inner.request(request, functools.partial(self._filtered, reply), timeout)

    def call(self, request: m.Request, timeout: float | None = None) -> m.Result:
        if self._local_for(request):
            outcome = self._answer(request)
            if isinstance(outcome, MfdError):
                raise outcome
            return outcome
        refused = self._refuse_online(request)
        if refused is not None:
            raise refused
        return self._filter(self.inner.call(request, timeout))

    # ------------------------------------------------------------ jobs printed offline, online

    def _unreported(self) -> set[str]:
        with self._lock:
            return self.desk.unreported_prints()

    def _refuse_online(self, request: m.Request) -> RemoteError | None:
        if not isinstance(request, m.Release):
            return None
        try:
            held = self._unreported()
        except Exception:
            log.exception("offline link: the offline store cannot be read; release refused")
            return RemoteError("busy", "try again in a moment", retry_after=5)
        if held and request.all_held and not request.job_ids:
            # "Everything held" would take a job printed offline too: not until it is told.
            return RemoteError("busy", "jobs printed offline are being reported to the print "
                               "service; try again in a moment", retry_after=5)
        named = [j for j in request.job_ids if j in held]
        if named:
            return RemoteError(ErrorCode.JOB_NOT_HELD.value, f"job {named[0]} was printed "
                               "offline; the print service is being told")
        return None

    def _filtered(self, reply: Reply, outcome: m.Result | MfdError) -> None:
        if not isinstance(outcome, MfdError):
            try:
                outcome = self._filter(outcome)
            except Exception:
                log.exception("offline link: an online answer could not be filtered")
                outcome = RemoteError("busy", "try again in a moment", retry_after=5)
        reply(outcome)

    def _filter(self, outcome: m.Result) -> m.Result:
        """``outcome`` without the jobs printed offline and not reported yet."""
        if not isinstance(outcome, m.JobList | m.IdentifyResult) \
                or (isinstance(outcome, m.IdentifyResult) and outcome.jobs is None):
            return outcome
        held = self._unreported()
        if not held:
            return outcome
        if isinstance(outcome, m.JobList):
            kept = tuple(j for j in outcome.jobs if j.job_id not in held)
            return replace(outcome, jobs=kept,
                           total=max(outcome.total - (len(outcome.jobs) - len(kept)), 0))
        page = outcome.first_page()
        assert page is not None
        return outcome.with_first_page(self._filter(page))  # type: ignore[arg-type]

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(2.0)
        with self._lock:
            self.desk.forget_keys()
        self.inner.close()

    def _local_for(self, request: m.Request) -> bool:
        if isinstance(request, m.OfflineSync | m.FetchOffline | m.OfflineReport):
            return False
        with self._lock:
            return self.desk.owns(request) or (self.local and not self.inner.connected)

    def _answer(self, request: m.Request) -> m.Result | MfdError:
        try:
            with self._lock:
                return self.desk.answer(request, self.clock(), self.monotonic())
        except MfdError as exc:
            return exc
        except Exception as exc:  # a bug in the desk must not leave a request unanswered
            log.exception("offline desk failed on %s", request.TYPE)
            return MfdError(f"offline desk failed: {type(exc).__name__}", code="internal")

    # ------------------------------------------------------------ the link's state

    def _offline_on(self) -> bool:
        return bool(self.policy().offline)

    def _inner_changed(self, up: bool) -> None:
        # The real link's thread: note it, tell the app what it needs, wake the worker.
        try:
            self._changed(up)
        except Exception:
            log.exception("offline link: the link's change could not be handled; the worker "
                          "looks again")
            self._wake.set()

    def _changed(self, up: bool) -> None:
        with self._lock:
            self._changes += 1
            if up:
                self._down_since = None
                self._sync_due = self._report_due = 0.0
                self._want_more = True
                was_local, self.local = self.local, False
                self.connected = True
            else:
                self._down_since = self.monotonic()
                was_local = False
                # Someone signed in offline is still here: their session goes on locally
                # without a grace (it never needed the print service).
                self.local = bool(self.desk.sessions) and self._offline_on() \
                    and self.desk.usable(self.clock())
                self.connected = self.local
        if up and was_local:
            log.info("the print service is back: offline mode ends (a session started offline "
                     "stays local until it ends)")
        self._tell(self.connected)
        self._wake.set()

    def _tell(self, up: bool) -> None:
        if self.on_connection is not None:
            self.on_connection(up)

    def _grace(self) -> float:
        return self.grace if self.grace is not None else float(self.policy().offline_grace)

    def _step_expiry(self) -> None:
        with self._lock:
            if self.desk.drop_if_expired(self.clock()):
                log.warning("the offline bundle has expired: it and its documents are dropped")

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(_TICK_S)
            self._wake.clear()
            now = self.monotonic()
            changes = self._changes
            try:
                self._step(now)
                self.stepped_at = now  # a step that saw ``now`` is done
                self._stepped_changes = changes
            except Exception:  # the worker must go on: it is offline mode's only thread
                log.exception("offline link: a step failed; trying again")

    def _step(self, now: float) -> None:
        self._step_expiry()
        if self.inner.connected:
            self._online(now)
            return
        with self._lock:
            local = self.local
            usable = self.desk.usable(self.clock())
            down = self._down_since
        if not local and down is not None and self._offline_on() and usable \
                and now - down >= self._grace():
            with self._lock:
                self.local = True
                self.connected = True
            log.warning("the print service has been unreachable for %.0f s: offline mode "
                        "(sign-in from the offline list)", now - down)
            self._tell(True)
        elif local and not usable:
            with self._lock:
                self.local = False
                self.connected = False
            log.warning("offline mode ends: the offline list can no longer be used")
            self._tell(False)

    # ------------------------------------------------------------ online: report, sync, fetch

    def _online(self, now: float) -> None:
        # Decided under the lock, sent outside it: the real link answers on its own thread,
        # and that answer takes the lock.
        sends: list[tuple[m.Request, Reply]] = []
        with self._lock:
            if self._reporting or self._syncing:
                return
            if now >= self._report_due:
                # Whatever the policy says now: what was done offline is always reported.
                report = self.desk.pending_report(_request_id)
                if report is not None:
                    self._reporting = True
                    self._report_due = now + self.retry
                    sends.append((report, functools.partial(self._reported, report)))
            if not sends and self._offline_on():
                if now >= self._sync_due:
                    self._syncing = True
                    self._sync_due = now + self.retry
                    seq = self.desk.bundle.seq if self.desk.bundle is not None else 0
                    sends.append((m.OfflineSync(seq=seq), self._synced))
                elif self._want_more:
                    sends.extend(self._fetches())
        for request, reply in sends:
            self.inner.request(request, reply)

    def _reported(self, report: m.OfflineReport, outcome: m.Result | MfdError) -> None:
        # paho's thread: a store error is logged and the report asked again later.
        try:
            self._take_report(report, outcome)
        except Exception:
            log.exception("offline link: the report's answer could not be kept; asked again")
            with self._lock:
                self._reporting = False
                self._report_due = self.monotonic() + self.retry
        self._wake.set()

    def _take_report(self, report: m.OfflineReport, outcome: m.Result | MfdError) -> None:
        with self._lock:
            self._reporting = False
            if isinstance(outcome, m.OfflineReportResult):
                self.desk.report_answered(report.request_id)
                self.reported += len(report.events)
                self.raced.extend(outcome.raced)
                self._report_due = 0.0
                if outcome.raced or outcome.gone:
                    log.warning("offline report: %d job(s) printed here had been printed "
                                "elsewhere first (%s); %d were gone", len(outcome.raced),
                                ", ".join(outcome.raced[:10]), len(outcome.gone))
                log.info("offline report of %d event(s) taken by the print service",
                         outcome.accepted)
            elif isinstance(outcome, RemoteError) and outcome.code == "too_large":
                log.warning("the offline report of %d event(s) was too large for the print "
                            "service; fewer go next", len(report.events))
                self.desk.report_refused(report.request_id, outcome.code)
                self._report_due = 0.0
            elif isinstance(outcome, RemoteError) and outcome.code in _HOPELESS:
                log.error("the print service refused the offline report (%s: %s); its %d "
                          "event(s) are dropped, printed jobs excepted", outcome.code,
                          outcome.message, len(report.events))
                self.desk.report_refused(report.request_id, outcome.code)
            else:
                log.info("offline report not taken yet (%s); asked again later",
                         getattr(outcome, "code", "?"))

    def _synced(self, outcome: m.Result | MfdError) -> None:
        # paho's thread: a store error is logged and the sync asked again later.
        try:
            self._take_sync(outcome)
        except Exception:
            log.exception("offline link: the bundle could not be kept; asked again")
            with self._lock:
                self._syncing = False
                self._sync_due = self.monotonic() + self.retry
        self._wake.set()

    def _take_sync(self, outcome: m.Result | MfdError) -> None:
        with self._lock:
            self._syncing = False
            if isinstance(outcome, m.OfflineBundle):
                self._sync_due = self.monotonic() + self.sync_every
                try:
                    bundle = self.desk.accept(outcome.body, outcome.signature, self.clock())
                except off.OfflineError as exc:
                    self.refused.append(exc.code)
                    log.error("offline bundle refused (%s); the one held stays", exc.code)
                else:
                    self.synced += 1
                    self._refused_chunks.clear()
                    self._want_more = True
                    log.info("offline bundle %d taken: %d user(s), %d job(s)", bundle.seq,
                             len(bundle.users), len(bundle.jobs))
            elif isinstance(outcome, RemoteError):
                # not_allowed: the org keeps offline mode off here; unknown_type: an older
                # cloud. Either way, not before the next round.
                self._sync_due = self.monotonic() + self.sync_every
                log.info("offline bundle not given (%s)", outcome.code)
                if outcome.code == "not_allowed":
                    # Offline mode is off here now: nothing it kept stays at rest.
                    held = self.desk.bundle is not None or self.desk.store.bundle() is not None
                    self.desk.drop()
                    if held:
                        log.warning("offline mode is off for this copier: its bundle and "
                                    "documents are dropped")

    def _fetches(self) -> list[tuple[m.Request, Reply]]:
        """The chunk requests to send now (the caller holds the lock): the bundle's chunks not
        here yet, at most ``fetches`` in flight, within the policy's ``offline_documents_mb``."""
        budget = int(self.policy().offline_documents_mb) * 1024 * 1024
        room = self.fetches - len(self._in_flight)
        if room <= 0:
            return []
        if self.desk.store.stored_bytes() >= budget:
            self._want_more = False  # full: looked at again after the next bundle
            return []
        out: list[tuple[m.Request, Reply]] = []
        wanted = [w for w in self.desk.wanted()
                  if w not in self._in_flight and w not in self._refused_chunks]
        if not wanted and not self._in_flight:
            self._want_more = False  # all here: looked at again after the next bundle
        for job_id, offset in wanted[:room]:
            self._in_flight.add((job_id, offset))
            out.append((m.FetchOffline(job_id=job_id, offset=offset),
                        functools.partial(self._fetched, job_id, offset)))
        return out

    def _fetched(self, job_id: str, offset: int, outcome: m.Result | MfdError) -> None:
        # paho's thread: a store error is logged and the chunk asked again later.
        try:
            self._take_chunk(job_id, offset, outcome)
        except Exception:
            log.exception("offline link: a pre-delivered chunk could not be kept; asked again")
            with self._lock:
                self._in_flight.discard((job_id, offset))
                self._want_more = True
        self._wake.set()

    def _take_chunk(self, job_id: str, offset: int, outcome: m.Result | MfdError) -> None:
        with self._lock:
            self._in_flight.discard((job_id, offset))
            self._want_more = True
            if isinstance(outcome, m.DocumentChunk):
                if not self.desk.put_chunk(job_id, offset, outcome):
                    log.warning("a pre-delivered chunk of job %s at %d does not fit the "
                                "bundle; dropped", job_id, offset)
            elif isinstance(outcome, LinkError):
                pass  # the link went down: asked again when it is back
            else:
                log.info("pre-delivery of job %s at %d refused (%s)", job_id, offset,
                         getattr(outcome, "code", "?"))
                self._refused_chunks.add((job_id, offset))

    # ------------------------------------------------------------ tests and tools

    def caught_up(self, now: float) -> bool:
        """The worker finished a step that saw the time ``now`` (monotonic) and the real link's
        latest connection change: what they allow (going offline past the grace, the report
        once the cloud is back) has been started. For a driver that moves time itself."""
        return self.stepped_at >= now and self._stepped_changes == self._changes

    def idle(self) -> bool:
        """Nothing on its way: no report, sync or chunk in flight."""
        with self._lock:
            return not (self._reporting or self._syncing or self._in_flight)


__all__ = ["OfflineLink"]

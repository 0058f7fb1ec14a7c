"""The offline desk: answers the device's requests as the cloud would, from the signed bundle.

Theory of operation
-------------------
When the cloud cannot be reached (device_app/offline/link.py decides when), the session machine
keeps talking to "the cloud": the desk answers it. It holds the bundle the cloud last signed for
this device (protocol/offline.py: who may sign in, which of their held jobs may print, until
when), the sealed documents pre-delivered with it, and a store (the :class:`Store` port; the
SQLite adapter is device_app/offline/store.py) for everything that must survive a restart.

* **Sign-in** (``identify``): the device computes the verifier of what was presented (one
  scrypt), finds its entry in the bundle and unwraps that user's key with it, in memory, for the
  session. A card, a code, or a card and PIN (the PIN is the user's code). Wrong codes and PINs
  count: ``MAX_FAILURES`` within ``FAILURE_WINDOW`` lock code entry on this device for
  ``LOCK_SECONDS`` (the cloud's numbers). The lock's time left runs on the monotonic clock the
  link passes in (a wall clock moved forward does not shorten it) and is persisted as seconds
  left (a restart restores them). Unknown badges spend a token of a bucket with the cloud's
  device numbers (cloud/throttle.py: ``BADGE_BURST``, one back every ``BADGE_INTERVAL`` s); a
  badge that finds it empty throttles *every* badge sign-in for ``BADGE_THROTTLE`` s, known
  badges too, with one answer (``throttled``), so it never tells a card from a non-card. A
  failed guess is counted before it is journalled: a journal that cannot be written does not
  skip the count. Unknown badges are journalled as "refused".
* **Jobs**: a user's jobs in the bundle whose sealed documents are all here, minus those released
  (printing) or printed offline. A release mints ``off-<random>`` and answers what the bundle
  says of each job; changes at release are refused (the bundle's jobs print as sent).
* **Documents**: a chunk of an ``off-`` release is read sealed from the store and opened with
  the key kept *with the release* (a logout mid-print does not stop it). A chunk that does not
  authenticate drops that job's copy (it is fetched again when the cloud is back).
* **Outcomes** (``jobs.printed`` / ``jobs.failed`` of an ``off-`` release) are journalled, once
  per job and release, for the ``offline.report`` the link sends when the cloud is back.

The bundle is checked again (signature, device) each time the desk loads it from the store, and
before each sign-in for its expiry against ``max(now, high water)``: an expired bundle, or a
clock set back behind a time already seen, signs nobody in. Time arrives as an argument; the
desk does no I/O but through its store.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol import messages as m
from protocol import offline as off
from protocol.errors import ErrorCode, LinkError, MfdError, RemoteError

log = logging.getLogger(__name__)

#: The cloud's numbers (cloud/identity.py): wrong codes/PINs within the window lock code entry.
MAX_FAILURES = 5
FAILURE_WINDOW = 600.0
LOCK_SECONDS = 900.0
#: The cloud's device numbers for unknown badges (cloud/throttle.py DEVICE_POLICY).
BADGE_BURST = 10
BADGE_INTERVAL = 15.0
BADGE_THROTTLE = 300.0
#: A session's idle expiry, as the cloud's (cloud/identity.py DEFAULT_SESSION_TTL).
SESSION_TTL = 300.0
#: The most events one ``offline.report`` carries (the message's bound).
REPORT_EVENTS = 500
#: How many wanted chunks :meth:`Desk.wanted` lists at a time.
WANTED_BATCH = 64


@dataclass(frozen=True, slots=True)
class StoredBundle:
    body: bytes
    signature: bytes
    seq: int


@dataclass(frozen=True, slots=True)
class PendingReport:
    """The report of the oldest offline events, under one request id until it is answered."""

    request_id: str
    seq: int
    events: tuple[m.OfflineEvent, ...]
    upto: int  # the last event id it carries


class Store(Protocol):
    """What the desk keeps across restarts (device_app/offline/store.py)."""

    def bundle(self) -> StoredBundle | None: ...
    def last_seq(self) -> int: ...
    def save_bundle(self, body: bytes, signature: bytes, seq: int) -> None: ...
    def high_water(self) -> float: ...
    def raise_high_water(self, now: float) -> float: ...
    def lockout(self) -> tuple[tuple[float, ...], float]: ...
    def save_lockout(self, failures: Iterable[float], lock_left: float) -> None: ...
    def badges(self) -> tuple[float, float]: ...
    def save_badges(self, ahead: float, throttle_left: float) -> None: ...
    def drop_bundle(self, keep: Iterable[str] = ()) -> None: ...
    def unreported_prints(self) -> set[str]: ...
    def put_chunk(self, job_id: str, offset: int, total: int, sealed: bytes) -> None: ...
    def chunk(self, job_id: str, offset: int) -> tuple[int, bytes] | None: ...
    def chunk_sizes(self) -> dict[str, dict[int, tuple[object, int]]]: ...
    def stored_bytes(self) -> int: ...
    def drop_chunks(self, job_id: str) -> None: ...
    def keep_only(self, job_ids: set[str]) -> int: ...
    def released(self) -> dict[str, str]: ...
    def release_row(self, release_id: str, job_id: str) -> tuple[str, str] | None: ...
    def release(self, release_id: str, user_id: str, job_ids: Iterable[str]) -> None: ...
    def outcome(self, release_id: str, job_id: str, ok: bool, event: m.OfflineEvent,
                seq: int) -> None: ...
    def journal(self, event: m.OfflineEvent, seq: int) -> None: ...
    def pending_report(self, new_id: str, limit: int = REPORT_EVENTS
                       ) -> PendingReport | None: ...
    def report_answered(self, request_id: str) -> None: ...
    def report_refused(self, request_id: str, code: str) -> None: ...


@dataclass(slots=True)
class _Session:
    user: off.OfflineUser
    key: bytes
    expires: float


@dataclass(frozen=True, slots=True)
class _Release:
    user_id: str
    key: bytes
    jobs: dict[str, off.OfflineJob]


def _token() -> str:
    return "offline." + secrets.token_urlsafe(24)


def _release_id() -> str:
    return off.OFFLINE_RELEASE_PREFIX + secrets.token_hex(12)


def _refuse(code: ErrorCode, message: str, retry_after: int | None = None) -> RemoteError:
    return RemoteError(code.value, message, retry_after=retry_after)


class Desk:
    """The cloud's answers, offline. Not thread-safe: its caller (the offline link) holds one
    lock around it."""

    def __init__(self, store: Store, public_key: Ed25519PublicKey, device_id: str, *,
                 new_token: Callable[[], str] = _token,
                 new_release: Callable[[], str] = _release_id) -> None:
        self.store = store
        self.public_key = public_key
        self.device_id = device_id
        self._new_token = new_token
        self._new_release = new_release
        self._sessions: dict[str, _Session] = {}
        self._releases: dict[str, _Release] = {}
        self.bundle: off.Bundle | None = None
        #: Monotonic times, loaded from the store's seconds-left at the first answer.
        self._clock_loaded = False
        self._locked_until = 0.0
        self._badge_tat = 0.0
        self._throttled_until = 0.0
        self._lock_saved = self._throttle_saved = False  # a non-zero time left is on disk
        self._load()

    # ------------------------------------------------------------ the bundle

    def _load(self) -> None:
        stored = self.store.bundle()
        if stored is None:
            return
        try:
            self.public_key.verify(stored.signature, stored.body)
            bundle = off.decode_bundle(stored.body)
        except (InvalidSignature, off.OfflineError):
            log.error("the stored offline bundle does not verify; offline sign-in is off until "
                      "the cloud sends a new one")
            return
        if bundle.device_id != self.device_id or bundle.seq != stored.seq:
            log.error("the stored offline bundle is not this device's; it is not used")
            return
        self.bundle = bundle

    def accept(self, body: bytes, signature: bytes, now: float) -> off.Bundle:
        """A bundle from the cloud, checked (protocol.offline.open_bundle) and kept; the
        copies of jobs it no longer lists are dropped. OfflineError says why one is refused;
        the bundle held stays then."""
        high = self.store.raise_high_water(now)
        bundle = off.open_bundle(self.public_key, body, signature, device_id=self.device_id,
                                 now=now, high_water=high, last_seq=self.store.last_seq())
        self.store.save_bundle(body, signature, bundle.seq)
        self.bundle = bundle
        printing = {j for r in self._releases.values() for j in r.jobs}
        self.store.keep_only({j.job_id for j in bundle.jobs} | printing)
        return bundle

    def drop_if_expired(self, now: float) -> bool:
        """Offline mode ended here: the held bundle expired (by the high-water time). Its
        bundle, sealed documents and printed rows go; the journal, the lockout, the high water
        and the last seq stay. True if it dropped something."""
        if self.bundle is None:
            return False
        try:
            off.check_usable(self.bundle, now, self.store.high_water())
        except off.OfflineError as exc:
            if exc.code != "expired":
                return False
        else:
            return False
        self.drop()
        return True

    def drop(self) -> None:
        """The bundle, its documents and printed rows go (offline mode off, or expired); a
        print under way keeps its job's copy until it ends."""
        self.store.drop_bundle({j for r in self._releases.values() for j in r.jobs})
        self.bundle = None
        self._sessions.clear()

    def usable(self, now: float) -> bool:
        """Can anyone sign in from the bundle at ``now``?"""
        if self.bundle is None:
            return False
        try:
            off.check_usable(self.bundle, now, self.store.high_water())
        except off.OfflineError:
            return False
        return True

    def _usable_bundle(self, now: float) -> off.Bundle:
        high = self.store.raise_high_water(now)
        if self.bundle is None:
            raise LinkError("can't reach the print service, and this copier holds no offline "
                            "sign-in list", code="unreachable")
        try:
            off.check_usable(self.bundle, now, high)
        except off.OfflineError as exc:
            raise LinkError(f"can't reach the print service; offline sign-in is off here: "
                            f"{exc.message}", code="unreachable") from None
        return self.bundle

    # ------------------------------------------------------------ documents at rest

    def complete_jobs(self) -> set[str]:
        """Jobs of the bundle whose sealed chunks are all here, each of the right size."""
        if self.bundle is None:
            return set()
        sizes = self.store.chunk_sizes()
        return {j.job_id for j in self.bundle.jobs if _complete(j, sizes.get(j.job_id, {}))}

    def wanted(self, limit: int = WANTED_BATCH) -> list[tuple[str, int]]:
        """(job, offset) of chunks of the bundle's jobs not here yet, oldest job first."""
        if self.bundle is None:
            return []
        sizes = self.store.chunk_sizes()
        gone = self.store.released()
        out: list[tuple[str, int]] = []
        for job in sorted(self.bundle.jobs, key=lambda j: j.submitted_at):
            if gone.get(job.job_id) == "printed":
                continue
            have = sizes.get(job.job_id, {})
            for offset in _grid(job.size):
                if not _chunk_ok(job, offset, have.get(offset)):
                    out.append((job.job_id, offset))
                    if len(out) >= limit:
                        return out
        return out

    def put_chunk(self, job_id: str, offset: int, chunk: m.DocumentChunk) -> bool:
        """A pre-delivered chunk, kept sealed as it came; False (and nothing kept) if it is not
        one the bundle's job needs."""
        job = self._job(job_id)
        if job is None or chunk.job_id != job_id or chunk.offset != offset \
                or chunk.total != job.size:
            return False
        try:
            span = off.chunk_span(offset, job.size)
        except off.OfflineError:
            return False
        if len(chunk.data) != span + off.TAG_BYTES:
            return False
        self.store.put_chunk(job_id, offset, job.size, chunk.data)
        return True

    def _job(self, job_id: str) -> off.OfflineJob | None:
        if self.bundle is None:
            return None
        return next((j for j in self.bundle.jobs if j.job_id == job_id), None)

    # ------------------------------------------------------------ requests

    def owns(self, request: m.Request) -> bool:
        """Requests the desk answers whatever the link: those about a session it opened or a
        release it minted (a print started offline finishes and reports here)."""
        session = getattr(request, "session", None)
        if isinstance(session, str) and session in self._sessions:
            return True
        release_id = getattr(request, "release_id", None)
        return isinstance(release_id, str) and release_id.startswith(off.OFFLINE_RELEASE_PREFIX)

    def answer(self, request: m.Request, now: float, mono: float | None = None) -> m.Result:
        """The cloud's answer to ``request``, offline; MfdError (RemoteError with the cloud's
        codes, LinkError where only the cloud could answer) otherwise. ``mono`` is the
        monotonic clock the lockout and the badge bucket run on (``now`` if not given)."""
        self._expire(now)
        match request:
            case m.Identify():
                return self._identify(request, now, now if mono is None else mono)
            case m.Associate():
                raise _refuse(ErrorCode.NOT_ALLOWED, "a badge cannot be linked while offline")
            case m.ListJobs():
                session = self._session(request.session, now)
                return self._page(session.user.user_id, request.offset, request.limit)
            case m.Release():
                return self._release(request, now)
            case m.DeleteJobs():
                self._session(request.session, now)
                raise _refuse(ErrorCode.NOT_ALLOWED, "jobs cannot be deleted while offline")
            case m.FetchDocument() | m.JobPrinted() | m.JobFailed() \
                    if not request.release_id.startswith(off.OFFLINE_RELEASE_PREFIX):
                # A release the cloud made: only the cloud can answer (the journal asks again
                # once it is back). Never acknowledged here, or the cloud would not learn it.
                raise LinkError("can't reach the print service", code="unreachable")
            case m.FetchDocument():
                return self._document(request)
            case m.JobPrinted() | m.JobFailed():
                return self._outcome(request, now)
            case m.Logout():
                self._sessions.pop(request.session, None)
                return m.Ack(of=request.TYPE)
        raise LinkError(f"can't reach the print service for {request.TYPE}",
                        code="unreachable")

    def _expire(self, now: float) -> None:
        for token in [t for t, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[token]

    def _session(self, token: str, now: float) -> _Session:
        session = self._sessions.get(token)
        if session is None:
            raise _refuse(ErrorCode.INVALID_SESSION, "the session ended (offline mode)")
        session.expires = now + SESSION_TTL
        return session

    # ------------------------------------------------------------ sign-in

    def _identify(self, req: m.Identify, now: float, mono: float) -> m.IdentifyResult:
        if req.method == "password":
            raise _refuse(ErrorCode.NOT_ALLOWED, "offline, sign in with your badge or access "
                          "code; passwords need the print service")
        bundle = self._usable_bundle(now)
        high = max(now, self.store.high_water())
        self._load_clocks(mono)
        if req.method == "card":
            self._check_throttle(mono)
        if req.method == "code" or req.pin is not None:
            self._check_lock(mono)
        kind = "card" if req.method == "card" else "code"
        presented = off.verifier(bundle.salt, kind, req.value, bundle.n)
        if kind == "card":
            found = bundle.find("card", presented)
            if found is None:
                self._unknown_badge(mono)
                self._journal(bundle, "refused", now, detail="unknown_card")
                raise _refuse(ErrorCode.UNKNOWN_CARD, "this badge is not on this copier's "
                              "offline list")
            user, entry = found
            if req.pin is not None:
                pin = off.lookup(bundle.list_key,
                                 off.verifier(bundle.salt, "code", req.pin, bundle.n))
                if user.code is None or pin != user.code:
                    self._failed_guess(bundle, now, high, mono, ErrorCode.WRONG_PIN,
                                       "wrong PIN (offline mode)", user.user_id, "wrong_pin")
        else:
            found = bundle.find("code", presented)
            if found is None:
                self._failed_guess(bundle, now, high, mono, ErrorCode.UNKNOWN_CODE,
                                   "this code is not on this copier's offline list", "",
                                   "unknown_code")
            assert found is not None
            user, entry = found
        wrapped = user.wraps.get(entry)
        try:
            if wrapped is None:
                raise off.OfflineError("no wrapped key", code="bad_key")
            key = off.unwrap(presented, wrapped)
        except off.OfflineError:
            log.error("offline sign-in: the bundle's key for a user does not open; refused")
            self._journal(bundle, "refused", now, user.user_id, detail="bad_key")
            raise _refuse(ErrorCode.UNKNOWN_CARD if kind == "card"
                          else ErrorCode.UNKNOWN_CODE,
                          "this copier's offline list cannot sign you in") from None
        token = self._new_token()
        self._sessions[token] = _Session(user, key, now + SESSION_TTL)
        self._journal(bundle, "login", now, user.user_id, detail=req.method)
        result = m.IdentifyResult(session=token, user_id=user.user_id,
                                  display_name=user.name[:128], expires_in=int(SESSION_TTL),
                                  language=_language(user.language))
        if req.page_size is not None:
            result = result.with_first_page(self._page(user.user_id, 0, req.page_size))
        return result

    def _load_clocks(self, mono: float) -> None:
        # The store keeps seconds left (a monotonic time means nothing after a restart): a
        # restart gives back the whole remainder, never less.
        if self._clock_loaded:
            return
        _, lock_left = self.store.lockout()
        ahead, throttle_left = self.store.badges()
        self._locked_until = mono + max(lock_left, 0.0)
        self._badge_tat = mono + max(ahead, 0.0)
        self._throttled_until = mono + max(throttle_left, 0.0)
        self._lock_saved, self._throttle_saved = lock_left > 0, throttle_left > 0
        self._clock_loaded = True

    def _check_lock(self, mono: float) -> None:
        if self._locked_until > mono:
            left = int(self._locked_until - mono) + 1
            raise _refuse(ErrorCode.LOCKED_OUT, f"code entry is locked on this copier for "
                          f"{left // 60 + 1} min (offline mode)", retry_after=left)
        if self._lock_saved:  # over: a restart must not lock again
            failures, _ = self.store.lockout()
            self.store.save_lockout(failures, 0.0)
            self._lock_saved = False

    def _check_throttle(self, mono: float) -> None:
        if self._throttled_until > mono:
            left = int(self._throttled_until - mono) + 1
            raise _refuse(ErrorCode.THROTTLED, "too many unknown badges here: badge sign-in "
                          f"is paused for {left // 60 + 1} min (offline mode)",
                          retry_after=left)
        if self._throttle_saved:
            self.store.save_badges(max(self._badge_tat - mono, 0.0), 0.0)
            self._throttle_saved = False

    def _unknown_badge(self, mono: float) -> None:
        """One token of the unknown-badge bucket (GCRA, as cloud/throttle.py); an empty
        bucket throttles every badge for ``BADGE_THROTTLE`` s. Persisted before the answer."""
        tat = max(self._badge_tat, mono) + BADGE_INTERVAL
        if tat - mono > BADGE_BURST * BADGE_INTERVAL:
            self._throttled_until = mono + BADGE_THROTTLE
            self.store.save_badges(max(self._badge_tat - mono, 0.0), BADGE_THROTTLE)
            self._throttle_saved = True
            self._check_throttle(mono)
        self._badge_tat = tat
        self.store.save_badges(tat - mono, 0.0)

    def _failed_guess(self, bundle: off.Bundle, now: float, high: float, mono: float,
                      code: ErrorCode, message: str, user_id: str, detail: str) -> None:
        # Counted (persisted) first, journalled after: a journal write that fails must not
        # leave a guess uncounted.
        failures, _ = self.store.lockout()
        recent = [t for t in failures if high - t < FAILURE_WINDOW] + [high]
        locked = len(recent) >= MAX_FAILURES
        if locked:
            self._locked_until = mono + LOCK_SECONDS
            self.store.save_lockout((), LOCK_SECONDS)
            self._lock_saved = True
        else:
            self.store.save_lockout(recent, max(self._locked_until - mono, 0.0))
        self._journal(bundle, "refused", now, user_id, detail=detail)
        if locked:
            raise _refuse(ErrorCode.LOCKED_OUT, f"{MAX_FAILURES} wrong codes: code entry is "
                          f"locked on this copier for {LOCK_SECONDS / 60:g} min (offline "
                          "mode)", retry_after=int(LOCK_SECONDS))
        raise _refuse(code, message)

    def _journal(self, bundle: off.Bundle, kind: str, now: float, user_id: str = "", *,
                 detail: str = "", job_id: str = "", release_id: str = "") -> None:
        self.store.journal(m.OfflineEvent(kind=kind, at=max(now, 0.0), user_id=user_id,
                                          job_id=job_id, detail=detail[:200],
                                          release_id=release_id), bundle.seq)

    # ------------------------------------------------------------ jobs

    def offered(self, user_id: str) -> tuple[off.OfflineJob, ...]:
        """The user's jobs that may be printed here now, newest first."""
        if self.bundle is None:
            return ()
        complete = self.complete_jobs()
        gone = self.store.released()
        return tuple(j for j in self.bundle.jobs_of(user_id)
                     if j.job_id in complete and j.job_id not in gone)

    def _page(self, user_id: str, offset: int, limit: int) -> m.JobList:
        jobs = self.offered(user_id)
        return m.JobList(jobs=tuple(_summary(j) for j in jobs[offset:offset + limit]),
                         total=len(jobs), offset=offset)

    def _release(self, req: m.Release, now: float) -> m.ReleaseResult:
        session = self._session(req.session, now)
        if req.grayscale or req.duplex or req.copies is not None:
            raise _refuse(ErrorCode.NOT_ALLOWED, "changes at release are not possible while "
                          "offline; jobs print as sent")
        offered = {j.job_id: j for j in self.offered(session.user.user_id)}
        if req.all_held and not req.job_ids:
            picked = list(offered.values())
        else:
            missing = [j for j in req.job_ids if j not in offered]
            if missing:
                raise _refuse(ErrorCode.JOB_NOT_HELD, f"job {missing[0]} cannot be printed "
                              "here offline")
            picked = [offered[j] for j in dict.fromkeys(req.job_ids)]
        if not picked:
            raise _refuse(ErrorCode.JOB_NOT_HELD, "no job to print here offline")
        release_id = self._new_release()
        self.store.release(release_id, session.user.user_id, (j.job_id for j in picked))
        self._releases[release_id] = _Release(session.user.user_id, session.key,
                                              {j.job_id: j for j in picked})
        return m.ReleaseResult(release_id=release_id, jobs=tuple(
            m.ReleasedJob(job_id=j.job_id, name=j.name, size=j.size, sha256=j.sha256,
                          pages=j.pages, copies=j.copies, color=j.color, duplex=j.duplex)
            for j in picked))

    def _document(self, req: m.FetchDocument) -> m.DocumentChunk:
        release = self._releases.get(req.release_id)
        job = release.jobs.get(req.job_id) if release is not None else None
        if release is None or job is None:
            # After a restart the keys are gone (they never touch the disk): the job fails
            # and is offered again to its owner's next sign-in.
            raise _refuse(ErrorCode.UNKNOWN_RELEASE, "this offline release is no longer "
                          "open here")
        if req.offset >= job.size and not (job.size == 0 and req.offset == 0):
            raise _refuse(ErrorCode.JOB_NOT_FOUND,
                          f"offset {req.offset} is past the document's end")
        base = req.offset - req.offset % off.CHUNK_BYTES
        stored = self.store.chunk(job.job_id, base)
        try:
            if stored is None or stored[0] != job.size:
                raise off.OfflineError("chunk missing", code="bad_chunk")
            plain = off.open_chunk(release.key, job.job_id, base, job.size, stored[1],
                                   digest=job.sha256)
        except off.OfflineError:
            log.error("offline document of job %s: chunk at %d missing or damaged; its copy "
                      "is dropped", job.job_id, base)
            self.store.drop_chunks(job.job_id)
            raise _refuse(ErrorCode.JOB_NOT_FOUND, "the copy of this document here is "
                          "damaged") from None
        start = req.offset - base
        return m.DocumentChunk(job_id=job.job_id, offset=req.offset,
                               data=plain[start:start + req.length], total=job.size)

    def _outcome(self, req: m.JobPrinted | m.JobFailed, now: float) -> m.Ack:
        ok = isinstance(req, m.JobPrinted)
        row = self.store.release_row(req.release_id, req.job_id)
        if row is None or row[1] == "printed":
            # Told before (a repeat after a crash carries the same report), or a release
            # this device never made: nothing more to journal.
            return m.Ack(of=req.TYPE)
        user_id = row[0]
        seq = self.bundle.seq if self.bundle is not None else 0
        detail = req.reason if isinstance(req, m.JobFailed) else ""
        event = m.OfflineEvent(kind="printed" if ok else "failed", at=max(now, 0.0),
                               user_id=user_id, job_id=req.job_id, detail=detail[:200],
                               release_id=req.release_id)
        self.store.outcome(req.release_id, req.job_id, ok, event, seq)
        release = self._releases.get(req.release_id)
        if release is not None:
            release.jobs.pop(req.job_id, None)
            if not release.jobs:
                del self._releases[req.release_id]  # its key goes with it
        return m.Ack(of=req.TYPE)

    # ------------------------------------------------------------ the report

    def pending_report(self, new_id: Callable[[], str]) -> m.OfflineReport | None:
        pending = self.store.pending_report(new_id(), REPORT_EVENTS)
        if pending is None:
            return None
        return m.OfflineReport(request_id=pending.request_id, seq=pending.seq,
                               events=pending.events)

    def report_answered(self, request_id: str) -> None:
        self.store.report_answered(request_id)

    def report_refused(self, request_id: str, code: str) -> None:
        self.store.report_refused(request_id, code)

    def unreported_prints(self) -> set[str]:
        """Jobs printed offline whose report the cloud has not answered yet, and those of an
        offline release printing now: the cloud may still hold them, and they must not show
        or print again meanwhile."""
        printing = {j for r in self._releases.values() for j in r.jobs}
        return self.store.unreported_prints() | printing

    def forget_keys(self) -> None:
        """Drop every session and release key (the link's close)."""
        self._sessions.clear()
        self._releases.clear()

    @property
    def sessions(self) -> int:
        return len(self._sessions)


def _grid(size: int) -> range:
    return range(0, max(size, 1), off.CHUNK_BYTES)


def _chunk_ok(job: off.OfflineJob, offset: int, have: tuple[object, int] | None) -> bool:
    if have is None:
        return False
    total, length = have
    return total == job.size and length == min(off.CHUNK_BYTES, job.size - offset) \
        + off.TAG_BYTES


def _complete(job: off.OfflineJob, have: dict[int, tuple[object, int]]) -> bool:
    return all(_chunk_ok(job, o, have.get(o)) for o in _grid(job.size))


def _summary(job: off.OfflineJob) -> m.JobSummary:
    return m.JobSummary(job_id=job.job_id, name=job.name, pages=job.pages, color=job.color,
                        duplex=job.duplex, copies=job.copies, size=job.size,
                        submitted_at=job.submitted_at, source="offline")


def _language(tag: str) -> str:
    return tag if tag and m.is_language_tag(tag) and len(tag) <= m.LANGUAGE_MAX else ""


__all__ = ["FAILURE_WINDOW", "LOCK_SECONDS", "MAX_FAILURES", "SESSION_TTL", "Desk", "MfdError",
           "Store"]

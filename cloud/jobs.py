"""Where a job becomes paper, on the cloud's side: the signed-in user's held jobs, releases to
a device, deletions, the document fetched in chunks, and the device's printed and failed
reports.

Theory of operation
-------------------
Every request here names a session (cloud/identity.py checks it and finds the user) or a
release this device was given. Refusals are checked before anything is written, so a refused
release leaves every job as it was; another user's job is reported exactly like a missing one.
A job moves HELD -> RELEASING -> PRINTED, or back to HELD when the device reports a failure;
each move is a guarded update in the store, so a repeated or racing report is recorded once
(the service's stored answers make a repeat of one request cheap; the guards make two
different requests that race safe). Every method runs inside the service's transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from cloud.identity import Identity
from cloud.refusal import Refused, shown
from cloud.storage.port import Job, JobStateError, Store, User, new_id
from protocol import messages as m
from protocol.errors import ErrorCode

#: At most this many jobs are released by one "release all".
RELEASE_ALL_LIMIT = 500


class Jobs:
    """The job requests of a device, over the storage port."""

    def __init__(self, store: Store, identity: Identity, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.identity = identity
        self.clock = clock

    def held(self, device_id: str, req: m.ListJobs) -> m.JobList:
        user = self.identity.session_user(device_id, req.session)
        return self._page(user, req.offset, req.limit)

    def with_first_page(self, answer: m.IdentifyResult, page_size: int | None
                        ) -> m.IdentifyResult:
        """A user's identify answer with their first page of jobs on it, where the device asked
        for one (``page_size``): what ``jobs.list`` at offset 0 would answer, read right after
        the session was made (on PostgreSQL, a statement of its own: cloud/storage/postgres.py).
        A technician's answer carries none (no one's jobs), nor does one to a device that did
        not ask."""
        if page_size is None or answer.role != m.ROLE_USER:
            return answer
        page = self._first_page(answer.user_id, page_size)
        if page is None:  # pragma: no cover - the user was removed meanwhile
            return answer
        return answer.with_first_page(page)

    def _page(self, user: User, offset: int, limit: int) -> m.JobList:
        if not offset:
            page = self._first_page(user.id, limit)
            if page is None:  # removed since the session was checked (a statement before)
                raise Refused(ErrorCode.INVALID_SESSION, "the session's user no longer exists",
                              "session")
            return page
        jobs, total = self.store.held_jobs(user.id, offset, limit, self.clock())
        return m.JobList(jobs=tuple(_summary(j) for j in jobs), total=total, offset=offset)

    def _first_page(self, user_id: str, limit: int) -> m.JobList | None:
        """The first page (a sign-in's answer, or ``jobs.list`` at offset 0) and, with it, what
        the user may be looking for that is not on it: jobs that ran out of hold time lately,
        and jobs waiting behind a computer not linked yet. None for no such user."""
        page = self.store.first_page(user_id, limit, self.clock())
        if page is None:
            return None
        return m.JobList(jobs=tuple(_summary(j) for j in page.jobs), total=page.total, offset=0,
                         expired=page.expired,
                         hold_hours=page.hold_hours if page.expired else 0.0,
                         unlinked=page.unlinked)

    def _owned_held(self, user: User, job_ids: tuple[str, ...]) -> list[Job]:
        return owned_held(self.store, user, job_ids, self.clock())

    def release(self, device_id: str, req: m.Release) -> m.ReleaseResult:
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
        return open_release(self.store, user, device_id, jobs, now, grayscale=req.grayscale,
                            duplex=req.duplex, copies=req.copies)

    def delete(self, device_id: str, req: m.DeleteJobs) -> m.Ack:
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

    def document(self, device_id: str, req: m.FetchDocument) -> m.DocumentChunk:
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

    def printed(self, device_id: str, req: m.JobPrinted) -> m.Ack:
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

    def failed(self, device_id: str, req: m.JobFailed) -> m.Ack:
        job = self._released_job(device_id, req.release_id, req.job_id)
        if job.state == "PRINTED":
            raise Refused(ErrorCode.JOB_NOT_HELD, f"job {job.id} was printed already", "job_id")
        if job.state == "RELEASING":
            now = self.clock()
            if self.store.set_held(job.id, now):  # guarded, as in printed()
                self.store.audit(now, f"device:{device_id}", "print.failed", f"job:{job.id}",
                                 req.reason[:200])
            elif self.store.jobs([job.id])[0].state == "PRINTED":
                raise Refused(ErrorCode.JOB_NOT_HELD, f"job {job.id} was printed already",
                              "job_id")
        return m.Ack(of=req.TYPE)


class ReleaseStore(Protocol):
    """What a release needs of storage: the port's, narrowed so that the portal's release
    (cloud/release_orders.py, on its own view of the store) calls the same code."""

    def jobs(self, job_ids: Sequence[str]) -> list[Job]: ...
    def create_release(self, release_id: str, device_id: str, user_id: str, now: float,
                       options: str = "") -> None: ...
    def set_releasing(self, job_id: str, release_id: str, device_id: str, now: float) -> None: ...
    def audit(self, now: float, actor: str, action: str, subject: str,
              detail: str = "", org_id: str | None = None) -> None: ...


def owned_held(store: ReleaseStore, user: User, job_ids: Sequence[str], now: float) -> list[Job]:
    """The jobs, all of them the user's and held, or a refusal naming the first that is
    not. Another user's job is reported exactly like a missing one: no probing. The panel's
    release and delete and the portal's release to a copier (cloud/release_orders.py) ask
    this same question."""
    if len(set(job_ids)) != len(job_ids):
        raise Refused(ErrorCode.INVALID_FIELD, "a job is listed twice", "job_ids")
    found = {j.id: j for j in store.jobs(job_ids)}
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


def open_release(store: ReleaseStore, user: User, device_id: str, jobs: Sequence[Job], now: float,
                 *, grayscale: bool = False, duplex: bool = False, copies: int | None = None,
                 via: str = "") -> m.ReleaseResult:
    """Release ``jobs`` (checked already: the user's, held) to ``device_id``: the release row,
    every job RELEASING, the audit entry, and what the device is given to print. One code for
    a release tapped on the panel and one ordered from the portal (``via`` says so in the
    audit), so both are the same release to the device's journal and to the lease."""
    changes = grayscale or duplex or copies is not None
    release_id = new_id("rel")
    options = json.dumps({"grayscale": grayscale, "duplex": duplex,
                          "copies": copies}) if changes else ""
    store.create_release(release_id, device_id, user.id, now, options)
    for job in jobs:
        store.set_releasing(job.id, release_id, device_id, now)
    store.audit(now, f"user:{user.id}", "release", release_id,
                f"device {device_id}: {len(jobs)} job(s)"
                + (f", changes {options}" if changes else "") + (f", {via}" if via else ""),
                org_id=user.org_id)
    return m.ReleaseResult(release_id=release_id, jobs=tuple(
        m.ReleasedJob(job_id=j.id, name=shown(j.name), size=j.size, sha256=j.sha256,
                      pages=j.pages, copies=copies or j.copies, color=j.color and not grayscale,
                      duplex=j.duplex or duplex) for j in jobs))


def _summary(j: Job) -> m.JobSummary:
    return m.JobSummary(job_id=j.id, name=shown(j.name), pages=j.pages, color=j.color,
                        duplex=j.duplex, copies=j.copies, size=j.size,
                        submitted_at=j.submitted_at, source=shown(j.source))

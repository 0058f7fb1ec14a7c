"""The User Portal's "My jobs" and "Print from the browser": what a signed-in person does with
their own held jobs from a web page.

Theory of operation
-------------------
Every use-case takes the person (a :class:`~cloud.storage.port.User` the web layer got from the
portal session) and job ids from the request, and asks :func:`cloud.jobs.owned_held` -- the very
question the copier's panel asks -- whether each id is this person's job and still held. Another
person's job is answered exactly like a job that does not exist (``job_not_found``): the portal
cannot be used to learn which job ids exist. A refused attempt is audited after its transaction
rolled back, so a probe leaves a trace and no change.

Changes follow the org's policy (``OrgSettings.release_changes``) and only go the thrifty way,
as at the copier: colour may become grey and one-sided two-sided, never back (a job submitted
grey may not be a colour document at all); copies may be set to 1..:data:`MAX_COPIES`.

Print from the browser (PaperCut's Web Print) makes a held job of an uploaded PDF. Its type is
what its bytes say (``%PDF-`` near the start, as PDF readers accept), never its file name; the
size limit is the web's ``max_upload``. The page count is read from the page objects of the
document, a best effort the copier corrects when it prints.

Storage is reached through :class:`PortalStore`, a narrow view of the store (the core queries
and cloud/storage/sql_portal.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator, Sequence
from typing import Protocol

from cloud.jobs import ReleaseStore, owned_held
from cloud.refusal import Refused
from cloud.storage.port import Job, OrgSettings, User
from protocol.errors import ErrorCode, MfdError

MAX_COPIES = 99
#: A job list on one page: more than a person has waiting in practice.
LIST_LIMIT = 200
#: Where the header must start (PDF readers accept a little junk before it).
PDF_HEADER_WITHIN = 1024
WEB_SOURCE = "Web print"

_PAGE_RE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class PortalRefused(MfdError):
    """A request from a portal page the cloud will not do; ``field`` names the input."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class PortalStore(ReleaseStore, Protocol):
    """What these use-cases ask of storage."""

    def transaction(self) -> contextlib.AbstractContextManager[None]: ...
    def org_settings(self, org_id: str) -> OrgSettings: ...
    def held_jobs(self, user_id: str, offset: int, limit: int,
                  now: float) -> tuple[list[Job], int]: ...
    def delete_job(self, job_id: str, now: float, state: str = "DELETED") -> bool: ...
    def change_held_job(self, job_id: str, owner_id: str, *, color: bool, duplex: bool,
                        copies: int, now: float) -> bool: ...
    def note_jobs_changed(self, user_id: str, now: float) -> None: ...
    def add_job(self, owner_id: str | None, name: str, data: bytes, sha256: str, *, pages: int,
                color: bool, duplex: bool, copies: int, source: str, submitted_at: float,
                expires_at: float, state: str = "HELD", client_id: str | None = None,
                job_id: str | None = None) -> str: ...


def my_jobs(store: PortalStore, user: User, now: float) -> tuple[list[Job], int, OrgSettings]:
    """The person's held jobs (newest first), how many there are, and their org's policy."""
    with store.transaction():
        jobs, total = store.held_jobs(user.id, 0, LIST_LIMIT, now)
        return jobs, total, store.org_settings(user.org_id)


def _owned(store: PortalStore, user: User, job_ids: Sequence[str], now: float,
           action: str) -> list[Job]:
    """The jobs, or a refusal that is audited (after the caller's transaction is gone)."""
    try:
        return owned_held(store, user, tuple(job_ids), now)
    except Refused as exc:
        raise _Traced(exc.code, exc.message, exc.field, action) from None


class _Traced(PortalRefused):
    """A refusal whose audit entry is written once its transaction rolled back."""

    def __init__(self, code: str, message: str, field: str | None, action: str) -> None:
        super().__init__(code, message, field)
        self.action = action


@contextlib.contextmanager
def _work(store: PortalStore, user: User, now: float, job_ids: Sequence[str]
          ) -> Iterator[None]:
    try:
        with store.transaction():
            yield
    except _Traced as exc:
        with store.transaction():
            store.audit(now, f"user:{user.id}", exc.action, f"user:{user.id}",
                        f"refused ({exc.code}) from the portal: {', '.join(job_ids)[:300]}")
        raise PortalRefused(exc.code, exc.message, exc.field) from None


def delete_jobs(store: PortalStore, user: User, job_ids: Sequence[str], now: float) -> int:
    """Delete the person's held jobs ``job_ids``: all of them or, refused, none."""
    ids = tuple(job_ids)
    if not ids:
        raise PortalRefused(ErrorCode.INVALID_FIELD, "choose at least one job", "job_ids")
    with _work(store, user, now, ids):
        jobs = _owned(store, user, ids, now, "jobs.delete_refused")
        deleted = [j.id for j in jobs if store.delete_job(j.id, now)]
        store.audit(now, f"user:{user.id}", "jobs.delete", f"user:{user.id}",
                    "from the portal: " + ", ".join(deleted))
    return len(deleted)


def change_job(store: PortalStore, user: User, job_id: str, *, grayscale: bool, duplex: bool,
               copies: int, now: float) -> Job:
    """Turn a held job grey and/or two-sided, and set its copies, as the org allows. Returns
    the job as it is now."""
    if isinstance(copies, bool) or not isinstance(copies, int) or not 1 <= copies <= MAX_COPIES:
        raise PortalRefused(ErrorCode.INVALID_FIELD, f"copies must be 1 to {MAX_COPIES}",
                            "copies")
    with _work(store, user, now, (job_id,)):
        job = _owned(store, user, (job_id,), now, "job.change_refused")[0]
        if not store.org_settings(user.org_id).release_changes:
            raise PortalRefused(ErrorCode.NOT_ALLOWED, "your organisation does not allow "
                                "changes to jobs; print it again with other settings")
        if not job.color and not grayscale:
            raise PortalRefused(ErrorCode.INVALID_FIELD, "this job was printed in grey; it "
                                "cannot be turned to colour", "grayscale")
        if job.duplex and not duplex:
            raise PortalRefused(ErrorCode.INVALID_FIELD, "this job is two-sided; it cannot be "
                                "turned one-sided", "duplex")
        color = job.color and not grayscale
        two_sided = job.duplex or duplex
        if (color, two_sided, copies) == (job.color, job.duplex, job.copies):
            return job
        if not store.change_held_job(job.id, user.id, color=color, duplex=two_sided,
                                     copies=copies, now=now):
            raise PortalRefused(ErrorCode.JOB_NOT_HELD, "this job is no longer waiting (it was "
                                "released, deleted or expired meanwhile)", "job_id")
        store.note_jobs_changed(user.id, now)
        store.audit(now, f"user:{user.id}", "job.change", f"job:{job.id}",
                    f"from the portal: {'colour' if color else 'grey'}, "
                    f"{'two' if two_sided else 'one'}-sided, {copies} copies")
        return store.jobs([job.id])[0]


# -- Print from the browser


def size_text(n: int) -> str:
    """A limit as people read it: 50 MB, 100 KB."""
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.3g} MB"
    return f"{max(1, n // 1024)} KB"


def is_pdf(data: bytes) -> bool:
    """Whether the bytes are a PDF by their header (a renamed file is not)."""
    return b"%PDF-" in data[:PDF_HEADER_WITHIN]


def count_pages(data: bytes) -> int:
    """The document's page objects (``/Type /Page``, not ``/Pages``); 1 when none is found
    (compressed object streams hide them)."""
    return max(1, min(100_000, len(_PAGE_RE.findall(data))))


def document_name(filename: str) -> str:
    """What the job list shows: the file's name without folders or control characters."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = _CONTROL_RE.sub("", name).strip()[:255]
    return name or "document.pdf"


def web_print(store: PortalStore, user: User, filename: str, data: bytes, *, max_size: int,
              color: bool, duplex: bool, copies: int, now: float) -> str:
    """A PDF uploaded by the person becomes their held job; returns its id."""
    if not data:
        raise PortalRefused(ErrorCode.INVALID_FIELD, "the file is empty; choose a PDF document",
                            "document")
    if len(data) > max_size:
        raise PortalRefused(ErrorCode.TOO_LARGE, f"the file is larger than "
                            f"{size_text(max_size)}; print a smaller PDF or split it",
                            "document")
    if not is_pdf(data):
        raise PortalRefused("unsupported_type", "this file is not a PDF; save or export it as "
                            "PDF, then upload that", "document")
    if isinstance(copies, bool) or not isinstance(copies, int) or not 1 <= copies <= MAX_COPIES:
        raise PortalRefused(ErrorCode.INVALID_FIELD, f"copies must be 1 to {MAX_COPIES}",
                            "copies")
    name = document_name(filename)
    digest = hashlib.sha256(data).hexdigest()
    with store.transaction():
        hours = store.org_settings(user.org_id).hold_hours
        job_id = store.add_job(user.id, name, data, digest, pages=count_pages(data), color=color,
                               duplex=duplex, copies=copies, source=WEB_SOURCE,
                               submitted_at=now, expires_at=now + hours * 3600)
        store.audit(now, f"user:{user.id}", "job.submit", f"job:{job_id}",
                    f"owner user:{user.id}, from the browser, {len(data)} bytes")
    return job_id

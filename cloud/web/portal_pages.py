"""The User Portal's job pages: My jobs (/portal/), the copier's QR page (/copier/{id}), Print
from the browser (/portal/print), and the small JSON answer the job list polls.

Routes are thin: they parse the form, call a use-case (cloud/portal_jobs.py for a person's own
jobs, cloud/release_orders.py for releasing to a copier, cloud/linking for the rest) and answer
with a page, or POST -> 303 redirect -> GET with a notice saying what happened. Every page works
without JavaScript; static scripts (cloud/web/static/portal*.js) add the live job list and
dropping a file on the page.

The pages that link clients (welcome, install, devices, Authenticate-on-Print) are in
cloud/web/portal_setup.py, included here.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, RedirectResponse, Response

from cloud import offline_report, portal_jobs
from cloud import release_orders as orders
from cloud.storage.port import Job, User
from cloud.web import context as web
from cloud.web.portal_setup import router as setup_router
from protocol.errors import MfdError, StoreError

router = APIRouter(include_in_schema=False)
router.include_router(setup_router)

#: How often the job list asks whether it changed (ms); the JSON answer is one small query.
POLL_MS = 3000
#: What a form adds around the file (boundaries, the CSRF token, the options).
_FORM_SLACK = 64 * 1024

User_ = Annotated[User, Depends(web.current_user)]


def _now(request: Request) -> float:
    clock = request.app.state.clock
    return float(clock())


def _store(request: Request) -> Any:
    # The SQL store answers every narrow view (PortalStore, OrderStore); the port does not
    # declare the portal's and the release orders' queries, hence Any here.
    return web.store(request)


# -- how a job reads on the page


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def _left(seconds: float) -> str:
    if seconds < 3600:
        return f"{max(1, int(seconds // 60))} min"
    return f"{seconds / 3600:.0f} h"


def _view(job: Job, now: float) -> dict[str, Any]:
    return {"id": job.id, "name": job.name, "pages": job.pages, "color": job.color,
            "duplex": job.duplex, "copies": job.copies, "size": _size(job.size),
            "source": job.source, "submitted": _when(job.submitted_at),
            "expires": _when(job.expires_at), "left": _left(job.expires_at - now)}


def signature(jobs: list[Job]) -> str:
    """What the live list compares: which jobs, and what a change may alter."""
    return ",".join(f"{j.id}:{int(j.color)}{int(j.duplex)}{j.copies}" for j in jobs)


def _jobs_page(request: Request, user: User, template: str, **values: Any) -> Response:
    now = _now(request)
    store = _store(request)
    jobs, total, settings = portal_jobs.my_jobs(store, user, now)
    copiers = orders.copiers_for(store, user.id)
    # Jobs printed twice lately (offline at one copier after elsewhere): the owner is told.
    twice = [{"name": t.name, "offline_at": t.offline_at, "before_at": t.before_at,
              "when": _when(t.at)} for t in offline_report.printed_twice(store, user, now)]
    return web.render(request, template, user=user, jobs=[_view(j, now) for j in jobs],
                      total=total, sig=signature(jobs), changes=settings.release_changes,
                      hold_hours=settings.hold_hours, copiers=copiers, poll=POLL_MS,
                      max_copies=portal_jobs.MAX_COPIES, printed_twice=twice, **values)


# -- My jobs


@router.get("/portal/")
def my_jobs(request: Request, user: User_) -> Response:
    return _jobs_page(request, user, "portal/jobs.html")


@router.get("/portal/jobs.json")
def jobs_json(request: Request, user: User_) -> Response:
    """The live list's question: has anything changed? (and what the list holds now)."""
    now = _now(request)
    jobs, total, _settings = portal_jobs.my_jobs(_store(request), user, now)
    return JSONResponse({"ok": True, "total": total, "sig": signature(jobs),
                         "jobs": [_view(j, now) for j in jobs]})


def _refused(request: Request, exc: MfdError, back: str) -> Response:
    web.notice(request, exc.message[:1].upper() + exc.message[1:] + ".", "error")
    return RedirectResponse(back, status_code=303)


@router.post("/portal/jobs/delete", dependencies=[Depends(web.check_csrf)])
def delete_job(request: Request, user: User_,
               job_id: Annotated[str, Form(max_length=64)]) -> Response:
    try:
        portal_jobs.delete_jobs(_store(request), user, [job_id], _now(request))
    except MfdError as exc:
        return _refused(request, exc, "/portal/")
    web.notice(request, "The job is deleted.")
    return RedirectResponse("/portal/", status_code=303)


@router.post("/portal/jobs/change", dependencies=[Depends(web.check_csrf)])
def change_job(request: Request, user: User_, job_id: Annotated[str, Form(max_length=64)],
               copies: Annotated[int, Form(ge=1, le=portal_jobs.MAX_COPIES)],
               grayscale: Annotated[str, Form(max_length=8)] = "",
               duplex: Annotated[str, Form(max_length=8)] = "") -> Response:
    try:
        job = portal_jobs.change_job(_store(request), user, job_id, grayscale=bool(grayscale),
                                     duplex=bool(duplex), copies=copies, now=_now(request))
    except MfdError as exc:
        return _refused(request, exc, "/portal/")
    web.notice(request, f"{job.name}: now {'colour' if job.color else 'grey'}, "
               f"{'two' if job.duplex else 'one'}-sided, {job.copies} "
               f"cop{'y' if job.copies == 1 else 'ies'}.")
    return RedirectResponse("/portal/", status_code=303)


def _release(request: Request, user: User, job_ids: list[str], device_id: str,
             back: str) -> Response:
    store = _store(request)
    copier = next((c for c in orders.copiers_for(store, user.id) if c.device_id == device_id),
                  None)
    if not job_ids:
        web.notice(request, "Choose the jobs to print first.", "error")
        return RedirectResponse(back, status_code=303)
    try:
        orders.release_to_device(store, user.id, job_ids, device_id, _now(request))
    except StoreError as exc:
        return _refused(request, exc, back)
    name = copier.name if copier else device_id
    when = ("it prints now" if copier is None or copier.online
            else "it prints when the copier is back online")
    web.notice(request, f"Sent {len(job_ids)} job{'s' if len(job_ids) != 1 else ''} to {name}: "
               f"{when}.")
    return RedirectResponse(back, status_code=303)


@router.post("/portal/release", dependencies=[Depends(web.check_csrf)])
def release(request: Request, user: User_, device_id: Annotated[str, Form(max_length=64)],
            job_id: Annotated[list[str] | None, Form()] = None) -> Response:
    return _release(request, user, list(job_id or []), device_id, "/portal/")


# -- the copier's QR code: a phone at the copier


@router.get("/copier/{device_id}")
def at_copier(request: Request, user: User_, device_id: str) -> Response:
    copier = next((c for c in orders.copiers_for(_store(request), user.id)
                   if c.device_id == device_id), None)
    if copier is None:
        # Another org's copier reads like one that does not exist: nothing to probe.
        raise MfdError("there is no such copier in your organisation; scan the code on the "
                       "copier again", code="not_found")
    return _jobs_page(request, user, "portal/copier.html", copier=copier)


@router.post("/copier/{device_id}/release", dependencies=[Depends(web.check_csrf)])
def release_here(request: Request, user: User_, device_id: str,
                 job_id: Annotated[list[str] | None, Form()] = None) -> Response:
    return _release(request, user, list(job_id or []), device_id, f"/copier/{device_id}")


# -- Print from the browser


@router.get("/portal/print")
def print_page(request: Request, user: User_) -> Response:
    return _print_page(request, user)


def _print_page(request: Request, user: User, status_code: int = 200,
                error: str | None = None) -> Response:
    limit = web.settings(request).max_upload
    return web.render(request, "portal/print.html", status_code=status_code, user=user,
                      error=error, max_upload=limit, max_text=portal_jobs.size_text(limit),
                      max_copies=portal_jobs.MAX_COPIES)


@router.post("/portal/print")
async def upload(request: Request, user: User_) -> Response:
    """The upload. Its size is checked from Content-Length before the body is read (a form
    parser would take any size), then again on the bytes; its type from the bytes."""
    limit = web.settings(request).max_upload
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        return await _refuse_upload(request, user, 411, "Your browser did not say how large "
                                    "the file is; try again, or use another browser.")
    if int(length) > limit + _FORM_SLACK:
        return await _refuse_upload(request, user, 413, _too_large(limit))
    form = await request.form(max_files=1, max_fields=8)
    await web.check_csrf(request)
    document = form.get("document")
    if not isinstance(document, UploadFile):
        return await _refuse_upload(request, user, 400, "Choose a PDF file to print.")
    data = await document.read(limit + 1)
    try:
        copies = int(str(form.get("copies") or "1"))
    except ValueError:
        copies = 0
    name = document.filename or ""
    def hold() -> str:
        # On a pool thread, with that thread's store (cloud/web/context.py), as sync routes.
        return portal_jobs.web_print(
            _store(request), user, name, data, max_size=limit, color=bool(form.get("color")),
            duplex=bool(form.get("duplex")), copies=copies, now=_now(request))

    try:
        await run_in_threadpool(hold)
    except MfdError as exc:
        status = {"too_large": 413, "unsupported_type": 415}.get(exc.code, 400)
        return await _refuse_upload(request, user, status,
                                    exc.message[:1].upper() + exc.message[1:] + ".")
    web.notice(request, f"{portal_jobs.document_name(name)} waits for you: release it at a "
               "copier.")
    return RedirectResponse("/portal/", status_code=303)


def _too_large(limit: int) -> str:
    return (f"The file is larger than {portal_jobs.size_text(limit)}; print a smaller PDF or "
            "split it.")


async def _refuse_upload(request: Request, user: User, status: int, message: str) -> Response:
    return await run_in_threadpool(_print_page, request, user, status, message)

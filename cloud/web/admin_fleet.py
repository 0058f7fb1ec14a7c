"""The admin console's devices, technicians and jobs (under /admin/, included by
admin_pages.py): add a device and show its one-time registration code, each device's status,
last report, firmware and configuration (an editor of its managed configuration as TOML, checked
with the device's own schema, then pushed; the device's acknowledgement beside it); technicians'
badges and codes (they open a copier's diagnostics screen); the org's jobs by state, user and
device. Same rules as admin_pages.py: only the administrator's own org."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from cloud import admin, devices, throttle
from cloud.admin import DeviceRow
from cloud.storage.port import User
from cloud.web import context as web
from cloud.web.admin_common import Admin, acting, back, when
from protocol.errors import MfdError, StoreError

router = APIRouter(include_in_schema=False, dependencies=[Depends(acting)])
Csrf = [Depends(web.check_csrf)]

#: The largest configuration text taken from the editor.
MAX_CONFIG = 64 * 1024


def config_state(d: DeviceRow) -> tuple[str, str]:
    """(kind, words): where the newest configuration version is, as the device acknowledged."""
    v = d.config_version
    if not v:
        return "none", "no managed configuration (the device's own file)"
    if d.refused >= v:
        return "refused", f"version {v} refused by the device: {d.refusal}"
    if d.applied >= v:
        return "applied", f"version {v} applied by the device"
    if d.pushed >= v:
        return "pushed", f"version {v} pushed, waiting for the device's answer"
    return "stored", f"version {v} stored, to be pushed"


@router.get("/devices")
def devices_page(request: Request, me: Admin) -> Response:
    return _devices(request, me)


def _devices(request: Request, me: User, *, status_code: int = 200, **extra: Any) -> Response:
    store = web.store(request)
    rows = admin.device_rows(store, me.org_id)
    return web.render(request, "admin/devices.html", status_code=status_code, user=me,
                      devices=rows, state=config_state, when=when,
                      throttles=admin.org_throttles(store, me.org_id), **extra)


@router.post("/devices", dependencies=Csrf)
def add_device(request: Request, me: Admin, device_id: Annotated[str, Form(max_length=64)],
               name: Annotated[str, Form(max_length=128)] = "") -> Response:
    device_id = device_id.strip()
    try:
        code = devices.add_device(web.store(request), me.org_id, device_id, name.strip(),
                                  request.app.state.clock())
    except MfdError as exc:
        return _devices(request, me, status_code=400, add_error=exc.message,
                        form={"device_id": device_id, "name": name})
    return _registration_code(request, me, device_id, code, added=True)


def _registration_code(request: Request, me: User, device_id: str, code: str, *,
                       added: bool) -> Response:
    ttl = devices.REGISTRATION_TTL / 3600
    return web.render(request, "admin/shown_once.html", user=me, title="Registration code",
                      what=(f"Device {device_id} added. " if added else "")
                      + f"Its one-time registration code, valid {ttl:g} hours and shown this "
                      "once: on the device, run mfd device register --portal PORTAL_URL --code "
                      "CODE.", secret=code, back_to=f"/admin/devices/{device_id}")


@router.get("/devices/{device_id}")
def device_page(request: Request, me: Admin, device_id: str) -> Response:
    d = admin.org_device(web.store(request), me.org_id, device_id)
    return _device(request, me, d)


def _device(request: Request, me: User, d: DeviceRow, *, status_code: int = 200,
            text: str | None = None, error: str = "") -> Response:
    store = web.store(request)
    version, current = admin.device_config_toml(store, d.device_id)
    return web.render(request, "admin/device.html", status_code=status_code, user=me, d=d,
                      state=config_state(d), when=when,
                      firmware=sorted(devices.device_firmware(store, d.device_id).items()),
                      version=version, text=current if text is None else text, error=error)


@router.post("/devices/{device_id}/config", dependencies=Csrf)
def push_config(request: Request, me: Admin, device_id: str,
                config: Annotated[str, Form(max_length=MAX_CONFIG)] = "") -> Response:
    store = web.store(request)
    d = admin.org_device(store, me.org_id, device_id)
    try:
        stored = admin.replace_device_config(store, d.device_id, config)
    except MfdError as exc:
        # The administrator's text stays in the editor, with the reason above it.
        return _device(request, me, d, status_code=400, text=config, error=exc.message)
    web.notice(request, f"Configuration version {stored.version} stored; the cloud pushes it "
               "and the device applies or refuses it.")
    return back(f"/admin/devices/{d.device_id}")


@router.post("/devices/{device_id}/code", dependencies=Csrf)
def new_code(request: Request, me: Admin, device_id: str) -> Response:
    store = web.store(request)
    d = admin.org_device(store, me.org_id, device_id)
    code = devices.new_registration_code(store, d.device_id, request.app.state.clock())
    return _registration_code(request, me, d.device_id, code, added=False)


@router.post("/devices/{device_id}/unlock", dependencies=Csrf)
def unlock_device(request: Request, me: Admin, device_id: str) -> Response:
    store = web.store(request)
    d = admin.org_device(store, me.org_id, device_id)
    locked = admin.unlock(store, "device", d.device_id)
    web.notice(request, f"{d.device_id} unlocked." if locked else
               f"{d.device_id} was not locked; its count of wrong guesses is reset.")
    return back(f"/admin/devices/{d.device_id}")


@router.post("/throttles/{scope}/{subject}/lift", dependencies=Csrf)
def lift_throttle(request: Request, me: Admin, scope: str, subject: str) -> Response:
    """Badge sign-in again for the org or one of its devices (``mfd admin unthrottle``)."""
    store = web.store(request)
    if scope == "device":
        admin.org_device(store, me.org_id, subject)
    elif not (scope == "org" and subject == me.org_id):
        raise StoreError(f"no {scope} {subject} in this org", code="not_found")
    try:
        t = throttle.lift(store, scope, subject)
    except MfdError as exc:
        web.notice(request, exc.message, "error")
    else:
        where = "the whole org" if scope == "org" else subject
        web.notice(request, f"Badge sign-in works again on {where} ({t.refused} card lookup(s) "
                   "were refused).")
    return back("/admin/devices")


# -- technicians: a badge or a code that opens a copier's diagnostics screen


@router.get("/technicians")
def technicians_page(request: Request, me: Admin) -> Response:
    return _technicians(request, me)


def _technicians(request: Request, me: User, *, status_code: int = 200,
                 **extra: Any) -> Response:
    listed = admin.technicians(web.store(request), me.org_id, include_revoked=True)
    return web.render(request, "admin/technicians.html", status_code=status_code, user=me,
                      technicians=listed, when=when, **extra)


@router.post("/technicians", dependencies=Csrf)
def add_technician(request: Request, me: Admin, name: Annotated[str, Form(max_length=128)],
                   kind: Annotated[str, Form(max_length=8)],
                   badge: Annotated[str, Form(max_length=128)] = "") -> Response:
    """A badge (its number in the form's body, never a URL or a command line) or a generated
    code, shown once."""
    try:
        issued = admin.add_technician(web.store(request), me.org_id, name,
                                      badge=badge.strip() if kind == "badge" else None,
                                      code=kind == "code")
    except MfdError as exc:
        return _technicians(request, me, status_code=400, add_error=exc.message,
                            form={"name": name, "kind": kind})
    if issued.code is None:
        web.notice(request, f"{issued.technician.name} has a technician badge now.")
        return back("/admin/technicians")
    return web.render(request, "admin/shown_once.html", user=me, title="Technician code",
                      what=f"The technician code of {issued.technician.name}. It is shown this "
                      "once (the cloud keeps only a hash): give it to them.", secret=issued.code,
                      back_to="/admin/technicians")


@router.post("/technicians/{technician_id}/revoke", dependencies=Csrf)
def revoke_technician(request: Request, me: Admin, technician_id: str) -> Response:
    store = web.store(request)
    tech = admin.org_technician(store, me.org_id, technician_id)
    try:
        admin.revoke_technician(store, tech.id)
    except MfdError as exc:
        web.notice(request, exc.message, "error")
    else:
        web.notice(request, f"The {tech.kind} of {tech.name} is revoked: it opens nothing now.")
    return back("/admin/technicians")


# -- jobs


@router.get("/jobs")
def jobs_page(request: Request, me: Admin, state: str = "", user: str = "",
              device: str = "") -> Response:
    store = web.store(request)
    # A filter naming another org's user or device is refused like any id not in this org.
    if user:
        admin.org_user(store, me.org_id, user)
    if device:
        admin.org_device(store, me.org_id, device)
    people = admin.users(store, me.org_id)
    listed = admin.org_jobs(store, me.org_id, state=state or None, user_id=user or None,
                            device_id=device or None, limit=500)
    return web.render(request, "admin/jobs.html", user=me, jobs=listed, when=when,
                      emails={u.id: u.email for u in people}, people=people,
                      fleet=admin.device_rows(store, me.org_id), states=admin.JOB_STATES,
                      f={"state": state, "user": user, "device": device})

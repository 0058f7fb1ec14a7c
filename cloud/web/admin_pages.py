"""The admin console (/admin/): an organisation's administrators run their org from here: users
(add, import, invite, cards, access codes, passwords, unlock, role), devices and jobs
(admin_fleet.py), the org's settings and its audit log.

Every page stands behind ``web.current_admin`` (a user whose role is admin: others get 403) and
every form behind ``web.check_csrf``. Pages call the same use-cases as ``mfd admin``
(cloud/admin.py, cloud/directory.py, cloud/devices.py, cloud/linking), so the checks and the audit
entries are the same. What a page acts on is looked up in the administrator's own org first
(``admin.org_user``, ``admin.org_device``): another org's id is "not found", exactly like an id
that does not exist, and nothing is changed.

A form that fails comes back to its page with the reason (a notice, role=alert); a secret made
here (an access code, a registration code) is shown once, in the answer to the POST that made it,
and never put in the session cookie or a URL.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from starlette.responses import RedirectResponse, Response

from cloud import admin, directory
from cloud.storage.port import User
from cloud.web import admin_clients, admin_fleet
from cloud.web import context as web
from cloud.web.admin_common import Admin, acting, back, when
from protocol.errors import MfdError, StoreError

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(acting)])
router.include_router(admin_fleet.router)
router.include_router(admin_clients.router)

#: The largest user import taken from a page (a CSV of some thousands of users).
MAX_IMPORT = 2 * 1024 * 1024

Csrf = [Depends(web.check_csrf)]

#: The choices OrgSettings takes (it checks them again).
CARD_POLICIES = {"replace_oldest": "replace the oldest card", "refuse": "refuse the third card"}
AOP_POLICIES = {"print_again": "the user prints again", "join": "the job joins their queue"}


@router.get("/")
def overview(request: Request, me: Admin) -> Response:
    store = web.store(request)
    users = admin.users(store, me.org_id)
    fleet = admin.device_rows(store, me.org_id)
    held = admin.org_jobs(store, me.org_id, state="HELD", limit=1000)
    with store.transaction():
        org_name = store.org_name(me.org_id) or me.org_id
    return web.render(request, "admin/overview.html", user=me, org_name=org_name,
                      users=len(users), admins=sum(1 for u in users if u.role == "admin"),
                      devices=len(fleet), online=sum(1 for d in fleet if d.status == "online"),
                      held=len(held))


# -- users


@router.get("/users")
def users_page(request: Request, me: Admin) -> Response:
    return _users(request, me)


def _users(request: Request, me: User, *, status_code: int = 200, **extra: Any) -> Response:
    listed = admin.users(web.store(request), me.org_id)
    return web.render(request, "admin/users.html", status_code=status_code, user=me,
                      users=listed, **extra)


@router.post("/users", dependencies=Csrf)
def add_user(request: Request, me: Admin, email: Annotated[str, Form(max_length=254)],
             name: Annotated[str, Form(max_length=128)],
             language: Annotated[str, Form(max_length=35)] = "",
             role: Annotated[str, Form(max_length=8)] = "user") -> Response:
    try:
        admin.add_user(web.store(request), me.org_id, email, name, language=language, role=role)
    except MfdError as exc:
        return _users(request, me, status_code=400, add_error=exc.message,
                      form={"email": email, "name": name, "language": language})
    web.notice(request, f"{email.strip().lower()} added.")
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/users/import", dependencies=Csrf)
def import_users(request: Request, me: Admin, file: UploadFile | None = None,
                 text: Annotated[str, Form(max_length=MAX_IMPORT)] = "") -> Response:
    # A plain def, run on the pool's threads like every page: the import writes to the store.
    name = "pasted rows"
    if file is not None and file.filename:
        data = file.file.read(MAX_IMPORT + 1)
        if len(data) > MAX_IMPORT:
            return _import_refused(request, me, [f"the file is larger than "
                                                 f"{MAX_IMPORT // 1024 // 1024} MB"])
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return _import_refused(request, me, [f"{file.filename} is not UTF-8 text; save it "
                                                 "as CSV UTF-8"])
        name = file.filename
    if not text.strip():
        return _import_refused(request, me, ["choose a CSV or TSV file, or paste its rows"])
    try:
        report = web.linking(request).import_users(me.org_id, text, name=name)
    except MfdError as exc:
        return _import_refused(request, me, _rows_of(exc))
    web.notice(request, f"Imported {report.users} user(s), {report.cards} card(s) and "
               f"{report.codes} access code(s) from {name}.")
    return RedirectResponse("/admin/users", status_code=303)


def _rows_of(exc: MfdError) -> list[str]:
    """The import's refusal: what happened, then every bad row, one a line."""
    rows: list[str] = getattr(exc, "rows", [])
    if not rows:
        return [exc.message]
    return [exc.message.partition("; fix these rows")[0] + "; fix these rows:", *rows]


def _import_refused(request: Request, me: User, errors: list[str]) -> Response:
    return _users(request, me, status_code=400, import_errors=errors)


@router.get("/users/{user_id}")
def user_page(request: Request, me: Admin, user_id: str) -> Response:
    return _user(request, me, admin.org_user(web.store(request), me.org_id, user_id))


def _user(request: Request, me: User, who: User, **extra: Any) -> Response:
    store = web.store(request)
    with store.transaction():
        cards = len(store.user_cards(who.id))
    return web.render(request, "admin/user.html", user=me, who=who, cards=cards,
                      locked=admin.user_locked_until(store, who), when=when, **extra)


def _acted(request: Request, who: User, done: str, action: Callable[[], object]) -> Response:
    """Run ``action`` (a use-case call); the user's page with what happened, or why not."""
    try:
        action()
    except MfdError as exc:
        web.notice(request, exc.message, "error")
    else:
        web.notice(request, done)
    return back(f"/admin/users/{who.id}")


@router.post("/users/{user_id}/role", dependencies=Csrf)
def set_role(request: Request, me: Admin, user_id: str,
             role: Annotated[str, Form(max_length=8)]) -> Response:
    who = admin.org_user(web.store(request), me.org_id, user_id)
    if who.id == me.id and role != "admin":
        web.notice(request, "You cannot take your own administrator role; another "
                   "administrator of your org can.", "error")
        return back(f"/admin/users/{who.id}")
    now = "an administrator" if role == "admin" else "a user"
    return _acted(request, who, f"{who.email} is now {now}.",
                  lambda: admin.set_role(web.store(request), who.email, role))


@router.post("/users/{user_id}/language", dependencies=Csrf)
def set_language(request: Request, me: Admin, user_id: str,
                 language: Annotated[str, Form(max_length=35)] = "") -> Response:
    who = admin.org_user(web.store(request), me.org_id, user_id)
    return _acted(request, who, f"Language of {who.email}: {language.strip() or 'the copier'}"
                  f"{'' if language.strip() else chr(39) + 's own'}.",
                  lambda: admin.set_user_language(web.store(request), who.email, language))


@router.post("/users/{user_id}/invite", dependencies=Csrf)
def invite(request: Request, me: Admin, user_id: str,
           kind: Annotated[str, Form(max_length=8)]) -> Response:
    who = admin.org_user(web.store(request), me.org_id, user_id)
    if kind not in ("classic", "portal"):
        raise StoreError("an invitation is classic or portal", code="invalid_field")
    linking = web.linking(request)
    invitation = (linking.invite_classic(who.email) if kind == "classic"
                  else linking.invite_portal(who.email))
    try:
        from cloud.web import mailing
    except ImportError:  # the mail module is another part's; without it, show the text
        mailing = None  # type: ignore[assignment]
    if mailing is not None:
        try:
            mailing.send_invitation(request, invitation)
        except MfdError as exc:
            return web.render(request, "admin/shown_once.html", user=me, title="Invitation",
                              what=f"The invitation was NOT sent: {exc.message.rstrip('.')}. "
                              f"Pass this text on to {who.email} yourself; its link is theirs "
                              "alone.",
                              secret=invitation.body, back_to=f"/admin/users/{who.id}")
        web.notice(request, f"The {'Classic' if kind == 'classic' else 'User Portal'} "
                   f"invitation was mailed to {who.email}.")
        return back(f"/admin/users/{who.id}")
    return web.render(request, "admin/shown_once.html", user=me, title="Invitation",
                      what=f"Send this text to {who.email}; its link is theirs alone.",
                      secret=invitation.body, back_to=f"/admin/users/{who.id}")


@router.post("/users/{user_id}/cards", dependencies=Csrf)
def add_card(request: Request, me: Admin, user_id: str,
             number: Annotated[str, Form(max_length=128)]) -> Response:
    who = admin.org_user(web.store(request), me.org_id, user_id)
    return _acted(request, who, f"Card added for {who.email}.",
                  lambda: directory.add_card(web.store(request), who.email, number.strip()))


@router.post("/users/{user_id}/cards/remove", dependencies=Csrf)
def remove_cards(request: Request, me: Admin, user_id: str,
                 number: Annotated[str, Form(max_length=128)] = "") -> Response:
    """One card (its number given), or every card of the user."""
    who = admin.org_user(web.store(request), me.org_id, user_id)
    one = number.strip() or None
    return _acted(request, who, f"{'The card' if one else 'Every card'} of {who.email} removed.",
                  lambda: web.linking(request).remove_cards(who.email, one))


@router.post("/users/{user_id}/code/reset", dependencies=Csrf)
def reset_code(request: Request, me: Admin, user_id: str) -> Response:
    who = admin.org_user(web.store(request), me.org_id, user_id)
    code = web.linking(request).reset_access_code(who.email)
    return web.render(request, "admin/shown_once.html", user=me, title="New access code",
                      what=f"The new access code of {who.email}. It is shown this once (the "
                      "cloud keeps only a hash): give it to them.", secret=code,
                      back_to=f"/admin/users/{who.id}")


@router.post("/users/{user_id}/code", dependencies=Csrf)
def set_code(request: Request, me: Admin, user_id: str,
             code: Annotated[str, Form(max_length=32)]) -> Response:
    who = admin.org_user(web.store(request), me.org_id, user_id)
    return _acted(request, who, f"Access code set for {who.email}.",
                  lambda: directory.set_access_code(web.store(request), who.email, code))


@router.post("/users/{user_id}/password", dependencies=Csrf)
def set_password(request: Request, me: Admin, user_id: str,
                 password: Annotated[str, Form(max_length=1024)]) -> Response:
    who = admin.org_user(web.store(request), me.org_id, user_id)
    return _acted(request, who, f"Password set for {who.email}.",
                  lambda: directory.set_password(web.store(request), who.email, password))


@router.post("/users/{user_id}/sessions/end", dependencies=Csrf)
def end_sessions(request: Request, me: Admin, user_id: str) -> Response:
    who = admin.org_user(web.store(request), me.org_id, user_id)
    return _acted(request, who, f"{who.email} is signed out everywhere.",
                  lambda: admin.end_sessions(web.store(request), who.email))


@router.post("/users/{user_id}/unlock", dependencies=Csrf)
def unlock(request: Request, me: Admin, user_id: str) -> Response:
    who = admin.org_user(web.store(request), me.org_id, user_id)
    store = web.store(request)
    was = admin.user_locked_until(store, who) is not None
    return _acted(request, who, f"{who.email} unlocked." if was else
                  f"{who.email} was not locked; their count of wrong guesses is reset.",
                  lambda: admin.unlock(store, "user", who.email))


# -- the org's settings


@router.get("/settings")
def settings_page(request: Request, me: Admin) -> Response:
    return web.render(request, "admin/settings.html", user=me,
                      s=admin.org_settings(web.store(request), me.org_id),
                      card_policies=CARD_POLICIES, aop_policies=AOP_POLICIES)


@router.post("/settings", dependencies=Csrf)
def change_settings(request: Request, me: Admin, hold_hours: Annotated[float, Form()],
                    card_policy: Annotated[str, Form(max_length=20)],
                    aop_pending: Annotated[str, Form(max_length=20)],
                    release_changes: Annotated[str, Form(max_length=4)] = "") -> Response:
    store = web.store(request)
    current = admin.org_settings(store, me.org_id)
    wanted: dict[str, Any] = {"hold_hours": hold_hours, "card_policy": card_policy,
              "release_changes": release_changes == "yes", "aop_pending": aop_pending}
    # Only what changed: the audit entry says what the administrator changed, not the rest.
    changes = {k: v for k, v in wanted.items() if getattr(current, k) != v}
    try:
        admin.change_org_settings(store, me.org_id, **changes)
    except MfdError as exc:
        web.notice(request, exc.message, "error")
    else:
        web.notice(request, "Settings saved." if changes else "Nothing changed.")
    return back("/admin/settings")


# -- the audit log


@router.get("/audit")
def audit_page(request: Request, me: Admin, action: str = "", actor: str = "",
               subject: str = "", since: str = "", until: str = "") -> Response:
    entries: list[tuple[float, str, str, str, str]] = []
    error = ""
    try:
        start = _day(since, "from")
        end = _day(until, "to")
        entries = admin.org_audit(web.store(request), me.org_id, action=action[:64],
                                  actor=actor[:128], subject=subject[:128], since=start,
                                  until=None if end is None else end + 86_400, limit=500)
    except MfdError as exc:
        error = exc.message
    return web.render(request, "admin/audit.html", status_code=400 if error else 200, user=me,
                      entries=entries, when=when, error=error,
                      f={"action": action, "actor": actor, "subject": subject, "since": since,
                         "until": until})


def _day(text: str, name: str) -> float | None:
    """A YYYY-MM-DD date (a date input's value) as the UTC midnight that starts it."""
    if not text:
        return None
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%d")))
    except ValueError:
        raise StoreError(f"{name}: a date is YYYY-MM-DD, not {text[:20]!r}",
                         code="invalid_field") from None


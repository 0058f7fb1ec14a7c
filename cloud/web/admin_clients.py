"""The admin console's print clients (under /admin/, included by admin_pages.py): the org's
share link (and rotating it), an org-wide installer for bulk deployment (shown once), the print
queues deployed to linked clients, and the client installs with their link state (revoking a
lost laptop's or phone's). The use-cases are cloud/linking's, as ``mfd admin share-link``,
``bulk-installer``, ``queues-add``, ``queues``, ``clients`` and ``client-revoke`` call them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from cloud import admin
from cloud.storage.port import User
from cloud.web import context as web
from cloud.web.admin_common import Admin, acting, back, when
from protocol.errors import MfdError

router = APIRouter(include_in_schema=False, dependencies=[Depends(acting)])
Csrf = [Depends(web.check_csrf)]

#: The longest an org-wide installer may be valid from the console (the CLI's default).
MAX_INSTALLER_DAYS = 365


@router.get("/clients")
def clients_page(request: Request, me: Admin) -> Response:
    return _clients(request, me)


def _clients(request: Request, me: User, *, status_code: int = 200,
             queue_error: str = "") -> Response:
    linking = web.linking(request)
    return web.render(request, "admin/clients.html", status_code=status_code, user=me,
                      share_link=linking.share_link(me.org_id),
                      queues=linking.queues(me.org_id),
                      installs=linking.installs(me.org_id, include_revoked=True), when=when,
                      queue_error=queue_error, max_days=MAX_INSTALLER_DAYS)


@router.post("/clients/share-link", dependencies=Csrf)
def rotate_share_link(request: Request, me: Admin) -> Response:
    web.linking(request).share_link(me.org_id, rotate=True)
    web.notice(request, "The share link is new; the earlier one no longer signs anyone in.")
    return back("/admin/clients")


@router.post("/clients/bulk-installer", dependencies=Csrf)
def bulk_installer(request: Request, me: Admin,
                   days: Annotated[int, Form(ge=1, le=MAX_INSTALLER_DAYS)] = 365) -> Response:
    linking = web.linking(request)
    issued = linking.bulk_installer(me.org_id, ttl=days * 86_400.0)
    return web.render(request, "admin/shown_once.html", user=me, title="Org-wide installer",
                      what=f"An anonymous installer for every computer of the org, valid until "
                      f"{when(issued.expires_at)} and shown this once. Deploy it with the client "
                      "(MDM) for every user of a computer; each user links it by signing in.",
                      secret=f"mfd client --portal {linking.base_url} link --anonymous "
                      f"{issued.token}", back_to="/admin/clients")


@router.post("/clients/queues", dependencies=Csrf)
def add_queue(request: Request, me: Admin, name: Annotated[str, Form(max_length=64)]) -> Response:
    try:
        web.linking(request).add_queue(me.org_id, name)
    except MfdError as exc:
        return _clients(request, me, status_code=400, queue_error=exc.message)
    web.notice(request, f"Queue {name.strip()!r} deployed to the linked clients.")
    return back("/admin/clients")


@router.post("/clients/{client_id}/revoke", dependencies=Csrf)
def revoke_client(request: Request, me: Admin, client_id: str) -> Response:
    install = admin.org_client(web.store(request), me.org_id, client_id)
    try:
        web.linking(request).revoke_install(install.id)
    except MfdError as exc:
        web.notice(request, exc.message, "error")
    else:
        web.notice(request, f"Client {install.machine} revoked: it prints no more, and its "
                   "waiting jobs are discarded.")
    return back("/admin/clients")

"""What the admin console's pages share (admin_pages.py, admin_fleet.py): the signed-in
administrator as a dependency, the redirect after a form, and how a time is shown."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends
from starlette.responses import RedirectResponse

from cloud.storage.port import ACTING_ADMIN, User
from cloud.web import context as web

#: A route parameter: the signed-in administrator (others: sign in, or 403).
Admin = Annotated[User, Depends(web.current_admin)]


async def acting(me: Admin) -> None:
    """A dependency of every console route: the audit entries this request writes name the
    administrator ("admin:USER_ID"). Async on purpose: it runs in the request's own task, whose
    context the route's thread is given a copy of; a plain def would set it in a pool thread's
    copy, lost at once. Each request has its own task, so it never reaches another request."""
    ACTING_ADMIN.set(me.id)


def back(path: str) -> RedirectResponse:
    """After a form: to the page, by GET (a reload does not post it again)."""
    return RedirectResponse(path, status_code=303)


def when(at: float | None) -> str:
    """A time as the console shows it: UTC, to the minute ("-" for never)."""
    if not at:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))

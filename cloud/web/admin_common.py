"""What the admin console's pages share (admin_pages.py, admin_fleet.py): the signed-in
administrator as a dependency, the redirect after a form, and how a time is shown."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends
from starlette.responses import RedirectResponse

from cloud.storage.port import User
from cloud.web import context as web

#: A route parameter: the signed-in administrator (others: sign in, or 403).
Admin = Annotated[User, Depends(web.current_admin)]


def back(path: str) -> RedirectResponse:
    """After a form: to the page, by GET (a reload does not post it again)."""
    return RedirectResponse(path, status_code=303)


def when(at: float | None) -> str:
    """A time as the console shows it: UTC, to the minute ("-" for never)."""
    if not at:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))

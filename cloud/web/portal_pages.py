"""(Being built: see the module docstring once it lands.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from cloud.storage.port import User
from cloud.web import context as web

router = APIRouter(include_in_schema=False)


@router.get("/portal/")
def my_jobs(request: Request, user: Annotated[User, Depends(web.current_user)]) -> Response:
    return web.render(request, "error.html", user=user, message="(being built)")

"""(Being built: see the module docstring once it lands.)"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()

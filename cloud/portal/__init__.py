"""The portal's HTTP API (what print clients, the mobile app and the User Portal speak): its
routes (routes.py) and the server that frames, dispatches and answers them (server.py)."""

from __future__ import annotations

from cloud.portal.routes import MAX_JSON, ROUTES, STATUS, HttpError, Route
from cloud.portal.server import PortalServer, start_portal

__all__ = ["MAX_JSON", "ROUTES", "STATUS", "HttpError", "PortalServer", "Route", "start_portal"]

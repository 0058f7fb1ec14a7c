"""The portal: the JSON API that print clients, the mobile app and devices speak, with the User
Portal and the admin console beside it, all one web app (cloud/web/) served by uvicorn.

:func:`start_portal` is how ``mfd cloud --http`` and the tests start it: it checks the store
first (a bad URL or an unreachable store fails here), serves on ``host:port`` in the background
and records the public URL in the store for the links ``mfd admin`` prints."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from cloud import devices
from cloud.linking import MAX_DOCUMENT, Linking
from cloud.storage.factory import open_store
from cloud.web.api import MAX_JSON, ApiError
from cloud.web.errors import STATUS
from cloud.web.server import WebServer, start_web
from cloud.web.settings import WebSettings

log = logging.getLogger(__name__)

#: What start_portal returns (``.url``, ``.public_url``, ``.port``, ``.close()``, a context
#: manager); the name callers knew.
PortalServer = WebServer
HttpError = ApiError

__all__ = ["MAX_JSON", "STATUS", "HttpError", "PortalServer", "start_portal"]


def start_portal(store_url: str, host: str = "127.0.0.1", port: int = 0, *,
                 public_url: str | None = None, max_document: int = MAX_DOCUMENT,
                 threads: int = 8, clock: Callable[[], float] = time.time,
                 accounts: devices.BrokerAccounts | None = None,
                 device_broker_url: str = "", device_broker_urls: tuple[str, ...] = (),
                 settings: WebSettings | None = None) -> WebServer:
    """Serve the portal on ``host:port`` (0: a free port; see ``.url``) in the background.

    ``settings`` carries the rest of the web app's configuration (session key, cookies, mail,
    single sign-on); the arguments here override its fields. ``device_broker_url``: one broker
    for registered devices (``device_broker_urls``: several)."""
    store = open_store(store_url)
    try:
        setup = Linking(store)
    except BaseException:
        store.close()
        raise
    try:
        base = settings or WebSettings(store_url=store_url)
        web = replace(base, store_url=store_url, public_url=(public_url or "").rstrip("/"),
                      max_document=max_document, threads=threads, accounts=accounts,
                      device_broker_urls=device_broker_urls or tuple(
                          u for u in (device_broker_url,) if u))
        server = start_web(web, host, port, clock=clock,
                           before_start=lambda s: setup.set_public_url(s.public_url))
    finally:
        store.close()
    log.info("portal serving on %s (public %s)", server.url, server.public_url)
    return server

"""Serve the web app with uvicorn, a production ASGI server, in the background of this process
(``mfd cloud --http`` and the tests). The socket is bound here, before uvicorn starts, so port 0
picks a free port that ``.url`` then names, and a taken port fails at once with its name."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import threading
import time
from collections.abc import Callable

import uvicorn

from cloud.web.app import create_app
from cloud.web.settings import WebSettings
from protocol.errors import MfdError

#: Seconds to wait for the server to come up before giving up.
START_TIMEOUT = 15.0


class WebServer:
    def __init__(self, settings: WebSettings, sock: socket.socket,
                 clock: Callable[[], float]) -> None:
        self.settings = settings
        self._sock = sock
        host, port = sock.getsockname()[:2]
        self.port = int(port)
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        self.public_url = (settings.public_url or self.url).rstrip("/")
        self.app = create_app(settings, clock=clock)
        config = uvicorn.Config(self.app, log_level="warning", access_log=False,
                                lifespan="on", timeout_graceful_shutdown=2,
                                server_header=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="web", daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self) -> WebServer:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise MfdError(f"the web server on {self.url} did not start",
                               code="config_invalid")
            time.sleep(0.01)
        return self

    def close(self, grace: float = 2.0) -> None:
        """Stop accepting, give the requests in hand ``grace`` seconds, then cut them (a
        stalled client must not hold up a shutdown), and release the port."""
        # uvicorn takes whole seconds here.
        self._server.config.timeout_graceful_shutdown = max(1, math.ceil(grace))
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> WebServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_web(settings: WebSettings, host: str = "127.0.0.1", port: int = 0, *,
              clock: Callable[[], float] = time.time,
              before_start: Callable[[WebServer], None] | None = None) -> WebServer:
    """Serve the portal, the console and the API on ``host:port`` (0: a free port).

    ``before_start`` runs once the address is known and before the first request is taken
    (start_portal records the public URL there, so no link is made with an old one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise MfdError(f"cannot serve the web portal on {host}:{port}: {exc.strerror}",
                       code="config_invalid") from None
    sock.listen(128)
    server = WebServer(settings, sock, clock)
    if before_start is not None:
        try:
            before_start(server)
        except BaseException:
            sock.close()
            raise
    return server.start()

"""Stand-ins for pure unit tests of the device app's loop (never for an adapter's own tests)."""

from __future__ import annotations

from collections.abc import Callable


class IdleLink:
    """A CloudLink that is up and is never asked anything (only the app's queue is used)."""

    connected = True
    on_connection: Callable[[bool], None] | None = None

    def request(self, request: object, reply: object, timeout: float | None = None) -> None:
        raise AssertionError("no request expected")

    def call(self, request: object, timeout: float | None = None) -> object:
        raise AssertionError("no request expected")

    def close(self) -> None:
        pass

"""Stand-ins for pure unit tests of the device app's loop (never for an adapter's own tests)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from protocol import messages as m
from protocol.errors import LinkError, MfdError


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


@dataclass
class Outstanding:
    """A request the ScriptedLink has sent and not answered yet."""

    request: m.Request
    reply: Callable[[m.Result | MfdError], None]
    tag: str = ""  # the session machine's tag, when the test records it


class ScriptedLink:
    """A CloudLink whose requests wait until the test answers them, with the real link's
    semantics (device_app/link.py): a request made while down fails at once
    (``unreachable``); when the link drops, a read-only request in flight fails
    (``unreachable``) while a mutating one (with a request_id) stays in flight, to be sent
    again after the reconnect, until the outcome bound passes (``unknown_outcome``)."""

    def __init__(self, connected: bool = True) -> None:
        self.connected = connected
        self.on_connection: Callable[[bool], None] | None = None
        self.outstanding: list[Outstanding] = []
        self.sent: list[m.Request] = []
        self.next_tag = ""

    def request(self, request: m.Request, reply: Callable[[m.Result | MfdError], None],
                timeout: float | None = None) -> None:
        self.sent.append(request)
        if not self.connected:
            reply(LinkError("can't reach the print service", code="unreachable"))
            return
        self.outstanding.append(Outstanding(request, reply, self.next_tag))

    def call(self, request: m.Request, timeout: float | None = None) -> m.Result:
        raise AssertionError("the loop never blocks on the link")

    def answer(self, item: Outstanding, outcome: m.Result | MfdError) -> None:
        self.outstanding.remove(item)
        item.reply(outcome)

    def go_down(self) -> None:
        if not self.connected:
            return
        self.connected = False
        for item in [i for i in self.outstanding if not m.is_mutating(i.request)]:
            self.answer(item, LinkError("the connection was lost", code="unreachable"))
        if self.on_connection:
            self.on_connection(False)

    def go_up(self) -> None:
        if self.connected:
            return
        self.connected = True
        if self.on_connection:
            self.on_connection(True)

    def bound_passes(self) -> None:
        """The link stayed down past the bound: what is in flight has an unknown outcome."""
        if self.connected:
            return
        for item in list(self.outstanding):
            self.answer(item, LinkError("no answer before the connection came back",
                                        code="unknown_outcome"))

    def close(self) -> None:
        pass


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

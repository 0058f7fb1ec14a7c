"""What the simulator's worlds (simulator/world.py for the demo and the benchmarks,
simulator/scenarios/world.py for scenarios) share: started as a whole or not at all, and a
broker of their own with credentials made for the run."""

from __future__ import annotations

import contextlib
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Self

from simulator.broker import IotcoreBroker, MosquittoBroker, make_broker

#: The cloud worker's broker user.
CLOUD_USER = "cloud-0"


class StackedWorld(ABC):
    """A world whose :meth:`_start` enters everything it starts on ``_stack``: :meth:`stop`
    unwinds it, last started first stopped, and a start that fails half-way stops what it had
    started before raising (a test that fails must not leave a broker or a device running)."""

    _stack: contextlib.ExitStack

    @abstractmethod
    def _start(self) -> None: ...

    def start(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._stack.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_broker(stack: contextlib.ExitStack, workdir: Path, device_ids: Iterable[str]
                 ) -> tuple[MosquittoBroker | IotcoreBroker, dict[str, str]]:
    """A broker in ``workdir``/broker, started and stopped with ``stack``, and the passwords
    of its users: :data:`CLOUD_USER` and each device. Fresh every run: nothing to leak,
    nothing to reuse."""
    passwords = {CLOUD_USER: secrets.token_urlsafe(16)}
    passwords |= {d: secrets.token_urlsafe(16) for d in device_ids}
    broker = make_broker(workdir / "broker", passwords, cloud_users=(CLOUD_USER,))
    broker.start()
    stack.callback(broker.stop)
    return broker, passwords

"""What a person did in the simulator window, as scenario steps (``mfd sim --record``).

The window reports each thing done (a badge, keys, a panel tap, a fault) and the states the
panel went through; the recorder turns them into steps, with a ``wait`` for the state each
action led to, so the file replays the session. Typed characters are gathered into one
``type`` step, ENTER closing it. A wait that took simulated time (an idle timeout, a notice
ending on its own) gets a timeout a little over what it took; the last step checks the state and
the user the session ended with. Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from simulator.scenarios.model import Expect, Scenario, Step, Type, Wait


@dataclass
class StepRecorder:
    base: Scenario
    device: str
    steps: list[Step] = field(default_factory=list)
    _typed: str = ""
    _acted_at: float | None = None
    _state_before: str = ""
    _seen: tuple[str, float] | None = None  # the newest state after the last action, and when

    def action(self, step: Step, now: float, state: str) -> None:
        self._flush_typing()
        self._flush_wait()
        self.steps.append(step)
        self._acted_at, self._state_before, self._seen = now, state, None

    def typed(self, key: str, now: float, state: str) -> None:
        if key == "ENTER":
            self._flush_wait()
            self.steps.append(Type(self._typed, True, self.device))
            self._typed = ""
            self._acted_at, self._state_before, self._seen = now, state, None
        elif len(key) == 1:
            if not self._typed:
                self._flush_wait()
            self._typed += key

    def state_seen(self, state: str, now: float) -> None:
        if self._acted_at is None or (self._seen is None and state == self._state_before):
            return
        if self._seen is None or self._seen[0] != state:
            self._seen = (state, now)

    def _flush_typing(self) -> None:
        if self._typed:
            self.steps.append(Type(self._typed, False, self.device))
            self._typed = ""

    def _flush_wait(self) -> None:
        seen, acted = self._seen, self._acted_at
        if seen is None or acted is None:
            return
        took = seen[1] - acted
        timeout = float(math.ceil(took) + 1) if took >= 0.5 else 0.0
        self.steps.append(Wait(seen[0], timeout, self.device))
        self._seen = None

    def finish(self, state: str, user: str) -> None:
        """The session is over: check where it ended, so the replay is a test by itself."""
        self._flush_typing()
        self._flush_wait()
        if self.steps:
            self.steps.append(Expect(self.device, state=state, user=user))

    def scenario(self) -> Scenario:
        self._flush_typing()
        self._flush_wait()
        return replace(self.base, steps=tuple(self.steps), lines=())

"""What the scenario runner decides, without doing any of it: how a step and a screen read in
the transcript, what a tap means, which screens count as "still busy", and whether an
expectation holds for what was seen.

The transcript is the contract of determinism: it holds simulated times, step descriptions and
the screens the panel went through, never a wall-clock time, a random id, a card number or a
code (a badge is named by its holder, a typed code by its length).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from readers.events import mask_card
from simulator.scenarios.model import (
    Advance,
    Expect,
    Fault,
    FaultKind,
    Press,
    Release,
    Scenario,
    Step,
    Tap,
    Type,
    Wait,
)

#: Screens where the panel waits for the network or the engine: the runner keeps driving.
BUSY_SCREENS = frozenset({"busy", "releasing"})
#: Seconds the simulated clock moves per tick while a ``wait`` lets time pass.
WAIT_TICK = 1.0


@dataclass(frozen=True, slots=True)
class Seen:
    """What a device showed and the world held when an expectation was checked."""

    state: str
    screen: str
    title: str
    message: str
    banner: str  # why the printer cannot print, shown over the job list
    user: str
    jobs: tuple[str, ...]
    total: int
    engine: str
    printed: tuple[str, ...]
    cloud: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ScreenSig:
    """What makes a transcript line when it changes: the state, the screen and its title."""

    state: str
    screen: str
    title: str

    def line(self, device: str) -> str:
        return f"{device}: {self.state} / {self.screen}" + (f" {self.title!r}" if self.title
                                                             else "")


def stamp(elapsed: float, text: str) -> str:
    return f"[t={elapsed:8.1f}s] {text}"


def describe(n: int, step: Step, scenario: Scenario) -> str:
    """A step as the transcript says it (no secrets)."""
    multi = len(scenario.devices) > 1
    at = ""
    if multi and hasattr(step, "device"):
        at = f" @{step.device}"
    text: str
    if isinstance(step, Tap):
        who = step.badge
        user = scenario.user(who)
        if user is not None:
            who = f"{user.name}'s badge"
        elif who == "unknown":
            who = "a new unknown badge"
        elif who.startswith("unknown:"):
            who = f"unknown badge {who[8:]!r}"
        else:
            who = f"badge {mask_card(who)}"
        text = f"tap {who} on reader {step.reader}"
    elif isinstance(step, Type):
        text = f"type {len(step.text)} characters" + (" + ENTER" if step.enter else "")
    elif isinstance(step, Press):
        text = f"press {step.action}" + (f" {step.job!r}" if step.job else "")
    elif isinstance(step, Release):
        text = "release " + (", ".join(repr(j) for j in step.jobs) if step.jobs else "all")
    elif isinstance(step, Wait):
        text = f"wait for {step.state}" + (f" (up to {step.timeout:g} s)" if step.timeout else "")
    elif isinstance(step, Advance):
        text = f"advance the clock {step.seconds:g} s"
    elif isinstance(step, Fault):
        text = f"fault {step.kind.value}" + _fault_detail(step)
    else:
        text = "expect " + ", ".join(expectation_terms(step))
    return f"step {n}{at}: {text}"


def _fault_detail(f: Fault) -> str:
    if f.kind in (FaultKind.UNPLUG, FaultKind.REPLUG):
        return f" (reader {f.reader})"
    if f.kind is FaultKind.LATENCY:
        return f" ({f.ms:g} ms each way)"
    if f.kind is FaultKind.CLOCK_JUMP:
        return f" (+{f.seconds:g} s)"
    if f.after_pages is not None:
        return f" (armed: after {f.after_pages} page(s) of the next job)"
    return ""


def expectation_terms(e: Expect) -> list[str]:
    terms = []
    for key in ("screen", "state", "title", "message", "user", "job_count", "engine"):
        v = getattr(e, key)
        if v is not None:
            terms.append(f"{key}={v!r}")
    if e.jobs is not None:
        terms.append(f"jobs={list(e.jobs)}")
    if e.printed is not None:
        terms.append(f"printed={list(e.printed)}")
    terms += [f"cloud[{job!r}]={state}" for job, state in e.cloud]
    return terms


def check(e: Expect, seen: Seen) -> str | None:
    """The first way ``seen`` falls short of ``e``, as "expected ..., saw ...", or None."""
    def miss(what: str, wanted: object, got: object) -> str:
        return f"expected {what} {wanted!r}, saw {got!r}"

    if e.screen is not None and seen.screen != e.screen:
        return miss("screen", e.screen, f"{seen.screen} ({seen.title})")
    if e.state is not None and seen.state != e.state:
        return miss("state", e.state, f"{seen.state} ({seen.title})")
    if e.title is not None and e.title not in seen.title:
        return miss("a title containing", e.title, seen.title)
    if e.message is not None and not any(e.message in t for t in (seen.title, seen.message,
                                                                   seen.banner)):
        shown = " / ".join(t for t in (seen.title, seen.message, seen.banner) if t)
        return miss("a message containing", e.message, shown)
    if e.user is not None and seen.user != e.user:
        return miss("user", e.user, seen.user)
    if e.jobs is not None and seen.jobs != e.jobs:
        return miss("jobs listed", list(e.jobs), list(seen.jobs))
    if e.job_count is not None and seen.total != e.job_count:
        return miss("job_count", e.job_count, seen.total)
    if e.engine is not None and seen.engine != e.engine:
        return miss("engine", e.engine, seen.engine)
    if e.printed is not None and seen.printed != e.printed:
        return miss("printed", list(e.printed), list(seen.printed))
    for job, state in e.cloud:
        got = seen.cloud.get(job, "?")
        if got != state:
            return miss(f"job {job!r} in the cloud", state, got)
    return None


def unknown_badge(rng: random.Random, known: set[str]) -> str:
    """A fresh badge no one has: an EM4100 tag (32 bits) as its reader prints it."""
    while True:
        number = f"{rng.randrange(1, 2**32):010d}"
        if number not in known:
            return number

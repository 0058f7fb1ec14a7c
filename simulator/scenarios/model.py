"""A scenario as data: the world it needs and the timeline of steps, all frozen.

``parse`` (simulator/scenarios/parse.py) builds these from a TOML file and is the only place a
file is judged; ``run`` decides what each step means and whether an expectation holds;
``world`` does the I/O (broker, cloud, devices, faults). Nothing here does anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from protocol.managed import Policy


class ReaderKind(StrEnum):
    #: readers/adapters/sim_reader.py: a card goes straight to the device (no wire).
    SIM = "sim"
    #: An RDM6300 on a pseudo-terminal (firmware_stubs.serial_readers.Em4100Stub) read by the
    #: device's serial adapter: the reader that can be unplugged and plugged in again.
    EM4100 = "em4100"


@dataclass(frozen=True, slots=True)
class ReaderSpec:
    name: str = "front"
    kind: ReaderKind = ReaderKind.SIM
    #: Real seconds (the readers' lock-out runs on the wall clock); 0 by default so a
    #: scenario never depends on how fast this machine runs it.
    lockout: float = 0.0


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    id: str
    name: str = ""
    readers: tuple[ReaderSpec, ...] = (ReaderSpec(),)
    #: Real seconds per page of the emulated engine.
    page_time: float = 0.0
    policy: Policy = field(default_factory=Policy)


@dataclass(frozen=True, slots=True)
class UserSpec:
    key: str  # how steps name the user ("alice")
    name: str
    email: str
    badge: str = ""  # the number the reader gives; "" for none
    code: str = ""  # access code (also the PIN after a badge when the policy asks for one)
    password: str = ""
    #: Kept for the day the panel speaks several languages; the cloud has no such field yet.
    language: str = "en"


@dataclass(frozen=True, slots=True)
class JobSpec:
    owner: str  # a user key
    name: str
    pages: int = 1
    client: str = "WS-SIM"  # the print client (workstation) it came from
    color: bool = False
    duplex: bool = False
    copies: int = 1


# ---------------------------------------------------------------- steps


@dataclass(frozen=True, slots=True)
class Tap:
    #: A user key; "unknown" (a fresh unknown badge each time); "unknown:LABEL" (a fresh one
    #: the first time, the same one after); or a badge number.
    badge: str
    device: str
    reader: str


@dataclass(frozen=True, slots=True)
class Type:
    text: str
    enter: bool
    device: str


@dataclass(frozen=True, slots=True)
class Press:
    action: str  # a device_app.view.Action value
    device: str
    job: str = ""  # a job name, for "select"; a field name, for "focus"; a key, for "key"


@dataclass(frozen=True, slots=True)
class Release:
    jobs: tuple[str, ...]  # job names; () releases all
    device: str


@dataclass(frozen=True, slots=True)
class Wait:
    state: str  # a session State value, or the screen "busy" or "confirm"
    timeout: float  # simulated seconds the clock may move while waiting
    device: str


@dataclass(frozen=True, slots=True)
class Advance:
    seconds: float


class FaultKind(StrEnum):
    JAM = "jam"
    NO_PAPER = "no_paper"
    DOOR_OPEN = "door_open"
    CLEAR = "clear"  # the engine ready again
    UNPLUG = "unplug"
    REPLUG = "replug"
    BROKER_DOWN = "broker_down"
    BROKER_UP = "broker_up"
    CLOUD_KILL = "cloud_kill"
    CLOUD_RESTART = "cloud_restart"
    LATENCY = "latency"
    CLOCK_JUMP = "clock_jump"


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    device: str
    reader: str = ""
    ms: float = 0.0  # latency: each way, per chunk
    seconds: float = 0.0  # clock_jump
    #: jam/no_paper/door_open: strike the next job after this many pages instead of now.
    after_pages: int | None = None


@dataclass(frozen=True, slots=True)
class Expect:
    device: str
    screen: str | None = None  # a device_app.view.Screen value
    state: str | None = None  # a session State value
    title: str | None = None  # the title contains this
    message: str | None = None  # the title or the message contains this
    user: str | None = None  # the signed-in user's name
    jobs: tuple[str, ...] | None = None  # the job names listed, in order
    job_count: int | None = None  # the total the user has
    cloud: tuple[tuple[str, str], ...] = ()  # (job name, state in the cloud)
    printed: tuple[str, ...] | None = None  # job names the engine printed, in order
    engine: str | None = None  # the engine's state


Step = Tap | Type | Press | Release | Wait | Advance | Fault | Expect


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    devices: tuple[DeviceSpec, ...]
    users: tuple[UserSpec, ...]
    jobs: tuple[JobSpec, ...]
    steps: tuple[Step, ...]
    #: Lines of each step in the file (1-based), for messages; same length as ``steps``.
    lines: tuple[int, ...] = ()
    description: str = ""

    def device(self, device_id: str) -> DeviceSpec:
        return next(d for d in self.devices if d.id == device_id)

    def user(self, key: str) -> UserSpec | None:
        return next((u for u in self.users if u.key == key), None)

"""What happens to the session at the copier: the machine's inputs.

Each is a frozen value; secrets (a badge number, a code, a key) are kept out of ``repr`` so an
event can be logged whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from device_app.view import Action
from protocol import messages as m
from protocol.engine import EngineState


@dataclass(frozen=True, slots=True)
class CardPresented:
    number: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class CodeEntered:
    """A complete access code from a hardware PIN keypad (the panel's own keys are KeyPressed)."""

    code: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class KeyPressed:
    """One key of the panel's keypad or keyboard: a character, or BACKSPACE, CLEAR, ENTER."""

    key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Tapped:
    action: Action
    #: The job id (SELECT), field name (FOCUS) or key (KEY) the tap is about.
    job_id: str | None = None


@dataclass(frozen=True, slots=True)
class Answered:
    tag: str
    result: m.Result


@dataclass(frozen=True, slots=True)
class Failed:
    """A request failed: the cloud said no (``code`` from the wire) or the link did."""

    tag: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class JobDone:
    release_id: str
    job_id: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PagesPrinted:
    """How far the engine is with a job, where it reports pages (``done`` of the job's pages)."""

    release_id: str
    job_id: str
    done: int


@dataclass(frozen=True, slots=True)
class JobsChanged:
    """The cloud says the signed-in user's held jobs changed (a new job arrived): the list is
    fetched again. It names nobody (protocol ``jobs.changed``), so it can only prompt a re-list
    of whoever is signed in here."""


@dataclass(frozen=True, slots=True)
class Tick:
    now: float


@dataclass(frozen=True, slots=True)
class LinkChanged:
    """The link to the print service came up or went down. ``local``: it is "up" because the
    device answers for the print service itself (offline mode, device_app/offline/), which the
    panel says."""

    up: bool
    local: bool = False


@dataclass(frozen=True, slots=True)
class EngineChanged:
    """The print engine's state changed (the app polls it)."""

    state: EngineState


@dataclass(frozen=True, slots=True)
class OrderArrived:
    """A release ordered from the portal for this copier (protocol ``release.order``), for the
    panel to print with nobody signed in. The app hands it over only while the panel is idle
    and only once per release (device_app/app.py keeps it back while someone is signed in)."""

    order: m.ReleaseOrder


Event = (CardPresented | CodeEntered | KeyPressed | Tapped | Answered | Failed | JobDone
         | PagesPrinted | JobsChanged | Tick | LinkChanged | EngineChanged | OrderArrived)


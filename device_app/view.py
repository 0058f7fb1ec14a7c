"""What the panel shows, as plain data. The session machine produces a ``PanelView``; the pygame
screens (device_app/screens.py) draw it and nothing else, so a screen can be tested without a
session, and a session without a screen."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from protocol.messages import JobSummary


class Screen(StrEnum):
    IDLE = "idle"  # "Tap your badge"
    BUSY = "busy"  # identifying / loading: spinner + message
    JOBS = "jobs"  # the user's job list with actions
    RELEASING = "releasing"  # progress per job
    NOTICE = "notice"  # a message (error or info) until timeout or tap
    OFFLINE = "offline"  # can't reach the print service


class Tone(StrEnum):
    INFO = "info"
    OK = "ok"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class JobProgress:
    job_id: str
    name: str
    state: str  # "waiting", "printing", "printed", "failed"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PanelView:
    screen: Screen
    title: str = ""
    message: str = ""
    tone: Tone = Tone.INFO
    user_name: str = ""
    jobs: tuple[JobSummary, ...] = ()
    total_jobs: int = 0
    selected: frozenset[str] = field(default_factory=frozenset)
    progress: tuple[JobProgress, ...] = ()
    device_name: str = ""


class Action(StrEnum):
    """What a tap on the panel means; screens return these from hit-testing."""

    SELECT = "select"  # toggles one job (with job_id)
    SELECT_ALL = "select_all"
    RELEASE = "release"  # release the selected jobs
    RELEASE_ALL = "release_all"
    LOGOUT = "logout"
    DISMISS = "dismiss"
    RETRY = "retry"
    SCROLL_UP = "scroll_up"
    SCROLL_DOWN = "scroll_down"

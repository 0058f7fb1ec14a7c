"""What the panel shows, as plain data. The session's presenter (device_app/session/presenter.py)
turns the machine's state into a ``PanelView``; the pygame screens (device_app/panel/) draw
it and nothing else, so a screen can be tested without a session, and a session without a
screen."""

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
    ENTRY = "entry"  # typing an access code, PIN, or username + password (entry field)
    CONFIRM = "confirm"  # a yes/no question (delete jobs?)
    OPTIONS = "options"  # changes at release: greyscale, 2-sided, copies
    DIAGNOSTICS = "diagnostics"  # a technician's rows: last badge, engine, link, config


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
    #: The job's pages (0: not known), and how many the engine says it printed (None: it
    #: does not say).
    pages: int = 0
    pages_done: int | None = None


@dataclass(frozen=True, slots=True)
class FieldView:
    """One text field of an entry screen. ``display`` is what may be shown (masked for
    secrets: one "•" per character)."""

    name: str
    label: str
    display: str
    focused: bool = False


@dataclass(frozen=True, slots=True)
class EntryView:
    """What an entry screen asks for. ``keyboard`` is "digits" (a keypad with letters on
    demand) or "text" (a full on-screen keyboard). ``can_switch`` offers the other way in
    (access code <-> username + password)."""

    kind: str  # "code", "pin", "password", "associate_code", "associate_password"
    fields: tuple[FieldView, ...]
    keyboard: str = "digits"
    error: str = ""
    can_switch: bool = False


@dataclass(frozen=True, slots=True)
class OptionsView:
    grayscale: bool = False
    duplex: bool = False
    copies: int | None = None  # None: as each job was sent


@dataclass(frozen=True, slots=True)
class InfoRow:
    """One line of a diagnostics screen: a label and its value; a ``heading`` starts a group
    (its label names the group, its value is empty)."""

    label: str
    # Not in repr: on the diagnostics screen a value may be a card's number, which is shown on
    # the glass only and must not reach a log or a test report through a repr of the view.
    value: str = field(default="", repr=False)
    heading: bool = False
    #: The value the device itself uses among its neighbours (the pipeline's conversion).
    chosen: bool = False


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
    #: The language the words above are in, for the panel's own labels (device_app/i18n).
    language: str = "en"
    entry: EntryView | None = None
    options: OptionsView | None = None
    #: Offer "Load more" (the list holds fewer jobs than the user has).
    can_load_more: bool = False
    #: Offer changes at release (the org allows them).
    can_change: bool = True
    #: Offer access code and username + password on the idle screen.
    can_type_code: bool = True
    can_type_password: bool = True
    #: Why the printer cannot print now (shown as a banner on the job list), or "".
    engine_problem: str = ""
    #: Every loaded job is selected (the list offers "Deselect all").
    all_selected: bool = False
    #: Why the list is empty (or shorter than the user may expect), a line each.
    empty_reasons: tuple[str, ...] = ()
    #: The idle logout is near: what to say ("Logging out in 10 s: touch to stay"), or "".
    countdown: str = ""
    #: The releasing screen offers "Done, log me out": printing goes on without the user.
    can_walk_away: bool = False
    #: The diagnostics screen's rows (device_app/session/diagnostics.py).
    rows: tuple[InfoRow, ...] = ()
    #: The idle screen's QR code: the portal's page for this copier ("" shows none).
    qr_url: str = ""


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
    LOAD_MORE = "load_more"  # fetch the next page of jobs
    DELETE = "delete"  # delete the selected jobs (asks to confirm)
    CONFIRM = "confirm"  # yes, on a CONFIRM screen
    CANCEL = "cancel"  # no / back, on CONFIRM, OPTIONS and ENTRY screens
    OPTIONS = "options"  # open the changes-at-release screen
    TOGGLE_GRAYSCALE = "toggle_grayscale"
    TOGGLE_DUPLEX = "toggle_duplex"
    COPIES_UP = "copies_up"
    COPIES_DOWN = "copies_down"
    ENTER_CODE = "enter_code"  # idle screen: type an access code
    # An action name, not a secret (hence the noqa).
    ENTER_PASSWORD = "enter_password"  # noqa: S105  # idle screen: username + password
    SWITCH_ENTRY = "switch_entry"  # entry screen: code <-> username + password
    FOCUS = "focus"  # entry screen: focus the field named in job_id
    KEY = "key"  # a key on the on-screen keypad/keyboard; the key is in job_id
    REFRESH = "refresh"  # job list: fetch it again
    STAY = "stay"  # the idle logout's countdown: touch to stay
    WALK_AWAY = "walk_away"  # releasing: "Done, log me out" (printing goes on)

"""The session at the copier: a pure, table-driven state machine.

Theory of operation
-------------------
Inputs are events (a card, a tap, a key, a cloud answer, an engine outcome or state, a clock
tick, the link going up or down); outputs are effects (send this request, print this job) and a
:class:`PanelView` to draw. The machine does no I/O and reads no clock: time arrives as
``Tick``. The app (device_app/app.py) runs the effects and feeds their outcomes back as events,
so every path here is testable without a broker, reader, engine or screen.

``TRANSITIONS`` at the bottom is the whole machine: which event is handled in which state, by
which handler. An event with no entry for the current state is ignored on purpose (a badge tapped
while jobs are printing must not log anyone out).

Each request the machine sends gets a tag; an answer whose tag is not pending (it arrived after
the user logged out, or after a timeout was already reported) is dropped, so a late answer can
never act on the wrong session.

Ways in: a badge; a badge then a PIN (``Policy.card_pin``); an access code; a username and
password. An unknown badge leads to self-association (``Policy.self_association``): the user
proves who they are with an access code or username + password and the cloud links the badge.
Ways out: the Logout button, the idle timeout (paused while the user types or taps, and while
jobs print), another badge (which logs the new holder in, by policy), and optionally the end of
a "release all".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from device_app.view import (
    Action,
    EntryView,
    FieldView,
    JobProgress,
    OptionsView,
    PanelView,
    Screen,
    Tone,
)
from protocol import messages as m
from protocol.engine import ENGINE_REASONS, EngineState


class State(StrEnum):
    IDLE = "idle"
    ENTRY = "entry"  # typing a code, PIN, or username + password
    IDENTIFYING = "identifying"
    LOADING = "loading"
    JOBS = "jobs"
    OPTIONS = "options"
    CONFIRM_DELETE = "confirm_delete"
    DELETING = "deleting"
    RELEASING = "releasing"
    NOTICE = "notice"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class Policy:
    """Per-device login, logout and release policy (pushed by the cloud with the config)."""

    card_pin: bool = False  # a badge must be followed by the user's PIN
    allow_code: bool = True  # access codes on the panel
    allow_password: bool = True  # username + password on the panel
    self_association: bool = True  # an unknown badge may be linked by its holder
    new_badge_logs_in: bool = True  # another badge logs the current user out and itself in
    logout_after_release_all: bool = False
    release_changes: bool = True  # greyscale / 2-sided / copies at release
    idle_timeout: float = 60.0
    entry_timeout: float = 30.0  # an abandoned keypad goes back to idle
    notice_timeout: float = 6.0
    page_size: int = 100


# ---------------------------------------------------------------- events (in)


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
class Tick:
    now: float


@dataclass(frozen=True, slots=True)
class LinkChanged:
    """The link to the print service came up or went down."""

    up: bool


@dataclass(frozen=True, slots=True)
class EngineChanged:
    """The print engine's state changed (the app polls it)."""

    state: EngineState


Event = (CardPresented | CodeEntered | KeyPressed | Tapped | Answered | Failed | JobDone | Tick
         | LinkChanged | EngineChanged)

# ---------------------------------------------------------------- effects (out)


@dataclass(frozen=True, slots=True)
class Send:
    tag: str
    request: m.Request


@dataclass(frozen=True, slots=True)
class PrintJob:
    release_id: str
    job: m.ReleasedJob


Effect = Send | PrintJob

# What a user reads for each error code. Unknown codes fall back to the cloud's own message.
NOTICES: dict[str, tuple[str, str]] = {
    "unknown_card": ("Card not recognised",
                     "This badge is not linked to anyone. Ask your administrator to add it."),
    "invalid_session": ("Your session ended", "Tap your badge to log in again."),
    "wrong_device": ("Your session ended", "Tap your badge to log in again."),
    "unknown_code": ("Code not recognised",
                     "Check your access code and try again, or tap your badge."),
    "invalid_password": ("Wrong username or password", "Check them and try again."),
    "wrong_pin": ("Wrong PIN", "Check your PIN and try again."),
    "unknown_device": ("This copier is not registered",
                       "Ask your administrator to register it with the print service."),
    "unreachable": ("Can't reach the print service",
                    "Your jobs are safe. Try again in a moment."),
    "timeout": ("Can't reach the print service", "Your jobs are safe. Try again in a moment."),
    "busy": ("The print service is busy", "Please try again in a moment."),
    # A mutating request sent, then no answer even after reconnecting (device_app/mqtt_link.py):
    # the cloud may have done it. Never "failed": the jobs are safe either way, since nothing
    # prints without the answer, and a release nobody fetched goes back to HELD by itself.
    "unknown_outcome": ("Not confirmed",
                        "The connection was lost before the print service answered. Your jobs "
                        "are safe and nothing was printed; a job missing from your list comes "
                        "back within 10 minutes."),
    "locked_out": ("Too many wrong attempts", "Try again later, or tap your badge."),
    "throttled": ("Badge sign-in paused",
                  "Too many unknown badges here. Try again later, or use your access code."),
    "card_limit": ("This badge can't be linked",
                   "You have as many badges as allowed. Ask your administrator."),
    "not_allowed": ("Not allowed", "Your organisation does not allow this."),
    "job_not_held": ("A job is no longer waiting",
                     "It was printed or removed meanwhile. Your list has been refreshed."),
    "job_not_found": ("A job is no longer waiting",
                      "It was printed or removed meanwhile. Your list has been refreshed."),
}

# A waiting screen while the link is down: the request in flight is kept and asked again after
# the reconnect (its outcome is not known yet), so the panel says it is checking, not failed.
_RECONNECTING = "Connection lost: reconnecting to check with the print service…"

# Entry failures that leave the user on the entry screen to try again (with the reason shown).
_RETRYABLE = {"unknown_code", "invalid_password", "wrong_pin"}

_FIELD_LIMITS = {"code": 10, "pin": 10, "username": 254, "password": 128}
_LABELS = {"code": "Access code", "pin": "PIN", "username": "Email", "password": "Password"}
_SECRET_FIELDS = {"code", "pin", "password"}


@dataclass(slots=True)
class _Entry:
    kind: str  # code, pin, password, associate_code, associate_password
    values: dict[str, str]
    focus: str
    error: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.values)


def _entry(kind: str, error: str = "") -> _Entry:
    names = {"code": ("code",), "pin": ("pin",), "password": ("username", "password"),
             "associate_code": ("code",),
             "associate_password": ("username", "password")}[kind]
    return _Entry(kind, dict.fromkeys(names, ""), names[0], error)


@dataclass(slots=True)
class _Release:
    release_id: str
    progress: dict[str, JobProgress]
    unconfirmed: set[str]  # jobs whose outcome the cloud has not acknowledged yet
    everything: bool = False  # "release all": may end the session, by policy


class SessionMachine:
    def __init__(self, *, new_id: Callable[[], str], device_name: str = "",
                 policy: Policy | None = None, idle_timeout: float | None = None,
                 notice_timeout: float | None = None) -> None:
        policy = policy or Policy()
        if idle_timeout is not None:
            policy = replace(policy, idle_timeout=idle_timeout)
        if notice_timeout is not None:
            policy = replace(policy, notice_timeout=notice_timeout)
        self.policy = policy
        self.new_id = new_id
        self.device_name = device_name
        self.state = State.IDLE
        self.now = 0.0
        self._last_activity = 0.0
        self._notice_until = 0.0
        self._notice: tuple[str, str, Tone] = ("", "", Tone.INFO)
        self._after_notice = State.IDLE
        # tag -> (request type or "confirm", the job it is about)
        self._pending: dict[str, tuple[str, str | None]] = {}
        self._subject: str | None = None
        self._seq = 0
        self._session: str | None = None
        self._user = ""
        self._card: str | None = None
        self._entry: _Entry | None = None
        self._jobs: tuple[m.JobSummary, ...] = ()
        self._total = 0
        self._more_pending = False
        self._selected: set[str] = set()
        self._options = OptionsView()
        self._release: _Release | None = None
        self._flash = ""
        self._engine = EngineState.READY
        self._link_up = True
        self.ignored = 0

    # ------------------------------------------------------------ driving

    def handle(self, event: Event) -> list[Effect]:
        if isinstance(event, Tick):
            self.now = event.now
        elif isinstance(event, LinkChanged):
            self._link_up = event.up
        elif isinstance(event, EngineChanged):
            self._engine = event.state
            return []
        elif isinstance(event, CardPresented | CodeEntered | KeyPressed | Tapped):
            self._last_activity = self.now
        if isinstance(event, Answered | Failed):
            pending = self._pending.pop(event.tag, None)
            if pending is None:
                return []  # late or duplicate answer: its session is gone
            kind, self._subject = pending
            if kind == m.Logout.TYPE:
                return []  # logging out is fire-and-forget: the panel is idle already
            handler_name = TRANSITIONS.get((self.state, type(event), kind))
        else:
            handler_name = TRANSITIONS.get((self.state, type(event), None))
        if handler_name is None:
            self.ignored += 1
            return []
        effects: list[Effect] = getattr(self, handler_name)(event)
        return effects

    @property
    def session_token(self) -> str | None:
        return self._session

    # ------------------------------------------------------------ helpers

    def _send(self, request: m.Request) -> Send:
        self._seq += 1
        tag = f"{request.TYPE}#{self._seq}"
        self._pending[tag] = (request.TYPE, None)
        return Send(tag, request)

    def _to_notice(self, title: str, message: str, tone: Tone, after: State) -> list[Effect]:
        self.state = State.NOTICE
        self._notice = (title, message, tone)
        self._notice_until = self.now + self.policy.notice_timeout
        self._after_notice = after
        return []

    def _notice_for(self, event: Failed, after: State) -> list[Effect]:
        title, message = NOTICES.get(event.code, ("Something went wrong", event.message))
        if event.code in ("locked_out", "throttled") and event.message:
            # The cloud's own words say until when ("... locked until 14:35").
            message = event.message[0].upper() + event.message[1:] + "."
        return self._to_notice(title, message, Tone.ERROR, after)

    def _forget_user(self) -> None:
        self._session = None
        self._user = ""
        self._card = None
        self._entry = None
        self._jobs = ()
        self._total = 0
        self._more_pending = False
        self._selected = set()
        self._options = OptionsView()
        self._release = None
        self._flash = ""
        # Answers still in flight belong to the old session; drop them when they come.
        self._pending.clear()

    def _identify(self, request: m.Identify | m.Associate, card: str | None) -> list[Effect]:
        self._forget_user()
        self._card = card
        self.state = State.IDENTIFYING
        return [self._send(request)]

    def _list(self, offset: int = 0) -> Send:
        assert self._session is not None
        return self._send(m.ListJobs(session=self._session, offset=offset,
                                     limit=self.policy.page_size))

    def _logout(self) -> list[Effect]:
        effects: list[Effect] = []
        if self._session is not None:
            token = self._session
            self._forget_user()
            effects.append(self._send(m.Logout(request_id=self.new_id(), session=token)))
        else:
            self._forget_user()
        return effects + self._idle()

    def _idle(self) -> list[Effect]:
        self._entry = None
        self.state = State.IDLE if self._link_up else State.OFFLINE
        return []

    def _open_entry(self, kind: str, card: str | None = None, error: str = "") -> list[Effect]:
        if card is not None:
            self._forget_user()
            self._card = card
        self._entry = _entry(kind, error)
        self.state = State.ENTRY
        return []

    # ------------------------------------------------------------ ways in

    def on_card_idle(self, event: CardPresented) -> list[Effect]:
        if self.policy.card_pin:
            return self._open_entry("pin", card=event.number)
        return self._identify(m.Identify(method="card", value=event.number), event.number)

    def on_code_idle(self, event: CodeEntered) -> list[Effect]:
        if not self.policy.allow_code:
            return []
        return self._identify(m.Identify(method="code", value=event.code), None)

    def on_tap_idle(self, event: Tapped) -> list[Effect]:
        if event.action is Action.ENTER_CODE and self.policy.allow_code:
            return self._open_entry("code")
        if event.action is Action.ENTER_PASSWORD and self.policy.allow_password:
            return self._open_entry("password")
        return []

    def on_key_entry(self, event: KeyPressed) -> list[Effect]:
        entry = self._entry
        assert entry is not None
        key = event.key
        value = entry.values[entry.focus]
        if key == "ENTER":
            return self._submit_entry()
        if key == "BACKSPACE":
            entry.values[entry.focus] = value[:-1]
        elif key == "CLEAR":
            entry.values[entry.focus] = ""
        elif key == "TAB":
            names = entry.names
            entry.focus = names[(names.index(entry.focus) + 1) % len(names)]
        elif len(key) == 1 and key.isprintable() and len(value) < _FIELD_LIMITS[entry.focus]:
            if entry.focus in ("code", "pin") and not key.isalnum():
                return []
            entry.values[entry.focus] = value + key
        entry.error = ""
        return []

    def on_tap_entry(self, event: Tapped) -> list[Effect]:
        entry = self._entry
        assert entry is not None
        if event.action is Action.KEY and event.job_id:
            return self.on_key_entry(KeyPressed(event.job_id))
        if event.action is Action.FOCUS and event.job_id in entry.values:
            entry.focus = event.job_id
        elif event.action is Action.SWITCH_ENTRY:
            switched = {"associate_code": "associate_password",
                        "associate_password": "associate_code",
                        "code": "password", "password": "code"}.get(entry.kind)
            if switched and (self.policy.allow_password or "code" in switched):
                self._entry = _entry(switched)
        elif event.action is Action.CANCEL:
            self._forget_user()
            return self._idle()
        return []

    def on_card_entry(self, event: CardPresented) -> list[Effect]:
        # A badge while typing: the badge wins, as it would at an idle panel.
        self._entry = None
        return self.on_card_idle(event)

    def on_tick_entry(self, event: Tick) -> list[Effect]:
        if self.now - self._last_activity >= self.policy.entry_timeout:
            self._forget_user()
            return self._idle()
        return []

    def _submit_entry(self) -> list[Effect]:
        entry = self._entry
        assert entry is not None
        v = entry.values
        if any(not v[n] for n in entry.names):
            missing = next(n for n in entry.names if not v[n])
            entry.error = f"Enter your {_LABELS[missing].lower()}"
            return []
        card = self._card
        request: m.Identify | m.Associate
        if entry.kind == "code":
            request = m.Identify(method="code", value=v["code"])
        elif entry.kind == "password":
            request = m.Identify(method="password", value=v["password"], username=v["username"])
        elif entry.kind == "pin":
            assert card is not None
            request = m.Identify(method="card", value=card, pin=v["pin"])
        elif entry.kind == "associate_code":
            assert card is not None
            request = m.Associate(request_id=self.new_id(), card=card, method="code",
                                  value=v["code"])
        else:
            assert card is not None
            request = m.Associate(request_id=self.new_id(), card=card, method="password",
                                  value=v["password"], username=v["username"])
        kind = entry.kind
        effects = self._identify(request, card)
        # Keep what the user was doing, so a wrong code can be typed again in place.
        self._entry = _entry(kind)
        return effects

    def on_identified(self, event: Answered) -> list[Effect]:
        assert isinstance(event.result, m.IdentifyResult)
        self._session = event.result.session
        self._user = event.result.display_name
        self._flash = event.result.note
        self._entry = None
        self.state = State.LOADING
        return [self._list()]

    def on_identify_failed(self, event: Failed) -> list[Effect]:
        entry = self._entry
        card = self._card
        if event.code == "unknown_card" and self.policy.self_association and card is not None \
                and (self.policy.allow_code or self.policy.allow_password):
            kind = "associate_code" if self.policy.allow_code else "associate_password"
            return self._open_entry(kind, card=card)
        if entry is not None and event.code in _RETRYABLE:
            title, _message = NOTICES[event.code]
            return self._open_entry(entry.kind, card=card, error=title)
        self._forget_user()
        if event.code == "unknown_outcome":
            # Only identify.associate can end so (a plain identify is a read): the badge may
            # be linked by now, and a tap tells.
            return self._to_notice("Not confirmed",
                                   "The connection was lost before the print service answered: "
                                   "your badge may be linked. Tap it again in a moment.",
                                   Tone.ERROR, State.IDLE)
        return self._notice_for(event, State.IDLE)

    # ------------------------------------------------------------ the job list

    def on_listed(self, event: Answered) -> list[Effect]:
        assert isinstance(event.result, m.JobList)
        self._jobs = event.result.jobs
        self._total = event.result.total
        self._more_pending = False
        self._selected &= {j.job_id for j in self._jobs}
        self.state = State.JOBS
        return []

    def on_more_listed(self, event: Answered) -> list[Effect]:
        assert isinstance(event.result, m.JobList)
        known = {j.job_id for j in self._jobs}
        self._jobs += tuple(j for j in event.result.jobs if j.job_id not in known)
        self._total = event.result.total
        self._more_pending = False
        return []

    def on_more_failed(self, event: Failed) -> list[Effect]:
        self._more_pending = False
        return self.on_list_failed(event)

    def on_list_failed(self, event: Failed) -> list[Effect]:
        if event.code in ("invalid_session", "wrong_device"):
            self._forget_user()
            return self._notice_for(event, State.IDLE)
        # Keep the session: the user can retry from the notice.
        return self._notice_for(event, State.JOBS if self._session else State.IDLE)

    def on_tap_jobs(self, event: Tapped) -> list[Effect]:
        action = event.action
        if action is Action.SELECT and event.job_id is not None:
            self._selected ^= {event.job_id}
        elif action is Action.SELECT_ALL:
            every = {j.job_id for j in self._jobs}
            self._selected = set() if self._selected >= every else every
        elif action in (Action.RELEASE, Action.RELEASE_ALL):
            return self._release_jobs(everything=action is Action.RELEASE_ALL)
        elif action is Action.OPTIONS and self.policy.release_changes and self._selected:
            self.state = State.OPTIONS
        elif action is Action.DELETE and self._selected:
            self.state = State.CONFIRM_DELETE
        elif action is Action.LOAD_MORE and len(self._jobs) < self._total \
                and not self._more_pending:
            self._more_pending = True
            send = self._list(offset=len(self._jobs))
            self._pending[send.tag] = ("more", None)
            return [send]
        elif action is Action.LOGOUT:
            return self._logout()
        elif action is Action.RETRY:
            self.state = State.LOADING
            return [self._list()]
        return []

    def _release_jobs(self, *, everything: bool) -> list[Effect]:
        ids = [j.job_id for j in self._jobs if everything or j.job_id in self._selected]
        if not ids and not (everything and self._total):
            return []
        if not self._engine.can_print:
            # Refused before anything leaves HELD: the user sees why, the jobs stay waiting.
            return self._to_notice("The printer can't print now",
                                   ENGINE_REASONS.get(self._engine, self._engine.value),
                                   Tone.ERROR, State.JOBS)
        assert self._session is not None
        names = {j.job_id: j.name for j in self._jobs}
        opts = self._options
        self.state = State.RELEASING
        self._release = _Release("", {i: JobProgress(i, names[i], "waiting") for i in ids},
                                 set(), everything)
        # "Release all" asks the cloud for every held job, including those not loaded yet.
        request = m.Release(request_id=self.new_id(), session=self._session,
                            job_ids=() if everything else tuple(ids), all_held=everything,
                            grayscale=opts.grayscale, duplex=opts.duplex, copies=opts.copies)
        return [self._send(request)]

    def on_tap_options(self, event: Tapped) -> list[Effect]:
        o = self._options
        match event.action:
            case Action.TOGGLE_GRAYSCALE:
                self._options = replace(o, grayscale=not o.grayscale)
            case Action.TOGGLE_DUPLEX:
                self._options = replace(o, duplex=not o.duplex)
            case Action.COPIES_UP:
                self._options = replace(o, copies=min(99, (o.copies or 1) + 1))
            case Action.COPIES_DOWN:
                down = (o.copies or 1) - 1
                self._options = replace(o, copies=down if down >= 1 else None)
            case Action.RELEASE:
                return self._release_jobs(everything=False)
            case Action.CANCEL:
                self._options = OptionsView()
                self.state = State.JOBS
        return []

    def on_tap_confirm_delete(self, event: Tapped) -> list[Effect]:
        if event.action is Action.CONFIRM and self._selected:
            assert self._session is not None
            ids = tuple(j.job_id for j in self._jobs if j.job_id in self._selected)
            self.state = State.DELETING
            return [self._send(m.DeleteJobs(request_id=self.new_id(), session=self._session,
                                            job_ids=ids))]
        if event.action is Action.CANCEL:
            self.state = State.JOBS
        return []

    def on_deleted(self, event: Answered) -> list[Effect]:
        count = len(self._selected)
        self._selected = set()
        self._flash = f"{count} deleted"
        self.state = State.LOADING
        return [self._list()]

    def on_delete_failed(self, event: Failed) -> list[Effect]:
        self._selected = set()
        if event.code == "unknown_outcome":
            # It may have been done: say so, and let the refreshed list show what is left.
            return self._to_notice("Not confirmed",
                                   "The connection was lost before the print service answered: "
                                   "the jobs may have been deleted. Your list shows what is "
                                   "left.", Tone.ERROR, State.LOADING)
        return self.on_release_failed(event)

    def on_card_jobs(self, event: CardPresented) -> list[Effect]:
        if event.number == self._card:
            return []  # the same badge again: stay logged in
        effects = self._logout()
        if self.policy.new_badge_logs_in:
            effects += self.on_card_idle(event)
        return effects

    def on_tick_jobs(self, event: Tick) -> list[Effect]:
        if self.now - self._last_activity >= self.policy.idle_timeout:
            return self._logout()
        return []

    # ------------------------------------------------------------ releasing

    def on_released(self, event: Answered) -> list[Effect]:
        assert isinstance(event.result, m.ReleaseResult) and self._release is not None
        rel = self._release
        rel.release_id = event.result.release_id
        effects: list[Effect] = []
        for job in event.result.jobs:
            rel.progress[job.job_id] = JobProgress(job.job_id, job.name, "printing")
            rel.unconfirmed.add(job.job_id)
            effects.append(PrintJob(event.result.release_id, job))
        return effects

    def on_release_failed(self, event: Failed) -> list[Effect]:
        self._release = None
        self._selected = set()
        if event.code in ("invalid_session", "wrong_device"):
            self._forget_user()
            return self._notice_for(event, State.IDLE)
        return self._notice_for(event, State.LOADING)

    def on_job_done(self, event: JobDone) -> list[Effect]:
        rel = self._release
        if rel is None or event.release_id != rel.release_id or event.job_id not in rel.progress:
            return []
        old = rel.progress[event.job_id]
        rel.progress[event.job_id] = replace(old, state="printed" if event.ok else "failed",
                                             detail=event.detail)
        if event.ok:
            req: m.Request = m.JobPrinted(request_id=self.new_id(), release_id=rel.release_id,
                                          job_id=event.job_id)
        else:
            req = m.JobFailed(request_id=self.new_id(), release_id=rel.release_id,
                              job_id=event.job_id, reason=event.detail[:200])
        send = self._send(req)
        self._pending[send.tag] = ("confirm", event.job_id)
        return [send]

    def on_confirmed(self, event: Answered | Failed) -> list[Effect]:
        # The cloud acknowledged a job's outcome (or refused: then the job is back in the list).
        rel = self._release
        if rel is None:
            return []
        if isinstance(event, Failed) and self._subject in rel.progress:
            old = rel.progress[self._subject]
            rel.progress[self._subject] = replace(old, detail=f"not confirmed: {event.message}")
        rel.unconfirmed.discard(self._subject or "")
        if rel.unconfirmed:
            return []
        printed = sum(1 for p in rel.progress.values() if p.state == "printed")
        failed = [p for p in rel.progress.values() if p.state == "failed"]
        self._flash = f"{printed} printed" + (
            f", {len(failed)} failed: {failed[0].detail}" if failed else "")
        self._release = None
        self._selected = set()
        self._options = OptionsView()
        if self._session is None:
            return self._idle()
        if rel.everything and self.policy.logout_after_release_all and not failed:
            return self._logout()
        self.state = State.LOADING
        return [self._list()]

    # ------------------------------------------------------------ notices and the link

    def on_dismiss(self, event: Tapped) -> list[Effect]:
        if event.action is not Action.DISMISS:
            return []
        return self._leave_notice()

    def on_tick_notice(self, event: Tick) -> list[Effect]:
        if self.now >= self._notice_until:
            return self._leave_notice()
        return []

    def on_card_notice(self, event: CardPresented) -> list[Effect]:
        if self._after_notice is State.IDLE:
            return self.on_card_idle(event)
        return []

    def on_code_notice(self, event: CodeEntered) -> list[Effect]:
        if self._after_notice is State.IDLE:
            return self.on_code_idle(event)
        return []

    def _leave_notice(self) -> list[Effect]:
        after = self._after_notice
        if after is State.LOADING and self._session is not None:
            self.state = State.LOADING
            return [self._list()]
        if after is State.JOBS and self._session is not None:
            self.state = State.JOBS
            return []
        return self._logout() if self._session else self._idle()

    def on_link_idle(self, event: LinkChanged) -> list[Effect]:
        if event.up and self._session is not None:
            # Back after an outage with someone logged in: show their jobs again, fresh.
            self.state = State.LOADING
            return [self._list()]
        return self._idle()

    def on_link_jobs(self, event: LinkChanged) -> list[Effect]:
        if not event.up:
            # The user keeps their session; the panel says why nothing works until it is back.
            self.state = State.OFFLINE
        return []

    def on_tap_offline(self, event: Tapped) -> list[Effect]:
        if event.action is Action.LOGOUT or (event.action is Action.DISMISS
                                              and self._session is not None):
            return self._logout()
        return []

    def on_tick_offline(self, event: Tick) -> list[Effect]:
        # Offline counts as idle time: a user who walked away is logged out all the same.
        if self._session is not None and \
                self.now - self._last_activity >= self.policy.idle_timeout:
            return self._logout()
        return []

    # ------------------------------------------------------------ view

    def view(self) -> PanelView:
        p = self.policy
        base = PanelView(screen=Screen.IDLE, device_name=self.device_name, user_name=self._user,
                         can_change=p.release_changes, can_type_code=p.allow_code,
                         can_type_password=p.allow_password,
                         engine_problem="" if self._engine.can_print else
                         ENGINE_REASONS.get(self._engine, self._engine.value))
        match self.state:
            case State.IDLE:
                return replace(base, title="Tap your badge")
            case State.ENTRY:
                return replace(base, screen=Screen.ENTRY, title=self._entry_title(),
                               entry=self._entry_view())
            case State.IDENTIFYING:
                return replace(base, screen=Screen.BUSY, title="One moment",
                               message="Checking…" if self._link_up else _RECONNECTING)
            case State.LOADING:
                return replace(base, screen=Screen.BUSY, title=f"Hello, {self._user}",
                               message="Loading your jobs…")
            case State.DELETING:
                return replace(base, screen=Screen.BUSY, title="Deleting",
                               message="One moment…" if self._link_up else _RECONNECTING)
            case State.JOBS:
                return replace(base, screen=Screen.JOBS, jobs=self._jobs,
                               total_jobs=self._total, selected=frozenset(self._selected),
                               message=self._flash,
                               can_load_more=len(self._jobs) < self._total)
            case State.OPTIONS:
                n = len(self._selected)
                return replace(base, screen=Screen.OPTIONS, title=f"Release {n} job"
                               + ("s" if n != 1 else "") + " with changes",
                               options=self._options, selected=frozenset(self._selected))
            case State.CONFIRM_DELETE:
                n = len(self._selected)
                return replace(base, screen=Screen.CONFIRM,
                               title=f"Delete {n} job{'s' if n != 1 else ''}?",
                               message="Deleted jobs cannot be printed.",
                               selected=frozenset(self._selected))
            case State.RELEASING:
                rel = self._release
                return replace(base, screen=Screen.RELEASING, title="Releasing",
                               progress=tuple(rel.progress.values()) if rel else (),
                               message="" if self._link_up else _RECONNECTING)
            case State.NOTICE:
                title, message, tone = self._notice
                return replace(base, screen=Screen.NOTICE, title=title, message=message,
                               tone=tone)
            case State.OFFLINE:
                return replace(base, screen=Screen.OFFLINE, title="Can't reach the print service",
                               message="Your jobs are safe. Reconnecting by itself…"
                               + (" Your jobs will show again." if self._session else ""))
        raise AssertionError(self.state)  # pragma: no cover

    def _entry_title(self) -> str:
        kind = self._entry.kind if self._entry else ""
        return {"code": "Enter your access code", "pin": "Enter your PIN",
                "password": "Log in with your email and password",
                "associate_code": "Badge not recognised: link it with your access code",
                "associate_password": "Badge not recognised: link it with your email and "
                                      "password"}.get(kind, "")

    def _entry_view(self) -> EntryView | None:
        e = self._entry
        if e is None:
            return None
        fields = tuple(
            FieldView(name, _LABELS[name],
                      "•" * len(value) if name in _SECRET_FIELDS else value,
                      focused=name == e.focus)
            for name, value in e.values.items())
        text = "username" in e.values
        switchable = e.kind in ("code", "password", "associate_code", "associate_password") \
            and self.policy.allow_code and self.policy.allow_password
        return EntryView(kind=e.kind, fields=fields, keyboard="text" if text else "digits",
                         error=e.error, can_switch=switchable)


# (state, event type, request type or None) -> handler. The whole machine, as data.
TRANSITIONS: dict[tuple[State, type, str | None], str] = {
    (State.IDLE, CardPresented, None): "on_card_idle",
    (State.IDLE, CodeEntered, None): "on_code_idle",
    (State.IDLE, Tapped, None): "on_tap_idle",
    (State.IDLE, LinkChanged, None): "on_link_idle",
    (State.ENTRY, KeyPressed, None): "on_key_entry",
    (State.ENTRY, Tapped, None): "on_tap_entry",
    (State.ENTRY, CardPresented, None): "on_card_entry",
    (State.ENTRY, Tick, None): "on_tick_entry",
    (State.IDENTIFYING, Answered, m.Identify.TYPE): "on_identified",
    (State.IDENTIFYING, Failed, m.Identify.TYPE): "on_identify_failed",
    (State.IDENTIFYING, Answered, m.Associate.TYPE): "on_identified",
    (State.IDENTIFYING, Failed, m.Associate.TYPE): "on_identify_failed",
    (State.LOADING, Answered, m.ListJobs.TYPE): "on_listed",
    (State.LOADING, Failed, m.ListJobs.TYPE): "on_list_failed",
    (State.JOBS, Tapped, None): "on_tap_jobs",
    (State.JOBS, CardPresented, None): "on_card_jobs",
    (State.JOBS, Tick, None): "on_tick_jobs",
    (State.JOBS, Answered, "more"): "on_more_listed",
    (State.JOBS, Failed, "more"): "on_more_failed",
    (State.OPTIONS, Tapped, None): "on_tap_options",
    (State.OPTIONS, CardPresented, None): "on_card_jobs",
    (State.OPTIONS, Tick, None): "on_tick_jobs",
    (State.CONFIRM_DELETE, Tapped, None): "on_tap_confirm_delete",
    (State.CONFIRM_DELETE, CardPresented, None): "on_card_jobs",
    (State.CONFIRM_DELETE, Tick, None): "on_tick_jobs",
    (State.DELETING, Answered, m.DeleteJobs.TYPE): "on_deleted",
    (State.DELETING, Failed, m.DeleteJobs.TYPE): "on_delete_failed",
    (State.RELEASING, Answered, m.Release.TYPE): "on_released",
    (State.RELEASING, Failed, m.Release.TYPE): "on_release_failed",
    (State.RELEASING, JobDone, None): "on_job_done",
    (State.RELEASING, Answered, "confirm"): "on_confirmed",
    (State.RELEASING, Failed, "confirm"): "on_confirmed",
    (State.NOTICE, Tapped, None): "on_dismiss",
    (State.NOTICE, Tick, None): "on_tick_notice",
    (State.NOTICE, CardPresented, None): "on_card_notice",
    (State.NOTICE, CodeEntered, None): "on_code_notice",
    (State.OFFLINE, LinkChanged, None): "on_link_idle",
    (State.OFFLINE, Tapped, None): "on_tap_offline",
    (State.OFFLINE, Tick, None): "on_tick_offline",
    (State.JOBS, LinkChanged, None): "on_link_jobs",
    (State.OPTIONS, LinkChanged, None): "on_link_jobs",
    (State.CONFIRM_DELETE, LinkChanged, None): "on_link_jobs",
    # Offline, a badge is still tried: the link fails it at once and the panel says why.
    (State.OFFLINE, CardPresented, None): "on_card_idle",
    (State.OFFLINE, CodeEntered, None): "on_code_idle",
}

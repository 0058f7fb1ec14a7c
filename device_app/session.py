"""The session at the copier: a pure, table-driven state machine.

Theory of operation
-------------------
Inputs are events (a card, a tap, a cloud answer, an engine outcome, a clock tick); outputs are
effects (send this request, print this job) and a :class:`PanelView` to draw. The machine does no
I/O and reads no clock: time arrives as ``Tick``. The app (device_app/app.py) runs the effects
and feeds their outcomes back as events, so every path here is testable without a broker,
reader, engine or screen.

``TRANSITIONS`` below is the whole machine: which event is handled in which state, by which
handler. An event with no entry for the current state is ignored on purpose (a badge tapped while
jobs are printing must not log anyone out); :meth:`SessionMachine.handle` reports it.

Each request the machine sends gets a tag; an answer whose tag is not pending (it arrived after
the user logged out, or after a timeout was already reported) is dropped, so a late answer can
never act on the wrong session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from device_app.view import Action, JobProgress, PanelView, Screen, Tone
from protocol import messages as m


class State(StrEnum):
    IDLE = "idle"
    IDENTIFYING = "identifying"
    LOADING = "loading"
    JOBS = "jobs"
    RELEASING = "releasing"
    NOTICE = "notice"
    OFFLINE = "offline"


# ---------------------------------------------------------------- events (in)


@dataclass(frozen=True, slots=True)
class CardPresented:
    number: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class CodeEntered:
    """An access code typed on the panel's keypad (or a PIN keypad reader)."""

    code: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Tapped:
    action: Action
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


Event = CardPresented | CodeEntered | Tapped | Answered | Failed | JobDone | Tick | LinkChanged

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
    "unknown_device": ("This copier is not registered",
                       "Ask your administrator to register it with the print service."),
    "unreachable": ("Can't reach the print service",
                    "Your jobs are safe. Try again in a moment."),
    "timeout": ("Can't reach the print service", "Your jobs are safe. Try again in a moment."),
    "busy": ("The print service is busy", "Please try again in a moment."),
    "locked_out": ("Too many wrong attempts", "Try again later, or tap your badge."),
    "job_not_held": ("A job is no longer waiting",
                     "It was printed or removed meanwhile. Your list has been refreshed."),
    "job_not_found": ("A job is no longer waiting",
                      "It was printed or removed meanwhile. Your list has been refreshed."),
}


@dataclass(slots=True)
class _Release:
    release_id: str
    progress: dict[str, JobProgress]
    unconfirmed: set[str]  # jobs whose outcome the cloud has not acknowledged yet


class SessionMachine:
    def __init__(self, *, new_id: Callable[[], str], device_name: str = "",
                 idle_timeout: float = 60.0, notice_timeout: float = 6.0,
                 page_size: int = 50) -> None:
        self.new_id = new_id
        self.device_name = device_name
        self.idle_timeout = idle_timeout
        self.notice_timeout = notice_timeout
        self.page_size = page_size
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
        self._jobs: tuple[m.JobSummary, ...] = ()
        self._total = 0
        self._selected: set[str] = set()
        self._release: _Release | None = None
        self._flash = ""
        self.ignored = 0
        self._link_up = True

    # ------------------------------------------------------------ driving

    def handle(self, event: Event) -> list[Effect]:
        if isinstance(event, Tick):
            self.now = event.now
        elif isinstance(event, LinkChanged):
            self._link_up = event.up
        elif isinstance(event, CardPresented | CodeEntered | Tapped):
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
        self._notice_until = self.now + self.notice_timeout
        self._after_notice = after
        return []

    def _notice_for(self, event: Failed, after: State) -> list[Effect]:
        title, message = NOTICES.get(event.code, ("Something went wrong", event.message))
        if event.code == "locked_out" and event.message:
            # The cloud's own words say until when ("... locked until 14:35").
            message = event.message[0].upper() + event.message[1:] + "."
        return self._to_notice(title, message, Tone.ERROR, after)

    def _forget_user(self) -> None:
        self._session = None
        self._user = ""
        self._card = None
        self._jobs = ()
        self._total = 0
        self._selected = set()
        self._release = None
        self._flash = ""
        # Answers still in flight belong to the old session; drop them when they come.
        self._pending.clear()

    def _identify(self, number: str, method: str = "card") -> list[Effect]:
        self._forget_user()
        self._card = number if method == "card" else None
        self.state = State.IDENTIFYING
        return [self._send(m.Identify(method=method, value=number))]

    def _list(self) -> Send:
        assert self._session is not None
        return self._send(m.ListJobs(session=self._session, limit=self.page_size))

    def _logout(self) -> list[Effect]:
        effects: list[Effect] = []
        if self._session is not None:
            token = self._session
            self._forget_user()
            effects.append(self._send(m.Logout(request_id=self.new_id(), session=token)))
        else:
            self._forget_user()
        return effects + self._idle()

    # ------------------------------------------------------------ handlers

    def on_card_idle(self, event: CardPresented) -> list[Effect]:
        return self._identify(event.number)

    def on_code_idle(self, event: CodeEntered) -> list[Effect]:
        return self._identify(event.code, "code")

    def on_identified(self, event: Answered) -> list[Effect]:
        assert isinstance(event.result, m.IdentifyResult)
        self._session = event.result.session
        self._user = event.result.display_name
        self.state = State.LOADING
        return [self._list()]

    def on_identify_failed(self, event: Failed) -> list[Effect]:
        self._forget_user()
        return self._notice_for(event, State.IDLE)

    def on_listed(self, event: Answered) -> list[Effect]:
        assert isinstance(event.result, m.JobList)
        self._jobs = event.result.jobs
        self._total = event.result.total
        present = {j.job_id for j in self._jobs}
        self._selected &= present
        self.state = State.JOBS
        return []

    def on_list_failed(self, event: Failed) -> list[Effect]:
        if event.code in ("invalid_session", "wrong_device"):
            self._forget_user()
            return self._notice_for(event, State.IDLE)
        # Keep the session: the user can retry from the notice.
        return self._notice_for(event, State.JOBS if self._session else State.IDLE)

    def on_tap_jobs(self, event: Tapped) -> list[Effect]:
        if event.action is Action.SELECT and event.job_id is not None:
            self._selected ^= {event.job_id}
        elif event.action is Action.SELECT_ALL:
            every = {j.job_id for j in self._jobs}
            self._selected = set() if self._selected >= every else every
        elif event.action in (Action.RELEASE, Action.RELEASE_ALL):
            ids = [j.job_id for j in self._jobs if event.action is Action.RELEASE_ALL
                   or j.job_id in self._selected]
            if not ids:
                return []
            assert self._session is not None
            self.state = State.RELEASING
            names = {j.job_id: j.name for j in self._jobs}
            self._release = _Release("", {i: JobProgress(i, names[i], "waiting") for i in ids},
                                     set())
            return [self._send(m.Release(request_id=self.new_id(), session=self._session,
                                         job_ids=tuple(ids)))]
        elif event.action is Action.LOGOUT:
            return self._logout()
        elif event.action is Action.RETRY:
            self.state = State.LOADING
            return [self._list()]
        return []

    def on_card_jobs(self, event: CardPresented) -> list[Effect]:
        if event.number == self._card:
            return []  # the same badge again: stay logged in
        # Another badge: the current user is logged out, the new one in.
        effects = self._logout()
        return effects + self._identify(event.number)

    def on_tick_jobs(self, event: Tick) -> list[Effect]:
        if self.now - self._last_activity >= self.idle_timeout:
            return self._logout()
        return []

    def on_released(self, event: Answered) -> list[Effect]:
        assert isinstance(event.result, m.ReleaseResult) and self._release is not None
        self._release.release_id = event.result.release_id
        effects: list[Effect] = []
        for job in event.result.jobs:
            self._release.progress[job.job_id] = replace(
                self._release.progress.get(job.job_id, JobProgress(job.job_id, job.name, "")),
                state="printing")
            self._release.unconfirmed.add(job.job_id)
            effects.append(PrintJob(event.result.release_id, job))
        return effects

    def on_release_failed(self, event: Failed) -> list[Effect]:
        self._release = None
        self._selected = set()
        if event.code in ("invalid_session", "wrong_device"):
            self._forget_user()
            return self._notice_for(event, State.IDLE)
        effects = self._notice_for(event, State.LOADING)
        return effects

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
        failed = sum(1 for p in rel.progress.values() if p.state == "failed")
        self._flash = f"{printed} printed" + (f", {failed} failed" if failed else "")
        self._release = None
        self._selected = set()
        if self._session is None:
            self.state = State.IDLE
            return []
        self.state = State.LOADING
        return [self._list()]

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
            return self._identify(event.number)
        return []

    def on_code_notice(self, event: CodeEntered) -> list[Effect]:
        if self._after_notice is State.IDLE:
            return self._identify(event.code, "code")
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

    def _idle(self) -> list[Effect]:
        self.state = State.IDLE if self._link_up else State.OFFLINE
        return []

    def on_link_idle(self, event: LinkChanged) -> list[Effect]:
        return self._idle()

    # ------------------------------------------------------------ view

    def view(self) -> PanelView:
        base = PanelView(screen=Screen.IDLE, device_name=self.device_name,
                         user_name=self._user)
        match self.state:
            case State.IDLE:
                return replace(base, title="Tap your badge")
            case State.IDENTIFYING:
                return replace(base, screen=Screen.BUSY, title="One moment",
                               message="Checking your badge…")
            case State.LOADING:
                return replace(base, screen=Screen.BUSY, title=f"Hello, {self._user}",
                               message="Loading your jobs…")
            case State.JOBS:
                return replace(base, screen=Screen.JOBS, jobs=self._jobs,
                               total_jobs=self._total, selected=frozenset(self._selected),
                               message=self._flash)
            case State.RELEASING:
                rel = self._release
                return replace(base, screen=Screen.RELEASING, title="Releasing",
                               progress=tuple(rel.progress.values()) if rel else ())
            case State.NOTICE:
                title, message, tone = self._notice
                return replace(base, screen=Screen.NOTICE, title=title, message=message,
                               tone=tone)
            case State.OFFLINE:
                return replace(base, screen=Screen.OFFLINE, title="Can't reach the print service",
                               message="Your jobs are safe. Reconnecting by itself…")
        raise AssertionError(self.state)  # pragma: no cover


# (state, event type, request type or None) -> handler. The whole machine, as data.
TRANSITIONS: dict[tuple[State, type, str | None], str] = {
    (State.IDLE, CardPresented, None): "on_card_idle",
    (State.IDLE, CodeEntered, None): "on_code_idle",
    (State.IDENTIFYING, Answered, m.Identify.TYPE): "on_identified",
    (State.IDENTIFYING, Failed, m.Identify.TYPE): "on_identify_failed",
    (State.LOADING, Answered, m.ListJobs.TYPE): "on_listed",
    (State.LOADING, Failed, m.ListJobs.TYPE): "on_list_failed",
    (State.JOBS, Tapped, None): "on_tap_jobs",
    (State.JOBS, CardPresented, None): "on_card_jobs",
    (State.JOBS, Tick, None): "on_tick_jobs",
    (State.RELEASING, Answered, m.Release.TYPE): "on_released",
    (State.RELEASING, Failed, m.Release.TYPE): "on_release_failed",
    (State.RELEASING, JobDone, None): "on_job_done",
    (State.RELEASING, Answered, "confirm"): "on_confirmed",
    (State.RELEASING, Failed, "confirm"): "on_confirmed",
    (State.NOTICE, Tapped, None): "on_dismiss",
    (State.NOTICE, Tick, None): "on_tick_notice",
    (State.NOTICE, CardPresented, None): "on_card_notice",
    (State.NOTICE, CodeEntered, None): "on_code_notice",
    (State.IDLE, LinkChanged, None): "on_link_idle",
    (State.OFFLINE, LinkChanged, None): "on_link_idle",
    # Offline, a badge is still tried: the link fails it at once and the panel says why.
    (State.OFFLINE, CardPresented, None): "on_card_idle",
    (State.OFFLINE, CodeEntered, None): "on_code_idle",
}

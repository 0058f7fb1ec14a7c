"""The session at the copier: a pure, table-driven state machine.

Theory of operation
-------------------
Inputs are events (a card, a tap, a key, a cloud answer, an engine outcome or state, a clock
tick, the link going up or down); outputs are effects (send this request, print this job) and a
:class:`PanelView` to draw (device_app/session/presenter.py). The machine does no I/O and reads no
clock: time arrives as ``Tick``. The app (device_app/app.py) runs the effects and feeds their
outcomes back as events, so every path here is testable without a broker, reader, engine or
screen.

``TRANSITIONS`` at the bottom is the whole machine: for each node (``Node``: the state, with a
notice split by where it leads), each event type and, for an answer, the kind of request it
answers, the handler and the nodes it may lead to. A handler returns the next node with its
effects (``Next``); ``handle`` sets it, after checking the table allows it. An event with no
entry for the current node is ignored on purpose (a badge tapped while jobs are printing must not
log anyone out). docs/session-states.md is drawn from the table (device_app/session/diagram.py).

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

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from device_app.session.effects import Effect, PrintJob, Send
from device_app.session.entry import EMPTY, Entry, new_entry
from device_app.session.events import (
    Answered,
    CardPresented,
    CodeEntered,
    EngineChanged,
    Event,
    Failed,
    JobDone,
    KeyPressed,
    LinkChanged,
    Tapped,
    Tick,
)
from device_app.session.presenter import present
from device_app.session.state import (
    ASSOCIATE_UNCONFIRMED,
    DELETE_UNCONFIRMED,
    ENGINE_REFUSED,
    Deleted,
    Flash,
    Kind,
    Node,
    Note,
    Notice,
    Policy,
    Printed,
    Release,
    State,
)
from device_app.view import Action, JobProgress, OptionsView, PanelView
from protocol import messages as m
from protocol.engine import EngineState

log = logging.getLogger(__name__)

# Entry failures that leave the user on the entry screen to try again (with the reason shown).
_RETRYABLE = {"unknown_code", "invalid_password", "wrong_pin"}


@dataclass(frozen=True, slots=True)
class Next:
    """What a handler decided: the node to go to, and the effects to run."""

    node: Node
    effects: tuple[Effect, ...] = ()

    def then(self, later: Next) -> Next:
        """This step's effects, then ``later``'s, ending where ``later`` ends."""
        return Next(later.node, self.effects + later.effects)


class TransitionError(AssertionError):
    """A handler led to a node its table entry does not allow: a bug in the machine."""


class SessionMachine:
    def __init__(self, *, new_id: Callable[[], str], device_name: str = "",
                 policy: Policy | None = None, idle_timeout: float | None = None,
                 notice_timeout: float | None = None, strict: bool = False) -> None:
        policy = policy or Policy()
        if idle_timeout is not None:
            policy = replace(policy, idle_timeout=idle_timeout)
        if notice_timeout is not None:
            policy = replace(policy, notice_timeout=notice_timeout)
        self.policy = policy
        self.new_id = new_id
        self.device_name = device_name
        #: Raise TransitionError on a move the table does not allow (tests); else log it and
        #: end the session (a copier in service).
        self.strict = strict
        self.node = Node.IDLE
        self.now = 0.0
        self._last_activity = 0.0
        self._notice_until = 0.0
        # tag -> (what the request is for, the job it is about)
        self._pending: dict[str, tuple[Kind, str | None]] = {}
        # The job the answer being handled is about: set by handle() for its one dispatch.
        self._subject: str | None = None
        self._seq = 0
        self._session: str | None = None
        self._card: str | None = None
        self._more_pending = False
        # What the presenter reads (device_app/session/presenter.py); only handlers write it.
        self.notice = Notice("")
        self.user = ""
        self.entry: Entry | None = None
        self.jobs: tuple[m.JobSummary, ...] = ()
        self.total = 0
        self.selected: set[str] = set()
        self.options = OptionsView()
        self.release: Release | None = None
        self.flash: Flash = None
        self.engine = EngineState.READY
        self.link_up = True
        self.ignored = 0

    # ------------------------------------------------------------ driving

    @property
    def state(self) -> State:
        """What the panel is doing (the node, with a notice's way back left out)."""
        return self.node.state

    @property
    def session_token(self) -> str | None:
        return self._session

    def handle(self, event: Event) -> list[Effect]:
        if isinstance(event, Tick):
            self.now = event.now
        elif isinstance(event, LinkChanged):
            self.link_up = event.up
        elif isinstance(event, EngineChanged):
            self.engine = event.state
            return []
        elif isinstance(event, CardPresented | CodeEntered | KeyPressed | Tapped):
            self._last_activity = self.now
        kind: Kind | None = None
        if isinstance(event, Answered | Failed):
            pending = self._pending.pop(event.tag, None)
            if pending is None:
                return []  # late or duplicate answer: its session is gone
            kind, self._subject = pending
            if kind is Kind.LOGOUT:
                return []  # logging out is fire-and-forget: the panel is idle already
        rule = TRANSITIONS.get((self.node, type(event), kind))
        if rule is None:
            self.ignored += 1
            return []
        before = self.node
        out = rule.handler(self, event)
        if out.node not in rule.to:
            return self._not_allowed(before, event, kind, out)
        self.node = out.node
        return list(out.effects)

    def _not_allowed(self, before: Node, event: Event, kind: Kind | None, out: Next
                     ) -> list[Effect]:
        what = f"{type(event).__name__}" + (f" ({kind.value})" if kind else "")
        if self.strict:
            raise TransitionError(f"{what} in {before.value} led to {out.node.value}, "
                                  "which the table does not allow")
        # In service, a copier stuck in a state nobody drew is worse than a lost session: log
        # the bug, keep what was already asked for (a request counted pending is answered and
        # dropped), and end the session, as a logout would, so the next user starts clean.
        log.error("session: %s in %s led to %s, which the table does not allow; ending the "
                  "session", what, before.value, out.node.value)
        safe = self._logout()
        self.node = safe.node
        return list(out.effects + safe.effects)

    # ------------------------------------------------------------ helpers

    def _stay(self, *effects: Effect) -> Next:
        return Next(self.node, effects)

    def _send(self, request: m.Request, kind: Kind, about: str | None = None) -> Send:
        self._seq += 1
        tag = f"{request.TYPE}#{self._seq}"
        self._pending[tag] = (kind, about)
        return Send(tag, request)

    def _to_notice(self, notice: Notice, then: Node) -> Next:
        self.notice = notice
        self._notice_until = self.now + self.policy.notice_timeout
        return Next(then)

    def _notice_for(self, event: Failed, then: Node) -> Next:
        return self._to_notice(Notice(event.code, event.message), then)

    def _forget_user(self) -> None:
        self._session = None
        self.user = ""
        self._card = None
        self.entry = None
        self.jobs = ()
        self.total = 0
        self._more_pending = False
        self.selected = set()
        self.options = OptionsView()
        self.release = None
        self.flash = None
        # Answers still in flight belong to the old session; drop them when they come.
        self._pending.clear()

    def _identify(self, request: m.Identify | m.Associate, card: str | None) -> Next:
        self._forget_user()
        self._card = card
        kind = Kind.ASSOCIATE if isinstance(request, m.Associate) else Kind.IDENTIFY
        return Next(Node.IDENTIFYING, (self._send(request, kind),))

    def _list(self, offset: int = 0, kind: Kind = Kind.LIST) -> Send:
        assert self._session is not None
        return self._send(m.ListJobs(session=self._session, offset=offset,
                                     limit=self.policy.page_size), kind)

    def _load(self) -> Next:
        return Next(Node.LOADING, (self._list(),))

    def _logout(self) -> Next:
        if self._session is not None:
            token = self._session
            self._forget_user()
            bye = self._send(m.Logout(request_id=self.new_id(), session=token), Kind.LOGOUT)
            return Next(self._idle().node, (bye,))
        self._forget_user()
        return self._idle()

    def _idle(self) -> Next:
        self.entry = None
        return Next(Node.IDLE if self.link_up else Node.OFFLINE)

    def _open_entry(self, kind: str, card: str | None = None, error: str = "") -> Next:
        if card is not None:
            self._forget_user()
            self._card = card
        self.entry = new_entry(kind, error)
        return Next(Node.ENTRY)

    # ------------------------------------------------------------ ways in

    def on_card_idle(self, event: CardPresented) -> Next:
        if self.policy.card_pin:
            return self._open_entry("pin", card=event.number)
        return self._identify(m.Identify(method="card", value=event.number), event.number)

    def on_code_idle(self, event: CodeEntered) -> Next:
        if not self.policy.allow_code:
            return self._stay()
        return self._identify(m.Identify(method="code", value=event.code), None)

    def on_tap_idle(self, event: Tapped) -> Next:
        if event.action is Action.ENTER_CODE and self.policy.allow_code:
            return self._open_entry("code")
        if event.action is Action.ENTER_PASSWORD and self.policy.allow_password:
            return self._open_entry("password")
        return self._stay()

    def on_key_entry(self, event: KeyPressed) -> Next:
        assert self.entry is not None
        if event.key == "ENTER":
            return self._submit_entry()
        self.entry.type_key(event.key)
        return self._stay()

    def on_tap_entry(self, event: Tapped) -> Next:
        entry = self.entry
        assert entry is not None
        if event.action is Action.KEY and event.job_id:
            return self.on_key_entry(KeyPressed(event.job_id))
        if event.action is Action.FOCUS and event.job_id in entry.values:
            entry.focus = event.job_id
        elif event.action is Action.SWITCH_ENTRY:
            self.entry = entry.switched(self.policy.allow_password) or entry
        elif event.action is Action.CANCEL:
            self._forget_user()
            return self._idle()
        return self._stay()

    def on_card_entry(self, event: CardPresented) -> Next:
        # A badge while typing: the badge wins, as it would at an idle panel.
        self.entry = None
        return self.on_card_idle(event)

    def on_tick_entry(self, event: Tick) -> Next:
        if self.now - self._last_activity >= self.policy.entry_timeout:
            self._forget_user()
            return self._idle()
        return self._stay()

    def _submit_entry(self) -> Next:
        entry = self.entry
        assert entry is not None
        missing = entry.missing()
        if missing is not None:
            entry.error = EMPTY + missing
            return self._stay()
        out = self._identify(entry.request(self._card, self.new_id), self._card)
        # Keep what the user was doing, so a wrong code can be typed again in place.
        self.entry = new_entry(entry.kind)
        return out

    def on_identified(self, event: Answered) -> Next:
        assert isinstance(event.result, m.IdentifyResult)
        self._session = event.result.session
        self.user = event.result.display_name
        self.flash = Note(event.result.note) if event.result.note else None
        self.entry = None
        return self._load()

    def on_identify_failed(self, event: Failed) -> Next:
        entry = self.entry
        card = self._card
        if event.code == "unknown_card" and self.policy.self_association and card is not None \
                and (self.policy.allow_code or self.policy.allow_password):
            kind = "associate_code" if self.policy.allow_code else "associate_password"
            return self._open_entry(kind, card=card)
        if entry is not None and event.code in _RETRYABLE:
            return self._open_entry(entry.kind, card=card, error=event.code)
        self._forget_user()
        if event.code == "unknown_outcome":
            # Only identify.associate can end so (a plain identify is a read): the badge may
            # be linked by now, and a tap tells.
            return self._to_notice(Notice(ASSOCIATE_UNCONFIRMED), Node.NOTICE_THEN_IDLE)
        return self._notice_for(event, Node.NOTICE_THEN_IDLE)

    # ------------------------------------------------------------ the job list

    def on_listed(self, event: Answered) -> Next:
        assert isinstance(event.result, m.JobList)
        self.jobs = event.result.jobs
        self.total = event.result.total
        self._more_pending = False
        self.selected &= {j.job_id for j in self.jobs}
        return Next(Node.JOBS)

    def on_more_listed(self, event: Answered) -> Next:
        assert isinstance(event.result, m.JobList)
        known = {j.job_id for j in self.jobs}
        self.jobs += tuple(j for j in event.result.jobs if j.job_id not in known)
        self.total = event.result.total
        self._more_pending = False
        return self._stay()

    def on_more_failed(self, event: Failed) -> Next:
        self._more_pending = False
        return self.on_list_failed(event)

    def on_list_failed(self, event: Failed) -> Next:
        if event.code in ("invalid_session", "wrong_device"):
            self._forget_user()
            return self._notice_for(event, Node.NOTICE_THEN_IDLE)
        # Keep the session: the user can retry from the notice.
        return self._notice_for(event, Node.NOTICE_THEN_JOBS if self._session
                                else Node.NOTICE_THEN_IDLE)

    def on_tap_jobs(self, event: Tapped) -> Next:
        action = event.action
        if action is Action.SELECT and event.job_id is not None:
            self.selected ^= {event.job_id}
        elif action is Action.SELECT_ALL:
            every = {j.job_id for j in self.jobs}
            self.selected = set() if self.selected >= every else every
        elif action in (Action.RELEASE, Action.RELEASE_ALL):
            return self._release_jobs(everything=action is Action.RELEASE_ALL)
        elif action is Action.OPTIONS and self.policy.release_changes and self.selected:
            return Next(Node.OPTIONS)
        elif action is Action.DELETE and self.selected:
            return Next(Node.CONFIRM_DELETE)
        elif action is Action.LOAD_MORE and len(self.jobs) < self.total \
                and not self._more_pending:
            self._more_pending = True
            return self._stay(self._list(offset=len(self.jobs), kind=Kind.MORE))
        elif action is Action.LOGOUT:
            return self._logout()
        elif action is Action.RETRY:
            return self._load()
        return self._stay()

    def _release_jobs(self, *, everything: bool) -> Next:
        ids = [j.job_id for j in self.jobs if everything or j.job_id in self.selected]
        if not ids and not (everything and self.total):
            return self._stay()
        if not self.engine.can_print:
            # Refused before anything leaves HELD: the user sees why, the jobs stay waiting.
            return self._to_notice(Notice(ENGINE_REFUSED, self.engine.value),
                                   Node.NOTICE_THEN_JOBS)
        assert self._session is not None
        names = {j.job_id: j.name for j in self.jobs}
        opts = self.options
        self.release = Release("", {i: JobProgress(i, names[i], "waiting") for i in ids},
                               set(), everything)
        # "Release all" asks the cloud for every held job, including those not loaded yet.
        request = m.Release(request_id=self.new_id(), session=self._session,
                            job_ids=() if everything else tuple(ids), all_held=everything,
                            grayscale=opts.grayscale, duplex=opts.duplex, copies=opts.copies)
        return Next(Node.RELEASING, (self._send(request, Kind.RELEASE),))

    def on_tap_options(self, event: Tapped) -> Next:
        o = self.options
        match event.action:
            case Action.TOGGLE_GRAYSCALE:
                self.options = replace(o, grayscale=not o.grayscale)
            case Action.TOGGLE_DUPLEX:
                self.options = replace(o, duplex=not o.duplex)
            case Action.COPIES_UP:
                self.options = replace(o, copies=min(99, (o.copies or 1) + 1))
            case Action.COPIES_DOWN:
                down = (o.copies or 1) - 1
                self.options = replace(o, copies=down if down >= 1 else None)
            case Action.RELEASE:
                return self._release_jobs(everything=False)
            case Action.CANCEL:
                self.options = OptionsView()
                return Next(Node.JOBS)
        return self._stay()

    def on_tap_confirm_delete(self, event: Tapped) -> Next:
        if event.action is Action.CONFIRM and self.selected:
            assert self._session is not None
            ids = tuple(j.job_id for j in self.jobs if j.job_id in self.selected)
            return Next(Node.DELETING, (self._send(
                m.DeleteJobs(request_id=self.new_id(), session=self._session, job_ids=ids),
                Kind.DELETE),))
        if event.action is Action.CANCEL:
            return Next(Node.JOBS)
        return self._stay()

    def on_deleted(self, event: Answered) -> Next:
        count = len(self.selected)
        self.selected = set()
        self.flash = Deleted(count)
        return self._load()

    def on_delete_failed(self, event: Failed) -> Next:
        self.selected = set()
        if event.code == "unknown_outcome":
            # It may have been done: say so, and let the refreshed list show what is left.
            return self._to_notice(Notice(DELETE_UNCONFIRMED), Node.NOTICE_THEN_LOADING)
        return self.on_release_failed(event)

    def on_card_jobs(self, event: CardPresented) -> Next:
        if event.number == self._card:
            return self._stay()  # the same badge again: stay logged in
        out = self._logout()
        if self.policy.new_badge_logs_in:
            return out.then(self.on_card_idle(event))
        return out

    def on_tick_jobs(self, event: Tick) -> Next:
        if self.now - self._last_activity >= self.policy.idle_timeout:
            return self._logout()
        return self._stay()

    # ------------------------------------------------------------ releasing

    def on_released(self, event: Answered) -> Next:
        assert isinstance(event.result, m.ReleaseResult) and self.release is not None
        rel = self.release
        rel.release_id = event.result.release_id
        effects: list[Effect] = []
        for job in event.result.jobs:
            rel.progress[job.job_id] = JobProgress(job.job_id, job.name, "printing")
            rel.unconfirmed.add(job.job_id)
            effects.append(PrintJob(event.result.release_id, job))
        return self._stay(*effects)

    def on_release_failed(self, event: Failed) -> Next:
        self.release = None
        self.selected = set()
        if event.code in ("invalid_session", "wrong_device"):
            self._forget_user()
            return self._notice_for(event, Node.NOTICE_THEN_IDLE)
        return self._notice_for(event, Node.NOTICE_THEN_LOADING)

    def on_job_done(self, event: JobDone) -> Next:
        rel = self.release
        if rel is None or event.release_id != rel.release_id or event.job_id not in rel.progress:
            return self._stay()
        old = rel.progress[event.job_id]
        rel.progress[event.job_id] = replace(old, state="printed" if event.ok else "failed",
                                             detail=event.detail)
        if event.ok:
            req: m.Request = m.JobPrinted(request_id=self.new_id(), release_id=rel.release_id,
                                          job_id=event.job_id)
        else:
            req = m.JobFailed(request_id=self.new_id(), release_id=rel.release_id,
                              job_id=event.job_id, reason=event.detail[:200])
        return self._stay(self._send(req, Kind.CONFIRM, about=event.job_id))

    def on_confirmed(self, event: Answered | Failed) -> Next:
        # The cloud acknowledged a job's outcome (or refused: then the job is back in the list).
        rel = self.release
        if rel is None:
            return self._stay()
        if isinstance(event, Failed) and self._subject in rel.progress:
            old = rel.progress[self._subject]
            rel.progress[self._subject] = replace(old, detail=f"not confirmed: {event.message}")
        rel.unconfirmed.discard(self._subject or "")
        if rel.unconfirmed:
            return self._stay()
        printed = sum(1 for p in rel.progress.values() if p.state == "printed")
        failed = [p for p in rel.progress.values() if p.state == "failed"]
        self.flash = Printed(printed, len(failed), failed[0].detail if failed else "")
        self.release = None
        self.selected = set()
        self.options = OptionsView()
        if self._session is None:
            return self._idle()
        if rel.everything and self.policy.logout_after_release_all and not failed:
            return self._logout()
        return self._load()

    # ------------------------------------------------------------ notices and the link

    def on_dismiss(self, event: Tapped) -> Next:
        if event.action is not Action.DISMISS:
            return self._stay()
        return self._leave_notice()

    def on_tick_notice(self, event: Tick) -> Next:
        if self.now >= self._notice_until:
            return self._leave_notice()
        return self._stay()

    def _leave_notice(self) -> Next:
        # Without a session, a notice meant to lead back to the list cannot: the table does
        # not allow that way out (it cannot happen), so it is caught as the bug it would be.
        if self.node is Node.NOTICE_THEN_LOADING and self._session is not None:
            return self._load()
        if self.node is Node.NOTICE_THEN_JOBS and self._session is not None:
            return Next(Node.JOBS)
        return self._logout() if self._session else self._idle()

    def on_link_idle(self, event: LinkChanged) -> Next:
        if event.up and self._session is not None:
            # Back after an outage with someone logged in: show their jobs again, fresh.
            return self._load()
        return self._idle()

    def on_link_jobs(self, event: LinkChanged) -> Next:
        if not event.up:
            # The user keeps their session; the panel says why nothing works until it is back.
            return Next(Node.OFFLINE)
        return self._stay()

    def on_tap_offline(self, event: Tapped) -> Next:
        if event.action is Action.LOGOUT or (event.action is Action.DISMISS
                                              and self._session is not None):
            return self._logout()
        return self._stay()

    def on_tick_offline(self, event: Tick) -> Next:
        # Offline counts as idle time: a user who walked away is logged out all the same.
        if self._session is not None and \
                self.now - self._last_activity >= self.policy.idle_timeout:
            return self._logout()
        return self._stay()

    # ------------------------------------------------------------ view

    def view(self) -> PanelView:
        return present(self)


# ---------------------------------------------------------------- the table

#: A handler: a SessionMachine method taking the event its entry is for.
Handler = Callable[[SessionMachine, Any], Next]


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry of the table: who handles the event, and the nodes it may lead to."""

    handler: Handler
    to: frozenset[Node]


def _rule(handler: Handler, *to: Node) -> Rule:
    return Rule(handler, frozenset(to))


# The table's shorthand.
N = Node
S = SessionMachine
_OUT = (N.IDLE, N.OFFLINE)  # the session ended: idle, or offline while the link is down
_IN = (N.ENTRY, N.IDENTIFYING)  # a badge: the PIN, or straight to identifying
_LIST_FAILED = (N.NOTICE_THEN_IDLE, N.NOTICE_THEN_JOBS)
_RELEASE = (N.RELEASING, N.NOTICE_THEN_JOBS)  # sent, or refused by the engine first


def _signed_in(node: Node) -> dict[tuple[Node, type, Kind | None], Rule]:
    """What the job list and its two questions share: a badge, time, the link."""
    return {
        (node, CardPresented, None): _rule(S.on_card_jobs, node, *_OUT, *_IN),
        (node, Tick, None): _rule(S.on_tick_jobs, node, *_OUT),
        (node, LinkChanged, None): _rule(S.on_link_jobs, node, N.OFFLINE),
    }


def _notice(node: Node, *back: Node) -> dict[tuple[Node, type, Kind | None], Rule]:
    """A notice ends on OK or in time, and leads back where its node says."""
    return {
        (node, Tapped, None): _rule(S.on_dismiss, node, *back),
        (node, Tick, None): _rule(S.on_tick_notice, node, *back),
    }


# (node, event type, what the answered request was for, or None) -> Rule. The whole machine.
TRANSITIONS: dict[tuple[Node, type, Kind | None], Rule] = {
    (N.IDLE, CardPresented, None): _rule(S.on_card_idle, *_IN),
    (N.IDLE, CodeEntered, None): _rule(S.on_code_idle, N.IDLE, N.IDENTIFYING),
    (N.IDLE, Tapped, None): _rule(S.on_tap_idle, N.IDLE, N.ENTRY),
    # Idle, nobody is logged in: the link only decides between idle and offline.
    (N.IDLE, LinkChanged, None): _rule(S.on_link_idle, *_OUT),
    (N.ENTRY, KeyPressed, None): _rule(S.on_key_entry, N.ENTRY, N.IDENTIFYING),
    (N.ENTRY, Tapped, None): _rule(S.on_tap_entry, N.ENTRY, N.IDENTIFYING, *_OUT),
    (N.ENTRY, CardPresented, None): _rule(S.on_card_entry, *_IN),
    (N.ENTRY, Tick, None): _rule(S.on_tick_entry, N.ENTRY, *_OUT),
    (N.IDENTIFYING, Answered, Kind.IDENTIFY): _rule(S.on_identified, N.LOADING),
    (N.IDENTIFYING, Failed, Kind.IDENTIFY): _rule(S.on_identify_failed, N.ENTRY,
                                                  N.NOTICE_THEN_IDLE),
    (N.IDENTIFYING, Answered, Kind.ASSOCIATE): _rule(S.on_identified, N.LOADING),
    (N.IDENTIFYING, Failed, Kind.ASSOCIATE): _rule(S.on_identify_failed, N.ENTRY,
                                                   N.NOTICE_THEN_IDLE),
    (N.LOADING, Answered, Kind.LIST): _rule(S.on_listed, N.JOBS),
    (N.LOADING, Failed, Kind.LIST): _rule(S.on_list_failed, *_LIST_FAILED),
    (N.JOBS, Tapped, None): _rule(S.on_tap_jobs, N.JOBS, N.OPTIONS, N.CONFIRM_DELETE,
                                  N.LOADING, *_RELEASE, *_OUT),
    (N.JOBS, Answered, Kind.MORE): _rule(S.on_more_listed, N.JOBS),
    (N.JOBS, Failed, Kind.MORE): _rule(S.on_more_failed, *_LIST_FAILED),
    **_signed_in(N.JOBS),
    (N.OPTIONS, Tapped, None): _rule(S.on_tap_options, N.OPTIONS, N.JOBS, *_RELEASE),
    **_signed_in(N.OPTIONS),
    (N.CONFIRM_DELETE, Tapped, None): _rule(S.on_tap_confirm_delete, N.CONFIRM_DELETE,
                                            N.DELETING, N.JOBS),
    **_signed_in(N.CONFIRM_DELETE),
    (N.DELETING, Answered, Kind.DELETE): _rule(S.on_deleted, N.LOADING),
    (N.DELETING, Failed, Kind.DELETE): _rule(S.on_delete_failed, N.NOTICE_THEN_LOADING,
                                             N.NOTICE_THEN_IDLE),
    (N.RELEASING, Answered, Kind.RELEASE): _rule(S.on_released, N.RELEASING),
    (N.RELEASING, Failed, Kind.RELEASE): _rule(S.on_release_failed, N.NOTICE_THEN_LOADING,
                                               N.NOTICE_THEN_IDLE),
    (N.RELEASING, JobDone, None): _rule(S.on_job_done, N.RELEASING),
    (N.RELEASING, Answered, Kind.CONFIRM): _rule(S.on_confirmed, N.RELEASING, N.LOADING,
                                                 *_OUT),
    (N.RELEASING, Failed, Kind.CONFIRM): _rule(S.on_confirmed, N.RELEASING, N.LOADING, *_OUT),
    **_notice(N.NOTICE_THEN_IDLE, *_OUT),
    # Only a notice that ends the session lets a badge or a code start the next one at once;
    # over a logged-in user's notice they are ignored.
    (N.NOTICE_THEN_IDLE, CardPresented, None): _rule(S.on_card_idle, *_IN),
    (N.NOTICE_THEN_IDLE, CodeEntered, None): _rule(S.on_code_idle, N.NOTICE_THEN_IDLE,
                                                   N.IDENTIFYING),
    # Over a logged-in user's list, nothing in a notice ends the session: it leads back.
    **_notice(N.NOTICE_THEN_JOBS, N.JOBS),
    **_notice(N.NOTICE_THEN_LOADING, N.LOADING),
    (N.OFFLINE, LinkChanged, None): _rule(S.on_link_idle, N.LOADING, *_OUT),
    (N.OFFLINE, Tapped, None): _rule(S.on_tap_offline, *_OUT),
    (N.OFFLINE, Tick, None): _rule(S.on_tick_offline, *_OUT),
    # Offline, a badge is still tried: the link fails it at once and the panel says why.
    (N.OFFLINE, CardPresented, None): _rule(S.on_card_idle, *_IN),
    (N.OFFLINE, CodeEntered, None): _rule(S.on_code_idle, N.OFFLINE, N.IDENTIFYING),
}

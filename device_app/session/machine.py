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

The handlers are grouped by phase, one mixin class per module, each on ``MachineBase``
(device_app/session/base.py: what the machine knows and the steps its handlers share):
``ways_in`` (a badge, the entry form, identifying), ``jobs`` (the list, its options, delete),
``releasing`` (a release's answer, the engine's outcomes, their confirmations) and ``notices``
(notices, the offline panel, the link). ``SessionMachine`` puts them together; only this module
decides: ``handle`` and the table are here, and a handler never moves the machine itself.

Ways in: a badge; a badge then a PIN (``Policy.card_pin``); an access code; a username and
password. An unknown badge leads to self-association (``Policy.self_association``): the user
proves who they are with an access code or username + password and the cloud links the badge.
Ways out: the Logout button, the idle timeout (paused while the user types or taps, and while
jobs print; its last seconds count down on the panel, and any touch puts it off), another badge
(which logs the new holder in, by policy; the same badge again refreshes the list), "Done, log
me out" while jobs print (they print on: the printer reports them), and optionally the end of
a "release all".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from device_app.session import events as ev
from device_app.session.base import Next
from device_app.session.effects import Effect
from device_app.session.jobs import JobList
from device_app.session.notices import NoticesAndLink
from device_app.session.presenter import present
from device_app.session.releasing import Releasing
from device_app.session.state import Kind, Node, State
from device_app.session.technician import Technician
from device_app.view import PanelView

log = logging.getLogger(__name__)


class TransitionError(AssertionError):
    """A handler led to a node its table entry does not allow: a bug in the machine."""


class SessionMachine(Technician, JobList, Releasing, NoticesAndLink):
    """The session at the copier: ``handle`` an event, run the effects it returns, draw ``view()``.
    The handlers come from the phases' mixins (``Technician`` is ``WaysIn`` and the technician's
    diagnostics); ``TRANSITIONS`` says which runs, and where to."""

    # ------------------------------------------------------------ driving

    @property
    def state(self) -> State:
        """What the panel is doing (the node, with a notice's way back left out)."""
        return self.node.state

    @property
    def session_token(self) -> str | None:
        return self._session

    def handle(self, event: ev.Event) -> list[Effect]:
        if isinstance(event, ev.Tick):
            self.now = event.now
        elif isinstance(event, ev.LinkChanged):
            self.link_up = event.up
            self.link_local = event.up and event.local
        elif isinstance(event, ev.EngineChanged):
            self.engine = event.state
            return []
        elif isinstance(event, ev.CardPresented | ev.CodeEntered | ev.KeyPressed | ev.Tapped):
            # Any touch is activity: it puts off the idle logout and ends its countdown.
            self._last_activity = self.now
            self.logout_in = None
        kind: Kind | None = None
        if isinstance(event, ev.Answered | ev.Failed):
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

    def _not_allowed(self, before: Node, event: ev.Event, kind: Kind | None, out: Next
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
# A user's list (on show at once where the answer brought its first page, else loading), or a
# technician's diagnostics.
_IDENTIFIED = (N.JOBS, N.LOADING, N.DIAGNOSTICS)
_RELEASE = (N.RELEASING, N.NOTICE_THEN_JOBS)  # sent, or refused by the engine first


def _signed_in(node: Node) -> dict[tuple[Node, type, Kind | None], Rule]:
    """What the job list and its two questions share: a badge, time, the link."""
    return {
        (node, ev.CardPresented, None): _rule(S.on_card_jobs, node, *_OUT, *_IN),
        (node, ev.Tick, None): _rule(S.on_tick_jobs, node, *_OUT),
        (node, ev.LinkChanged, None): _rule(S.on_link_jobs, node, N.OFFLINE),
        # The cloud says a job arrived for the user signed in here: the list shows it by
        # itself, fetched again behind this screen (as for the same badge, or Refresh).
        (node, ev.JobsChanged, None): _rule(S.on_jobs_changed, node),
        (node, ev.Answered, Kind.REFRESH): _rule(S.on_refreshed, node),
        (node, ev.Failed, Kind.REFRESH): _rule(S.on_refresh_failed, node, N.NOTICE_THEN_IDLE),
    }


def _notice(node: Node, *back: Node) -> dict[tuple[Node, type, Kind | None], Rule]:
    """A notice ends on OK or in time, and leads back where its node says."""
    return {
        (node, ev.Tapped, None): _rule(S.on_dismiss, node, *back),
        (node, ev.Tick, None): _rule(S.on_tick_notice, node, *back),
    }


# (node, event type, what the answered request was for, or None) -> Rule. The whole machine.
TRANSITIONS: dict[tuple[Node, type, Kind | None], Rule] = {
    (N.IDLE, ev.CardPresented, None): _rule(S.on_card_idle, *_IN),
    (N.IDLE, ev.CodeEntered, None): _rule(S.on_code_idle, N.IDLE, N.IDENTIFYING),
    (N.IDLE, ev.Tapped, None): _rule(S.on_tap_idle, N.IDLE, N.ENTRY),
    # Idle, nobody is logged in: the link only decides between idle and offline.
    (N.IDLE, ev.LinkChanged, None): _rule(S.on_link_idle, *_OUT),
    # A release ordered from the portal prints at an idle panel only (the app keeps it back
    # while someone is signed in: it never shows in, or interrupts, their session).
    (N.IDLE, ev.OrderArrived, None): _rule(S.on_order, N.RELEASING),
    (N.ENTRY, ev.KeyPressed, None): _rule(S.on_key_entry, N.ENTRY, N.IDENTIFYING),
    (N.ENTRY, ev.Tapped, None): _rule(S.on_tap_entry, N.ENTRY, N.IDENTIFYING, *_OUT),
    (N.ENTRY, ev.CardPresented, None): _rule(S.on_card_entry, *_IN),
    (N.ENTRY, ev.Tick, None): _rule(S.on_tick_entry, N.ENTRY, *_OUT),
    (N.IDENTIFYING, ev.Answered, Kind.IDENTIFY): _rule(S.on_identified, *_IDENTIFIED),
    (N.IDENTIFYING, ev.Failed, Kind.IDENTIFY): _rule(S.on_identify_failed, N.ENTRY,
                                                  N.NOTICE_THEN_IDLE),
    (N.IDENTIFYING, ev.Answered, Kind.ASSOCIATE): _rule(S.on_associated, N.JOBS, N.LOADING),
    (N.IDENTIFYING, ev.Failed, Kind.ASSOCIATE): _rule(S.on_identify_failed, N.ENTRY,
                                                   N.NOTICE_THEN_IDLE),
    (N.LOADING, ev.Answered, Kind.LIST): _rule(S.on_listed, N.JOBS),
    (N.LOADING, ev.Failed, Kind.LIST): _rule(S.on_list_failed, *_LIST_FAILED),
    (N.JOBS, ev.Tapped, None): _rule(S.on_tap_jobs, N.JOBS, N.OPTIONS, N.CONFIRM_DELETE,
                                  N.LOADING, *_RELEASE, *_OUT),
    (N.JOBS, ev.Answered, Kind.MORE): _rule(S.on_more_listed, N.JOBS),
    (N.JOBS, ev.Failed, Kind.MORE): _rule(S.on_more_failed, *_LIST_FAILED),
    **_signed_in(N.JOBS),
    (N.OPTIONS, ev.Tapped, None): _rule(S.on_tap_options, N.OPTIONS, N.JOBS, *_RELEASE),
    **_signed_in(N.OPTIONS),
    (N.CONFIRM_DELETE, ev.Tapped, None): _rule(S.on_tap_confirm_delete, N.CONFIRM_DELETE,
                                            N.DELETING, N.JOBS),
    **_signed_in(N.CONFIRM_DELETE),
    (N.DELETING, ev.Answered, Kind.DELETE): _rule(S.on_deleted, N.LOADING),
    (N.DELETING, ev.Failed, Kind.DELETE): _rule(S.on_delete_failed, N.NOTICE_THEN_LOADING,
                                             N.NOTICE_THEN_IDLE),
    (N.RELEASING, ev.Answered, Kind.RELEASE): _rule(S.on_released, N.RELEASING),
    (N.RELEASING, ev.Failed, Kind.RELEASE): _rule(S.on_release_failed, N.NOTICE_THEN_LOADING,
                                               N.NOTICE_THEN_IDLE),
    (N.RELEASING, ev.JobDone, None): _rule(S.on_job_done, N.RELEASING),
    (N.RELEASING, ev.PagesPrinted, None): _rule(S.on_pages_printed, N.RELEASING),
    # "Done, log me out": the jobs print on and are reported without anyone signed in.
    (N.RELEASING, ev.Tapped, None): _rule(S.on_tap_releasing, N.RELEASING, *_OUT),
    (N.RELEASING, ev.Answered, Kind.CONFIRM): _rule(S.on_confirmed, N.RELEASING, N.LOADING,
                                                 *_OUT),
    (N.RELEASING, ev.Failed, Kind.CONFIRM): _rule(S.on_confirmed, N.RELEASING, N.LOADING, *_OUT),
    **_notice(N.NOTICE_THEN_IDLE, *_OUT),
    # Only a notice that ends the session lets a badge or a code start the next one at once;
    # over a logged-in user's notice they are ignored.
    (N.NOTICE_THEN_IDLE, ev.CardPresented, None): _rule(S.on_card_idle, *_IN),
    (N.NOTICE_THEN_IDLE, ev.CodeEntered, None): _rule(S.on_code_idle, N.NOTICE_THEN_IDLE,
                                                   N.IDENTIFYING),
    # Over a logged-in user's list, nothing in a notice ends the session: it leads back.
    **_notice(N.NOTICE_THEN_JOBS, N.JOBS),
    **_notice(N.NOTICE_THEN_LOADING, N.LOADING),
    (N.OFFLINE, ev.LinkChanged, None): _rule(S.on_link_idle, N.LOADING, *_OUT),
    (N.OFFLINE, ev.Tapped, None): _rule(S.on_tap_offline, *_OUT),
    (N.OFFLINE, ev.Tick, None): _rule(S.on_tick_offline, *_OUT),
    # Offline, a badge is still tried: the link fails it at once and the panel says why.
    (N.OFFLINE, ev.CardPresented, None): _rule(S.on_card_idle, *_IN),
    (N.OFFLINE, ev.CodeEntered, None): _rule(S.on_code_idle, N.OFFLINE, N.IDENTIFYING),
    # A technician's diagnostics: no session, no jobs. Done, the idle timeout or any badge
    # leave it (the badge then goes where it would at an idle panel); the link going down or
    # up only changes a row.
    (N.DIAGNOSTICS, ev.Tapped, None): _rule(S.on_tap_diagnostics, N.DIAGNOSTICS, *_OUT),
    (N.DIAGNOSTICS, ev.Tick, None): _rule(S.on_tick_diagnostics, N.DIAGNOSTICS, *_OUT),
    (N.DIAGNOSTICS, ev.CardPresented, None): _rule(S.on_card_diagnostics, *_OUT, *_IN),
}

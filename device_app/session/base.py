"""What every handler of the session machine shares: its memory and the moves it makes often.

``MachineBase`` holds everything the machine knows (the node, the session, the user, the list,
the release; what the presenter reads) and the small steps handlers build their answers from:
stay, send a request and remember its tag, show a notice, forget the user, identify, load the
list, log out. The handlers themselves are grouped by phase, one mixin per module (``ways_in``,
``jobs``, ``releasing``, ``notices``); ``SessionMachine`` (``machine``) puts them together and its
table decides which of them runs and where each may lead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from device_app.session.diagnostics import Snapshot
from device_app.session.effects import Effect, Send
from device_app.session.entry import Entry, new_entry
from device_app.session.events import Failed
from device_app.session.state import Flash, Kind, Node, Notice, Policy, Release, WhyEmpty
from device_app.view import OptionsView
from protocol import messages as m
from protocol.engine import EngineState

#: Jobs the identify answer brings: a screenful on the tallest panel, so the list shows after
#: one round trip and a small answer; the rest of the policy's page follows behind it.
FIRST_PAGE = 25


@dataclass(frozen=True, slots=True)
class Next:
    """What a handler decided: the node to go to, and the effects to run."""

    node: Node
    effects: tuple[Effect, ...] = ()

    def then(self, later: Next) -> Next:
        """This step's effects, then ``later``'s, ending where ``later`` ends."""
        return Next(later.node, self.effects + later.effects)


class MachineBase:
    """The session machine's memory and the steps its handlers share (no handler is here)."""

    def __init__(self, *, new_id: Callable[[], str], device_name: str = "",
                 policy: Policy | None = None, idle_timeout: float | None = None,
                 notice_timeout: float | None = None, strict: bool = False,
                 snapshot: Callable[[], Snapshot] | None = None) -> None:
        policy = policy or Policy()
        if idle_timeout is not None:
            policy = replace(policy, idle_timeout=idle_timeout)
        if notice_timeout is not None:
            policy = replace(policy, notice_timeout=notice_timeout)
        #: The device answers for the print service (offline mode): the panel says so.
        self.link_local = False
        self.policy = policy
        self.new_id = new_id
        self.device_name = device_name
        #: The device's id, for the idle screen's QR code (the app sets it from its link).
        self.device_id = ""
        #: Raise TransitionError on a move the table does not allow (tests); else log it and
        #: end the session (a copier in service).
        self.strict = strict
        #: What the diagnostics screen shows, gathered when it is drawn (the app's: the last
        #: badge, the engine's counters, the link's round trips, the config version); without
        #: one, what the machine itself knows.
        self.snapshot: Callable[[], Snapshot] = snapshot or self._own_snapshot
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
        # When the flash over the list fades (0: not shown yet; it starts when the list shows).
        self._flash_until = 0.0
        # What the presenter reads (device_app/session/presenter.py); only handlers write it.
        self.notice = Notice("")
        self.user = ""
        #: The signed-in user's language as the cloud knows it (a tag; "" not known): the
        #: panel speaks it while they are here, and the device's again once they are gone.
        self.user_language = ""
        self.entry: Entry | None = None
        self.jobs: tuple[m.JobSummary, ...] = ()
        self.total = 0
        self.selected: set[str] = set()
        self.options = OptionsView()
        self.release: Release | None = None
        self.flash: Flash = None
        self.why_empty = WhyEmpty()
        #: The last attempt to fetch the list again could not reach the print service.
        self.unreachable = False
        #: Whole seconds to the idle logout while its countdown shows, else None.
        self.logout_in: int | None = None
        self.engine = EngineState.READY
        self.link_up = True
        self.ignored = 0

    @property
    def policy(self) -> Policy:
        """The org's policy; in offline mode without self-association (the copier answering
        for the print service cannot link a badge: an unknown one is refused plainly)."""
        return self._offline_policy if self.link_local else self._policy

    @policy.setter
    def policy(self, value: Policy) -> None:
        self._policy = value
        self._offline_policy = replace(value, self_association=False)

    def _own_snapshot(self) -> Snapshot:
        return Snapshot(engine=self.engine, link_up=self.link_up)

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
        self.user_language = ""
        self._card = None
        self.entry = None
        self.jobs = ()
        self.total = 0
        self._more_pending = False
        self.selected = set()
        self.options = OptionsView()
        self.release = None
        self.flash = None
        self._flash_until = 0.0
        self.why_empty = WhyEmpty()
        self.unreachable = False
        self.logout_in = None
        # Answers still in flight belong to the old session; drop them when they come.
        self._pending.clear()

    def _identify(self, request: m.Identify | m.Associate, card: str | None) -> Next:
        self._forget_user()
        self._card = card
        kind = Kind.ASSOCIATE if isinstance(request, m.Associate) else Kind.IDENTIFY
        # With a page size, the cloud answers a user with their first page too: the list shows
        # after one round trip (an older cloud ignores it, and the list is asked for). A
        # screenful, not the whole page: it is what the person sees first, it travels and
        # decodes faster, and the rest of the page follows behind it (ways_in.on_identified).
        request = replace(request, page_size=min(self.policy.page_size, FIRST_PAGE))
        return Next(Node.IDENTIFYING, (self._send(request, kind),))

    def _list(self, offset: int = 0, kind: Kind = Kind.LIST) -> Send:
        assert self._session is not None
        return self._send(m.ListJobs(session=self._session, offset=offset,
                                     limit=self.policy.page_size), kind)

    def _load(self) -> Next:
        return Next(Node.LOADING, (self._list(),))

    def _show_list(self, page: m.JobList) -> Next:
        """The first page on show, whether ``jobs.list`` answered it or the identify answer
        brought it."""
        self._take_list(page)
        self._more_pending = False
        if self.flash is not None and not self._flash_until:
            # What just happened shows from now, for as long as a notice would.
            self._flash_until = self.now + self.policy.notice_timeout
        return Next(Node.JOBS)

    def _take_list(self, result: m.JobList) -> None:
        self.jobs = result.jobs
        self.total = result.total
        self.selected &= {j.job_id for j in self.jobs}
        self.why_empty = WhyEmpty(result.expired, result.hold_hours, result.unlinked)
        self.unreachable = False

    def _refresh(self) -> Next:
        """Fetch the list again behind the one on show (as many jobs as are loaded, at least a
        page), unless a fetch is on its way already."""
        send = self._refresh_send()
        return self._stay() if send is None else self._stay(send)

    def _refresh_send(self) -> Send | None:
        # Pending until its answer comes, whatever screen that finds (the table may drop it).
        if self._session is None or any(k is Kind.REFRESH for k, _ in self._pending.values()):
            return None
        limit = min(500, max(self.policy.page_size, len(self.jobs)))
        return self._send(m.ListJobs(session=self._session, offset=0, limit=limit),
                          Kind.REFRESH)

    def _say(self, flash: Flash) -> None:
        """What just happened, over the list; it fades ``notice_timeout`` after it shows."""
        self.flash = flash
        self._flash_until = 0.0

    @property
    def warn_span(self) -> float:
        """How long before the idle logout its countdown shows: 10 s, or a third of a short
        idle timeout (a countdown over most of the wait would nag)."""
        return min(10.0, self.policy.idle_timeout / 3)

    def _idle_time(self) -> Next | None:
        """The idle logout, and its countdown before it: a logout when the time is up, else
        None (with ``logout_in`` set while the countdown shows)."""
        left = self.policy.idle_timeout - (self.now - self._last_activity)
        if left <= 0:
            return self._logout()
        self.logout_in = math.ceil(left) if left <= self.warn_span else None
        return None

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

    def _jobs_refused(self, event: Failed) -> Next:
        # A release or a delete the cloud refused: nothing is on its way and nothing stays
        # selected; a session it no longer knows ends, else the notice leads to a fresh list.
        self.release = None
        self.selected = set()
        if event.code in ("invalid_session", "wrong_device"):
            self._forget_user()
            return self._notice_for(event, Node.NOTICE_THEN_IDLE)
        return self._notice_for(event, Node.NOTICE_THEN_LOADING)

"""The session machine's job list: loading it, more of it, fetching it again behind the screen
(the cloud's ``jobs.changed``, Refresh, the same badge; the selection kept), selecting, the
release options, deleting, what just happened (a line that fades) and the idle time.

Releasing starts here (a tap on Release, Release all, or Release in the options), refused before
anything is sent while the engine cannot print; what follows the request is ``releasing``'s.
"""

from __future__ import annotations

from dataclasses import replace

from device_app.session.base import MachineBase, Next
from device_app.session.events import Answered, Failed, JobsChanged, Tapped, Tick
from device_app.session.state import (
    DELETE_UNCONFIRMED,
    ENGINE_REFUSED,
    Deleted,
    Kind,
    Node,
    Notice,
    Release,
)
from device_app.view import Action, JobProgress, OptionsView
from protocol import messages as m


class JobList(MachineBase):
    """Handlers for loading, the list, its options and delete questions, and its idle time."""

    def on_listed(self, event: Answered) -> Next:
        assert isinstance(event.result, m.JobList)
        return self._show_list(event.result)

    def on_refreshed(self, event: Answered) -> Next:
        # The list fetched again behind the one on show: the new one replaces it, and what was
        # selected and is still there stays selected.
        assert isinstance(event.result, m.JobList)
        self._take_list(event.result)
        return self._stay()

    def on_refresh_failed(self, event: Failed) -> Next:
        if event.code in ("invalid_session", "wrong_device"):
            self._forget_user()
            return self._notice_for(event, Node.NOTICE_THEN_IDLE)
        # Nobody asked for it on this screen: no notice. The list stays as it was, and says
        # so when the print service could not be reached.
        self.unreachable = event.code in ("unreachable", "timeout")
        return self._stay()

    def on_jobs_changed(self, event: JobsChanged) -> Next:
        return self._refresh()

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
        # Keep the session: the user can retry from the notice, and the list behind it says
        # why it may be empty.
        self.unreachable = event.code in ("unreachable", "timeout")
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
        elif action is Action.REFRESH:
            return self._refresh()
        elif action is Action.DISMISS:
            self.flash = None
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
        self._say(Deleted(count))
        return self._load()

    def on_delete_failed(self, event: Failed) -> Next:
        self.selected = set()
        if event.code == "unknown_outcome":
            # It may have been done: say so, and let the refreshed list show what is left.
            return self._to_notice(Notice(DELETE_UNCONFIRMED), Node.NOTICE_THEN_LOADING)
        return self._jobs_refused(event)

    def on_tick_jobs(self, event: Tick) -> Next:
        if self.flash is not None and self._flash_until and self.now >= self._flash_until:
            self.flash = None
        return self._idle_time() or self._stay()

"""The session machine's notices and the link: a notice ends on OK or in time and leads where its
node says; the link going down shows the offline panel, its coming back the idle panel or the
logged-in user's list, fresh.
"""

from __future__ import annotations

from device_app.session.base import MachineBase, Next
from device_app.session.events import LinkChanged, Tapped, Tick
from device_app.session.state import Node
from device_app.view import Action


class NoticesAndLink(MachineBase):
    """Handlers for the three notices, the offline panel, and the link changing."""

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
        if self._session is not None:
            return self._idle_time() or self._stay()
        return self._stay()

"""The session machine's technician handlers: the DIAGNOSTICS node a technician's badge or code
opens (the cloud answers ``identify`` with ``role`` "technician", no user and no session).

The node holds no session and no one's jobs: nothing the print service would act on. It ends
as a signed-in panel would, without a logout to send: on Done, at the idle timeout (with its
countdown), or on any badge, which then goes where a badge at an idle panel goes (by policy,
as over a user's list: someone who walks up to print is not kept waiting behind a technician).
What the screen shows is device_app/session/diagnostics.py's.
"""

from __future__ import annotations

from device_app.session.base import Next
from device_app.session.events import Answered, CardPresented, Tapped, Tick
from device_app.session.state import Node
from device_app.session.ways_in import WaysIn
from device_app.view import Action
from protocol import messages as m

#: Taps that leave the diagnostics screen: its Done button (and Logout, should a screen offer
#: it).
_LEAVE = (Action.DISMISS, Action.LOGOUT)


class Technician(WaysIn):
    """Handlers for DIAGNOSTICS, and the identify answer that opens it: a way in (it extends
    ``WaysIn``), to a node of its own."""

    def on_identified(self, event: Answered) -> Next:
        if isinstance(event.result, m.IdentifyResult) \
                and event.result.role == m.ROLE_TECHNICIAN:
            # No session is kept (the token opens nothing, so no logout is sent either) and
            # no one is named; the idle timeout counts from now.
            self._forget_user()
            self._last_activity = self.now
            return Next(Node.DIAGNOSTICS)
        return super().on_identified(event)

    def on_tap_diagnostics(self, event: Tapped) -> Next:
        if event.action in _LEAVE:
            self._forget_user()
            return self._idle()
        return self._stay()

    def on_tick_diagnostics(self, event: Tick) -> Next:
        return self._idle_time() or self._stay()

    def on_card_diagnostics(self, event: CardPresented) -> Next:
        out = self._logout()
        if self.policy.new_badge_logs_in:
            return out.then(self.on_card_idle(event))
        return out

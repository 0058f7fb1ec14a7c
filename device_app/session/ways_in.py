"""The session machine's ways in: a badge, a badge then a PIN, an access code, a username and
password, and self-association for an unknown badge (the entry form and its answers).

A badge is a way in wherever the table lets one in: at an idle panel, over the entry form (the
badge wins over what was being typed) and over a logged-in user's list (another badge logs its
holder in, by policy). Every way ends in ``identify`` (or ``identify.associate``), which asks for
the user's first page of jobs too; its answer shows the list (with the page it brought, or loads
it where an older cloud brought none), or puts the user back on the form with the reason, or
shows a notice.
"""

from __future__ import annotations

from device_app.session.base import MachineBase, Next
from device_app.session.entry import EMPTY, new_entry
from device_app.session.events import (
    Answered,
    CardPresented,
    CodeEntered,
    Failed,
    KeyPressed,
    Tapped,
    Tick,
)
from device_app.session.state import (
    ASSOCIATE_UNCONFIRMED,
    Flash,
    Linked,
    Node,
    Note,
    Notice,
)
from device_app.view import Action
from protocol import messages as m

# Entry failures that leave the user on the entry screen to try again (with the reason shown).
_RETRYABLE = {"unknown_code", "invalid_password", "wrong_pin"}


class WaysIn(MachineBase):
    """Handlers for the idle panel, the entry form, identifying, and a badge over the list."""

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
        note = event.result.note
        return self._signed_in(event.result, Note(note) if note else None)

    def on_associated(self, event: Answered) -> Next:
        # The badge is the user's now: the list says so, and how to log in next time.
        assert isinstance(event.result, m.IdentifyResult)
        return self._signed_in(event.result, Linked())

    def _signed_in(self, result: m.IdentifyResult, flash: Flash) -> Next:
        self._session = result.session
        self.user = result.display_name
        self.user_language = result.language
        self._say(flash)
        self.entry = None
        page = result.first_page()
        # The answer brought the first screenful (issue 13): on show at once; else (an older
        # cloud) the list is asked for.
        if page is None:
            return self._load()
        shown = self._show_list(page)
        if len(page.jobs) < min(page.total, self.policy.page_size):
            # The rest of the page, behind the list on show (selection kept, as a refresh).
            rest = self._refresh_send()
            if rest is not None:
                return Next(shown.node, (*shown.effects, rest))
        return shown

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

    def on_card_jobs(self, event: CardPresented) -> Next:
        if event.number == self._card:
            # The same badge again: stay logged in, and show the list as it is now.
            return self._refresh()
        out = self._logout()
        if self.policy.new_badge_logs_in:
            return out.then(self.on_card_idle(event))
        return out

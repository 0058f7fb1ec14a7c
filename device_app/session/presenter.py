"""What the panel says: the session machine's state turned into a :class:`PanelView`.

The machine decides and keeps records (a notice's code, a flash's counts, an entry's error
code); every word the user reads is here, so the copy can change without touching a transition,
and the machine never holds text it did not get from the cloud. The presenter reads the machine
and writes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from device_app import i18n
from device_app.i18n import N_, Translator, translator
from device_app.session import diagnostics
from device_app.session.entry import EMPTY
from device_app.session.state import (
    ASSOCIATE_UNCONFIRMED,
    DELETE_UNCONFIRMED,
    ENGINE_REFUSED,
    Deleted,
    Flash,
    Linked,
    Note,
    Notice,
    Printed,
    State,
    WhyEmpty,
)
from device_app.view import EntryView, FieldView, JobProgress, PanelView, Screen, Tone
from protocol.engine import ENGINE_REASONS, EngineState

if TYPE_CHECKING:
    from device_app.session.machine import SessionMachine

ENGLISH = translator(i18n.SOURCE)

# What a user reads for each error code. Unknown codes fall back to the cloud's own message.
# English here, marked for the catalogue (device_app/i18n); translated where it is shown.
NOTICES: dict[str, tuple[str, str]] = {
    "unknown_card": (N_("Card not recognised"),
                     N_("This badge is not linked to anyone. Ask your administrator to add it.")),
    "invalid_session": (N_("Your session ended"), N_("Tap your badge to log in again.")),
    "wrong_device": (N_("Your session ended"), N_("Tap your badge to log in again.")),
    "unknown_code": (N_("Code not recognised"),
                     N_("Check your access code and try again, or tap your badge.")),
    "invalid_password": (N_("Wrong username or password"), N_("Check them and try again.")),
    "wrong_pin": (N_("Wrong PIN"), N_("Check your PIN and try again.")),
    "unknown_device": (N_("This copier is not registered"),
                       N_("Ask your administrator to register it with the print service.")),
    "unreachable": (N_("Can't reach the print service"),
                    N_("Your jobs are safe. Try again in a moment.")),
    "timeout": (N_("Can't reach the print service"),
                N_("Your jobs are safe. Try again in a moment.")),
    "busy": (N_("The print service is busy"), N_("Please try again in a moment.")),
    # A mutating request sent, then no answer even after reconnecting (device_app/link.py):
    # the cloud may have done it. Never "failed": the jobs are safe either way, since nothing
    # prints without the answer, and a release nobody fetched goes back to HELD by itself.
    "unknown_outcome": (N_("Not confirmed"),
                        N_("The connection was lost before the print service answered. Your "
                           "jobs are safe and nothing was printed; a job missing from your list "
                           "comes back within 10 minutes.")),
    "locked_out": (N_("Too many wrong attempts"), N_("Try again later, or tap your badge.")),
    "throttled": (N_("Badge sign-in paused"),
                  N_("Too many unknown badges here. Try again later, or use your access "
                     "code.")),
    "card_limit": (N_("This badge can't be linked"),
                   N_("You have as many badges as allowed. Ask your administrator.")),
    "not_allowed": (N_("Not allowed"), N_("Your organisation does not allow this.")),
    "job_not_held": (N_("A job is no longer waiting"),
                     N_("It was printed or removed meanwhile. Your list has been refreshed.")),
    "job_not_found": (N_("A job is no longer waiting"),
                      N_("It was printed or removed meanwhile. Your list has been refreshed.")),
    # The machine's own notices (device_app/session/state.py), not error codes from a wire.
    # The print engine's words for why it cannot print come from protocol.engine.
    DELETE_UNCONFIRMED: (N_("Not confirmed"),
                         N_("The connection was lost before the print service answered: the "
                            "jobs may have been deleted. Your list shows what is left.")),
    ASSOCIATE_UNCONFIRMED: (N_("Not confirmed"),
                            N_("The connection was lost before the print service answered: "
                               "your badge may be linked. Tap it again in a moment.")),
}

# A waiting screen while the link is down: the request in flight is kept and asked again after
# the reconnect (its outcome is not known yet), so the panel says it is checking, not failed.
_RECONNECTING = N_("Connection lost: reconnecting to check with the print service…")

_LABELS = {"code": N_("Access code"), "pin": N_("PIN"), "username": N_("Email"),
           "password": N_("Password")}
# A field left empty, by the field's name: whole sentences, since languages place the word
# differently ("Geben Sie Ihre PIN ein").
_ENTER = {"code": N_("Enter your access code"), "pin": N_("Enter your PIN"),
          "username": N_("Enter your email"), "password": N_("Enter your password")}
_SECRET_FIELDS = {"code", "pin", "password"}
_ENTRY_TITLES = {"code": N_("Enter your access code"), "pin": N_("Enter your PIN"),
                 "password": N_("Log in with your email and password"),
                 "associate_code": N_("Badge not recognised: link it with your access code"),
                 "associate_password": N_("Badge not recognised: link it with your email and "
                                          "password")}

# What just happened, over the job list, and why a list is empty.
FLASH_LINKED = N_("Your card is linked: next time, just tap it")
FLASH_JOIN = "; "
EMPTY_UNREACHABLE = N_("Can't reach the print service: your jobs are safe")
COUNTDOWN = N_("Logging out in {seconds} s \u2014 touch to stay")
PAGE_OF = N_("page {done} of {pages}")
PAGE = N_("page {done}")
# Offline mode (device_app/offline/): the copier signs people in from its own list.
OFFLINE_MODE = N_("Offline mode: the print service can't be reached. Your badge or code "
                  "still works for the jobs kept on this copier.")
OFFLINE_MODE_LIST = N_("Offline mode: only the jobs kept on this copier are shown")
# What the copier answering for the print service says instead (its refusals say offline).
OFFLINE_NOTICES: dict[str, tuple[str, str]] = {
    "unknown_card": (N_("Badge not on this copier's offline list"),
                     N_("The print service can't be reached, so this badge can't be checked "
                        "here. Try again when it is back.")),
    "unknown_code": (N_("Code not recognised offline"),
                     N_("Check your access code, or tap your badge. Some people can sign in "
                        "only when the print service is back.")),
    "not_allowed": (N_("Not possible while offline"),
                    N_("This needs the print service. Try again when it is back.")),
}
_THE_PRINTER_SAID_NO = N_("the printer said no more")


def _tr(sm: SessionMachine) -> Translator:
    """The signed-in user's language where the panel has it, else the device's (the cloud's
    policy or ``[ui] language``), else English. A technician's diagnostics speak the device's
    (device_app/session/diagnostics.py): a technician answer carries no user language."""
    return translator(i18n.choose(sm.user_language, sm.policy.language))


def notice_text(notice: Notice, tr: Translator = ENGLISH) -> tuple[str, str]:
    """A notice's title and message."""
    if notice.code == ENGINE_REFUSED:
        engine = EngineState(notice.detail)
        return (tr.gettext("The printer can't print now"),
                tr.gettext(ENGINE_REASONS.get(engine, engine.value)))
    if notice.code not in NOTICES:
        return tr.gettext("Something went wrong"), notice.detail
    title, message = (tr.gettext(text) for text in NOTICES[notice.code])
    if notice.code in ("locked_out", "throttled") and notice.detail \
            and tr.language == i18n.SOURCE:
        # The cloud's own words say until when ("... locked until 14:35"); they are English,
        # so another language keeps its own sentence.
        message = notice.detail[0].upper() + notice.detail[1:] + "."
    return title, message


def flash_text(flash: Flash, tr: Translator = ENGLISH) -> str:
    match flash:
        case Note(text):
            return text
        case Linked():
            return tr.gettext(FLASH_LINKED)
        case Deleted(count):
            return tr.ngettext("{n} deleted", "{n} deleted", count)
        case Printed(printed, failed, first_failure):
            parts = [tr.ngettext("{n} printed", "{n} printed", printed)] \
                if printed or not failed else []
            if failed:
                reason = first_failure or tr.gettext(_THE_PRINTER_SAID_NO)
                parts.append(tr.ngettext("{n} failed: {reason}, it is still held",
                                         "{n} failed: {reason}, they are still held",
                                         failed, reason=reason))
            return FLASH_JOIN.join(parts)
    return ""


def flash_tone(flash: Flash) -> Tone:
    """A failure among what just happened is the error's colour; anything else went well."""
    if isinstance(flash, Printed) and flash.failed:
        return Tone.ERROR
    return Tone.OK if flash is not None else Tone.INFO


def _hours(hours: float) -> str:
    return f"{hours:g}" if hours < 10 else f"{round(hours)}"


def empty_reasons(why: WhyEmpty, unreachable: bool, tr: Translator = ENGLISH
                  ) -> tuple[str, ...]:
    """Why the list holds fewer jobs than the user may expect, a line each."""
    lines = []
    if unreachable:
        lines.append(tr.gettext(EMPTY_UNREACHABLE))
    if why.expired:
        lines.append(tr.ngettext("{n} job expired after {hours} h on hold",
                                 "{n} jobs expired after {hours} h on hold",
                                 why.expired, hours=_hours(why.hold_hours)))
    if why.unlinked:
        lines.append(tr.ngettext(
            "{n} job is waiting from a computer that is not linked: link it in the portal",
            "{n} jobs are waiting from a computer that is not linked: link it in the portal",
            why.unlinked))
    return tuple(lines)


def _progress(item: JobProgress, tr: Translator) -> JobProgress:
    """A printing job's detail line: the engine's page count where it reports one."""
    if item.state != "printing" or item.pages_done is None or item.detail:
        return item
    said = tr.gettext(PAGE_OF, done=item.pages_done, pages=item.pages) if item.pages else \
        tr.gettext(PAGE, done=item.pages_done)
    return replace(item, detail=said)


def entry_error_text(error: str, tr: Translator = ENGLISH) -> str:
    if error.startswith(EMPTY):
        return tr.gettext(_ENTER[error.removeprefix(EMPTY)])
    if error:
        return tr.gettext(NOTICES[error][0])
    return ""


def portal_page(sm: SessionMachine) -> str:
    """The portal's page for releasing to this copier, where a portal is configured."""
    url = sm.policy.portal_url
    if not url or not sm.device_id:
        return ""
    return f"{url.rstrip('/')}/copier/{sm.device_id}"


def present(sm: SessionMachine) -> PanelView:
    p = sm.policy
    tr = _tr(sm)
    _ = tr.gettext
    base = PanelView(screen=Screen.IDLE, device_name=sm.device_name, user_name=sm.user,
                     language=tr.language,
                     can_change=p.release_changes, can_type_code=p.allow_code,
                     can_type_password=p.allow_password,
                     engine_problem="" if sm.engine.can_print else
                     _(ENGINE_REASONS.get(sm.engine, sm.engine.value)),
                     countdown="" if sm.logout_in is None
                     else _(COUNTDOWN, seconds=sm.logout_in))
    reconnecting = _(_RECONNECTING)
    match sm.state:
        case State.IDLE:
            return replace(base, title=_("Tap your badge"), qr_url=portal_page(sm),
                           message=_(OFFLINE_MODE) if sm.link_local else "")
        case State.ENTRY:
            kind = sm.entry.kind if sm.entry else ""
            return replace(base, screen=Screen.ENTRY,
                           title=_(_ENTRY_TITLES[kind]) if kind in _ENTRY_TITLES else "",
                           entry=_entry_view(sm, tr))
        case State.IDENTIFYING:
            return replace(base, screen=Screen.BUSY, title=_("One moment"),
                           message=_("Checking…") if sm.link_up else reconnecting)
        case State.LOADING:
            return replace(base, screen=Screen.BUSY, title=_("Hello, {name}", name=sm.user),
                           message=_("Loading your jobs…"))
        case State.DELETING:
            return replace(base, screen=Screen.BUSY, title=_("Deleting"),
                           message=_("One moment…") if sm.link_up else reconnecting)
        case State.JOBS:
            every = {j.job_id for j in sm.jobs}
            said = flash_text(sm.flash, tr)
            return replace(base, screen=Screen.JOBS, jobs=sm.jobs,
                           total_jobs=sm.total, selected=frozenset(sm.selected),
                           message=said or (_(OFFLINE_MODE_LIST) if sm.link_local else ""),
                           tone=flash_tone(sm.flash),
                           can_load_more=len(sm.jobs) < sm.total,
                           all_selected=bool(every) and sm.selected >= every,
                           empty_reasons=empty_reasons(sm.why_empty,
                                                       sm.unreachable or not sm.link_up, tr))
        case State.OPTIONS:
            n = len(sm.selected)
            return replace(base, screen=Screen.OPTIONS,
                           title=tr.ngettext("Release {n} job with changes",
                                             "Release {n} jobs with changes", n),
                           options=sm.options, selected=frozenset(sm.selected))
        case State.CONFIRM_DELETE:
            n = len(sm.selected)
            return replace(base, screen=Screen.CONFIRM,
                           title=tr.ngettext("Delete {n} job?", "Delete {n} jobs?", n),
                           message=_("Deleted jobs cannot be printed."),
                           selected=frozenset(sm.selected))
        case State.RELEASING:
            rel = sm.release
            ordered = rel is not None and bool(rel.ordered_by)
            return replace(base, screen=Screen.RELEASING,
                           title=_("Printing for {name}", name=rel.ordered_by)
                           if rel is not None and ordered else _("Releasing"),
                           progress=tuple(_progress(p, tr) for p in rel.progress.values())
                           if rel else (),
                           message=_("Sent from the portal") if ordered and sm.link_up
                           else "" if sm.link_up else reconnecting,
                           # Nobody is signed in to walk away from a portal's release.
                           can_walk_away=rel is not None and bool(rel.release_id)
                           and not ordered)
        case State.NOTICE:
            title, message = notice_text(sm.notice, tr)
            if sm.link_local and sm.notice.code in OFFLINE_NOTICES:
                title, message = (_(text) for text in OFFLINE_NOTICES[sm.notice.code])
            # Every notice the machine shows is about something that did not happen.
            return replace(base, screen=Screen.NOTICE, title=title, message=message,
                           tone=Tone.ERROR)
        case State.DIAGNOSTICS:
            # A technician's screen: its rows and words are the diagnostics module's.
            return diagnostics.present(sm, sm.snapshot())
        case State.OFFLINE:
            message = _("Your jobs are safe. Reconnecting by itself…")
            if sm.session_token:
                message += " " + _("Your jobs will show again.")
            return replace(base, screen=Screen.OFFLINE,
                           title=_("Can't reach the print service"), message=message)
    raise AssertionError(sm.state)  # pragma: no cover


def _entry_view(sm: SessionMachine, tr: Translator) -> EntryView | None:
    e = sm.entry
    if e is None:
        return None
    fields = tuple(
        FieldView(name, tr.gettext(_LABELS[name]),
                  "•" * len(value) if name in _SECRET_FIELDS else value,
                  focused=name == e.focus)
        for name, value in e.values.items())
    text = "username" in e.values
    switchable = e.kind in ("code", "password", "associate_code", "associate_password") \
        and sm.policy.allow_code and sm.policy.allow_password
    return EntryView(kind=e.kind, fields=fields, keyboard="text" if text else "digits",
                     error=entry_error_text(e.error, tr), can_switch=switchable)

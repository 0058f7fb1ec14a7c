"""What the panel says: the session machine's state turned into a :class:`PanelView`.

The machine decides and keeps records (a notice's code, a flash's counts, an entry's error
code); every word the user reads is here, so the copy can change without touching a transition,
and the machine never holds text it did not get from the cloud. The presenter reads the machine
and writes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

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
    # A mutating request sent, then no answer even after reconnecting (device_app/link.py):
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
    # The machine's own notices (device_app/session/state.py), not error codes from a wire.
    # The print engine's words for why it cannot print come from protocol.engine.
    DELETE_UNCONFIRMED: ("Not confirmed",
                         "The connection was lost before the print service answered: the jobs "
                         "may have been deleted. Your list shows what is left."),
    ASSOCIATE_UNCONFIRMED: ("Not confirmed",
                            "The connection was lost before the print service answered: your "
                            "badge may be linked. Tap it again in a moment."),
}

# A waiting screen while the link is down: the request in flight is kept and asked again after
# the reconnect (its outcome is not known yet), so the panel says it is checking, not failed.
_RECONNECTING = "Connection lost: reconnecting to check with the print service…"

_LABELS = {"code": "Access code", "pin": "PIN", "username": "Email", "password": "Password"}
_SECRET_FIELDS = {"code", "pin", "password"}
_ENTRY_TITLES = {"code": "Enter your access code", "pin": "Enter your PIN",
                 "password": "Log in with your email and password",
                 "associate_code": "Badge not recognised: link it with your access code",
                 "associate_password": "Badge not recognised: link it with your email and "
                                       "password"}


# What just happened, over the job list, and why a list is empty: plain English with str.format
# placeholders, one place for the translation catalogue.
FLASH_LINKED = "Your card is linked: next time, just tap it"
FLASH_DELETED = "{count} deleted"
FLASH_PRINTED = "{count} printed"
FLASH_FAILED_ONE = "{count} failed: {reason}, it is still held"
FLASH_FAILED_MANY = "{count} failed: {reason}, they are still held"
FLASH_JOIN = "; "
EMPTY_EXPIRED_ONE = "{count} job expired after {hours} h on hold"
EMPTY_EXPIRED_MANY = "{count} jobs expired after {hours} h on hold"
EMPTY_UNLINKED_ONE = ("{count} job is waiting from a computer that is not linked: link it in "
                      "the portal")
EMPTY_UNLINKED_MANY = ("{count} jobs are waiting from a computer that is not linked: link it in "
                       "the portal")
EMPTY_UNREACHABLE = "Can't reach the print service: your jobs are safe"
COUNTDOWN = "Logging out in {seconds} s \u2014 touch to stay"
PAGE_OF = "page {done} of {pages}"
PAGE = "page {done}"


def notice_text(notice: Notice) -> tuple[str, str]:
    """A notice's title and message."""
    if notice.code == ENGINE_REFUSED:
        engine = EngineState(notice.detail)
        return "The printer can't print now", ENGINE_REASONS.get(engine, engine.value)
    title, message = NOTICES.get(notice.code, ("Something went wrong", notice.detail))
    if notice.code in ("locked_out", "throttled") and notice.detail:
        # The cloud's own words say until when ("... locked until 14:35").
        message = notice.detail[0].upper() + notice.detail[1:] + "."
    return title, message


def flash_text(flash: Flash) -> str:
    match flash:
        case Note(text):
            return text
        case Linked():
            return FLASH_LINKED
        case Deleted(count):
            return FLASH_DELETED.format(count=count)
        case Printed(printed, failed, first_failure):
            parts = [FLASH_PRINTED.format(count=printed)] if printed or not failed else []
            if failed:
                said = FLASH_FAILED_ONE if failed == 1 else FLASH_FAILED_MANY
                parts.append(said.format(count=failed,
                                         reason=first_failure or "the printer said no more"))
            return FLASH_JOIN.join(parts)
    return ""


def flash_tone(flash: Flash) -> Tone:
    """A failure among what just happened is the error's colour; anything else went well."""
    if isinstance(flash, Printed) and flash.failed:
        return Tone.ERROR
    return Tone.OK if flash is not None else Tone.INFO


def _hours(hours: float) -> str:
    return f"{hours:g}" if hours < 10 else f"{round(hours)}"


def empty_reasons(why: WhyEmpty, unreachable: bool) -> tuple[str, ...]:
    """Why the list holds fewer jobs than the user may expect, a line each."""
    lines = []
    if unreachable:
        lines.append(EMPTY_UNREACHABLE)
    if why.expired:
        said = EMPTY_EXPIRED_ONE if why.expired == 1 else EMPTY_EXPIRED_MANY
        lines.append(said.format(count=why.expired, hours=_hours(why.hold_hours)))
    if why.unlinked:
        said = EMPTY_UNLINKED_ONE if why.unlinked == 1 else EMPTY_UNLINKED_MANY
        lines.append(said.format(count=why.unlinked))
    return tuple(lines)


def _progress(item: JobProgress) -> JobProgress:
    """A printing job's detail line: the engine's page count where it reports one."""
    if item.state != "printing" or item.pages_done is None or item.detail:
        return item
    said = PAGE_OF.format(done=item.pages_done, pages=item.pages) if item.pages else \
        PAGE.format(done=item.pages_done)
    return replace(item, detail=said)


def entry_error_text(error: str) -> str:
    if error.startswith(EMPTY):
        return f"Enter your {_LABELS[error.removeprefix(EMPTY)].lower()}"
    if error:
        return NOTICES[error][0]
    return ""


def present(sm: SessionMachine) -> PanelView:
    p = sm.policy
    base = PanelView(screen=Screen.IDLE, device_name=sm.device_name, user_name=sm.user,
                     can_change=p.release_changes, can_type_code=p.allow_code,
                     can_type_password=p.allow_password,
                     engine_problem="" if sm.engine.can_print else
                     ENGINE_REASONS.get(sm.engine, sm.engine.value),
                     countdown="" if sm.logout_in is None
                     else COUNTDOWN.format(seconds=sm.logout_in))
    match sm.state:
        case State.IDLE:
            return replace(base, title="Tap your badge")
        case State.ENTRY:
            return replace(base, screen=Screen.ENTRY,
                           title=_ENTRY_TITLES.get(sm.entry.kind if sm.entry else "", ""),
                           entry=_entry_view(sm))
        case State.IDENTIFYING:
            return replace(base, screen=Screen.BUSY, title="One moment",
                           message="Checking…" if sm.link_up else _RECONNECTING)
        case State.LOADING:
            return replace(base, screen=Screen.BUSY, title=f"Hello, {sm.user}",
                           message="Loading your jobs…")
        case State.DELETING:
            return replace(base, screen=Screen.BUSY, title="Deleting",
                           message="One moment…" if sm.link_up else _RECONNECTING)
        case State.JOBS:
            every = {j.job_id for j in sm.jobs}
            return replace(base, screen=Screen.JOBS, jobs=sm.jobs,
                           total_jobs=sm.total, selected=frozenset(sm.selected),
                           message=flash_text(sm.flash), tone=flash_tone(sm.flash),
                           can_load_more=len(sm.jobs) < sm.total,
                           all_selected=bool(every) and sm.selected >= every,
                           empty_reasons=empty_reasons(sm.why_empty,
                                                       sm.unreachable or not sm.link_up))
        case State.OPTIONS:
            n = len(sm.selected)
            return replace(base, screen=Screen.OPTIONS, title=f"Release {n} job"
                           + ("s" if n != 1 else "") + " with changes",
                           options=sm.options, selected=frozenset(sm.selected))
        case State.CONFIRM_DELETE:
            n = len(sm.selected)
            return replace(base, screen=Screen.CONFIRM,
                           title=f"Delete {n} job{'s' if n != 1 else ''}?",
                           message="Deleted jobs cannot be printed.",
                           selected=frozenset(sm.selected))
        case State.RELEASING:
            rel = sm.release
            return replace(base, screen=Screen.RELEASING, title="Releasing",
                           progress=tuple(_progress(p) for p in rel.progress.values())
                           if rel else (),
                           message="" if sm.link_up else _RECONNECTING,
                           can_walk_away=rel is not None and bool(rel.release_id))
        case State.NOTICE:
            title, message = notice_text(sm.notice)
            # Every notice the machine shows is about something that did not happen.
            return replace(base, screen=Screen.NOTICE, title=title, message=message,
                           tone=Tone.ERROR)
        case State.OFFLINE:
            return replace(base, screen=Screen.OFFLINE, title="Can't reach the print service",
                           message="Your jobs are safe. Reconnecting by itself…"
                           + (" Your jobs will show again." if sm.session_token else ""))
    raise AssertionError(sm.state)  # pragma: no cover


def _entry_view(sm: SessionMachine) -> EntryView | None:
    e = sm.entry
    if e is None:
        return None
    fields = tuple(
        FieldView(name, _LABELS[name],
                  "•" * len(value) if name in _SECRET_FIELDS else value,
                  focused=name == e.focus)
        for name, value in e.values.items())
    text = "username" in e.values
    switchable = e.kind in ("code", "password", "associate_code", "associate_password") \
        and sm.policy.allow_code and sm.policy.allow_password
    return EntryView(kind=e.kind, fields=fields, keyboard="text" if text else "digits",
                     error=entry_error_text(e.error), can_switch=switchable)

"""The technician's diagnostics screen as data: a snapshot of the device in, the screen's rows out.

Theory of operation
-------------------
A technician's badge or code (the cloud answers ``identify`` with ``role`` "technician") puts
the session machine in ``DIAGNOSTICS`` (device_app/session/technician.py). What that screen
shows is not the machine's to know: the last badge read and the reader it came from, the
engine's outcomes since start, the link's round-trip times and the applied configuration's
version live in the app (device_app/app.py), which gathers them into a :class:`Snapshot` each
time the panel is drawn. This module is pure: it turns a snapshot into :class:`InfoRow` s, and
those into the :class:`PanelView` (:func:`present`), with every word in English marked for the
catalogue (device_app/i18n) and translated where it is shown.

The last badge is shown as the reader gave it (raw bytes in hex, the reader's id), with every
candidate conversion of those bytes (the steps ``mfd reader infer`` searches, one step each,
and the byte-reversed decimal: readers.numbers.infer), and the conversion the device's pipeline
applies with the number it gives, which is what the device sends to the print service.

Card numbers are masked everywhere else (logs show ``card#`` and a keyed hash). Here they are
shown in clear, on purpose and on this panel only: a technician compares the digits with the
number printed on the card, or with the directory's, to find the pipeline that makes them
agree, and a hash cannot be compared with anything. Nothing here is logged or sent to the
cloud, and the screen is behind a technician's credential. It names no one: the last badge may
be a user's, and is shown as bytes and numbers, never as whose it is.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from device_app.i18n import N_, Translator, translator
from device_app.view import InfoRow, PanelView, Screen
from protocol.engine import EngineState
from readers.numbers.convert import Pipeline, make_step
from readers.numbers.wiegand import FORMATS

if TYPE_CHECKING:
    from device_app.session.machine import SessionMachine

TITLE = N_("Diagnostics")
DONE = N_("Done")
BADGE = N_("Last badge")
NO_BADGE = N_("No badge read since start")
RAW = N_("Raw bytes")
READER = N_("Reader")
PIPELINE = N_("Pipeline")
NO_PIPELINE = N_("none: the number as read")
SENT = N_("Number sent")
BYTES_AS_HEX = N_("Bytes in hex")
TEXT_AS_SENT = N_("Text sent")
#: A conversion of the reading named on the row above it ("Text sent" or "Bytes in hex").
THROUGH = N_("\u2192 {pipeline}")
REFUSED = N_("the pipeline refuses it")
ENGINE = N_("Print engine")
STATE = N_("State")
PRINTED = N_("Printed since start")
FAILED = N_("Failed since start")
LINK = N_("Print service")
LINK_UP = N_("connected")
LINK_DOWN = N_("not connected")
RTT_LAST = N_("Last round trip")
RTT_MEDIAN = N_("Median round trip")
MS = N_("{ms} ms")
MEDIAN_OF = N_("{ms} ms of {count}")
RTT_NONE = N_("no answer timed yet")
CONFIG = N_("Configuration")
VERSION = N_("Version")
VERSION_FILE = N_("{version} (the device's own file)")
UNKNOWN = N_("not known")
#: The same words as the presenter's countdown (one entry in the catalogue).
COUNTDOWN = N_("Logging out in {seconds} s \u2014 touch to stay")
ENGINE_STATES = {
    EngineState.READY: N_("ready"),
    EngineState.PRINTING: N_("printing"),
    EngineState.JAM: N_("paper jam"),
    EngineState.NO_PAPER: N_("out of paper"),
    EngineState.DOOR_OPEN: N_("door open"),
    EngineState.OFFLINE: N_("offline"),
}

#: At most this many candidate conversions: a panel's worth, simplest first.
MAX_CANDIDATES = 8
#: One-step conversions, in the order ``mfd reader infer`` tries them (readers.numbers.infer),
#: and the two-step one most badges need (a UID read least significant byte first).
_STEPS = ("hex2dec", "reverse-bytes|hex2dec", "dec2hex", "reverse-bytes", "reverse-bits",
          "invert", "strip-zeros", "ascii-enc")
_HEX = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True)
class LastBadge:
    """The last card read, as the app saw it (readers.events.CardRead) and through which
    pipeline. ``number`` is what the reader handed on, after the pipeline: what identify sent."""

    raw: bytes = field(repr=False)
    reader_id: str
    number: str = field(repr=False)
    #: The device's pipeline for that reader (readers.numbers.convert syntax); "" for none.
    pipeline: str = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the diagnostics screen shows, gathered by the app when it draws."""

    badge: LastBadge | None = None
    engine: EngineState | None = None
    printed: int = 0
    failed: int = 0
    link_up: bool = False
    #: Round-trip times of the last answered requests, oldest first, in seconds.
    round_trips: tuple[float, ...] = ()
    #: The applied managed configuration's version (0: the device's own file).
    config_version: int | None = None


def readings(raw: bytes) -> tuple[tuple[bool, str], ...]:
    """What a conversion can start from, as (is it text, the reading): for a reader that speaks
    ASCII (a serial frame between STX/ETX or ending in CR LF) first the characters it sent,
    which is what its codec reads the number from; then the raw bytes in hex."""
    hexed = raw.hex().upper()
    text = raw.strip(b"\x02\x03\r\n ")
    said = text.decode("ascii") if text and all(0x21 <= b <= 0x7E for b in text) else ""
    return ((True, said), (False, hexed)) if said and said.upper() != hexed else \
        ((False, hexed),)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One conversion of the last badge: from its bytes (in hex) or its text, through
    ``pipeline`` ("": none), giving ``number``."""

    text: bool
    pipeline: str
    number: str = field(repr=False)


def candidates(raw: bytes, limit: int = MAX_CANDIDATES) -> tuple[Candidate, ...]:
    """Every candidate conversion of ``raw`` that gives a number no simpler one gave, simplest
    first: each reading as it is, then through each step."""
    out: list[Candidate] = []
    seen: set[str] = set()
    for is_text, reading in readings(raw):
        for text, pipeline in _pipelines(reading):
            if len(out) >= limit:
                return tuple(out)
            number = _try(pipeline, reading)
            if number and number not in seen:
                seen.add(number)
                out.append(Candidate(is_text, text, number))
    return tuple(out)


def _pipelines(reading: str) -> Iterable[tuple[str, Pipeline]]:
    yield "", Pipeline()
    for text in _STEPS:
        yield text, Pipeline.parse(text)
    if reading and set(reading) <= _HEX:
        bits = int(reading, 16).bit_length()
        for name, layout in FORMATS.items():
            if bits <= layout.bit_count:
                yield f"wiegand:{name}", Pipeline((make_step("wiegand", name),))


def _try(pipeline: Pipeline, value: str) -> str | None:
    for step in pipeline.steps:
        got = step.try_apply(value)
        if got is None:
            return None
        value = got
    return value


def rows(snap: Snapshot, tr: Translator | None = None) -> tuple[InfoRow, ...]:
    """The screen's rows, a group per part of the device: last badge, engine, link, config."""
    t = _words(tr)
    out: list[InfoRow] = [InfoRow(t(BADGE), heading=True)]
    badge = snap.badge
    if badge is None:
        out.append(InfoRow(t(NO_BADGE)))
    else:
        out += [InfoRow(t(RAW), _spaced(badge.raw.hex().upper())),
                InfoRow(t(READER), badge.reader_id),
                InfoRow(t(PIPELINE), badge.pipeline or t(NO_PIPELINE)),
                InfoRow(t(SENT), badge.number or t(REFUSED), chosen=True)]
        for c in candidates(badge.raw):
            # Simplest first: each reading as it is, then its conversions under it.
            label = t(THROUGH, pipeline=c.pipeline) if c.pipeline else \
                t(TEXT_AS_SENT if c.text else BYTES_AS_HEX)
            out.append(InfoRow(label, c.number, chosen=c.number == badge.number))
    engine = t(ENGINE_STATES[snap.engine]) if snap.engine is not None else t(UNKNOWN)
    out += [InfoRow(t(ENGINE), heading=True), InfoRow(t(STATE), engine),
            InfoRow(t(PRINTED), str(snap.printed)), InfoRow(t(FAILED), str(snap.failed)),
            InfoRow(t(LINK), heading=True),
            InfoRow(t(STATE), t(LINK_UP) if snap.link_up else t(LINK_DOWN)),
            *_round_trips(snap.round_trips, t),
            InfoRow(t(CONFIG), heading=True),
            InfoRow(t(VERSION), t(UNKNOWN) if snap.config_version is None else
                    t(VERSION_FILE, version=0) if snap.config_version == 0 else
                    str(snap.config_version))]
    return tuple(out)


def _words(tr: Translator | None) -> Callable[..., str]:
    if tr is None:
        return lambda message, **values: message.format(**values) if values else message
    return tr.gettext


def _spaced(hexed: str) -> str:
    return " ".join(hexed[i:i + 2] for i in range(0, len(hexed), 2))


def _round_trips(times: Sequence[float], t: Callable[..., str]) -> tuple[InfoRow, ...]:
    if not times:
        return (InfoRow(t(RTT_LAST), t(RTT_NONE)),)
    return (InfoRow(t(RTT_LAST), t(MS, ms=_ms(times[-1]))),
            InfoRow(t(RTT_MEDIAN), t(MEDIAN_OF, ms=_ms(statistics.median(times)),
                                     count=len(times))))


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.1f}" if ms < 10 else f"{ms:.0f}"


def present(sm: SessionMachine, snap: Snapshot) -> PanelView:
    """The DIAGNOSTICS panel for ``snap``, in the device's language: what presenter.py's
    ``present`` returns for State.DIAGNOSTICS (until it delegates here, SessionMachine.view()
    calls this itself)."""
    tr = translator(sm.policy.language)
    countdown = "" if sm.logout_in is None else tr.gettext(COUNTDOWN, seconds=sm.logout_in)
    return PanelView(screen=Screen.DIAGNOSTICS, title=tr.gettext(TITLE),
                     device_name=sm.device_name, language=tr.language, rows=rows(snap, tr),
                     countdown=countdown)

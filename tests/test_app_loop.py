"""The device app's loop (device_app/app.py) with a scripted link and a fake clock: every effect
of every step reaches the link, and what the loop keeps stays bounded."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
from collections.abc import Iterator

import pytest
from fakes import FakeClock, ScriptedLink
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_app.app import ENGINE_POLL_S, TRANSCRIPT_LINES, DeviceApp
from device_app.session import CardPresented, Policy, State
from device_app.view import Action
from firmware_stubs.mfd_controller import MfdControllerStub
from protocol import messages as m
from protocol.engine import EngineState
from protocol.errors import ProtocolError, RemoteError

JOB = m.JobSummary(job_id="j1", name="Report", pages=1, color=False, duplex=False, copies=1,
                   size=10, submitted_at=1.0)


class Loop:
    def __init__(self, policy: Policy) -> None:
        self.link = ScriptedLink()
        self.clock = FakeClock()
        self.engine = MfdControllerStub()
        ids = itertools.count(1)
        self.app = DeviceApp(self.link, self.engine, policy=policy, clock=self.clock,
                             new_id=lambda: f"req-{next(ids)}").start()

    def drain(self) -> None:
        while not self.app.events.empty():
            self.app.step(0)

    def answer(self, kind: type[m.Request], outcome: m.Result | RemoteError) -> None:
        [item] = [i for i in self.link.outstanding if isinstance(i.request, kind)]
        self.link.answer(item, outcome)
        self.drain()

    def log_in(self) -> None:
        self.app.events.put(CardPresented("111"))
        self.drain()
        self.answer(m.Identify, m.IdentifyResult("tok-alice", "u_alice", "Alice", 300))
        self.answer(m.ListJobs, m.JobList((JOB,), 1))
        assert self.app.machine.state is State.JOBS and self.app.view().user_name == "Alice"

    def close(self) -> None:
        self.app.stop()
        self.engine.close()


@pytest.fixture
def loop() -> Iterator[Loop]:
    lp = Loop(Policy(notice_timeout=6, idle_timeout=60))
    yield lp
    lp.close()


def test_a_dismiss_in_the_step_where_the_notice_times_out_still_loads_the_jobs(
        loop: Loop) -> None:
    """Defect 1 of issue 8: the catch-up tick's jobs.list was dropped; LOADING forever."""
    loop.log_in()
    loop.app.tap(Action.RELEASE_ALL)
    loop.drain()
    loop.answer(m.Release, RemoteError("busy", "the print service is busy", retry_after=1))
    assert loop.app.machine.state is State.NOTICE
    loop.clock.now += 6  # the notice's time is up, and no tick has run yet ...
    loop.app.tap(Action.DISMISS)  # ... when the user taps Dismiss
    loop.drain()
    assert loop.app.machine.state is State.LOADING
    [listing] = [i.request for i in loop.link.outstanding if isinstance(i.request, m.ListJobs)]
    assert listing.session == "tok-alice"
    loop.answer(m.ListJobs, m.JobList((), 0))
    assert loop.app.machine.state is State.JOBS


def test_the_idle_timeout_logout_is_sent_when_a_tap_comes_in_the_same_step(loop: Loop) -> None:
    """Defect 1 of issue 8: the logout of the catch-up tick was dropped; the session lived on."""
    loop.log_in()
    loop.clock.now += 61
    loop.app.tap(Action.SELECT, "j1")
    loop.drain()
    assert loop.app.machine.state is State.IDLE and loop.app.machine.session_token is None
    [logout] = [i.request for i in loop.link.outstanding if isinstance(i.request, m.Logout)]
    assert logout.session == "tok-alice"


def test_the_transcript_keeps_only_the_newest_lines(loop: Loop) -> None:
    for _ in range(TRANSCRIPT_LINES):  # two state changes each
        loop.app.tap(Action.ENTER_CODE)
        loop.app.tap(Action.CANCEL)
        loop.drain()
    assert len(loop.app.transcript) == TRANSCRIPT_LINES
    assert list(loop.app.transcript)[-2:] == ["idle -> entry on Tapped",
                                              "entry -> idle on Tapped"]


def test_a_failing_cloud_command_neither_loses_the_event_nor_stops_the_loop(loop: Loop) -> None:
    # A config push whose saving fails (a full disk) runs on the loop between two events; the
    # badge taken off the queue in that same step must still log its holder in.
    def broken(payload: bytes) -> None:
        raise OSError(28, "No space left on device")

    loop.app.on_command = broken
    loop.app.command(b'{"version": 2}')
    loop.app.events.put(CardPresented("111"))
    loop.app.step(0)
    assert loop.app.machine.state is State.IDENTIFYING
    [item] = [i for i in loop.link.outstanding if isinstance(i.request, m.Identify)]
    assert item.request.value == "111"


# ------------------------------------------------------------------ the cloud's notices

_hostile = (st.text(alphabet=st.characters(blacklist_categories=()), max_size=20)
            | st.integers() | st.integers(min_value=2**63, max_value=2**80)
            | st.floats(allow_nan=True, allow_infinity=True) | st.none() | st.booleans())


@st.composite
def _notices(draw: st.DrawFn) -> bytes:
    """What may land on the notify topic: any bytes, or JSON with any version, type and
    fields (any Unicode, any number, NaN and infinities as Python writes them)."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=64))
    obj: dict[str, object] = {
        "v": draw(st.just(1) | _hostile),
        "type": draw(st.sampled_from(["jobs.changed", "config.ack", "status"]) | _hostile)}
    obj.update(draw(st.dictionaries(st.text(max_size=8), _hostile, max_size=3)))
    raw = json.dumps(obj, ensure_ascii=draw(st.booleans()))
    return raw.encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def signed_in() -> Iterator[Loop]:
    lp = Loop(Policy(notice_timeout=6, idle_timeout=600))
    lp.log_in()
    yield lp
    lp.close()


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_notices())
def test_any_notice_is_a_re_list_or_dropped_with_a_log_line_and_loses_nothing(
        signed_in: Loop, payload: bytes) -> None:
    app = signed_in.app
    jobs = app.view().jobs
    try:
        m.decode_notification(payload)
        good = True
    except ProtocolError:
        good = False
    with _log_lines() as lines:
        app.notified(payload)
    assert app.events.qsize() == (1 if good else 0)
    assert good or any("malformed notice" in line for line in lines)
    signed_in.drain()
    if good:  # the re-list goes out; the cloud answers with the same list
        signed_in.answer(m.ListJobs, m.JobList(jobs, len(jobs)))
    assert app.machine.state is State.JOBS and app.view().jobs == jobs
    assert app.machine.session_token == "tok-alice" and not signed_in.link.outstanding


@contextlib.contextmanager
def _log_lines() -> Iterator[list[str]]:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Keep(logging.WARNING)
    logger = logging.getLogger("device_app.app")
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


def test_a_release_tapped_just_after_the_printer_came_back_is_not_refused(loop: Loop) -> None:
    """The panel hears from the engine every ENGINE_POLL_S; a Release tapped within that
    time of the printer coming back (a door closed, its first answer after start-up) goes to
    the cloud, not to a "printer offline" notice. One tapped while it is still down is
    refused as before, the jobs left held."""
    loop.log_in()
    loop.engine.inject(EngineState.DOOR_OPEN)
    loop.clock.now += ENGINE_POLL_S
    loop.app.step(0)  # the panel hears the door is open
    assert loop.app.snapshot().engine is EngineState.DOOR_OPEN
    loop.app.tap(Action.SELECT, "j1")
    loop.app.tap(Action.RELEASE)
    loop.drain()
    assert loop.app.machine.state is State.NOTICE  # still open: refused, nothing sent
    assert not [i for i in loop.link.outstanding if isinstance(i.request, m.Release)]
    loop.app.tap(Action.DISMISS)
    loop.drain()
    assert loop.app.machine.state is State.JOBS
    assert loop.app.machine.selected == {"j1"}  # the notice kept the selection
    loop.engine.inject(EngineState.READY)  # closed again, and no poll since
    loop.app.tap(Action.RELEASE)
    loop.drain()
    assert loop.app.machine.state is State.RELEASING
    [release] = [i.request for i in loop.link.outstanding if isinstance(i.request, m.Release)]
    assert release.job_ids == ("j1",)

"""A badge lookup in one statement on PostgreSQL (cloud/storage/postgres.py, ``card_sign_in``)
against the same lookup in steps on SQLite (cloud/storage/sign_in.py): random taps of known,
unknown and technicians' badges on two copiers of one org, with and without a PIN, as time
passes, under budgets small enough to run out. Every answer a copier would show (who, or which
refusal and for how long) and every audit row must be the same on both; the run must reach a
sign-in, an unknown badge, a technician, a wrong PIN, a device throttle, an org throttle, a
known badges' flood throttled and an unknown-badge audit row, or it proved little. Seeded
(derandomize): the same representative 12 runs of 40 steps every time."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from clocks import Clock
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from pg import ScratchDatabase

from cloud.admin import add_technician
from cloud.demo import DEMO_USERS, seed_demo
from cloud.hashing import token_hash
from cloud.service import CloudService
from cloud.storage.factory import open_store
from cloud.storage.sql import SqlStore
from cloud.throttle import ThrottlePolicy, Throttles
from protocol import messages as m

DEVICES = ("copier-1", "copier-2")
TECH_BADGE = "7700000001"
UNKNOWN = ("0000000001", "0000000002", "0000000003")
KNOWN = tuple(u.badge for u in DEMO_USERS)
# Small budgets, so a few taps run each out: unknown badges per device and per org, sign-ins by
# known badges per device.
SMALL = Throttles(device=ThrottlePolicy(burst=2, interval=5.0, duration=60.0),
                  org=ThrottlePolicy(burst=3, interval=10.0, duration=90.0),
                  login=ThrottlePolicy(burst=3, interval=15.0, duration=60.0))

_pg: dict[str, ScratchDatabase] = {}
REACHED: Counter[str] = Counter()


def _world(url: str, clock: Clock) -> tuple[SqlStore, CloudService, dict[str, str]]:
    """A store, its cloud, and its random ids by name (the two stores' ids differ)."""
    store = open_store(url)
    seed_demo(store, now=clock.now, devices=DEVICES, jobs=False)
    tech = add_technician(store, "org_demo", "Tess", badge=TECH_BADGE).technician
    names = {f"technician:{tech.id}": "technician:Tess"}
    for u in DEMO_USERS:
        user = store.user_by_email(u.email)
        assert user is not None
        names[f"user:{user.id}"] = f"user:{u.email}"
    return store, CloudService(store, clock=clock, throttles=SMALL), names


def _audit(store: SqlStore, names: dict[str, str]) -> Counter[tuple[Any, ...]]:
    """The audit rows badges wrote (not the seed's), with names for the random ids; within one
    request the order may differ (one statement writes them), so a multiset."""
    return Counter((at, actor, action, names.get(subject, subject), detail)
                   for at, actor, action, subject, detail in store.audit_log(1000)
                   if actor.startswith("device:") or action in ("throttle", "lockout"))


def _shown(answer: bytes) -> tuple[Any, ...]:
    """What the copier shows: who signed in (not the session, a random token), or the refusal
    with its message (which names the time a throttle ends) and its wait."""
    try:
        result = m.decode_response(answer, "identify")
    except Exception as exc:  # a refusal, as the device decodes it
        return ("refused", getattr(exc, "code", "?"), str(exc),
                getattr(exc, "retry_after", None))
    assert isinstance(result, m.IdentifyResult)
    return ("signed in", result.display_name, result.role, result.expires_in)


def _session(answer: bytes) -> str:
    result = m.decode_response(answer, "identify")
    assert isinstance(result, m.IdentifyResult)
    return result.session


def _listed(answer: bytes) -> tuple[Any, ...]:
    try:
        result = m.decode_response(answer, "jobs.list")
    except Exception as exc:  # a refusal, as the device decodes it
        return (getattr(exc, "code", "?"), str(exc))
    assert isinstance(result, m.JobList)
    return ("listed", result.total, result.offset)


class Taps(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock(1_800_000_000.0)  # the same in every run: a failure replays
        self.sqlite, self.steps, self.sqlite_names = _world("sqlite:///:memory:", self.clock)
        self.pg, self.fused, self.pg_names = _world(_pg["db"].schema_url(), self.clock)
        #: (SQLite's token, PostgreSQL's) of each user signed in by the same tap.
        self.sessions: list[tuple[str, str]] = []

    def teardown(self) -> None:
        self.sqlite.close()
        self.pg.close()

    @rule(device=st.sampled_from(DEVICES), badge=st.sampled_from((*UNKNOWN, TECH_BADGE)),
          pin=st.sampled_from([None, None, None, "wrong"]))
    def stranger(self, device: str, badge: str, pin: str | None) -> None:
        self.tap(device, badge, pin)

    # Known badges as often as all others: a flood of sign-ins must run out its budget too.
    @rule(device=st.sampled_from(DEVICES), badge=st.sampled_from(KNOWN),
          pin=st.sampled_from([None, None, None, "right", "wrong"]))
    def tap(self, device: str, badge: str, pin: str | None) -> None:
        if pin is not None:
            owner = next((u for u in DEMO_USERS if u.badge == badge), None)
            pin = owner.access_code if owner is not None and pin == "right" else "918273"
        request = m.encode(m.Identify("card", badge, pin=pin))
        steps_answer = self.steps.handle(device, request)
        fused_answer = self.fused.handle(device, request)
        steps, fused = _shown(steps_answer), _shown(fused_answer)
        assert fused == steps
        if steps[0] == "signed in" and steps[2] == m.ROLE_USER:
            self.sessions.append((_session(steps_answer), _session(fused_answer)))
        REACHED[str(steps[1] if steps[0] == "refused" else steps[2])] += 1

    @rule(device=st.sampled_from(DEVICES), pick=st.integers(0, 30), page=st.booleans())
    def list_jobs(self, device: str, pick: int, page: bool) -> None:
        """A session used (on its device or another, fresh or expired or ended): the same
        answer from both."""
        if not self.sessions:
            return
        pair = self.sessions[pick % len(self.sessions)]
        answers = [_listed(service.handle(device, m.encode(m.ListJobs(token, offset=0 if page
                                                                       else 10))))
                   for service, token in zip((self.steps, self.fused), pair, strict=True)]
        assert answers[1] == answers[0]
        REACHED["list " + str(answers[0][0])] += 1
        if answers[0][0] == "invalid_session":
            # Refused, it stays refused: a refusal must not have moved the expiry.
            again = _listed(self.fused.handle(device, m.encode(m.ListJobs(pair[1]))))
            assert again[0] == "invalid_session"
            session = self.sqlite.session(token_hash(pair[0]))
            if session is not None and not session.ended and session.device_id == device:
                REACHED["list expired"] += 1

    @rule(pick=st.integers(0, 30))
    def log_out(self, pick: int) -> None:
        if not self.sessions:
            return
        pair = self.sessions[pick % len(self.sessions)]
        rid = f"out-{pick}-{self.clock.now}"
        for service, token in zip((self.steps, self.fused), pair, strict=True):
            service.handle(DEVICES[0], m.encode(m.Logout(request_id=rid, session=token)))

    @rule(seconds=st.sampled_from([1.0, 5.0, 20.0, 61.0, 200.0, 301.0]))
    def wait(self, seconds: float) -> None:
        self.clock.now += seconds

    @invariant()
    def same_audit(self) -> None:
        steps = _audit(self.sqlite, self.sqlite_names)
        assert _audit(self.pg, self.pg_names) == steps
        for _at, _actor, action, subject, detail in steps:
            if action == "session.wrong_device":
                REACHED[action] += 1
            elif action == "throttle":
                why = "sign-ins" if "sign-ins" in detail else "unknown"
                REACHED[f"throttle {subject.split(':')[0]} {why}"] += 1
            elif action == "identify.unknown_card":
                REACHED[action] += 1


@pytest.fixture
def pg(pg_database: ScratchDatabase) -> ScratchDatabase:
    _pg["db"] = pg_database
    return pg_database


def test_a_badge_is_answered_alike_in_one_statement_and_in_steps(pg: ScratchDatabase) -> None:
    REACHED.clear()
    case = Taps.TestCase
    case.settings = settings(max_examples=12, stateful_step_count=40, deadline=None,
                             derandomize=True,
                             # No shrinking: each replay is PostgreSQL work, and a failing run of
                             # 40 steps reads well enough as it is.
                             phases=[Phase.explicit, Phase.reuse, Phase.generate],
                             suppress_health_check=[HealthCheck.too_slow,
                                                    HealthCheck.function_scoped_fixture])
    case().runTest()
    for state in ("list listed", "list invalid_session", "list expired", "list wrong_device",
                  "user", "technician", "unknown_card", "throttled", "wrong_pin",
                  "identify.unknown_card", "throttle device unknown", "throttle org unknown",
                  "throttle device sign-ins"):
        assert REACHED[state], f"never reached {state}: {dict(REACHED)}"

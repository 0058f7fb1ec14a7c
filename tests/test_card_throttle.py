"""Card-number enumeration (issue 8, defect 6): unknown badges are throttled per device and per
org, a throttled device's every badge lookup is refused alike, retry_after is true, the audit log
stays bounded, and the administrator sees and lifts throttles. On SQLite and PostgreSQL, through
CloudService and its real store; the cloud's clock is a test clock, so time passes without
sleeping."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clocks import Clock

from cloud import throttle
from cloud.demo import DEMO_USERS, seed_demo
from cloud.directory import add_card
from cloud.service import CloudService
from cloud.storage.factory import open_store
from cloud.storage.sql import SqlStore
from cloud.storage.sqlite import SqliteStore
from protocol import messages as m
from protocol.errors import RemoteError, StoreError

NOW = 1_800_000_000.0
ALICE = DEMO_USERS[0].badge
BURST = throttle.DEVICE_POLICY.burst


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    s = open_store(store_url)
    seed_demo(s, now=NOW, jobs=False)
    # Another org with its own copier and user, to show throttles stay where they belong.
    with s.transaction():
        other = s.create_org("Other Org", org_id="org_other")
        s.add_user(other, "olga@other.test", "Olga")
        s.add_device("other-1", other, "Other 1")
    add_card(s, "olga@other.test", "0000000777")
    yield s
    s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def service(store: SqlStore, clock: Clock) -> CloudService:
    return CloudService(store, clock=clock)


def identify(service: CloudService, device: str, card: str) -> str:
    """The outcome of a badge: "ok:<user_id>" or the error code (retry_after kept apart)."""
    return outcome(service, device, card)[0]


def outcome(service: CloudService, device: str, card: str) -> tuple[str, int | None, str]:
    try:
        r = m.decode_response(service.handle(device, m.encode(m.Identify("card", card))),
                              "identify")
    except RemoteError as exc:
        return exc.code, exc.retry_after, exc.message
    assert isinstance(r, m.IdentifyResult)
    return f"ok:{r.user_id}", None, ""


def unknown(i: int) -> str:
    return f"9{i:09d}"


def audit_rows(store: SqlStore, action: str) -> list[tuple[float, str, str, str, str]]:
    return [a for a in store.audit_log(100_000) if a[2] == action]


def test_a_burst_of_unknown_badges_throttles_the_device_and_then_known_badges_alike(
        service: CloudService, store: SqlStore, clock: Clock) -> None:
    alice_id = store.user_by_email(DEMO_USERS[0].email).id  # type: ignore[union-attr]
    assert identify(service, "copier-1", ALICE) == f"ok:{alice_id}"
    answers = [identify(service, "copier-1", unknown(i)) for i in range(BURST + 1)]
    assert answers == ["unknown_card"] * BURST + ["throttled"]
    # Now every badge from copier-1 is refused the same way, whether it is a card or not.
    known = outcome(service, "copier-1", ALICE)
    stranger = outcome(service, "copier-1", unknown(999))
    assert known[0] == stranger[0] == "throttled"
    assert known[1] == stranger[1] == int(throttle.DEVICE_POLICY.duration)
    assert known[2] == stranger[2] and "paused until" in known[2]
    # Self-association is a badge lookup too.
    assoc = m.Associate("a-1", unknown(5), "code", DEMO_USERS[1].access_code)
    with pytest.raises(RemoteError) as info:
        m.decode_response(service.handle("copier-1", m.encode(assoc)), assoc.TYPE)
    assert info.value.code == "throttled"
    # Another copier of the same org and a copier of another org are not affected.
    assert identify(service, "copier-2", ALICE) == f"ok:{alice_id}"
    olga = store.user_by_email("olga@other.test")
    assert olga is not None
    assert identify(service, "other-1", "0000000777") == f"ok:{olga.id}"
    # An access code still works at the throttled copier: only badge lookups are throttled.
    r = m.decode_response(service.handle(
        "copier-1", m.encode(m.Identify("code", DEMO_USERS[0].access_code))), "identify")
    assert isinstance(r, m.IdentifyResult) and r.user_id == alice_id
    # The administrator sees it, with the lookups it refused.
    (t,) = throttle.active(store, clock.now)
    assert (t.scope, t.subject, t.until) == ("device", "copier-1",
                                             NOW + throttle.DEVICE_POLICY.duration)
    assert t.refused == 3  # Alice's badge, the stranger's, the association
    assert len(audit_rows(store, "throttle")) == 1


def test_retry_after_is_true(service: CloudService, clock: Clock) -> None:
    for i in range(BURST + 1):
        identify(service, "copier-1", unknown(i))
    code, retry_after, _ = outcome(service, "copier-1", ALICE)
    assert code == "throttled" and retry_after is not None
    clock.now += retry_after - 1
    code, left, _ = outcome(service, "copier-1", ALICE)
    assert code == "throttled" and left == 1
    clock.now += 1
    assert identify(service, "copier-1", ALICE).startswith("ok:")
    # And the bucket is full again: a whole burst of unknown badges before the next throttle.
    answers = [identify(service, "copier-1", unknown(i)) for i in range(BURST + 1)]
    assert answers == ["unknown_card"] * BURST + ["throttled"]


def test_a_real_queue_is_never_throttled(service: CloudService, store: SqlStore,
                                         clock: Clock) -> None:
    """A busy morning: four wrong badges in a row (someone trying every card in their wallet),
    then people every 10 s for two hours, one in three with a badge the cloud does not know."""
    for i in range(4):
        assert identify(service, "copier-1", unknown(i)) == "unknown_card"
        clock.now += 2
    for i in range(720):
        clock.now += 10
        card = unknown(100 + i) if i % 3 == 0 else DEMO_USERS[i % 3].badge
        assert identify(service, "copier-1", card) in ("unknown_card", *(
            f"ok:{u.id}" for u in store.users("org_demo"))), i
    assert throttle.active(store, clock.now) == []
    assert audit_rows(store, "throttle") == []


def test_a_flood_of_2000_unknown_badges_leaves_a_bounded_audit_log(
        service: CloudService, store: SqlStore, clock: Clock) -> None:
    before = len(store.audit_log(100_000))
    outcomes: dict[str, int] = {}
    for i in range(2000):
        code = identify(service, "copier-1", unknown(i))
        outcomes[code] = outcomes.get(code, 0) + 1
        clock.now += 0.001
    assert outcomes == {"unknown_card": BURST, "throttled": 2000 - BURST}
    clock.now += 120
    service.housekeeping()  # writes the tail of the burst, as one row
    rows = store.audit_log(100_000)[: len(store.audit_log(100_000)) - before]
    assert len(rows) == 3, rows  # the first unknown badge, the throttle, the tail
    unknown_rows = [r for r in rows if r[2] == "identify.unknown_card"]
    # Every badge that was looked up and not found is counted, none twice.
    assert sum(int(r[4].split()[0]) for r in unknown_rows) == BURST + 1
    assert [r[3] for r in rows if r[2] == "throttle"] == ["device:copier-1"]
    # Housekeeping again writes nothing more.
    service.housekeeping()
    assert len(store.audit_log(100_000)) == before + len(rows)


def test_the_administrator_lifts_a_throttle(service: CloudService, store: SqlStore,
                                            clock: Clock) -> None:
    for i in range(BURST + 1):
        identify(service, "copier-1", unknown(i))
    assert identify(service, "copier-1", ALICE) == "throttled"
    lifted = throttle.lift(store, "device", "copier-1", clock.now)
    assert lifted.refused == 1
    assert identify(service, "copier-1", ALICE).startswith("ok:")
    assert throttle.active(store, clock.now) == []
    (row,) = audit_rows(store, "throttle.lifted")
    assert row[1:4] == ("admin", "throttle.lifted", "device:copier-1")
    with pytest.raises(StoreError) as info:
        throttle.lift(store, "device", "copier-1", clock.now)
    assert "not throttled" in info.value.message
    with pytest.raises(StoreError):
        throttle.lift(store, "device", "no-such-copier", clock.now)


def test_many_devices_of_one_org_are_throttled_together(service: CloudService,
                                                        store: SqlStore, clock: Clock) -> None:
    """Each copier stays within its own budget; together they exceed the org's."""
    per_device = BURST - 1
    devices = [f"fleet-{i}" for i in range(throttle.ORG_POLICY.burst // per_device + 1)]
    with store.transaction():
        for d in devices:
            store.add_device(d, "org_demo", d)
    answers = [identify(service, d, unknown(100 * n + i)) for n, d in enumerate(devices)
               for i in range(per_device)]
    assert answers.count("unknown_card") == throttle.ORG_POLICY.burst
    assert answers[throttle.ORG_POLICY.burst] == "throttled"
    # Every copier of the org, known badges too; another org's copier is not.
    assert identify(service, "copier-2", ALICE) == "throttled"
    assert identify(service, "other-1", "0000000777").startswith("ok:")
    assert [(t.scope, t.subject) for t in throttle.active(store, clock.now)] == [
        ("org", "org_demo")]
    throttle.lift(store, "org", "org_demo", clock.now)
    assert identify(service, "copier-2", ALICE).startswith("ok:")


def test_workers_sharing_a_store_spend_one_budget(store_url: str, store: SqlStore,
                                                  clock: Clock) -> None:
    """Four workers, each with its own connection, race unknown badges from one copier at one
    instant: exactly the burst is answered unknown_card, and the throttle is audited once."""
    results: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def worker(w: int) -> None:
        own = open_store(store_url)
        service = CloudService(own, clock=clock)
        start.wait()
        try:
            for i in range(15):
                code = identify(service, "copier-1", unknown(100 * w + i))
                with lock:
                    results.append(code)
        finally:
            own.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 60
    assert results.count("unknown_card") == BURST
    assert results.count("throttled") == 60 - BURST
    assert len(audit_rows(store, "throttle")) == 1


def test_policy_keeps_retry_after_honest() -> None:
    with pytest.raises(ValueError):
        throttle.ThrottlePolicy(burst=10, interval=60.0, duration=300.0)
    assert throttle.DEVICE_POLICY.duration >= (throttle.DEVICE_POLICY.burst
                                               * throttle.DEVICE_POLICY.interval)


def test_the_clock_is_wall_time_by_default(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "c.db")
    seed_demo(s, now=time.time(), jobs=False)
    service = CloudService(s)
    for i in range(BURST + 1):
        identify(service, "copier-1", unknown(i))
    (t,) = throttle.active(s)
    assert abs(t.until - time.time() - throttle.DEVICE_POLICY.duration) < 60


def test_mfd_admin_lists_and_lifts_throttles(store_url: str, store: SqlStore) -> None:
    """The administrator's commands, as a user runs them (a subprocess on the same store)."""
    import subprocess
    import sys

    def mfd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mfdkit", "admin", "--store", store_url,
                               *args], capture_output=True, text=True, timeout=60, check=False)

    service = CloudService(store)  # wall clock: the command reads the time too
    for i in range(BURST + 1):
        identify(service, "copier-1", unknown(i))
    identify(service, "copier-1", ALICE)
    listed = mfd("throttles")
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    assert line.startswith("device\tcopier-1\tuntil ") and line.endswith("1 lookup(s) refused")
    lifted = mfd("unthrottle", "--device", "copier-1")
    assert lifted.returncode == 0, lifted.stderr
    assert "copier-1: badge sign-in works again" in lifted.stdout
    assert identify(service, "copier-1", ALICE).startswith("ok:")
    assert mfd("throttles").stdout == ""
    again = mfd("unthrottle", "--device", "copier-1")
    assert again.returncode != 0 and "not throttled" in again.stderr
    assert mfd("unthrottle", "--org", "org_nope").returncode != 0


def test_someone_else_s_badge_in_self_association_counts_as_an_unknown_badge(
        service: CloudService, store: SqlStore) -> None:
    """With one valid access code, "this badge belongs to someone else" would tell badges from
    non-badges as well as unknown_card does: it spends the same budget."""
    answers = []
    for i in range(BURST + 1):
        req = m.Associate(f"a-{i}", DEMO_USERS[1].badge, "code", DEMO_USERS[0].access_code)
        try:
            m.decode_response(service.handle("copier-1", m.encode(req)), req.TYPE)
            answers.append("ok")
        except RemoteError as exc:
            answers.append(exc.code)
    assert answers == ["not_allowed"] * BURST + ["throttled"]
    assert identify(service, "copier-1", ALICE) == "throttled"


def test_a_known_badge_replayed_at_machine_speed_is_throttled_too(
        service: CloudService, store: SqlStore, clock: Clock) -> None:
    """A stolen device credential replaying one known badge would write a session and an audit
    row per request (measured before: 2,000 in 0.22 s). Past a sign-in budget no queue at a
    copier reaches, the device is throttled like an enumerating one, and lifting it works."""
    policy = throttle.LOGIN_POLICY
    alice_id = store.user_by_email(DEMO_USERS[0].email).id  # type: ignore[union-attr]
    answers = [identify(service, "copier-1", ALICE) for _ in range(policy.burst + 50)]
    assert answers[:policy.burst] == [f"ok:{alice_id}"] * policy.burst
    assert set(answers[policy.burst:]) == {"throttled"}
    assert len(audit_rows(store, "login")) == policy.burst
    (row,) = audit_rows(store, "throttle")
    assert row[3] == "device:copier-1" and "badge sign-ins" in row[4]
    code, retry_after, message = outcome(service, "copier-1", ALICE)
    assert code == "throttled" and retry_after is not None and 0 < retry_after <= 300
    assert "paused until" in message
    # Another copier is not affected; a lift lets the same badge in again at once.
    assert identify(service, "copier-2", ALICE) == f"ok:{alice_id}"
    throttle.lift(store, "device", "copier-1", clock.now)
    assert identify(service, "copier-1", ALICE) == f"ok:{alice_id}"
    # At a person every 2 s for an hour (faster than any real queue), nobody is refused.
    clock.now += policy.duration
    for _ in range(1800):
        clock.now += policy.interval
        assert identify(service, "copier-2", ALICE) == f"ok:{alice_id}"

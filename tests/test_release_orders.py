"""Release to a chosen copier at the store (cloud/release_orders.py), on SQLite and PostgreSQL:
the copiers a user may choose, every refusal with its code and nothing written, the outbox the
workers push from (pushed, pushed again, taken, lapsed), and a stateful run of portal orders,
panel releases, deletions, duplicate reports and lapses that checks no job is ever in two
releases nor printed twice."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
from clocks import Clock
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from cloud import release_orders as ro
from cloud.demo import DEMO_USERS, seed_demo
from cloud.release_orders import copiers_for, release_to_device
from cloud.service import RELEASE_LEASE, CloudService, record_status
from cloud.storage.factory import open_store
from cloud.storage.sql import SqlStore
from protocol import messages as m
from protocol.errors import StoreError


@pytest.fixture
def cloud(store_url: str) -> Iterator[tuple[CloudService, SqlStore, Clock]]:
    clock = Clock(time.time())
    store = open_store(store_url)
    seed_demo(store, now=clock.now)
    other = store.create_org("Other Org", org_id="org_other")
    store.add_device("copier-9", other, "Elsewhere")
    yield CloudService(store, clock=clock), store, clock
    store.close()


def _uid(store: SqlStore, n: int) -> str:
    user = store.user_by_email(DEMO_USERS[n].email)
    assert user is not None
    return user.id


def _held(store: SqlStore, user_id: str) -> list[str]:
    return sorted(j.id for j in store.all_jobs("HELD") if j.owner_id == user_id)


def _online(store: SqlStore, device_id: str, epoch: int, now: float) -> None:
    assert record_status(store, device_id, m.encode(m.DeviceStatus("online", epoch)), now)


def _pending(store: SqlStore, now: float) -> list[str]:
    return [r for r, _d, _p in ro.pending_pushes(store, now)]


def _pending_all(store: SqlStore, now: float) -> list[str]:
    return [r for r, _d, _p in ro.pending_pushes(store, now, everything=True)]


def test_copiers_are_the_users_org_devices_with_whether_they_are_online(cloud: tuple) -> None:
    _service, store, clock = cloud
    _online(store, "copier-2", 1, clock.now)
    copiers = copiers_for(store, _uid(store, 0))
    assert [(c.device_id, c.online) for c in copiers] == [("copier-1", False),
                                                          ("copier-2", True)]
    assert copiers[1].last_seen == pytest.approx(clock.now)
    assert copiers_for(store, "u_nobody") == []


def test_every_refusal_has_its_code_and_writes_nothing(cloud: tuple) -> None:
    service, store, clock = cloud
    alice, bob = _uid(store, 0), _uid(store, 1)
    mine, theirs = _held(store, alice), _held(store, bob)
    printed = mine.pop()
    release_to_device(store, alice, [printed], "copier-1", clock.now)
    before = (store.query_all("SELECT * FROM release_orders"), store.audit_log(5),
              [(j.id, j.state) for j in store.all_jobs()])
    cases = [
        ((alice, [theirs[0]], "copier-1"), "job_not_found"),  # not hers: like a missing one
        ((alice, ["j_nonesuch"], "copier-1"), "job_not_found"),
        ((alice, [printed], "copier-1"), "job_not_held"),  # releasing already
        ((alice, [mine[0]], "copier-9"), "unknown_device"),  # another org's copier
        ((alice, [mine[0]], "copier-404"), "unknown_device"),
        ((alice, [], "copier-1"), "invalid_field"),
        ((alice, [mine[0], mine[0]], "copier-1"), "invalid_field"),
        (("u_nobody", [mine[0]], "copier-1"), "not_found"),
    ]
    for (user, jobs, device), code in cases:
        with pytest.raises(StoreError) as caught:
            release_to_device(store, user, jobs, device, clock.now)
        assert caught.value.code == code, (jobs, device)
        assert caught.value.message and "Traceback" not in caught.value.message
    # The other org's copier is refused in the same words as one that does not exist.
    assert "copier-9" not in {c.device_id for c in copiers_for(store, alice)}
    after = (store.query_all("SELECT * FROM release_orders"), store.audit_log(5),
             [(j.id, j.state) for j in store.all_jobs()])
    assert after == before
    del service


def test_an_order_is_pushed_when_online_again_until_taken(cloud: tuple) -> None:
    service, store, clock = cloud
    alice = _uid(store, 0)
    job = _held(store, alice)[0]
    # An offline copier is accepted: the order waits for it.
    rid = release_to_device(store, alice, [job], "copier-1", clock.now)
    assert _pending(store, clock.now) == []
    _online(store, "copier-1", 1, clock.now)
    ((pushed, device, payload),) = ro.pending_pushes(store, clock.now)
    assert (pushed, device) == (rid, "copier-1")
    order = m.decode_command(payload)
    assert [j.job_id for j in order.jobs] == [job] and order.user_name == "Alice Martin"
    # Claimed as it was read: another worker asking now gets nothing to publish.
    assert _pending(store, clock.now) == []
    # A worker that starts pushes everything not taken; a reconnect of the device, and time.
    assert _pending_all(store, clock.now) == [rid]
    clock.now += 1
    _online(store, "copier-1", 2, clock.now)
    assert _pending(store, clock.now) == [rid]
    clock.now += ro.REPUSH_AFTER - 1
    assert _pending(store, clock.now) == []
    clock.now += 2
    assert _pending(store, clock.now) == [rid]
    # The device's first fetch takes it: never pushed again, and audited once.
    answer = m.decode_response(service.handle("copier-1", m.encode(
        m.FetchDocument(release_id=rid, job_id=job, length=10))), m.FetchDocument.TYPE)
    assert isinstance(answer, m.DocumentChunk)
    assert _pending_all(store, clock.now) == []
    service.handle("copier-1", m.encode(m.FetchDocument(release_id=rid, job_id=job, offset=10)))
    taken = [a for a in store.audit_log(20) if a[2] == "release.order_taken"]
    assert len(taken) == 1


def test_an_order_never_taken_lapses_and_its_jobs_are_held_again(cloud: tuple) -> None:
    service, store, clock = cloud
    bob = _uid(store, 1)
    jobs = _held(store, bob)[:2]
    release_to_device(store, bob, jobs, "copier-1", clock.now)
    _online(store, "copier-1", 1, clock.now)
    clock.now += RELEASE_LEASE + 1
    assert service.housekeeping()["lapsed"] == 2
    assert {j.state for j in store.jobs(jobs)} == {"HELD"}
    assert _pending_all(store, clock.now) == []
    # Held again, they may be ordered again (to another copier).
    release_to_device(store, bob, jobs, "copier-2", clock.now)


# ---------------------------------------------------------------- the stateful run


class Orders(RuleBasedStateMachine):
    """Portal orders, panel releases, deletions, printed and failed reports delivered once or
    twice, lapses, all against one store; the model is what each job should be."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock(time.time())
        self.store = open_store("sqlite:///:memory:")
        seed_demo(self.store, now=self.clock.now)
        self.service = CloudService(self.store, clock=self.clock)
        self.users = [_uid(self.store, n) for n in range(2)]
        self.jobs = {u: _held(self.store, u) for u in self.users}
        self.state = {j: "HELD" for js in self.jobs.values() for j in js}
        self.release_of: dict[str, str] = {}  # RELEASING job -> its release
        self.device_of: dict[str, str] = {}  # release -> its device
        self.taken: set[str] = set()  # releases the device reported about
        self.ids = itertools.count()

    def teardown(self) -> None:
        self.store.close()

    def _ask(self, device: str, request: m.Request) -> m.Result | Exception:
        try:
            return m.decode_response(self.service.handle(device, m.encode(request)),
                                     request.TYPE)
        except Exception as exc:  # the cloud's refusal, as the device would get it
            return exc

    @initialize()
    def online(self) -> None:
        _online(self.store, "copier-1", 1, self.clock.now)

    def _chosen(self, user: int, picks: list[int]) -> tuple[str, list[str]]:
        uid = self.users[user]
        own = self.jobs[uid]
        return uid, list(dict.fromkeys(own[p % len(own)] for p in picks))

    def _released(self, rid: str, device: str, jobs: list[str]) -> None:
        assert all(self.state[j] == "HELD" for j in jobs), "a job was released twice"
        for j in jobs:
            self.state[j] = "RELEASING"
            self.release_of[j] = rid
        self.device_of[rid] = device

    @rule(user=st.integers(0, 1), picks=st.lists(st.integers(0, 9), min_size=1, max_size=3),
          device=st.sampled_from(["copier-1", "copier-2"]))
    def order(self, user: int, picks: list[int], device: str) -> None:
        uid, jobs = self._chosen(user, picks)
        held = all(self.state[j] == "HELD" for j in jobs)
        try:
            rid = release_to_device(self.store, uid, jobs, device, self.clock.now)
        except StoreError as exc:
            assert not held and exc.code == "job_not_held", exc.code
            return
        assert held, "released a job that was not held"
        self._released(rid, device, jobs)

    @rule(user=st.integers(0, 1), picks=st.lists(st.integers(0, 9), min_size=1, max_size=3))
    def panel_release(self, user: int, picks: list[int]) -> None:
        _, jobs = self._chosen(user, picks)
        ident = self._ask("copier-1", m.Identify("code", DEMO_USERS[user].access_code))
        assert isinstance(ident, m.IdentifyResult)
        held = all(self.state[j] == "HELD" for j in jobs)
        answer = self._ask("copier-1", m.Release(request_id=f"r{next(self.ids)}",
                                                 session=ident.session, job_ids=tuple(jobs)))
        if isinstance(answer, m.ReleaseResult):
            assert held
            self._released(answer.release_id, "copier-1", jobs)
        else:
            assert not held

    @rule(user=st.integers(0, 1), pick=st.integers(0, 9))
    def delete(self, user: int, pick: int) -> None:
        _, (job,) = self._chosen(user, [pick])
        ident = self._ask("copier-1", m.Identify("code", DEMO_USERS[user].access_code))
        assert isinstance(ident, m.IdentifyResult)
        answer = self._ask("copier-1", m.DeleteJobs(request_id=f"d{next(self.ids)}",
                                                    session=ident.session, job_ids=(job,)))
        if isinstance(answer, m.Ack):
            assert self.state[job] == "HELD"
            self.state[job] = "DELETED"

    @rule(pick=st.integers(0, 99), ok=st.booleans(), again=st.sampled_from(["", "same", "new"]))
    def report(self, pick: int, ok: bool, again: str) -> None:
        """The device reports one RELEASING job's outcome; ``again``: the report delivered a
        second time (QoS 1, same request id) or repeated by a restarted device (a new one)."""
        releasing = sorted(self.release_of)
        if not releasing:
            return
        job = releasing[pick % len(releasing)]
        rid = self.release_of[job]
        device = self.device_of[rid]
        first = f"p{next(self.ids)}"
        for request_id in [first] + ([first] if again == "same" else
                                     [f"p{next(self.ids)}"] if again == "new" else []):
            req: m.Request = (m.JobPrinted(request_id=request_id, release_id=rid, job_id=job)
                              if ok else m.JobFailed(request_id=request_id, release_id=rid,
                                                     job_id=job, reason="jam"))
            self._ask(device, req)
        del self.release_of[job]
        self.state[job] = "PRINTED" if ok else "HELD"
        self.taken.add(rid)

    @rule()
    def lapse(self) -> None:
        self.clock.now += RELEASE_LEASE + 1
        lapsed = self.service.housekeeping()["lapsed"]
        # Nothing was fetched in this run: every RELEASING job goes back.
        assert lapsed == len(self.release_of)
        for job in list(self.release_of):
            del self.release_of[job]
            self.state[job] = "HELD"

    @invariant()
    def jobs_are_as_the_model_says(self) -> None:
        stored = {j.id: j for j in self.store.jobs(list(self.state))}
        assert {j: stored[j].state for j in self.state} == self.state
        for job, rid in self.release_of.items():
            assert stored[job].release_id == rid  # in exactly the one release

    @invariant()
    def nothing_is_printed_twice(self) -> None:
        printed = [s for _t, _a, action, s, _d in self.store.audit_log(10_000)
                   if action == "printed"]
        assert len(printed) == len(set(printed))

    @invariant()
    def only_live_orders_are_pushed(self) -> None:
        live = {rid for rid in self.release_of.values()
                if self.device_of[rid] == "copier-1" and rid not in self.taken}
        ordered = {str(r[0]) for r in self.store.query_all("SELECT release_id FROM "
                                                           "release_orders")}
        pushed = {r for r, _d, _p in ro.pending_pushes(self.store, self.clock.now,
                                                        everything=True)}
        # copier-2 is never online here: its orders wait.
        assert pushed == live & ordered


TestOrders = Orders.TestCase
TestOrders.settings = settings(max_examples=15, stateful_step_count=15, deadline=None,
                               suppress_health_check=[HealthCheck.too_slow])

"""The offline desk (device_app/offline/desk.py) against bundles signed here with
protocol/offline.py, as the cloud would sign them: a stateful test over sign-ins, lists,
releases, print outcomes, logouts, restarts, clock moves and bundle replacements, with the
invariants checked after every step, and that every state was reached."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from device_app.offline.desk import (
    BADGE_BURST,
    BADGE_INTERVAL,
    BADGE_THROTTLE,
    LOCK_SECONDS,
    MAX_FAILURES,
    Desk,
)
from device_app.offline.store import OfflineStore
from protocol import messages as m
from protocol import offline as off
from protocol.errors import LinkError, MfdError, RemoteError

DEVICE = "dev-offline-1"
#: A cheap scrypt for tests (the bundle says which cost the device uses).
N = 16
T0 = 1_800_000_000.0


@dataclass
class Person:
    user_id: str
    name: str
    cards: tuple[str, ...]
    code: str


@dataclass
class Cloud:
    """What the cloud holds for one org: its signing key, the salt, a secret for user keys,
    the people and their held jobs' documents."""

    key: object = field(default_factory=off.new_signing_key)
    salt: bytes = field(default_factory=lambda: os.urandom(16))
    secret: bytes = field(default_factory=lambda: os.urandom(32))
    people: list[Person] = field(default_factory=list)
    docs: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # job -> (owner, bytes)
    seq: int = 0

    def user_key(self, user_id: str, device_id: str = DEVICE) -> bytes:
        return off.user_key(self.secret, device_id, user_id)

    def bundle(self, *, now: float = T0, hours: float = 72.0, device_id: str = DEVICE,
               seq: int | None = None, jobs: dict[str, tuple[str, bytes]] | None = None
               ) -> tuple[bytes, bytes]:
        if seq is None:
            self.seq += 1
            seq = self.seq
        list_key = os.urandom(32)
        users = []
        for p in self.people:
            uk = self.user_key(p.user_id, device_id)
            wraps, cards = {}, []
            for card in p.cards:
                v = off.verifier(self.salt, "card", card, N)
                e = off.lookup(list_key, v)
                cards.append(e)
                wraps[e] = off.wrap(v, uk, os.urandom(12))
            v = off.verifier(self.salt, "code", p.code, N)
            code = off.lookup(list_key, v)
            wraps[code] = off.wrap(v, uk, os.urandom(12))
            users.append(off.OfflineUser(p.user_id, p.name, "en", tuple(cards), code, wraps))
        docs = self.docs if jobs is None else jobs
        listed = tuple(off.OfflineJob(job_id=j, user_id=owner, name=f"{j}.pdf", pages=1,
                                      color=False, duplex=False, copies=1, size=len(data),
                                      sha256=hashlib.sha256(data).hexdigest(),
                                      submitted_at=T0 - i)
                       for i, (j, (owner, data)) in enumerate(sorted(docs.items())))
        body = off.encode_bundle(off.Bundle(
            device_id=device_id, org_id="org-1", seq=seq, issued_at=now,
            expires_at=now + hours * 3600, salt=self.salt, n=N, list_key=list_key,
            users=tuple(users), jobs=listed))
        return body, off.sign(self.key, body)  # type: ignore[arg-type]

    def chunks(self, job_id: str, device_id: str = DEVICE) -> list[m.DocumentChunk]:
        """The sealed chunks the cloud answers ``offline.document`` with."""
        owner, data = self.docs[job_id]
        key = self.user_key(owner, device_id)
        out = []
        for offset in range(0, max(len(data), 1), off.CHUNK_BYTES):
            span = off.chunk_span(offset, len(data))
            out.append(m.DocumentChunk(job_id=job_id, offset=offset, total=len(data),
                                       data=off.seal_chunk(key, job_id, offset, len(data),
                                                           data[offset:offset + span],
                                                           digest=hashlib.sha256(
                                                               data).hexdigest())))
        return out

    def public(self) -> object:
        return off.parse_public_key(off.public_key_text(self.key))  # type: ignore[arg-type]


def standard_cloud() -> Cloud:
    cloud = Cloud()
    cloud.people = [Person("u-ada", "Ada", ("04A1B2C3D4",), "482913"),
                    Person("u-bob", "Bob", ("04FFEE0011", "04FFEE0012"), "735102")]
    cloud.docs = {"job-a1": ("u-ada", b"%PDF ada one " * 50),
                  "job-a2": ("u-ada", os.urandom(off.CHUNK_BYTES + 77)),
                  "job-b1": ("u-bob", b"%PDF bob " * 10)}
    return cloud


def deliver(desk: Desk, cloud: Cloud) -> None:
    for job_id, offset in desk.wanted(1000):
        chunk = next(c for c in cloud.chunks(job_id) if c.offset == offset)
        assert desk.put_chunk(job_id, offset, chunk)


def print_all(desk: Desk, release: m.ReleaseResult, now: float) -> dict[str, bytes]:
    out = {}
    for job in release.jobs:
        data, offset = b"", 0
        while offset < job.size or (job.size == 0 and offset == 0):
            chunk = desk.answer(m.FetchDocument(release_id=release.release_id,
                                                job_id=job.job_id, offset=offset), now)
            assert isinstance(chunk, m.DocumentChunk)
            data += chunk.data
            offset += len(chunk.data)
            if not chunk.data:
                break
        assert hashlib.sha256(data).hexdigest() == job.sha256
        out[job.job_id] = data
    return out


# ---------------------------------------------------------------- plain examples


def test_a_card_signs_in_lists_prints_once_and_reports(tmp_path: Path) -> None:
    cloud = standard_cloud()
    store = OfflineStore.open(tmp_path / "offline.db")
    desk = Desk(store, cloud.public(), DEVICE)  # type: ignore[arg-type]
    desk.accept(*cloud.bundle(), now=T0)
    deliver(desk, cloud)
    who = desk.answer(m.Identify(method="card", value="04A1B2C3D4", page_size=10), T0 + 1)
    assert isinstance(who, m.IdentifyResult) and who.display_name == "Ada"
    assert {j.job_id for j in who.jobs or ()} == {"job-a1", "job-a2"}
    rel = desk.answer(m.Release(request_id="r1", session=who.session, job_ids=("job-a2",)),
                      T0 + 2)
    assert isinstance(rel, m.ReleaseResult)
    assert rel.release_id.startswith(off.OFFLINE_RELEASE_PREFIX)
    desk.answer(m.Logout(request_id="l1", session=who.session), T0 + 3)  # print goes on
    assert print_all(desk, rel, T0 + 4)["job-a2"] == cloud.docs["job-a2"][1]
    for _ in range(2):  # a repeat journals nothing more
        desk.answer(m.JobPrinted(request_id="p1", release_id=rel.release_id,
                                 job_id="job-a2"), T0 + 5)
    again = desk.answer(m.Identify(method="code", value="482913", page_size=10), T0 + 6)
    assert isinstance(again, m.IdentifyResult)
    assert {j.job_id for j in again.jobs or ()} == {"job-a1"}
    report = desk.pending_report(lambda: "rep-1")
    assert report is not None
    assert [e.kind for e in report.events] == ["login", "printed", "login"]
    # Not answered: the same report, same id, after a restart.
    desk2 = Desk(OfflineStore.open(tmp_path / "offline.db"), cloud.public(),  # type: ignore
                 DEVICE)
    assert desk2.pending_report(lambda: "rep-2") == report
    desk2.report_answered("rep-1")
    assert desk2.pending_report(lambda: "rep-3") is None


def test_pin_lockout_and_refusals(tmp_path: Path) -> None:
    cloud = standard_cloud()
    desk = Desk(OfflineStore.open(tmp_path / "o.db"), cloud.public(), DEVICE)  # type: ignore
    desk.accept(*cloud.bundle(), now=T0)
    with pytest.raises(RemoteError) as unknown:
        desk.answer(m.Identify(method="card", value="0400000000"), T0)
    assert unknown.value.code == "unknown_card" and "offline" in unknown.value.message
    with pytest.raises(RemoteError) as pin:
        desk.answer(m.Identify(method="card", value="04A1B2C3D4", pin="000000"), T0)
    assert pin.value.code == "wrong_pin"
    ok = desk.answer(m.Identify(method="card", value="04A1B2C3D4", pin="482913"), T0)
    assert isinstance(ok, m.IdentifyResult)
    codes = []
    for i in range(MAX_FAILURES):
        with pytest.raises(RemoteError) as wrong:
            desk.answer(m.Identify(method="code", value=f"99999{i}"), T0 + i)
        codes.append(wrong.value.code)
    assert codes[-1] == "locked_out" and codes[:-2].count("unknown_code") >= 3
    with pytest.raises(RemoteError) as locked:
        desk.answer(m.Identify(method="code", value="482913"), T0 + 10)
    assert locked.value.code == "locked_out" and locked.value.retry_after
    # The lock survives a restart (the seconds left come back whole), and ends.
    desk = Desk(OfflineStore.open(tmp_path / "o.db"), cloud.public(), DEVICE)  # type: ignore
    with pytest.raises(RemoteError):
        desk.answer(m.Identify(method="code", value="482913"), T0 + 20)
    assert isinstance(desk.answer(m.Identify(method="code", value="482913"),
                                  T0 + 20 + LOCK_SECONDS), m.IdentifyResult)
    with pytest.raises(RemoteError) as delete:
        desk.answer(m.DeleteJobs(request_id="d", session="nope", job_ids=("x",)), T0)
    assert delete.value.code == "invalid_session"


@pytest.mark.parametrize("case", ["replayed", "wrong_device", "bad_signature", "expired"])
def test_a_bad_bundle_is_refused_and_the_old_one_stays(case: str) -> None:
    cloud = standard_cloud()
    desk = Desk(OfflineStore.memory(), cloud.public(), DEVICE)  # type: ignore[arg-type]
    desk.accept(*cloud.bundle(), now=T0)
    held = desk.bundle
    if case == "replayed":
        body, sig = cloud.bundle(seq=1)
    elif case == "wrong_device":
        body, sig = cloud.bundle(device_id="dev-other")
    elif case == "bad_signature":
        body, sig = cloud.bundle()
        sig = off.sign(off.new_signing_key(), body)
    else:
        body, sig = cloud.bundle(now=T0 - 10 * 3600, hours=1)
    with pytest.raises(off.OfflineError) as refused:
        desk.accept(body, sig, now=T0)
    assert refused.value.code == case
    assert desk.bundle is held


# ---------------------------------------------------------------- the state machine

class DeskMachine(RuleBasedStateMachine):
    """A desk over a store file, driven as the session machine and the printer would."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = TMP[0] / f"desk-{os.urandom(6).hex()}"
        self.dir.mkdir(parents=True)
        self.cloud = standard_cloud()
        # Not waiting for the disk at each commit: the file's bytes are the same.
        self.store = OfflineStore.open(self.dir / "offline.db", durable=False)
        self.desk = Desk(self.store, self.cloud.public(), DEVICE)  # type: ignore[arg-type]
        self.now = T0
        self.clock_back = False
        self.desk.accept(*self.cloud.bundle(now=self.now, hours=2), now=self.now)
        deliver(self.desk, self.cloud)
        self.expires = self.now + 2 * 3600
        self.session: tuple[str, str] | None = None  # (token, user id)
        self.releases: list[tuple[m.ReleaseResult, str]] = []
        self.printed: dict[str, int] = {}
        self.failures: list[float] = []
        # The lock and the badge bucket run on the monotonic clock; the store keeps seconds
        # left, which a restart gives back.
        self.mono = 0.0
        self.locked_until = 0.0
        self.lock_saved = 0.0
        self.tat = 0.0
        self.throttled_until = 0.0
        self.ahead_saved = self.throttle_saved = 0.0
        self.reload = False
        self.high = self.now
        self._secrets: re.Pattern[bytes] | None = None

    def teardown(self) -> None:
        self.store.close()

    # -------------------------------------------------------- what the model expects

    def _usable(self) -> bool:
        return not self.clock_back and max(self.now, self.high) < self.expires

    def _signed_in(self, result: m.Result | MfdError, user_id: str) -> None:
        assert isinstance(result, m.IdentifyResult), result
        assert result.user_id == user_id
        listed = {j.job_id for j in result.jobs or ()}
        owned = {j for j, (o, _) in self.cloud.docs.items() if o == user_id}
        assert listed <= owned - set(self.printed)
        self.session = (result.session, user_id)
        REACHED.add("signed_in")

    def _ask(self, request: m.Request) -> m.Result | MfdError:
        try:
            if self.reload and isinstance(request, m.Identify) and self._usable():
                # The desk reads the seconds left at its first sign-in: they run from there.
                self.reload = False
                self.locked_until = self.mono + self.lock_saved
                self.tat = self.mono + self.ahead_saved
                self.throttled_until = self.mono + self.throttle_saved
            return self.desk.answer(request, self.now, self.mono)
        except MfdError as exc:
            return exc
        finally:
            self.high = max(self.high, self.now)

    # -------------------------------------------------------- rules

    def _throttled(self, out: m.Result | MfdError) -> bool:
        """The model of the badge throttle's check (every badge, known or not)."""
        if self.mono < self.throttled_until:
            assert isinstance(out, RemoteError) and out.code == "throttled", out
            assert out.retry_after and out.retry_after <= BADGE_THROTTLE + 1
            REACHED.add("throttled")
            return True
        self.throttle_saved = 0.0
        return False

    @rule(person=st.integers(0, 1), card=st.integers(0, 1))
    def right_card(self, person: int, card: int) -> None:
        p = self.cloud.people[person]
        out = self._ask(m.Identify(method="card", value=p.cards[card % len(p.cards)],
                                   page_size=10))
        if self._usable():
            if not self._throttled(out):
                self._signed_in(out, p.user_id)
        else:
            assert isinstance(out, LinkError), out
            REACHED.add("rolled_back" if self.clock_back else "expired")

    @rule(times=st.sampled_from([1, 4, 12]))
    def wrong_card(self, times: int) -> None:
        """Unknown badges, ``times`` in a row: the throttle's way in."""
        for _ in range(times):
            out = self._ask(m.Identify(method="card", value="04DEADBEEF"))
            if not self._usable():
                assert isinstance(out, LinkError), out
                continue
            if self._throttled(out):
                continue
            tat = max(self.tat, self.mono) + BADGE_INTERVAL
            if tat - self.mono > BADGE_BURST * BADGE_INTERVAL:
                self.throttled_until = self.mono + BADGE_THROTTLE
                self.throttle_saved = BADGE_THROTTLE
                self.ahead_saved = max(self.tat - self.mono, 0.0)
                assert isinstance(out, RemoteError) and out.code == "throttled", out
                REACHED.add("throttled")
            else:
                self.tat = tat
                self.ahead_saved = tat - self.mono
                assert isinstance(out, RemoteError) and out.code == "unknown_card", out

    @rule(person=st.integers(0, 1), right=st.booleans(), pin=st.booleans())
    def code(self, person: int, right: bool, pin: bool) -> None:
        p = self.cloud.people[person]
        value = p.code if right else "111111"
        request = m.Identify(method="card", value=p.cards[0], pin=value, page_size=10) if pin \
            else m.Identify(method="code", value=value, page_size=10)
        out = self._ask(request)
        if not self._usable():
            assert isinstance(out, LinkError), out
            REACHED.add("rolled_back" if self.clock_back else "expired")
            return
        if pin and self._throttled(out):
            return
        if self.mono < self.locked_until:  # the lock runs on the monotonic clock
            assert isinstance(out, RemoteError) and out.code == "locked_out", out
            REACHED.add("locked")
            return
        self.lock_saved = 0.0
        if right:
            self._signed_in(out, p.user_id)
            return
        self.failures = [t for t in self.failures if self.high - t < 600] + [self.high]
        assert isinstance(out, RemoteError)
        if len(self.failures) >= MAX_FAILURES:
            assert out.code == "locked_out"
            self.locked_until = self.mono + LOCK_SECONDS
            self.lock_saved = LOCK_SECONDS
            self.failures = []
            REACHED.add("locked")
        else:
            assert out.code == ("wrong_pin" if pin else "unknown_code"), out

    @rule(person=st.integers(0, 1))
    def visit(self, person: int) -> None:
        """A whole visit: badge, release everything, the engine prints, walk away."""
        self.right_card(person, 0)
        if self.session is not None:
            self.release(False)
            if self.releases:
                self.print_outcome(True, False)
            self.logout()

    @rule(pin=st.booleans())
    def guessing(self, pin: bool) -> None:
        """Someone tries codes in a row: the lockout's way in."""
        for _ in range(MAX_FAILURES):
            self.code(1, False, pin)

    @precondition(lambda self: self.session is not None)
    @rule()
    def list_jobs(self) -> None:
        assert self.session is not None
        out = self._ask(m.ListJobs(session=self.session[0]))
        if isinstance(out, RemoteError):
            assert out.code == "invalid_session"
            self.session = None
            return
        assert isinstance(out, m.JobList)
        for job in out.jobs:
            assert self.cloud.docs[job.job_id][0] == self.session[1]
            assert job.job_id not in self.printed

    @precondition(lambda self: self.session is not None)
    @rule(changes=st.booleans())
    def release(self, changes: bool) -> None:
        assert self.session is not None
        out = self._ask(m.Release(request_id="r", session=self.session[0], job_ids=(),
                                  all_held=True, grayscale=changes))
        if isinstance(out, RemoteError):
            assert out.code in ("invalid_session", "job_not_held", "not_allowed"), out
            if out.code == "invalid_session":
                self.session = None
            assert changes or out.code != "not_allowed"
            return
        assert isinstance(out, m.ReleaseResult) and not changes
        for job in out.jobs:
            assert self.cloud.docs[job.job_id][0] == self.session[1]
            assert job.job_id not in self.printed
        self.releases.append((out, self.session[1]))
        REACHED.add("released")

    @precondition(lambda self: bool(self.releases))
    @rule(ok=st.booleans(), logout_first=st.booleans())
    def print_outcome(self, ok: bool, logout_first: bool) -> None:
        if logout_first:
            self.logout()
        release, _ = self.releases.pop(0)
        try:
            data = print_all(self.desk, release, self.now)
        except RemoteError as exc:  # after a restart: the keys are gone, the job fails
            assert exc.code == "unknown_release"
            ok = False
            data = {}
        for job in release.jobs:
            if ok:
                assert data[job.job_id] == self.cloud.docs[job.job_id][1]
                self.printed[job.job_id] = self.printed.get(job.job_id, 0) + 1
                request: m.Request = m.JobPrinted(request_id="p", release_id=release.release_id,
                                                  job_id=job.job_id)
                REACHED.add("printed")
            else:
                request = m.JobFailed(request_id="f", release_id=release.release_id,
                                      job_id=job.job_id, reason="jam")
            assert isinstance(self._ask(request), m.Ack)
            assert isinstance(self._ask(request), m.Ack)  # a repeat

    @rule()
    def logout(self) -> None:
        if self.session is not None:
            assert isinstance(self._ask(m.Logout(request_id="l", session=self.session[0])),
                              m.Ack)
            self.session = None

    @rule()
    def restart(self) -> None:
        self.store.close()
        self.store = OfflineStore.open(self.dir / "offline.db", durable=False)
        self.desk = Desk(self.store, self.cloud.public(), DEVICE)  # type: ignore[arg-type]
        self.session = None
        # A new process: a new monotonic origin; the seconds left come back whole.
        self.mono += 1000.0
        self.reload = True

    @rule(seconds=st.sampled_from([30.0, 400.0, 1000.0, 3000.0, 86400.0]))
    def clock_forward(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds
        self.clock_back = self.now + off.SKEW_S < self.high

    @rule()
    def wall_clock_set_forward(self) -> None:
        """The wall clock jumps (no time passes): a lock or a throttle is not shortened."""
        self.now += 1200.0
        self.clock_back = self.now + off.SKEW_S < self.high
        if self.mono < max(self.locked_until, self.throttled_until):
            REACHED.add("jumped_while_locked")

    @rule()
    def clock_set_back(self) -> None:
        self.now -= 3 * 3600
        self.clock_back = self.now + off.SKEW_S < self.high

    @rule(kind=st.sampled_from(["newer", "replayed", "other_device", "bad_signature",
                                "expired"]))
    def new_bundle(self, kind: str) -> None:
        if kind == "newer":
            body, sig = self.cloud.bundle(now=self.now, hours=2,
                                          jobs={j: d for j, d in self.cloud.docs.items()})
        elif kind == "replayed":
            body, sig = self.cloud.bundle(now=self.now, seq=1)
        elif kind == "other_device":
            body, sig = self.cloud.bundle(now=self.now, device_id="dev-other")
        elif kind == "bad_signature":
            body, _ = self.cloud.bundle(now=self.now)
            sig = off.sign(off.new_signing_key(), body)
        else:
            body, sig = self.cloud.bundle(now=self.now - 7200, hours=1)
        try:
            self.desk.accept(body, sig, now=self.now)
        except off.OfflineError:
            assert kind != "newer" or self.clock_back
        else:
            assert kind == "newer"
            self.expires = self.now + 2 * 3600
            self.clock_back = False
            deliver(self.desk, self.cloud)
        self.high = max(self.high, self.now)

    # -------------------------------------------------------- invariants

    @invariant()
    def nothing_printed_twice(self) -> None:
        assert all(n == 1 for n in self.printed.values()), self.printed

    @invariant()
    def no_secret_at_rest(self) -> None:
        if self._secrets is None:
            needles = [s.encode() for p in self.cloud.people for s in (*p.cards, p.code)]
            needles += [self.cloud.user_key(p.user_id) for p in self.cloud.people]
            needles += [data[:64] for _, data in self.cloud.docs.values()]
            self._secrets = re.compile(b"|".join(re.escape(n) for n in needles))
        found = self._secrets.search(self.store.raw_bytes())  # one pass over the file
        assert found is None, "a card number, code, user key or document in clear at rest"


#: Derandomized, as the app's stateful test (repeatable; ``MFD_STATEFUL_EXAMPLES`` searches
#: further).
EXAMPLES = int(os.environ.get("MFD_STATEFUL_EXAMPLES", "80"))
STEPS = int(os.environ.get("MFD_STATEFUL_STEPS", "30"))
REACHED: set[str] = set()
TMP: list[Path] = []
WANTED = {"signed_in", "released", "printed", "locked", "expired", "rolled_back", "throttled",
          "jumped_while_locked"}


def test_the_desk_keeps_its_promises(tmp_path: Path) -> None:
    TMP[:] = [tmp_path]
    REACHED.clear()
    runner = DeskMachine.TestCase
    runner.settings = settings(max_examples=EXAMPLES, stateful_step_count=STEPS,
                               derandomize=True, database=None, deadline=None,
                               suppress_health_check=list(HealthCheck))
    runner().runTest()
    assert WANTED <= REACHED, WANTED - REACHED


def test_a_cloud_release_is_never_answered_here() -> None:
    """A print of a release the cloud made is reported to the cloud only: acknowledged here,
    the cloud would never learn it, and would give the job out again."""
    cloud = standard_cloud()
    desk = Desk(OfflineStore.memory(), cloud.public(), DEVICE)  # type: ignore[arg-type]
    desk.accept(*cloud.bundle(), now=T0)
    for request in (m.JobPrinted(request_id="p", release_id="rel-cloud", job_id="job-a1"),
                    m.JobFailed(request_id="f", release_id="rel-cloud", job_id="job-a1"),
                    m.FetchDocument(release_id="rel-cloud", job_id="job-a1")):
        assert not desk.owns(request)
        with pytest.raises(LinkError):
            desk.answer(request, T0)
    assert desk.pending_report(lambda: "r") is None


def test_a_print_under_way_survives_a_bundle_that_no_longer_lists_it() -> None:
    """The cloud is back mid-print and its new bundle drops the job (released elsewhere, or
    a policy change): the print finishes from the copy here and its outcome is journalled."""
    cloud = standard_cloud()
    store = OfflineStore.memory()
    desk = Desk(store, cloud.public(), DEVICE)  # type: ignore[arg-type]
    desk.accept(*cloud.bundle(), now=T0)
    deliver(desk, cloud)
    who = desk.answer(m.Identify(method="code", value="482913"), T0)
    assert isinstance(who, m.IdentifyResult)
    rel = desk.answer(m.Release(request_id="r", session=who.session, job_ids=("job-a2",)), T0)
    assert isinstance(rel, m.ReleaseResult)
    desk.accept(*cloud.bundle(jobs={"job-b1": cloud.docs["job-b1"]}), now=T0 + 1)
    assert print_all(desk, rel, T0 + 2)["job-a2"] == cloud.docs["job-a2"][1]
    desk.answer(m.JobPrinted(request_id="p", release_id=rel.release_id, job_id="job-a2"),
                T0 + 3)
    assert [e.kind for e in store.events()] == ["login", "printed"]
    desk.accept(*cloud.bundle(jobs={"job-b1": cloud.docs["job-b1"]}), now=T0 + 4)
    assert set(store.chunk_sizes()) == {"job-b1"} and store.released() == {}


def test_jobs_printing_or_printed_offline_are_unreported_until_the_report_is_answered() -> None:
    cloud = standard_cloud()
    store = OfflineStore.memory()
    desk = Desk(store, cloud.public(), DEVICE)  # type: ignore[arg-type]
    desk.accept(*cloud.bundle(), now=T0)
    deliver(desk, cloud)
    who = desk.answer(m.Identify(method="card", value="04A1B2C3D4"), T0)
    assert isinstance(who, m.IdentifyResult) and desk.unreported_prints() == set()
    release = desk.answer(m.Release(request_id="r", session=who.session,
                                    job_ids=("job-a1",)), T0)
    assert isinstance(release, m.ReleaseResult)
    assert desk.unreported_prints() == {"job-a1"}  # printing now
    desk.answer(m.JobPrinted(request_id="p", release_id=release.release_id, job_id="job-a1"),
                T0 + 1)
    assert desk.unreported_prints() == {"job-a1"}  # printed, not told yet
    while (report := desk.pending_report(lambda: os.urandom(8).hex())) is not None:
        desk.report_answered(report.request_id)
    assert desk.unreported_prints() == set()

"""``mfd cloud --workers N``: N worker processes (cloud/worker_process.py) on a private
Mosquitto and a SQLite store. They serve; one killed with SIGKILL is started again while the
other goes on answering; SIGTERM stops the parent and every worker; a parent killed outright
leaves no worker serving on; a worker that cannot start fails the cloud with its reason,
without the password."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from raw_device import RawDevice

from cloud import worker_process
from cloud.demo import DEMO_USERS, seed_demo
from cloud.storage.sqlite import SqliteStore
from protocol import messages as m
from protocol.errors import LinkError
from simulator.broker import MosquittoBroker

pytestmark = pytest.mark.integration

CLOUD = ("cloud-0", "cloud-1")
#: The accounts of a second host's workers (mfd cloud --first-worker 2).
OTHER_HOST = ("cloud-2", "cloud-3")
CLOUD_PASSWORD = "cloud-pw-not-a-secret"
DEVICE = "copier-wp"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[MosquittoBroker, Path]]:
    users = {u: CLOUD_PASSWORD for u in (*CLOUD, *OTHER_HOST)} | {DEVICE: "pw-device"}
    broker = MosquittoBroker(tmp_path / "broker", users,
                             cloud_users=(*CLOUD, *OTHER_HOST)).start()
    db = tmp_path / "cloud.db"
    store = SqliteStore(db)
    seed_demo(store, now=time.time(), devices=(DEVICE,))
    store.close()
    yield broker, db
    broker.stop()


class Cloud:
    """``mfd cloud --workers 2`` as a service manager runs it; its stderr lines collected."""

    def __init__(self, broker: MosquittoBroker, db: Path, *extra: str,
                 password: str = CLOUD_PASSWORD, before: tuple[str, ...] = ()) -> None:
        self.store = f"sqlite:///{db}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mfdkit", *before, "cloud", "--broker", broker.url, "--store",
             self.store, *(() if "--workers" in extra else ("--workers", "2")), *extra],
            env={**os.environ, "MFD_CLOUD_PASSWORD": password}, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def read_to_the_end(self) -> None:
        """Once the cloud has exited: every line it wrote is in :attr:`lines`."""
        self._reader.join(10)
        assert not self._reader.is_alive(), "mfd cloud's stderr still open"

    def wait_line(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            assert self.proc.poll() is None or self._reader.is_alive(), \
                f"mfd cloud exited ({self.proc.returncode}): {self.lines}"
            time.sleep(0.05)
        raise AssertionError(f"mfd cloud never said {text!r}: {self.lines}")

    def workers(self) -> dict[int, str]:
        """PID -> worker name of the worker processes serving this cloud's store, whoever
        their parent is now (one whose cloud died is the init process's)."""
        found = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"cloud.worker_process" in args and self.store.encode() in args \
                    and stat.rsplit(")", 1)[1].split()[0] != "Z":
                found[int(pid)] = args[args.index(b"--name") + 1].decode()
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody has reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


class Device(RawDevice):
    """The copier: badges with the demo user's card, answers by correlation."""

    def __init__(self, broker: MosquittoBroker) -> None:
        super().__init__(broker.host, broker.port, DEVICE, "pw-device")

    def badge(self) -> bytes:
        """An identify with the demo user's badge; its correlation data."""
        return self.request(m.encode(m.Identify("card", DEMO_USERS[0].badge)))

    def signed_in(self, corrs: set[bytes], timeout: float = 30.0) -> None:
        """Every one of ``corrs`` answered with the demo user signed in."""
        deadline = time.monotonic() + timeout
        waiting = set(corrs)
        while waiting:
            corr, payload = self.answers.get(timeout=max(0.01, deadline - time.monotonic()))
            answer = m.decode_response(payload, "identify")
            assert isinstance(answer, m.IdentifyResult), answer
            assert answer.display_name == DEMO_USERS[0].name
            waiting.discard(corr)


def test_worker_processes_serve_come_back_after_a_kill_and_stop_with_the_cloud(
        world: tuple[MosquittoBroker, Path]) -> None:
    broker, db = world
    cloud = Cloud(broker, db)
    device = None
    try:
        cloud.wait_line("2 worker processes (cloud-0, cloud-1) serving")
        first = cloud.workers()
        assert sorted(first.values()) == list(CLOUD), first
        device = Device(broker)
        device.signed_in({device.badge() for _ in range(6)})

        victim = next(pid for pid, name in first.items() if name == "cloud-0")
        os.kill(victim, signal.SIGKILL)
        cloud.wait_line("cloud worker cloud-0 exited (signal 9)")
        # The other worker answers. (Asked only now: a request the broker handed the dying
        # worker is lost with it, and this test's device, unlike the real one, never asks
        # again.)
        device.signed_in({device.badge() for _ in range(6)})
        wait_for(lambda: sorted(cloud.workers().values()) == list(CLOUD)
                 and victim not in cloud.workers(), 30, "cloud-0 was not started again")
        device.signed_in({device.badge() for _ in range(6)})

        workers = cloud.workers()
        cloud.proc.send_signal(signal.SIGTERM)  # what a service manager sends
        assert cloud.proc.wait(30) == 0, cloud.lines
        assert all(gone(pid) for pid in workers), "a worker outlived its cloud"
        assert not any("Traceback" in line for line in cloud.lines), cloud.lines
    finally:
        if device is not None:
            device.close()
        cloud.stop()


def test_two_hosts_number_their_workers_apart_and_both_serve(
        world: tuple[MosquittoBroker, Path]) -> None:
    """``--first-worker K`` on a second host: its workers take their own broker accounts
    (cloud-2, cloud-3), so neither host's connections push the other's off the broker
    (one connection per account), and the copier is answered with both running; then with
    only the second host's."""
    broker, db = world
    first = Cloud(broker, db)
    second = Cloud(broker, db, "--workers", "2", "--first-worker", "2")
    device = None
    try:
        first.wait_line("2 worker processes (cloud-0, cloud-1) serving")
        second.wait_line("2 worker processes (cloud-2, cloud-3) serving")
        # Both clouds serve the same store: each finds all four, each its own two as children.
        assert sorted(first.workers().values()) == [*CLOUD, *OTHER_HOST]
        device = Device(broker)
        device.signed_in({device.badge() for _ in range(8)})
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(30) == 0
        wait_for(lambda: sorted(second.workers().values()) == list(OTHER_HOST), 30,
                 "the first host's workers did not stop")
        device.signed_in({device.badge() for _ in range(4)})
        assert not any("lost the broker" in line for line in first.lines + second.lines), \
            first.lines + second.lines
    finally:
        if device is not None:
            device.close()
        first.stop()
        second.stop()


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "quiet"])
def test_mfd_debug_makes_the_worker_processes_log_at_debug_level_too(
        world: tuple[MosquittoBroker, Path], debug: bool) -> None:
    """``mfd --debug cloud --workers 2``: what the workers do is in the log at debug level
    (a repeated logout answered from the store: only a worker answers requests); without
    --debug it is not, while the same requests are answered."""
    broker, db = world
    cloud = Cloud(broker, db, before=("--debug",) if debug else ())
    device = None
    try:
        cloud.wait_line("2 worker processes (cloud-0, cloud-1) serving")
        device = Device(broker)
        who = m.decode_response(device.answer(device.badge()), "identify")
        assert isinstance(who, m.IdentifyResult)
        logout = m.encode(m.Logout(request_id="wp-debug-1", session=who.session))
        first = device.answer(device.request(logout))
        assert device.answer(device.request(logout)) == first  # the repeat, from the store
        # The whole log: the cloud stopped and its stderr read to the end.
        cloud.proc.send_signal(signal.SIGTERM)
        assert cloud.proc.wait(30) == 0
        cloud.read_to_the_end()
        repeat = "DEBUG cloud.service: repeat of logout wp-debug-1 answered from store"
        assert any(repeat in line for line in cloud.lines) == debug, cloud.lines
        if not debug:
            assert not any(" DEBUG " in line for line in cloud.lines), cloud.lines
        assert not any(" ERROR " in line for line in cloud.lines), cloud.lines
    finally:
        if device is not None:
            device.close()
        cloud.stop()


def test_workers_of_a_cloud_killed_outright_stop_on_their_own(
        world: tuple[MosquittoBroker, Path]) -> None:
    broker, db = world
    cloud = Cloud(broker, db)
    try:
        cloud.wait_line("2 worker processes (cloud-0, cloud-1) serving")
        workers = cloud.workers()
        assert len(workers) == 2
        cloud.proc.kill()  # no chance to stop them: their stdin closes with it
        cloud.proc.wait(10)
        wait_for(lambda: all(gone(pid) for pid in workers), 30,
                 "a worker went on serving after its cloud was killed")
    finally:
        cloud.stop()
        for pid in cloud.workers():
            os.kill(pid, signal.SIGKILL)


def test_a_worker_that_cannot_start_fails_the_cloud_with_its_reason(
        world: tuple[MosquittoBroker, Path]) -> None:
    broker, db = world
    cloud = Cloud(broker, db, password="wrong-password-42")
    try:
        assert cloud.proc.wait(60) == 1
        cloud._reader.join(10)
        # The workers' log says what the broker answered as it happens; the last line is the
        # verdict, with what to check.
        assert cloud.lines[-1].startswith(
            "mfd cloud: error: cloud worker cloud-0 did not start: the broker at "), cloud.lines
        assert "check its username and password" in cloud.lines[-1]
        assert not any("wrong-password-42" in line for line in cloud.lines)
        assert cloud.workers() == {}
    finally:
        cloud.stop()
    lanes = Cloud(broker, db, "--lanes", "99")
    try:
        assert lanes.proc.wait(60) == 1
        lanes._reader.join(10)
        assert lanes.lines == ["mfd cloud: error: --lanes must be between 0 and 64"]
    finally:
        lanes.stop()


def test_a_worker_that_keeps_dying_is_started_again_less_and_less_often(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each start of a worker whose broker refuses it fails at once: the pauses before the
    next start double (here from 0.2 s), so a worker that cannot serve does not spin."""
    monkeypatch.setattr(worker_process, "FIRST_PAUSE_S", 0.2)
    db = tmp_path / "cloud.db"
    SqliteStore(db).close()
    pool = worker_process.WorkerProcesses(["cloud-0"], f"sqlite:///{db}",
                                          ["mqtt://127.0.0.1:1"], CLOUD_PASSWORD)
    with pytest.raises(LinkError, match="cloud worker cloud-0 did not start: cannot reach"):
        pool.start()
    pids = [pool.children["cloud-0"].proc.pid]
    died: dict[int, float] = {pids[0]: time.monotonic()}  # start() waited for its end
    started: dict[int, float] = {}
    try:
        while len(pids) < 4:
            pool.poll()
            child = pool.children["cloud-0"]
            now = time.monotonic()
            if child.proc.pid not in started and child.proc.pid != pids[0]:
                started[child.proc.pid] = now
                pids.append(child.proc.pid)
            if child.proc.poll() is not None and child.proc.pid not in died:
                died[child.proc.pid] = now
            time.sleep(0.01)
    finally:
        pool.stop()
    # From each death to the next start: the pause, doubled each time.
    pauses = [started[b] - died[a] for a, b in itertools.pairwise(pids)]
    # (The upper bound is loose: a loaded machine may be slow to run the poll loop.)
    # (And 50 ms below: the pool's clock and this loop's are read a moment apart.)
    assert all(want - 0.05 <= pause < want + 1.5 for pause, want in zip(pauses, (0.2, 0.4, 0.8),
                                                                  strict=True)), pauses
    assert pool.restarts["cloud-0"] == 3


def test_a_stop_while_the_workers_wait_for_a_silent_broker_ends_at_once(tmp_path: Path) -> None:
    """A broker that takes the connection and never answers holds each worker's start for
    its 10 s; SIGTERM meanwhile ends the cloud at once, with its workers, status 0."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # connections wait in the backlog: nobody ever reads them
    db = tmp_path / "cloud.db"
    SqliteStore(db).close()
    broker = MosquittoBroker(tmp_path / "unused")
    broker.host, broker.port = silent.getsockname()
    cloud = Cloud(broker, db)
    try:
        wait_for(lambda: len(cloud.workers()) == 2, 30, "the workers did not start")
        workers = cloud.workers()
        asked = time.monotonic()
        cloud.proc.send_signal(signal.SIGTERM)
        assert cloud.proc.wait(30) == 0, cloud.lines
        assert time.monotonic() - asked < 8, "the stop waited for the workers' start"
        wait_for(lambda: all(gone(pid) for pid in workers), 30, "a worker outlived its cloud")
        assert not any("serving" in line for line in cloud.lines), cloud.lines
    finally:
        cloud.stop()
        silent.close()

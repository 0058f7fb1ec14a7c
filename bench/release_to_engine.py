"""Release to paper, device side included: from the release request to the moment the engine has
accepted the last of N jobs. Through real Mosquitto on loopback, one cloud worker on SQLite in
its own process, the device's Printer with its journal on disk (WAL, synchronous=FULL) and the
engine server in its own process over its Unix socket.

On the measured path: the release round trip; RECEIVED for the whole release (one commit, as
the app submits a release's PrintJob effects together); the documents fetched (a window of
256 KiB chunks in flight, into the device's spool, hashed as they arrive; up to four documents
fetched ahead of the hand-over) and checked against their SHA-256; FETCHED+HANDED (one commit
per group of documents ready together); and each hand-over frame answered by the engine. Jobs
that finish are reported to the cloud (journaled request ids) as the app does; with
``--page-time 0`` they finish at once and their reports compete with the fetches of later jobs
(a stress case no copier produces).

``--rtt-ms`` (and ``--bandwidth``) put a WAN link (simulator/netem.py) between the device and the
broker; ``device_peak_rss_mb`` is this process's peak resident memory (it is the device: the
held jobs are submitted by the cloud worker's process, so no copy of a document is made here).

    python -m bench.release_to_engine [--jobs 10] [--n 100] [--page-time S] [--in-process]
                                      [--rtt-ms MS] [--bandwidth B/S] [--json]
"""

from __future__ import annotations

import argparse
import os
import queue
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import report, summary
from cloud.demo import DEMO_USERS, seed_demo
from cloud.directory import submit_job
from cloud.service import CloudService
from cloud.storage.factory import open_store
from cloud.worker import CloudWorker
from device_app.engines.socket import EngineClient
from device_app.link import MqttCloudLink
from device_app.printing.journal import Journal
from device_app.printing.release import Printer
from device_app.session import JobDone, PrintJob
from firmware_stubs.engine_server import EngineProcess
from firmware_stubs.mfd_controller import MfdControllerStub
from protocol import messages as m
from protocol.address import BrokerAddress
from protocol.engine import EngineDone, EngineJob, EngineOutcome, EngineState
from protocol.errors import EngineError
from simulator.broker import MosquittoBroker
from simulator.netem import LinkProfile, WanProxy


class TimedEngine:
    """The engine, with the time each hand-over was accepted."""

    def __init__(self, inner: EngineClient | MfdControllerStub) -> None:
        self.inner = inner
        self.handed: queue.Queue[float] = queue.Queue()

    def state(self) -> EngineState:
        return self.inner.state()

    def outcome(self, engine_id: str) -> EngineOutcome:
        return self.inner.outcome(engine_id)

    def submit(self, job: EngineJob, done: EngineDone) -> None:
        self.inner.submit(job, done)
        self.handed.put(time.perf_counter())

    def submit_many(self, jobs: list[tuple[EngineJob, EngineDone]]) -> list[EngineError | None]:
        if isinstance(self.inner, EngineClient):
            errors = self.inner.submit_many(jobs)
        else:
            errors = []
            for job, done in jobs:
                try:
                    self.inner.submit(job, done)
                    errors.append(None)
                except EngineError as exc:
                    errors.append(exc)
        now = time.perf_counter()  # every one of them accepted (answered) by now
        for _ in jobs:
            self.handed.put(now)
        return errors


def fs_type(path: str) -> str:
    out = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True,
                         check=False).stdout.strip()
    return out or "?"


def bench_document(size: int) -> bytes:
    return (b"%PDF-1.4 bench\n" * (size // 15 + 1))[:size]


def serve_cloud(url: str, host: str, port: int) -> int:
    """The cloud worker in its own process (as deployed: the device never shares a
    interpreter, and its GIL, with the cloud). Serves until stdin closes. Each line
    ``submit EMAIL SIZE NAME...`` on stdin submits a held job (the document made here, not in
    the device's process) and answers its id on stdout."""
    worker = CloudWorker(lambda: CloudService(open_store(url)),
                         BrokerAddress(host, port, "cloud-0", "pw-cloud-0"))
    worker.start()
    store = open_store(url)
    docs: dict[int, bytes] = {}
    print("ready", flush=True)
    for line in sys.stdin:
        _, email, size, name = line.rstrip("\n").split(" ", 3)
        doc = docs.setdefault(int(size), bench_document(int(size)))
        print(submit_job(store, email, name, doc, pages=1), flush=True)
    store.close()
    worker.stop()
    return 0


def submit_held(cloud: subprocess.Popen[str], email: str, size: int, name: str) -> str:
    """A held job submitted by the cloud worker's process (see serve_cloud)."""
    assert cloud.stdin is not None and cloud.stdout is not None
    cloud.stdin.write(f"submit {email} {size} {name}\n")
    cloud.stdin.flush()
    return cloud.stdout.readline().strip()


def start_cloud(url: str, host: str, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.release_to_engine", "--cloud-worker",
                             url, host, str(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise SystemExit("the cloud worker did not start")
    return proc


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--cloud-worker":
        return serve_cloud(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    ap = argparse.ArgumentParser(prog="python -m bench.release_to_engine", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=10)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--size", type=int, default=16 * 1024, help="document bytes (default 16 KiB)")
    ap.add_argument("--page-time", type=float, default=0.02,
                    help="engine seconds per page (default 0.02: still 50 times faster than a "
                    "60 ppm copier; 0 makes every job print and be reported at once, so the "
                    "reports compete with the fetches of later jobs: a stress case)")
    ap.add_argument("--in-process", action="store_true",
                    help="the engine stub in this process instead of the engine server")
    ap.add_argument("--rtt-ms", type=float, default=0.0,
                    help="round trip added between the device and the broker (simulator/netem.py; "
                    "default 0: loopback)")
    ap.add_argument("--bandwidth", type=float, default=0.0,
                    help="that link's bandwidth in bytes/s each way (default 0: uncapped)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    user = DEMO_USERS[0]
    # Long enough for large documents from a cloud that reads them slowly (seconds).
    wait = 30 + args.jobs * args.size / 1e6
    to_handed: list[float] = []
    to_release: list[float] = []
    to_printed: list[float] = []
    with tempfile.TemporaryDirectory(prefix="mfdbench-") as tmp:
        users = {"cloud-0": "pw-cloud-0", "bench-dev": "pw-bench-dev"}
        broker = MosquittoBroker(Path(tmp) / "b", users, cloud_users=("cloud-0",)).start()
        url = f"sqlite:///{tmp}/cloud.db"
        store = open_store(url)
        seed_demo(store, now=time.time(), devices=("bench-dev",), jobs=False)
        cloud = start_cloud(url, broker.host, broker.port)
        wan = WanProxy(broker.host, broker.port, LinkProfile.rtt(args.rtt_ms, args.bandwidth))
        link = MqttCloudLink(BrokerAddress(wan.host, wan.port, "bench-dev",
                                           "pw-bench-dev"), "bench-dev").start()
        process: EngineProcess | None = None
        inner: EngineClient | MfdControllerStub
        if args.in_process:
            inner = MfdControllerStub(state_dir=Path(tmp) / "engine", page_time=args.page_time)
        else:
            process = EngineProcess(Path(tmp) / "engine", page_time=args.page_time).start()
            inner = EngineClient(process.socket_path)
        engine = TimedEngine(inner)
        journal_path = os.path.join(tmp, "device", "journal.db")
        journal = Journal.open(journal_path)
        outcomes: queue.Queue[JobDone] = queue.Queue()
        printer = Printer(link, engine, outcomes.put, journal)
        confirmed = threading.Semaphore(0)

        def tell_cloud(done: JobDone) -> None:
            # What the app does with the session's report of each outcome.
            request: m.Request = m.JobPrinted(request_id="s", release_id=done.release_id,
                                              job_id=done.job_id)
            sent, reply = printer.journal_report(request, lambda _o: confirmed.release())
            link.request(sent, reply)

        try:
            session = link.call(m.Identify("card", user.badge))
            assert isinstance(session, m.IdentifyResult)
            for i in range(args.warmup + args.n):
                # New held jobs each round (outside the measured span): a printed document
                # is not kept by the cloud.
                ids = tuple(submit_held(cloud, user.email, args.size, f"Bench {i}.{k}")
                            for k in range(args.jobs))
                t0 = time.perf_counter()
                result = link.call(m.Release(request_id=f"bench-{i}", session=session.session,
                                             job_ids=ids))
                t1 = time.perf_counter()
                assert isinstance(result, m.ReleaseResult)
                # As the app does with the PrintJob effects of one release: one commit.
                printer.submit_all(PrintJob(result.release_id, job) for job in result.jobs)
                last_printed = t1
                for _ in result.jobs:
                    done = outcomes.get(timeout=wait)
                    if not done.ok:
                        raise SystemExit(f"job {done.job_id} failed: {done.detail}")
                    last_printed = time.perf_counter()
                    tell_cloud(done)
                handed = [engine.handed.get(timeout=10) for _ in result.jobs]
                for _ in result.jobs:
                    if not confirmed.acquire(timeout=10):
                        raise SystemExit("a report was not answered")
                # The journal settles (CONFIRMED rows) before the next user taps, as it does
                # in the seconds between two releases at a copier.
                settle = time.monotonic() + 5
                while journal.unconfirmed() and time.monotonic() < settle:
                    time.sleep(0.001)
                if i >= args.warmup:
                    to_release.append((t1 - t0) * 1000)
                    to_handed.append((max(handed) - t0) * 1000)
                    to_printed.append((last_printed - t0) * 1000)
            deadline = time.monotonic() + 5  # the last answers are journaled on the printer
            while journal.unconfirmed() and time.monotonic() < deadline:  # thread
                time.sleep(0.01)
            if journal.unconfirmed():
                raise SystemExit(f"{len(journal.unconfirmed())} journal rows unconfirmed")
        finally:
            printer.close()
            link.close()
            wan.close()
            assert cloud.stdin is not None
            cloud.stdin.close()
            cloud.wait(timeout=10)
            inner.close()
            if process is not None:
                process.stop()
            broker.stop()
            store.close()
            journal.close()
        fs = fs_type(tmp)
    figures = {"n": args.n, "jobs": args.jobs, "document_bytes": args.size,
               "page_time_s": args.page_time,
               "engine": "in-process" if args.in_process else "engine_server (unix socket)",
               **summary(to_handed), **summary(to_release, "release_"),
               **summary(to_printed, "last_printed_"), "journal_fs": fs,
               "journal_sync": "WAL, synchronous=FULL", "tcp_nodelay": True,
               "rtt_ms": args.rtt_ms, "bandwidth": args.bandwidth,
               # This process is the device (link, printer, journal); the cloud worker, the
               # broker and the engine server run in processes of their own.
               "device_peak_rss_mb": round(
                   resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    report("release_to_engine", figures, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A device app reduced to its release path, run as its own process by test_crash_reconcile.py
so it can be killed (SIGKILL, a power cut) at exact points and a fresh process can reconcile.

    python tests/crash_device.py release --jobs A,B,C [--die-at POINT --die-job B] ...
    python tests/crash_device.py reconcile ...

It wires what the app wires: MqttCloudLink to the real broker and cloud, the engine server
through EngineClient, the journal file, the Printer. ``release`` identifies the badge, releases
the jobs, prints them and reports each outcome the way the app does (Printer.journal_report);
``reconcile`` runs Printer.reconcile and waits until the journal has nothing unconfirmed.

Kill points (``--die-at``), reached by hooks, never by timing:

* ``fetch``              asking for a chunk past the first of the die job's document (mid-fetch)
* ``handed``             HANDED is journaled; the engine is about to be given the job
* ``engine-has-it``      the engine accepted the job (the test holds the engine's queue)
* ``printed-unjournaled`` the engine printed it; the journal has not recorded that yet
* ``printed-untold``     the journal says PRINTED; the cloud has not been told
* ``told-unconfirmed``   the cloud has the report; the journal has not recorded its answer
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import sys
import time
from typing import Any

from device_app.engine_client import EngineClient
from device_app.journal import Journal
from device_app.mqtt_link import MqttCloudLink
from device_app.printing import Printer
from device_app.session import JobDone, PrintJob
from protocol import messages as m
from protocol.address import BrokerAddress
from protocol.engine import EngineDone, EngineJob, EngineOutcome, EngineState
from protocol.errors import MfdError

DIE_AT = ("fetch", "handed", "engine-has-it", "printed-unjournaled", "printed-untold",
          "told-unconfirmed")


def die(point: str) -> None:
    print(f"DYING {point}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


class HookedLink:
    def __init__(self, link: MqttCloudLink, die_at: str, die_job: str) -> None:
        self.inner = link
        self.die_at, self.die_job = die_at, die_job
        self.connected = link.connected
        self.on_connection = None

    def call(self, request: m.Request, timeout: float | None = None) -> m.Result:
        if (self.die_at == "fetch" and isinstance(request, m.FetchDocument)
                and request.job_id == self.die_job and request.offset > 0):
            die("fetch")
        return self.inner.call(request, timeout)

    def request(self, request: m.Request, reply: Any, timeout: float | None = None) -> None:
        self.inner.request(request, reply, timeout)

    def close(self) -> None:
        self.inner.close()


class HookedEngine:
    def __init__(self, engine: EngineClient, die_at: str, die_job: str) -> None:
        self.inner = engine
        self.die_at, self.die_job = die_at, die_job

    def state(self) -> EngineState:
        return self.inner.state()

    def outcome(self, engine_id: str) -> EngineOutcome:
        return self.inner.outcome(engine_id)

    def submit(self, job: EngineJob, done: EngineDone) -> None:
        mine = job.job_id == self.die_job
        if mine and self.die_at == "handed":
            die("handed")

        def hooked(job_id: str, ok: bool, detail: str) -> None:
            if mine and ok and self.die_at == "printed-unjournaled":
                die("printed-unjournaled")
            done(job_id, ok, detail)

        self.inner.submit(job, hooked)
        if mine and self.die_at == "engine-has-it":
            die("engine-has-it")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("release", "reconcile"))
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--device", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--engine", required=True, help="engine server socket")
    ap.add_argument("--journal", required=True)
    ap.add_argument("--badge", default="")
    ap.add_argument("--jobs", default="")
    ap.add_argument("--die-at", choices=DIE_AT, default="")
    ap.add_argument("--die-job", default="")
    ap.add_argument("--timeout", type=float, default=20.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s device %(name)s %(levelname)s %(message)s")

    link = MqttCloudLink(BrokerAddress(args.host, args.port, args.device, args.password),
                         args.device).start()
    engine = EngineClient(args.engine, retry_interval=0.05)
    journal = Journal.open(args.journal)
    outcomes: queue.Queue[JobDone] = queue.Queue()
    hooked_link = HookedLink(link, args.die_at, args.die_job)

    def report(done: JobDone) -> None:
        if done.job_id == args.die_job and done.ok and args.die_at == "printed-untold":
            die("printed-untold")
        outcomes.put(done)

    printer = Printer(hooked_link, HookedEngine(engine, args.die_at, args.die_job), report,
                      journal, settle_interval=0.05, retry_interval=0.5)
    deadline = time.monotonic() + args.timeout

    def settled() -> bool:
        while journal.unconfirmed():
            if time.monotonic() > deadline:
                print("TIMEOUT", [e.job_id for e in journal.unconfirmed()], flush=True)
                return False
            time.sleep(0.02)
        return True

    if args.mode == "reconcile":
        results = printer.reconcile(wait=0.0)
        for r in results:
            print(f"RECONCILED {r.job_id} {r.outcome} told={r.told}", flush=True)
        if not results:
            print("NOTHING", flush=True)
        if any(not r.told for r in results):
            print("WAITING", flush=True)
        ok = settled()
        print("DONE" if ok else "FAILED", flush=True)
        return 0 if ok else 1

    session = link.call(m.Identify("card", args.badge))
    assert isinstance(session, m.IdentifyResult)
    job_ids = tuple(j for j in args.jobs.split(",") if j)
    result = link.call(m.Release(request_id=f"crash-{os.getpid()}-{time.time_ns()}",
                                 session=session.session, job_ids=job_ids))
    assert isinstance(result, m.ReleaseResult)
    print(f"RELEASED {result.release_id} {','.join(j.job_id for j in result.jobs)}", flush=True)
    printer.submit_all(PrintJob(result.release_id, job) for job in result.jobs)
    for _ in result.jobs:
        done = outcomes.get(timeout=max(0.1, deadline - time.monotonic()))
        print(f"OUTCOME {done.job_id} {'printed' if done.ok else 'failed'} {done.detail}",
              flush=True)
        # What the app does with the session's report.
        request: m.Request = (m.JobPrinted(request_id="from-session", release_id=done.release_id,
                                           job_id=done.job_id) if done.ok else
                              m.JobFailed(request_id="from-session", release_id=done.release_id,
                                          job_id=done.job_id, reason=done.detail[:200]))
        sent, reply = printer.journal_report(request, lambda _o: None)
        if done.job_id == args.die_job and args.die_at == "told-unconfirmed":
            answer: queue.Queue[m.Result | MfdError] = queue.Queue()
            link.request(sent, answer.put)
            answer.get(timeout=5)
            die("told-unconfirmed")
        link.request(sent, reply)
    ok = settled()
    printer.close()
    link.close()
    engine.close()
    print("DONE" if ok else "FAILED", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Release of N held jobs: from the release request sent to the answer that has every job
RELEASING (the cloud's exactly-once bookkeeping: guarded state changes for each job, the
release record, the stored answer for repeats, the audit entry, one transaction), through real
Mosquitto on loopback with one cloud worker.

    python -m bench.release_jobs [--jobs 50] [--n 200] [--store URL] [--json]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import report, summary
from cloud.demo import DEMO_USERS, seed_demo
from cloud.directory import submit_job
from cloud.service import CloudService
from cloud.storage.factory import open_store
from cloud.worker import CloudWorker
from device_app.link import MqttCloudLink
from protocol import messages as m
from protocol.address import BrokerAddress
from simulator.broker import MosquittoBroker


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.release_jobs", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--store", help="store URL (default: a fresh SQLite file)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    user = DEMO_USERS[0]
    with tempfile.TemporaryDirectory(prefix="mfdbench-") as tmp:
        users = {"cloud-0": "pw-cloud-0", "bench-dev": "pw-bench-dev"}
        broker = MosquittoBroker(Path(tmp) / "b", users, cloud_users=("cloud-0",)).start()
        url = args.store or f"sqlite:///{tmp}/cloud.db"
        store = open_store(url)
        seed_demo(store, now=time.time(), devices=("bench-dev",), jobs=False)
        doc = b"%PDF-1.4 bench\n" * 64
        for i in range(args.jobs):
            submit_job(store, user.email, f"Bench job {i}", doc, pages=1)
        worker = CloudWorker(lambda: CloudService(open_store(url)),
                             BrokerAddress(broker.host, broker.port, "cloud-0", "pw-cloud-0"))
        worker.start()
        link = MqttCloudLink(BrokerAddress(broker.host, broker.port, "bench-dev",
                                           "pw-bench-dev"), "bench-dev").start()
        samples: list[float] = []
        released = 0
        try:
            session = link.call(m.Identify("card", user.badge))
            assert isinstance(session, m.IdentifyResult)
            for i in range(args.warmup + args.n):
                t0 = time.perf_counter()
                result = link.call(m.Release(request_id=f"bench-{i}", session=session.session,
                                             job_ids=(), all_held=True))
                t1 = time.perf_counter()
                assert isinstance(result, m.ReleaseResult)
                released = len(result.jobs)
                if released != args.jobs:
                    raise SystemExit(f"released {released}, expected {args.jobs}")
                if i >= args.warmup:
                    samples.append((t1 - t0) * 1000)
                # Put the jobs back for the next sample (outside the measured span).
                with store.transaction():
                    store.execute("UPDATE jobs SET state='HELD', release_id=NULL, "
                                  "device_id=NULL WHERE state='RELEASING'")
        finally:
            link.close()
            worker.stop()
            broker.stop()
            store.close()
    figures = {"n": args.n, "jobs": released, "store": url.split(":", 1)[0],
               **summary(samples), "tcp_nodelay": True}
    report("release_jobs", figures, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

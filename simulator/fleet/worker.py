"""One cloud worker process serving every broker of the fleet:
``python -m simulator.fleet.worker --name cloud-0 --store URL --broker URL [--broker URL ...]``
(password in ``MFD_CLOUD_PASSWORD``). What ``mfd cloud --broker ... --broker ...`` runs, minus
the web front end, so the fleet can kill -9 a worker for real. Prints ``ready`` once connected;
stops on SIGTERM. ``--stats-s S``: the worker's counters on stderr every S seconds."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time

from cloud.service import CloudService
from cloud.storage.factory import open_store
from cloud.worker import default_lanes, start_workers, worker_brokers


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m simulator.fleet.worker")
    p.add_argument("--name", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--broker", action="append", required=True)
    p.add_argument("--lanes", type=int,
                   help="request threads (mfd cloud --lanes; default: as mfd cloud's)")
    p.add_argument("--stats-s", type=float, default=0.0,
                   help="print the worker's counters on stderr this often (0: never)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    brokers = worker_brokers(args.broker, args.name, os.environ["MFD_CLOUD_PASSWORD"])
    url = args.store
    workers = start_workers(lambda: CloudService(open_store(url, create=False)), brokers, 1,
                            lanes=default_lanes(url) if args.lanes is None else args.lanes)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print("ready", flush=True)
    t0 = time.monotonic()
    while not done.wait(args.stats_s or None):
        # Diagnostics (bench.fleet --worker-stats-s): where the worker's time goes.
        w = workers[0]
        print(f"stats {args.name} t={time.monotonic() - t0:.0f} handled={w.handled} "
              f"busy={w.busy} max_waited={w.max_waited} statuses={w.statuses} "
              f"status_batches={w.status_writer.batches} written={w.status_writer.written} "
              f"waiting={w.status_writer.waiting} failed={w.failed} "
              # Answers paho holds (in flight and queued behind its in-flight window), per
              # leg: a private attribute, read for diagnostics only.
              f"out={[len(getattr(leg.client, '_out_messages', ())) for leg in w.legs]}",
              file=sys.stderr, flush=True)
        w.max_waited = 0
    for w in workers:
        w.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Requests per second of the cloud service on each store backend, in-process (no broker).

Each sample is what a copier does when a badge is presented: ``identify`` (card) then
``jobs.list`` through ``CloudService.handle``, bytes in and bytes out, both write transactions
(a new session; the session's sliding expiry). Run for a fixed time per configuration: SQLite
(WAL, a temporary file) and PostgreSQL (a scratch database on the server, dropped afterwards),
each with 1 and 2 threads; every thread has its own store connection and service, as a cloud
worker does. The figure is requests (not pairs) per second, all threads together, with the
latency of one pair per thread.

    python -m bench.store_backends [--seconds 3] [--pg URL] [--json]

``--pg`` is a server URL to create the scratch database on (default: ``MFD_TEST_PG``, else
postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from bench.common import report, summary
from cloud.demo import DEMO_DEVICES, DEMO_USERS, seed_demo
from cloud.service import CloudService
from cloud.storage.factory import open_store
from cloud.storage.sql import SqlStore
from cloud.throttle import NO_THROTTLES
from protocol import messages as m

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def scratch_pg(server: str) -> Iterator[str]:
    """A new database on the server for this run; its URL. Dropped afterwards."""
    name = f"mfdkit_bench_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True, connect_timeout=5) as con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(server)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    finally:
        with psycopg.connect(server, autocommit=True, connect_timeout=5) as con:
            con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def badge_pair(service: CloudService, device: str, badge: str) -> None:
    """identify + jobs.list, as a copier does it; an error answer stops the bench."""
    who = m.decode_response(service.handle(device, m.encode(m.Identify("card", badge))),
                            "identify")
    assert isinstance(who, m.IdentifyResult)
    jobs = m.decode_response(service.handle(device, m.encode(m.ListJobs(who.session))),
                             "jobs.list")
    assert isinstance(jobs, m.JobList) and jobs.total > 0


def measure(open_one: Callable[[], SqlStore], threads: int, seconds: float,
            warmup: float) -> tuple[float, list[float]]:
    """(requests per second over all threads, per-pair latencies in ms)."""
    start = threading.Barrier(threads + 1)
    stop = threading.Event()
    counting = threading.Event()
    pairs = [0] * threads
    latencies: list[list[float]] = [[] for _ in range(threads)]
    failures: list[BaseException] = []

    def worker(i: int) -> None:
        store = open_one()
        # Badge sign-ins at machine speed are what the throttles stop: off, to measure the store.
        service = CloudService(store, throttles=NO_THROTTLES)
        device, badge = DEMO_DEVICES[i % len(DEMO_DEVICES)], DEMO_USERS[i % 3].badge
        try:
            start.wait()
            while not stop.is_set():
                t0 = time.perf_counter()
                badge_pair(service, device, badge)
                if counting.is_set():
                    latencies[i].append((time.perf_counter() - t0) * 1000)
                    pairs[i] += 1
        except BaseException as exc:
            failures.append(exc)
            stop.set()
        finally:
            store.close()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    time.sleep(warmup)
    counting.set()
    t0 = time.perf_counter()
    time.sleep(seconds)
    counting.clear()
    elapsed = time.perf_counter() - t0
    stop.set()
    for t in pool:
        t.join()
    if failures:
        raise SystemExit(f"bench failed: {failures[0]!r}")
    return 2 * sum(pairs) / elapsed, [x for per in latencies for x in per]


def run(name: str, url: str, seconds: float, warmup: float) -> dict[str, float]:
    store = open_store(url)
    seed_demo(store, now=time.time())
    store.close()
    figures: dict[str, float] = {}
    for threads in (1, 2):
        rps, ms = measure(lambda: open_store(url), threads, seconds, warmup)
        figures[f"{name}_{threads}t_req_per_s"] = round(rps)
        figures.update(summary(ms, f"{name}_{threads}t_pair_"))
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.store_backends", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="per configuration (default 3)")
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--pg", default=os.environ.get("MFD_TEST_PG") or DEFAULT_PG,
                    help="PostgreSQL server URL to create a scratch database on")
    ap.add_argument("--json", action="store_true", help="print one JSON object last")
    args = ap.parse_args()

    figures: dict[str, object] = {"seconds_each": args.seconds}
    with tempfile.TemporaryDirectory() as tmp:
        figures.update(run("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", args.seconds,
                           args.warmup))
    with ExitStack() as stack:
        try:
            pg_url = stack.enter_context(scratch_pg(args.pg))
        except psycopg.Error as exc:
            raise SystemExit(f"no PostgreSQL at {urlsplit(args.pg).netloc}: "
                             f"{str(exc).strip().splitlines()[0]}; pass --pg URL") from None
        with psycopg.connect(pg_url) as con:
            row = con.execute("SHOW server_version").fetchone()
        figures["postgres_version"] = str(row[0]) if row else "?"
        figures.update(run("postgres", pg_url, args.seconds, args.warmup))
    report("store_backends", figures, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Identify requests per second through real Mosquitto, beside a no-op responder.

One load generator (a device's paho client, TCP no-delay, in its own process) keeps ``--window``
requests in flight
(FIELD_NOTES: bound the requests in flight) and sends ``--n`` card identifies, a quarter of
them unknown cards. The same load runs twice against the same private broker:

* ``noop_per_s``: a paho responder on the cloud's shared subscription that answers every request
  with a fixed payload and does nothing else: the ceiling of paho + Mosquitto here;
* ``identify_per_s``: the real cloud worker(s) (decode, validate, HMAC, store lookup, session
  insert, audit, JSON answer) on SQLite or PostgreSQL, each worker a process of its own.

``--workers 1,2`` measures each count in every round (``identify_per_s_by_workers``,
``gain_by_workers``): does adding a worker add throughput? Where a rate goes:
``worker_cpu_us_per_identify`` (the worker processes' CPU over the measured run, per identify)
and ``noop_cpu_us_per_request`` (the responder's process, idle but for it); and the whole machine's
(every process: load, broker, responder or worker, PostgreSQL): ``machine_cpu_us_per_noop``,
``machine_cpu_us_per_identify``, with ``machine_busy_cores_noop`` / ``_identify`` (of the
machine's cores) and ``steal_share`` (of the measured time, the VM's cores ran another tenant),
each phase's split by process (``machine_cpu_us_per_noop_by_process``, ``..._identify_...``:
load, broker, responder, worker, postgres, other).
At its machine cost identify cannot go faster than every core busy with it allows,
``identify_ceiling_per_s``, whatever the worker does with its waits; over the no-op's rate,
``ratio_ceiling``: the ratio this machine's cores allow the code as it is. ``--copiers N``
sends the load from N copiers in turn (one paho client each) instead of one, whose requests a
worker does in order.

    python -m bench.cloud_identify [--n 5000] [--window 100] [--workers 1[,2...]]
                                   [--store postgresql://...] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import multiprocessing.queues
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt

from bench.common import report
from bench.store_backends import scratch_pg
from cloud.demo import DEMO_USERS, seed_demo
from cloud.service import CloudService
from cloud.storage.factory import is_postgres, open_store
from cloud.throttle import NO_THROTTLES
from cloud.worker import CloudWorker, default_lanes
from mqtt_client import new_client, publish_properties
from protocol import messages as m
from protocol import topics
from protocol.address import BrokerAddress
from simulator.broker import MosquittoBroker
from simulator.stats import cpu_seconds, machine_cpu, processes_cpu

DEVICE = "bench-dev"


def _client(broker: MosquittoBroker, user: str) -> mqtt.Client:
    c = new_client(user, user, f"pw-{user}")  # the set-up the device and the worker use
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    return c


def _connect(c: mqtt.Client, broker: MosquittoBroker) -> None:
    ready = threading.Event()
    c.on_connect = lambda *_a: ready.set()
    c.connect(broker.host, broker.port)
    c.loop_start()
    if not ready.wait(5):
        raise SystemExit("the benchmark client could not connect to the broker")


class Noop:
    def __init__(self, broker: MosquittoBroker) -> None:
        self.client = _client(broker, "cloud-noop")
        answer = m.encode_error("identify", "unknown_card", "noop")

        def on_message(c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            out = publish_properties()  # as the worker's answers
            out.CorrelationData = msg.properties.CorrelationData  # type: ignore[union-attr]
            c.publish(msg.properties.ResponseTopic, answer, qos=1,  # type: ignore[union-attr]
                      properties=out)

        self.client.on_message = on_message
        _connect(self.client, broker)
        self.client.subscribe(topics.CLOUD_REQUEST_SUBSCRIPTION, qos=1)
        time.sleep(0.2)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _own_cpu_s() -> float:
    """This process's CPU seconds: the no-op responder's paho thread, the rest waits."""
    t = os.times()
    return t.user + t.system


def _role(pid: int, name: str, load: Load, workers: set[int]) -> str:
    """Which part of the run a process is: the load generator, the broker, the no-op
    responder (this process), a cloud worker, PostgreSQL (its backends and its own
    processes), or anything else on the machine."""
    if pid == load.load_pid:
        return "load"
    if name == "mosquitto":
        return "broker"
    if pid == os.getpid():
        return "responder"
    if pid in workers:
        return "worker"
    if name.startswith("postgres"):
        return "postgres"
    return "other"


def _machine_figures(machine: dict[str, list[Load]], n: int, noop_rate: float,
                     workers: set[int]) -> dict[str, Any]:
    """Medians of the whole machine's CPU per request, busy cores and steal, per phase, and
    the identify rate (and ratio) at which identify alone would keep every core busy."""
    out: dict[str, Any] = {}
    cores = os.cpu_count() or 1
    for phase in ("noop", "identify"):
        runs = machine[phase]
        out[f"machine_cpu_us_per_{phase}"] = round(
            statistics.median(1e6 * r.busy_s / n for r in runs), 1)
        out[f"machine_busy_cores_{phase}"] = round(
            statistics.median(r.busy_s / r.wall_s for r in runs), 2)
    out["steal_share"] = round(statistics.median(
        r.steal_s / (r.wall_s * cores) for r in (*machine["noop"], *machine["identify"])), 3)
    for phase, runs in machine.items():
        out[f"machine_cpu_us_per_{phase}_by_process"] = {
            role: round(statistics.median(
                1e6 * sum(cpu for pid, (name, cpu) in r.by_process.items()
                          if _role(pid, name, r, workers) == role) / n for r in runs), 1)
            for role in ("load", "broker", "responder", "worker", "postgres", "other")}
    ceiling = 1e6 * cores / out["machine_cpu_us_per_identify"]
    out["identify_ceiling_per_s"] = round(ceiling, 1)
    out["ratio_ceiling"] = round(ceiling / noop_rate, 3)
    return out


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a count or counts, as 1 or 1,2") \
            from None
    if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"{text!r}: counts of at least 1, each once")
    return counts


class WorkerProcesses:
    """Cloud workers, each in a process of its own as ``mfd cloud`` runs them in a fleet: in
    one process they would share one GIL, and a second would add little but contention."""

    def __init__(self, broker: MosquittoBroker, url: str, users: Sequence[str],
                 lanes: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.stop = ctx.Event()
        ready: multiprocessing.queues.Queue[str] = ctx.Queue()
        self.procs = [ctx.Process(target=_worker_process,
                                  args=(broker.host, broker.port, u, url, lanes, ready,
                                        self.stop)) for u in users]
        for proc in self.procs:
            proc.start()
        try:
            for _ in self.procs:
                failure = ready.get(timeout=60)
                if failure:
                    raise SystemExit(f"a cloud worker did not start: {failure}")
        except BaseException:
            self.__exit__()
            raise

    def __enter__(self) -> WorkerProcesses:
        return self

    def cpu_s(self) -> float:
        """CPU seconds the worker processes have used so far (user and system, /proc)."""
        return sum(cpu_seconds(proc.pid) for proc in self.procs if proc.pid is not None)

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for proc in self.procs:
            proc.join(timeout=20)
            if proc.is_alive():
                proc.kill()
                proc.join()


def _worker_process(host: str, port: int, user: str, url: str, lanes: int,
                    ready: multiprocessing.queues.Queue[str],
                    stop: threading.Event) -> None:
    """One cloud worker, unthrottled (unknown badges at machine speed would start the badge
    throttles; the bench measures identify itself), until told to stop."""
    try:
        worker = CloudWorker(lambda: CloudService(open_store(url), throttles=NO_THROTTLES),
                             BrokerAddress(host, port, user, f"pw-{user}"), lanes=lanes).start()
    except Exception as exc:  # the parent says it and stops
        ready.put(f"{user}: {exc}")
        return
    time.sleep(0.2)  # its subscription reaches the broker
    ready.put("")
    stop.wait()
    worker.stop()


class Load(NamedTuple):
    """A measured load run: requests per second, unexpected errors, and the whole machine's
    busy and stolen CPU seconds over the timed part (sending the first to the last answer)."""

    rate: float
    errors: int
    busy_s: float
    steal_s: float
    wall_s: float
    #: CPU seconds each process used over the same part: pid -> (command name, seconds).
    by_process: dict[int, tuple[str, float]]
    #: The load generator's own pid, to tell it apart from the other Python processes.
    load_pid: int


def run_load(broker: MosquittoBroker, n: int, window: int,
             devices: Sequence[str] = (DEVICE,)) -> Load:
    """The load generator, in a process of its own: devices are other machines, and in one
    process the generator's Python work and the responder's would share one GIL."""
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.queues.Queue[Load] = ctx.Queue()
    proc = ctx.Process(target=_load_process,
                       args=(broker.host, broker.port, n, window, tuple(devices), results))
    proc.start()
    try:
        return results.get(timeout=180)
    finally:
        proc.join(timeout=10)


def _load_process(host: str, port: int, n: int, window: int, devices: tuple[str, ...],
                  results: multiprocessing.queues.Queue[Load]) -> None:
    broker = MosquittoBroker(".")
    broker.host, broker.port = host, port
    results.put(_run_load(broker, n, window, devices))


def _run_load(broker: MosquittoBroker, n: int, window: int,
              devices: Sequence[str] = (DEVICE,)) -> Load:
    """Send n identifies with ``window`` in flight, in turn from each of ``devices`` (a copier's
    paho client each)."""
    slots = threading.Semaphore(window)
    done = threading.Event()
    lock = threading.Lock()
    count = [0]
    bad = [0]

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            m.decode_response(bytes(msg.payload), "identify")
            wrong = False
        except Exception as exc:  # an error answer is still an answer
            wrong = getattr(exc, "code", "") not in ("unknown_card",)
        with lock:  # one paho thread per copier
            bad[0] += wrong
            count[0] += 1
            if count[0] >= n:
                done.set()
        slots.release()

    clients = []
    for device in devices:
        c = _client(broker, device)
        c.on_message = on_message
        _connect(c, broker)
        c.subscribe(topics.response_topic(device), qos=1)
        clients.append((c, topics.request_topic(device), topics.response_topic(device)))
    time.sleep(0.2)
    payloads = [m.encode(m.Identify("card", DEMO_USERS[i % 3].badge if i % 4 else "0000000001"))
                for i in range(4)]
    procs0 = processes_cpu()
    busy0, steal0 = machine_cpu()
    started = time.perf_counter()
    for i in range(n):
        slots.acquire()
        c, request_topic, response_topic = clients[i % len(clients)]
        props = publish_properties()  # as the device's requests
        props.ResponseTopic = response_topic
        props.CorrelationData = i.to_bytes(4, "big")
        props.MessageExpiryInterval = topics.REQUEST_EXPIRY
        c.publish(request_topic, payloads[i % 4], qos=1, properties=props)
    if not done.wait(120):
        raise SystemExit(f"only {count[0]} of {n} answers arrived")
    elapsed = time.perf_counter() - started
    busy1, steal1 = machine_cpu()
    procs1 = processes_cpu()
    used = {pid: (name, cpu - procs0[pid][1] if pid in procs0 else cpu)
            for pid, (name, cpu) in procs1.items()}
    for c, _req, _res in clients:
        c.disconnect()
        c.loop_stop()
    return Load(n / elapsed, bad[0], busy1 - busy0, steal1 - steal0, elapsed,
                {pid: v for pid, v in used.items() if v[1] > 0}, os.getpid())


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.cloud_identify", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--workers", type=_counts, default=[1], metavar="N[,N...]",
                    help="cloud worker processes (1); a list (1,2) measures each count in "
                    "every round: whether adding a worker adds throughput")
    ap.add_argument("--lanes", type=int,
                    help="request threads per worker (default: mfd cloud's for the store, 4 on "
                    "PostgreSQL, 0 on SQLite; 0: on paho's thread)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs of each (median)")
    ap.add_argument("--store", help="store URL (default: a fresh SQLite file); a PostgreSQL "
                    "URL names the server, where the run makes a database of its own and drops "
                    "it afterwards")
    ap.add_argument("--copiers", type=int, default=1,
                    help="copiers the load comes from, in turn (1: one copier, whose requests "
                    "a worker does one after another, in order)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    counts: list[int] = args.workers
    if args.copiers < 1:
        ap.error("--copiers must be at least 1")
    devices = [DEVICE] if args.copiers == 1 else [f"{DEVICE}-{i}" for i in range(args.copiers)]

    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="mfdbench-"))
        # A PostgreSQL URL names the server: the run seeds a database of its own there, so a
        # second run (or the server's own databases) never meets the first one's rows.
        url = stack.enter_context(scratch_pg(args.store)) if args.store and \
            is_postgres(args.store) else args.store or f"sqlite:///{tmp}/cloud.db"
        cloud_users = (*(f"cloud-{i}" for i in range(max(counts))), "cloud-noop")
        users = {u: f"pw-{u}" for u in (*cloud_users, *devices)}
        broker = MosquittoBroker(Path(tmp) / "b", users, cloud_users=cloud_users).start()
        lanes = default_lanes(url) if args.lanes is None else args.lanes
        store = open_store(url)
        seed_demo(store, now=time.time(), devices=tuple(devices), jobs=False)
        noop_rates: list[float] = []
        rates: dict[int, list[float]] = {count: [] for count in counts}
        # CPU per request (all worker processes together; the no-op: this process, which
        # only responds while the load runs in its own process): where a rate goes.
        noop_cpu: list[float] = []
        cpu: dict[int, list[float]] = {count: [] for count in counts}
        # Each measured run of each phase, with the whole machine's CPU over it (Load).
        machine: dict[str, list[Load]] = {"noop": [], "identify": []}
        worker_pids: set[int] = set()
        bad = 0
        try:
            # Alternate the two, several rounds, and keep medians: on 2 shared cores a single
            # run is at the mercy of whatever else the machine does.
            for _round in range(args.rounds):
                noop = Noop(broker)
                run_load(broker, min(500, args.n), args.window, devices)  # warm-up
                before = _own_cpu_s()
                load = run_load(broker, args.n, args.window, devices)
                noop_rates.append(load.rate)
                machine["noop"].append(load)
                noop_cpu.append((_own_cpu_s() - before) / args.n)
                noop.stop()
                for count in counts:
                    with WorkerProcesses(broker, url, cloud_users[:count], lanes) as workers:
                        worker_pids.update(p.pid for p in workers.procs if p.pid is not None)
                        run_load(broker, min(500, args.n), args.window, devices)  # warm-up
                        before = workers.cpu_s()
                        load = run_load(broker, args.n, args.window, devices)
                        rate, errors = load.rate, load.errors
                        if count == counts[0]:
                            machine["identify"].append(load)
                        cpu[count].append((workers.cpu_s() - before) / args.n)
                    rates[count].append(rate)
                    bad += errors
        finally:
            broker.stop()
            store.close()
    noop_rate = statistics.median(noop_rates)
    by_workers = {count: statistics.median(rates[count]) for count in counts}
    rate = by_workers[counts[0]]
    figures: dict[str, Any] = {
        "n": args.n, "window": args.window, "copiers": args.copiers, "workers": counts[0],
        "lanes": lanes,
        "rounds": args.rounds, "store": url.split(":", 1)[0],
        "noop_per_s": round(noop_rate, 1), "identify_per_s": round(rate, 1),
        "ratio": round(rate / noop_rate, 3), "noop_runs": [round(r) for r in noop_rates],
        "identify_runs": [round(r) for r in rates[counts[0]]],
        "unexpected_errors": bad, "tcp_nodelay": True,
        "noop_cpu_us_per_request": round(1e6 * statistics.median(noop_cpu), 1),
        "worker_cpu_us_per_identify": round(1e6 * statistics.median(cpu[counts[0]]), 1)}
    figures |= _machine_figures(machine, args.n, noop_rate, worker_pids)
    if len(counts) > 1:
        # Each count's median, and what each over the first one answers (1.0: no gain).
        figures["identify_per_s_by_workers"] = {str(c): round(r, 1)
                                                for c, r in by_workers.items()}
        figures["runs_by_workers"] = {str(c): [round(r) for r in rates[c]] for c in counts}
        figures["worker_cpu_us_per_identify_by_workers"] = {
            str(c): round(1e6 * statistics.median(cpu[c]), 1) for c in counts}
        figures["gain_by_workers"] = {str(c): round(r / rate, 3)
                                      for c, r in by_workers.items()}
    report("cloud_identify", figures, args.json)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    raise SystemExit(main())

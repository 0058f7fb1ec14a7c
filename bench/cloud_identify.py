"""Identify requests per second through real Mosquitto, beside a no-op responder.

One load generator (a device's paho client, TCP no-delay, in its own process) keeps ``--window``
requests in flight
(FIELD_NOTES: bound the requests in flight) and sends ``--n`` card identifies, a quarter of
them unknown cards. The same load runs twice against the same private broker:

* ``noop_per_s``: a paho responder on the cloud's shared subscription that answers every request
  with a fixed payload and does nothing else: the ceiling of paho + Mosquitto here;
* ``identify_per_s``: the real cloud worker(s) (decode, validate, HMAC, store lookup, session
  insert, audit, JSON answer) on SQLite or PostgreSQL.

    python -m bench.cloud_identify [--n 5000] [--window 100] [--workers 1]
                                   [--store postgresql://...] [--json]
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.queues
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.common import report
from cloud.demo import DEMO_USERS, seed_demo
from cloud.service import CloudService
from cloud.storage.factory import open_store
from cloud.throttle import NO_THROTTLES
from cloud.worker import CloudWorker, default_lanes
from mqtt_client import new_client
from protocol import messages as m
from protocol import topics
from protocol.address import BrokerAddress
from simulator.broker import MosquittoBroker

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
            out = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
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


def run_load(broker: MosquittoBroker, n: int, window: int) -> tuple[float, int]:
    """The load generator, in a process of its own: devices are other machines, and in one
    process the generator's Python work and the responder's would share one GIL."""
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.queues.Queue[tuple[float, int]] = ctx.Queue()
    proc = ctx.Process(target=_load_process, args=(broker.host, broker.port, n, window, results))
    proc.start()
    try:
        return results.get(timeout=180)
    finally:
        proc.join(timeout=10)


def _load_process(host: str, port: int, n: int, window: int,
                  results: multiprocessing.queues.Queue[tuple[float, int]]) -> None:
    broker = MosquittoBroker(".")
    broker.host, broker.port = host, port
    results.put(_run_load(broker, n, window))


def _run_load(broker: MosquittoBroker, n: int, window: int) -> tuple[float, int]:
    """Send n identifies with ``window`` in flight; (requests per second, errors seen)."""
    c = _client(broker, DEVICE)
    slots = threading.Semaphore(window)
    done = threading.Event()
    count = [0]
    bad = [0]

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            m.decode_response(bytes(msg.payload), "identify")
        except Exception as exc:  # an error answer is still an answer
            if getattr(exc, "code", "") not in ("unknown_card",):
                bad[0] += 1
        count[0] += 1
        slots.release()
        if count[0] >= n:
            done.set()

    c.on_message = on_message
    _connect(c, broker)
    c.subscribe(topics.response_topic(DEVICE), qos=1)
    time.sleep(0.2)
    payloads = [m.encode(m.Identify("card", DEMO_USERS[i % 3].badge if i % 4 else "0000000001"))
                for i in range(4)]
    started = time.perf_counter()
    for i in range(n):
        slots.acquire()
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = topics.response_topic(DEVICE)
        props.CorrelationData = i.to_bytes(4, "big")
        props.MessageExpiryInterval = topics.REQUEST_EXPIRY
        c.publish(topics.request_topic(DEVICE), payloads[i % 4], qos=1, properties=props)
    if not done.wait(120):
        raise SystemExit(f"only {count[0]} of {n} answers arrived")
    elapsed = time.perf_counter() - started
    c.disconnect()
    c.loop_stop()
    return n / elapsed, bad[0]


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.cloud_identify", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--lanes", type=int,
                    help="request threads per worker (default: mfd cloud's for the store, 4 on "
                    "PostgreSQL, 0 on SQLite; 0: on paho's thread)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs of each (median)")
    ap.add_argument("--store", help="store URL (default: a fresh SQLite file)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="mfdbench-") as tmp:
        cloud_users = (*(f"cloud-{i}" for i in range(args.workers)), "cloud-noop")
        users = {u: f"pw-{u}" for u in (*cloud_users, DEVICE)}
        broker = MosquittoBroker(Path(tmp) / "b", users, cloud_users=cloud_users).start()
        url = args.store or f"sqlite:///{tmp}/cloud.db"
        lanes = default_lanes(url) if args.lanes is None else args.lanes
        store = open_store(url)
        seed_demo(store, now=time.time(), devices=(DEVICE,), jobs=False)
        noop_rates: list[float] = []
        rates: list[float] = []
        bad = 0
        try:
            # Alternate the two, several rounds, and keep medians: on 2 shared cores a single
            # run is at the mercy of whatever else the machine does.
            for _round in range(args.rounds):
                noop = Noop(broker)
                run_load(broker, min(500, args.n), args.window)  # warm-up
                noop_rates.append(run_load(broker, args.n, args.window)[0])
                noop.stop()
                # Unknown badges at machine speed: unthrottled, to measure identify itself.
                workers = [CloudWorker(lambda: CloudService(open_store(url),
                                                            throttles=NO_THROTTLES),
                                       BrokerAddress(broker.host, broker.port, u, f"pw-{u}"),
                                       lanes=lanes)
                           .start() for u in cloud_users[:-1]]
                time.sleep(0.2)
                run_load(broker, min(500, args.n), args.window)  # warm-up
                rate, errors = run_load(broker, args.n, args.window)
                rates.append(rate)
                bad += errors
                for w in workers:
                    w.stop()
        finally:
            broker.stop()
            store.close()
    noop_rate, rate = statistics.median(noop_rates), statistics.median(rates)
    figures = {"n": args.n, "window": args.window, "workers": args.workers,
               "lanes": lanes, "rounds": args.rounds,
               "store": url.split(":", 1)[0], "noop_per_s": round(noop_rate, 1),
               "identify_per_s": round(rate, 1), "ratio": round(rate / noop_rate, 3),
               "noop_runs": [round(r) for r in noop_rates],
               "identify_runs": [round(r) for r in rates],
               "unexpected_errors": bad, "tcp_nodelay": True}
    report("cloud_identify", figures, args.json)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    raise SystemExit(main())

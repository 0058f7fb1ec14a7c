"""Many simulated copiers on one asyncio loop: ``python -m simulator.fleet.device SPEC OUT``.

SPEC is a JSON file (:class:`Spec`'s fields); OUT is where the results go, written when the
process gets SIGTERM (or its ``duration_s`` is over) and every request in flight has settled.
The process prints ``connected N`` once all its devices have connected once: the orchestrator
waits on that line. SIGUSR1 takes a checkpoint: no new badge starts, those in flight settle, the
records so far are written to OUT, ``drained K`` is printed, and the devices stay paused until
SIGUSR2 (the orchestrator counts the cloud's store meanwhile, at the same moment).

Each device is one gmqtt client (MQTT 5, asyncio) and two tasks: the link (connect, subscribe to
its reply topic, publish a retained ``online`` status with a Last Will, read answers; on a lost
connection reconnect after a jittered, doubling wait) and the cycle (badge, list, sometimes a
release, logout; the next badge after an exponential pause, so arrivals are Poisson).

Why gmqtt: the simulated devices share the machine with the cloud they load, so every
microsecond they spend is taken from what is measured. gmqtt speaks MQTT on asyncio's own
transports; aiomqtt (used before) drives paho's socket loop through callbacks: measured here,
one request-answer round trip cost a device process 97 us with gmqtt against 298 us with
aiomqtt (300 clients in one process, 6,000 round trips, against one Mosquitto).

Requests behave as the real device's link does (device_app/link.py): a read without an answer
within ``timeout`` is asked again; a mutating request (with a ``request_id``) is published again
unchanged, same Correlation Data, after every timeout and reconnect, until an answer settles it;
``busy`` and ``internal`` settle nothing and are asked again after ``retry_after``. A request
that nothing settles within ``resolve_s`` is *unanswered*, and listed by its id.

Reconnects: the first wait is drawn at random in [0.5, 1.5) s per outage and doubles up to
:data:`mqtt_client.DEFAULT_MAX_BACKOFF_S`, as :func:`mqtt_client.jitter_reconnect` sets paho up
for the real device. gmqtt would reconnect by itself at a fixed delay, resuming the session
(no jitter: a synchronised wave), so each connection is a client of its own that never
reconnects (:class:`_OneConnection`), and the rule is applied here, with a clean start each
time, as the real device connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import gmqtt

from mqtt_client import DEFAULT_MAX_BACKOFF_S
from protocol import messages as m
from protocol import topics
from protocol.errors import ProtocolError, RemoteError
from simulator.fleet import card_of, device_id

#: Answers that settle nothing: the same request is asked again after ``retry_after``.
RETRY_CODES = frozenset({"busy", "internal"})


async def _unless_lost(step: Any, lost: asyncio.Event, timeout: float) -> None:
    """Await ``step`` (a connect, a SUBACK) unless the connection is lost first or ``timeout``
    passes: gmqtt's connect waits for its CONNACK even on a connection already gone, where
    paho (the real device) fails at once."""
    task = asyncio.ensure_future(step)
    gone = asyncio.ensure_future(lost.wait())
    try:
        done, _ = await asyncio.wait({task, gone}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if task in done:
        task.result()
        return
    task.cancel()
    raise ConnectionError("lost while connecting") if gone in done else TimeoutError()


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _OneConnection(gmqtt.Client):  # type: ignore[misc]
    """A gmqtt client for one connection: it does not reconnect by itself (the device's link
    does, with the real device's jittered rule)."""

    async def reconnect(self, delay: bool = False) -> None:
        del delay


@dataclass
class Spec:
    """What one fleet process runs."""

    #: (device index, broker host, broker port) for each device of this process.
    devices: list[tuple[int, str, int]]
    password_seed: str
    #: Mean pause between two badges of one device (s): 60 is one badge a minute.
    badge_period_s: float = 60.0
    #: Chance that a badge ends in a release of one job.
    release_chance: float = 0.3
    #: Initial connects spread over this long (s).
    ramp_s: float = 5.0
    timeout: float = 3.0
    resolve_s: float = 60.0
    keepalive: int = 60
    duration_s: float = 3600.0
    seed: int = 1


def password_of(seed: str, dev: str) -> str:
    """Each device's broker password, derived so the orchestrator and the device agree without
    passing thousands of secrets around (throwaway accounts of a private broker)."""
    return hashlib.sha256(f"{seed}|{dev}".encode()).hexdigest()[:24]


@dataclass
class Records:
    """What a fleet process reports (JSON-ready). Times are wall-clock (time.time())."""

    #: [type, sent_at, ms from first send to the settling answer]
    latencies: list[tuple[str, float, float]] = field(default_factory=list)
    #: [sent_at, ms] from the badge to the job list in hand (identify + jobs.list)
    badge_to_list: list[tuple[float, float]] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    timeouts: int = 0
    retried: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    #: job ids whose release the cloud granted, and those the device's engine printed (one
    #: entry per print: a job twice here was printed twice).
    released: list[str] = field(default_factory=list)
    printed: list[str] = field(default_factory=list)
    #: [device, lost_at, back_at] for every reconnect after a lost connection
    reconnects: list[tuple[str, float, float]] = field(default_factory=list)
    #: [device, lost_at, first answer after it]: when the device was served again
    served_again: list[tuple[str, float, float]] = field(default_factory=list)
    #: [started_at, ms] of every garbage collection of this process that took GC_PAUSE_MS or
    #: more: every device of the process stood still meanwhile, and its requests in flight
    #: counted the pause as latency. The bench reports them beside the latencies.
    gc_pauses: list[tuple[float, float]] = field(default_factory=list)
    connected: int = 0

    def error(self, kind: str) -> None:
        """Count one error answer or failure of ``kind``."""
        self.errors[kind] = self.errors.get(kind, 0) + 1


#: The shortest collection pause recorded in ``Records.gc_pauses``.
GC_PAUSE_MS = 10.0


def watch_collections(rec: Records) -> Callable[[str, dict[str, int]], None]:
    """Record this process's garbage-collection pauses in ``rec``; the gc.callbacks entry
    that does it (remove it to stop)."""
    began = [0.0, 0.0]

    def watch(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            began[:] = time.time(), time.perf_counter()
            return
        ms = (time.perf_counter() - began[1]) * 1000
        if ms >= GC_PAUSE_MS:
            rec.gc_pauses.append((began[0], round(ms, 1)))

    gc.callbacks.append(watch)
    return watch


class FleetDevice:
    def __init__(self, index: int, host: str, port: int, spec: Spec, rec: Records,
                 rng: random.Random) -> None:
        self.index = index
        self.id = device_id(index)
        self.host, self.port = host, port
        self.spec = spec
        self.rec = rec
        self.rng = rng
        self.password = password_of(spec.password_seed, self.id)
        self.client: _OneConnection | None = None
        self.online = asyncio.Event()
        #: Set when the link is back after a loss: someone badges at once.
        self.back = asyncio.Event()
        self.waiting: dict[bytes, asyncio.Future[bytes]] = {}
        self.serial = 0
        self.epoch = 0
        #: When the connection was last lost, until the first answer after it.
        self.lost_at: float | None = None
        self.stopping = False
        #: Within a badge's requests (a checkpoint waits until no device is).
        self.in_cycle = False
        #: Cleared while the process takes a checkpoint: no new badge starts.
        self.gate: asyncio.Event | None = None

    # ------------------------------------------------------------------ link
    async def link(self, first: asyncio.Event) -> None:
        await asyncio.sleep(self.rng.uniform(0, self.spec.ramp_s))
        delay = 0.0
        lost_at: float | None = None
        while not self.stopping:
            self.epoch = max(self.epoch + 1, int(time.time() * 1000))
            will = gmqtt.Message(topics.status_topic(self.id),
                                 m.encode(m.DeviceStatus("offline", self.epoch)), qos=1,
                                 retain=True)
            client = _OneConnection(self.id, clean_session=True, will_message=will)
            client.set_auth_credentials(self.id, self.password)
            lost = asyncio.Event()
            subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            client.on_message = self._on_message
            # Bound to this connection's own event and future: a late callback of an earlier
            # client must not end or release this one.
            client.on_disconnect = lambda *_a, lost=lost: lost.set()
            client.on_subscribe = lambda *_a, sub=subscribed: _settle(sub)
            try:
                await _unless_lost(client.connect(self.host, self.port,
                                                  keepalive=self.spec.keepalive), lost, 10)
                client.subscribe(topics.response_topic(self.id), qos=1)
                await _unless_lost(subscribed, lost, 10)  # SUBACK: no answer can be missed
                client.publish(topics.status_topic(self.id),
                               m.encode(m.DeviceStatus("online", self.epoch, since=time.time())),
                               qos=1, retain=True)
                self.client = client
                delay = 0.0
                if lost_at is not None:
                    self.rec.reconnects.append((self.id, lost_at, time.time()))
                    lost_at = None
                    self.back.set()
                if not first.is_set():
                    first.set()
                self.online.set()
                await lost.wait()
            except (OSError, TimeoutError, gmqtt.MQTTConnectError):
                pass  # the broker is away or refused: the wait below, then again
            except Exception as exc:  # never a device that stops reconnecting for good
                self.rec.error(f"link:{type(exc).__name__}")
            finally:
                if not lost.is_set():  # stopping, or a connect that failed half-way
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(client.disconnect(), 2)
            self.online.clear()
            self.client = None
            if self.stopping:
                return
            now = time.time()
            if lost_at is None:
                lost_at = now
                self.lost_at = self.lost_at or now
            # jitter_reconnect: a random first wait per outage, doubled up to the maximum.
            delay = (self.rng.uniform(0.5, 1.5) if delay == 0.0
                     else min(delay * 2, DEFAULT_MAX_BACKOFF_S))
            await asyncio.sleep(delay)

    def _on_message(self, _client: object, _topic: str, payload: bytes, _qos: int,
                    properties: dict[str, Any]) -> int:
        corr = properties.get("correlation_data")
        fut = self.waiting.get(bytes(corr[0])) if corr else None
        if fut is not None and not fut.done():
            fut.set_result(bytes(payload))
        return 0  # the reason code of the acknowledgement: success

    # -------------------------------------------------------------- requests
    async def request(self, req: m.Request) -> m.Result | RemoteError | None:
        """The settling answer (a result or the cloud's refusal), or None when nothing settled
        it within ``resolve_s`` (listed as unanswered)."""
        mutating = m.is_mutating(req)
        key = getattr(req, "request_id", "") or f"{self.id}:r{self.serial}"
        payload = m.encode(req)
        first = time.time()
        deadline = time.monotonic() + self.spec.resolve_s
        corr = f"{self.id}:{self.serial}".encode()
        self.serial += 1
        attempt = 0
        while time.monotonic() < deadline:
            if attempt:
                self.rec.retried[req.TYPE] = self.rec.retried.get(req.TYPE, 0) + 1
                if not mutating:  # a read asked again is a new question
                    corr = f"{self.id}:{self.serial}".encode()
                    self.serial += 1
            attempt += 1
            try:
                await asyncio.wait_for(self.online.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
            client = self.client
            if client is None:
                continue
            fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            self.waiting[corr] = fut
            try:
                client.publish(topics.request_topic(self.id), payload, qos=1,
                               response_topic=topics.response_topic(self.id),
                               correlation_data=corr,
                               message_expiry_interval=topics.REQUEST_EXPIRY)
                data = await asyncio.wait_for(fut, self.spec.timeout)
            except Exception as exc:  # a timeout, or gmqtt refusing (no packet id free, ...)
                if not isinstance(exc, TimeoutError):
                    self.rec.error(f"publish:{type(exc).__name__}")
                self.rec.timeouts += 1
                if not mutating:
                    # A person at the copier tries again after a moment, not at once: a
                    # fleet asking again instantly would multiply an overload (measured).
                    await asyncio.sleep(self.rng.uniform(1.0, 3.0))
                continue
            finally:
                self.waiting.pop(corr, None)
            try:
                result = m.decode_response(data, req.TYPE)
            except RemoteError as exc:
                if exc.code in RETRY_CODES:
                    self.rec.error(exc.code)
                    await asyncio.sleep(min(float(exc.retry_after or 1),
                                            max(0.0, deadline - time.monotonic())))
                    continue
                self._answered(req.TYPE, first)
                return exc
            except ProtocolError:
                self.rec.error("malformed")
                continue
            self._answered(req.TYPE, first)
            return result
        self.rec.unanswered.append(f"{self.id} {req.TYPE} {key}")
        return None

    def _answered(self, kind: str, first: float) -> None:
        now = time.time()
        self.rec.latencies.append((kind, first, round((now - first) * 1000, 3)))
        if self.lost_at is not None:
            self.rec.served_again.append((self.id, self.lost_at, now))
            self.lost_at = None
            print(f"served {self.id}", flush=True)

    def request_id(self) -> str:
        self.serial += 1
        return f"{self.id}.{self.serial}"

    # ------------------------------------------------------------------ cycle
    async def cycle(self) -> None:
        """Badge, list, sometimes release one job, log out; again after a random pause."""
        while not self.stopping:
            # A device that lost its broker is badged as soon as it is back (someone was
            # waiting at it): that first answer is when it is served again.
            pause = self.rng.expovariate(1 / self.spec.badge_period_s)
            try:
                await asyncio.wait_for(self.back.wait(), pause)
            except TimeoutError:
                pass
            self.back.clear()
            if self.gate is not None:
                await self.gate.wait()
            if self.stopping:
                return
            self.in_cycle = True
            try:
                await self.badge()
            finally:
                self.in_cycle = False

    async def badge(self) -> None:
        t0 = time.time()
        who = await self.request(m.Identify("card", card_of(self.index), page_size=10))
        if not isinstance(who, m.IdentifyResult):
            return
        page = await self.request(m.ListJobs(who.session, limit=10))
        if isinstance(page, m.JobList):
            self.rec.badge_to_list.append((t0, round((time.time() - t0) * 1000, 3)))
            if page.jobs and self.rng.random() < self.spec.release_chance:
                await self.release(who.session, page.jobs[0].job_id)
        await self.request(m.Logout(self.request_id(), who.session))

    async def release(self, session: str, job_id: str) -> None:
        granted = await self.request(m.Release(self.request_id(), session, (job_id,)))
        if not isinstance(granted, m.ReleaseResult):
            return
        for job in granted.jobs:
            self.rec.released.append(job.job_id)
            data = b""
            while True:
                chunk = await self.request(m.FetchDocument(granted.release_id, job.job_id,
                                                           offset=len(data)))
                if not isinstance(chunk, m.DocumentChunk):
                    return
                data += chunk.data
                if len(data) >= chunk.total or not chunk.data:
                    break
            if hashlib.sha256(data).hexdigest() != job.sha256:
                self.rec.error("bad_document")
                continue
            # The engine's own record: it printed this job (once per entry).
            self.rec.printed.append(job.job_id)
            await self.request(m.JobPrinted(self.request_id(), granted.release_id, job.job_id))


async def run(spec: Spec, out: str) -> None:
    rec = Records()
    watch_collections(rec)
    rng = random.Random(spec.seed)
    fleet = [FleetDevice(i, host, port, spec, rec, random.Random(rng.random()))
             for i, host, port in spec.devices]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    gate = asyncio.Event()
    gate.set()
    for d in fleet:
        d.gate = gate
    checkpoints = 0

    async def checkpoint() -> None:
        # SIGUSR1: let every badge in flight settle (answered, or unanswered after resolve_s),
        # write the records so far, go on. The orchestrator reads a consistent state.
        nonlocal checkpoints
        resume.clear()
        gate.clear()
        while any(d.in_cycle for d in fleet):
            await asyncio.sleep(0.05)
        with open(out, "w") as f:
            json.dump(asdict(rec), f)
        checkpoints += 1
        print(f"drained {checkpoints}", flush=True)
        # Paused until the orchestrator has read the cloud's store too (SIGUSR2), so that
        # both sides are counted at the same moment.
        await resume.wait()
        gate.set()

    resume = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR2, resume.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: tasks.add(asyncio.create_task(checkpoint())))
    tasks: set[asyncio.Task[None]] = set()
    firsts = [asyncio.Event() for _ in fleet]
    links = [asyncio.create_task(d.link(f)) for d, f in zip(fleet, firsts, strict=True)]

    async def all_connected() -> None:
        for f in firsts:
            await f.wait()
        rec.connected = len(fleet)
        # Every device's client, tasks and state are made now and live as long as the process:
        # out of the collector's sight, a full collection no longer walks them. Before this, a
        # process of 1,500 devices stopped for 72-441 ms at each one (measured with
        # gc.callbacks), and every badge in flight in it counted the pause as latency. Garbage
        # first, or it would be kept for good.
        gc.collect()
        gc.freeze()
        print(f"connected {len(fleet)}", flush=True)

    async def progress() -> None:
        # Cheap liveness for the orchestrator: requests answered so far, once a second.
        while True:
            await asyncio.sleep(1.0)
            print(f"answered {len(rec.latencies)}", flush=True)

    announce = asyncio.create_task(all_connected())
    ticker = asyncio.create_task(progress())
    cycles = [asyncio.create_task(d.cycle()) for d in fleet]
    try:
        await asyncio.wait_for(stop.wait(), spec.duration_s)
    except TimeoutError:
        pass
    for d in fleet:
        d.stopping = True
    resume.set()
    gate.set()
    # Cycles in flight finish (each request settles or is declared unanswered); those
    # waiting for their next badge stop now.
    for d, task in zip(fleet, cycles, strict=True):
        if not d.in_cycle:
            task.cancel()
    await asyncio.wait(cycles, timeout=spec.resolve_s + 10)
    announce.cancel()
    ticker.cancel()
    for t in links:
        t.cancel()
    await asyncio.gather(*links, return_exceptions=True)
    with open(out, "w") as f:
        json.dump(asdict(rec), f)


def main(argv: list[str]) -> int:
    # gmqtt logs every lost connection at warning, with its traceback: a broker restart would
    # print a thousand of them. The records count what matters.
    logging.getLogger("gmqtt").setLevel(logging.ERROR)
    with open(argv[0]) as f:
        raw: dict[str, Any] = json.load(f)
    spec = Spec(**raw)
    asyncio.run(run(spec, argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

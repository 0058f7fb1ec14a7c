"""The I/O side of a scenario: a broker, the reference cloud, and each device of the scenario
built by the device's composition root, plus the switches its faults pull.

Time: every device's app runs on one :class:`SimClock` that moves only when the scenario says
(``advance``, a ``wait`` with a timeout, a clock jump), so idle timeouts and notices end at the
same simulated second on every run. The cloud keeps the wall clock (plus any clock jump): its
answers do not depend on the seconds a run takes. Faults act on the real parts: the engine's
own fault switch, the reader's pseudo-terminal closed and opened again, the broker process
stopped and started on its port, the cloud worker stopped and a new one started, a relay that
delays the device's TCP link.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from cloud.demo import demo_document, seed_demo
from cloud.devices import set_device_config
from cloud.directory import add_card, set_access_code, set_password, submit_job
from cloud.offline import offline_public_key
from cloud.portal import start_portal
from cloud.service import CloudService
from cloud.storage.sqlite import SqliteStore
from cloud.web.server import WebServer
from cloud.worker import CloudWorker
from device_app.app import DeviceApp
from device_app.config import parse_config, save_credentials, to_toml, write_private
from device_app.runner import Device, from_config_file
from device_app.session import State
from firmware_stubs.mfd_controller import MfdControllerStub
from firmware_stubs.serial_readers import Em4100Stub
from protocol.address import BrokerAddress
from protocol.errors import MfdError
from protocol.managed import Policy
from readers.adapters.sim_reader import SimReader, get_sim_reader
from readers.pty import PtyPort
from simulator.broker import IotcoreBroker, MosquittoBroker
from simulator.lifecycle import CLOUD_USER, StackedWorld, start_broker
from simulator.netem import WanProxy
from simulator.scenarios.model import DeviceSpec, ReaderKind, ReaderSpec, Scenario

log = logging.getLogger(__name__)


class ScenarioWorldError(MfdError):
    code = "scenario_world"

#: Where the simulated clock starts: above the engine poll interval, so the first step polls.
CLOCK_START = 1000.0


class SimClock:
    """The devices' monotonic clock: it moves only when told."""

    def __init__(self, start: float = CLOCK_START) -> None:
        self.start = start
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    @property
    def elapsed(self) -> float:
        return self.t - self.start


@dataclass
class SerialBadge:
    """An RDM6300 on a pty behind a stable path (a symlink), so it can be unplugged (the pty
    closed) and plugged in again (a new pty behind the same path) as a USB reader can."""

    link: Path
    pty: PtyPort
    stub: Em4100Stub
    plugged: bool = True

    @classmethod
    def open(cls, link: Path) -> SerialBadge:
        pty = PtyPort()
        link.symlink_to(pty.device)
        return cls(link, pty, Em4100Stub(pty))

    def unplug(self) -> None:
        self.pty.close()
        self.plugged = False

    def replug(self) -> None:
        self.pty = PtyPort()
        tmp = self.link.with_suffix(".new")
        tmp.symlink_to(self.pty.device)
        os.replace(tmp, self.link)
        self.stub = Em4100Stub(self.pty)
        self.plugged = True

    def close(self) -> None:
        self.pty.close()


@dataclass
class SimDevice:
    spec: DeviceSpec
    device: Device
    engine: MfdControllerStub
    relay: WanProxy
    sim_readers: dict[str, SimReader] = field(default_factory=dict)
    serial: dict[str, SerialBadge] = field(default_factory=dict)

    @property
    def app(self) -> DeviceApp:
        return self.device.app


@dataclass
class ScenarioWorld(StackedWorld):
    scenario: Scenario
    workdir: Path | None = None
    clock: SimClock = field(default_factory=SimClock)
    devices: dict[str, SimDevice] = field(default_factory=dict)
    #: (owner email, job name) -> the cloud's job id
    job_ids: dict[str, str] = field(default_factory=dict)
    store: SqliteStore | None = None
    broker: MosquittoBroker | IotcoreBroker | None = None
    worker: CloudWorker | None = None
    #: Seconds the cloud's clock is ahead of the wall clock (clock jumps).
    cloud_offset: float = 0.0
    #: Serve the User Portal and admin console on (host, port) too (``mfd sim --http``): the
    #: panels show its QR code, and every demo user gets ``portal_password``.
    http: tuple[str, int] | None = None
    portal: WebServer | None = None
    portal_password: str = ""
    _passwords: dict[str, str] = field(default_factory=dict)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def on_stop(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` when the world stops (after what started later, before what started
        earlier)."""
        self._stack.callback(fn)

    # ------------------------------------------------------------ start

    def _start(self) -> None:
        stack = self._stack
        sc = self.scenario
        if self.workdir is None:
            self.workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mfdscn-")))
        ids = tuple(d.id for d in sc.devices)
        self.broker, self._passwords = start_broker(stack, self.workdir, ids)
        self.store = SqliteStore(self.workdir / "cloud.db")
        now = time.time()
        seed_demo(self.store, now=now, devices=ids, jobs=False)
        self._add_users()
        for i, job in enumerate(sc.jobs):
            owner = sc.user(job.owner)
            assert owner is not None  # parse checked it
            # Newest first on the panel: the file's first job is the newest.
            self.job_ids[job.name] = submit_job(
                self.store, owner.email, job.name, demo_document(job.name, job.pages),
                pages=job.pages, color=job.color, duplex=job.duplex, copies=job.copies,
                source=job.client, submitted_at=now - 60 * (i + 1))
        if self.http is not None:
            self._serve_portal(*self.http)
            sc = self.scenario
        self.start_cloud()
        stack.callback(self.kill_cloud)
        for spec in sc.devices:
            self.devices[spec.id] = self._device(spec)

    def _serve_portal(self, host: str, port: int) -> None:
        """The web app on the world's store; each device's idle screen shows its QR code (the
        policy's portal_url), so a phone on the same network can release at that copier."""
        assert self.store is not None and self.workdir is not None
        self.portal = start_portal(f"sqlite:///{self.workdir / 'cloud.db'}", host, port)
        self._stack.callback(self.portal.close)
        # One random password for the demo users, shown by ``mfd sim`` (a demo's, not a real
        # account's); users the scenario gave a password keep theirs.
        self.portal_password = secrets.token_urlsafe(12)
        for u in self.scenario.users:
            if not u.password:
                set_password(self.store, u.email, self.portal_password)
        url = self.portal.public_url
        self.scenario = replace(self.scenario, devices=tuple(
            replace(d, policy=replace(d.policy, portal_url=url))
            for d in self.scenario.devices))

    def _add_users(self) -> None:
        assert self.store is not None
        store = self.store
        org = "org_demo"
        known = {u.email for u in store.users(org)}
        for u in self.scenario.users:
            if u.email not in known:
                store.add_user(org, u.email, u.name)
                if u.badge:
                    add_card(store, u.email, u.badge)
                if u.code:
                    set_access_code(store, u.email, u.code)
            if u.password:
                set_password(store, u.email, u.password)

    def start_cloud(self) -> None:
        assert self.broker is not None and self.workdir is not None
        db = self.workdir / "cloud.db"

        def service() -> CloudService:
            return CloudService(SqliteStore(db), clock=lambda: time.time() + self.cloud_offset)

        self.worker = CloudWorker(service, BrokerAddress(self.broker.host, self.broker.port,
                                                         CLOUD_USER, self._passwords[CLOUD_USER]))
        self.worker.start()

    def kill_cloud(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.stop()

    def _device(self, spec: DeviceSpec) -> SimDevice:
        assert self.broker is not None and self.workdir is not None
        stack = self._stack
        relay = WanProxy(self.broker.host, self.broker.port)
        stack.callback(relay.close)
        devdir = self.workdir / spec.id
        devdir.mkdir(mode=0o700)
        specs: list[str] = []
        serial: dict[str, SerialBadge] = {}
        for r in spec.readers:
            specs.append(self._reader_spec(spec, r, devdir, serial))
        assert self.store is not None
        cfg = parse_config({
            "device": {"id": spec.id, "name": spec.name or spec.id.replace("-", " ").title()},
            "broker": {"url": f"mqtt://{relay.host}:{relay.port}"},
            "readers": {"specs": specs},
            "engine": {"kind": "emulator"},
            # As registration gives it: the cloud's key for offline bundles (docs/offline.md);
            # the policy decides whether the device uses it.
            "offline": {"cloud_key": offline_public_key(self.store)}})
        # The policy comes as on a fleet: pushed by the cloud (retained, so delivered when the
        # device connects), applied live by the device and acknowledged.
        policy = {f.name: getattr(spec.policy, f.name) for f in fields(Policy)
                  if getattr(spec.policy, f.name) != getattr(Policy(), f.name)}
        if policy:
            assert self.store is not None
            set_device_config(self.store, spec.id, {"policy": policy}, time.time())
        write_private(devdir / "device.toml", to_toml(cfg))
        save_credentials(devdir / cfg.credentials_file, spec.id, self._passwords[spec.id])
        engine = MfdControllerStub(page_time=spec.page_time)
        device = from_config_file(devdir / "device.toml", engine=engine)
        # The one clock the scenario moves (DeviceApp reads it at every step; the offline
        # link's grace time runs on it too, so ``advance`` takes a device offline).
        device.app.clock = self.clock
        if device.offline is not None:
            device.offline.monotonic = self.clock
        stack.callback(device.stop)  # also closes the engine and the journal
        device.start()
        # Ready means the panel is idle (connected: the app starts offline until its link says
        # otherwise), the policy applied and nothing queued: every run starts from the same
        # place, whatever the order in which the link and the push arrived.
        app = device.app

        def ready() -> bool:
            return (app.machine.state is State.IDLE and app.machine.policy == spec.policy
                    and app.events.empty() and offline_ready())

        def offline_ready() -> bool:
            # With offline mode on, a run starts once the bundle is here and every listed job's
            # document with it, so a scenario that cuts the cloud at once finds them.
            link = device.offline
            if not spec.policy.offline or link is None:
                return True
            desk = link.desk
            return (desk.bundle is not None and link.idle() and not desk.wanted(1)
                    and {j.job_id for j in desk.bundle.jobs} <= desk.complete_jobs())

        deadline = time.monotonic() + 10
        while not ready() and time.monotonic() < deadline:
            app.step(0.01)
        if not ready():
            raise ScenarioWorldError(f"device {spec.id} did not come up idle with its policy "
                                     f"(it shows {app.machine.state.value})")
        sim = SimDevice(spec, device, engine, relay, serial=serial)
        for r in spec.readers:
            if r.kind is ReaderKind.SIM:
                sim.sim_readers[r.name] = get_sim_reader(_sim_name(spec, r))
        return sim

    def _reader_spec(self, spec: DeviceSpec, r: ReaderSpec, devdir: Path,
                     serial: dict[str, SerialBadge]) -> str:
        if r.kind is ReaderKind.SIM:
            return f"sim:{_sim_name(spec, r)}?lockout={r.lockout:g}&id={r.name}"
        badge = SerialBadge.open(devdir / f"tty-{r.name}")
        self._stack.callback(lambda: badge.close())
        serial[r.name] = badge
        return f"serial:{badge.link}?family=em4100&baud=9600&lockout={r.lockout:g}&id={r.name}"


def _sim_name(spec: DeviceSpec, r: ReaderSpec) -> str:
    return f"{spec.id}-{r.name}"

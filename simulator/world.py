"""The whole system in one process tree: broker, cloud, demo org, device app, virtual hardware.

The device here is the one a copier runs, built by its composition root (device_app/runner.py
``Device``) from a device.toml and credentials in the world's directory: a serial EM4100 reader
(on a pseudo-terminal driven by the reader firmware stub), the paho link to the broker, the
release journal, config pushes kept in managed.json, and the MFD controller stub as its
print engine. Only the hardware is emulated.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from cloud.demo import DEMO_DEVICES, DEMO_USERS, demo_document, seed_demo
from cloud.directory import submit_job
from cloud.service import CloudService
from cloud.storage.sqlite import SqliteStore
from cloud.throttle import NO_THROTTLES
from cloud.worker import CloudWorker
from device_app.app import DeviceApp
from device_app.config import parse_config, save_credentials, to_toml, write_private
from device_app.runner import Device, from_config_file
from device_app.session import Policy
from firmware_stubs.mfd_controller import MfdControllerStub
from firmware_stubs.serial_readers import Em4100Stub
from protocol.address import BrokerAddress
from readers.pty import PtyPort
from simulator.broker import IotcoreBroker, MosquittoBroker
from simulator.lifecycle import CLOUD_USER, StackedWorld, start_broker
from simulator.netem import LinkProfile, WanProxy

log = logging.getLogger(__name__)


@dataclass
class SimWorld(StackedWorld):
    workdir: Path | None = None
    page_time: float = 0.0
    device_id: str = DEMO_DEVICES[0]
    reader_lockout: float = 2.0
    #: Extra held jobs for the first demo user (benchmarks of long lists).
    extra_jobs: int = 0
    policy: Policy | None = None
    #: False only for benchmarks that tap badges at machine speed on purpose: the cloud's
    #: badge throttles (cloud/throttle.py) would rightly pause such a copier.
    throttled: bool = True
    #: Distance between the device and its broker (simulator/netem.py): the device connects
    #: through a WAN proxy with this profile (``wan``); the cloud stays next to the broker.
    link: LinkProfile | None = None
    wan: WanProxy | None = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    device: Device | None = None
    app: DeviceApp | None = None
    badge: Em4100Stub | None = None
    engine: MfdControllerStub | None = None
    store: SqliteStore | None = None
    broker: MosquittoBroker | IotcoreBroker | None = None

    def _start(self) -> None:
        stack = self._stack
        if self.workdir is None:
            self.workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mfdsim-")))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.broker, passwords = start_broker(stack, self.workdir, DEMO_DEVICES)
        db = self.workdir / "cloud.db"
        self.store = SqliteStore(db)
        seed_demo(self.store, now=time.time())
        if self.extra_jobs:
            doc = demo_document("Bulk job", 1)
            for i in range(self.extra_jobs):
                submit_job(self.store, DEMO_USERS[0].email, f"Bulk job {i + 1}", doc,
                           submitted_at=time.time() - 7200 - i, source="bench")
        host, port = self.broker.host, self.broker.port
        def service() -> CloudService:
            if self.throttled:
                return CloudService(SqliteStore(db))
            return CloudService(SqliteStore(db), throttles=NO_THROTTLES)

        worker = CloudWorker(service,
                             BrokerAddress(host, port, CLOUD_USER, passwords[CLOUD_USER]))
        worker.start()
        stack.callback(worker.stop)
        device_host, device_port = host, port
        if self.link is not None:
            self.wan = stack.enter_context(WanProxy(host, port, self.link))
            device_host, device_port = self.wan.host, self.wan.port
        pty = stack.enter_context(PtyPort())
        self.badge = Em4100Stub(pty)
        self.engine = MfdControllerStub(page_time=self.page_time)
        # The device is built as on a copier, by its composition root from a device.toml and
        # credentials, so the simulator runs config pushes, managed.json and the journal too.
        # The simulator is where the emulated engine is chosen; the device reports it in its
        # status as a copier on the emulator would.
        cfg = parse_config({
            "device": {"id": self.device_id, "name": self.device_id.replace("-", " ").title()},
            "broker": {"url": f"mqtt://{device_host}:{device_port}"},
            "readers": {"specs": [f"serial:{pty.device}?family=em4100&baud=9600"
                                  f"&lockout={self.reader_lockout:g}&id=front"]},
            "engine": {"kind": "emulator"}})
        if self.policy is not None:
            cfg = replace(cfg, policy=self.policy)
        devdir = self.workdir / "device"
        devdir.mkdir(mode=0o700, exist_ok=True)
        write_private(devdir / "device.toml", to_toml(cfg))
        save_credentials(devdir / cfg.credentials_file, self.device_id,
                         passwords[self.device_id])
        self.device = from_config_file(devdir / "device.toml", engine=self.engine)
        stack.callback(self.device.stop)  # also closes the engine and the journal
        self.device.start()
        self.app = self.device.app
        log.info("simulator world up: broker %s:%d, device %s", host, port, self.device_id)

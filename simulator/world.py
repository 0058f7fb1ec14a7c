"""The whole system in one process tree: broker, cloud, demo org, device app, virtual hardware.

The device app here is wired exactly as on a copier: a serial EM4100 reader (on a pseudo-terminal
driven by the reader firmware stub), the paho link to the broker, the MFD controller stub as print
engine. Only the hardware is emulated.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cloud.demo import DEMO_DEVICES, DEMO_USERS, demo_document, seed_demo
from cloud.directory import submit_job
from cloud.service import CloudService
from cloud.storage.sqlite import SqliteStore
from cloud.worker import CloudWorker
from device_app.app import DeviceApp
from device_app.mqtt_link import MqttCloudLink
from device_app.session import Policy
from firmware_stubs.mfd_controller import MfdControllerStub
from firmware_stubs.serial_readers import Em4100Stub
from protocol.address import BrokerAddress
from readers.pty import PtyPort
from readers.spec import open_reader
from simulator.broker import IotcoreBroker, MosquittoBroker, make_broker

log = logging.getLogger(__name__)


@dataclass
class SimWorld:
    workdir: Path | None = None
    page_time: float = 0.0
    device_id: str = DEMO_DEVICES[0]
    reader_lockout: float = 2.0
    #: Extra held jobs for the first demo user (benchmarks of long lists).
    extra_jobs: int = 0
    policy: Policy | None = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    app: DeviceApp | None = None
    badge: Em4100Stub | None = None
    engine: MfdControllerStub | None = None
    store: SqliteStore | None = None
    broker: MosquittoBroker | IotcoreBroker | None = None

    def start(self) -> SimWorld:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        stack = self._stack
        if self.workdir is None:
            self.workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mfdsim-")))
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Fresh credentials every run: nothing to leak, nothing to reuse.
        passwords = {"cloud-0": secrets.token_urlsafe(16)}
        passwords |= {d: secrets.token_urlsafe(16) for d in DEMO_DEVICES}
        self.broker = make_broker(self.workdir / "broker", passwords, cloud_users=("cloud-0",))
        self.broker.start()
        stack.callback(self.broker.stop)
        db = self.workdir / "cloud.db"
        self.store = SqliteStore(db)
        seed_demo(self.store, now=time.time())
        if self.extra_jobs:
            doc = demo_document("Bulk job", 1)
            for i in range(self.extra_jobs):
                submit_job(self.store, DEMO_USERS[0].email, f"Bulk job {i + 1}", doc,
                           submitted_at=time.time() - 7200 - i, source="bench")
        host, port = self.broker.host, self.broker.port
        worker = CloudWorker(lambda: CloudService(SqliteStore(db)),
                             BrokerAddress(host, port, "cloud-0", passwords["cloud-0"]))
        worker.start()
        stack.callback(worker.stop)
        pty = stack.enter_context(PtyPort())
        self.badge = Em4100Stub(pty)
        reader = open_reader(f"serial:{pty.device}?family=em4100&baud=9600"
                             f"&lockout={self.reader_lockout:g}", reader_id="front")
        link = MqttCloudLink(BrokerAddress(host, port, self.device_id, passwords[self.device_id]),
                             self.device_id)
        # The simulator is where the emulated engine is chosen; the device reports it in its
        # status as a copier on the emulator would.
        link.engine = "emulator"
        link.start()
        stack.callback(link.close)
        self.engine = MfdControllerStub(page_time=self.page_time)
        stack.callback(self.engine.close)
        self.app = DeviceApp(link, self.engine, readers=(reader,), policy=self.policy,
                             device_name=self.device_id.replace("-", " ").title()).start()
        stack.callback(self.app.stop)
        log.info("simulator world up: broker %s:%d, device %s", host, port, self.device_id)

    def stop(self) -> None:
        self._stack.close()

    def __enter__(self) -> SimWorld:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

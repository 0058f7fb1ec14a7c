"""Real-stack fixtures: a private Mosquitto per test session, a cloud with the demo org per test."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# First: fixes PCSCLITE_CSOCK_NAME to the private pcscd's socket before anything in this process
# makes a PC/SC call (pcsc-lite reads it once, at the first call).
import simulator.pcscd  # noqa: F401
from cloud.demo import seed_demo
from cloud.service import CloudService
from cloud.sqlite_store import SqliteStore
from cloud.worker import CloudWorker
from protocol.address import BrokerAddress
from simulator.broker import MosquittoBroker

# Counts skips and, with --fail-on-skip (the test command), fails the run on any (no_skips.py).
pytest_plugins = ["no_skips"]

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

CLOUD_USERS = ("cloud-0", "cloud-1")
DEVICE_PASSWORDS = {"copier-1": "pw-copier-1", "copier-2": "pw-copier-2",
                    "copier-9": "pw-copier-9"}


@dataclass
class Broker:
    mosquitto: MosquittoBroker

    def address(self, user: str) -> BrokerAddress:
        pw = DEVICE_PASSWORDS.get(user) or f"pw-{user}"
        return BrokerAddress(self.mosquitto.host, self.mosquitto.port, user, pw)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    users = {u: f"pw-{u}" for u in CLOUD_USERS} | DEVICE_PASSWORDS
    b = MosquittoBroker(tmp_path_factory.mktemp("mosquitto"), users, cloud_users=CLOUD_USERS)
    b.start()
    yield Broker(b)
    b.stop()


@dataclass
class World:
    broker: Broker
    store: SqliteStore
    store_path: Path
    worker: CloudWorker


@pytest.fixture
def world(broker: Broker, tmp_path: Path) -> Iterator[World]:
    """The reference cloud (SQLite, demo org) serving through the private broker."""
    path = tmp_path / "cloud.db"
    store = SqliteStore(path)
    seed_demo(store, now=time.time())
    worker = CloudWorker(lambda: CloudService(SqliteStore(path)), broker.address("cloud-0"))
    worker.start()
    yield World(broker, store, path, worker)
    worker.stop()

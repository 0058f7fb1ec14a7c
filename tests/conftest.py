"""Real-stack fixtures: a private Mosquitto per test session, a cloud with the demo org per test.

The cloud's store is a parameter: every test using ``world`` or ``store_url`` runs once on SQLite
and once on PostgreSQL (ids ``[sqlite]`` and ``[postgres]``), each on a fresh store: a temporary
file, or a new schema in a database of this run (tests/pg.py).
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
import time
import types
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from ipp_printer import DnsSd, require
from pg import NoServer, ScratchDatabase, fresh_database, unavailable

# First: fixes PCSCLITE_CSOCK_NAME to the private pcscd's socket before anything in this process
# makes a PC/SC call (pcsc-lite reads it once, at the first call).
import simulator.pcscd  # noqa: F401
from cloud.demo import seed_demo
from cloud.service import CloudService
from cloud.storage.factory import open_store
from cloud.storage.sql import SqlStore
from cloud.worker import CloudWorker
from protocol.address import BrokerAddress
from simulator.broker import MosquittoBroker

# gmqtt (the fleet simulator's MQTT client) installs a top-level package named "tests" of its
# own into site-packages. This folder has no __init__.py (its modules import each other by
# name, the way pytest puts it on the path), and a regular package anywhere on the path wins
# over a namespace package, so "from tests.x import y" found gmqtt's. The name is bound to this
# folder before any test module is collected.
_HERE = str(Path(__file__).resolve().parent)
if list(getattr(sys.modules.get("tests"), "__path__", [])) != [_HERE]:
    _ours = types.ModuleType("tests")
    _ours.__path__ = [_HERE]
    _ours.__spec__ = importlib.machinery.ModuleSpec("tests", None, is_package=True)
    _ours.__spec__.submodule_search_locations = [_HERE]
    sys.modules["tests"] = _ours

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


#: Every cloud store backend; the fixtures below run their tests once per backend.
BACKENDS = ("sqlite", "postgres")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[ScratchDatabase]:
    """This run's database on the test PostgreSQL; a test failing (never skipping) when there is
    none, with where we looked and what to do."""
    with ExitStack() as stack:
        try:
            db = stack.enter_context(fresh_database())
        except NoServer as exc:
            missing = str(exc)
        else:
            missing = ""
        if missing:
            unavailable(missing)  # outside the except: the failure is the message, no chain
        yield db


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty cloud store of the test's backend, as the URL ``open_store`` and
    ``mfd cloud --store`` take (another store object on it sees the same data: a restart)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'cloud.db'}"
    db: ScratchDatabase = request.getfixturevalue("pg_database")
    return db.schema_url()


@dataclass
class World:
    broker: Broker
    store: SqlStore
    store_url: str
    worker: CloudWorker

    @property
    def store_path(self) -> Path:
        """The SQLite file (SQLite worlds only; code that opens the store uses store_url)."""
        if not self.store_url.startswith("sqlite:///"):
            raise AssertionError(f"a {self.store_url.split(':', 1)[0]} world has no store file; "
                                 "use world.store_url")
        return Path(self.store_url.removeprefix("sqlite:///"))


@pytest.fixture
def world(broker: Broker, store_url: str) -> Iterator[World]:
    """The reference cloud (demo org) on the test's backend, serving through the private
    broker."""
    store = open_store(store_url)
    seed_demo(store, now=time.time())
    worker = CloudWorker(lambda: CloudService(open_store(store_url)), broker.address("cloud-0"))
    worker.start()
    yield World(broker, store, store_url, worker)
    worker.stop()
    store.close()


@pytest.fixture(scope="module")
def dnssd() -> Iterator[DnsSd]:
    """The avahi and D-Bus daemons ippeveprinter needs (shared between test sessions)."""
    require()
    daemons = DnsSd()
    daemons.start()
    yield daemons
    daemons.stop()

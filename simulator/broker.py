"""A private Mosquitto for tests, benchmarks and ``mfd sim``.

Each instance listens on its own free loopback port with the dynamic-security plugin holding the
accounts and the contract's roles (protocol.topics, cloud/broker_accounts.py: a device may
publish, subscribe and receive only its own topics, and nothing is allowed that a role does not
grant), client ids forced to usernames, and TCP no-delay: FIELD_NOTES measured two orders of
magnitude of Nagle/delayed-ACK latency without it. It is the configuration a site runs
(docs/technician-guide.md section 3), so tests exercise the real confinement.
"""

from __future__ import annotations

import contextlib
import ctypes
import getpass
import glob
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from cloud.broker_accounts import DynsecAccounts, dynsec_config
from protocol.address import BrokerAddress
from protocol.errors import MfdError
from protocol.topics import BROKER_ADMIN_USER

log = logging.getLogger(__name__)


class BrokerError(MfdError):
    code = "broker_failed"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_mosquitto() -> str:
    path = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)),
        None)
    if path is None:
        raise BrokerError("mosquitto is not installed; install the 'mosquitto' package "
                          "(Debian: apt-get install mosquitto) or run scripts/sim.sh as root")
    return path


DYNSEC_PLUGIN = "mosquitto_dynamic_security.so"


def find_dynsec_plugin() -> str:
    """The dynamic-security plugin, shipped with Mosquitto 2.0 (Debian: in the mosquitto
    package). Without it there is no broker: an acl_file cannot keep a device out of the cloud's
    shared subscription, so there is no weaker fallback."""
    candidates = [*glob.glob(f"/usr/lib/*/{DYNSEC_PLUGIN}"), f"/usr/lib/{DYNSEC_PLUGIN}",
                  f"/usr/local/lib/{DYNSEC_PLUGIN}",
                  *glob.glob(f"/usr/local/lib/*/{DYNSEC_PLUGIN}")]
    for path in candidates:
        if os.path.exists(path):
            return path
    raise BrokerError(f"mosquitto's dynamic-security plugin ({DYNSEC_PLUGIN}) is not installed; "
                      "install Mosquitto 2.0 or later (Debian: apt-get install mosquitto)")


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: fall back to stop() being called


class MosquittoBroker:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager)."""

    #: Devices are confined to their own topics by their dynsec roles.
    confined = True
    #: PBKDF2 iterations of the generated accounts: dynsec's own default. The simulator's
    #: passwords are throwaway, and a benchmark starts hundreds of device accounts.
    iterations = 101

    def __init__(self, workdir: str | Path, users: dict[str, str] | None = None, *,
                 cloud_users: tuple[str, ...] = ("cloud",), max_queued: int = 100_000) -> None:
        self.workdir = Path(workdir)
        self.users = dict(users or {})
        self.cloud_users = cloud_users
        # The account writer's account (role mfd-broker-admin): fresh per broker, never shown.
        self.admin_user = BROKER_ADMIN_USER
        self.admin_password = secrets.token_urlsafe(24)
        # Mosquitto silently drops QoS 1 messages past a client's queue limit (default 1000,
        # FIELD_NOTES); a burst towards the cloud workers must queue, not vanish.
        self.max_queued = max_queued
        self.host = "127.0.0.1"
        self.port = 0
        self.tls: tuple[Path, Path] | None = None
        self.tls_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def admin_address(self) -> BrokerAddress:
        """Where and as whom the account writer connects."""
        return BrokerAddress(self.host, self.port, self.admin_user, self.admin_password)

    def _write_accounts(self) -> Path:
        # Rewritten at every start from self.users (which add_user keeps up to date), so a
        # restart has the same accounts; the plugin saves its own changes to the same file.
        cloud = {u: p for u, p in self.users.items() if u in self.cloud_users}
        devices = {u: p for u, p in self.users.items() if u not in self.cloud_users}
        try:
            config = dynsec_config(cloud, (self.admin_user, self.admin_password),
                                   devices=devices, iterations=self.iterations)
        except MfdError as exc:
            raise BrokerError(f"cannot set up the broker's accounts: {exc}") from exc
        path = self.workdir / "dynamic-security.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps(config, indent=1))
        return path

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        exe = find_mosquitto()
        plugin = find_dynsec_plugin()
        self.workdir.mkdir(parents=True, exist_ok=True)
        accounts = self._write_accounts()
        fixed = self.port  # a restart keeps its port, so clients reconnect to the same address
        for attempt in range(3):
            self.port = fixed or free_port()
            conf = self.workdir / "mosquitto.conf"
            conf.write_text("\n".join([
                # Run as whoever started us: as root Mosquitto would otherwise drop to the
                # 'mosquitto' user, who cannot read our private temporary files.
                f"user {getpass.getuser()}",
                "per_listener_settings false",
                f"listener {self.port} {self.host}",
                "allow_anonymous false",
                f"plugin {plugin}",
                f"plugin_opt_config_file {accounts}",
                "use_username_as_clientid true",
                "set_tcp_nodelay true",
                "persistence false",
                f"max_queued_messages {self.max_queued}",
                "max_inflight_messages 0",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                *self._tls_listener(),
                "",
            ]))
            logf = (self.workdir / "mosquitto.log").open("ab")
            # Own session: a Ctrl-C in the terminal reaches us, and we stop the broker after
            # the clients have said goodbye. Parent-death signal: if we are killed outright,
            # the broker goes with us instead of lingering on its port.
            self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=logf, stderr=logf,
                                         start_new_session=True, preexec_fn=_die_with_parent)
            logf.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                with contextlib.suppress(OSError), socket.create_connection(
                        (self.host, self.port), timeout=0.2):
                    log.info("mosquitto listening on %s:%d", self.host, self.port)
                    return self
                time.sleep(0.02)
            self.stop()
            log.warning("mosquitto did not start on port %d (attempt %d)", self.port, attempt + 1)
        tail = (self.workdir / "mosquitto.log").read_text(errors="replace")[-400:]
        raise BrokerError(f"mosquitto did not start: {tail.strip() or 'no output'}")

    def enable_tls(self, certfile: str | Path, keyfile: str | Path) -> None:
        """Also listen with TLS (mqtts) on :attr:`tls_port`; call before :meth:`start`."""
        self.tls = (Path(certfile), Path(keyfile))

    def _tls_listener(self) -> list[str]:
        if self.tls is None:
            return []
        self.tls_port = self.tls_port or free_port()
        cert, key = self.tls
        return [f"listener {self.tls_port} {self.host}", f"certfile {cert}", f"keyfile {key}"]

    def add_user(self, name: str, password: str) -> None:
        """Add a device account, or give one a new password, while the broker runs: through
        the production account writer (cloud/broker_accounts.py), which refuses reserved names
        and never overwrites a cloud or admin account. Kept for the next start too."""
        if name in self.cloud_users or name == self.admin_user:
            raise BrokerError(f"{name} is not a device account; cloud accounts are set at start")
        if self.proc is not None and self.proc.poll() is None:
            DynsecAccounts(self.admin_address).set_password(name, password)
        self.users[name] = password

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class IotcoreBroker:
    """Fallback for a laptop without Mosquitto: rumqttd (MQTT 5) from the ``iotcore`` package.

    It checks usernames and passwords but has no ACL, so devices are *not* confined to their own
    topics: good for a demo on loopback, never for a site. ``mfd sim`` says so when it uses it.
    """

    confined = False

    def __init__(self, workdir: str | Path, users: dict[str, str] | None = None, *,
                 cloud_users: tuple[str, ...] = ("cloud",), max_queued: int = 1000) -> None:
        self.workdir = Path(workdir)
        self.users = dict(users or {})
        self.max_queued = max_queued
        self.host = "127.0.0.1"
        self.port = 0
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> IotcoreBroker:
        try:
            from iotcore import Broker
        except ImportError as exc:
            raise BrokerError("neither mosquitto nor the iotcore package is installed; install "
                              "the 'mosquitto' package (Debian: apt-get install mosquitto)"
                              ) from exc
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        auth = ", ".join(f'"{u}" = "{p}"' for u, p in self.users.items())
        conf = self.workdir / "rumqttd.toml"
        conf.write_text("\n".join([
            "id = 0", "[router]", "id = 0", "max_connections = 10000",
            f"max_outgoing_packet_count = {self.max_queued}",
            "max_segment_size = 104857600", "max_segment_count = 10",
            "[v5.1]", 'name = "v5-1"', f'listen = "{self.host}:{self.port}"',
            "next_connection_delay_ms = 1", "[v5.1.connections]",
            "connection_timeout_ms = 60000", "max_payload_size = 2097152",
            "max_inflight_count = 100", f"auth = {{ {auth} }}", ""]))
        conf.chmod(0o600)
        try:
            self._broker = Broker(config_path=str(conf)).start(timeout)
        except (OSError, RuntimeError) as exc:
            raise BrokerError(f"the embedded broker did not start: {exc}") from exc
        log.warning("using the embedded rumqttd broker on %s:%d: no ACLs, loopback demo only",
                    self.host, self.port)
        return self

    def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            broker.stop()

    def __enter__(self) -> IotcoreBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_broker(workdir: str | Path, users: dict[str, str], *,
                cloud_users: tuple[str, ...] = ("cloud",),
                prefer: str | None = None) -> MosquittoBroker | IotcoreBroker:
    """Mosquitto when it is installed, else the embedded fallback. ``prefer`` (or the
    ``MFD_BROKER`` environment variable) forces ``mosquitto`` or ``iotcore``."""
    choice = prefer or os.environ.get("MFD_BROKER", "")
    if choice not in ("", "mosquitto", "iotcore"):
        raise BrokerError(f"unknown broker {choice!r}; use mosquitto or iotcore")
    if choice == "iotcore":
        return IotcoreBroker(workdir, users, cloud_users=cloud_users)
    try:
        find_mosquitto()
    except BrokerError:
        if choice == "mosquitto":
            raise
        return IotcoreBroker(workdir, users, cloud_users=cloud_users)
    return MosquittoBroker(workdir, users, cloud_users=cloud_users)

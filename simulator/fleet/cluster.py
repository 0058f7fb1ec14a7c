"""The fleet's world, every part its own process: K Mosquittos, a private PostgreSQL, W cloud
workers and the device processes; faults on demand (restart a broker, kill -9 a worker,
restart PostgreSQL) and the tallies at the end (latencies, unanswered requests, lost and doubled
prints from the devices' records and from the cloud's store, CPU seconds per process).

The PostgreSQL is always a private one (initdb in a temporary directory, as scripts/setup.sh
does for the tests): the fleet restarts it, and must never restart the machine's.

With ``hosts`` > 0 the workers run on test hosts (simulator/fleet/hosts.py: network namespaces
on a private bridge): the brokers and PostgreSQL listen on the bridge's address, worker ``i``
runs on host ``i % hosts`` and reaches them over its veth as a worker on another machine would,
the devices (root namespace) connect to the bridge's address; a host can be cut off the network
and restored. With ``hosts`` 0 everything is on loopback.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cloud.demo import demo_document
from cloud.directory import add_card, submit_job
from cloud.storage.factory import open_store
from simulator.broker import BrokerError, MosquittoBroker, free_port
from simulator.fleet import broker_for, card_of, device_id
from simulator.fleet.device import Spec, password_of
from simulator.fleet.hosts import Hosts
from simulator.stats import cpu_seconds

log = logging.getLogger(__name__)

def _children(pid: int) -> list[int]:
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append(int(stat.split("/")[2]))
    return out


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on a free loopback port, restartable."""

    def __init__(self, workdir: Path) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise BrokerError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
        self.bindir = Path(found[-1]).parent
        # Its own directory, not under ``workdir``: as root the server runs as the postgres
        # user, who may not enter a private temporary directory of root's.
        del workdir
        self.dir = Path(tempfile.mkdtemp(prefix="mfdkit-fleet-pg."))
        self.port = free_port()
        #: Where it listens (beside loopback) and clients reach it: the test hosts' bridge when
        #: there are hosts; ``trusted`` their subnet, which pg_hba lets in without a password.
        self.host = "127.0.0.1"
        self.trusted = ""
        self.cpu_before = 0.0  # CPU of earlier incarnations (a restart starts a new postmaster)
        # initdb refuses root: root runs the cluster as Debian's postgres user.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    def settle(self) -> None:
        """After a bulk load: statistics gathered and the dirty pages written now, so that
        neither autovacuum nor the checkpoint the load brought runs under the measured load
        (a fleet's real database is not freshly loaded)."""
        self._run(str(self.bindir / "psql"), "-q", "-d", self.url, "-c", "VACUUM ANALYZE",
                  "-c", "CHECKPOINT")

    def start(self) -> PrivatePostgres:
        if not (self.dir / "data").exists():
            if self.as_user:
                shutil.chown(self.dir, "postgres", "postgres")
            self._run(str(self.bindir / "initdb"), "-D", str(self.dir / "data"), "-U",
                      "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        listen = "127.0.0.1"
        if self.host != listen:
            listen += f",{self.host}"
        if self.trusted:
            # initdb's trust covers loopback only; the test subnet, and nothing wider, too.
            hba = self.dir / "data" / "pg_hba.conf"
            line = f"host all all {self.trusted} trust"
            if line not in hba.read_text().splitlines():
                with hba.open("a") as f:
                    f.write(f"# the fleet's test hosts\n{line}\n")
        # Durable commits as in production (fsync on): a release acknowledged must survive.
        opts = (f"-c listen_addresses={listen} -p {self.port} -k {self.dir} "
                "-c max_connections=200")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-l",
                  str(self.dir / "server.log"), "-w", "-t", "60", "-o", opts, "start")
        return self

    def pid(self) -> int:
        try:
            return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    def cpu(self) -> float:
        pid = self.pid()
        if not pid:
            return self.cpu_before
        return self.cpu_before + cpu_seconds(pid, children=True) + sum(
            cpu_seconds(c, children=True) for c in _children(pid))

    def stop(self, mode: str = "fast") -> None:
        if self.pid():
            self.cpu_before = self.cpu()
            subprocess.run([*self.as_user, str(self.bindir / "pg_ctl"), "-D",
                            str(self.dir / "data"), "-m", mode, "-w", "stop"],
                           capture_output=True, timeout=120, check=False)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self, down_s: float = 0.0) -> None:
        self.stop("immediate")  # a crash, as far as the clients can tell
        time.sleep(down_s)
        self.start()


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    cpu_before: float = 0.0

    def read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.strip())

    def cpu(self) -> float:
        return self.cpu_before + cpu_seconds(self.popen.pid)


def _spawn(name: str, args: list[str], env: dict[str, str] | None = None, *,
           on: list[str] | None = None, with_stderr: bool = False) -> Proc:
    """``python args`` as a process of its own; ``on``: the command prefix that runs it on a
    test host (exec'd in place: the PID is still Python's); ``with_stderr``: its stderr too in
    :attr:`Proc.lines` (a worker's stats and warnings), else the terminal's."""
    popen = subprocess.Popen([*(on or []), sys.executable, *args], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT if with_stderr else None, text=True,
                             env={**os.environ, **(env or {})}, start_new_session=True)
    proc = Proc(name, popen)
    threading.Thread(target=proc.read, daemon=True).start()
    return proc


def _wait_line(proc: Proc, prefix: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(line == prefix or line.startswith(prefix + " ") for line in list(proc.lines)):
            return
        if proc.popen.poll() is not None:
            said = list(proc.lines)
            raise BrokerError(f"{proc.name} exited ({proc.popen.returncode}) before {prefix!r}"
                              + (f": {said[-1]}" if said else ""))
        time.sleep(0.05)
    raise BrokerError(f"{proc.name} did not say {prefix!r} within {timeout:.0f} s")


class Fleet:
    """Start with :meth:`start`; faults while it runs; :meth:`finish` for the tallies."""

    def __init__(self, workdir: Path, *, devices: int, brokers: int = 3, workers: int = 2,
                 per_process: int = 2500, jobs_per_user: int = 3, seed: int = 1,
                 badge_period_s: float = 60.0, release_chance: float = 0.3,
                 ramp_s: float = 5.0, resolve_s: float = 60.0,
                 worker_stats_s: float = 0.0, hosts: int = 0, spare_workers: int = 0,
                 lanes: int | None = None) -> None:
        self.workdir = workdir
        self.n, self.k, self.w = devices, brokers, workers
        self.per_process = per_process
        self.jobs_per_user = jobs_per_user
        self.seed = seed
        self.badge_period_s, self.release_chance, self.ramp_s = (badge_period_s,
                                                                 release_chance, ramp_s)
        self.resolve_s = resolve_s
        #: Workers print their counters on stderr this often (0: never): diagnostics.
        self.worker_stats_s = worker_stats_s
        #: Request threads per worker (``mfd cloud --lanes``; None: its default for PostgreSQL).
        self.lanes = lanes
        self.password_seed = secrets.token_hex(8)
        self.cloud_password = secrets.token_urlsafe(16)
        # The brokers take the cloud accounts they start with only (simulator/broker.py):
        # spare ones for the workers added later (start_worker).
        self.cloud_users = tuple(f"cloud-{i}" for i in range(workers + spare_workers))
        #: Test hosts the workers run on (0: all on loopback), created by start().
        self.hosts = hosts
        self.net: Hosts | None = None
        self.worker_host: dict[str, int] = {}
        self.broker_names = [f"broker-{b}" for b in range(brokers)]
        self.assignment = {device_id(i): broker_for(device_id(i), self.broker_names)
                           for i in range(devices)}
        self.pg = PrivatePostgres(workdir)
        self.brokers: list[MosquittoBroker] = []
        self.broker_cpu_before = [0.0] * brokers
        self.workers: dict[str, Proc] = {}
        self.worker_cpu_gone: dict[str, float] = {}
        self.fleet: list[Proc] = []
        self.job_ids: list[str] = []
        self.timings: dict[str, float] = {}

    # ---------------------------------------------------------------- set-up
    def start(self) -> Fleet:
        if self.hosts:
            self.net = Hosts(self.hosts).create()
            self.pg.host, self.pg.trusted = self.net.address, self.net.network
        t = time.monotonic()
        self.pg.start()
        self.timings["postgres_start_s"] = time.monotonic() - t
        t = time.monotonic()
        self._seed()
        self.pg.settle()
        self.timings["seed_s"] = time.monotonic() - t
        t = time.monotonic()
        for b, name in enumerate(self.broker_names):
            users = {u: self.cloud_password for u in self.cloud_users}
            users |= {d: password_of(self.password_seed, d)
                      for d, on in self.assignment.items() if on == name}
            broker = MosquittoBroker(self.workdir / name, users, cloud_users=self.cloud_users)
            if self.net is not None:
                broker.host = self.net.address
            self.brokers.append(broker.start(timeout=60))
            log.info("%s on port %d with %d devices", name, broker.port,
                     len(users) - len(self.cloud_users))
            del b
        self.timings["brokers_start_s"] = time.monotonic() - t
        for name in self.cloud_users[:self.w]:
            self.start_worker(name)
        for name in self.cloud_users[:self.w]:
            _wait_line(self.workers[name], "ready", 60)
        t = time.monotonic()
        self._start_devices()
        for proc in self.fleet:
            _wait_line(proc, "connected", 120 + self.ramp_s)
        self.timings["devices_connect_s"] = time.monotonic() - t
        return self

    def _seed(self) -> None:
        store = open_store(self.pg.url)
        now = time.time()
        with store.transaction():
            org = store.create_org("Fleet Org", org_id="org_fleet")
        for start in range(0, self.n, 500):
            with store.transaction():
                for i in range(start, min(start + 500, self.n)):
                    dev, email = device_id(i), f"{device_id(i)}@fleet.example"
                    store.add_user(org, email, f"User {i}")
                    store.add_device(dev, org, f"Copier {i}")
                    add_card(store, email, card_of(i))
                    for j in range(self.jobs_per_user):
                        name = f"Doc {i}-{j}.pdf"
                        self.job_ids.append(submit_job(store, email, name,
                                                       demo_document(name, 2), pages=2,
                                                       submitted_at=now - 60 * (j + 1)))
        store.close()

    def broker_urls(self) -> list[str]:
        return [b.url for b in self.brokers]

    def start_worker(self, name: str, host: int | None = None) -> None:
        """Start worker ``name`` (one of :attr:`cloud_users`: the brokers know no other), with
        test hosts on ``host`` (by default where it ran before, else ``i % hosts`` for
        ``cloud-i``). Returns at once; :meth:`respawn_worker` waits for it to be ready."""
        if name not in self.cloud_users:
            raise BrokerError(f"{name} has no account on the brokers; the fleet has "
                              f"{', '.join(self.cloud_users)} (more: spare_workers)")
        args = ["-m", "cloud.worker_process", "--name", name, "--store", self.pg.url]
        for url in self.broker_urls():
            args += ["--broker", url]
        if self.worker_stats_s:
            args += ["--stats-s", str(self.worker_stats_s)]
        if self.lanes is not None:
            args += ["--lanes", str(self.lanes)]
        env = {"MFD_CLOUD_PASSWORD": self.cloud_password}
        if self.net is None:
            if host is not None:
                raise BrokerError("this fleet has no test hosts (hosts=0)")
            self.workers[name] = _spawn(name, args, env)
            return
        if host is None:
            host = self.worker_host.get(name, self.cloud_users.index(name) % len(self.net))
        if not 0 <= host < len(self.net):
            raise BrokerError(f"no test host {host}: the fleet has {len(self.net)}")
        self.worker_host[name] = host
        self.workers[name] = _spawn(name, args, env, on=self.net.command(host, []),
                                    with_stderr=True)

    def _start_devices(self) -> None:
        where = {name: (b.host, b.port) for name, b in zip(self.broker_names, self.brokers,
                                                            strict=True)}
        everyone = [(i, *where[self.assignment[device_id(i)]]) for i in range(self.n)]
        for p, start in enumerate(range(0, self.n, self.per_process)):
            spec = Spec(devices=everyone[start:start + self.per_process],
                        password_seed=self.password_seed, badge_period_s=self.badge_period_s,
                        release_chance=self.release_chance, ramp_s=self.ramp_s,
                        resolve_s=self.resolve_s,
                        seed=self.seed * 1000 + p)
            path = self.workdir / f"fleet-{p}.json"
            path.write_text(json.dumps(asdict(spec)))
            self.fleet.append(_spawn(f"fleet-{p}", ["-m", "simulator.fleet.device", str(path),
                                                    str(self.workdir / f"fleet-{p}.out.json")]))

    # ---------------------------------------------------------------- faults
    def devices_on(self, b: int) -> int:
        return sum(1 for on in self.assignment.values() if on == self.broker_names[b])

    def restart_broker(self, b: int, down_s: float = 1.0) -> float:
        """Stop broker ``b`` and start it again on its port; returns when it went down."""
        broker = self.brokers[b]
        if broker.proc is not None:
            self.broker_cpu_before[b] += cpu_seconds(broker.proc.pid)
        went = time.time()
        broker.stop()
        time.sleep(down_s)
        broker.start(timeout=60)
        return went

    def kill_worker(self, name: str) -> None:
        proc = self.workers[name]
        self.worker_cpu_gone[name] = (self.worker_cpu_gone.get(name, 0.0)
                                      + cpu_seconds(proc.popen.pid))
        os.kill(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait()

    def respawn_worker(self, name: str, host: int | None = None) -> None:
        self.start_worker(name, host)
        _wait_line(self.workers[name], "ready", 60)

    def workers_on(self, h: int) -> list[str]:
        """The workers on test host ``h``."""
        return [name for name, on in self.worker_host.items() if on == h]

    def cut_host(self, h: int) -> float:
        """Test host ``h`` lost to the network (its veth down); returns when."""
        if self.net is None:
            raise BrokerError("this fleet has no test hosts (hosts=0)")
        went = time.time()
        self.net.cut(h)
        return went

    def restore_host(self, h: int) -> None:
        if self.net is None:
            raise BrokerError("this fleet has no test hosts (hosts=0)")
        self.net.restore(h)

    # ---------------------------------------------------------------- tallies
    def cpu(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for p in self.fleet:
            out[p.name] = round(p.cpu(), 2)
        for b, broker in enumerate(self.brokers):
            live = cpu_seconds(broker.proc.pid) if broker.proc is not None else 0.0
            out[self.broker_names[b]] = round(self.broker_cpu_before[b] + live, 2)
        for name, proc in self.workers.items():
            live = cpu_seconds(proc.popen.pid) if proc.popen.poll() is None else 0.0
            out[name] = round(self.worker_cpu_gone.get(name, 0.0) + live, 2)
        out["postgresql"] = round(self.pg.cpu(), 2)
        return out

    def answered(self) -> int:
        """Requests answered so far over the fleet (each process says so once a second)."""
        total = 0
        for p in self.fleet:
            last = next((x for x in reversed(list(p.lines)) if x.startswith("answered ")), "")
            total += int(last.split()[1]) if last else 0
        return total

    def handled(self, name: str) -> int:
        """Requests worker ``name`` (its latest incarnation) has handled, from its last
        ``stats`` line: needs ``worker_stats_s`` and test hosts (which keep workers' stderr);
        0 before its first."""
        proc = self.workers.get(name)
        lines = list(proc.lines) if proc is not None else []
        last = next((x for x in reversed(lines) if x.startswith(f"stats {name} ")), "")
        found = re.search(r" handled=(\d+)", last)
        return int(found.group(1)) if found else 0

    def served(self) -> set[str]:
        """Devices that were served again after losing their broker, so far."""
        return {line.split()[1] for p in self.fleet for line in list(p.lines)
                if line.startswith("served ")}

    def checkpoint(self, timeout: float = 120.0) -> dict[str, Any]:
        """The tallies so far, with every badge in flight settled first (the devices pause new
        badges meanwhile)."""
        cpu = self.cpu()
        want = []
        for p in self.fleet:
            want.append(f"drained {sum(1 for x in p.lines if x.startswith('drained ')) + 1}")
            p.popen.send_signal(signal.SIGUSR1)
        try:
            for p, line in zip(self.fleet, want, strict=True):
                _wait_line(p, line, timeout)
            return self._tally(cpu)
        finally:
            for p in self.fleet:  # go on (they stay paused until told)
                p.popen.send_signal(signal.SIGUSR2)

    def finish(self) -> dict[str, Any]:
        """Stop the devices (each settles what it has in flight), then count."""
        cpu = self.cpu()
        for p in self.fleet:
            p.popen.send_signal(signal.SIGTERM)
        for p in self.fleet:
            p.popen.wait(timeout=180)
        return self._tally(cpu)

    def _tally(self, cpu: dict[str, float]) -> dict[str, Any]:
        records = [json.loads((self.workdir / f"{p.name}.out.json").read_text())
                   for p in self.fleet]
        merged: dict[str, Any] = {"cpu_s": cpu}
        for key in ("latencies", "badge_to_list", "unanswered", "released", "printed",
                    "reconnects", "served_again", "gc_pauses"):
            merged[key] = [x for r in records for x in r[key]]
        merged["timeouts"] = sum(r["timeouts"] for r in records)
        for key in ("retried", "errors"):
            total: Counter[str] = Counter()
            for r in records:
                total.update(r[key])
            merged[key] = dict(total)
        merged["prints"] = self.count_prints(merged["released"], merged["printed"])
        return merged

    def count_prints(self, released: list[str], printed: list[str]) -> dict[str, int]:
        """Lost and doubled, from the devices' engine records and from the cloud's store."""
        store = open_store(self.pg.url, create=False)
        try:
            states = {j.id: j.state for j in store.jobs(self.job_ids)}
        finally:
            store.close()
        engine = Counter(printed)
        granted = Counter(released)
        cloud_printed = {j for j, s in states.items() if s == "PRINTED"}
        out = {
            "released": len(granted), "printed": len(engine),
            "cloud_printed": len(cloud_printed),
            # printed more than once by the engines, or granted twice by the cloud
            "doubled_engine": sum(c - 1 for c in engine.values() if c > 1),
            "doubled_grant": sum(c - 1 for c in granted.values() if c > 1),
            # granted but never printed; printed but not PRINTED in the cloud; PRINTED in the
            # cloud but no engine printed it
            "lost_unprinted": len(set(granted) - set(engine)),
            "lost_unrecorded": len(set(engine) - cloud_printed),
            "lost_phantom": len(cloud_printed - set(engine)),
            "stuck_releasing": sum(1 for s in states.values() if s == "RELEASING"),
        }
        out["doubled"] = out["doubled_engine"] + out["doubled_grant"]
        out["lost"] = out["lost_unprinted"] + out["lost_unrecorded"] + out["lost_phantom"]
        return out

    def stop(self) -> None:
        for p in self.fleet:
            if p.popen.poll() is None:
                p.popen.kill()
        for proc in self.workers.values():
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
                try:
                    proc.popen.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.popen.kill()
        for b in self.brokers:
            b.stop()
        self.pg.remove()
        if self.net is not None:  # last: nothing may still run in a namespace
            self.net.remove()

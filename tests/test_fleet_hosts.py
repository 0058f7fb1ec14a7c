"""Cloud workers on several hosts (issue 14): "stateless, added or killed at any time, across
processes and on several hosts". The hosts are network namespaces on a private bridge
(simulator/fleet/hosts.py); the brokers and PostgreSQL listen on the bridge, the workers reach
them over their own veths, the devices from the root namespace. A small fleet (90 copiers, 2
brokers, 3 workers each on its own host, a badge per device every 3 s on average), the steps in
order: every host's worker answers; a host is cut off the network under load and the others go
on answering, then it comes back; a worker added at runtime on a host serves. After each, a
checkpoint: every request answered, nothing printed twice or lost.

Needs root and iproute2 (as the fleet's brokers need Mosquitto): without them the fixture fails
with HostsError saying so, never a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from fleet_checks import assert_nothing_lost
from waiting import eventually

from simulator.fleet.cluster import Fleet
from simulator.fleet.hosts import Hosts, HostsError

WORKERS = ("cloud-0", "cloud-1", "cloud-2")
ADDED = "cloud-3"  # the spare account, for the worker added at runtime
CUT = 1  # the host cut off: cloud-1's


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    f = Fleet(tmp_path_factory.mktemp("fleet-hosts"), devices=90, brokers=2, workers=3,
              spare_workers=1, hosts=3, per_process=90, badge_period_s=3.0,
              release_chance=0.5, ramp_s=2.0, resolve_s=30.0, seed=15, worker_stats_s=0.5)
    try:
        yield f.start()
    finally:
        f.stop()
        # Nothing of the test network is left behind: no namespace, no veth, no bridge.
        assert f.net is None or f.net.leftovers() == []


def netns_of(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def test_hosts_network_comes_and_goes() -> None:
    with Hosts(2) as net, socket.create_server((net.address, 0)) as server:
        port = server.getsockname()[1]
        reach = [sys.executable, "-c", "import socket, sys; socket.create_connection("
                 f"({net.address!r}, {port}), timeout=10)"]
        assert net.leftovers() != []
        inside = net.run(0, ["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
        assert net.hosts[0].address in inside.stdout, inside
        # A host reaches the bridge's address (the brokers' and PostgreSQL's), from its own.
        done = net.run(1, reach)
        assert done.returncode == 0, done.stderr
        assert server.accept()[1][0] == net.hosts[1].address
        net.cut(1)
        links = subprocess.run(["ip", "-o", "link", "show", net.hosts[1].veth],
                               capture_output=True, text=True, check=True).stdout
        assert "state DOWN" in links, links
        net.restore(1)
        done = net.run(1, reach)
        assert done.returncode == 0, done.stderr
    assert net.leftovers() == []


def test_hosts_error_names_what_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: "/nonexistent/ip")
    with pytest.raises(HostsError, match=r"iproute2.*root \(CAP_NET_ADMIN\)"):
        Hosts(1).create()


def test_workers_on_every_host_answer(fleet: Fleet) -> None:
    assert fleet.net is not None
    # Each worker in its own network namespace (not ours), one per host.
    spaces = {netns_of(fleet.workers[w].popen.pid) for w in WORKERS}
    assert len(spaces) == 3 and netns_of(os.getpid()) not in spaces
    assert {fleet.worker_host[w] for w in WORKERS} == {0, 1, 2}
    assert all(b.host == fleet.net.address for b in fleet.brokers)
    assert eventually(lambda: all(fleet.handled(w) > 0 for w in WORKERS), timeout=30,
                      every=0.2), {w: fleet.handled(w) for w in WORKERS}
    t = fleet.checkpoint()
    assert t["latencies"]
    assert_nothing_lost(t)


def test_host_cut_off_under_load(fleet: Fleet) -> None:
    (victim,) = fleet.workers_on(CUT)
    others = [w for w in WORKERS if w != victim]
    answered = fleet.answered()
    handled = {w: fleet.handled(w) for w in others}
    fleet.cut_host(CUT)
    try:
        # The workers on the other hosts go on answering, the repeats of what the broker
        # handed the lost worker among them.
        assert eventually(lambda: fleet.answered() > answered + 300 and all(
            fleet.handled(w) > handled[w] + 50 for w in others), timeout=40, every=0.2), (
            fleet.answered() - answered, {w: fleet.handled(w) - handled[w] for w in others})
    finally:
        fleet.restore_host(CUT)
    restored = time.monotonic()
    back = fleet.handled(victim)
    # Back on the network, the lost worker serves again (on the connections it had, or on
    # new ones if a broker gave up on it meanwhile).
    assert eventually(lambda: fleet.handled(victim) > back, timeout=40, every=0.2)
    print(f"cut host's worker serving again {time.monotonic() - restored:.1f} s after restore")
    t = fleet.checkpoint()
    assert_nothing_lost(t)


def test_worker_added_at_runtime_serves(fleet: Fleet) -> None:
    fleet.respawn_worker(ADDED, host=CUT)
    assert fleet.worker_host[ADDED] == CUT
    assert netns_of(fleet.workers[ADDED].popen.pid) == netns_of(
        fleet.workers[fleet.workers_on(CUT)[0]].popen.pid)
    assert eventually(lambda: fleet.handled(ADDED) > 0, timeout=30, every=0.2)
    t = fleet.checkpoint()
    assert_nothing_lost(t)
    assert t["prints"]["released"] > 0

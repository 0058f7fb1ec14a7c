"""Test hosts on one machine: a private network of Linux network namespaces, so cloud workers
can run "on several hosts" and a host can be lost to the network for real (issue 14).

Theory of operation
-------------------
One Linux bridge in the root namespace carries the test subnet ``10.213.N.0/24`` and has its
first address, ``10.213.N.1``: the brokers and PostgreSQL listen there, and the device
processes (root namespace) connect there. Each host ``i`` is a network namespace with one veth
pair, its outer end a port of the bridge, its inner end ``eth0`` with ``10.213.N.(10+i)``, and
its own loopback. A program runs on a host through ``ip netns exec``, which execs in place: the
PID the caller gets is the program's, so a kill -9 reaches it.

Cutting a host sets the outer end of its veth down: the cable pulled at the switch. Nothing on
the host is told; its TCP connections hang until a keep-alive gives up on either side, which is
what losing a machine looks like to a broker. Restoring sets it up again.

Names carry the creating process's pid (hexadecimal, to stay within the 15 characters an
interface name may have) and a sequence number, so parallel test runs never collide; N is
derived from the pid too, skipping subnets another run holds. :meth:`Hosts.remove` removes
everything (namespaces, veths, bridge) and is safe to call twice and after a failed set-up;
:meth:`Hosts.create` first removes what a run that died without cleaning up left behind.

It needs iproute2's ``ip`` and root (CAP_NET_ADMIN); without them :class:`HostsError` says so.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from protocol.errors import MfdError

log = logging.getLogger(__name__)

#: Every name this module creates starts so: namespaces ``mfdkit-<pid>-<seq>-h<i>``, the bridge
#: ``mfk<pid><seq>b``, the veths' outer ends ``mfk<pid><seq>v<i>`` (pid and seq in hex).
NETNS_PREFIX = "mfdkit-"
LINK_PREFIX = "mfk"
SUBNET = "10.213"

_sequence = itertools.count()


class HostsError(MfdError):
    code = "hosts_failed"


NEEDS = ("the test hosts need iproute2's 'ip' (Debian: apt-get install iproute2) and root "
         "(CAP_NET_ADMIN) to create network namespaces, veths and a bridge")


@dataclass(frozen=True)
class Host:
    index: int
    netns: str  # the namespace's name (ip netns)
    veth: str  # the outer end of its veth, a port of the bridge, in the root namespace
    address: str  # eth0's address inside the namespace


def _ip_program() -> str:
    # /usr/sbin is not on every user's PATH (Debian puts ip there).
    return shutil.which("ip") or "/usr/sbin/ip"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run([_ip_program(), *args], capture_output=True, text=True, timeout=30,
                              check=False)
    except OSError as exc:  # not installed
        raise HostsError(f"{NEEDS}: {exc}") from exc
    if check and done.returncode != 0:
        raise HostsError(f"{NEEDS}: 'ip {' '.join(args)}' failed: {done.stderr.strip()}")
    return done


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def sweep_stale() -> None:
    """Remove the namespaces and links of runs whose process is gone (killed before their own
    teardown ran): they would hold a subnet and clutter ``ip link``."""
    names = _ip("netns", "list", check=False).stdout.split()
    for name in names:
        m = re.fullmatch(rf"{NETNS_PREFIX}([0-9a-f]+)-[0-9a-f]+-h\d+", name)
        if m and not _alive(int(m.group(1), 16)):
            _ip("netns", "del", name, check=False)
    links = _ip("-o", "link", "show", check=False).stdout.splitlines()
    for line in links:
        m = re.match(rf"\d+: ({LINK_PREFIX}[0-9a-f]+[bv]\d*)[@:]", line)
        if m is None:
            continue
        link = m.group(1)
        # The pid is all but the last hex digit (the sequence) before the b/v suffix.
        digits = re.fullmatch(rf"{LINK_PREFIX}([0-9a-f]+)[bv]\d*", link)
        if digits and not _alive(int(digits.group(1)[:-1], 16)):
            _ip("link", "del", link, check=False)


def _free_subnet(pid: int) -> int:
    """N of 10.213.N.0/24: from the pid, skipping subnets some interface already has."""
    used = set(re.findall(rf"inet {re.escape(SUBNET)}\.(\d+)\.",
                          _ip("-o", "-4", "addr", "show", check=False).stdout))
    for step in range(254):
        n = 1 + (pid + step) % 254
        if str(n) not in used:
            return n
    raise HostsError(f"no free subnet {SUBNET}.N.0/24 left for the test hosts")


class Hosts:
    """``count`` test hosts on a private bridge; :meth:`create`, then :meth:`remove` (always,
    in a ``finally``; or use it as a context manager)."""

    def __init__(self, count: int) -> None:
        if not 1 <= count <= 200:
            raise HostsError(f"the test network has 1 to 200 hosts, not {count}")
        pid, seq = os.getpid(), next(_sequence)
        if seq > 15:  # one hex digit: interface names must stay within 15 characters
            raise HostsError("more than 16 test networks in one process")
        self.tag = f"{pid:x}{seq:x}"
        self.subnet = _free_subnet(pid)
        self.bridge = f"{LINK_PREFIX}{self.tag}b"
        #: The bridge's address: the root namespace as the hosts reach it.
        self.address = f"{SUBNET}.{self.subnet}.1"
        #: The test subnet, for an allow-list (PostgreSQL's pg_hba).
        self.network = f"{SUBNET}.{self.subnet}.0/24"
        self.hosts = [Host(i, f"{NETNS_PREFIX}{pid:x}-{seq:x}-h{i}",
                           f"{LINK_PREFIX}{self.tag}v{i}", f"{SUBNET}.{self.subnet}.{10 + i}")
                      for i in range(count)]
        for name in (self.bridge, *(h.veth for h in self.hosts)):
            assert len(name) <= 15, name  # IFNAMSIZ - 1

    def __len__(self) -> int:
        return len(self.hosts)

    def create(self) -> Hosts:
        """The bridge, then each host; on any failure everything made so far is removed and
        HostsError says what failed and what the set-up needs."""
        sweep_stale()
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.address}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for h in self.hosts:
                _ip("netns", "add", h.netns)
                # The inner end is born inside the namespace: it never exists in ours.
                _ip("link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns",
                    h.netns)
                _ip("link", "set", h.veth, "master", self.bridge, "up")
                _ip("-n", h.netns, "addr", "add", f"{h.address}/24", "dev", "eth0")
                _ip("-n", h.netns, "link", "set", "eth0", "up")
                _ip("-n", h.netns, "link", "set", "lo", "up")
        except BaseException:
            self.remove()
            raise
        log.info("test network %s: bridge %s, %d hosts", self.network, self.bridge,
                 len(self.hosts))
        return self

    def command(self, h: int, argv: Sequence[str]) -> list[str]:
        """``argv`` run on host ``h``: ``ip netns exec`` execs it in place (same PID)."""
        return [_ip_program(), "netns", "exec", self.hosts[h].netns, *argv]

    def run(self, h: int, argv: Sequence[str], timeout: float = 30.0
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(h, argv), capture_output=True, text=True,
                              timeout=timeout, check=False)

    def cut(self, h: int) -> None:
        """Host ``h`` lost to the network: the outer end of its veth down."""
        _ip("link", "set", self.hosts[h].veth, "down")

    def restore(self, h: int) -> None:
        _ip("link", "set", self.hosts[h].veth, "up")

    def remove(self) -> None:
        """Remove the namespaces, the veths and the bridge; whatever is not there is skipped.
        A namespace's processes keep it alive after its name is gone: stop them first."""
        for h in self.hosts:
            _ip("netns", "del", h.netns, check=False)  # takes the veth pair with it
            _ip("link", "del", h.veth, check=False)
        _ip("link", "del", self.bridge, check=False)

    def leftovers(self) -> list[str]:
        """Namespaces and links of this network still present (for tests: none after
        :meth:`remove`)."""
        netns = set(_ip("netns", "list", check=False).stdout.split())
        links = _ip("-o", "link", "show", check=False).stdout
        return ([h.netns for h in self.hosts if h.netns in netns]
                + [n for n in (self.bridge, *(h.veth for h in self.hosts))
                   if re.search(rf"^\d+: {re.escape(n)}[@:]", links, re.M)])

    def __enter__(self) -> Hosts:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.remove()

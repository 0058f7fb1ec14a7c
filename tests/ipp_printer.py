"""A real IPP printer on loopback for tests: CUPS' ``ippeveprinter`` (Debian: cups-ipp-utils).

What it needs, and why. ippeveprinter refuses to start ("Unable to initialize DNS-SD") unless it
can reach avahi-daemon over the *system* D-Bus, even with ``-r off``, and it exits when avahi
goes away ("Avahi server crashed, exiting"). So :class:`DnsSd` makes sure both run: it starts
``dbus-daemon --system`` and ``avahi-daemon`` only if they are not running already, and stops
afterwards only what a DnsSd started, and only when no DnsSd of any test process on this machine
still uses them: the daemons are system-wide, and several test runs (several engineers, or
pytest sessions side by side) share them. The users are counted in a state file under /run,
changed under an exclusive ``flock``; a run killed without its teardown leaves the count high,
and then the daemons are left running, never stopped under someone else's printer. Starting
them needs root (they own /run/dbus and /run/avahi-daemon); :func:`missing_requirements` says
so when that is not possible.

How the printer is run. ``-n localhost`` makes it listen on the loopback addresses only; ``-k``
keeps each received document in the spool directory as ``<job-id>-<job-name>.pdf``, byte for
byte; ``-c SCRIPT`` runs our script for each job instead of ippeveprinter's simulated printing,
which takes 5 to 15 s per job: the script returns at once, so a job completes in milliseconds.
The script also lets a test steer the printer by job name (see :data:`ABORT` and :data:`HOLD`).

Readiness is an IPP answer to Get-Printer-Attributes, not merely an open port.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device_app.engines.ipp import codec as ipp

__all__ = ["ABORT", "HOLD", "DnsSd", "IppEvePrinter", "free_port", "missing_requirements",
           "require"]

#: A job whose name contains this is aborted by the printer (the script exits non-zero).
ABORT = "abort-me"
#: A job whose name contains this stays "processing" while the printer's hold file exists.
HOLD = "hold-me"

_SBIN = "/usr/sbin:/sbin:/usr/bin:/bin"
_SYSTEM_BUS = Path("/run/dbus/system_bus_socket")
_DBUS_PID = Path("/run/dbus/pid")
_AVAHI_PID = Path("/run/avahi-daemon/pid")
# Shared by every test process on the machine (see the module docstring): who uses the daemons
# and which of them a DnsSd started. /run: gone at reboot, with the daemons.
_USERS_LOCK = Path("/run/mfdkit-dnssd.lock")
_USERS_STATE = Path("/run/mfdkit-dnssd.json")
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0

_SCRIPT = """#!/bin/sh
# Run by ippeveprinter for each job, with the spooled file as $1 and the job's attributes in
# IPP_* variables. Exit status 0 completes the job; anything else aborts it.
case "$IPP_JOB_NAME" in
  *{abort}*) echo "ERROR: aborted on request of the test" >&2; exit 3 ;;
  *{hold}*) while [ -e "{hold_file}" ]; do sleep 0.02; done ;;
esac
exit 0
"""


def _which(tool: str) -> str | None:
    # ippeveprinter and the daemons live in /usr/sbin, which is not on every user's PATH.
    return shutil.which(tool) or shutil.which(tool, path=_SBIN)


def free_port() -> int:
    """A TCP port free on loopback now (nothing listens there afterwards either)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bus_answers() -> bool:
    """A system D-Bus is running: its socket accepts a connection."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
        s.settimeout(1.0)
        s.connect(str(_SYSTEM_BUS))
        return True
    return False


def _avahi_running() -> bool:
    avahi = _which("avahi-daemon")
    if avahi is None:
        return False
    # "avahi-daemon -c" exits 0 when a daemon runs (it checks the pid file and the process).
    return subprocess.run([avahi, "-c"], capture_output=True, check=False,
                          timeout=10).returncode == 0


def missing_requirements() -> str | None:
    """Why ippeveprinter cannot run here (the missing piece, named), or None if it can."""
    for tool, package in (("ippeveprinter", "cups-ipp-utils"), ("dbus-daemon", "dbus"),
                          ("avahi-daemon", "avahi-daemon")):
        if _which(tool) is None:
            return f"{tool} not found (Debian package: {package})"
    if os.geteuid() != 0 and not (_bus_answers() and _avahi_running()):
        return ("ippeveprinter needs a system D-Bus and avahi-daemon; they are not running and "
                "only root can start them")
    return None


def require() -> None:
    """Fail the calling test, naming the missing piece, when the printer cannot run here. Never
    a skip, in CI or not: the packages are part of the test command's set-up, and a skipped
    printer suite would leave the IPP engine untested behind a green run."""
    reason = missing_requirements()
    if reason is not None:
        pytest.fail(f"ippeveprinter cannot run: {reason}", pytrace=False)


class DnsSd:
    """A system D-Bus and avahi-daemon, started if needed; :meth:`stop` stops what a DnsSd
    started once no DnsSd of any process uses them any more."""

    def __init__(self) -> None:
        self._started = False  # counted as a user in the shared state

    def start(self) -> None:
        if os.geteuid() != 0:
            return  # not ours to start or stop: missing_requirements checked that they run
        with _users() as state:
            pids: dict[str, int] = state.setdefault("pids", {})
            if not _bus_answers():
                pids["dbus"] = self._start_dbus()
            if not _avahi_running():
                pids["avahi"] = self._start_avahi()
            state["users"] = int(state.get("users", 0)) + 1
            self._started = True

    @staticmethod
    def _start_avahi() -> int:
        avahi = _which("avahi-daemon") or "avahi-daemon"
        # --no-drop-root / --no-chroot: in a container there is often no avahi user set up
        # for the chroot, and we stop it ourselves anyway. -D daemonizes once it is ready.
        out = subprocess.run([avahi, "-D", "--no-drop-root", "--no-chroot"],
                             capture_output=True, text=True, check=False, timeout=20)
        if out.returncode != 0:
            raise RuntimeError(f"avahi-daemon did not start: {out.stderr.strip()}")
        # Its id, to stop exactly this daemon later (-D returns once the pid file is written).
        return int(_AVAHI_PID.read_text().split()[0])

    @staticmethod
    def _start_dbus() -> int:
        # A pid file left by a dead daemon makes dbus-daemon refuse to start.
        with contextlib.suppress(OSError, ValueError):
            pid = int(_DBUS_PID.read_text().strip())
            if not _alive(pid):
                _DBUS_PID.unlink()
        with contextlib.suppress(FileNotFoundError):
            if not _bus_answers():
                _SYSTEM_BUS.unlink()  # a socket nobody listens on
        _SYSTEM_BUS.parent.mkdir(parents=True, exist_ok=True)
        dbus = _which("dbus-daemon") or "dbus-daemon"
        out = subprocess.run([dbus, "--system", "--fork", "--print-pid"], capture_output=True,
                             text=True, check=False, timeout=20)
        if out.returncode != 0:
            raise RuntimeError(f"dbus-daemon --system did not start: {out.stderr.strip()}")
        pid = int(out.stdout.split()[0])
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _bus_answers():
            if time.monotonic() > deadline:
                raise RuntimeError("the system D-Bus did not come up")
            time.sleep(0.02)
        return pid

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        with _users() as state:
            state["users"] = users = max(0, int(state.get("users", 0)) - 1)
            if users:
                return  # another test process's printer still needs them
            pids: dict[str, int] = state.pop("pids", {})
            avahi = pids.get("avahi")
            if avahi is not None and _is(avahi, "avahi-daemon"):
                _terminate(avahi)
            dbus = pids.get("dbus")
            if dbus is not None and _is(dbus, "dbus-daemon"):
                _terminate(dbus)
                # dbus-daemon leaves its pid file and socket behind; leave /run as we found it.
                for path in (_DBUS_PID, _SYSTEM_BUS):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()


@contextlib.contextmanager
def _users() -> Iterator[dict[str, Any]]:
    """The machine-wide DnsSd state, read and written back under an exclusive lock."""
    with open(_USERS_LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            try:
                state = json.loads(_USERS_STATE.read_text())
            except (OSError, ValueError):
                state = {}
            if not isinstance(state, dict):
                state = {}
            yield state
            tmp = _USERS_STATE.with_suffix(".tmp")
            tmp.write_text(json.dumps(state))
            os.replace(tmp, _USERS_STATE)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _is(pid: int, name: str) -> bool:
    """``pid`` is a live ``name`` (not a process that took the number of a dead daemon)."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return False
    return comm == name[:15] and _alive(pid)


def _terminate(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    while _alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    """The process runs (a zombie does not count: in a container nobody may reap the
    daemons, which forked away from us)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the command name in parentheses, which may itself contain spaces.
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


class IppEvePrinter:
    """ippeveprinter on a free loopback port, spooling into ``spool``.

    ``formats``: document formats it takes (``-f``); ``duplex`` adds two-sided printing (``-2``);
    ``color`` makes it a colour printer (``-s 10,10``). :attr:`uri` is its printer URI.
    """

    def __init__(self, workdir: Path, name: str, *, formats: tuple[str, ...] = ("application/pdf",),
                 duplex: bool = True, color: bool = True) -> None:
        self.workdir = workdir
        self.name = name
        self.formats = formats
        self.duplex = duplex
        self.color = color
        self.spool = workdir / "spool"
        self.hold_file = workdir / "hold"
        self.log_path = workdir / "ippeveprinter.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"ipp://127.0.0.1:{self.port}/ipp/print"

    def start(self) -> None:
        self.spool.mkdir(parents=True, exist_ok=True)
        script = self.workdir / "print-command.sh"
        script.write_text(_SCRIPT.format(abort=ABORT, hold=HOLD, hold_file=self.hold_file))
        script.chmod(0o755)
        exe = _which("ippeveprinter") or "ippeveprinter"
        for _attempt in range(3):  # a free port can be taken between our look and its bind
            self.port = free_port()
            args = [exe, "-n", "localhost", "-p", str(self.port), "-d", str(self.spool), "-k",
                    "-c", str(script), "-f", ",".join(self.formats),
                    "-s", "10,10" if self.color else "10,0"]
            if self.duplex:
                args.append("-2")
            args.append(self.name)
            with open(self.log_path, "ab") as log:
                # A log file, never a pipe nobody reads: a full pipe would block the printer.
                self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                              stderr=subprocess.STDOUT)
            if self._wait_ready():
                return
            self.stop()
            if "Address already in use" not in self.log():
                break
        raise RuntimeError(f"ippeveprinter did not start; its log says:\n{self.log()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            if self.printer_attributes() is not None:
                return True
            time.sleep(0.05)
        return False

    def printer_attributes(self, *names: str) -> ipp.Message | None:
        """A Get-Printer-Attributes answer, or None if the printer does not answer."""
        request = ipp.Message(ipp.Operation.GET_PRINTER_ATTRIBUTES, 1, (
            ipp.operation_attributes(self.uri, *(
                [ipp.Attribute.of("requested-attributes", ipp.ValueTag.KEYWORD, *names)]
                if names else [])),))
        return self.call(request)

    def job_attributes(self, job_id: int) -> ipp.Message | None:
        request = ipp.Message(ipp.Operation.GET_JOB_ATTRIBUTES, 1, (
            ipp.operation_attributes(
                self.uri, ipp.Attribute.of("job-id", ipp.ValueTag.INTEGER, job_id),
                ipp.Attribute.of("requested-attributes", ipp.ValueTag.KEYWORD, "all")),))
        return self.call(request)

    def call(self, request: ipp.Message) -> ipp.Message | None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2.0)
        try:
            conn.request("POST", "/ipp/print", body=ipp.encode(request),
                         headers={"Content-Type": "application/ipp"})
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()
        return ipp.decode(body) if response.status == 200 else None

    def spooled(self, pattern: str = "*.pdf") -> list[Path]:
        """Documents the printer kept, oldest job first."""
        return sorted(self.spool.glob(pattern), key=lambda p: int(p.name.split("-", 1)[0]))

    def stop(self) -> None:
        """SIGTERM (its clean shutdown), SIGKILL if it lingers. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(_STOP_TIMEOUT_S)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

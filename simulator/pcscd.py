"""A private pcscd with vsmartcard's vpcd driver, beside any system pcscd (tests and benches).

Import this module *before anything makes a PC/SC call*: the pcsc-lite client library reads
``PCSCLITE_CSOCK_NAME`` (the daemon's socket path) once per process, at the first call, and
keeps it. So the socket path is chosen here, at import, one per process, and set in the
environment at once; every :class:`PrivatePcscd` of this process serves on that same path,
across stops and restarts, so that clients of this process find it again after a restart.
Only one may run at a time.

How it stays private: pcscd's socket and pid file paths are compiled in (``/run/pcscd``).
``unshare --mount --propagation private`` gives pcscd its own mount namespace in which a
short temporary directory is bind-mounted over ``/run/pcscd``; the system's ``/run/pcscd``
(and a system pcscd using it) is untouched, and a system pcscd's pid file cannot make ours
refuse to start. The directory must be short (``/tmp/pcscXXXXXXXX``): a Unix socket path
must fit in 107 bytes. As non-root, ``unshare -Urm`` plus a tmpfs on ``/run`` does the same.

The reader: a reader.conf with ``DEVICENAME /dev/null:PORT`` loads vpcd, which listens on TCP
PORT (slot 0) and PORT+1 (slot 1) on *all* interfaces; a :class:`~firmware_stubs.vpcd_card.
VirtualCard` connects there. A system pcscd loads Debian's /etc/reader.conf.d/vpcd (port
0x8C7B); ours reads only its own file (``-c``), on a free port, with its own friendly name
(:data:`FRIENDLY_NAME`), so a test can tell it is talking to the private daemon.

Readiness is the socket file appearing (pcscd creates it after starting the readers).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["FRIENDLY_NAME", "SOCKET_PATH", "PrivatePcscd", "find_vpcd_driver",
           "missing_requirements", "pcscd_version"]

#: FRIENDLYNAME in our reader.conf; pcscd names the slots "<name> 00 00" and "<name> 00 01".
FRIENDLY_NAME = "mfdkit Virtual PCD"

# One directory per process, chosen now (see the module docstring). mkdtemp under /tmp (not
# $TMPDIR, which may be long) keeps the socket path far below the 107-byte limit.
_BASE = Path(tempfile.mkdtemp(prefix="pcsc", dir="/tmp"))
_RUN_DIR = _BASE / "run"
_RUN_DIR.mkdir()
_DRIVER_DIR = _BASE / "drivers"
#: The socket this process's PC/SC clients use.
SOCKET_PATH = _RUN_DIR / "pcscd.comm"
os.environ["PCSCLITE_CSOCK_NAME"] = str(SOCKET_PATH)
atexit.register(shutil.rmtree, _BASE, ignore_errors=True)

_DRIVER_CANDIDATES = (
    "/usr/lib/pcsc/drivers/serial/libifdvpcd.so",  # Debian / Ubuntu (vsmartcard-vpcd)
    "/usr/lib64/pcsc/drivers/serial/libifdvpcd.so",
    "/usr/local/lib/pcsc/drivers/serial/libifdvpcd.so",  # built from source
)
_START_TIMEOUT_S = 5.0
_STOP_TIMEOUT_S = 5.0


def find_vpcd_driver() -> str | None:
    """Path of vpcd's pcscd driver library, or None if vsmartcard-vpcd is not installed."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["dpkg", "-L", "vsmartcard-vpcd"], capture_output=True,
                             text=True, check=False, timeout=10).stdout
        for line in out.splitlines():
            if line.endswith("/libifdvpcd.so") and os.path.exists(line):
                return line
    return next((p for p in _DRIVER_CANDIDATES if os.path.exists(p)), None)


def missing_requirements() -> str | None:
    """Why a private pcscd cannot run here (the missing piece, named), or None if it can."""
    for tool in ("pcscd", "unshare"):
        if _which(tool) is None:
            return f"{tool} not found (Debian packages: pcscd, util-linux)"
    if find_vpcd_driver() is None:
        return "vpcd driver not found (Debian package: vsmartcard-vpcd)"
    try:
        import smartcard.scard  # noqa: F401
    except ImportError as exc:
        return f"pyscard is not importable: {exc}"
    probe = subprocess.run([*_unshare_prefix(), "true"], capture_output=True, text=True,
                           check=False)
    if probe.returncode != 0:
        return ("cannot create a private mount namespace (unshare failed: "
                f"{probe.stderr.strip() or probe.returncode}); run as root or allow user "
                "namespaces")
    return None


def pcscd_version() -> str:
    """pcscd's own version line, e.g. ``pcsc-lite version 1.9.9.`` (for benchmark reports)."""
    exe = _which("pcscd")
    if exe is None:
        return ""
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    lines = (out.stdout or out.stderr).splitlines()
    return lines[0].strip() if lines else ""


def _which(tool: str) -> str | None:
    # pcscd lives in /usr/sbin, which is not on every user's PATH.
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def _unshare_prefix() -> list[str]:
    if os.geteuid() == 0:
        return ["unshare", "--mount", "--propagation", "private"]
    # Without root: a user namespace maps us to root inside, which may mount.
    return ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"]


def _free_port_pair() -> int:
    """A port P such that P and P+1 are both free now (vpcd takes two slots)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("", 0))
            port = int(first.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two adjacent free TCP ports found for vpcd")


class PrivatePcscd:
    """pcscd with one vpcd reader (two slots) on a free port, on :data:`SOCKET_PATH`.

    ``readers`` are the slot names; ``port`` is slot 0's TCP port (slot 1 is ``port + 1``).
    The port is kept across :meth:`restart`, like a USB reader that comes back on the same
    name. :meth:`stop` sends SIGTERM, the clean shutdown; ``stop(kill=True)`` SIGKILLs, the
    crash (the socket file is then left behind, so we remove it, as systemd would).
    """

    _running: PrivatePcscd | None = None

    def __init__(self, *, port: int | None = None,
                 friendly_name: str = FRIENDLY_NAME) -> None:
        self.driver = find_vpcd_driver()
        self.port = port or _free_port_pair()
        self.friendly_name = friendly_name
        self.socket_path = SOCKET_PATH
        self.log_path = _BASE / "pcscd.log"
        self._conf_path = _BASE / "reader.conf"
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"PrivatePcscd(port={self.port}, {state})"

    def __enter__(self) -> PrivatePcscd:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def readers(self) -> list[str]:
        return [f"{self.friendly_name} 00 00", f"{self.friendly_name} 00 01"]

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def slot_port(self, slot: int = 0) -> int:
        return self.port + slot

    def start(self, timeout: float = _START_TIMEOUT_S) -> None:
        """Start pcscd and return once its socket exists. RuntimeError with its log if not."""
        if self.running:
            return
        other = PrivatePcscd._running
        if other is not None and other is not self and other.running:
            raise RuntimeError(f"{other!r} already serves {SOCKET_PATH}; stop it first")
        if self.driver is None:
            raise RuntimeError("vpcd driver not found (Debian package: vsmartcard-vpcd)")
        self._remove_leftovers()
        driver = Path(self.driver)
        drivers_dir = driver.parent.parent  # /usr/lib/pcsc/drivers: USB bundles + serial/
        _DRIVER_DIR.mkdir(exist_ok=True)
        self._conf_path.write_text(
            f'FRIENDLYNAME "{self.friendly_name}"\n'
            f"DEVICENAME /dev/null:{self.port}\n"
            f"LIBPATH {_DRIVER_DIR / driver.name}\n"
            f"CHANNELID {self.port}\n")
        steps = []
        if os.geteuid() != 0:
            steps.append("mount -t tmpfs tmpfs /run")
        steps += [
            "mkdir -p /run/pcscd",
            f"mount --bind {_RUN_DIR} /run/pcscd",
            # Hide the USB drivers (ifd-ccid.bundle): otherwise our pcscd would claim a real
            # USB reader too and fight the system pcscd over it. vpcd stays reachable through
            # a bind mount of its own directory (a bind keeps the source's exec permission,
            # where a copy in /tmp could meet a noexec mount).
            f"mount --bind {driver.parent} {_DRIVER_DIR}",
            f"mount -t tmpfs -o ro,mode=755 tmpfs {drivers_dir}",
            f"exec {_which('pcscd') or 'pcscd'} --foreground --error --config {self._conf_path}",
        ]
        script = " && ".join(steps)
        with open(self.log_path, "ab") as log:
            # Logs to a file, never a pipe nobody reads: a full pipe would block pcscd.
            # unshare and sh both exec, so the Popen pid is pcscd's own.
            self._proc = subprocess.Popen([*_unshare_prefix(), "sh", "-c", script],
                                          stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT)
        PrivatePcscd._running = self
        deadline = time.monotonic() + timeout
        while not self.socket_path.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop(kill=True)
                raise RuntimeError(f"private pcscd did not start; its log says:\n{self.log()}")
            time.sleep(0.005)

    def stop(self, *, kill: bool = False, timeout: float = _STOP_TIMEOUT_S) -> None:
        """Stop pcscd (SIGTERM, or SIGKILL with ``kill``) and wait for it. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
        if PrivatePcscd._running is self:
            PrivatePcscd._running = None
        self._remove_leftovers()

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def check_client(self) -> None:
        """RuntimeError unless this process's PC/SC client talks to this daemon.

        It does not if something made a PC/SC call before this module set
        ``PCSCLITE_CSOCK_NAME``: the client library then keeps the system socket for the rest
        of the process, and would silently use a system pcscd (which may well have its own
        "Virtual PCD" reader) or find none.
        """
        from smartcard import scard

        # The socket exists before pcscd has loaded its reader driver: on a busy machine the
        # reader shows a moment later, so ask until it does (or the time is up).
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            rc, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            readers: list[str] = []
            if rc == scard.SCARD_S_SUCCESS:
                try:
                    readers = list(scard.SCardListReaders(ctx, [])[1])
                finally:
                    scard.SCardReleaseContext(ctx)
            if set(self.readers) <= set(readers) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if not set(self.readers) <= set(readers):
            raise RuntimeError(
                f"this process's PC/SC client does not see the private pcscd on {SOCKET_PATH} "
                f"(it sees {readers or 'no pcscd'}): something made a PC/SC call before "
                "tests/pcscd.py was imported. Import it first (e.g. from conftest.py).")

    def wait_for_card(self, present: bool, slot: int = 0, timeout: float = 3.0) -> bool:
        """Wait until pcscd reports slot ``slot`` with (``present``) or without a card.

        Uses a PC/SC context of its own, so tests can make sure pcscd has seen a removal
        before the next insertion (pcscd only looks every 400 ms).
        """
        from smartcard import scard

        rc, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if rc != scard.SCARD_S_SUCCESS:
            return False
        try:
            reader = self.readers[slot]
            state = scard.SCARD_STATE_UNAWARE
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                rc, states = scard.SCardGetStatusChange(ctx, int(left * 1000) + 1,
                                                        [(reader, state)])
                if rc != scard.SCARD_S_SUCCESS:
                    return False
                state = states[0][1] & ~scard.SCARD_STATE_CHANGED
                if bool(state & scard.SCARD_STATE_PRESENT) == present:
                    return True
            return False
        finally:
            scard.SCardReleaseContext(ctx)

    def _remove_leftovers(self) -> None:
        # pcscd removes its socket on a clean exit, not when killed; a stale socket file
        # would look like readiness, and a stale pid file can make pcscd refuse to start.
        for name in ("pcscd.comm", "pcscd.pid"):
            with contextlib.suppress(FileNotFoundError):
                (_RUN_DIR / name).unlink()

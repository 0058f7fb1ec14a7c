"""Cloud workers as processes: what ``mfd cloud --workers N`` (N > 1) runs.

Threads of one Python process share one interpreter lock: a second worker thread added
contention, not throughput, where a second worker process added 24-33 % (bench.cloud_identify,
BENCHMARKS.md). So each worker beyond one is a process of its own, and the parent
(:class:`WorkerProcesses`) starts them, waits until each serves, starts again one that dies (a
kill -9, the kernel's out-of-memory killer) after a pause that grows while it keeps dying, and
stops them all. A worker holds no state: a request it had taken and not answered when it died
is lost with it, and the copier asks again with the same request_id (its link resends on a
timeout); another worker answers, and a repeat of something already done is answered from the
store (cloud/service.py), so nothing is done twice.

The child: ``python -m cloud.worker_process --name cloud-1 --store URL --broker URL ...``,
its broker password in ``MFD_CLOUD_PASSWORD`` (a command line is visible to every user of the
machine). It says ``ready`` on stdout once connected to every broker, or ``failed <why>`` and
exits 1; its log goes to stderr, which is the parent's. SIGTERM or SIGINT stops it cleanly.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cloud.service import CloudService
from cloud.storage.factory import open_store
from cloud.worker import MAX_LANES, default_lanes, start_workers, worker_brokers
from protocol.errors import LinkError, MfdError

log = logging.getLogger(__name__)

#: How long a worker may take to connect to every broker and open its store.
READY_S = 60.0
#: How long a worker has to finish what it is doing once asked to stop.
STOP_S = 15.0
#: The pause before starting a dead worker again: doubled each time it dies within
#: ``STEADY_S`` of its start, up to ``MAX_PAUSE_S``; back to the first once it ran that long.
FIRST_PAUSE_S = 1.0
MAX_PAUSE_S = 30.0
STEADY_S = 60.0


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m cloud.worker_process")
    p.add_argument("--name", required=True, help="the worker's broker username")
    p.add_argument("--store", required=True)
    p.add_argument("--broker", action="append", required=True)
    p.add_argument("--lanes", type=int, help="as mfd cloud --lanes (default: as its)")
    p.add_argument("--stats-s", type=float, default=0.0,
                   help="print the worker's counters on stderr this often (0: never)")
    p.add_argument("--stop-on-eof", action="store_true",
                   help="stop when stdin closes: the parent holds it open while it lives")
    p.add_argument("--debug", action="store_true", help="log at debug level (mfd --debug)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    done = threading.Event()
    # Before anything starts: a stop while connecting (a broker slow to answer holds that up
    # to 10 s) ends it there and then; once serving, a stop lets the worker finish in order.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    if args.stop_on_eof:
        # A parent that dies, even by kill -9, closes the pipe: no worker serves on orphaned.
        threading.Thread(target=_until_eof, args=(done,), daemon=True).start()
    url = args.store
    try:
        password = os.environ.get("MFD_CLOUD_PASSWORD", "")
        if not password:
            raise LinkError("MFD_CLOUD_PASSWORD is not set", code="config_invalid")
        brokers = worker_brokers(args.broker, args.name, password)
        [worker] = start_workers(lambda: CloudService(open_store(url, create=False)), brokers,
                                 1, lanes=default_lanes(url) if args.lanes is None
                                 else args.lanes)
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        signal.signal(signal.SIGINT, lambda *_: done.set())
    except MfdError as exc:
        print(f"failed {exc.message}", flush=True)
        return 1
    except KeyboardInterrupt:
        return 0  # stopped while starting: its threads are daemons and go with it
    if done.is_set():  # the parent went away while it started
        worker.stop()
        return 0
    # What exists now (modules, connections, caches) lives as long as the process: out of
    # the collector's sight, a full collection walks only what requests leave behind (a
    # fleet worker's took 12-23 ms before; measured with gc.callbacks). Garbage first, or
    # it would be kept for good.
    gc.collect()
    gc.freeze()
    print("ready", flush=True)
    t0 = time.monotonic()
    while not done.wait(args.stats_s or None):
        # Diagnostics (bench.fleet --worker-stats-s): where the worker's time goes.
        print(f"stats {args.name} t={time.monotonic() - t0:.0f} handled={worker.handled} "
              f"busy={worker.busy} max_waited={worker.max_waited} statuses={worker.statuses} "
              f"status_batches={worker.status_writer.batches} "
              f"written={worker.status_writer.written} "
              f"waiting={worker.status_writer.waiting} failed={worker.failed} "
              # Answers paho holds (in flight and queued behind its in-flight window), per
              # leg: a private attribute, read for diagnostics only.
              f"out={[len(getattr(leg.client, '_out_messages', ())) for leg in worker.legs]}",
              file=sys.stderr, flush=True)
        worker.max_waited = 0
    worker.stop()
    return 0


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _until_eof(done: threading.Event) -> None:
    sys.stdin.read()
    done.set()


@dataclass(eq=False)
class _Child:
    name: str
    proc: subprocess.Popen[str]
    started_at: float
    #: Set once the child has said "ready" or "failed", or has closed its stdout (exited).
    settled: threading.Event = field(default_factory=threading.Event)
    #: "ready", "failed", or "" while it has said neither.
    said: str = ""
    #: The reason a child that said "failed" gave.
    failure: str = ""


class WorkerProcesses:
    """Worker processes named ``names`` (their broker usernames), serving ``broker_urls`` on
    the store at ``store_url``: :meth:`start`, then :meth:`poll` now and then (it starts dead
    ones again), then :meth:`stop`."""

    def __init__(self, names: Sequence[str], store_url: str, broker_urls: Sequence[str],
                 password: str, *, lanes: int | None = None, stats_s: float = 0.0,
                 debug: bool = False) -> None:
        if lanes is not None and not 0 <= lanes <= MAX_LANES:
            raise LinkError(f"--lanes must be between 0 and {MAX_LANES}", code="config_invalid")
        if not names:
            raise LinkError("--workers must be at least 1", code="config_invalid")
        self.names = tuple(names)
        self._args = ["--store", store_url]
        for url in broker_urls:
            self._args += ["--broker", url]
        if lanes is not None:
            self._args += ["--lanes", str(lanes)]
        if stats_s:
            self._args += ["--stats-s", str(stats_s)]
        if debug:
            self._args.append("--debug")
        # The workers need the broker password and nothing of the web front end's secrets
        # (SMTP, single sign-on, the broker administrator's): those stay in this process.
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("MFD_")}
        self._env["MFD_CLOUD_PASSWORD"] = password
        self.children: dict[str, _Child] = {}
        #: name -> the pause before its next start, should it die (or fail to start) now
        self._pause: dict[str, float] = {n: FIRST_PAUSE_S for n in self.names}
        #: name -> when a dead worker's next start is due (dead workers only)
        self._due: dict[str, float] = {}
        #: How many times each worker was started again after dying.
        self.restarts: dict[str, int] = {n: 0 for n in self.names}

    def start(self, should_stop: Callable[[], bool] = lambda: False) -> WorkerProcesses:
        """Every worker started and serving; a worker that fails to stops all and raises
        LinkError with its reason. Returns early, the workers not all serving yet, once
        ``should_stop`` says so (a stop asked while a broker takes its time to answer: the
        caller stops them)."""
        try:
            for name in self.names:
                self.children[name] = self._spawn(name)
            deadline = time.monotonic() + READY_S  # they start side by side
            for name in self.names:
                child = self.children[name]
                while not child.settled.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
                    if should_stop():
                        return self
                    if time.monotonic() >= deadline:
                        break
                if child.said == "ready":
                    continue
                if child.said == "failed":
                    why = child.failure or "no reason given"
                elif child.settled.is_set():
                    why = f"it exited with status {_wait(child.proc)} (its log is above)"
                else:
                    why = f"it did not connect in {READY_S:.0f} s"
                raise LinkError(f"cloud worker {name} did not start: {why}")
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str) -> _Child:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cloud.worker_process", "--name", name, "--stop-on-eof",
             *self._args],
            env=self._env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            # Its own process group: a Ctrl-C at the terminal reaches the parent, which stops
            # the workers in order, instead of every process at once.
            start_new_session=True)
        child = _Child(name, proc, time.monotonic())
        threading.Thread(target=self._listen, args=(child,), daemon=True,
                         name=f"listen-{name}").start()
        return child

    @staticmethod
    def _listen(child: _Child) -> None:
        stdout = child.proc.stdout
        assert stdout is not None
        try:
            for line in stdout:
                word, _, rest = line.strip().partition(" ")
                if word in ("ready", "failed") and not child.said:
                    child.failure = rest if word == "failed" else ""
                    child.said = word
                    child.settled.set()
        finally:
            stdout.close()  # here, not in stop(): never under this loop
            child.settled.set()  # it exited: whoever waits for it stops waiting

    def poll(self) -> None:
        """Start again each worker that died, once its pause is over."""
        now = time.monotonic()
        for name, child in self.children.items():
            code = child.proc.poll()
            if code is None:
                continue
            due = self._due.get(name)
            if due is None:
                lived = now - child.started_at
                if lived >= STEADY_S:
                    self._pause[name] = FIRST_PAUSE_S
                pause = self._later(name, now)
                how = f"signal {-code}" if code < 0 else f"status {code}"
                log.warning("cloud worker %s exited (%s%s) after %.0f s; starting it again in "
                            "%.1f s", name, how, f": {child.failure}" if child.failure else "",
                            lived, pause)
            elif now >= due:
                if child.proc.stdin is not None:
                    child.proc.stdin.close()
                try:
                    self.children[name] = self._spawn(name)
                except OSError as exc:
                    # No process to be had now (too many processes or open files, the
                    # interpreter replaced by an upgrade): the others go on serving, and
                    # this one is tried again after a longer pause.
                    pause = self._later(name, now)
                    log.warning("cloud worker %s could not be started again (%s); trying in "
                                "%.1f s", name, exc, pause)
                    continue
                del self._due[name]
                self.restarts[name] += 1

    def _later(self, name: str, now: float) -> float:
        """Schedule ``name``'s next start after its pause, doubled for the time after; the
        pause."""
        pause = self._pause[name]
        self._pause[name] = min(pause * 2, MAX_PAUSE_S)
        self._due[name] = now + pause
        return pause

    def stop(self) -> None:
        """Every worker asked to stop (SIGTERM), and killed if it has not within STOP_S."""
        for child in self.children.values():
            if child.proc.poll() is None:
                child.proc.terminate()
        deadline = time.monotonic() + STOP_S
        for child in self.children.values():
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("cloud worker %s did not stop in %.0f s; killed", child.name, STOP_S)
                child.proc.kill()
                child.proc.wait()
            if child.proc.stdin is not None:
                child.proc.stdin.close()
        self._due.clear()


def _wait(proc: subprocess.Popen[str]) -> int | None:
    """The exit status of a process whose stdout has closed (it is ending), or None."""
    try:
        return proc.wait(5)
    except subprocess.TimeoutExpired:
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The real device, run as its own process by test_crash_reconcile.py so that it can be killed
(SIGKILL, a power cut) at exact points of a release and started again to reconcile.

    python tests/crash_device.py DEVICE_TOML [--jobs A,B,C] [--die-at POINT --die-job B]

What runs is what ``mfd device --config DEVICE_TOML --headless`` runs: ``from_config_file``
builds the device (the MQTT link to the broker, the engine its ``[engine]`` section names, the
journal file beside the config, the reader it lists), ``Device.start`` reconciles the journal
and starts the reader, and the app's loop steps until the work is done. With ``--jobs`` a
person then uses it: the badge in ``MFD_CRASH_BADGE`` (never on a command line) is tapped on
the device's own simulated reader (a ``sim:`` spec), the jobs are selected on the panel as
listed and Release is tapped. Without ``--jobs`` the device only starts, which reconciles.

Kill points (``--die-at``) are reached by hooks around the device's own objects (its link, its
engine, its journal), never by timing:

* ``fetch``              asking for a chunk past the first of the die job's document (mid-fetch)
* ``handed``             HANDED is journaled; the engine is about to be given the job
* ``engine-has-it``      the engine accepted the job (the test holds the engine's queue)
* ``printed-unjournaled`` the engine printed it; the journal has not recorded that yet
* ``printed-untold``     the journal says PRINTED; the cloud has not been told
* ``told-unconfirmed``   the cloud has answered the report; the journal has not recorded that

Output, a line each: ``RECONCILED <what>`` per journal row start-up settled, ``NOTHING`` if
the journal held nothing to settle, ``WAITING`` if some outcome is still to come (a job the
engine is printing), ``DYING <point>``, ``RELEASED <job ids>`` once the panel took the taps and
sent the release, ``DONE`` when the journal holds nothing the cloud has not acknowledged,
``FAILED`` at the deadline. Where it gives up it says what the panel showed (its state, title,
message, the engine's state, a release and whether the cloud answered it): ``NOT LISTED`` (the
jobs never listed, or the engine never ready), ``NOT RELEASED`` (the panel ignored or refused
the taps; the moves it made since), then ``FAILED``; or ``FAILED`` with the same.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from typing import Any

from device_app.printing.journal import JournalState
from device_app.runner import Device, from_config_file
from device_app.session import State
from device_app.view import Action
from protocol import messages as m
from readers.adapters.sim_reader import SimReader

DIE_AT = ("fetch", "handed", "engine-has-it", "printed-unjournaled", "printed-untold",
          "told-unconfirmed")


def die(point: str) -> None:
    print(f"DYING {point}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def install_hooks(device: Device, die_at: str, die_job: str) -> None:
    """Wrap the device's own objects so that the process dies at ``die_at`` for ``die_job``.
    The printer holds these very objects, so it calls through the wrappers."""
    link, engine, journal = device.link, device.engine, device.journal
    assert journal is not None, "the device has no journal file"

    if die_at == "fetch":
        # Chunk requests go out asynchronously, a window at a time (printing/documents.py).
        send = link.request

        def hooked_request(request: m.Request, reply: Any, timeout: float | None = None) -> None:
            if (isinstance(request, m.FetchDocument) and request.job_id == die_job
                    and request.offset > 0):
                die("fetch")
            send(request, reply, timeout)

        link.request = hooked_request  # type: ignore[method-assign]

    if die_at in ("handed", "engine-has-it", "printed-unjournaled"):
        submit = engine.submit

        def hooked_submit(job: Any, done: Any) -> None:
            mine = job.job_id == die_job
            if mine and die_at == "handed":
                die("handed")

            def hooked_done(job_id: str, ok: bool, detail: str) -> None:
                if mine and ok and die_at == "printed-unjournaled":
                    die("printed-unjournaled")
                done(job_id, ok, detail)

            submit(job, hooked_done)
            if mine and die_at == "engine-has-it":
                die("engine-has-it")

        engine.submit = hooked_submit  # type: ignore[method-assign]

        # Documents that are ready together are handed over in one write (submit_many): the
        # same death, whichever way the job goes.
        submit_many = getattr(engine, "submit_many", None)
        if submit_many is not None:
            def hooked_many(items: list[tuple[Any, Any]]) -> Any:
                mine = any(job.job_id == die_job for job, _ in items)
                if mine and die_at == "handed":
                    die("handed")
                wrapped = []
                for job, done in items:
                    def hooked_done(job_id: str, ok: bool, detail: str, done: Any = done,
                                    job: Any = job) -> None:
                        if job.job_id == die_job and ok and die_at == "printed-unjournaled":
                            die("printed-unjournaled")
                        done(job_id, ok, detail)
                    wrapped.append((job, hooked_done))
                errors = submit_many(wrapped)
                if mine and die_at == "engine-has-it":
                    die("engine-has-it")
                return errors

            engine.submit_many = hooked_many

    if die_at == "printed-untold":
        printed = journal.printed

        def hooked_printed(release_id: str, job_id: str, detail: str = "") -> Any:
            entry = printed(release_id, job_id, detail)
            if job_id == die_job:
                die("printed-untold")
            return entry

        journal.printed = hooked_printed  # type: ignore[method-assign]

    if die_at == "told-unconfirmed":
        confirmed = journal.confirmed

        def hooked_confirmed(release_id: str, job_id: str, answer: str = "ack") -> Any:
            if job_id == die_job:
                die("told-unconfirmed")
            return confirmed(release_id, job_id, answer)

        journal.confirmed = hooked_confirmed  # type: ignore[method-assign]


def release(device: Device, badge: str, jobs: list[str], deadline: float) -> bool:
    """A person at the panel: taps the badge, selects ``jobs`` in the list, taps Release. True
    once the panel took the taps (it is releasing: the request is on its way to the cloud);
    else it says what the panel showed instead."""
    app = device.app
    (reader,) = device.readers
    assert isinstance(reader, SimReader), "the crash device config names one sim: reader"
    assert reader.present(badge) is not None, "the reader did not take the badge"

    def ready(a: Any) -> bool:
        # As a person would: the jobs are on the list, and the panel has heard from the
        # engine that it can print. Until the printer's first answer the IPP engine says
        # OFFLINE, and the app asks the engine every ENGINE_POLL_S: a Release tapped before
        # that is refused with a notice (the jobs stay HELD), which is the panel working.
        engine = a.snapshot().engine
        return (a.machine.state is State.JOBS and engine is not None and engine.can_print
                and set(jobs) <= {j.job_id for j in a.view().jobs})

    if not app.run_until(ready, max(0.1, deadline - time.monotonic())):
        print(f"NOT LISTED {panel(app)}", flush=True)
        return False
    tapped = len(app.transcript)
    for job_id in jobs:
        app.tap(Action.SELECT, job_id)
    app.tap(Action.RELEASE)
    # The step that takes the Release tap sends the request and moves the panel to RELEASING,
    # before any answer (or kill point) can come; a panel that ignored or refused the taps
    # stays on the list or shows a notice.
    if not app.run_until(lambda a: a.machine.state is State.RELEASING,
                         max(0.1, deadline - time.monotonic())):
        print(f"NOT RELEASED {panel(app)}; selected {sorted(app.machine.selected)}; "
              f"since the taps: {list(app.transcript)[tapped:]}", flush=True)
        return False
    print(f"RELEASED {','.join(jobs)}", flush=True)
    return True


def panel(app: Any) -> str:
    """What the panel shows (its state, title, message, the engine as it knows it, a release
    under way), for the line that says why the device gave up."""
    view = app.view()
    rel = app.machine.release
    doing = "" if rel is None else (f"; release {rel.release_id or '(no answer yet)'}: "
                                    + ", ".join(f"{p.job_id} {p.state}"
                                                for p in rel.progress.values()))
    return (f"at {app.machine.state}: {view.title!r} {view.message!r}; engine "
            f"{app.machine.engine} {view.engine_problem!r}{doing}")


def settled(device: Device, jobs: list[str], old: set[tuple[str, str]], deadline: float) -> bool:
    """Step the app until the journal has a new row (not in ``old``) for every job of ``jobs``,
    each acknowledged by the cloud, and nothing unacknowledged."""
    journal = device.journal
    assert journal is not None

    def done(_app: Any) -> bool:
        if journal.unconfirmed():
            return False
        confirmed = {e.job_id for e in journal.entries()
                     if e.state is JournalState.CONFIRMED and e.key not in old}
        return set(jobs) <= confirmed

    return device.app.run_until(done, max(0.1, deadline - time.monotonic()))


class Reconciliations(logging.Handler):
    """What start-up reconciliation reported, from the printer's own log lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("reconcile: "):
            self.lines.append(message.removeprefix("reconcile: "))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("config", help="the device's device.toml")
    ap.add_argument("--jobs", default="", help="release these (comma-separated job ids)")
    ap.add_argument("--die-at", choices=DIE_AT, default="")
    ap.add_argument("--die-job", default="")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s device %(name)s %(levelname)s %(message)s")
    deadline = time.monotonic() + args.timeout
    jobs = [j for j in args.jobs.split(",") if j]

    device = from_config_file(args.config)
    assert device.journal is not None
    if args.die_at:
        install_hooks(device, args.die_at, args.die_job)
    leftover = device.journal.unconfirmed()  # what a crash left for start-up to settle
    seen = Reconciliations()
    logging.getLogger("device_app.printing").addHandler(seen)
    device.start()  # reconciles the journal before anyone can tap
    try:
        for line in seen.lines:
            print(f"RECONCILED {line}", flush=True)
        if not leftover:
            print("NOTHING", flush=True)
        if device.journal.unconfirmed():
            print("WAITING", flush=True)
        old = {e.key for e in device.journal.entries()}  # earlier releases of these jobs
        if jobs and not release(device, os.environ["MFD_CRASH_BADGE"], jobs, deadline):
            print("FAILED", flush=True)
            return 1
        ok = settled(device, jobs, old, deadline)
        if not ok:
            print("FAILED", [(e.job_id, e.state.value) for e in device.journal.unconfirmed()],
                  panel(device.app), flush=True)
        else:
            print("DONE", flush=True)
        return 0 if ok else 1
    finally:
        device.stop()


if __name__ == "__main__":
    raise SystemExit(main())

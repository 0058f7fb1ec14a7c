"""Badge read to job list ready, through real Mosquitto on loopback.

Each sample: the reader firmware stub writes an EM4100 frame on a pty; the serial reader decodes
it; the session machine sends identify, then jobs.list, through a private Mosquitto (no-delay on
broker and clients) to the cloud worker (SQLite); the sample ends when the machine holds the list
(state JOBS, ready to render). Then the user logs out and the next sample starts.

Two figures per sample: from the frame's last byte written (``p50_ms``/``p99_ms``, what a user
waits for, UART time of a 14-byte frame at 9600 baud is ~14.6 ms on real hardware, not on a pty)
and from the CardRead delivered to the app (``from_read_*``, our software path).

    python -m bench.badge_to_jobs [--n 200] [--jobs 200] [--json]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from bench.common import report, summary
from cloud.demo import DEMO_USERS
from device_app.session import Policy, State
from device_app.view import Action
from readers.events import CardRead
from simulator.world import SimWorld


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.badge_to_jobs", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="samples (default 200)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=0,
                    help="extra held jobs for the user (the panel loads --page-size of them)")
    ap.add_argument("--page-size", type=int, default=Policy().page_size,
                    help="jobs the panel loads at once (device policy; default %(default)s)")
    ap.add_argument("--json", action="store_true", help="print one JSON object last")
    args = ap.parse_args()

    # Unthrottled: 200 badge sign-ins from one copier at machine speed is what a throttle is for.
    with SimWorld(reader_lockout=0.0, extra_jobs=args.jobs, throttled=False,
                  policy=Policy(page_size=args.page_size)) as world:
        assert world.app and world.badge
        app, badge = world.app, world.badge
        read_at: list[float] = []
        original = app.on_card

        def timed_on_card(read: CardRead) -> None:
            read_at.append(time.perf_counter())
            original(read)

        for reader in app.readers:  # re-point the reader's sink to record delivery time
            reader.stop()
            reader.start(timed_on_card)
        time.sleep(0.1)
        user = DEMO_USERS[0]
        from_write: list[float] = []
        from_read: list[float] = []
        listed = 0
        for i in range(args.warmup + args.n):
            read_at.clear()
            t0 = time.perf_counter()
            badge.present(user.badge_tag)
            if not app.run_until(lambda a: a.machine.state is State.JOBS, 5):
                raise SystemExit(f"sample {i}: no job list within 5 s "
                                 f"(state {app.machine.state.value})")
            t1 = time.perf_counter()
            listed = len(app.view().jobs)
            if i >= args.warmup:
                from_write.append((t1 - t0) * 1000)
                from_read.append((t1 - read_at[0]) * 1000)
            app.tap(Action.LOGOUT)
            app.run_until(lambda a: a.machine.state is State.IDLE, 2)
        figures = {"n": args.n, "held_jobs": 5 + args.jobs, "jobs_listed": listed,
                   **summary(from_write), **summary(from_read, "from_read_"),
                   "tcp_nodelay": True}
    report("badge_to_jobs", figures, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Badge read to job list *drawn*, through real Mosquitto on loopback; the job list's frame time.

Each sample: the reader firmware stub writes an EM4100 frame on a pty; the serial reader decodes
it; the session machine sends identify, whose answer brings the first screenful of jobs (the rest
of the page follows behind it; an older cloud's answer would need jobs.list too), through a
private Mosquitto (no-delay on broker and clients) to the cloud worker (SQLite); the sample ends
when the first frame showing
the job list has been drawn by the real PanelRenderer and flipped to the display (SDL's dummy
driver, at ``--size``). Then the user logs out and the next sample starts.

``--loop window`` (the default) runs the panel's own loop (device_app.panel.window.run_window),
as ``mfd device`` does; ``--loop eager`` runs a loop in this file that draws as soon as the app
has handled an event that changed the view: the difference is what the panel loop's frame
pacing costs.

Figures per sample: from the frame's last byte written to the flipped frame (``p50_ms``/
``p99_ms``, what a user waits for; UART time of a 14-byte frame at 9600 baud is ~14.6 ms on real
hardware, not on a pty), from the CardRead delivered to the app (``from_read_*``), and the
draw of that first job-list frame alone (``draw_*``). Then ``--frames`` frames of the job list
(all jobs the view holds) are drawn and flipped back to back at ``--size``:
``frame_p50_ms``/``frame_p99_ms``.

``--rtt-ms`` puts a WAN link (simulator/netem.py) between the device and the broker.

    python -m bench.badge_to_jobs [--n 200] [--jobs 200] [--size 1280x800] [--loop window|eager]
                                  [--rtt-ms 40] [--json]
"""

from __future__ import annotations

import argparse
import os
import random
import threading
import time
from collections.abc import Callable

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame

import device_app.panel.window as window
from bench.common import parse_size, report, summary
from cloud.demo import DEMO_USERS
from device_app.app import DeviceApp
from device_app.panel.renderer import PanelRenderer
from device_app.session import Policy, State
from device_app.view import Action, PanelView, Screen
from readers.events import CardRead
from simulator.netem import LinkProfile
from simulator.world import SimWorld


class _Frames:
    """What the panel drew and when: the renderer and the flip are wrapped, nothing else."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.last_screen: Screen | None = None
        self.last_view: PanelView | None = None
        self.draw_started = 0.0
        self.draw_ms = 0.0
        self.flipped_at = 0.0
        self.count = 0

    def wait_for(self, screen: Screen, after: int, timeout: float) -> bool:
        """Wait until a frame of ``screen`` newer than frame number ``after`` is flipped."""
        with self.changed:
            return self.changed.wait_for(
                lambda: self.count > after and self.last_screen is screen, timeout)


def _instrument(frames: _Frames) -> Callable[[], None]:
    """Time every frame the panel loop draws: PanelRenderer.draw and pygame.display.flip (and
    update) are wrapped (the panel's code is not changed); returns the undo."""
    original_draw = PanelRenderer.draw
    original_flip = pygame.display.flip
    original_update = pygame.display.update
    pending: list[PanelView] = []

    def draw(self: PanelRenderer, view: PanelView, now: float | None = None) -> None:
        t0 = time.perf_counter()
        original_draw(self, view, now)
        frames.draw_ms = (time.perf_counter() - t0) * 1000
        frames.draw_started = t0
        pending[:] = [view]

    def flip() -> None:
        original_flip()
        shown()

    def update(*rects: object) -> None:  # a loop that updates parts of the display
        original_update(*rects)
        shown()

    def shown() -> None:
        t = time.perf_counter()
        with frames.changed:
            if pending:
                frames.last_view = pending[0]
                frames.last_screen = pending[0].screen
            frames.flipped_at = t
            frames.count += 1
            frames.changed.notify_all()

    PanelRenderer.draw = draw  # type: ignore[method-assign]
    pygame.display.flip = flip
    pygame.display.update = update

    def undo() -> None:
        PanelRenderer.draw = original_draw  # type: ignore[method-assign]
        pygame.display.flip = original_flip
        pygame.display.update = original_update

    return undo


def _eager_window(app: DeviceApp, *, size: tuple[int, int],
                  should_stop: Callable[[], bool]) -> None:
    """A panel loop that draws right after an event changed the view (what run_window would
    do if it did not wait out its frame); idle, it redraws once a second like run_window."""
    os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
    pygame.display.init()
    screen = pygame.display.set_mode(size)
    renderer = PanelRenderer(screen)
    last_view: PanelView | None = None
    last_draw = 0.0
    try:
        while not should_stop():
            pygame.event.pump()
            app.step(window.FRAME_S)
            view = app.view()
            now = time.monotonic()
            if view != last_view or now - last_draw >= 1.0:
                renderer.draw(view, time.time())
                pygame.display.flip()
                last_view, last_draw = view, now
    finally:
        pygame.display.quit()


def _frame_times(view: PanelView, size: tuple[int, int], n: int) -> list[float]:
    """``n`` frames of ``view`` drawn and flipped back to back, in ms, on a fresh display."""
    pygame.display.init()
    try:
        screen = pygame.display.set_mode(size)
        renderer = PanelRenderer(screen)
        now = time.time()
        for _ in range(10):  # warm-up: fonts, glyph caches
            renderer.draw(view, now)
            pygame.display.flip()
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            renderer.draw(view, now)
            pygame.display.flip()
            out.append((time.perf_counter() - t0) * 1000)
        return out
    finally:
        pygame.display.quit()


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.badge_to_jobs", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="samples (default 200)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=0,
                    help="extra held jobs for the user (the panel loads --page-size of them)")
    ap.add_argument("--page-size", type=int, default=Policy().page_size,
                    help="jobs the panel loads at once (device policy; default %(default)s)")
    ap.add_argument("--size", type=parse_size, default=(1280, 800), metavar="WxH",
                    help="display size (default 1280x800)")
    ap.add_argument("--loop", choices=("window", "eager"), default="window",
                    help="the panel's run_window loop (default), or one that draws at once")
    ap.add_argument("--frames", type=int, default=300,
                    help="job-list frames drawn back to back for frame_* (default 300)")
    ap.add_argument("--rtt-ms", type=float, default=0.0,
                    help="round trip added between the device and the broker (simulator/netem.py; "
                    "default 0: loopback)")
    ap.add_argument("--json", action="store_true", help="print one JSON object last")
    args = ap.parse_args()

    frames = _Frames()
    undo = _instrument(frames)
    stop = threading.Event()
    failure: list[str] = []
    from_write: list[float] = []
    from_read: list[float] = []
    draw_ms: list[float] = []
    ready: list[float] = []
    jobs_view: list[PanelView] = []
    # Unthrottled: 200 badge sign-ins from one copier at machine speed is what a throttle is for.
    link = LinkProfile.rtt(args.rtt_ms) if args.rtt_ms else None
    with SimWorld(reader_lockout=0.0, extra_jobs=args.jobs, throttled=False,
                  policy=Policy(page_size=args.page_size), link=link) as world:
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
        ready_at: list[float] = []
        original_step = app.step

        def timed_step(timeout: float = 0.05) -> bool:
            changed = original_step(timeout)
            if not ready_at and app.machine.state is State.JOBS:
                ready_at.append(time.perf_counter())
            return changed

        app.step = timed_step  # type: ignore[method-assign]
        user = DEMO_USERS[0]

        def scenario() -> None:
            try:
                if not frames.wait_for(Screen.IDLE, 0, 10):
                    raise RuntimeError("the panel drew no idle screen within 10 s")
                for i in range(args.warmup + args.n):
                    read_at.clear()
                    ready_at.clear()
                    # A badge comes at any moment of the panel's frame, not just after one was
                    # drawn (which is when this thread wakes): start at a random phase.
                    time.sleep(random.uniform(0, window.FRAME_S))
                    seen = frames.count
                    t0 = time.perf_counter()
                    badge.present(user.badge_tag)
                    if not frames.wait_for(Screen.JOBS, seen, 5):
                        raise RuntimeError(f"sample {i}: no job list drawn within 5 s")
                    t1 = frames.flipped_at
                    if i >= args.warmup:
                        from_write.append((t1 - t0) * 1000)
                        from_read.append((t1 - read_at[0]) * 1000)
                        ready.append((ready_at[0] - read_at[0]) * 1000)
                        draw_ms.append(frames.draw_ms)
                    if not jobs_view and frames.last_view is not None:
                        jobs_view.append(frames.last_view)
                    seen = frames.count
                    app.tap(Action.LOGOUT)
                    if not frames.wait_for(Screen.IDLE, seen, 5):
                        raise RuntimeError(f"sample {i}: no idle screen after logout")
            except Exception as exc:
                failure.append(str(exc))
            finally:
                stop.set()

        threading.Thread(target=scenario, daemon=True).start()
        try:
            if args.loop == "window":
                window.run_window(app, title="bench", size=args.size, should_stop=stop.is_set)
            else:
                _eager_window(app, size=args.size, should_stop=stop.is_set)
        finally:
            undo()
    if failure:
        raise SystemExit(f"badge_to_jobs: {failure[0]}")
    view = jobs_view[0]
    frame = _frame_times(view, args.size, args.frames)
    figures = {"n": args.n, "held_jobs": 5 + args.jobs, "jobs_listed": len(view.jobs),
               "size": f"{args.size[0]}x{args.size[1]}", "loop": args.loop,
               "rtt_ms": args.rtt_ms,
               **summary(from_write), **summary(from_read, "from_read_"),
               **summary(ready, "read_to_state_"), **summary(draw_ms, "draw_"),
               **summary(frame, "frame_"),
               "tcp_nodelay": True}
    report("badge_to_jobs", figures, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

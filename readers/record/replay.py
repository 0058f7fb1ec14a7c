"""``replay:FILE?speed=1.0&loop=0&id=NAME``: a recorded reader played back through the live path.

Theory of operation
-------------------
A replay must fail where the live reader failed, so it decodes nothing itself. It opens a
pseudo-terminal (:class:`~readers.pty.PtyPort`), runs an ordinary
:class:`~readers.adapters.serial_reader.SerialCardReader` on the pty's device path with the family,
baud and lock-out from the recording's header, and writes the recorded chunks into the other
end. pyserial, the codec, the debouncer, the health counters and the reader thread are the
ones a live reader uses; only the wire is a file. (A recording holds what the reader sent, not
what the host sent it: replies to commands are replayed, the commands are not.)

Timing has two sides:

* **Real time** -- when a chunk is written: at its recorded time divided by ``speed``
  (``speed=2`` plays twice as fast; ``speed=0`` as fast as the reader takes the bytes).
* **Reader time** -- what the adapter's clock says while it handles a chunk: always the
  *recorded* time (plus the monotonic time at ``start()``), whatever the speed. The debouncer
  decides "held card or new tap" from that clock, so a card tapped twice three seconds apart
  is two reads at any speed, exactly as it was live, and ``CardRead.at`` differences are the
  recorded ones.

For the reader's clock to be right, the adapter must never see two chunks in one read. So the
replay runs in lock-step: it writes a chunk, then waits until the adapter has read all of its
bytes (the adapter's ``on_raw`` tells) before writing the next. A chunk may still arrive in
several reads -- a live one could too -- but never merged with the next.

When the last chunk has been taken the replay stops its adapter, which waits for the reader
thread to finish delivering, and then sets :attr:`ReplayReader.done`: after ``done`` every
read of the recording has reached the sink and :attr:`~ReplayReader.health` is final.
``loop=1`` plays the recording again and again instead (``done`` is never set), each pass
starting as if the reader had been idle for a second longer than its lock-out, so every pass
yields the same reads.
"""

from __future__ import annotations

import logging
import threading
import time

from protocol.errors import ConfigError, ReaderError
from readers.adapters.lifecycle import ReaderThread
from readers.adapters.serial_reader import SerialCardReader
from readers.events import CardRead, CardSink, ReaderHealth
from readers.pty import PtyPort
from readers.record.recording import Recording, load_recording

__all__ = ["SPEC_PARAMS", "ReplayReader", "open_spec"]

_log = logging.getLogger(__name__)

#: Parameters a ``replay:`` reader spec takes (readers.spec).
SPEC_PARAMS = ("speed", "loop", "id")
_EXAMPLE = "replay:/var/tmp/front-door.jsonl?speed=0"

# Header params that are not the family's own options: the lock-out is the adapter's; family
# and baud are header fields of their own and id belongs to the replay, so copies of them
# inside ``params`` are ignored.
_NOT_FAMILY_OPTIONS = ("lockout", "family", "baud", "id")

# A pty hands bytes over in microseconds; a chunk not taken after this long means the adapter
# is stuck or lost the bytes. The replay says so and goes on rather than hang.
_STALL_S = 2.0
_JOIN_TIMEOUT_S = 3.0
# Reader time between loop passes, beyond the lock-out: forgets the held card of the last pass.
_PASS_GAP_S = 1.0


class ReplayReader:
    """A :class:`~readers.events.CardReader` that plays a :class:`Recording`.

    ``speed`` scales real time (0 = as fast as possible); ``loop`` replays forever. Building
    checks that the recording can be replayed (:class:`ConfigError` naming the header);
    :meth:`start` opens the pty and begins.
    """

    def __init__(self, recording: Recording, *, reader_id: str, speed: float = 1.0,
                 loop: bool = False) -> None:
        header = recording.header
        where = f"recording {recording.path or '(in memory)'} line 1"
        if header.scheme != "serial":
            raise ConfigError(f"{where}: scheme {header.scheme!r} cannot be replayed; only "
                              "serial recordings can")
        if not speed >= 0:  # also refuses NaN
            raise ConfigError(f"replay speed must be >= 0 (0 = as fast as possible), got {speed}")
        from readers.spec import non_negative_float

        params = dict(header.params)
        options = {k: v for k, v in params.items() if k not in _NOT_FAMILY_OPTIONS}
        try:
            lockout = non_negative_float(params, "lockout", 2.0)
            # Building the adapter validates family, baud and the family's options exactly as
            # for a live reader, and opens nothing; start() builds the real one on the pty.
            SerialCardReader("(replay)", reader_id=reader_id, family=header.family,
                             baud=header.baud, lockout_s=lockout, options=options)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        self.recording = recording
        self.reader_id = reader_id
        self.speed = speed
        self.loop = loop
        self.lockout_s = lockout
        self.options = options
        self.health = ReaderHealth()
        #: Set when the recording has been played to the end and every read delivered.
        self.done = threading.Event()
        #: Complete passes through the recording so far.
        self.passes = 0
        self._feeder = ReaderThread(reader_id, _log, name="replay",
                                    join_timeout_s=_JOIN_TIMEOUT_S)
        self._in_sink = threading.local()
        # Lock-step state of the current run, guarded by _cond.
        self._cond = threading.Condition()
        self._written = 0  # bytes handed to the pty
        self._taken = 0  # bytes the adapter reported reading
        self._now = 0.0  # the adapter's clock: reader time of the chunk in flight

    def __repr__(self) -> str:
        return (f"ReplayReader({self.recording.path!r}, reader_id={self.reader_id!r}, "
                f"speed={self.speed}, loop={self.loop})")

    @property
    def running(self) -> bool:
        return self._feeder.running

    def start(self, sink: CardSink) -> None:
        """Open a pty, start the serial adapter on it and begin playing (on a thread)."""
        self._feeder.refuse_if_running()
        header = self.recording.header
        try:
            pty = PtyPort()
        except OSError as exc:
            raise ReaderError(f"replay {self.reader_id!r}: cannot open a pseudo-terminal: "
                              f"{exc}") from exc
        with self._cond:
            self._written = self._taken = 0
            self._now = time.monotonic()
        base = self._now
        adapter = SerialCardReader(
            pty.device, reader_id=self.reader_id, family=header.family, baud=header.baud,
            lockout_s=self.lockout_s, clock=self._clock, on_raw=self._taken_raw,
            options=self.options)
        adapter.health = self.health  # one set of counters, kept across restarts like serial's
        try:
            adapter.start(self._sink_wrapper(sink))  # the port is open (and flushed) on return
        except BaseException:
            pty.close()
            raise
        self.done.clear()
        self._feeder.start(lambda stopping: self._feed(pty, adapter, stopping, base))
        _log.info("reader %s: replaying %s (%d chunks, %.1f s) at speed %s%s",
                  self.reader_id, self.recording.path, len(self.recording.chunks),
                  self.recording.duration, self.speed or "max", ", looping" if self.loop else "")

    def stop(self) -> None:
        """Stop playing and close the pty. Idempotent; safe to call from the sink."""
        with self._cond:
            self._feeder.stopping.set()  # under the lock, so a wait cannot miss it
            self._cond.notify_all()
        # Inside the sink we are on the serial adapter's thread: the feeder's clean-up waits
        # for that thread, so waiting for the feeder here would deadlock. It finishes on its
        # own once the sink returns.
        self._feeder.stop(in_sink=lambda: getattr(self._in_sink, "active", False))

    # -- the adapter's side (reader thread) ---------------------------------------------

    def _clock(self) -> float:
        return self._now

    def _taken_raw(self, data: bytes, t: float) -> None:
        with self._cond:
            self._taken += len(data)
            self._cond.notify_all()

    def _sink_wrapper(self, sink: CardSink) -> CardSink:
        def deliver(read: CardRead) -> None:
            self._in_sink.active = True
            try:
                sink(read)
            finally:
                self._in_sink.active = False
        return deliver

    # -- the feeder thread -----------------------------------------------------------------

    def _feed(self, pty: PtyPort, adapter: SerialCardReader, stopping: threading.Event,
              base: float) -> None:
        finished = False
        try:
            finished = self._play(pty, stopping, base)
            if finished:
                _log.info("reader %s: replay of %s finished (%d reads, %d bad frames)",
                          self.reader_id, self.recording.path, self.health.reads,
                          self.health.bad_frames)
        except OSError as exc:
            _log.warning("reader %s: replay pty failed: %s", self.reader_id, exc)
        finally:
            # Joins the reader thread: everything it read has been delivered after this.
            adapter.stop()
            pty.close()
            if finished:
                self.done.set()

    def _play(self, pty: PtyPort, stopping: threading.Event, base: float) -> bool:
        """Write every chunk (every pass, if looping); True if the recording ran out."""
        chunks = self.recording.chunks
        offset = 0.0  # reader time at which the current pass starts
        real_start = time.monotonic()
        while True:
            for chunk in chunks:
                at = offset + chunk.t
                if self.speed > 0:
                    delay = real_start + at / self.speed - time.monotonic()
                    if delay > 0 and stopping.wait(delay):
                        return False
                with self._cond:
                    if stopping.is_set():
                        return False
                    self._now = base + at
                    self._written += len(chunk.data)
                pty.write(chunk.data)
                if not self._wait_taken(stopping):
                    return False
            self.passes += 1
            if not self.loop:
                return True
            offset += self.recording.duration + self.lockout_s + _PASS_GAP_S

    def _wait_taken(self, stopping: threading.Event) -> bool:
        """Wait until the adapter has read every byte written; False if stopped meanwhile."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: stopping.is_set() or self._taken >= self._written, _STALL_S)
            if stopping.is_set():
                return False
            if not ok:
                _log.warning("reader %s: the adapter took only %d of %d replayed bytes within "
                             "%.1f s; going on", self.reader_id, self._taken, self._written,
                             _STALL_S)
                self._taken = self._written
            return True


def open_spec(spec: str, target: str, params: dict[str, str],
              reader_id: str | None) -> ReplayReader:
    """``replay:FILE?speed=1.0&loop=0&id=NAME`` (see readers.spec). Loads the file now."""
    from readers.spec import redact_spec

    if not target:
        raise ConfigError(f"reader spec {redact_spec(spec)!r} names no recording file; "
                          "expected e.g. "
                          f"{_EXAMPLE!r}")
    speed = _speed(params)
    loop = _flag(params, "loop")
    recording = load_recording(target)
    rid = reader_id or params.get("id") or spec
    return ReplayReader(recording, reader_id=rid, speed=speed, loop=loop)


def _speed(params: dict[str, str]) -> float:
    text = params.get("speed")
    if text is None:
        return 1.0
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (0 <= value < float("inf")):
        raise ConfigError("reader spec parameter 'speed' must be a number >= 0 (1 = as "
                          f"recorded, 2 = twice as fast, 0 = as fast as possible), got {text!r}")
    return value


def _flag(params: dict[str, str], key: str) -> bool:
    text = params.get(key, "0")
    if text not in ("0", "1"):
        raise ConfigError(f"reader spec parameter {key!r} must be 0 or 1, got {text!r}")
    return text == "1"

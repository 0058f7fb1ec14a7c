"""``sim:NAME?lockout=2&id=ID``: a simulated card reader, the simulator's and tests' hardware.

It implements the same :class:`~readers.events.CardReader` port as the serial adapter, so the
device app cannot tell it from a real reader, and it applies the same held-card lock-out
(:class:`~readers.debounce.Debouncer`) so a simulated "hold the badge on the reader" behaves
as a real RDM6300 does. What it leaves out is the wire: :meth:`SimReader.present` takes the
canonical card number directly. (To exercise a codec, use a ``replay:`` recording or a
firmware stub on a pty instead.)

Finding it: the app opens readers from spec strings in its configuration, but the simulator
or a test must then get hold of the same object to present cards on it. Every SimReader is
registered under its NAME, and :func:`get_sim_reader` looks it up. The registry holds readers
weakly -- it never keeps one alive -- and the newest reader of a name wins, so re-opening
``sim:front`` (a restarted app, the next test) simply replaces the old one.

:meth:`SimReader.present` calls the sink on the caller's thread, at once: there is no reader
thread to hand over to, and a test gets a deterministic order for free. The sink contract
(only enqueue) is the same as for every reader.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable

from protocol.errors import ConfigError, ReaderError
from readers.debounce import Debouncer
from readers.events import CardRead, CardSink, ReaderHealth

__all__ = ["SPEC_PARAMS", "SimReader", "get_sim_reader", "open_spec", "sim_reader_names"]

_log = logging.getLogger(__name__)

_registry: weakref.WeakValueDictionary[str, SimReader] = weakref.WeakValueDictionary()
_registry_lock = threading.Lock()


class SimReader:
    """A reader whose cards are presented by code. Registered under ``name`` when built."""

    def __init__(self, name: str, *, reader_id: str | None = None, lockout_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not name or not name.strip():
            raise ConfigError("simulated reader name is empty; expected e.g. 'sim:front'")
        self._debouncer = Debouncer.for_lockout(lockout_s, "simulated reader")
        self.name = name
        self.reader_id = reader_id or f"sim:{name}"
        self.health = ReaderHealth()
        self._clock = clock
        self._sink: CardSink | None = None
        # present() may come from a test thread while the app stops the reader on its own.
        self._lock = threading.Lock()
        with _registry_lock:
            replaced = _registry.get(name)
            _registry[name] = self
        if replaced is not None:
            _log.debug("simulated reader %r replaces an earlier one of that name", name)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"SimReader({self.name!r}, reader_id={self.reader_id!r}, {state})"

    @property
    def running(self) -> bool:
        return self._sink is not None

    @property
    def lockout_s(self) -> float:
        return self._debouncer.window_s

    def start(self, sink: CardSink) -> None:
        with self._lock:
            if self._sink is not None:
                raise ReaderError(f"reader {self.reader_id!r} is already started")
            self._sink = sink
        _log.info("reader %s: simulated reader %r ready", self.reader_id, self.name)

    def stop(self) -> None:
        """Idempotent; safe to call from the sink."""
        with self._lock:
            was_running = self._sink is not None
            self._sink = None
        if was_running:
            _log.info("reader %s: stopped", self.reader_id)

    def present(self, number: str, *, raw: bytes | None = None) -> CardRead | None:
        """A card in the field: the read delivered to the sink, or ``None``.

        ``None`` when the reader is not started (nobody is listening, as with a real reader
        that is not open) or when the read is a repeat of a card still held within the
        lock-out (counted in ``health.suppressed``). Presenting the same number repeatedly is
        holding the card; a gap longer than the lock-out is lifting and tapping again.
        ``raw`` defaults to the number's ASCII bytes.
        """
        if not isinstance(number, str) or not number or not number.isprintable() \
                or number != number.strip():
            raise ReaderError(f"simulated reader {self.name!r}: a card number must be a "
                              "non-empty printable string without surrounding blanks")
        with self._lock:
            sink = self._sink
            if sink is None:
                return None
            now = self._clock()
            if not self._debouncer.accept(number, now):
                self.health.suppressed += 1
                return None
            self.health.reads += 1
        read = CardRead(number=number, raw=number.encode("utf-8") if raw is None else raw,
                        reader_id=self.reader_id, at=now)
        _log.debug("reader %s: read %s", self.reader_id, read.masked)
        # Outside the lock, so a sink that calls stop() (or present()) cannot deadlock.
        sink(read)
        return read


def get_sim_reader(name: str) -> SimReader:
    """The newest live :class:`SimReader` called ``name``; :class:`ReaderError` if none."""
    with _registry_lock:
        reader = _registry.get(name)
        known = sorted(_registry.keys())
    if reader is None:
        raise ReaderError(f"no simulated reader named {name!r}; open one with 'sim:{name}'"
                          + (f" (open now: {', '.join(known)})" if known else ""))
    return reader


def sim_reader_names() -> list[str]:
    """Names of the simulated readers that exist now, sorted."""
    with _registry_lock:
        return sorted(_registry.keys())


#: Parameters a ``sim:`` reader spec takes (readers.spec).
SPEC_PARAMS = ("lockout", "id")


def open_spec(spec: str, target: str, params: dict[str, str],
              reader_id: str | None) -> SimReader:
    """``sim:NAME?lockout=2&id=ID`` (see readers.spec)."""
    from readers.spec import non_negative_float, redact_spec

    if not target.strip():
        raise ConfigError(f"reader spec {redact_spec(spec)!r} names no simulated reader; "
                          "expected e.g. "
                          "'sim:front'")
    lockout = non_negative_float(params, "lockout", 2.0)
    rid = reader_id or params.get("id") or spec
    return SimReader(target, reader_id=rid, lockout_s=lockout)

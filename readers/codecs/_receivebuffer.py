"""The receive side every codec shares: queued events, counters, and line splitting.

Theory of operation
-------------------
A decoder here is h11-style and sans-I/O: ``receive_data(chunk)`` takes whatever the wire
delivered, processes it at once and queues what it found; ``next_event()`` hands the queue out
one event at a time (``None``: more data needed), ``feed(chunk)`` does both. An event is a
frame or a :class:`~protocol.errors.FrameError` -- returned, never raised, so that one bad
frame costs that frame and decoding goes on.

:class:`ReceiveBuffer` holds what every decoder keeps beside its wire format: the event queue
and the three counters a technician's health display reads (``frames``, ``bad_frames``,
``skipped_bytes``). Each codec module subclasses it and says only how bytes become frames.

:class:`LineBuffer` adds the framing of the line-oriented formats (the ASCII readers): the
stream is cut at a terminator byte, a line is bounded by a limit, and a line that overruns it
is reported once and its tail discarded up to the next terminator -- which bounds memory
whatever arrives (a reader at the wrong baud rate sends exactly such endless garbage).
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

from protocol.errors import FrameError

__all__ = ["LineBuffer", "ReceiveBuffer"]

E = TypeVar("E")


class ReceiveBuffer(Generic[E]):
    """Events waiting for :meth:`next_event`, and the counters of what was decoded.

    ``frames`` counts good frames, ``bad_frames`` reported errors and ``skipped_bytes`` what
    was discarded as noise (bytes outside a frame, blank lines): numbers for a technician.
    """

    __slots__ = ("_events", "bad_frames", "frames", "skipped_bytes")

    def __init__(self) -> None:
        self._events: deque[E] = deque()
        self.frames = 0
        self.bad_frames = 0
        self.skipped_bytes = 0

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished frame held back until more data arrives (bounded)."""
        raise NotImplementedError

    def receive_data(self, data: bytes) -> None:
        """Take bytes from the wire. Processed at once; only the events are queued."""
        raise NotImplementedError

    def next_event(self) -> E | None:
        """The next frame or frame error, or ``None`` when more data is needed."""
        return self._events.popleft() if self._events else None

    def feed(self, data: bytes) -> list[E]:
        """:meth:`receive_data` and collect every event that is ready."""
        self.receive_data(data)
        events = list(self._events)
        self._events.clear()
        return events

    def feed_one(self, data: bytes) -> E | None:
        """``data`` as one frame, for tools that hold a whole frame in hand.

        The frame when ``data`` decodes to exactly one and leaves nothing held back; the
        decoder's error for a bad first frame is raised; ``None`` otherwise (``frames`` then
        says whether any frame was found), for the codec to raise its own "unframed" error.
        """
        events = self.feed(data)
        if events and isinstance(events[0], FrameError):
            raise events[0]
        return events[0] if len(events) == 1 and self.pending_bytes == 0 else None

    def _emit(self, frame: E) -> None:
        self.frames += 1
        self._events.append(frame)

    def _reject(self, error: E) -> None:
        self.bad_frames += 1
        self._events.append(error)


class LineBuffer(ReceiveBuffer[E]):
    """Cuts the stream into lines at a terminator byte; subclasses say what a line is.

    The terminator and the limit are asked for per line (:meth:`_terminator`,
    :meth:`_line_limit`): a reply on the line may have just changed the reader's settings.
    """

    __slots__ = ("_line", "_skipping")

    def __init__(self) -> None:
        super().__init__()
        self._line = bytearray()
        self._skipping = False  # inside an overlong line: discard up to the next terminator

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished line held back (at most the line limit)."""
        return len(self._line)

    def receive_data(self, data: bytes) -> None:
        pos = 0
        end = len(data)
        while pos < end:
            end_byte = self._terminator()
            # In bulk up to the terminator: a line of noise is the hot path on a bad line.
            found = data.find(end_byte, pos)
            stop = end if found < 0 else found
            piece = data[pos:stop]
            if self._skipping:
                self.skipped_bytes += len(piece)
            else:
                room = self._line_limit() - len(self._line)
                if len(piece) > room:
                    self._line += piece[:room]
                    raw = bytes(self._line)
                    self._line.clear()
                    self._skipping = True
                    self._overlong(raw)
                    self.skipped_bytes += len(piece) - room
                else:
                    self._line += piece
            if found < 0:
                return
            pos = found + 1
            if self._skipping:
                self._skipping = False
                self.skipped_bytes += 1
            else:
                raw = bytes(self._line) + bytes((end_byte,))
                self._line.clear()
                self._handle_line(raw)

    def _terminator(self) -> int:
        """The byte that ends a line."""
        raise NotImplementedError

    def _line_limit(self) -> int:
        """Most bytes a line may hold before its terminator."""
        raise NotImplementedError

    def _overlong(self, raw: bytes) -> None:
        """Report the first ``raw`` bytes of a line that overran the limit."""
        raise NotImplementedError

    def _handle_line(self, raw: bytes) -> None:
        """One whole line, its terminator included."""
        raise NotImplementedError

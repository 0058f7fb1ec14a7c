"""PrintEngine adapter for an engine in another process, over the engine socket protocol v1
(protocol/engine.py documents it; firmware_stubs/engine_server.py serves it).

Theory of operation
-------------------
One Unix-socket connection, opened on first use and again after it is lost. Calls are numbered;
a reader thread matches answers to callers and turns the engine's pushed "done" events into the
``done`` callbacks (on the reader thread: callers hand off, as with every adapter here), and its
"pages" events (how far a job is, see firmware_stubs/engine_server.py) into ``on_pages``
(device_app.ports.ReportsPages), for jobs still owed their ``done`` only.

The contract :meth:`EngineClient.submit` keeps, which the printer's journal relies on:

* it raises :class:`EngineError` only when the engine certainly does not have the job: the
  engine could not be reached (nothing was sent: :class:`EngineUnreachable`) or it answered no
  (:class:`EngineRefused`, e.g. ``duplicate_job``);
* otherwise ``done`` is called exactly once, even across a lost connection: the client reconnects
  and asks ``outcome`` for every job still owed an answer. An answer of UNKNOWN is safe to act on
  because the engine fences that id (a late copy of the hand-over is refused), so it becomes
  "failed before output".

Documents: to an engine whose ``hello`` names ``document_frames`` (asked once per connection;
an older engine answers ``unknown_op``), a submit streams its document in frames of at most
1 MiB read from the device's spool file, so neither the document nor its base64 is ever whole
in memory; to an older engine it goes whole in one frame, as before.

Socket and protocol errors become :class:`EngineError` subclasses here; nothing above this module
sees an ``OSError``.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from device_app.ports import EnginePages
from protocol.engine import (
    DOCUMENT_FRAMES,
    Document,
    EngineDone,
    EngineJob,
    EngineOutcome,
    EngineState,
    FrameDecoder,
    document_frames,
    encode_frame,
    job_to_wire,
)
from protocol.errors import EngineError, ProtocolError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
#: Frames are gathered up to this many bytes per write (several small requests in one write;
#: a streamed document in pieces).
_WRITE_BYTES = 1024 * 1024


class EngineUnreachable(EngineError):
    """Nothing was sent: the engine's socket could not be reached."""

    code = "engine_unreachable"


class EngineLost(EngineError):
    """The request was sent but no answer came (connection lost or timed out)."""

    code = "engine_lost"


class EngineRefused(EngineError):
    """The engine answered no; ``code`` is the engine's."""


@dataclass(slots=True)
class _Waiter:
    event: threading.Event = field(default_factory=threading.Event)
    answer: dict[str, Any] | None = None
    error: EngineError | None = None


class EngineClient:
    def __init__(self, path: str | os.PathLike[str], *, timeout: float = DEFAULT_TIMEOUT,
                 state_timeout: float = 1.0, retry_interval: float = 0.2) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self.state_timeout = state_timeout
        self._reachable = True
        self.retry_interval = retry_interval
        self._lock = threading.Lock()  # the fields below
        self._write_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._waiting: dict[int, _Waiter] = {}
        self._owed: dict[str, tuple[str, EngineDone]] = {}  # engine id -> (job id, done)
        self._ids = itertools.count(1)
        self._recovering = False
        self._closed = threading.Event()
        #: Does the engine on this connection take streamed submits? None: not asked yet.
        self._streams: bool | None = None
        #: Called on the reader thread with (engine id, impressions done) as the engine prints.
        self.on_pages: EnginePages | None = None

    # ------------------------------------------------------------ the PrintEngine port

    def state(self) -> EngineState:
        """The engine's state; OFFLINE when it cannot be reached (so nothing is released).
        Bounded by ``state_timeout``: the panel's loop asks this often and must not hang on a
        stuck engine."""
        try:
            state = EngineState(self._call({"op": "state"}, self.state_timeout)["state"])
        except (EngineError, ValueError, KeyError) as exc:
            if self._reachable:  # said once per outage, not at every poll
                log.warning("print engine state unavailable: %s", exc)
            self._reachable = False
            return EngineState.OFFLINE
        if not self._reachable:
            log.info("print engine answers again: %s", state.value)
        self._reachable = True
        return state

    def submit(self, job: EngineJob, done: EngineDone) -> None:
        error = self.submit_many([(job, done)])[0]
        if error is not None:
            raise error

    def submit_many(self, jobs: list[tuple[EngineJob, EngineDone]]) -> list[EngineError | None]:
        """Hand several jobs over in one write (the engine takes them in order); per job, None
        or the error :meth:`submit` would have raised. Same contract as :meth:`submit`."""
        with self._lock:
            for job, done in jobs:
                self._owed[job.engine_id] = (job.job_id, done)
        try:
            streamed = self._streamed()
            answers = self._call_many([{"op": "submit",
                                        "job": job_to_wire(job, streamed=streamed)}
                                       for job, _ in jobs],
                                      bodies=[job.body if streamed else None for job, _ in jobs])
        except EngineUnreachable as exc:
            answers = [exc for _ in jobs]
        except ProtocolError as exc:  # a frame we cannot even encode (too large): not sent
            answers = [EngineRefused(exc.message, code=exc.code) for _ in jobs]
        except OSError as exc:  # the spool file could not be read: nothing was sent
            answers = [EngineRefused(f"the document cannot be read: {exc}",
                                     code="bad_document") for _ in jobs]
        errors: list[EngineError | None] = []
        recover = False
        for (job, _), answer in zip(jobs, answers, strict=True):
            if isinstance(answer, EngineLost):
                # Sent, answer lost: the engine may have it. Ask it once we can; ``done``
                # follows.
                log.warning("hand-over of %s unanswered (%s); asking the engine",
                            job.engine_id, answer)
                recover = True
                errors.append(None)
            elif isinstance(answer, EngineError):
                with self._lock:
                    self._owed.pop(job.engine_id, None)
                errors.append(answer)
            else:
                errors.append(None)
        if recover:
            self._recover()
        return errors

    def outcome(self, engine_id: str) -> EngineOutcome:
        """What became of ``engine_id``; EngineError if the engine cannot be asked."""
        answer = self._call({"op": "outcome", "job": engine_id})
        try:
            return EngineOutcome(answer["outcome"])
        except (KeyError, ValueError):
            raise EngineError(f"engine answered outcome {answer.get('outcome')!r}") from None

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            self._shut(sock)

    # ------------------------------------------------------------ plumbing

    def _connect(self) -> socket.socket:
        with self._lock:
            if self._sock is not None:
                return self._sock
            if self._closed.is_set():
                raise EngineUnreachable("the engine client is closed")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.path)
            except OSError as exc:
                sock.close()
                raise EngineUnreachable(f"print engine at {self.path} not reachable: "
                                        f"{exc.strerror or exc}") from None
            self._sock = sock
        threading.Thread(target=self._read, args=(sock,), name="engine-reader",
                         daemon=True).start()
        log.info("connected to the print engine at %s", self.path)
        return sock

    def _call(self, msg: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        answer = self._call_many([msg], timeout)[0]
        if isinstance(answer, EngineError):
            raise answer
        return answer

    def _streamed(self) -> bool:
        """Does the engine take streamed submits (``hello``, asked once per connection)?"""
        if self._streams is None:
            try:
                features = self._call({"op": "hello"}).get("features")
                self._streams = isinstance(features, list) and DOCUMENT_FRAMES in features
            except EngineRefused as exc:
                if exc.code != "unknown_op":
                    raise EngineUnreachable(f"print engine refused hello: {exc.message}") \
                        from None
                self._streams = False  # an engine from before ``hello``
            except EngineLost as exc:  # no submit was sent yet: the engine has nothing
                raise EngineUnreachable(str(exc.message)) from None
        return self._streams

    def _call_many(self, msgs: list[dict[str, Any]], timeout: float | None = None, *,
                   bodies: list[Document | None] | None = None
                   ) -> list[dict[str, Any] | EngineError]:
        """Send every request in one write, then collect the answers: the round trips overlap
        (the engine answers in order). Each answer, or the error for that request. A request
        with a body (a streamed submit) is followed by its document's frames, read from its
        file as they go: written in pieces, never joined whole."""
        ids = [next(self._ids) for _ in msgs]
        bodies = bodies or [None for _ in msgs]
        sock = self._connect()
        waiters = [_Waiter() for _ in msgs]
        with self._lock:
            self._waiting.update(zip(ids, waiters, strict=True))
        try:
            with self._write_lock:
                out = bytearray()
                for msg, i, body in zip(msgs, ids, bodies, strict=True):
                    out += encode_frame({**msg, "id": i})
                    for frame in (document_frames(i, body) if body is not None else ()):
                        out += frame
                        if len(out) >= _WRITE_BYTES:
                            sock.sendall(out)
                            out.clear()
                if out:
                    sock.sendall(out)
        except OSError as exc:
            # Part of it may be out; an engine drops a torn frame, but the safe reading of a
            # hand-over is still "maybe": the caller asks for the outcome.
            with self._lock:
                for i in ids:
                    self._waiting.pop(i, None)
            self._lost(sock)
            lost = EngineLost(f"print engine connection lost while sending: {exc}")
            return [lost for _ in msgs]
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        answers: list[dict[str, Any] | EngineError] = []
        try:
            for msg, waiter in zip(msgs, waiters, strict=True):
                if not waiter.event.wait(max(0.0, deadline - time.monotonic())):
                    answers.append(EngineLost(f"print engine did not answer {msg.get('op')} in "
                                              "time"))
                elif waiter.error is not None:
                    answers.append(waiter.error)
                elif not (waiter.answer or {}).get("ok"):
                    err = (waiter.answer or {}).get("error") or {}
                    answers.append(EngineRefused(str(err.get("message", "the engine refused")),
                                                 code=str(err.get("code", "engine_error"))))
                else:
                    answers.append(waiter.answer or {})
        finally:
            with self._lock:
                for i in ids:
                    self._waiting.pop(i, None)
        return answers

    def _read(self, sock: socket.socket) -> None:
        decoder = FrameDecoder()
        try:
            while True:
                data = sock.recv(256 * 1024)
                if not data:
                    break
                for msg in decoder.feed(data):
                    self._dispatch(msg)
        except (OSError, ProtocolError) as exc:
            if not self._closed.is_set():
                log.warning("print engine connection failed: %s", exc)
        self._lost(sock)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        if msg.get("event") == "pages":
            self._pages(msg)
            return
        if msg.get("event") == "done":
            key = str(msg.get("job", ""))
            with self._lock:
                owed = self._owed.pop(key, None)
            if owed is not None:
                self._call_done(key, owed, msg.get("outcome") == EngineOutcome.PRINTED.value,
                                str(msg.get("detail", "")))
            return
        frame_id = msg.get("id")
        with self._lock:
            waiter = self._waiting.get(frame_id) if isinstance(frame_id, int) else None
        if waiter is not None:
            waiter.answer = msg
            waiter.event.set()
        elif not msg.get("ok", True):
            log.warning("print engine says: %s", msg.get("error"))

    def _pages(self, msg: dict[str, Any]) -> None:
        key, done, on_pages = msg.get("job"), msg.get("done"), self.on_pages
        if (on_pages is None or not isinstance(key, str) or not isinstance(done, int)
                or isinstance(done, bool) or done < 0):
            return  # a count is a nicety: a malformed one is dropped, never an error
        with self._lock:
            owed = key in self._owed  # after its "done" (or another app's job): not ours
        if owed:
            try:
                on_pages(key, done)
            except Exception:
                log.exception("page callback for %s failed", key)

    def _call_done(self, key: str, owed: tuple[str, EngineDone], ok: bool, detail: str) -> None:
        job_id, done = owed
        try:
            done(job_id, ok, detail)
        except Exception:
            log.exception("outcome callback for %s failed", key)

    def _shut(self, sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def _lost(self, sock: socket.socket) -> None:
        with self._lock:
            if self._sock is sock:
                self._sock = None
                self._streams = None  # the next engine may be another one
            waiters = list(self._waiting.values())
            self._waiting.clear()
            owed = bool(self._owed)
        for w in waiters:
            w.error = EngineLost("print engine connection lost")
            w.event.set()
        try:
            sock.close()
        except OSError:
            pass
        if owed and not self._closed.is_set():
            self._recover()

    def _recover(self) -> None:
        """Ask the engine about every job still owed a ``done`` until each has one: a
        connection lost while jobs were on the engine must not strand them."""
        with self._lock:
            if self._recovering:
                return
            self._recovering = True
        threading.Thread(target=self._recovery, name="engine-recovery", daemon=True).start()

    def _recovery(self) -> None:
        delay = self.retry_interval
        try:
            while not self._closed.is_set():
                with self._lock:
                    keys = list(self._owed)
                if not keys:
                    return
                try:
                    for key in keys:
                        answer = self._call({"op": "outcome", "job": key})
                        outcome = answer.get("outcome")
                        if outcome == EngineOutcome.PRINTING.value:
                            continue  # still on the engine; its "done" event will come
                        with self._lock:
                            owed = self._owed.pop(key, None)
                        if owed is not None:
                            detail = ("the engine never received the job; not printed"
                                      if outcome == EngineOutcome.UNKNOWN.value
                                      else str(answer.get("detail") or ""))
                            self._call_done(key, owed, outcome == EngineOutcome.PRINTED.value,
                                            detail)
                    # Connected and asked after connecting: events cover the rest.
                    return
                except EngineError as exc:
                    log.info("print engine not back yet (%s); retrying in %.1f s", exc, delay)
                    self._closed.wait(delay)
                    delay = min(delay * 2, 2.0)
        finally:
            with self._lock:
                self._recovering = False
            # A loss between the last question and clearing the flag starts a new round.
            with self._lock:
                again = bool(self._owed) and self._sock is None
            if again and not self._closed.is_set():
                self._recover()

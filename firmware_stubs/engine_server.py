"""The emulated MFD controller as its own process, behind a Unix socket.

    python -m firmware_stubs.engine_server --socket PATH --state-dir DIR [--page-time S]

A real copier's print engine does not die with the panel app, and it remembers what it printed.
This process gives the device app that partner: the engine (firmware_stubs.mfd_controller.
EngineCore, page by page at ``--page-time``) keeps its record in ``DIR``, and the app reaches
it over the engine socket protocol v1 (documented in protocol/engine.py: length-prefixed JSON
frames; submit, state, outcome; "done" events pushed to every connected app).

How far a job is goes out as an event too, to every connected app, after each page and before
the job's "done": ``{"v": 1, "event": "pages", "job": <engine id>, "done": n}``, ``n`` the
impressions done so far, copies counted. An app that does not know it ignores it (an event is
not an answer, and unknown fields and events are ignored), so v1 clients are unaffected.

Three more ops are the emulator's own, for tests and benches, and no part of that protocol (a real
engine has none of them, so the device's client, device_app/engines/socket.py, does not send
them); :class:`EngineControl` sends them:

* ``fault`` with ``"state"`` (``jam``, ``no_paper``, ``door_open``, ``offline``, or ``ready`` to
  clear) and optionally ``"after_pages": n`` (arm it to strike after n pages of the first job
  that gets that far, its document's pages times its copies, failing that job before output)
  -> ``{"state": ...}``.
* ``hold`` with ``"on": true|false``: keep accepted jobs queued (still ``printing``) until
  released: a deterministic "the engine has it but has not printed it yet" for tests.
* ``printed`` -> ``{"jobs": [{"id", "job_id", "name", "sha256", "size", "copies"}, ...]}``: every
  job this engine ever printed, from its state directory.

A streamed submit (feature ``document_frames``, protocol/engine.py) is received into a file of
its own in ``DIR/uploads`` (never all in memory) and handed to the engine, which reads it when
the job's turn comes; the file goes when the job is done (or refused). A connection that ends
mid-document leaves no job and no file; a restart empties ``DIR/uploads`` (the jobs of the run
before fail "engine restarted before output").

The socket appears only when the engine is listening (it is bound under a temporary name and
renamed into place), so "the socket file exists" is the readiness signal. SIGTERM or SIGINT
stops it cleanly; SIGKILL loses nothing the engine had acknowledged.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from firmware_stubs.mfd_controller import EngineCore
from protocol.engine import (
    DOCUMENT_FRAMES,
    Document,
    EngineOutcome,
    EngineState,
    FrameDecoder,
    document_data,
    encode_frame,
    job_from_wire,
    streamed_size,
)
from protocol.errors import EngineError, ProtocolError

log = logging.getLogger(__name__)

#: sockaddr_un's path field is 108 bytes with the terminating NUL.
MAX_SOCKET_PATH = 107
_FAULTS = {s.value: s for s in EngineState if s is not EngineState.PRINTING}


class _Conn:
    """One connected app. Replies come from its reader thread, "done" events from the engine's
    thread: the write lock keeps their frames from interleaving."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.write_lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> bool:
        data = encode_frame(message)
        with self.write_lock:
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                return False


class _Upload:
    """A streamed submit on its way in: its document goes to a private file as it comes."""

    def __init__(self, msg: dict[str, Any], size: int, folder: Path) -> None:
        self.msg = msg
        self.left = size
        fd, self.path = tempfile.mkstemp(prefix="upload-", dir=folder)
        self.file = os.fdopen(fd, "wb")

    def add(self, msg: dict[str, Any]) -> bool:
        """One more ``document`` frame; True once the whole document is in."""
        if msg.get("id") != self.msg.get("id"):
            raise ProtocolError("a frame other than the streamed submit's document came "
                                "before its last byte", field="id")
        piece = document_data(msg)
        if len(piece) > self.left:
            raise ProtocolError("more document bytes than the submit announced",
                                field="data")
        self.file.write(piece)
        self.left -= len(piece)
        return self.left == 0

    def document(self) -> Document:
        self.file.close()
        return Document.file(self.path)

    def discard(self) -> None:
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class EngineServer:
    def __init__(self, socket_path: str | os.PathLike[str], state_dir: str | os.PathLike[str],
                 *, page_time: float = 0.0) -> None:
        self.socket_path = os.fspath(socket_path)
        if len(os.fsencode(self.socket_path)) > MAX_SOCKET_PATH:
            raise EngineError(f"socket path {self.socket_path} is longer than "
                              f"{MAX_SOCKET_PATH} bytes; choose a shorter one",
                              code="config_invalid")
        self.core = EngineCore(page_time=page_time, state_dir=state_dir, on_done=self._done,
                               on_page=self._page)
        self.uploads = Path(state_dir) / "uploads"
        # A killed engine's half-received documents: never jobs.
        shutil.rmtree(self.uploads, ignore_errors=True)
        self.uploads.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._conns: set[_Conn] = set()
        self._lock = threading.Lock()
        self._uploaded: dict[str, _Upload] = {}  # engine id -> its document, until done
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()

    def start(self) -> EngineServer:
        temp = f"{self.socket_path}.{os.getpid()}.tmp"
        for stale in (temp, self.socket_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(temp)
        listener.listen(16)
        os.rename(temp, self.socket_path)
        self._listener = listener
        threading.Thread(target=self._accept, name="engine-accept", daemon=True).start()
        log.info("engine listening on %s", self.socket_path)
        return self

    def wait(self) -> None:
        self._stopped.wait()

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._listener is not None:
            self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.sock.shutdown(socket.SHUT_RDWR)
        self.core.close()

    # ------------------------------------------------------------ connections

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopped.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            conn = _Conn(sock)
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), name="engine-conn",
                             daemon=True).start()

    def _serve(self, conn: _Conn) -> None:
        decoder = FrameDecoder()
        upload: _Upload | None = None
        try:
            while True:
                try:
                    data = conn.sock.recv(256 * 1024)
                except OSError:
                    return
                if not data:
                    if decoder.pending or upload is not None:
                        # A dead app's half-sent frame: never a hand-over.
                        log.info("connection closed mid-frame (%d bytes); dropped",
                                 decoder.pending)
                    return
                try:
                    messages = decoder.feed(data)
                except ProtocolError as exc:
                    conn.send({"id": None, "ok": False,
                               "error": {"code": exc.code, "message": exc.message}})
                    return
                for msg in messages:
                    try:
                        if upload is None:
                            upload = self._begin(msg)
                            if upload is None:
                                conn.send(self._answer(msg))
                                continue
                            done = upload.left == 0
                        else:
                            done = upload.add(msg)
                    except ProtocolError as exc:
                        # A streamed submit gone wrong: the rest of the stream cannot be read.
                        conn.send({"id": msg.get("id"), "ok": False,
                                   "error": {"code": exc.code, "message": exc.message}})
                        return
                    if done:
                        finished, upload = upload, None
                        conn.send(self._received(finished))
        finally:
            if upload is not None:
                upload.discard()
            with self._lock:
                self._conns.discard(conn)
            conn.sock.close()

    def _done(self, engine_id: str, job_id: str, outcome: EngineOutcome, detail: str) -> None:
        self._forget_upload(engine_id)  # the engine has read what it needed of it
        self._push({"event": "done", "job": engine_id, "outcome": outcome.value,
                    "detail": detail})

    def _page(self, engine_id: str, done: int) -> None:
        # The engine's thread, as for "done": the pages of a job are sent before its outcome.
        self._push({"event": "pages", "job": engine_id, "done": done})

    def _push(self, event: dict[str, Any]) -> None:
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.send(event)

    # ------------------------------------------------------------ requests

    def _begin(self, msg: dict[str, Any]) -> _Upload | None:
        """A streamed submit's upload, or None for any other frame."""
        if msg.get("op") != "submit":
            return None
        size = streamed_size(msg.get("job"))
        return None if size is None else _Upload(msg, size, self.uploads)

    def _received(self, upload: _Upload) -> dict[str, Any]:
        """The answer to a streamed submit whose document is all in (its file stays until the
        job is done: the engine reads it when the job's turn comes)."""
        rid = upload.msg.get("id")
        try:
            job = job_from_wire(upload.msg.get("job"), upload.document())
        except ProtocolError as exc:
            upload.discard()
            return {"id": rid, "ok": False, "error": {"code": exc.code, "message": exc.message}}
        with self._lock:
            # Kept before the engine has it (it may be done at once); a second copy of a job
            # still printing is not kept: the engine refuses it below.
            mine = self._uploaded.setdefault(job.engine_id, upload) is upload
        try:
            self.core.submit(job)
        except EngineError as exc:
            if mine:
                self._forget_upload(job.engine_id)
            else:
                upload.discard()
            return {"id": rid, "ok": False, "error": {"code": exc.code, "message": exc.message}}
        log.debug("accepted %s (%d bytes, streamed)", job.engine_id, job.body.size)
        return {"id": rid, "ok": True, "outcome": EngineOutcome.PRINTING.value}

    def _forget_upload(self, engine_id: str) -> None:
        with self._lock:
            upload = self._uploaded.pop(engine_id, None)
        if upload is not None:
            upload.discard()

    def _answer(self, msg: dict[str, Any]) -> dict[str, Any]:
        rid = msg.get("id")
        try:
            result = self._dispatch(msg)
        except (EngineError, ProtocolError) as exc:
            return {"id": rid, "ok": False, "error": {"code": exc.code, "message": exc.message}}
        return {"id": rid, "ok": True, **result}

    def _dispatch(self, msg: dict[str, Any]) -> dict[str, Any]:
        op = msg.get("op")
        core = self.core
        if op == "state":
            return {"state": core.state().value}
        if op == "hello":
            return {"features": [DOCUMENT_FRAMES]}
        if op == "submit":
            job = job_from_wire(msg.get("job"))
            core.submit(job)
            log.debug("accepted %s (%d bytes)", job.engine_id, job.body.size)
            return {"outcome": EngineOutcome.PRINTING.value}
        if op == "outcome":
            engine_id = msg.get("job")
            if not isinstance(engine_id, str) or not engine_id:
                raise ProtocolError("job must name an engine id", field="job")
            outcome, detail = core.outcome(engine_id)
            return {"outcome": outcome.value, "detail": detail}
        if op == "fault":
            state = _FAULTS.get(str(msg.get("state")))
            after = msg.get("after_pages")
            if state is None or (after is not None and (not isinstance(after, int)
                                                        or isinstance(after, bool)
                                                        or after < 0)):
                raise ProtocolError(f"fault must be one of {sorted(_FAULTS)}, after_pages a "
                                    "count of pages", field="state")
            core.inject(state, after_pages=after)
            return {"state": core.state().value}
        if op == "hold":
            core.hold(bool(msg.get("on")))
            return {"held": bool(msg.get("on"))}
        if op == "printed":
            return {"jobs": [{"id": p.engine_id, "job_id": p.job_id, "name": p.name,
                              "sha256": p.sha256, "size": p.size, "copies": p.copies}
                             for p in list(core.printed)]}
        raise EngineError(f"unknown op {op!r}", code="unknown_op")


class EngineControl:
    """The emulator's own ops (``fault``, ``hold``, ``printed``: see the module docstring), for a
    test or a bench driving an engine server. Each call is one short connection of its own, so
    it works across engine restarts and never sees the device's traffic; "done" events pushed
    to it meanwhile are skipped. Raises EngineError when the engine cannot be reached or says
    no."""

    def __init__(self, socket_path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        self.path = os.fspath(socket_path)
        self.timeout = timeout

    def inject(self, state: EngineState, *, after_pages: int | None = None) -> EngineState:
        """Put the engine in ``state`` (READY clears a fault), now or after ``after_pages``."""
        msg: dict[str, Any] = {"op": "fault", "state": state.value}
        if after_pages is not None:
            msg["after_pages"] = after_pages
        return EngineState(self._call(msg)["state"])

    def hold(self, on: bool) -> None:
        self._call({"op": "hold", "on": on})

    def printed(self) -> list[dict[str, Any]]:
        jobs = self._call({"op": "printed"}).get("jobs", [])
        return list(jobs) if isinstance(jobs, list) else []

    def _call(self, msg: dict[str, Any]) -> dict[str, Any]:
        decoder = FrameDecoder()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.path)
                sock.sendall(encode_frame({**msg, "id": 1}))
                while True:
                    data = sock.recv(256 * 1024)
                    if not data:
                        raise EngineError("the engine closed the connection before answering")
                    for answer in decoder.feed(data):
                        if answer.get("id") != 1:
                            continue  # a "done" event meant for the apps
                        if not answer.get("ok"):
                            error = answer.get("error") or {}
                            raise EngineError(str(error.get("message", "refused")),
                                              code=str(error.get("code", "engine_error")))
                        return answer
        except OSError as exc:
            raise EngineError(f"engine at {self.path} not reachable: {exc}") from None


class EngineProcess:
    """The engine server as a child process, for tests, benchmarks and the simulator: started,
    waited for (its socket appears), stopped or killed like a controller losing power."""

    def __init__(self, state_dir: str | os.PathLike[str], *,
                 socket_path: str | os.PathLike[str] | None = None, page_time: float = 0.0,
                 verbose: bool = False) -> None:
        self.state_dir = Path(state_dir)
        self._own_dir: str | None = None
        if socket_path is None:
            # Short on purpose: a test's tmp_path easily exceeds sockaddr_un's 107 bytes.
            self._own_dir = tempfile.mkdtemp(prefix="mfdeng-")
            socket_path = os.path.join(self._own_dir, "engine.sock")
        self.socket_path = os.fspath(socket_path)
        self.page_time = page_time
        self.verbose = verbose
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> EngineProcess:
        cmd = [sys.executable, "-m", "firmware_stubs.engine_server", "--socket",
               self.socket_path, "--state-dir", str(self.state_dir), "--page-time",
               str(self.page_time)] + (["-v"] if self.verbose else [])
        Path(self.socket_path).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.socket_path):
            if self.proc.poll() is not None:
                raise EngineError(f"engine server exited with {self.proc.returncode}",
                                  code="engine_unreachable")
            if time.monotonic() > deadline:
                self.kill()
                raise EngineError("engine server did not start in time",
                                  code="engine_unreachable")
            time.sleep(0.01)
        return self

    def kill(self) -> None:
        """SIGKILL: the power cut."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def __enter__(self) -> EngineProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m firmware_stubs.engine_server",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--socket", required=True, help="Unix socket path to listen on")
    ap.add_argument("--state-dir", required=True,
                    help="directory where the engine keeps what it printed")
    ap.add_argument("--page-time", type=float, default=0.0,
                    help="seconds per page (the document's pages, times its copies); "
                         "default 0")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s engine %(levelname)s %(message)s")
    try:
        server = EngineServer(args.socket, Path(args.state_dir), page_time=args.page_time)
    except EngineError as exc:
        ap.error(exc.message)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: server.stop())
    server.start()
    server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

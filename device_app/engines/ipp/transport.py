"""IPP over HTTP: one request per POST, each on a fresh connection (RFC 8010 section 4).

Only this module touches sockets for IPP; what it raises is ours: :class:`PrinterUnreachable`
when there is no IPP answer, :class:`~protocol.errors.EngineError` for an answer that is not
one, never an OSError or an http.client exception. A printer URI is checked once, at start-up
(:func:`parse_printer_uri`), and what is wrong with it is said as a ConfigError.
"""

from __future__ import annotations

import http.client
import itertools
import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from device_app.engines.ipp import codec as ipp
from device_app.engines.ipp.model import AttributeGroup, Message, Operation, Status
from protocol.engine import Document
from protocol.errors import ConfigError, EngineError

__all__ = ["MAX_RESPONSE_BYTES", "TRACE", "PrinterTarget", "PrinterUnreachable", "Transport",
           "parse_printer_uri"]

log = logging.getLogger(__name__)

#: Below DEBUG: one line per IPP request and response (STYLE: wire traces below DEBUG).
TRACE: Final = 5

#: Answers are a few kB (we name the attributes we want); a printer that ignores the list and
#: sends all of them stays far below this.
MAX_RESPONSE_BYTES: Final = 4 * 1024 * 1024
#: RFC 8011: name(MAX) is 255 octets. Job names stay well below it: the engine-id tag at the
#: end must survive printers that keep shorter names, and ippeveprinter -k builds its spool file
#: name (255 bytes at most on the file system) from the job name.
MAX_JOB_NAME_BYTES: Final = 200


class PrinterUnreachable(EngineError):
    """No IPP answer: connection refused or reset, timeout, name not resolved, not IPP/HTTP."""

    code = "printer_unreachable"


@dataclass(frozen=True, slots=True)
class PrinterTarget:
    scheme: str  # http or https, what goes on the wire
    host: str
    port: int
    path: str
    printer_uri: str  # ipp:// or ipps://, what goes in printer-uri


def parse_printer_uri(uri: str) -> PrinterTarget:
    """Check a printer URI once, at start-up, and say what is wrong with it."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"printer uri {uri!r}: {exc}") from exc
    schemes = {"ipp": ("http", 631, "ipp"), "ipps": ("https", 631, "ipps"),
               "http": ("http", 80, "ipp"), "https": ("https", 443, "ipps")}
    if parts.scheme not in schemes:
        raise ConfigError(f"printer uri {uri!r}: scheme must be ipp, ipps, http or https")
    if not parts.hostname:
        raise ConfigError(f"printer uri {uri!r}: no host")
    wire, default_port, ipp_scheme = schemes[parts.scheme]
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    printer_uri = urlunsplit((ipp_scheme, parts.netloc, parts.path or "/", parts.query, ""))
    return PrinterTarget(wire, parts.hostname, port or default_port, path, printer_uri)


class Transport:
    """One IPP request per HTTP/1.1 POST, each on a fresh connection: a printer that reboots
    or drops idle connections then costs nothing, and a poll every half second does not need
    keep-alive."""

    def __init__(self, target: PrinterTarget, timeout: float,
                 ssl_context: ssl.SSLContext | None) -> None:
        self.target = target
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._ids = itertools.count(1)
        self._ids_lock = threading.Lock()
        #: IPP Everywhere printers speak 2.0; an older copier may only speak 1.1 and say so
        #: with server-error-version-not-supported, after which we speak 1.1 to it.
        self.version = (2, 0)

    def call(self, operation: Operation, groups: tuple[AttributeGroup, ...],
             document: bytes | Document = b"") -> Message:
        """Send one request; the decoded response. Raises PrinterUnreachable or EngineError
        (RemoteIppError included): never an OSError or http.client exception."""
        version = self.version
        response = self._call(version, operation, groups, document)
        if response.code == Status.SERVER_ERROR_VERSION_NOT_SUPPORTED and version != (1, 1):
            log.info("printer %s does not speak IPP %d.%d; using 1.1", self.target.host,
                     *version)
            self.version = (1, 1)
            response = self._call(self.version, operation, groups, document)
        return response

    def _call(self, version: tuple[int, int], operation: Operation,
              groups: tuple[AttributeGroup, ...], document: bytes | Document) -> Message:
        with self._ids_lock:
            request_id = next(self._ids)
        head = ipp.encode(Message(operation, request_id, groups, version=version))
        log.log(TRACE, "ipp -> %s #%d %s (%d + %d bytes)", self.target.host, request_id,
                operation.name, len(head), len(document))
        t = self.target
        conn: http.client.HTTPConnection
        if t.scheme == "https":
            conn = http.client.HTTPSConnection(t.host, t.port, timeout=self.timeout,
                                               context=self.ssl_context)
        else:
            conn = http.client.HTTPConnection(t.host, t.port, timeout=self.timeout)
        try:
            conn.connect()
            # Header and document go in two writes and then we wait for the answer: without
            # no-delay, Nagle plus the printer's delayed ACK can stall each job ~40 ms.
            if conn.sock is not None:
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.putrequest("POST", t.path)
            conn.putheader("Content-Type", "application/ipp")
            conn.putheader("Content-Length", str(len(head) + len(document)))
            conn.endheaders(head)
            # Sent as it is, not joined to the header, a file in pieces: a document can be
            # hundreds of MB and is never whole in memory.
            for piece in (document.chunks() if isinstance(document, Document) else (document,)):
                if piece:
                    conn.send(piece)
            response = conn.getresponse()
            body = response.read(MAX_RESPONSE_BYTES + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise PrinterUnreachable(f"printer unreachable: {_describe(exc)}") from exc
        finally:
            conn.close()
        if response.status != 200:
            raise EngineError(f"the printer answered HTTP {response.status} "
                              f"{response.reason}".strip())
        if len(body) > MAX_RESPONSE_BYTES:
            raise EngineError(f"the printer's answer is larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            message = ipp.decode(body)
        except ipp.RemoteIppError as exc:
            raise ipp.RemoteIppError(f"the printer's answer is not valid IPP: {exc.message}") \
                from exc
        log.log(TRACE, "ipp <- %s #%d %s (%d bytes)", t.host, message.request_id,
                ipp.status_name(message.code), len(body))
        if message.request_id != request_id:
            # Fresh connection per request, so this is the printer's bug, not a mix-up.
            log.debug("printer answered request %d with request-id %d", request_id,
                      message.request_id)
        return message


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    text = str(exc) or type(exc).__name__
    return text

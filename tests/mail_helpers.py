"""A real SMTP server for the tests (aiosmtpd on loopback): what the cloud sends arrives here
over SMTP, is parsed as a mail client would, and a test waits for the Nth message and takes the
links out of it."""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest

from cloud.web.settings import SmtpSettings

SENDER = "mfdkit <print@acme.example>"
_LINK_RE = re.compile(r"https?://[^\s<>\"]+")


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    #: Whether the client had logged in (AUTH) when it sent this.
    authenticated: bool
    #: Whether the conversation was encrypted (STARTTLS) by then.
    tls: bool = False

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None, "the mail has no text/plain part"
        content: str = part.get_content()  # type: ignore[attr-defined]
        return content

    @property
    def html(self) -> str | None:
        part = self.message.get_body(preferencelist=("html",))
        return None if part is None else str(part.get_content())  # type: ignore[attr-defined]

    def links(self) -> list[str]:
        return _LINK_RE.findall(self.text)


@dataclass
class MailSink:
    """The aiosmtpd handler: keeps every message it is given."""

    messages: list[Received] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._cond:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message,
                                          bool(getattr(session, "authenticated", False)),
                                          bool(getattr(session, "ssl", None))))
            self._cond.notify_all()
        return "250 OK"

    def wait_for(self, n: int, timeout: float = 10.0) -> Received:
        """The ``n``th message received (1-based), waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"mail #{n} did not arrive within {timeout:g} s "
                                         f"({len(self.messages)} arrived)")
                self._cond.wait(left)
            return self.messages[n - 1]

    def count(self) -> int:
        with self._cond:
            return len(self.messages)


@dataclass
class SmtpServer:
    host: str
    port: int
    sink: MailSink

    def settings(self, **extra: Any) -> SmtpSettings:
        return SmtpSettings(host=self.host, port=self.port, sender=SENDER, **extra)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_smtp(authenticator: Callable[..., Any] | None = None,
               **options: Any) -> tuple[Any, SmtpServer]:
    """An aiosmtpd server on a free loopback port; with ``authenticator`` (which answers
    ``AuthResult(success=..., handled=False)``: aiosmtpd then sends the 535 itself) it offers
    AUTH (without TLS unless ``options`` give aiosmtpd a ``tls_context``)."""
    from aiosmtpd.controller import Controller

    sink = MailSink()
    kwargs: dict[str, Any] = {}
    if authenticator is not None:
        kwargs = {"authenticator": authenticator,
                  "auth_require_tls": "tls_context" in options}
    kwargs.update(options)
    controller = Controller(sink, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller, SmtpServer("127.0.0.1", controller.port, sink)


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    controller, server = start_smtp()
    try:
        yield server
    finally:
        controller.stop()

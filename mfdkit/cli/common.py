"""What every role of ``mfd`` shares: stop signals, secrets from the environment, the parser
class whose errors are redacted."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any, NoReturn

from protocol.errors import MfdError
from protocol.redact import redact

EXIT_USAGE = 2
EXIT_FAILED = 1


def _secret(value: str | None, env: str, what: str) -> str:
    secret = value or os.environ.get(env, "")
    if not secret:
        raise MfdError(f"no {what}: pass --password or set {env}", code="config_invalid")
    return secret



class StopSignals:
    """SIGINT and SIGTERM both mean "stop cleanly".

    The handler raises KeyboardInterrupt, so whatever the main thread is blocked in unwinds
    through the context managers that own processes and files, and it also sets a flag that
    loops poll: pygame's event pump can run Python signal handlers inside C code and drop the
    exception they raise (seen with the dummy video driver), so the flag is the guarantee.
    """

    def __init__(self, *, interrupt: bool = True) -> None:
        # Services (cloud, headless device) only poll the flag, so a stop is a normal exit (0)
        # that a service manager does not count as a failure.
        self.interrupt = interrupt
        self.requested = False
        signal.signal(signal.SIGINT, self._handler)
        signal.signal(signal.SIGTERM, self._handler)

    def _handler(self, _signum: int, _frame: Any) -> None:
        self.requested = True
        if self.interrupt:
            raise KeyboardInterrupt

    def __call__(self) -> bool:
        return self.requested


def _user_password(given: str | None, what: str = "password") -> str:
    """--password, else MFD_USER_PASSWORD, else a prompt on a terminal."""
    if given:
        return given
    env = os.environ.get("MFD_USER_PASSWORD", "")
    if env:
        return env
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(f"{what}: ")
    raise MfdError(f"no {what}: pass --password, set MFD_USER_PASSWORD, or run on a terminal",
                   code="config_invalid")


class _Parser(argparse.ArgumentParser):
    """argparse quotes a stray or bad argument back, and an argument can be a reader spec with
    its key in it: its errors are redacted like every other (subparsers share this class)."""

    def error(self, message: str) -> NoReturn:
        super().error(redact(message))


def host_port(value: str, option: str = "--http") -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT, or :PORT (loopback)."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        example = "127.0.0.1:8631" if option == "--http" else "mail.example.org:587"
        raise MfdError(f"{option} wants HOST:PORT (e.g. {example}), not {value!r}",
                       code="config_invalid")
    return host, int(port)

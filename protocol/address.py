"""Where a broker is and who connects to it: parsed once from a URL, validated, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from protocol.errors import ConfigError
from protocol.redact import redact


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str = ""
    password: str = field(default="", repr=False)

    @classmethod
    def parse(cls, url: str, username: str = "", password: str = "") -> BrokerAddress:
        """``mqtt://[user:pass@]host[:port]``; explicit username/password override the URL's."""
        parts = urlsplit(url)
        try:
            port = parts.port or 1883
        except ValueError:
            raise ConfigError(f"broker URL {redact(url)!r} has a bad port") from None
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ConfigError(f"broker URL {redact(url)!r} must look like mqtt://host:1883")
        return cls(parts.hostname, port, username or unquote(parts.username or ""),
                   password or unquote(parts.password or ""))

    def with_user(self, username: str, password: str) -> BrokerAddress:
        return BrokerAddress(self.host, self.port, username, password)

"""A broker as a client reaches it: its address and whether (and against which CA) TLS is used.

One reading of a broker URL for every caller (the device's link, ``mfd doctor``, the cloud
workers): ``mqtt://host[:port]`` is plain TCP (port 1883 by default), ``mqtts://host[:port]``
is TLS (8883 by default), verified against ``ca_file`` (``""``: the system's CAs). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from protocol.errors import ConfigError
from protocol.redact import redact

__all__ = ["SCHEMES", "BrokerEndpoint", "check_broker_url", "endpoint"]

#: The URL schemes of a broker: plain TCP and TLS.
SCHEMES = ("mqtt://", "mqtts://")


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    host: str
    port: int
    username: str = ""
    password: str = field(default="", repr=False)
    #: None: plain TCP; otherwise TLS verified against this CA file ("": the system's CAs).
    tls_ca_file: str | None = None

    @property
    def label(self) -> str:
        """``host:port`` with the scheme, for logs and the panel's diagnostics (no user)."""
        scheme = "mqtts" if self.tls_ca_file is not None else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"


def check_broker_url(url: str, key: str = "broker.url") -> str:
    """``url`` if it is a broker URL a device can use; ConfigError naming ``key`` (and the URL,
    its password redacted) otherwise. ``key`` is a config key, or a command-line option
    (``--broker``)."""
    if key.startswith("--"):
        # An option's errors read as mfd cloud's always did: "broker URL 'x' ...".
        what = f"broker URL {redact(url)!r}"
        scheme = "must look like mqtt://host:1883"
    else:
        what = f"config key {key!r} = {redact(url)!r}"
        scheme = "must start with mqtt:// or mqtts://"
    if not url.startswith(SCHEMES):
        raise ConfigError(f"{what} {scheme}")
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced "[" (IPv6)
        raise ConfigError(f"{what} is not a URL") from None
    try:
        parts.port  # noqa: B018  # raises on a port that is not a number or out of range
    except ValueError:
        raise ConfigError(f"{what} has a bad port") from None
    if not parts.hostname:
        raise ConfigError(f"{what} names no host, e.g. mqtts://broker.example.org:8883")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{what}: a broker URL is scheme://host:port, with nothing after "
                          "the port")
    return url


def endpoint(url: str, username: str = "", password: str = "", *,
             ca_file: str = "", key: str = "broker.url") -> BrokerEndpoint:
    """The endpoint of ``url`` (checked by :func:`check_broker_url`, errors naming ``key``);
    ``username`` and ``password`` override the URL's own. ``ca_file`` applies to an mqtts://
    URL only."""
    check_broker_url(url, key)
    tls = url.startswith("mqtts://")
    parts = urlsplit(url)
    return BrokerEndpoint(parts.hostname or "", parts.port or (8883 if tls else 1883),
                          username or unquote(parts.username or ""),
                          password or unquote(parts.password or ""),
                          ca_file if tls else None)

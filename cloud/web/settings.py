"""What the web front end is configured with, checked once when the app is made."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cloud.linking import MAX_DOCUMENT
from protocol.errors import MfdError

if TYPE_CHECKING:
    from cloud.devices import BrokerAccounts

#: Largest document a person may upload from the browser (Print from the browser).
MAX_UPLOAD_DEFAULT = 50 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where mail goes out (invitations, share links, linking codes)."""

    host: str
    port: int
    sender: str
    starttls: bool = False
    username: str = ""
    password: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class OidcSettings:
    """Single sign-on with an OpenID Connect provider (cloud/web/sso.py)."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    #: What the button says ("Sign in with Contoso").
    label: str = "single sign-on"
    #: The org whose people the provider speaks for: users of other orgs are refused. ""
    #: only when the store holds a single org (the app refuses to start otherwise).
    org: str = ""
    #: Email domains the provider may vouch for (example.org); () any.
    domains: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WebSettings:
    store_url: str
    #: The address people reach the portal at (behind a TLS proxy in production); links in
    #: mail and QR codes use it.
    public_url: str = ""
    #: Signs the session cookie. Random per process by default: sessions then end with a
    #: restart, which is safe; several processes behind one name need the same key.
    secret_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    #: Cookies only over HTTPS, and HSTS (on in production; tests serve plain HTTP on loopback).
    #: None: on exactly when ``public_url`` is https:// (people reach the portal over TLS).
    https_only: bool | None = None
    smtp: SmtpSettings | None = None
    oidc: OidcSettings | None = None
    max_upload: int = MAX_UPLOAD_DEFAULT
    #: Largest document a print client or the mobile app may send (POST /api/v1/jobs).
    max_document: int = MAX_DOCUMENT
    #: Where new devices' broker accounts go (POST /api/v1/devices/register); None: device
    #: registration is off (answered ``not_enabled``).
    accounts: BrokerAccounts | None = field(default=None, repr=False)
    #: The broker addresses registered devices are told to use: each device gets them in its
    #: own order (protocol.assignment: its home broker first, then where to fail over).
    device_broker_urls: tuple[str, ...] = ()
    #: Requests served at once by worker threads (each keeps one store connection); None:
    #: the server's default (40).
    threads: int | None = None
    #: Seconds between purges of expired tokens, sessions and requests (Linking.purge); 0: none.
    purge_interval: float = 600.0

    def __post_init__(self) -> None:
        if self.https_only is None:
            object.__setattr__(self, "https_only", self.public_url.lower().startswith("https://"))
        if len(self.secret_key) < 16:
            raise MfdError("the web session key must be at least 16 bytes",
                           code="config_invalid")

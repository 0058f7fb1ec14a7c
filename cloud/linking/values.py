"""What client linking hands back: secrets issued once, registered installs, submitted jobs,
portal sessions, invitations, Authenticate-on-Print requests and outcomes, import reports."""

from __future__ import annotations

from dataclasses import dataclass

from cloud.storage.port import ClientInstall, Job, User


@dataclass(frozen=True, slots=True)
class Issued:
    """A secret issued once: the token (or code), the link that carries it, its expiry."""

    id: str
    token: str
    url: str
    expires_at: float
    user: User | None = None


@dataclass(frozen=True, slots=True)
class Registered:
    """A client install that has just registered; ``token`` goes into its user's profile."""

    install: ClientInstall
    token: str
    user: User | None
    queues: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClientState:
    install: ClientInstall
    user: User | None
    queues: tuple[str, ...]
    held_jobs: tuple[Job, ...]
    held_total: int


@dataclass(frozen=True, slots=True)
class Submitted:
    job_id: str
    state: str  # HELD or PENDING_AUTH
    size: int
    sha256: str
    owner: User | None
    sign_in_url: str | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class PortalSession:
    token: str
    user: User
    expires_at: float


@dataclass(frozen=True, slots=True)
class Invitation:
    kind: str  # classic or portal
    user: User
    subject: str
    body: str  # the email text, with its links: a secret for the invitee only
    url: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """What the portal shows before the user confirms Authenticate-on-Print."""

    install: ClientInstall
    pending_jobs: tuple[str, ...]  # names
    policy: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class AopOutcome:
    install: ClientInstall
    user: User
    joined: tuple[str, ...]
    discarded: tuple[str, ...]
    message: str


@dataclass(frozen=True, slots=True)
class ImportReport:
    users: int
    cards: int
    codes: int

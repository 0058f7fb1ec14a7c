"""The JSON API's bodies, as the OpenAPI document shows them: the one error answer, the
answers (``{"ok": true, ...}``) and the requests. Request limits match cloud/linking's checks,
which stay the word on content (a refusal there is the same ``invalid_field``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from cloud.storage.port import ClientInstall, Job, User


class ErrorDetail(BaseModel):
    code: str = Field(description="stable refusal code (protocol.errors.ErrorCode, "
                      "cloud.linking.LinkCode)", examples=["invalid_token"])
    message: str = Field(description="what went wrong and what to do, for people")
    field: str | None = Field(default=None, description="the request field, header or body "
                              "part at fault (Authorization for a token or session)")
    retry_after: int | None = Field(default=None, description="seconds to wait (locked_out); "
                                    "also in the Retry-After header")


class ErrorAnswer(BaseModel):
    """Every refusal of the API."""

    ok: Literal[False]
    error: ErrorDetail


class Ok(BaseModel):
    ok: Literal[True] = True

    def model_post_init(self, _context: Any) -> None:
        # Always part of the answer, though never passed (answers omit unset optional fields).
        self.__pydantic_fields_set__.add("ok")


class UserView(BaseModel):
    id: str
    email: str
    display_name: str

    @classmethod
    def of(cls, u: User | None) -> UserView | None:
        return None if u is None else cls(id=u.id, email=u.email, display_name=u.display_name)


class ClientView(BaseModel):
    id: str
    kind: str = Field(description="workstation, chromebook or mobile")
    machine: str
    os_user: str
    linked: bool
    via: str
    created_at: float
    linked_at: float | None

    @classmethod
    def of(cls, i: ClientInstall) -> ClientView:
        return cls(id=i.id, kind=i.kind, machine=i.machine, os_user=i.os_user, linked=i.linked,
                   via=i.via, created_at=i.created_at, linked_at=i.linked_at)


class JobView(BaseModel):
    id: str
    name: str
    pages: int
    color: bool
    duplex: bool
    copies: int
    size: int
    submitted_at: float
    source: str

    @classmethod
    def of(cls, j: Job) -> JobView:
        return cls(id=j.id, name=j.name, pages=j.pages, color=j.color, duplex=j.duplex,
                   copies=j.copies, size=j.size, submitted_at=j.submitted_at, source=j.source)


class Health(Ok):
    service: str
    version: int


class ClientRegistered(Ok):
    client_token: str = Field(description="keep it in the OS user's profile; shown once")
    client: ClientView
    user: UserView | None
    queues: list[str]


class MobileLinked(Ok):
    user_token: str = Field(description="the app's token; shown once")
    client: ClientView
    user: UserView | None
    queues: list[str]


class ClientStateView(Ok):
    client: ClientView
    user: UserView | None
    queues: list[str]
    held_jobs: list[JobView]
    held_total: int


class SubmittedView(Ok):
    job_id: str
    state: str = Field(description="HELD, or PENDING_AUTH until the user signs in")
    size: int
    sha256: str
    owner: UserView | None
    message: str
    sign_in_url: str | None = Field(default=None, description="PENDING_AUTH only: the "
                                    "Authenticate-on-Print page to open")


class SessionView(Ok):
    session: str
    user: UserView | None
    expires_in: int


class Empty(Ok):
    pass


class DevicesView(Ok):
    user: UserView | None
    clients: list[ClientView]


class InstallerIssued(Ok):
    installer_token: str
    expires_in: int
    url: str | None = None


class LinkingCodeIssued(Ok):
    linking_code: str
    expires_in: int
    url: str | None = None


class AopView(Ok):
    client: ClientView
    pending_jobs: list[str]
    policy: str
    expires_in: int


class AopDone(Ok):
    client: ClientView
    user: UserView | None
    joined: list[str]
    discarded: list[str]
    message: str


class DeviceRegistered(Ok):
    device_id: str
    name: str
    username: str
    password: str = Field(description="the device's broker password; shown once")
    broker_url: str = Field(description="the device's first broker (its home broker)")
    broker_urls: list[str] = Field(default_factory=list, description="every broker, in the "
                                   "order this device uses them (home first, then where to fail "
                                   "over); device.toml keeps the list as [broker] url")
    config: dict[str, Any]
    offline_key: str = Field(default="", description="the public key (ed25519:BASE64) the "
                             "device checks its offline bundles with; its device.toml keeps "
                             "it as [offline] cloud_key")


# -- requests


class RegisterClient(BaseModel):
    installer_token: str = Field(max_length=256, description="from the invitation, the User "
                                 "Portal, or the org's bulk installer")
    machine: str = Field(max_length=128)
    os_user: str | None = Field(default=None, max_length=64,
                                description="required for a workstation")
    kind: Literal["workstation", "chromebook"] = "workstation"


class MobileLink(BaseModel):
    app_id: str = Field(max_length=128)
    linking_code: str | None = Field(default=None, max_length=64,
                                     description="instead of email and password: the code "
                                     "from the User Portal")
    email: str | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, max_length=1024)


class AcceptInvitation(BaseModel):
    invitation: str = Field(max_length=256)
    password: str = Field(max_length=1024, description="the new account's first password")


class SignIn(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    org: str | None = Field(default=None, max_length=256, description="the share link's org token")


class AopAsk(BaseModel):
    request: str = Field(max_length=256, description="the token from the sign-in URL's "
                         "fragment (#request=...)")


class RegisterDevice(BaseModel):
    code: str = Field(min_length=8, max_length=64, description="the one-time registration "
                      "code")

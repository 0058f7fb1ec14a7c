"""A user's print client and browser: they speak only the portal's HTTP API.

:class:`PrintClient` is what runs on a workstation, in a Chromebook's extension or in the mobile
app: it registers (links) once, keeps its token, and sends documents. :class:`PortalBrowser` is
the same person in the User Portal: accepting an invitation, signing in, "Set up my devices",
making a linking code, confirming an Authenticate-on-Print sign-in link.

State lives in a directory that stands for the OS user's profile: ``client.json`` (the client or
user token) and ``portal.json`` (the portal session), each written with mode 0600 in a 0700
directory, and refused when others can read it -- the token *is* the user's identity for
printing, which is why each OS user on a computer has their own.

Links from the cloud carry their token in the URL fragment (``.../install#installer=...``); the
functions here accept either such a link or the bare token.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import secrets
import socket
import stat
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from protocol.errors import LinkError, MfdError, RemoteError

DEFAULT_PORTAL = "http://127.0.0.1:8631"
CLIENT_FILE = "client.json"
PORTAL_FILE = "portal.json"


class ClientStateError(MfdError):
    code = "client_state"


def default_portal() -> str:
    """MFD_PORTAL_URL, read when needed (not at import), else the loopback default."""
    return os.environ.get("MFD_PORTAL_URL") or DEFAULT_PORTAL


def split_link(value: str, key: str) -> tuple[str | None, str]:
    """(portal base URL or None, token) from a link carrying ``#key=token`` or a bare token."""
    value = value.strip()
    if "://" not in value:
        return None, value
    parts = urlsplit(value)
    found = parse_qs(parts.fragment).get(key) or parse_qs(parts.query).get(key)
    if not found:
        raise ClientStateError(f"that link has no {key}; paste the whole link or the token",
                               code="invalid_field")
    return f"{parts.scheme}://{parts.netloc}", found[0]


class PortalApi:
    """JSON over HTTP with the portal. ``ok: false`` answers raise :class:`RemoteError` with
    the portal's code; an unreachable portal raises :class:`LinkError`."""

    def __init__(self, base_url: str, timeout: float = 15.0) -> None:
        scheme = urlsplit(base_url).scheme
        if scheme not in ("http", "https"):
            raise ClientStateError(f"the portal URL must be http:// or https://, not {base_url!r}",
                                   code="config_invalid")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, path: str, *, body: dict[str, Any] | None = None,
             token: str | None = None, data: bytes | None = None,
             headers: dict[str, str] | None = None) -> dict[str, Any]:
        head = dict(headers or {})
        if token is not None:
            head["Authorization"] = f"Bearer {token}"
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            head["Content-Type"] = "application/json"
        elif data is None and method == "POST":
            data = b""
        # The scheme was checked in __init__: only http(s) reaches urllib (hence the noqa).
        request = urllib.request.Request(self.base_url + path, data=data,  # noqa: S310
                                         headers=head, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310
                return _decode(resp.read())
        except urllib.error.HTTPError as exc:
            answer = _decode(exc.read(), status=exc.code)
            err = answer.get("error") or {}
            raise RemoteError(str(err.get("code", "http_error")),
                              str(err.get("message", f"HTTP {exc.code}")), err.get("field"),
                              err.get("retry_after")) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise LinkError(f"cannot reach the portal at {self.base_url}: {reason}") from None


def _decode(raw: bytes, status: int = 200) -> dict[str, Any]:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RemoteError("bad_answer", f"the portal answered HTTP {status} without JSON"
                          ) from None
    if not isinstance(obj, dict):
        raise RemoteError("bad_answer", "the portal's answer is not a JSON object")
    return obj


# ---------------------------------------------------------------------------- private files


def write_private(path: Path, data: dict[str, Any]) -> None:
    """Atomically write JSON readable by its owner only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def read_private(path: Path) -> dict[str, Any] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ClientStateError(f"{path} can be read by other users, and it holds your print "
                               f"token; run: chmod 600 {path} (or link again)")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ClientStateError(f"cannot read {path}: {exc}; link again") from None
    return obj if isinstance(obj, dict) else None


# ---------------------------------------------------------------------------- the client


class PrintClient:
    """One OS user's print client (workstation, Chromebook extension, or mobile app)."""

    def __init__(self, state_dir: str | Path, portal: str | None = None,
                 timeout: float = 15.0) -> None:
        self.dir = Path(state_dir)
        self.timeout = timeout
        self._portal = portal

    @property
    def state(self) -> dict[str, Any] | None:
        return read_private(self.dir / CLIENT_FILE)

    def _api(self, portal: str | None = None) -> PortalApi:
        state = self.state or {}
        return PortalApi(portal or self._portal or state.get("portal") or default_portal(),
                         self.timeout)

    def _token(self) -> tuple[PortalApi, str]:
        state = self.state
        if not state or not state.get("token"):
            raise ClientStateError("this client is not linked yet: run `mfd client link ...`",
                                   code="not_linked")
        return self._api(), str(state["token"])

    def _save(self, api: PortalApi, answer: dict[str, Any], token_key: str,
              extra: dict[str, Any]) -> None:
        client = answer["client"]
        write_private(self.dir / CLIENT_FILE, {
            "portal": api.base_url, "token": answer[token_key], "client_id": client["id"],
            "kind": client["kind"], "machine": client["machine"], "os_user": client["os_user"],
            **extra})

    def _refuse_relink(self, relink: bool) -> None:
        # Registering again replaces this seat's install at the cloud; only on purpose.
        if not relink and self.state and self.state.get("token"):
            raise ClientStateError("this client is linked already; pass --relink to link it "
                                   "again (the old link stops working)", code="conflict")

    def link(self, installer: str, *, kind: str = "workstation", machine: str | None = None,
             os_user: str | None = None, relink: bool = False) -> dict[str, Any]:
        """Register with an installer token (personal, or the org's anonymous one)."""
        self._refuse_relink(relink)
        base, token = split_link(installer, "installer")
        api = self._api(base)
        previous = self.state or {}
        if machine is None:
            # A Chromebook's extension has its own install id; a computer has its host name.
            machine = previous.get("machine") if previous.get("kind") == kind else None
            machine = machine or (f"ext-{secrets.token_hex(8)}" if kind == "chromebook"
                                  else socket.gethostname())
        if os_user is None:
            os_user = "" if kind == "chromebook" else getpass.getuser()
        answer = api.call("POST", "/api/v1/clients", body={
            "installer_token": token, "kind": kind, "machine": machine, "os_user": os_user})
        self._save(api, answer, "client_token", {})
        return answer

    def link_mobile(self, *, email: str | None = None, password: str | None = None,
                    linking_code: str | None = None, relink: bool = False) -> dict[str, Any]:
        """The mobile app: email + password, or a linking code; returns the user token."""
        self._refuse_relink(relink)
        api = self._api()
        previous = self.state or {}
        app_id = (previous.get("machine") if previous.get("kind") == "mobile" else None) \
            or f"app-{secrets.token_hex(8)}"
        if linking_code is not None:
            body: dict[str, Any] = {"linking_code": linking_code, "app_id": app_id}
        else:
            body = {"email": email, "password": password, "app_id": app_id}
        answer = api.call("POST", "/api/v1/mobile/link", body=body)
        self._save(api, answer, "user_token", {})
        return answer

    def status(self) -> dict[str, Any]:
        api, token = self._token()
        return api.call("GET", "/api/v1/client", token=token)

    def print_document(self, data: bytes, name: str, *, pages: int = 1, color: bool = False,
                       duplex: bool = False, copies: int = 1, queue: str | None = None,
                       extra_headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Send a document; the answer's ``state`` is HELD, or PENDING_AUTH with a
        ``sign_in_url`` for an install that is not linked yet."""
        api, token = self._token()
        headers = {"Content-Type": "application/octet-stream",
                   # Header values are Latin-1 on the wire; names are percent-encoded UTF-8.
                   "X-Job-Name": quote(name, safe=" ()[],.-_+"),
                   "X-Job-Pages": str(pages), "X-Job-Copies": str(copies),
                   "X-Job-Color": "true" if color else "false",
                   "X-Job-Duplex": "true" if duplex else "false",
                   "X-Content-SHA256": hashlib.sha256(data).hexdigest(),
                   **(extra_headers or {})}
        if queue:
            headers["X-Job-Queue"] = quote(queue, safe=" ")
        return api.call("POST", "/api/v1/jobs", token=token, data=data, headers=headers)

    def print_file(self, path: str | Path, *, name: str | None = None,
                   **options: Any) -> dict[str, Any]:
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise MfdError(f"cannot read {p}: {exc.strerror}", code="not_found") from None
        return self.print_document(data, name or p.name, **options)


class PortalBrowser:
    """The same person in the User Portal (what a browser would do for them)."""

    def __init__(self, state_dir: str | Path, portal: str | None = None,
                 timeout: float = 15.0) -> None:
        self.dir = Path(state_dir)
        self.timeout = timeout
        self._portal = portal

    def _api(self, base: str | None = None) -> PortalApi:
        state = read_private(self.dir / PORTAL_FILE) or {}
        client = read_private(self.dir / CLIENT_FILE) or {}
        return PortalApi(base or self._portal or state.get("portal") or client.get("portal")
                         or default_portal(), self.timeout)

    def _keep(self, api: PortalApi, answer: dict[str, Any]) -> dict[str, Any]:
        write_private(self.dir / PORTAL_FILE, {"portal": api.base_url,
                                               "session": answer["session"],
                                               "email": answer["user"]["email"]})
        return answer

    def _session(self) -> tuple[PortalApi, str]:
        state = read_private(self.dir / PORTAL_FILE)
        if not state or not state.get("session"):
            raise ClientStateError("not signed in to the User Portal: run `mfd client portal "
                                   "signin` (or accept your invitation)", code="invalid_session")
        return self._api(), str(state["session"])

    def sign_in(self, email: str, password: str, share_link: str | None = None
                ) -> dict[str, Any]:
        org = None
        base = None
        if share_link:
            base, org = split_link(share_link, "org")
        api = self._api(base)
        body: dict[str, Any] = {"email": email, "password": password}
        if org:
            body["org"] = org
        return self._keep(api, api.call("POST", "/api/v1/portal/signin", body=body))

    def accept_invitation(self, invitation: str, password: str) -> dict[str, Any]:
        base, token = split_link(invitation, "invitation")
        api = self._api(base)
        return self._keep(api, api.call("POST", "/api/v1/invitations/accept",
                                        body={"invitation": token, "password": password}))

    def sign_out(self) -> None:
        api, session = self._session()
        try:
            api.call("POST", "/api/v1/portal/signout", token=session)
        finally:
            with contextlib.suppress(FileNotFoundError):
                (self.dir / PORTAL_FILE).unlink()

    def devices(self) -> dict[str, Any]:
        api, session = self._session()
        return api.call("GET", "/api/v1/portal/devices", token=session)

    def setup_devices(self) -> dict[str, Any]:
        api, session = self._session()
        return api.call("POST", "/api/v1/portal/installer", token=session)

    def linking_code(self) -> dict[str, Any]:
        api, session = self._session()
        return api.call("POST", "/api/v1/portal/linking-code", token=session)

    def aop_details(self, sign_in_url: str) -> dict[str, Any]:
        _base, request = split_link(sign_in_url, "request")
        api, session = self._session()
        return api.call("POST", "/api/v1/portal/aop", token=session, body={"request": request})

    def aop_confirm(self, sign_in_url: str) -> dict[str, Any]:
        _base, request = split_link(sign_in_url, "request")
        api, session = self._session()
        return api.call("POST", "/api/v1/portal/aop/confirm", token=session,
                        body={"request": request})

"""The web front end against the findings of its security review: each test here failed on the
code before its fix. One served cloud (SQLite) for the page-level checks; the use-case checks
run on the store of each backend."""

from __future__ import annotations

import asyncio
import io
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud import admin, devices, directory
from cloud.linking import LinkCode, Linking, invitations
from cloud.storage.factory import open_store
from cloud.storage.port import User
from cloud.storage.sql import SqlStore
from cloud.web import portal_bundle
from cloud.web.app import create_app
from cloud.web.limits import FORM_LIMIT, BodyLimits
from cloud.web.settings import OidcSettings, WebSettings
from protocol.errors import ErrorCode, MfdError, StoreError
from tests.admin_console_helpers import csrf_of, signed_in
from tests.web_helpers import PASSWORD, WebWorld, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebWorld]:
    served = make_world(f"sqlite:///{tmp_path_factory.mktemp('web-sec') / 'cloud.db'}")
    yield served
    served.server.close()


@pytest.fixture
def acme(store_url: str) -> Iterator[tuple[SqlStore, str]]:
    """A store of the test's backend with org Acme, ada (a user) and both passwords set."""
    store = open_store(store_url)
    org = admin.create_org(store, "Acme")
    admin.add_user(store, org, "ada@example.org", "Ada Lovelace")
    directory.set_password(store, "ada@example.org", PASSWORD)
    yield store, org
    store.close()


def audit_rows(world: WebWorld) -> list[tuple[float, str, str, str, str]]:
    store = open_store(world.store_url)
    try:
        return store.audit_log(500)
    finally:
        store.close()


# ------------------------------------------------------------ 1. the sign-in lockout per address

def test_an_address_guessing_until_locked_does_not_lock_out_another(
        acme: tuple[SqlStore, str]) -> None:
    store, _org = acme
    linking = Linking(store, base_url="https://print.example.org")
    locked = False
    for i in range(25):  # a different account each time: only the address is counted
        try:
            linking.sign_in(f"guess{i}@example.org", "wrong", source="203.0.113.9")
        except MfdError as exc:
            if exc.code == ErrorCode.LOCKED_OUT:
                locked = True
                break
    assert locked, "the guessing address was never locked"
    with pytest.raises(MfdError) as refused:
        linking.sign_in("ada@example.org", PASSWORD, source="203.0.113.9")
    assert refused.value.code == ErrorCode.LOCKED_OUT
    # The victim, elsewhere, signs in.
    session = linking.sign_in("ada@example.org", PASSWORD, source="198.51.100.7")
    assert session.user.email == "ada@example.org"


def test_the_sign_in_page_counts_failures_against_the_client_address(world: WebWorld) -> None:
    with httpx.Client(base_url=world.url) as http:
        csrf = csrf_of(http.get("/portal/signin").text)
        r = http.post("/portal/signin", data={"csrf": csrf, "email": "ada@example.org",
                                              "password": "not it"})
        assert r.status_code == 401
    wrong = [row for row in audit_rows(world) if row[2] == "portal.wrong_password"]
    assert wrong and wrong[0][4] == "from 127.0.0.1", wrong


# ---------------------------------------------------- 2. display names and the client package

EVIL_NAME = "Mallory\necho owned > /tmp/owned\r\nrem"


def test_a_display_name_with_control_characters_is_refused_by_every_path(
        acme: tuple[SqlStore, str]) -> None:
    store, org = acme
    for name in (EVIL_NAME, "Tab\there", "x" * 129, "   "):
        with pytest.raises(StoreError) as refused:
            admin.add_user(store, org, "mallory@example.org", name)
        assert refused.value.code == "invalid_field"
    with pytest.raises(StoreError):
        admin.add_technician(store, org, "Tech\nnician", code=True)
    assert [u.email for u in admin.users(store, org)] == ["ada@example.org"]
    # Blanks around a good name are trimmed before it is stored.
    admin.add_user(store, org, "bob@example.org", "  Bob  ")
    assert {u.display_name for u in admin.users(store, org)} == {"Ada Lovelace", "Bob"}


def test_the_admin_console_refuses_a_name_with_a_line_break(world: WebWorld) -> None:
    with signed_in(world.url, world.admin_email) as http:
        csrf = csrf_of(http.get("/admin/users").text)
        r = http.post("/admin/users", data={"csrf": csrf, "email": "mallory@example.org",
                                            "name": EVIL_NAME})
        assert r.status_code == 400
        assert "control characters" in r.text
    store = open_store(world.store_url)
    try:
        assert store.user_by_email("mallory@example.org") is None
    finally:
        store.close()


def test_the_client_package_scripts_hold_no_text_a_person_chose() -> None:
    user = User("u_1", "o_1", "eve@example.org", EVIL_NAME)
    data = portal_bundle.build("https://print.example.org/i/tok", "tok", user=user,
                               org="Acme\nrem org", portal_url="https://print.example.org",
                               expires_at=2_000_000_000)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for script in ("link.sh", "link.cmd"):
            text = z.read(f"{portal_bundle.FOLDER}/{script}").decode()
            assert "Mallory" not in text and "owned" not in text and "eve@" not in text
            assert "Acme" not in text


# ---------------------------------------------------- 3. request bodies of the page routes

def raw_request(url: str, head: str, body: bytes = b"") -> tuple[int, str]:
    """Send bytes as they are (httpx would fix the framing) and read the answer's status."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        while True:  # the rest, up to the server's close (Connection: close)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            answer += chunk
    status_line, _, rest = answer.decode("latin-1").partition("\r\n")
    return int(status_line.split()[1]), rest


def test_a_chunked_body_is_refused_before_it_is_read(world: WebWorld) -> None:
    for path in ("/portal/signin", "/portal/print", "/admin/users/import"):
        status, text = raw_request(world.url, f"POST {path} HTTP/1.1\nHost: localhost\n"
                                   "Content-Type: multipart/form-data; boundary=b\n"
                                   "Transfer-Encoding: chunked\nConnection: close\n",
                                   b"5\r\nhello\r\n0\r\n\r\n")
        assert status == 411, (path, text)
        assert "chunked" in text


def test_a_form_larger_than_its_limit_is_refused_from_its_declared_length(
        world: WebWorld) -> None:
    # 300 MB declared, none sent: the answer comes from the headers alone.
    status, text = raw_request(world.url, "POST /portal/signin HTTP/1.1\nHost: localhost\n"
                               "Content-Type: multipart/form-data; boundary=b\n"
                               "Content-Length: 300000000\nConnection: close\n")
    assert status == 413 and "larger than" in text
    # A body over 64 KiB to a form, sent whole: refused the same way.
    r = httpx.post(world.url + "/portal/signin", files={"f": ("x.bin", b"0" * 70_000)})
    assert r.status_code == 413
    # A POST without a length.
    status, _ = raw_request(world.url, "POST /portal/signout HTTP/1.1\nHost: localhost\n"
                            "Connection: close\n")
    assert status == 411
    # The API keeps its own rules (its JSON error, not this page).
    status, text = raw_request(world.url, "POST /api/v1/portal/signin HTTP/1.1\n"
                               "Host: localhost\nContent-Type: application/json\n"
                               "Transfer-Encoding: chunked\nConnection: close\n",
                               b"2\r\n{}\r\n0\r\n\r\n")
    assert status == 411 and "length_required" in text
    # A form within its limit still works.
    with signed_in(world.url, world.user_email) as http:
        assert http.get("/portal/").status_code == 200


def test_a_refused_body_still_being_sent_gets_the_page_not_a_reset(world: WebWorld) -> None:
    """A browser that is still sending when the 413 comes must still get the page: the server
    reads the rest and throws it away before it closes (closing on unread bytes makes the
    kernel reset the connection, and the answer is lost with it)."""
    host, port = world.url.removeprefix("http://").split(":")
    size = 4 * FORM_LIMIT
    head = ("POST /portal/signin HTTP/1.1\r\nHost: localhost\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {size}\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + b"0" * 1000)
        answer = b""
        while b"\r\n\r\n" not in answer:  # the answer comes while the body is unsent
            chunk = sock.recv(65536)
            assert chunk, "the server closed before answering"
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 413")
        for _ in range((size - 1000) // 4096 + 1):  # the rest, as a browser would go on
            sock.sendall(b"0" * 4096)
        while True:
            chunk = sock.recv(65536)  # a reset raises here
            if not chunk:
                break
            answer += chunk
    assert b"larger than this page takes" in answer


# ---------------------------------------------------- 4. a new password ends the other sessions

def session_alive(linking: Linking, token: str) -> bool:
    try:
        linking.session_user(token)
    except MfdError as exc:
        assert exc.code == ErrorCode.INVALID_SESSION
        return False
    return True


def test_a_new_password_or_an_accepted_invitation_ends_the_other_sessions(
        acme: tuple[SqlStore, str]) -> None:
    store, _org = acme
    linking = Linking(store, base_url="https://print.example.org")
    stolen = linking.sign_in("ada@example.org", PASSWORD, source="203.0.113.9").token
    mine = linking.sign_in("ada@example.org", PASSWORD, source="198.51.100.7").token
    directory.set_password(store, "ada@example.org", "a brand new password")
    assert not session_alive(linking, stolen) and not session_alive(linking, mine)
    assert any(r[2] == "portal.sessions_end" and "2 session(s)" in r[4]
               for r in store.audit_log(20))

    stolen = linking.sign_in("ada@example.org", "a brand new password", source="x").token
    url = linking.invite_portal("ada@example.org").url
    fresh = linking.accept_invitation(url.split("#invitation=")[1], "yet another password")
    assert not session_alive(linking, stolen)
    assert session_alive(linking, fresh.token)


def test_sign_out_everywhere_and_end_sessions(world: WebWorld) -> None:
    with signed_in(world.url, world.user_email) as here, \
            signed_in(world.url, world.user_email) as there:
        r = here.post("/portal/devices/signout-everywhere",
                      data={"csrf": csrf_of(here.get("/portal/devices").text)})
        assert r.status_code == 303
        for http in (here, there):
            r = http.get("/portal/devices")
            assert r.status_code == 303 and "/portal/signin" in r.headers["location"]
    store = open_store(world.store_url)
    try:
        ada = store.user_by_email(world.user_email)
    finally:
        store.close()
    assert ada is not None
    with signed_in(world.url, world.user_email) as victim, \
            signed_in(world.url, world.admin_email) as root:
        assert victim.get("/portal/devices").status_code == 200
        page = root.get(f"/admin/users/{ada.id}")
        assert "End sessions" in page.text
        r = root.post(f"/admin/users/{ada.id}/sessions/end", data={"csrf": csrf_of(page.text)})
        assert r.status_code == 303
        assert victim.get("/portal/devices").status_code == 303
        assert root.get("/admin/").status_code == 200  # the administrator's own goes on


# ---------------------------------------------------- 5. accepting invitations, limited

def test_invitation_guesses_are_limited_per_address_and_never_hash(
        acme: tuple[SqlStore, str], monkeypatch: pytest.MonkeyPatch) -> None:
    store, _org = acme
    hashed: list[str] = []
    real = invitations.hash_password
    monkeypatch.setattr(invitations, "hash_password",
                        lambda password: hashed.append("x") or real(password))
    linking = Linking(store, base_url="https://print.example.org", clock=lambda: 1_000_000.0)
    codes = []
    for _ in range(12):
        try:
            linking.accept_invitation("mfv_guess", "a long enough password", source="203.0.113.9")
        except MfdError as exc:
            codes.append(exc.code)
    assert codes[:10] == [LinkCode.INVALID_TOKEN] * 10
    assert codes[-1] == ErrorCode.LOCKED_OUT
    assert hashed == []  # no guess paid for scrypt
    # Another address is not held up, and a real invitation is accepted (hashed once).
    url = linking.invite_portal("ada@example.org").url
    linking.accept_invitation(url.split("#invitation=")[1], "a long enough password",
                              source="198.51.100.7")
    assert hashed == ["x"]


def test_the_welcome_page_is_rate_limited(world: WebWorld) -> None:
    with httpx.Client(base_url=world.url) as http:
        csrf = csrf_of(http.get("/portal/welcome").text)
        answers = [http.post("/portal/welcome", data={
            "csrf": csrf, "invitation": "mfv_guess", "password": "a long enough password",
            "repeat": "a long enough password"}) for _ in range(12)]
    assert answers[0].status_code == 400 and "not valid" in answers[0].text
    assert answers[-1].status_code == 429 and "Too many attempts" in answers[-1].text
    # The API's acceptance spends from the same budget of this address.
    r = httpx.post(world.url + "/api/v1/invitations/accept",
                   json={"invitation": "mfv_guess", "password": "a long enough password"})
    assert r.status_code == 429 and r.json()["error"]["retry_after"] >= 1


# ---------------------------------------------------- 8. refusals filed in the acting user's org

def test_a_refused_unlink_is_filed_in_the_users_org_not_the_clients(
        acme: tuple[SqlStore, str]) -> None:
    store, org = acme
    linking = Linking(store, base_url="https://print.example.org")
    globex = admin.create_org(store, "Globex")
    theirs = linking.register(linking.bulk_installer(globex).token, machine="globex-pc",
                              os_user="bea").install.id
    session = linking.sign_in("ada@example.org", PASSWORD, source="198.51.100.7")
    with pytest.raises(MfdError):
        linking.unlink_device(session.token, theirs)
    assert not [r for r in store.org_audit(globex) if r[2] == "client.unlink_refused"]
    mine = [r for r in store.org_audit(org) if r[2] == "client.unlink_refused"]
    assert len(mine) == 1 and mine[0][3] == f"user:{session.user.id}" and theirs in mine[0][4]


# ---------------------------------------------------- 7. what is taken in another org is not said

def test_an_email_or_device_id_of_another_org_is_refused_without_saying_so(
        acme: tuple[SqlStore, str]) -> None:
    store, org = acme
    globex = admin.create_org(store, "Globex")
    admin.add_user(store, globex, "bea@globex.test", "Bea")
    devices.add_device(store, globex, "copier-globex", "Lobby", 1.0)
    with pytest.raises(StoreError) as refused:
        admin.add_user(store, org, "Bea@globex.test", "Bea?")
    assert refused.value.message == "this email cannot be used; choose another"
    with pytest.raises(StoreError) as refused:
        devices.add_device(store, org, "copier-globex", "Hall", 1.0)
    assert refused.value.message == "this device id cannot be used; choose another"
    # In one's own org, the answer names what is there.
    with pytest.raises(StoreError, match=r"user ada@example\.org exists already"):
        admin.add_user(store, org, "ada@example.org", "Ada again")


# ---------------------------------------------------- 9. HTTPS: secure cookies and HSTS by default

def test_an_https_public_url_turns_https_only_and_hsts_on(
        world: WebWorld, tmp_path: Path) -> None:
    assert WebSettings(store_url="x", public_url="https://print.example.org").https_only
    assert not WebSettings(store_url="x", public_url="http://10.0.0.5:8631").https_only
    assert not WebSettings(store_url="x", public_url="https://p.example.org",
                           https_only=False).https_only
    assert "strict-transport-security" not in httpx.get(world.url + "/portal/signin").headers
    behind_tls = make_world(f"sqlite:///{tmp_path / 'tls.db'}",
                            public_url="https://print.example.org")
    try:
        r = httpx.get(behind_tls.url + "/portal/signin")
        assert r.headers["strict-transport-security"] == "max-age=31536000"
        assert "secure" in r.headers["set-cookie"].lower()
    finally:
        behind_tls.server.close()


# ---------------------------------------------------- 6. single sign-on: one org, one subject

ISSUER = "https://id.example.org"


def test_single_sign_on_keeps_to_its_org_and_to_the_first_subject(
        acme: tuple[SqlStore, str]) -> None:
    store, org = acme
    linking = Linking(store, base_url="https://print.example.org")
    globex = admin.create_org(store, "Globex")
    admin.add_user(store, globex, "boss@globex.test", "Globex Boss")
    # Several orgs and none named: refused, whoever it is.
    with pytest.raises(MfdError) as refused:
        linking.sign_in_sso("ada@example.org", ISSUER, "sub-ada")
    assert refused.value.code == "config_invalid"
    # The provider of Acme cannot sign anyone in at Globex (refused as a stranger would be).
    with pytest.raises(MfdError) as refused:
        linking.sign_in_sso("boss@globex.test", ISSUER, "sub-boss", org_id=org)
    assert refused.value.code == LinkCode.UNKNOWN_USER
    with pytest.raises(MfdError) as refused:
        linking.sign_in_sso("ada@example.org", ISSUER, "sub-ada", org_id=org,
                            domains=("acme.test",))
    assert refused.value.code == LinkCode.UNKNOWN_USER
    assert not store.org_audit(globex, action="sso.other_org")
    # The first sign-in records the subject; another subject for ada is refused later, and
    # ada's subject cannot become another user's.
    linking.sign_in_sso("ada@example.org", ISSUER, "sub-ada", org_id=org,
                        domains=("example.org",))
    with pytest.raises(MfdError) as refused:
        linking.sign_in_sso("ada@example.org", ISSUER, "sub-impostor", org_id=org)
    assert refused.value.code == ErrorCode.NOT_ALLOWED
    admin.add_user(store, org, "bob@example.org", "Bob")
    with pytest.raises(MfdError):
        linking.sign_in_sso("bob@example.org", ISSUER, "sub-ada", org_id=org)
    assert linking.sign_in_sso("ada@example.org", ISSUER, "sub-ada", org_id=org).user.org_id \
        == org
    assert [r[2] for r in store.org_audit(org) if r[2].startswith("sso.")].count(
        "sso.subject_mismatch") == 2


def test_single_sign_on_without_an_org_on_several_orgs_does_not_start(
        world: WebWorld) -> None:
    store = open_store(world.store_url)
    try:
        admin.create_org(store, "Globex")
    finally:
        store.close()
    oidc = OidcSettings(issuer=ISSUER, client_id="portal", client_secret="s")
    with pytest.raises(MfdError, match="--oidc-org"):
        create_app(WebSettings(store_url=world.store_url, oidc=oidc))
    with pytest.raises(MfdError, match="no such org"):
        create_app(WebSettings(store_url=world.store_url,
                               oidc=OidcSettings(ISSUER, "portal", "s", org="org_nope")))
    app = create_app(WebSettings(store_url=world.store_url,
                                 oidc=OidcSettings(ISSUER, "portal", "s", org=world.org_id)))
    app.state.stores.close()


def test_the_app_never_reads_past_the_declared_length() -> None:
    # The middleware alone, on ASGI messages: a peer sending more than it declared (a server
    # that framed the body otherwise) hands the app the declared bytes, then the end.
    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.append(message.get("body", b""))
            if not message.get("more_body"):
                return

    sent = [{"type": "http.request", "body": b"a" * 6, "more_body": True},
            {"type": "http.request", "body": b"b" * 6, "more_body": True},
            {"type": "http.request", "body": b"c" * 6, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return sent.pop(0)

    async def send(_message: Any) -> None:
        raise AssertionError("nothing is refused here")

    scope = {"type": "http", "method": "POST", "path": "/portal/signin",
             "headers": [(b"content-length", b"10")]}
    asyncio.run(BodyLimits(app, lambda _path: FORM_LIMIT)(scope, receive, send))
    assert b"".join(seen) == b"a" * 6 + b"b" * 4

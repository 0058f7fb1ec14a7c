"""Mail over real SMTP (aiosmtpd on loopback): invitations, the share link and a linking code
arrive as a mail client sees them (plain text and HTML, the links inside); a User Portal
invitation sent from the admin console in Chromium arrives, and its link, followed in the
invitee's browser, ends signed in to the portal. The SMTP adapter logs in, and a
refused login, an unreachable server or a portal with no SMTP set up say what to fix, never
with the password."""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import expect
from starlette.requests import Request

from cloud import admin
from cloud.linking import Linking
from cloud.mail import MailError, SmtpMailer, compose
from cloud.storage.factory import open_store
from cloud.web import context as web
from cloud.web import mailing
from cloud.web.app import create_app
from cloud.web.settings import WebSettings
from tests.mail_helpers import SENDER, SmtpServer, free_port, smtp, start_smtp
from tests.tls_certs import ca_and_server
from tests.web_helpers import PASSWORD, WebWorld, browser, make_world, page, sign_in

__all__ = ["browser", "page", "smtp"]  # fixtures, imported to be found

SMTP_USER = "mailer"
SMTP_PASSWORD = "s3cret-smtp-Passw0rd"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer) -> Iterator[WebWorld]:
    path: Path = tmp_path_factory.mktemp("mail") / "cloud.db"
    w = make_world(f"sqlite:///{path}", smtp=smtp.settings())
    store = open_store(w.store_url)
    try:
        # Where links in mail point: the portal records its address as `mfd cloud --http` does.
        Linking(store).set_public_url(w.url)
        admin.add_user(store, w.org_id, "eve@example.org", "Eve Newcomer")
    finally:
        store.close()
    try:
        yield w
    finally:
        w.server.close()


def accept_mailer(server: Any, session: Any, envelope: Any, mechanism: str,
                  auth_data: Any) -> Any:
    """The test SMTP server's authenticator: the one account SMTP_USER / SMTP_PASSWORD."""
    from aiosmtpd.smtp import AuthResult
    ok = (auth_data.login, auth_data.password) == (SMTP_USER.encode(), SMTP_PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


def request_for(app: FastAPI) -> Request:
    """What a page hands the mailing functions: a request of the app (its settings, stores)."""
    return Request({"type": "http", "app": app, "method": "POST", "path": "/admin/invite",
                    "headers": [], "query_string": b""})


def test_a_portal_invitation_arrives_and_its_link_signs_the_invitee_in(
        browser: Any, page: Any, world: WebWorld, smtp: SmtpServer) -> None:
    # The administrator sends it from the console.
    store = open_store(world.store_url)
    try:
        with store.transaction():
            eve = store.user_by_email("eve@example.org")
    finally:
        store.close()
    assert eve is not None
    before = smtp.sink.count()
    sign_in(page, world, world.admin_email)
    page.goto(f"{world.url}/admin/users/{eve.id}")
    page.get_by_role("button", name="Send a User Portal invitation").click()
    expect(page.get_by_role("status")).to_contain_text("mailed to eve@example.org")

    mail = smtp.sink.wait_for(before + 1)
    assert mail.rcpt_tos == ["eve@example.org"]
    assert mail.message["From"] == SENDER
    assert mail.message["Subject"] == "Your Acme User Portal account"
    assert not mail.text.startswith("To:")  # headers are headers, not body text
    links = mail.links()
    assert len(links) == 1
    assert re.fullmatch(re.escape(world.url) + r"/portal/welcome#invitation=mfv_[\w-]+",
                        links[0])
    assert mail.html is not None and f'href="{links[0]}"' in mail.html

    # Eve, in her own browser, follows the link from the mail.
    context = browser.new_context()
    try:
        eves = context.new_page()
        eves.goto(links[0])
        eves.get_by_label("New password").fill("a new password for eve")
        eves.get_by_label("Repeat the password").fill("a new password for eve")
        eves.get_by_role("button", name="Set password and sign in").click()
        eves.wait_for_url(world.url + "/portal/devices")
        expect(eves.get_by_text("Eve Newcomer").first).to_be_visible()
    finally:
        context.close()


def test_classic_invitation_share_link_and_linking_code_arrive_and_work(
        world: WebWorld, smtp: SmtpServer) -> None:
    request = request_for(world.server.app)
    linking = web.linking(request)
    before = smtp.sink.count()

    mailing.send_invitation(request, linking.invite_classic(world.user_email))
    classic = smtp.sink.wait_for(before + 1)
    assert classic.message["Subject"] == "Print from your devices at Acme"
    assert any(link.startswith(world.url) for link in classic.links())

    link = mailing.send_share_link(request, world.org_id, "everyone@example.org")
    share = smtp.sink.wait_for(before + 2)
    assert share.rcpt_tos == ["everyone@example.org"]
    assert share.links() == [link]
    assert link.startswith(world.url + "/portal/signin?org=")
    with httpx.Client() as http:
        assert http.get(link).status_code == 200

    session = linking.sign_in(world.user_email, PASSWORD, source="test")
    issued = linking.create_linking_code(session.token)
    mailing.send_linking_code(request, session.user, issued)
    code_mail = smtp.sink.wait_for(before + 3)
    assert code_mail.rcpt_tos == [world.user_email]
    code = re.search(r"\b([A-Z0-9]{4}-[A-Z0-9]{4})\b", code_mail.text)
    assert code, code_mail.text
    # The code as read from the mail links the mobile app to Ada.
    registered = linking.mobile_link_code(code.group(1), app_id="phone-1", source="test")
    assert registered.user is not None and registered.user.email == world.user_email


def test_without_smtp_sending_says_mail_is_not_set_up(tmp_path: Path) -> None:
    app = create_app(WebSettings(store_url=f"sqlite:///{tmp_path / 'cloud.db'}"))
    request = request_for(app)
    assert mailing.mailer(request) is None
    with pytest.raises(mailing.MailNotSetUp, match="mail is not set up"):
        mailing.send_share_link(request, "org_x", "someone@example.org")


def test_the_smtp_adapter_logs_in_when_configured() -> None:
    controller, server = start_smtp(accept_mailer)
    try:
        mailer = SmtpMailer(server.settings(username=SMTP_USER, password=SMTP_PASSWORD))
        mailer.send(compose("ada@example.org", "Hello", "Hi Ada: https://example.org/x"))
        mail = server.sink.wait_for(1)
        assert mail.authenticated
        assert mail.message["From"] == SENDER
        assert mail.links() == ["https://example.org/x"]
    finally:
        controller.stop()


def test_a_refused_smtp_login_says_what_to_fix_without_the_password(
        caplog: pytest.LogCaptureFixture) -> None:
    def refuse(*_args: Any) -> Any:
        from aiosmtpd.smtp import AuthResult
        return AuthResult(success=False, handled=False)

    controller, server = start_smtp(refuse)
    try:
        mailer = SmtpMailer(server.settings(username=SMTP_USER, password=SMTP_PASSWORD))
        with caplog.at_level(logging.DEBUG), pytest.raises(MailError) as refused:
            mailer.send(compose("ada@example.org", "Hello", "Hi"))
        assert "refused the SMTP login of user 'mailer'" in refused.value.message
        assert "user name and password" in refused.value.message
        assert SMTP_PASSWORD not in str(refused.value)
        assert SMTP_PASSWORD not in caplog.text
        assert server.sink.count() == 0
    finally:
        controller.stop()


def test_starttls_checks_the_mail_servers_certificate(tmp_path: Path) -> None:
    ca, cert, key = ca_and_server(tmp_path, "smtp")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    controller, server = start_smtp(accept_mailer, tls_context=server_tls,
                                    require_starttls=True)
    try:
        settings = server.settings(starttls=True, username=SMTP_USER, password=SMTP_PASSWORD)
        # A server whose CA the machine does not trust: refused before the login is sent.
        with pytest.raises(MailError, match=r"TLS with the mail server 127\.0\.0\.1:\d+ "
                           r"failed \(CERTIFICATE_VERIFY_FAILED\)"):
            SmtpMailer(settings).send(compose("ada@example.org", "Hello", "Hi"))
        # Trusting the site's CA: encrypted, then logged in, then delivered.
        SmtpMailer(settings, ssl_context=ssl.create_default_context(cafile=str(ca))).send(
            compose("ada@example.org", "Hello", "Hi"))
        mail = server.sink.wait_for(1)
        assert mail.tls and mail.authenticated
        assert server.sink.count() == 1
    finally:
        controller.stop()


def test_an_unreachable_mail_server_is_named() -> None:
    port = free_port()  # nobody listens there
    mailer = SmtpMailer(SmtpServer("127.0.0.1", port, None).settings())  # type: ignore[arg-type]
    with pytest.raises(MailError, match=rf"cannot reach the mail server 127\.0\.0\.1:{port}"):
        mailer.send(compose("ada@example.org", "Hello", "Hi"))


def test_a_header_cannot_be_smuggled_in_nor_a_non_address_given() -> None:
    with pytest.raises(MailError):
        compose("ada@example.org\nBcc: everyone@example.org", "Hello", "Hi")
    with pytest.raises(MailError, match="not an email address"):
        compose("ada", "Hello", "Hi")



"""Single sign-on against a real, certified OpenID provider (Node.js ``oidc-provider``, started by
tests/oidc_helpers.py): the sign-in page's button leads to the provider, the person signs in and
consents there, and lands signed in to the portal; an account whose email no user has, or whose
email the provider has not verified, is refused with a page that says what to do; an answer
whose state was not given to this browser is refused; password sign-in stays."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud.storage.factory import open_store
from cloud.web.server import start_web
from cloud.web.settings import OidcSettings, WebSettings
from tests.mail_helpers import free_port
from tests.oidc_helpers import CLIENT_ID, CLIENT_SECRET, OidcProvider, running_provider
from tests.web_helpers import PHONE, WebWorld, browser, make_world, page, sign_in

__all__ = ["browser", "page"]  # fixtures, imported to be found

ACCOUNTS = [
    {"id": "ada-sso", "email": "Ada@Example.org", "email_verified": True},
    {"id": "stranger", "email": "stranger@example.org", "email_verified": True},
    {"id": "unverified", "email": "ada@example.org", "email_verified": False},
    # Another person than ada-sso: an email is bound to the provider's subject that first
    # signed in with it (tests/test_web_security.py has the refusal of another one).
    {"id": "root-userinfo", "email": "root@example.org", "email_verified": True,
     "userinfo_only": True},
]


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebWorld, OidcProvider]]:
    path: Path = tmp_path_factory.mktemp("sso") / "cloud.db"
    # The provider's address goes into the portal's settings before either starts, and the
    # portal's callback into the provider's client registration.
    port = free_port()
    w = make_world(f"sqlite:///{path}", oidc=OidcSettings(
        issuer=f"http://127.0.0.1:{port}", client_id=CLIENT_ID, client_secret=CLIENT_SECRET))
    try:
        yield from ((w, p) for p in running_provider(w.url + "/sso/callback", ACCOUNTS, port))
    finally:
        w.server.close()


SHOTS = Path(__file__).resolve().parent.parent / "docs" / "img" / "web"


def shot(pg: Any, name: str) -> None:
    """docs/img/web/sso-NAME.png, only when MFD_SCREENSHOTS=1 (the docs' pictures)."""
    if os.environ.get("MFD_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(SHOTS / f"sso-{name}.png"), full_page=True)


def provider_sign_in(pg: Any, account: str) -> None:
    """At the provider: its login form (an account id; any password), then consent."""
    pg.locator("input[name=login]").fill(account)
    pg.locator("input[name=password]").fill("anything")
    pg.get_by_role("button", name="Sign-in").click()
    pg.get_by_role("button", name="Continue").click()


def start_sso(pg: Any, world: WebWorld, provider: OidcProvider) -> httpx.URL:
    """From the portal's sign-in page to the provider's; returns what the portal asked for."""
    # The provider's development pages import a web font: nothing leaves loopback here.
    pg.context.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/]).*"),
                     lambda route: route.abort())
    pg.goto(world.url + "/portal/signin")
    shot(pg, "signin")
    with pg.expect_request(re.compile(re.escape(provider.issuer) + r"/auth\?.*")) as asked:
        pg.get_by_role("link", name="Sign in with single sign-on").click()
    pg.wait_for_url(provider.issuer + "/**")
    return httpx.URL(asked.value.url)


def signed_in(world: WebWorld, pg: Any) -> bool:
    cookie = [c["value"] for c in pg.context.cookies() if c["name"] == "mfd_session"]
    with httpx.Client(base_url=world.url, cookies={"mfd_session": cookie[0]} if cookie else {}
                      ) as http:
        return http.get("/portal/").status_code == 200


def test_sign_in_with_single_sign_on(page: Any, sso: tuple[WebWorld, OidcProvider]) -> None:
    world, provider = sso
    asked = start_sso(page, world, provider)
    # A code, for our redirect URI, with PKCE (S256), a state and a nonce.
    params = asked.params
    assert params["response_type"] == "code"
    assert params["redirect_uri"] == world.url + "/sso/callback"
    assert params["code_challenge_method"] == "S256" and params["code_challenge"]
    assert params["state"] and params["nonce"]
    assert set(params["scope"].split()) >= {"openid", "email"}
    provider_sign_in(page, "ada-sso")
    page.wait_for_url(world.url + "/portal/")
    assert page.get_by_text("Ada Lovelace").first.is_visible()
    assert signed_in(world, page)
    store = open_store(world.store_url)
    try:
        with store.transaction():
            trail = [row for row in store.audit_log(50) if row[2] == "portal.sign_in"]
    finally:
        store.close()
    assert any("single sign-on via " + provider.issuer in row[4] for row in trail), trail


def test_an_email_from_the_userinfo_endpoint_signs_in(
        page: Any, sso: tuple[WebWorld, OidcProvider]) -> None:
    # This account's ID token carries only its subject: the email comes from userinfo.
    world, provider = sso
    start_sso(page, world, provider)
    provider_sign_in(page, "root-userinfo")
    page.wait_for_url(world.url + "/admin/")
    assert signed_in(world, page)


def test_an_unknown_email_is_refused(page: Any, sso: tuple[WebWorld, OidcProvider]) -> None:
    world, provider = sso
    page.set_viewport_size(PHONE)
    start_sso(page, world, provider)
    provider_sign_in(page, "stranger")
    page.wait_for_url(re.compile(re.escape(world.url) + r"/sso/callback.*"))
    shot(page, "unknown-email-phone")
    assert page.evaluate("document.documentElement.scrollWidth <= "
                         "document.documentElement.clientWidth")
    page.get_by_role("link", name="Back to sign-in").focus()
    alert = page.get_by_role("alert").inner_text()
    assert "no account for stranger@example.org" in alert
    assert "ask your administrator" in alert.lower()
    assert not signed_in(world, page)


def test_an_unverified_email_is_refused(page: Any, sso: tuple[WebWorld, OidcProvider]) -> None:
    world, provider = sso
    start_sso(page, world, provider)
    provider_sign_in(page, "unverified")
    page.wait_for_url(re.compile(re.escape(world.url) + r"/sso/callback.*"))
    assert "not verified" in page.get_by_role("alert").inner_text()
    assert not signed_in(world, page)


def test_cancelling_at_the_provider_says_so(page: Any,
                                            sso: tuple[WebWorld, OidcProvider]) -> None:
    world, provider = sso
    start_sso(page, world, provider)
    page.get_by_role("link", name="[ Cancel ]").click()
    page.wait_for_url(re.compile(re.escape(world.url) + r"/sso/callback.*"))
    assert "did not sign you in (access_denied)" in page.get_by_role("alert").inner_text()
    assert not signed_in(world, page)


def test_a_tampered_state_is_refused(page: Any, sso: tuple[WebWorld, OidcProvider]) -> None:
    world, provider = sso
    asked = start_sso(page, world, provider)
    # A sign-in is under way in this browser, but the answer names another state.
    assert asked.params["state"] != "forged-state"
    page.goto(world.url + "/sso/callback?code=any-code&state=forged-state")
    assert "did not start here" in page.get_by_role("alert").inner_text()
    assert not signed_in(world, page)


def test_an_answer_meant_for_another_browser_is_refused(
        browser: Any, page: Any, sso: tuple[WebWorld, OidcProvider]) -> None:
    # Someone signs in at the provider and pushes the provider's genuine answer (code and state)
    # into another person's browser, to sign them in as themselves: that browser never started
    # a sign-in with that state, so it is refused.
    world, provider = sso
    answers: list[str] = []
    page.on("request", lambda r: answers.append(r.url) if "/sso/callback" in r.url else None)
    start_sso(page, world, provider)
    provider_sign_in(page, "ada-sso")
    page.wait_for_url(world.url + "/portal/")
    assert len(answers) == 1
    other = browser.new_context()
    try:
        victim = other.new_page()
        victim.goto(answers[0])
        assert "did not start here" in victim.get_by_role("alert").inner_text()
        assert not signed_in(world, victim)
    finally:
        other.close()
    # The same answer a second time in the browser that started it is refused too (used).
    page.goto(answers[0])
    assert "did not start here" in page.get_by_role("alert").inner_text()


def test_abandoned_sign_ins_do_not_pile_up_in_the_cookie(
        page: Any, sso: tuple[WebWorld, OidcProvider]) -> None:
    # A person who starts again and again: only the last sign-in is kept (Authlib's Starlette
    # integration replaces the state it keeps in the cookie), so the cookie stays far below the
    # 4 KB a browser keeps (past it, the browser would drop the whole session).
    world, _provider = sso
    states = []
    for _ in range(8):
        r = page.request.get(world.url + "/sso/login", max_redirects=0)
        assert r.status == 302
        states.append(httpx.URL(r.headers["location"]).params["state"])
    assert len(set(states)) == 8
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "mfd_session"]
    assert len(cookie["value"]) < 1500
    # An earlier one is no longer this browser's.
    page.goto(f"{world.url}/sso/callback?code=x&state={states[0]}")
    assert "did not start here" in page.get_by_role("alert").inner_text()


def test_a_provider_that_does_not_answer_leaves_password_sign_in(tmp_path: Path) -> None:
    gone = OidcSettings(issuer=f"http://127.0.0.1:{free_port()}", client_id=CLIENT_ID,
                        client_secret=CLIENT_SECRET)
    with start_web(WebSettings(store_url=f"sqlite:///{tmp_path / 'cloud.db'}", oidc=gone)
                   ) as server:
        r = httpx.get(server.url + "/sso/login")
    assert r.status_code == 502
    assert "did not answer" in r.text and "email and password" in r.text


def test_password_sign_in_stays(page: Any, sso: tuple[WebWorld, OidcProvider]) -> None:
    world, _provider = sso
    sign_in(page, world, world.user_email)
    page.wait_for_url(world.url + "/portal/")
    assert signed_in(world, page)


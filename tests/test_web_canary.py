"""The browser canary and the ground every page stands on: Chromium starts (or this fails
loudly), the sign-in page signs a person in and out, a wrong password says so without saying
which part was wrong, a form without our CSRF token is refused, guessing from one address is
slowed, and every page carries the headers that keep it out of frames and caches."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web_helpers import PASSWORD, WebWorld, browser, make_world, page, sign_in

__all__ = ["browser", "page"]  # fixtures, imported to be found


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebWorld]:
    path: Path = tmp_path_factory.mktemp("web") / "cloud.db"
    w = make_world(f"sqlite:///{path}")
    try:
        yield w
    finally:
        w.server.close()


def test_chromium_starts_and_renders_a_page(browser: Any) -> None:
    # The canary: if this fails, every browser test below is meaningless.
    context = browser.new_context()
    try:
        pg = context.new_page()
        pg.set_content("<h1>canary</h1>")
        assert pg.inner_text("h1") == "canary"
    finally:
        context.close()


def test_sign_in_and_out_in_the_browser(page: Any, world: WebWorld) -> None:
    sign_in(page, world, world.user_email)
    assert page.url.startswith(world.url + "/portal/")
    assert page.get_by_text("Ada Lovelace").is_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "mfd_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    with httpx.Client(base_url=world.url, cookies={"mfd_session": cookie["value"]}) as http:
        assert http.get("/portal/").status_code == 200
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/portal/signin$"))
    assert page.get_by_role("status").inner_text() == "You are signed out."
    # A copy of the old cookie (stolen, or kept by a shared computer) opens nothing now: the
    # portal session it names ended in the store.
    with httpx.Client(base_url=world.url, cookies={"mfd_session": cookie["value"]}) as http:
        r = http.get("/portal/")
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/signin")


def test_wrong_password_and_unknown_email_read_the_same(page: Any, world: WebWorld) -> None:
    sign_in(page, world, world.user_email, "wrong password")
    wrong = page.get_by_role("alert").inner_text()
    sign_in(page, world, "nobody@example.org", PASSWORD)
    assert page.get_by_role("alert").inner_text() == wrong
    assert "do not match" in wrong
    assert page.get_by_label("Email").input_value() == "nobody@example.org"


def test_a_form_without_our_token_is_refused(world: WebWorld) -> None:
    with httpx.Client(base_url=world.url) as http:
        r = http.post("/portal/signin", data={"email": world.user_email, "password": PASSWORD})
        assert r.status_code == 403
        assert "out of date" in r.text
        # Refused before the password was looked at: no session was started.
        assert http.get("/portal/").status_code == 303


def test_pages_carry_security_headers(world: WebWorld) -> None:
    with httpx.Client(base_url=world.url) as http:
        r = http.get("/portal/signin")
    assert r.status_code == 200
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"


def test_an_open_redirect_after_sign_in_is_refused(page: Any, world: WebWorld) -> None:
    page.goto(world.url + "/portal/signin?next=//evil.example/x")
    page.get_by_label("Email").fill(world.user_email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert page.url.startswith(world.url)


def test_guessing_from_one_address_is_slowed(tmp_path: Path) -> None:
    w = make_world(f"sqlite:///{tmp_path / 'cloud.db'}")
    try:
        with httpx.Client(base_url=w.url) as http:
            http.get("/portal/signin")
            token = http.cookies.get("mfd_session")
            assert token
            page_html = http.get("/portal/signin").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', page_html)
            assert csrf
            statuses = []
            for i in range(14):
                r = http.post("/portal/signin", data={"csrf": csrf.group(1),
                                                      "email": f"u{i}@example.org",
                                                      "password": "guess"})
                statuses.append(r.status_code)
        assert statuses[:10] == [401] * 10
        assert 429 in statuses[10:]
    finally:
        w.server.close()

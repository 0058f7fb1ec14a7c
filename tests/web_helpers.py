"""Shared pieces of the web tests: a real uvicorn server on a fresh store, and Debian's Chromium
driven by Playwright.

The browser is started once per test module and every test gets a fresh context (cookies,
storage) of its own. When Chromium cannot start, every browser test
fails with the reason: a portal that was never opened in a browser is not a tested portal.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cloud import admin, directory
from cloud.storage.factory import open_store
from cloud.web.server import WebServer, start_web
from cloud.web.settings import WebSettings

#: Chromium flags for a machine with no network beyond loopback and no GPU, running as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]

PASSWORD = "correct horse battery"  # a test account's password
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def chromium_path() -> str:
    path = os.environ.get("MFD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise RuntimeError("Chromium is not installed (Debian package chromium; set "
                           "MFD_CHROMIUM to another build): the web tests need a real browser")
    return path


@dataclass
class WebWorld:
    """A served cloud with one org, a user and an administrator, both with passwords."""

    server: WebServer
    store_url: str
    org_id: str
    user_email: str
    admin_email: str

    @property
    def url(self) -> str:
        return self.server.url


def make_world(store_url: str, **settings: Any) -> WebWorld:
    store = open_store(store_url)
    try:
        org = admin.create_org(store, "Acme")
        admin.add_user(store, org, "ada@example.org", "Ada Lovelace")
        admin.add_user(store, org, "root@example.org", "Grace Admin")
        directory.set_password(store, "ada@example.org", PASSWORD)
        directory.set_password(store, "root@example.org", PASSWORD)
        admin.set_role(store, "root@example.org", "admin")
    finally:
        store.close()
    server = start_web(WebSettings(store_url=store_url, **settings))
    return WebWorld(server, store_url, org, "ada@example.org", "root@example.org")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module (a launch costs about a second). Module scope, not
    session: Playwright's sync API keeps an asyncio loop running on this thread while it is
    started, and a later test's own ``asyncio.run`` (the SMP tools) would then fail."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(10_000)
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


def sign_in(page: Any, world: WebWorld, email: str, password: str = PASSWORD) -> None:
    page.goto(world.url + "/portal/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()

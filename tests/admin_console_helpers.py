"""Shared pieces of the admin console's tests: a served cloud with a second org (its user,
device and job are what an administrator of the first must never reach), an httpx session
signed in as someone, and screenshots for the docs."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cloud import admin, devices, directory
from cloud.linking import Linking
from cloud.storage.factory import open_store
from tests.web_helpers import PASSWORD, WebWorld, make_world

SHOTS = Path(__file__).resolve().parent.parent / "docs" / "img" / "web"


@dataclass
class Console:
    world: WebWorld
    #: Org A's device, and org B's user, device and job.
    device: str
    other_org: str
    other_user: str
    other_device: str
    other_job: str
    other_technician: str
    #: Client installs: one of org A (anonymous), one of org B.
    client: str
    other_client: str

    @property
    def url(self) -> str:
        return self.world.url


def make_console(store_url: str, **settings: Any) -> Console:
    world = make_world(store_url, **settings)
    store = open_store(store_url)
    try:
        now = time.time()
        devices.add_device(store, world.org_id, "copier-hall", "Hall", now)
        other = admin.create_org(store, "Globex")
        other_user = admin.add_user(store, other, "bea@globex.test", "Bea")
        devices.add_device(store, other, "copier-globex", "Globex lobby", now)
        other_job = directory.submit_job(store, "bea@globex.test", "secret-plan.pdf", b"%PDF g")
        other_tech = admin.add_technician(store, other, "Globex Tech", code=True).technician.id
        linking = Linking(store, base_url=world.url)
        client = linking.register(linking.bulk_installer(world.org_id).token,
                                  machine="hall-pc", os_user="ada").install.id
        other_client = linking.register(linking.bulk_installer(other).token,
                                        machine="globex-pc", os_user="bea").install.id
    finally:
        store.close()
    return Console(world, "copier-hall", other, other_user, "copier-globex", other_job,
                   other_tech, client, other_client)


@contextmanager
def signed_in(url: str, email: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
    """An httpx client with a signed-in session (the sign-in form, CSRF token included)."""
    with httpx.Client(base_url=url, follow_redirects=False) as http:
        page = http.get("/portal/signin")
        r = http.post("/portal/signin", data={"csrf": csrf_of(page.text), "email": email,
                                              "password": password})
        assert r.status_code == 303, r.text
        yield http


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def shot(page: Any, name: str) -> None:
    """A screenshot for docs/admin-console.md, only when MFD_SCREENSHOTS=1."""
    if os.environ.get("MFD_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

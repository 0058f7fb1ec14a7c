"""The User Portal's linking pages in Chromium against a real uvicorn and store: a User Portal
invitation accepted (with and without JavaScript), the org's share link, the Classic
Invitation's personalised installer, Set up my devices (the client package, a linking code with
its QR code, unlinking one's own device and not another's), and Authenticate-on-Print from the
first print of a bulk-deployed client to the held job in My jobs."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from client.print_client import split_link
from cloud import admin, directory
from cloud.linking import Linking
from cloud.storage.sql import SqlStore
from tests.portal_helpers import (
    BOB,
    PDF,
    csrf,
    low_contrast,
    no_sideways_scroll,
    portal_world,
    shot,
    store_of,
)
from tests.web_helpers import PASSWORD, PHONE, WebWorld, browser, page, sign_in

__all__ = ["browser", "page"]  # fixtures, imported to be found

NEW_PASSWORD = "a brand new password"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebWorld]:
    w = portal_world(tmp_path_factory.mktemp("portal-linking") / "cloud.db")
    try:
        yield w
    finally:
        w.server.close()


@pytest.fixture(scope="module")
def store(world: WebWorld) -> Iterator[SqlStore]:
    s = store_of(world)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def linking(store: SqlStore, world: WebWorld) -> Linking:
    """The administrator's side (invitations, installers), with links to this server; the
    server's own links (the client package) point at it too."""
    linking = Linking(store, base_url=world.url)
    linking.set_public_url(world.url)
    return linking


def _person(store: SqlStore, org: str, email: str, name: str) -> None:
    admin.add_user(store, org, email, name)


def _unzip(download: Any) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(Path(download.path()).read_bytes())) as z:
        return {name.split("/", 1)[1]: z.read(name) for name in z.namelist()}


def test_a_user_portal_invitation_sets_a_password_and_signs_in(
        page: Any, world: WebWorld, store: SqlStore, linking: Linking) -> None:
    _person(store, world.org_id, "dana@example.org", "Dana Scully")
    invitation = linking.invite_portal("dana@example.org")
    page.goto(invitation.url)
    # The script took the token from the fragment: out of the address bar, in the form.
    expect(page.get_by_text("Your invitation link is filled in.")).to_be_visible()
    assert "#" not in page.url
    expect(page.get_by_label("Invitation link")).to_be_hidden()
    shot(page, "welcome")
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_label("Repeat the password").fill(NEW_PASSWORD + "x")
    page.get_by_role("button", name="Set password and sign in").click()
    expect(page.get_by_role("alert")).to_have_text(
        "The two passwords are not the same; type them again.")
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_label("Repeat the password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set password and sign in").click()
    expect(page).to_have_url(world.url + "/portal/devices")
    expect(page.get_by_role("status").first).to_contain_text("Welcome, Dana Scully")
    # Once only: the same link again is refused.
    page.context.clear_cookies()
    page.goto(invitation.url)
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_label("Repeat the password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set password and sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid or was used already")


def test_without_javascript_the_link_is_pasted(browser: Any, world: WebWorld, store: SqlStore,
                                              linking: Linking) -> None:
    _person(store, world.org_id, "erin@example.org", "Erin Noscript")
    invitation = linking.invite_portal("erin@example.org")
    context = browser.new_context(java_script_enabled=False, viewport=PHONE)
    try:
        pg = context.new_page()
        pg.goto(invitation.url)
        pg.get_by_label("Invitation link").fill(invitation.url)
        pg.get_by_label("New password").fill(NEW_PASSWORD)
        pg.get_by_label("Repeat the password").fill(NEW_PASSWORD)
        assert no_sideways_scroll(pg)
        pg.get_by_role("button", name="Set password and sign in").click()
        expect(pg).to_have_url(world.url + "/portal/devices")
        expect(pg.get_by_role("heading", name="Set up my devices")).to_be_visible()
        # Authenticate-on-Print without JavaScript: the sign-in link is pasted.
        client = linking.register(linking.bulk_installer(world.org_id).token,
                                  machine="lab-9", os_user="erin")
        first = linking.submit(client.token, "Lab notes.pdf", PDF)
        assert first.sign_in_url
        pg.goto(first.sign_in_url)
        pg.get_by_label("Sign-in link").fill(first.sign_in_url)
        pg.get_by_role("button", name="Continue").click()
        expect(pg.locator("#aop-machine")).to_have_text("lab-9")
        pg.get_by_role("button", name="Link this computer").click()
        expect(pg.get_by_role("heading", name="lab-9 is linked")).to_be_visible()
        linked = linking.client_state(client.token).user
        assert linked is not None and linked.email == "erin@example.org"
    finally:
        context.close()


def test_the_share_link_signs_in_only_its_orgs_people(page: Any, world: WebWorld,
                                                      store: SqlStore, linking: Linking) -> None:
    other = admin.create_org(store, "Globex")
    _person(store, other, "hank@globex.example", "Hank Scorpio")
    directory.set_password(store, "hank@globex.example", PASSWORD)
    link = linking.share_link(world.org_id)
    assert link.startswith(world.url + "/portal/signin?org=")
    for email, lands in (("hank@globex.example", None), (world.user_email, "/portal/")):
        page.context.clear_cookies()
        page.goto(link)
        if lands:
            shot(page, "share-link")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        if lands is None:
            expect(page.get_by_role("alert")).to_contain_text("do not match an account")
        else:
            expect(page).to_have_url(world.url + lands)
            expect(page.get_by_role("heading", name="My jobs")).to_be_visible()
    rotated = linking.share_link(world.org_id, rotate=True)
    assert rotated != link
    page.context.clear_cookies()
    page.goto(link)
    page.get_by_label("Email").fill(world.user_email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("ask your administrator for the current")


def test_the_classic_invitation_link_downloads_the_personal_installer(
        page: Any, world: WebWorld, linking: Linking) -> None:
    invitation = linking.invite_classic(BOB)
    with page.expect_download() as first:  # opening the link starts the download
        page.goto(invitation.url, wait_until="commit")
    expect(page.get_by_text("Your personal link is filled in")).to_be_visible()
    expect(page.get_by_text("Windows 10 and 11")).to_be_visible()
    shot(page, "install")
    with page.expect_download() as got:  # and the button again, on another computer
        page.get_by_role("button", name="Download my installer").click()
    assert got.value.suggested_filename == "mfdkit-client-bob.zip"
    assert _unzip(first.value) == _unzip(got.value)
    files = _unzip(got.value)
    assert set(files) == {"README.txt", "installer.json", "link.sh", "link.cmd"}
    config = json.loads(files["installer.json"])
    assert config["user"] == BOB
    assert "Bob Babbage <bob@example.org>" in files["README.txt"].decode()
    # What the reference client does with the link inside: it registers, linked to Bob.
    _base, token = split_link(config["installer_link"], "installer")
    assert linking.register(token, machine="bob-pc", os_user="bob").user.email == BOB

    page.goto("about:blank")  # else only the fragment changes and the page is not loaded
    page.goto(world.url + "/install#installer=mfi_forged")
    expect(page.get_by_role("alert")).to_contain_text("This installer link is not valid")


def _run_package(download: Any, home: Path, *args: str) -> str:
    """Unpack the client package and run its link.sh as the person would: the reference
    client (mfd) links over the server's JSON API. Returns the client token it kept."""
    with zipfile.ZipFile(download.path()) as z:
        z.extractall(home / "download")
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run(["sh", str(home / "download" / "mfdkit-client" / "link.sh"), *args],
                         env=env, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    state = json.loads((home / "config" / "mfdkit" / "client" / "client.json").read_text())
    return str(state["token"])


def test_set_up_my_devices(page: Any, world: WebWorld, store: SqlStore, linking: Linking,
                           tmp_path: Path) -> None:
    sign_in(page, world, world.user_email)
    page.goto(world.url + "/portal/devices")
    expect(page.get_by_text("No device is linked to you yet.")).to_be_visible()
    with page.expect_download() as got:
        page.get_by_role("button", name="Download my client package").click()
    token = _run_package(got.value, tmp_path, "--machine", "ada-laptop", "--os-user", "ada")
    linked = linking.client_state(token).user
    assert linked is not None and linked.email == world.user_email
    page.reload()

    page.get_by_role("button", name="Make a linking code").click()
    code = page.locator("#linking-code").inner_text()
    assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}", code)
    qr = page.get_by_role("img", name=f"QR code for linking code {code}")
    assert str(qr.get_attribute("src")).startswith("data:image/svg+xml")
    expect(page.get_by_text("ada-laptop")).to_be_visible()
    assert low_contrast(page) == []
    shot(page, "devices")
    phone = linking.mobile_link_code(code, app_id="ada-phone")
    assert phone.user is not None and phone.user.email == world.user_email
    page.goto(world.url + "/portal/devices")  # the code is not there: it was shown once
    expect(page.locator("#linking-code")).to_have_count(0)

    # Another person's device: refused like a missing one, and it keeps printing.
    bobs = linking.register(linking.setup_devices(linking.sign_in(BOB, PASSWORD).token).token,
                            machine="bob-desk", os_user="bob")
    r = page.request.post(world.url + "/portal/devices/unlink",
                          form={"csrf": csrf(page), "install_id": bobs.install.id})
    assert "That device is not among your linked devices." in r.text()
    assert linking.client_state(bobs.token).user is not None

    page.get_by_role("button", name="Unlink ada-laptop").click()
    expect(page.get_by_role("status").first).to_have_text(
        "ada-laptop is unlinked: it no longer prints as you.")
    expect(page.get_by_role("button", name="Unlink ada-laptop")).to_have_count(0)
    with pytest.raises(Exception, match="not registered"):
        linking.client_state(token)


def test_authenticate_on_print_from_first_job_to_my_jobs(
        page: Any, world: WebWorld, store: SqlStore, linking: Linking) -> None:
    linking.add_queue(world.org_id, "Colour A3")
    with store.transaction():
        settings = store.org_settings(world.org_id)
        store.set_org_settings(world.org_id, replace(settings, aop_pending="join"))
    client = linking.register(linking.bulk_installer(world.org_id).token, machine="kiosk-3",
                              os_user="grace")
    first = linking.submit(client.token, "Kiosk memo.pdf", PDF)
    assert first.state == "PENDING_AUTH" and first.sign_in_url
    # The client opens its sign-in link; nobody is signed in in this browser yet.
    page.goto(first.sign_in_url)
    assert "#" not in page.url
    shot(page, "aop-sign-in")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Email").fill(world.user_email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # Back on the page, the link kept in the tab is used: what is about to be linked.
    expect(page.get_by_role("heading", name="Link this computer?")).to_be_visible()
    expect(page.locator("#aop-machine")).to_have_text("kiosk-3")
    expect(page.get_by_text("Kiosk memo.pdf")).to_be_visible()
    shot(page, "aop-confirm")
    page.get_by_role("button", name="Link this computer").click()
    expect(page.get_by_role("heading", name="kiosk-3 is linked")).to_be_visible()
    expect(page.locator("ul.queues li")).to_have_count(2)
    expect(page.locator("ul.queues")).to_contain_text("Colour A3")
    shot(page, "aop-linked")
    page.get_by_role("link", name="See my jobs").click()
    expect(page.get_by_role("checkbox", name="Kiosk memo.pdf")).to_be_visible()
    assert linking.client_state(client.token).user is not None

    # The same link again: used.
    page.goto(first.sign_in_url)
    expect(page.get_by_role("alert")).to_contain_text("not valid or was used already")

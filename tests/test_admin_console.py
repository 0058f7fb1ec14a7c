"""The admin console in Chromium against a real served cloud (issue 12): each flow once, as an
administrator does it: add a user, import a file with bad rows (every error shown, nothing
imported), invite, reset an access code (shown once), add a device and get its code, edit its
configuration (refused by the device's schema, then accepted, then the device's answer shown),
filter jobs, change a setting and find it in the audit log; and a page at phone size. Mail goes
through a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from cloud import admin, devices, directory
from cloud.storage.factory import open_store
from protocol import messages as m
from tests.admin_console_helpers import Console, make_console, shot
from tests.mail_helpers import SmtpServer, smtp
from tests.web_helpers import PHONE, browser, page, sign_in

__all__ = ["browser", "page", "smtp"]  # fixtures, imported to be found


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer) -> Iterator[Console]:
    path: Path = tmp_path_factory.mktemp("admin") / "cloud.db"
    c = make_console(f"sqlite:///{path}", smtp=smtp.settings())
    try:
        yield c
    finally:
        c.world.server.close()


def _admin(page: Any, console: Console) -> None:
    sign_in(page, console.world, console.world.admin_email)
    expect(page).to_have_url(re.compile(r".*/admin/$"))


def test_add_a_user_then_import_a_file_with_bad_rows(page: Any, console: Console) -> None:
    _admin(page, console)
    shot(page, "admin-overview")
    page.get_by_role("link", name="Users").first.click()
    page.get_by_label("Email").fill("newbie@example.org")
    page.get_by_label("Display name").fill("New Bie")
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("status")).to_have_text("newbie@example.org added.")
    expect(page.get_by_role("link", name="newbie@example.org")).to_be_visible()
    # Two bad rows among good ones: both reasons at once, and nobody imported.
    page.get_by_label("or paste the rows").fill(
        "ok1@example.org,Okay One\nnot-an-email,Bad Row\nok2@example.org,\n"
        "ok3@example.org,Three,,1234\n")
    page.get_by_role("button", name="Import").click()
    errors = page.locator("#import-errors")
    expect(errors).to_contain_text("nothing imported")
    expect(errors.locator("li")).to_have_count(3)
    expect(errors).to_contain_text("line 2: 'not-an-email' is not an email address")
    expect(errors).to_contain_text("line 3: the display name is missing")
    expect(errors).to_contain_text("line 4: ")
    shot(page, "admin-users-import-errors")
    assert page.get_by_role("link", name="ok1@example.org").count() == 0
    # What only the store knows (a taken email) is found once the rows themselves are good.
    page.get_by_label("or paste the rows").fill("ok1@example.org,Okay One\n"
                                                 "newbie@example.org,Again\n")
    page.get_by_role("button", name="Import").click()
    expect(errors.locator("li")).to_have_text(["line 2: user newbie@example.org exists already"])
    page.get_by_label("or paste the rows").fill("ok1@example.org,Okay One\n")
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("status")).to_contain_text("Imported 1 user(s)")
    expect(page.get_by_role("link", name="ok1@example.org")).to_be_visible()


def test_invite_and_reset_an_access_code_shown_once(page: Any, console: Console,
                                                    smtp: SmtpServer) -> None:
    _admin(page, console)
    page.goto(console.url + "/admin/users")
    page.get_by_role("link", name=console.world.user_email).click()
    shot(page, "admin-user")
    before = smtp.sink.count()
    page.get_by_role("button", name="Send a User Portal invitation").click()
    expect(page.get_by_role("status")).to_have_text(
        f"The User Portal invitation was mailed to {console.world.user_email}.")
    shot(page, "admin-invitation-sent")
    mail = smtp.sink.wait_for(before + 1)
    assert mail.rcpt_tos == [console.world.user_email]
    assert any("/portal/welcome#invitation=" in link for link in mail.links())
    assert "invitation=" not in page.content()  # the link went to Ada only
    page.get_by_role("button", name="Reset to a new random code").click()
    code = page.locator("pre.secret").inner_text().strip()
    assert re.fullmatch(r"\d{8}", code)
    page.reload()  # a reload posts the form again: a new code, never the old one shown twice
    assert page.locator("pre.secret").inner_text().strip() != code
    with_store = open_store(console.world.store_url)
    try:
        actions = [row[2] for row in admin.org_audit(with_store, console.world.org_id,
                                                     subject=_ada(console, with_store))]
    finally:
        with_store.close()
    assert "invite.portal" in actions and actions.count("code.reset") == 2


def _ada(console: Console, store: Any) -> str:
    return f"user:{admin.require_user(store, console.world.user_email).id}"


def test_add_a_device_and_edit_its_configuration(page: Any, console: Console) -> None:
    _admin(page, console)
    page.goto(console.url + "/admin/devices")
    page.get_by_label("Device id").fill("copier-annex")
    page.get_by_label("Name (where it stands)").fill("Annex")
    page.get_by_role("button", name="Add device").click()
    code = page.locator("pre.secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}", code)
    shot(page, "admin-device-code")
    page.get_by_role("link", name="Done").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Annex")
    editor = page.get_by_label(re.compile(r"^Configuration \(version"))
    editor.fill('[policy]\nidle_timeout = "soon"\n')
    page.get_by_role("button", name="Check and push").click()
    expect(page.get_by_role("alert")).to_contain_text("policy.idle_timeout")
    expect(editor).to_have_value('[policy]\nidle_timeout = "soon"\n')  # kept to be fixed
    shot(page, "admin-device-config-error")
    editor.fill("[policy]\nidle_timeout = 90\ncard_pin = true\n")
    page.get_by_role("button", name="Check and push").click()
    expect(page.get_by_role("status")).to_contain_text("version 1 stored")
    expect(page.locator("#config-state")).to_contain_text("version 1 stored, to be pushed")
    # The device refuses it (as its worker records the acknowledgement); the page says why.
    store = open_store(console.world.store_url)
    try:
        devices.mark_pushed(store, "copier-annex", 1, time.time())
        devices.record_ack(store, "copier-annex", m.ConfigAck(
            version=1, applied=False, reason="card_pin needs a keypad"), time.time())
    finally:
        store.close()
    page.reload()
    expect(page.locator("#config-state")).to_have_text(
        "version 1 refused by the device: card_pin needs a keypad")
    shot(page, "admin-device")
    page.goto(console.url + "/admin/devices")
    expect(page.get_by_role("row", name=re.compile("copier-annex"))).to_contain_text("refused")
    shot(page, "admin-devices")


def test_jobs_filtered_by_user_and_state(page: Any, console: Console) -> None:
    store = open_store(console.world.store_url)
    try:
        directory.submit_job(store, console.world.user_email, "ada-report.pdf", b"%PDF a")
        directory.submit_job(store, console.world.admin_email, "root-notes.pdf", b"%PDF r")
    finally:
        store.close()
    _admin(page, console)
    page.goto(console.url + "/admin/jobs")
    expect(page.get_by_role("cell", name="root-notes.pdf")).to_be_visible()
    page.get_by_label("User").select_option(label=console.world.user_email)
    page.get_by_label("State").select_option("HELD")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("cell", name="ada-report.pdf")).to_be_visible()
    expect(page.get_by_role("cell", name="root-notes.pdf")).to_have_count(0)
    expect(page.get_by_role("cell", name="secret-plan.pdf")).to_have_count(0)  # other org's
    shot(page, "admin-jobs")


def test_change_a_setting_and_find_it_in_the_audit_log(page: Any, console: Console) -> None:
    _admin(page, console)
    page.goto(console.url + "/admin/settings")
    page.get_by_label("Hold time of a job, in hours").fill("12")
    page.get_by_label("Authenticate-on-Print").select_option("join")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved.")
    expect(page.get_by_label("Hold time of a job, in hours")).to_have_value("12")
    shot(page, "admin-settings")
    page.goto(console.url + "/admin/audit")
    page.get_by_label("Action (or family").fill("org")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("tbody tr")
    expect(rows.first).to_contain_text("org.settings")
    expect(rows.first).to_contain_text("hold_hours=12.0, aop_pending=join")
    # Which administrator did it (the command line's entries say "admin").
    store = open_store(console.world.store_url)
    try:
        root = admin.require_user(store, console.world.admin_email)
    finally:
        store.close()
    expect(rows.first).to_contain_text(f"admin:{root.id}")
    page.get_by_label("Actor (admin").fill("admin")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr").first).to_contain_text(f"admin:{root.id}")
    assert all("org.add" in r or "org.settings" in r for r in rows.all_inner_texts())
    shot(page, "admin-audit")


def test_the_console_at_phone_size(browser: Any, console: Console) -> None:
    context = browser.new_context(viewport=PHONE)
    try:
        pg = context.new_page()
        sign_in(pg, console.world, console.world.admin_email)
        pg.goto(console.url + "/admin/users")
        expect(pg.get_by_role("heading", name="Users", level=1)).to_be_visible()
        # Nothing wider than the screen but the tables, which scroll inside their own box.
        assert pg.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        box = pg.get_by_role("button", name="Add user").bounding_box()
        assert box is not None and box["height"] >= 44
        shot(pg, "admin-users-phone")
    finally:
        context.close()


def test_issue_a_technician_code_and_see_the_print_clients(page: Any,
                                                           console: Console) -> None:
    _admin(page, console)
    page.get_by_role("link", name="Technicians").click()
    page.get_by_label("Name (for the audit)").fill("Tess Tech")
    page.get_by_label("a generated code (shown once)").check()
    page.get_by_role("button", name="Add technician").click()
    assert re.fullmatch(r"\d{10}", page.locator("pre.secret").inner_text().strip())
    page.get_by_role("link", name="Done").click()
    expect(page.get_by_role("button", name="Revoke the code of Tess Tech")).to_be_visible()
    shot(page, "admin-technicians")
    page.get_by_role("link", name="Print clients").click()
    expect(page.get_by_role("cell", name="hall-pc", exact=True)).to_be_visible()
    expect(page.get_by_text("globex-pc")).to_have_count(0)  # another org's
    shot(page, "admin-clients")

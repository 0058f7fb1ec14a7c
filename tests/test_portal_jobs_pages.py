"""My jobs, the copier's QR page and Print from the browser, in Chromium against a real uvicorn
and store: details, changes and delete, release to a chosen copier with the keyboard only, the
phone at the copier, the live list, uploads with their limits, and another person's job ids
refused with nothing changed. At 390x844 and 1280x800."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from cloud import admin
from cloud.storage.sql import SqlStore
from tests.portal_helpers import (
    BOB,
    PDF,
    copier,
    csrf,
    hold,
    job,
    low_contrast,
    no_sideways_scroll,
    portal_world,
    shot,
    store_of,
    tab_to,
)
from tests.web_helpers import PHONE, WebWorld, browser, page, sign_in

__all__ = ["browser", "page"]  # fixtures, imported to be found

MAX_UPLOAD = 100 * 1024


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebWorld]:
    w = portal_world(tmp_path_factory.mktemp("portal") / "cloud.db", max_upload=MAX_UPLOAD)
    try:
        yield w
    finally:
        w.server.close()


@pytest.fixture(scope="module")
def store(world: WebWorld) -> Iterator[SqlStore]:
    s = store_of(world)
    copier(s, world.org_id, "dev-lobby", "Lobby copier")
    copier(s, world.org_id, "dev-second", "Second floor", online=False)
    try:
        yield s
    finally:
        s.close()


def _clear(store: SqlStore, world: WebWorld, email: str) -> None:
    """Each test starts from nobody's held jobs (the module shares one store)."""
    with store.transaction():
        owner = store.user_by_email(email)
        assert owner is not None
        for j in store.held_jobs(owner.id, 0, 500, time.time())[0]:
            store.delete_job(j.id, time.time())


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_my_jobs_shows_details_and_changes_them_on_a_phone(phone: Any, world: WebWorld,
                                                           store: SqlStore) -> None:
    _clear(store, world, world.user_email)
    report = hold(store, world.user_email, "Quarterly report.pdf", color=True, copies=2)
    hold(store, world.user_email, "Boarding pass.pdf", color=False, duplex=True)
    sign_in(phone, world, world.user_email)
    expect(phone.get_by_role("heading", name="My jobs")).to_be_visible()
    card = phone.locator(f"#job-{report}")
    expect(card).to_contain_text("Colour")
    expect(card).to_contain_text("One-sided")
    expect(card.locator("dd").nth(3)).to_have_text("2")  # copies
    assert no_sideways_scroll(phone)
    assert low_contrast(phone) == []
    shot(phone, "jobs-phone")

    card.get_by_text("Change settings").click()
    card.get_by_label("Grey (no colour)").check()
    card.get_by_label("Two-sided").check()
    card.get_by_label("Copies").fill("3")
    card.get_by_role("button", name="Save changes").click()
    expect(phone.get_by_role("status").first).to_contain_text("now grey, two-sided, 3 copies")
    changed = job(store, report)
    assert (changed.color, changed.duplex, changed.copies) == (False, True, 3)

    phone.get_by_role("button", name="Delete Quarterly report.pdf").click()
    expect(phone.get_by_role("status").first).to_have_text("The job is deleted.")
    assert job(store, report).state == "DELETED"
    expect(phone.locator(f"#job-{report}")).to_have_count(0)
    assert no_sideways_scroll(phone)


def test_release_to_a_chosen_copier_with_the_keyboard_only(page: Any, world: WebWorld,
                                                           store: SqlStore) -> None:
    _clear(store, world, world.user_email)
    first = hold(store, world.user_email, "Slides.pdf")
    second = hold(store, world.user_email, "Notes.pdf")
    sign_in(page, world, world.user_email)
    assert low_contrast(page) == []
    shot(page, "jobs-desktop")
    tab_to(page, f"#pick-{second}")
    page.keyboard.press("Space")
    tab_to(page, "#device")
    assert page.locator("#device").input_value() == "dev-lobby"
    page.keyboard.press("ArrowDown")  # the next copier in the list: Second floor
    assert page.locator("#device").input_value() == "dev-second"
    tab_to(page, "#release button[type=submit]")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").first).to_have_text(
        "Sent 1 job to Second floor: it prints when the copier is back online.")
    released, kept = job(store, second), job(store, first)
    assert (released.state, released.device_id) == ("RELEASING", "dev-second")
    assert kept.state == "HELD"
    with store.transaction():  # the outbox row the workers push once the copier is back
        orders = store.query_all("SELECT device_id FROM release_orders WHERE release_id=?",
                                 released.release_id)
    assert [tuple(o) for o in orders] == [("dev-second",)]


def test_the_copiers_qr_code_opens_sign_in_then_releases_there(phone: Any, world: WebWorld,
                                                               store: SqlStore) -> None:
    _clear(store, world, BOB)
    mine = hold(store, BOB, "Poster.pdf")
    phone.goto(world.url + "/copier/dev-lobby")
    expect(phone).to_have_url(re.compile(r"/portal/signin\?next=/copier/dev-lobby$"))
    phone.get_by_label("Email").fill(BOB)
    phone.get_by_label("Password").fill("correct horse battery")
    phone.get_by_role("button", name="Sign in").click()
    expect(phone.get_by_role("heading", name="Print at Lobby copier")).to_be_visible()
    expect(phone.get_by_role("checkbox", name="Poster.pdf")).to_be_checked()
    assert no_sideways_scroll(phone)
    shot(phone, "copier-phone")
    phone.get_by_role("button", name="Print the ticked jobs here").tap()
    expect(phone.get_by_role("status").first).to_contain_text("Sent 1 job to Lobby copier")
    assert (job(store, mine).state, job(store, mine).device_id) == ("RELEASING", "dev-lobby")


def test_another_orgs_copier_reads_like_none(page: Any, world: WebWorld,
                                             store: SqlStore) -> None:
    other = admin.create_org(store, "Globex")
    copier(store, other, "dev-globex", "Globex copier")
    sign_in(page, world, world.user_email)
    response = page.goto(world.url + "/copier/dev-globex")
    assert response.status == 404
    expect(page.get_by_role("alert")).to_contain_text("no such copier in your organisation")
    assert "Globex" not in page.content()


def test_another_persons_jobs_are_refused_and_left_alone(page: Any, world: WebWorld,
                                                         store: SqlStore) -> None:
    _clear(store, world, BOB)
    bobs = hold(store, BOB, "Bob's contract.pdf", color=True)
    sign_in(page, world, world.user_email)
    token = csrf(page)
    attempts = [("/portal/jobs/delete", {"job_id": bobs}),
                ("/portal/jobs/change", {"job_id": bobs, "copies": "9", "grayscale": "1"}),
                ("/portal/release", {"job_id": bobs, "device_id": "dev-lobby"}),
                ("/copier/dev-lobby/release", {"job_id": bobs})]
    for path, form in attempts:
        r = page.request.post(world.url + path, form={"csrf": token, **form})
        assert r.ok  # the page after the redirect, saying no
        assert "is not among your jobs" in r.text(), path
    left = job(store, bobs)
    assert (left.state, left.color, left.copies, left.release_id) == ("HELD", True, 1, None)
    assert bobs not in page.request.get(world.url + "/portal/jobs.json").text()
    with store.transaction():
        traced = [row for row in store.audit_log(200) if row[2].endswith("_refused")
                  and bobs in row[4]]
    assert len(traced) >= 2


def test_the_list_refreshes_itself(page: Any, world: WebWorld, store: SqlStore) -> None:
    _clear(store, world, world.user_email)
    sign_in(page, world, world.user_email)
    expect(page.get_by_text("No jobs are waiting for you")).to_be_visible()
    hold(store, world.user_email, "Arrived later.pdf")
    expect(page.get_by_role("checkbox", name="Arrived later.pdf")).to_be_visible(timeout=8_000)
    expect(page.get_by_role("button", name="Release selected")).to_be_visible()
    expect(page.locator("#jobs-live")).to_have_text("Your job list was updated.")


def test_print_from_the_browser_with_its_limits(page: Any, world: WebWorld,
                                                store: SqlStore) -> None:
    _clear(store, world, world.user_email)
    sign_in(page, world, world.user_email)
    page.goto(world.url + "/portal/print")
    page.get_by_label("PDF document (at most 100 KB)").wait_for()
    assert low_contrast(page) == []
    shot(page, "print-desktop")
    # Dropped on the box (the script puts it in the file field), then uploaded.
    drop = page.evaluate_handle(
        "text => { const d = new DataTransfer(); d.items.add(new File([text], 'Dropped.pdf', "
        "{type: 'application/pdf'})); return d; }", PDF.decode())
    page.dispatch_event("#drop", "drop", {"dataTransfer": drop})
    expect(page.locator("#chosen")).to_contain_text("Dropped.pdf")
    page.get_by_label("Copies").fill("2")
    page.get_by_role("button", name="Upload and hold").click()
    expect(page.get_by_role("status").first).to_contain_text("Dropped.pdf waits for you")
    expect(page.get_by_role("checkbox", name="Dropped.pdf")).to_be_visible()

    page.goto(world.url + "/portal/print")
    page.get_by_label(re.compile("PDF document")).set_input_files(
        {"name": "Renamed.pdf", "mimeType": "application/pdf", "buffer": b"PK\x03\x04zip"})
    page.get_by_role("button", name="Upload and hold").click()
    expect(page.get_by_role("alert")).to_have_text(
        "This file is not a PDF; save or export it as PDF, then upload that.")
    assert low_contrast(page) == []  # the error too
    shot(page, "print-refused")

    for size in (MAX_UPLOAD + 1000, 4 * MAX_UPLOAD):  # read and refused; refused unread
        page.goto(world.url + "/portal/print")
        page.get_by_label(re.compile("PDF document")).set_input_files(
            {"name": "Huge.pdf", "mimeType": "application/pdf",
             "buffer": PDF + b"0" * (size - len(PDF))})
        expect(page.locator("#chosen")).to_contain_text("too large")
        page.get_by_role("button", name="Upload and hold").click()
        expect(page.get_by_role("alert")).to_contain_text("larger than")
    held = [j.name for j in store.all_jobs("HELD")]
    assert "Dropped.pdf" in held and "Renamed.pdf" not in held and "Huge.pdf" not in held

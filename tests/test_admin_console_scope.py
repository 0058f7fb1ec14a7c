"""Who may use the admin console, tried on every page and form of it over HTTP (issue 12): an
administrator of one org gets "not found" for every id of another org, and nothing of that org
changes; a user gets 403 everywhere under /admin/ and changes nothing; a stranger is sent to sign
in. The routes are read from the console's routers, so a page added later is swept too."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from cloud import admin
from cloud.storage.factory import open_store
from cloud.web import admin_clients, admin_fleet, admin_pages
from tests.admin_console_helpers import Console, csrf_of, make_console, signed_in
from tests.web_helpers import PASSWORD

#: A value for every field any console form takes (the rest of each form ignores the others).
FORM = {"role": "admin", "kind": "portal", "number": "0000999111", "code": "739184",
        "password": "a long enough password", "config": "[policy]\nidle_timeout = 91\n",
        "hold_hours": "2", "card_policy": "refuse", "aop_pending": "join",
        "release_changes": "", "email": "x@example.org", "name": "X", "device_id": "copier-x",
        "text": "y@example.org,Y\n"}


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    path: Path = tmp_path_factory.mktemp("scope") / "cloud.db"
    c = make_console(f"sqlite:///{path}")
    try:
        yield c
    finally:
        c.world.server.close()


def _routes() -> list[tuple[str, str]]:
    found = [(method, prefix + route.path)
             for prefix, router in (("", admin_pages.router), ("/admin", admin_fleet.router),
                                    ("/admin", admin_clients.router))
             for route in router.routes
             if isinstance(route, APIRoute) for method in sorted(route.methods)]
    assert len(found) > 20, found  # the whole console, not an empty router
    return found


def _state(console: Console, org: str) -> tuple[object, ...]:
    """Everything of ``org`` a console action could change."""
    store = open_store(console.world.store_url)
    try:
        with store.transaction():
            users = store.users(org)
            cards = [store.user_cards(u.id) for u in users]
            passwords = [store.password_hash(u.id) for u in users]
            configs = [store.config_versions(d) for d, *_ in store.devices(org)]
            techs = store.technicians(org, True)
            installs = store.installs_of_org(org, True)
            share = store.share_generation(org)
            queues = store.queue_names(org)
        paused = admin.org_throttles(store, org)
        return (users, cards, passwords, configs, admin.org_settings(store, org),
                admin.org_audit(store, org, limit=1000), store.devices(org), techs, installs,
                share, queues, [(t.scope, t.subject, t.until) for t in paused])
    finally:
        store.close()


def test_another_orgs_ids_are_not_found_and_nothing_changes(console: Console) -> None:
    ids = {"user_id": console.other_user, "device_id": console.other_device,
           "technician_id": console.other_technician, "client_id": console.other_client,
           "scope": "device", "subject": console.other_device}
    store = open_store(console.world.store_url)
    try:  # the other org's badge sign-in paused, on a device and org-wide
        with store.transaction():
            for scope, subject in (("device", console.other_device), ("org", console.other_org)):
                store.start_throttle(scope, subject, time.time(), time.time() + 3600)
    finally:
        store.close()
    before = _state(console, console.other_org)
    swept = 0
    with signed_in(console.url, console.world.admin_email) as http:
        csrf = csrf_of(http.get("/admin/users").text)
        # The same pages with this org's ids open: the refusals below are about the org.
        store = open_store(console.world.store_url)
        try:
            own = admin.require_user(store, console.world.user_email)
        finally:
            store.close()
        assert http.get(f"/admin/users/{own.id}").status_code == 200
        assert http.get(f"/admin/devices/{console.device}").status_code == 200
        for method, path in _routes():
            if "{" not in path:
                continue
            url = path.format(**ids)
            r = (http.get(url) if method == "GET"
                 else http.post(url, data={**FORM, "csrf": csrf}))
            assert r.status_code == 404, (method, url, r.status_code)
            assert console.other_user not in r.text or "no user" in r.text
            swept += 1
        assert http.post(f"/admin/throttles/org/{console.other_org}/lift",
                         data={"csrf": csrf}).status_code == 404
        # An administrator's form without this session's token is refused.
        assert http.post("/admin/settings", data=FORM).status_code == 403
        # The lists filtered by another org's user or device are refused the same way.
        for query in (f"user={console.other_user}", f"device={console.other_device}"):
            assert http.get(f"/admin/jobs?{query}").status_code == 404
        jobs = http.get("/admin/jobs").text
        audit = http.get(f"/admin/audit?subject=job:{console.other_job}").text
        fleet = http.get("/admin/devices").text
        people = http.get("/admin/users").text
        clients = http.get("/admin/clients").text
    assert swept >= 12
    assert "secret-plan.pdf" not in jobs and "No entries match." in audit
    assert console.other_device not in fleet and "bea@globex.test" not in people
    assert "globex-pc" not in clients and "hall-pc" in clients
    assert _state(console, console.other_org) == before


def test_a_user_gets_403_everywhere_and_changes_nothing(console: Console) -> None:
    ids = {"user_id": console.other_user, "device_id": console.device,
           "technician_id": console.other_technician, "client_id": console.other_client,
           "scope": "org", "subject": console.world.org_id}
    before = _state(console, console.world.org_id)
    with signed_in(console.url, console.world.user_email) as http:
        csrf = csrf_of(http.get("/portal/signin").text)
        for method, path in _routes():
            url = path.format(**ids)
            r = (http.get(url) if method == "GET"
                 else http.post(url, data={**FORM, "csrf": csrf}))
            assert r.status_code == 403, (method, url, r.status_code)
    after = _state(console, console.world.org_id)
    # Its audit has the sign-in only.
    assert (after[:5], after[6:]) == (before[:5], before[6:])
    # A stranger is sent to sign in, from a page or a form.
    with httpx.Client(base_url=console.url) as http:
        for r in (http.get("/admin/users"), http.post("/admin/settings", data=FORM)):
            assert r.status_code == 303 and r.headers["location"].startswith("/portal/signin")
    store = open_store(console.world.store_url)
    try:
        assert admin.org_settings(store, console.world.org_id).card_policy == "replace_oldest"
    finally:
        store.close()


def test_without_mail_an_invitation_is_shown_to_pass_on(console: Console) -> None:
    # This world has no SMTP server: the invitation is made (and audited) and its text shown,
    # saying it was not sent, rather than an administrator believing it went out.
    with signed_in(console.url, console.world.admin_email) as http:
        users = http.get("/admin/users").text
        store = open_store(console.world.store_url)
        try:
            ada = admin.require_user(store, console.world.user_email)
        finally:
            store.close()
        r = http.post(f"/admin/users/{ada.id}/invite",
                      data={"csrf": csrf_of(users), "kind": "classic"})
    assert r.status_code == 200
    assert "The invitation was NOT sent: mail is not set up" in r.text
    assert "Subject: Print from your devices at Acme" in r.text


def test_the_credential_forms_and_the_fleets_reports(console: Console) -> None:
    """The forms a browser test does not click, over HTTP: cards, a code, a password, a
    lockout lifted, each answered on the user's page and audited as `mfd admin` audits it; and
    a device's report (online, when, firmware, emulated engine) on its page."""
    store = open_store(console.world.store_url)
    try:
        ada = admin.require_user(store, console.world.user_email)
        with store.transaction():
            store.lock("user", ada.email, time.time() + 600)
            store.record_status(console.device, "online", 1, time.time())
            store.record_engine(console.device, "emulator", time.time(),
                                json.dumps({"app": "0.9.1", "reader:front": "1.2.3"}))
    finally:
        store.close()
    page = f"/admin/users/{ada.id}"
    with signed_in(console.url, console.world.admin_email) as http:
        html = http.get(page).text
        assert "yes, until" in html
        csrf = csrf_of(html)
        for path, data, said in (
                ("/cards", {"number": "0004242424"}, "Card added for"),
                ("/cards", {"number": "00 42"}, "a card number is 1 to 128 characters"),
                ("/cards/remove", {"number": "0009999999"}, "has no such card"),
                ("/cards/remove", {"number": "0004242424"}, "The card of"),
                ("/cards", {"number": "0004242425"}, "Card added for"),
                ("/cards/remove", {}, "Every card of"),
                ("/code", {"code": "1234"}, "6 to 10"),
                ("/code", {"code": "739184"}, "Access code set for"),
                ("/password", {"password": "short"}, "at least"),
                # Set to the one the other tests sign in with: the order of tests is free.
                ("/password", {"password": PASSWORD}, "Password set for"),
                ("/unlock", {}, f"{ada.email} unlocked."),
                ("/language", {"language": "1"}, "is not a language tag"),
                ("/language", {"language": "de"}, f"Language of {ada.email}: de.")):
            r = http.post(page + path, data={"csrf": csrf, **data})
            assert (r.status_code, r.headers["location"]) == (303, page), path
            assert said in http.get(page).text, (path, data)
        assert "0004242424" not in http.get(f"/admin/audit?subject=user:{ada.id}").text
        device = http.get(f"/admin/devices/{console.device}").text
    assert "online" in device and "app 0.9.1, reader:front 1.2.3" in device
    assert "emulated engine: prints nothing" in device
    store = open_store(console.world.store_url)
    try:
        actions = [r[2] for r in admin.org_audit(store, console.world.org_id,
                                                 subject=f"user:{ada.id}")]
        unlocks = admin.org_audit(store, console.world.org_id, action="unlock")
    finally:
        store.close()
    for action in ("card.add", "card.remove", "code.set", "password.set", "user.language"):
        assert action in actions
    assert unlocks[0][3] == f"user:{ada.email}"


def test_an_import_file_is_uploaded_and_every_bad_row_listed(console: Console) -> None:
    bad = b"email\tname\nnot-an-email\tNo\nokay@example.org\t\n"
    with signed_in(console.url, console.world.admin_email) as http:
        csrf = csrf_of(http.get("/admin/users").text)
        r = http.post("/admin/users/import", data={"csrf": csrf},
                      files={"file": ("staff.tsv", bad, "text/tab-separated-values")})
        assert r.status_code == 400
        assert "staff.tsv: nothing imported; fix these rows:" in r.text
        assert "<li>line 2: &#39;not-an-email&#39; is not an email address</li>" in r.text
        assert "<li>line 3: the display name is missing" in r.text
        r = http.post("/admin/users/import", data={"csrf": csrf},
                      files={"file": ("staff.csv", b"\xff\xfe bad", "text/csv")})
        assert r.status_code == 400 and "staff.csv is not UTF-8 text" in r.text
        r = http.post("/admin/users/import", data={"csrf": csrf},
                      files={"file": ("staff.tsv", b"tab@example.org\tTab Person\n",
                                      "text/tab-separated-values")})
        assert r.status_code == 303
        assert "Imported 1 user(s)" in http.get("/admin/users").text
        # Every error of every row at once, past the 20 a one-line message holds, and what
        # the store knows (a taken email) beside what the file got wrong.
        many = "".join(f"bad{i}\tName\n" for i in range(30)) + "tab@example.org\tAgain\n"
        r = http.post("/admin/users/import", data={"csrf": csrf},
                      files={"file": ("many.tsv", many.encode(), "text/tab-separated-values")})
        assert r.status_code == 400
        for i in range(30):
            assert f"<li>line {i + 1}: &#39;bad{i}&#39; is not an email address</li>" in r.text
        assert "<li>line 31: user tab@example.org exists already</li>" in r.text


def test_audit_dates_and_an_administrator_keeping_their_own_role(console: Console) -> None:
    store = open_store(console.world.store_url)
    try:
        me = admin.require_user(store, console.world.admin_email)
    finally:
        store.close()
    with signed_in(console.url, console.world.admin_email) as http:
        today = time.strftime("%Y-%m-%d", time.gmtime())
        assert "portal.sign_in" in http.get(f"/admin/audit?since={today}&until={today}").text
        assert "No entries match." in http.get("/admin/audit?since=2099-01-01").text
        r = http.get("/admin/audit?until=yesterday")
        assert r.status_code == 400 and "a date is YYYY-MM-DD" in r.text
        page = f"/admin/users/{me.id}"
        r = http.post(page + "/role", data={"csrf": csrf_of(http.get(page).text),
                                            "role": "user"})
        assert r.status_code == 303
        assert "You cannot take your own administrator role" in http.get(page).text
        assert http.get("/admin/").status_code == 200  # still an administrator


def test_technicians_badge_and_code(console: Console) -> None:
    with signed_in(console.url, console.world.admin_email) as http:
        csrf = csrf_of(http.get("/admin/technicians").text)
        r = http.post("/admin/technicians", data={"csrf": csrf, "name": "Tess", "kind": "code"})
        assert r.status_code == 200 and "shown this once" in r.text
        assert re.search(r'<pre class="secret"[^>]*>\d{10}</pre>', r.text)
        r = http.post("/admin/technicians", data={"csrf": csrf, "name": "Bob", "kind": "badge",
                                                  "badge": "00 12"})
        assert r.status_code == 400 and "a card number is 1 to 128 characters" in r.text
        r = http.post("/admin/technicians", data={"csrf": csrf, "name": "Bob", "kind": "badge",
                                                  "badge": "0007777777"})
        assert r.status_code == 303
        listed = http.get("/admin/technicians").text
        assert "Bob has a technician badge now." in listed and "0007777777" not in listed
        store = open_store(console.world.store_url)
        try:
            bob = next(t for t in admin.technicians(store, console.world.org_id)
                       if t.name == "Bob")
        finally:
            store.close()
        r = http.post(f"/admin/technicians/{bob.id}/revoke", data={"csrf": csrf})
        assert r.status_code == 303
        assert "The badge of Bob is revoked" in http.get("/admin/technicians").text
        audit = http.get("/admin/audit?action=technician").text
    assert audit.count("technician.add") == 2 and "technician.revoke" in audit
    assert "0007777777" not in audit


def test_print_clients_share_link_installer_queues(console: Console) -> None:
    with signed_in(console.url, console.world.admin_email) as http:
        page = http.get("/admin/clients").text
        csrf = csrf_of(page)
        link = re.search(r'aria-label="Share link">([^<]+)</pre>', page)
        assert link and "/portal/signin?org=" in link.group(1)
        assert http.post("/admin/clients/share-link", data={"csrf": csrf}).status_code == 303
        assert link.group(1) not in http.get("/admin/clients").text  # a new one
        r = http.post("/admin/clients/bulk-installer", data={"csrf": csrf, "days": "30"})
        assert r.status_code == 200 and "link --anonymous mfi_" in r.text.replace("&#39;", "'")
        assert http.post("/admin/clients/bulk-installer",
                         data={"csrf": csrf, "days": "9999"}).status_code == 400
        assert http.post("/admin/clients/queues",
                         data={"csrf": csrf, "name": "Colour A3"}).status_code == 303
        r = http.post("/admin/clients/queues", data={"csrf": csrf, "name": "Colour A3"})
        assert r.status_code == 400 and "exists already" in r.text
        r = http.post(f"/admin/clients/{console.client}/revoke", data={"csrf": csrf})
        assert r.status_code == 303
        assert "Client hall-pc revoked" in http.get("/admin/clients").text
        audit = http.get("/admin/audit?actor=admin").text
    for action in ("share_link.rotate", "installer.issue", "queue.add", "client.revoke"):
        assert action in audit


def test_a_paused_badge_sign_in_is_lifted(console: Console) -> None:
    store = open_store(console.world.store_url)
    try:
        with store.transaction():
            store.start_throttle("device", console.device, time.time(), time.time() + 600)
    finally:
        store.close()
    with signed_in(console.url, console.world.admin_email) as http:
        page = http.get("/admin/devices").text
        assert "Badge sign-in paused" in page and f"{console.device}: until" in page
        r = http.post(f"/admin/throttles/device/{console.device}/lift",
                      data={"csrf": csrf_of(page)})
        assert r.status_code == 303
        page = http.get("/admin/devices").text
    assert f"Badge sign-in works again on {console.device}" in page
    assert "Badge sign-in paused" not in page

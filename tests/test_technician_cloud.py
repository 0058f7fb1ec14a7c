"""Technicians in the cloud (issue 10): an administrator issues a technician a badge or a
generated code (hashed like a user's, audited), identify answers it with the technician role and
no user, jobs or session, every use is audited with the device, guessing lockout applies, and
revoking stops it. On SQLite and PostgreSQL (``store_url``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from clocks import Clock
from stored import stored_bytes

from cloud import admin
from cloud.demo import DEMO_USERS, seed_demo
from cloud.service import CloudService
from cloud.storage.factory import open_store
from cloud.storage.port import CloudStore
from cloud.storage.sql import SqlStore
from protocol import messages as m
from protocol.errors import ProtocolError, RemoteError, StoreError

TECH_BADGE = "7712345678"


@pytest.fixture
def store(store_url: str) -> Iterator[CloudStore]:
    s = open_store(store_url)
    seed_demo(s, now=time.time())
    yield s
    s.close()


def ask(service: CloudService, device: str, req: m.Request) -> m.Result:
    return m.decode_response(service.handle(device, m.encode(req)), req.TYPE)


def refused(service: CloudService, device: str, req: m.Request) -> str:
    with pytest.raises(RemoteError) as info:
        ask(service, device, req)
    return info.value.code


def audit(store: CloudStore) -> list[tuple[str, str, str, str]]:
    return [(actor, action, subject, detail)
            for _at, actor, action, subject, detail in admin.audit_log(store, 500)]


def test_a_technician_code_is_shown_once_stored_hashed_and_never_logged(
        store: CloudStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    issued = admin.add_technician(store, "org_demo", " Tess Tech ", code=True)
    code = issued.code
    assert code is not None and code.isdigit() and len(code) == admin.TECHNICIAN_CODE_DIGITS
    tech = issued.technician
    assert (tech.name, tech.kind, tech.revoked_at) == ("Tess Tech", "code", None)
    assert ("admin", "technician.add", f"technician:{tech.id}", "code, org org_demo") in \
        audit(store)
    service = CloudService(store)
    r = ask(service, "copier-1", m.Identify("code", code))
    assert isinstance(r, m.IdentifyResult)
    assert r.role == m.ROLE_TECHNICIAN and r.user_id == tech.id
    # No one's identity and a session that opens nothing: the job list is refused with it.
    assert r.display_name not in {u.name for u in DEMO_USERS}
    assert refused(service, "copier-1", m.ListJobs(r.session)) == "invalid_session"
    assert ("device:copier-1", "technician.use", f"technician:{tech.id}", "code") in \
        audit(store)
    assert isinstance(store, SqlStore)
    assert code.encode() not in stored_bytes(store)
    assert code not in caplog.text


def test_a_technician_badge_identifies_the_technician_and_is_stored_hashed(
        store: CloudStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tech = admin.add_technician(store, "org_demo", "Bob Fixit", badge=TECH_BADGE).technician
    assert tech.kind == "badge"
    service = CloudService(store)
    r = ask(service, "copier-2", m.Identify("card", TECH_BADGE))
    assert isinstance(r, m.IdentifyResult) and r.role == m.ROLE_TECHNICIAN
    assert r.user_id == tech.id
    # Where the copier asks for a PIN, a technician's badge is not a way in.
    assert refused(service, "copier-2", m.Identify("card", TECH_BADGE, pin="482916")) == \
        "wrong_pin"
    # A user's badge still answers as the user.
    user = ask(service, "copier-2", m.Identify("card", DEMO_USERS[0].badge))
    assert isinstance(user, m.IdentifyResult) and user.role == m.ROLE_USER
    assert user.display_name == DEMO_USERS[0].name
    uses = [row for row in audit(store) if row[1] == "technician.use"]
    assert uses == [("device:copier-2", "technician.use", f"technician:{tech.id}", "card")]
    assert isinstance(store, SqlStore)
    assert TECH_BADGE.encode() not in stored_bytes(store)
    assert TECH_BADGE not in caplog.text


def test_revoked_credentials_open_nothing_and_the_revocation_is_audited(
        store: CloudStore) -> None:
    issued = admin.add_technician(store, "org_demo", "Tess", code=True)
    badge = admin.add_technician(store, "org_demo", "Bob", badge=TECH_BADGE).technician
    assert {t.id for t in admin.technicians(store, "org_demo")} == {issued.technician.id,
                                                                     badge.id}
    assert admin.revoke_technician(store, badge.id).revoked_at is not None
    assert ("admin", "technician.revoke", f"technician:{badge.id}", "") in audit(store)
    assert [t.id for t in admin.technicians(store, "org_demo")] == [issued.technician.id]
    assert {t.id for t in admin.technicians(store, "org_demo", include_revoked=True)} == {
        issued.technician.id, badge.id}
    service = CloudService(store)
    assert refused(service, "copier-1", m.Identify("card", TECH_BADGE)) == "unknown_card"
    admin.revoke_technician(store, issued.technician.id)
    assert issued.code is not None
    assert refused(service, "copier-1", m.Identify("code", issued.code)) == "unknown_code"
    with pytest.raises(StoreError, match="revoked already"):
        admin.revoke_technician(store, badge.id)
    with pytest.raises(StoreError, match="no technician tech_nope") as err:
        admin.revoke_technician(store, "tech_nope")
    assert err.value.code == "not_found"
    # Revoked, the badge may be issued again.
    again = admin.add_technician(store, "org_demo", "Bob", badge=TECH_BADGE).technician
    assert isinstance(ask(service, "copier-1", m.Identify("card", TECH_BADGE)), m.IdentifyResult)
    assert again.id != badge.id


def test_issuing_is_checked(store: CloudStore) -> None:
    with pytest.raises(StoreError, match="either a badge"):
        admin.add_technician(store, "org_demo", "Tess")
    with pytest.raises(StoreError, match="either a badge"):
        admin.add_technician(store, "org_demo", "Tess", badge=TECH_BADGE, code=True)
    with pytest.raises(StoreError, match="needs a display name"):
        admin.add_technician(store, "org_demo", " ", code=True)
    with pytest.raises(StoreError, match="card number"):
        admin.add_technician(store, "org_demo", "Tess", badge="00 12")
    with pytest.raises(StoreError, match="no org org_typo"):
        admin.add_technician(store, "org_typo", "Tess", code=True)
    with pytest.raises(StoreError, match="a user's card already"):
        admin.add_technician(store, "org_demo", "Tess", badge=DEMO_USERS[0].badge)
    admin.add_technician(store, "org_demo", "Bob", badge=TECH_BADGE)
    with pytest.raises(StoreError, match="technician's already"):
        admin.add_technician(store, "org_demo", "Bob again", badge=TECH_BADGE)
    # Nothing half-done was left by the refusals: one technician, one audit entry.
    assert [t.name for t in admin.technicians(store, "org_demo")] == ["Bob"]
    assert [row[1] for row in audit(store)].count("technician.add") == 1


def test_technician_codes_count_towards_the_lockout(store_url: str) -> None:
    clock = Clock(time.time())
    store = open_store(store_url)
    seed_demo(store, now=clock.now)
    code = admin.add_technician(store, "org_demo", "Tess", code=True).code
    assert code is not None
    service = CloudService(store, clock=clock)
    for wrong in ("555001", "555002", "555003", "555004"):
        assert refused(service, "copier-1", m.Identify("code", wrong)) == "unknown_code"
    assert refused(service, "copier-1", m.Identify("code", "555005")) == "locked_out"
    # Locked, the device refuses the technician too; another device does not.
    assert refused(service, "copier-1", m.Identify("code", code)) == "locked_out"
    r = ask(service, "copier-2", m.Identify("code", code))
    assert isinstance(r, m.IdentifyResult) and r.role == m.ROLE_TECHNICIAN
    # A technician's code links no badge (self-association proves a user).
    assert refused(service, "copier-2", m.Associate(request_id="r1", card="4242424242",
                                                    method="code", value=code)) == \
        "unknown_code"
    clock.now += 901
    assert isinstance(ask(service, "copier-1", m.Identify("code", code)), m.IdentifyResult)
    store.close()


def test_the_identify_answer_without_a_role_is_a_user_and_an_unknown_role_is_refused() -> None:
    plain = (b'{"v":1,"type":"identify","ok":true,"session":"s","user_id":"u_alice",'
             b'"display_name":"Alice","expires_in":300,"note":""}')
    r = m.decode_response(plain, "identify")
    assert isinstance(r, m.IdentifyResult) and r.role == m.ROLE_USER
    with pytest.raises(ProtocolError) as info:
        m.decode_response(plain.replace(b'"note":""', b'"note":"","role":"auditor"'),
                          "identify")
    assert "role" in str(info.value)


def test_the_admin_cli_issues_lists_and_revokes(store: CloudStore, store_url: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from mfdkit.cli import main

    assert main(["admin", "--store", store_url, "technician", "add", "--name", "Tess",
                 "--code"]) == 0
    out = capsys.readouterr().out
    code = out.split("technician code: ")[1].split()[0]
    tech_id = out.split()[1]
    service = CloudService(store)
    r = ask(service, "copier-1", m.Identify("code", code))
    assert isinstance(r, m.IdentifyResult) and r.user_id == tech_id
    assert main(["admin", "--store", store_url, "technician", "list"]) == 0
    listed = capsys.readouterr().out
    assert tech_id in listed and "active" in listed and code not in listed
    assert main(["admin", "--store", store_url, "technician", "revoke", tech_id]) == 0
    assert "revoked" in capsys.readouterr().out
    assert refused(service, "copier-1", m.Identify("code", code)) == "unknown_code"
    assert main(["admin", "--store", store_url, "technician", "list", "--all"]) == 0
    assert "revoked" in capsys.readouterr().out


def test_a_technicians_badge_or_code_cannot_be_given_to_a_user(store: CloudStore) -> None:
    # Users are looked up first at the copier: a technician's badge handed to a user would
    # stop opening the diagnostics without a word.
    from cloud import directory
    from cloud.linking import Linking, LinkingError

    admin.add_technician(store, "org_demo", "Bob Fixit", badge=TECH_BADGE)
    code = admin.add_technician(store, "org_demo", "Cy Fixit", code=True).code
    assert code is not None
    with pytest.raises(StoreError, match="technician's badge"):
        directory.add_card(store, DEMO_USERS[0].email, TECH_BADGE)
    rows = (f"new1@example.org,New One,{TECH_BADGE},\n"
            f"new2@example.org,New Two,,{code}\n")
    with pytest.raises(LinkingError) as info:
        Linking(store).import_users("org_demo", rows, name="staff.csv")
    assert "line 1" in info.value.message and "line 2" in info.value.message
    assert TECH_BADGE not in info.value.message and code not in info.value.message
    service = CloudService(store)
    r = ask(service, "copier-2", m.Identify("card", TECH_BADGE))
    assert isinstance(r, m.IdentifyResult) and r.role == m.ROLE_TECHNICIAN


def test_self_association_cannot_take_a_technicians_badge_nor_a_user_their_code(
        store: CloudStore) -> None:
    # A user proving themselves at a copier must not link the technician's badge to
    # themselves (it would then sign them in instead of opening the diagnostics), and an
    # administrator cannot give a user a technician's code.
    from cloud import directory

    admin.add_technician(store, "org_demo", "Bob Fixit", badge=TECH_BADGE)
    code = admin.add_technician(store, "org_demo", "Cy Fixit", code=True).code
    assert code is not None
    service = CloudService(store)
    alice = DEMO_USERS[0]
    assert refused(service, "copier-2",
                   m.Associate("a-1", TECH_BADGE, "code", alice.access_code)) == "not_allowed"
    r = ask(service, "copier-2", m.Identify("card", TECH_BADGE))
    assert isinstance(r, m.IdentifyResult) and r.role == m.ROLE_TECHNICIAN
    with pytest.raises(StoreError, match="taken"):
        directory.set_access_code(store, alice.email, code)
    user = store.user_by_email(alice.email)
    assert user is not None
    assert ("device:copier-2", "card.associate_refused", f"user:{user.id}",
            "card is a technician's badge") in audit(store)

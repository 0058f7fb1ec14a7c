"""Client linking, the domain (cloud/linking.py) on a real store, one method at a time, on SQLite
and on PostgreSQL (the ``store_url`` fixture of tests/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from clocks import Clock
from racing import race
from stored import stored_bytes

from cloud.demo import DEMO_USERS, seed_demo
from cloud.hashing import card_hash, code_hash
from cloud.identity import MAX_FAILURES
from cloud.linking import (
    AOP_TTL,
    DEFAULT_QUEUE,
    LINKING_CODE_TTL,
    MAX_DOCUMENT,
    SETUP_TTL,
    Linking,
    LinkingError,
    PortalSession,
    Registered,
)
from cloud.storage.factory import open_store
from cloud.storage.port import OrgSettings
from cloud.storage.sql import SqlStore

ALICE, BOB, CHEN = (u.email for u in DEMO_USERS)
PASSWORD = "correct horse battery"
DOC = b"%PDF-1.4 linking test"


@pytest.fixture
def clock() -> Clock:
    return Clock(time.time())


@pytest.fixture
def store(store_url: str, clock: Clock) -> Iterator[SqlStore]:
    s = open_store(store_url)
    seed_demo(s, now=clock.now, jobs=False)
    yield s
    s.close()


@pytest.fixture
def linking(store: SqlStore, clock: Clock) -> Linking:
    return Linking(store, base_url="https://print.example.test", clock=clock)


def token_of(url: str, key: str) -> str:
    return url.split(f"#{key}=", 1)[1]


def personal(linking: Linking, email: str) -> str:
    return token_of(linking.invite_classic(email).url, "installer")


def set_policy(store: SqlStore, policy: str) -> None:
    with store.transaction():
        store.set_org_settings("org_demo", replace(store.org_settings("org_demo"),
                                                   aop_pending=policy))


def code_in(body: str) -> str:
    return body.split("linking code:\n", 1)[1].split()[0]


def expect(code: str, fn: object, *args: object, **kw: object) -> LinkingError:
    with pytest.raises(LinkingError) as info:
        fn(*args, **kw)  # type: ignore[operator]
    assert info.value.code == code, info.value.message
    return info.value


# ------------------------------------------------------------------ installers and installs


def test_personal_installer_links_the_install_at_registration(linking: Linking,
                                                              store: SqlStore) -> None:
    r = linking.register(personal(linking, ALICE), machine="lab-pc-7", os_user="alice")
    assert r.token.startswith("mfc_")
    assert r.user is not None and r.user.email == ALICE
    assert r.install.linked and r.install.via == "installer:classic"
    assert r.queues == (DEFAULT_QUEUE,)
    state = linking.client_state(r.token)
    assert state.user == r.user and state.install.id == r.install.id


def test_bulk_installer_registers_anonymous_installs(linking: Linking) -> None:
    bulk = linking.bulk_installer("org_demo")
    assert bulk.token.startswith("mfi_") and bulk.user is None
    r = linking.register(bulk.token, machine="lab-pc-7", os_user="alice")
    assert r.user is None and not r.install.linked and r.install.via == "installer:bulk"
    assert linking.client_state(r.token).user is None


def test_registering_a_seat_again_replaces_its_install(linking: Linking) -> None:
    token = personal(linking, ALICE)
    first = linking.register(token, machine="lab-pc-7", os_user="alice")
    second = linking.register(token, machine="lab-pc-7", os_user="alice")
    expect("invalid_token", linking.client_state, first.token)
    assert linking.client_state(second.token).install.id == second.install.id
    assert [i.id for i, _u in linking.installs("org_demo")] == [second.install.id]
    assert len(linking.installs("org_demo", include_revoked=True)) == 2


def test_two_os_users_on_one_computer_have_separate_installs(linking: Linking) -> None:
    a = linking.register(personal(linking, ALICE), machine="shared-pc", os_user="alice")
    b = linking.register(personal(linking, BOB), machine="shared-pc", os_user="bob")
    assert a.install.id != b.install.id
    assert linking.client_state(a.token).user.email == ALICE  # type: ignore[union-attr]
    assert linking.client_state(b.token).user.email == BOB  # type: ignore[union-attr]
    ja = linking.submit(a.token, "a.pdf", DOC)
    jb = linking.submit(b.token, "b.pdf", DOC)
    assert ja.owner.email == ALICE and jb.owner.email == BOB  # type: ignore[union-attr]


def test_register_refuses_bad_tokens_and_input(linking: Linking, clock: Clock,
                                               store: SqlStore) -> None:
    expect("invalid_token", linking.register, "mfi_nope", machine="m", os_user="u")
    token = personal(linking, ALICE)
    expect("invalid_field", linking.register, token, machine="", os_user="u")
    expect("invalid_field", linking.register, token, machine="m", os_user="")
    expect("invalid_field", linking.register, token, machine="m\nx", os_user="u")
    expect("invalid_field", linking.register, token, kind="mobile", machine="m", os_user="u")
    expect("invalid_field", linking.register, token, kind="toaster", machine="m")
    clock.now += 31 * 86_400
    expect("token_expired", linking.register, token, machine="m", os_user="u")
    bulk = linking.bulk_installer("org_demo")
    linking.revoke_installer(bulk.id)
    expect("invalid_token", linking.register, bulk.token, machine="m", os_user="u")
    actions = [a[2] for a in store.audit_log(50)]
    assert "client.register_refused" in actions and "installer.revoke" in actions


def test_a_chromebook_registers_by_extension_id_without_os_user(linking: Linking) -> None:
    r = linking.register(personal(linking, CHEN), kind="chromebook", machine="ext-abc123")
    assert r.install.kind == "chromebook" and r.install.os_user == ""
    job = linking.submit(r.token, "notes.pdf", DOC)
    assert job.state == "HELD" and job.owner.email == CHEN  # type: ignore[union-attr]


def test_revoked_install_stops_working_and_loses_pending_jobs(linking: Linking,
                                                              store: SqlStore) -> None:
    r = linking.register(linking.bulk_installer("org_demo").token, machine="m", os_user="u")
    pending = linking.submit(r.token, "doc.pdf", DOC)
    linking.revoke_install(r.install.id)
    expect("invalid_token", linking.submit, r.token, "x.pdf", DOC)
    assert store.jobs([pending.job_id])[0].state == "DELETED"
    expect("invalid_token", linking.revoke_install, r.install.id)


# ------------------------------------------------------------------ jobs


def test_the_owner_comes_from_the_token_only(linking: Linking, store: SqlStore) -> None:
    r = linking.register(personal(linking, ALICE), machine="m", os_user="alice")
    s = linking.submit(r.token, "Report.pdf", DOC, pages=3, color=True, duplex=True, copies=2)
    job = store.jobs([s.job_id])[0]
    alice = store.user_by_email(ALICE)
    assert alice is not None and job.owner_id == alice.id and job.state == "HELD"
    assert job.client_id == r.install.id and job.source == "m"
    assert (job.pages, job.color, job.duplex, job.copies) == (3, True, True, 2)
    assert s.sha256 == job.sha256 and s.size == len(DOC)
    bob = store.user_by_email(BOB)
    assert bob is not None and store.held_jobs(bob.id, 0, 50, time.time())[1] == 0


def test_submit_checks_its_input(linking: Linking) -> None:
    r = linking.register(personal(linking, ALICE), machine="m", os_user="alice")
    expect("invalid_token", linking.submit, "mfc_forged", "a.pdf", DOC)
    expect("invalid_field", linking.submit, r.token, "a.pdf", b"")
    expect("invalid_field", linking.submit, r.token, "", DOC)
    expect("invalid_field", linking.submit, r.token, "a.pdf", DOC, pages=0)
    expect("invalid_field", linking.submit, r.token, "a.pdf", DOC, copies=1000)
    expect("invalid_field", linking.submit, r.token, "a.pdf", DOC, pages=True)
    expect("checksum_mismatch", linking.submit, r.token, "a.pdf", DOC, sha256="00" * 32)
    expect("unknown_queue", linking.submit, r.token, "a.pdf", DOC, queue="Nope")
    small = Linking(linking.store, max_document=4)
    expect("too_large", small.submit, r.token, "a.pdf", DOC)
    assert MAX_DOCUMENT >= 10 * 1024 * 1024


def test_queues_are_deployed_to_linked_clients_only(linking: Linking) -> None:
    linking.add_queue("org_demo", "Colour A3")
    linking.add_queue("org_demo", "Mailroom")
    expect("conflict", linking.add_queue, "org_demo", "Mailroom")
    expect("conflict", linking.add_queue, "org_demo", DEFAULT_QUEUE)
    assert linking.queues("org_demo") == ("Colour A3", "Mailroom")
    linked = linking.register(personal(linking, ALICE), machine="m", os_user="alice")
    assert linked.queues == (DEFAULT_QUEUE, "Colour A3", "Mailroom")
    anon = linking.register(linking.bulk_installer("org_demo").token, machine="m2",
                            os_user="bob")
    assert anon.queues == (DEFAULT_QUEUE,)
    expect("unknown_queue", linking.submit, anon.token, "a.pdf", DOC, queue="Mailroom")
    assert linking.submit(linked.token, "a.pdf", DOC, queue="Mailroom").state == "HELD"


# ------------------------------------------------------------------ Authenticate-on-Print


def signed_in(linking: Linking, store: SqlStore, email: str) -> str:
    from cloud.directory import set_password

    set_password(store, email, PASSWORD)
    return linking.sign_in(email, PASSWORD).token


def test_aop_print_again_discards_the_pending_job(linking: Linking, store: SqlStore) -> None:
    r = linking.register(linking.bulk_installer("org_demo").token, machine="m", os_user="bob")
    s = linking.submit(r.token, "Ticket.pdf", DOC)
    assert s.state == "PENDING_AUTH" and s.owner is None
    assert s.sign_in_url and s.sign_in_url.startswith("https://print.example.test/portal/aop#")
    assert "print your document again" in s.message
    job = store.jobs([s.job_id])[0]
    assert job.owner_id is None and job.state == "PENDING_AUTH"
    session = signed_in(linking, store, BOB)
    request = token_of(s.sign_in_url, "request")
    details = linking.aop_request(session, request)
    assert details.install.machine == "m" and details.pending_jobs == ("Ticket.pdf",)
    assert details.policy == "print_again"
    out = linking.aop_confirm(session, request)
    assert out.user.email == BOB and out.install.linked and out.discarded == (s.job_id,)
    assert "print your document again" in out.message.lower()
    assert store.jobs([s.job_id])[0].state == "DELETED"
    again = linking.submit(r.token, "Ticket.pdf", DOC)
    assert again.state == "HELD" and again.owner is not None and again.owner.email == BOB
    assert linking.client_state(r.token).install.via == "aop"


def test_aop_join_moves_every_pending_job_into_the_users_queue(linking: Linking,
                                                               store: SqlStore,
                                                               clock: Clock) -> None:
    set_policy(store, "join")
    r = linking.register(linking.bulk_installer("org_demo").token, machine="m", os_user="bob")
    first = linking.submit(r.token, "One.pdf", DOC)
    second = linking.submit(r.token, "Two.pdf", DOC)
    assert "waits for you" in first.message
    session = signed_in(linking, store, BOB)
    out = linking.aop_confirm(session, token_of(second.sign_in_url or "", "request"))
    assert set(out.joined) == {first.job_id, second.job_id} and not out.discarded
    bob = store.user_by_email(BOB)
    assert bob is not None
    held, total = store.held_jobs(bob.id, 0, 10, clock.now)
    assert total == 2 and {j.id for j in held} == {first.job_id, second.job_id}
    hold = store.org_settings("org_demo").hold_hours * 3600
    assert all(j.expires_at == pytest.approx(j.submitted_at + hold) for j in held)
    # The other link of the same client is spent too.
    expect("invalid_token", linking.aop_confirm, session,
           token_of(first.sign_in_url or "", "request"))


def test_aop_link_is_one_time_expiring_and_org_bound(linking: Linking, store: SqlStore,
                                                     clock: Clock) -> None:
    bulk = linking.bulk_installer("org_demo").token
    r = linking.register(bulk, machine="m", os_user="u")
    s = linking.submit(r.token, "a.pdf", DOC)
    request = token_of(s.sign_in_url or "", "request")
    session = signed_in(linking, store, ALICE)
    expect("invalid_session", linking.aop_confirm, "mfs_nope", request)
    expect("invalid_token", linking.aop_confirm, session, "mfa_nope")
    # A user of another org cannot claim this org's computer.
    with store.transaction():
        other = store.create_org("Other Org")
        store.add_user(other, "olga@other.test", "Olga")
    olga = signed_in(linking, store, "olga@other.test")
    expect("not_allowed", linking.aop_confirm, olga, request)
    linking.aop_confirm(session, request)
    expect("invalid_token", linking.aop_confirm, session, request)
    r2 = linking.register(bulk, machine="m2", os_user="u")
    s2 = linking.submit(r2.token, "b.pdf", DOC)
    clock.now += AOP_TTL + 1
    session = signed_in(linking, store, ALICE)
    expect("token_expired", linking.aop_confirm, session, token_of(s2.sign_in_url or "",
                                                                   "request"))


# ------------------------------------------------------------------ invitations and the portal


def test_classic_invitation_is_an_email_with_installer_link_and_linking_code(
        linking: Linking, store: SqlStore) -> None:
    inv = linking.invite_classic(ALICE)
    assert inv.kind == "classic" and inv.url.startswith("https://print.example.test/install#")
    assert inv.url in inv.body and "To: alice@example.org" in inv.body
    assert "Do not forward" in inv.body
    r = linking.register(token_of(inv.url, "installer"), machine="m", os_user="alice")
    assert r.user is not None and r.user.email == ALICE
    phone = linking.mobile_link_code(code_in(inv.body), app_id="app-1")
    assert phone.user is not None and phone.user.email == ALICE
    expect("unknown_user", linking.invite_classic, "nobody@example.org")


def test_portal_invitation_sets_the_first_password_once(linking: Linking,
                                                        store: SqlStore) -> None:
    inv = linking.invite_portal(BOB)
    assert "/portal/welcome#invitation=mfv_" in inv.body
    token = token_of(inv.url, "invitation")
    expect("password_invalid", linking.accept_invitation, token, "short")
    session = linking.accept_invitation(token, PASSWORD)
    assert session.user.email == BOB and linking.session_user(session.token).email == BOB
    expect("invalid_token", linking.accept_invitation, token, PASSWORD)
    assert linking.sign_in(BOB, PASSWORD).user.email == BOB


def test_portal_invitation_expires(linking: Linking, clock: Clock) -> None:
    token = token_of(linking.invite_portal(BOB).url, "invitation")
    clock.now += 15 * 86_400
    expect("token_expired", linking.accept_invitation, token, PASSWORD)


def test_sign_in_sessions_expire_and_end(linking: Linking, store: SqlStore,
                                         clock: Clock) -> None:
    session = signed_in(linking, store, ALICE)
    assert session.startswith("mfs_")
    linking.sign_out(session)
    expect("invalid_session", linking.setup_devices, session)
    session = linking.sign_in(ALICE.upper(), PASSWORD).token
    clock.now += 9 * 3600
    expect("invalid_session", linking.setup_devices, session)


def test_wrong_passwords_lock_the_account_for_portal_and_copier(linking: Linking,
                                                                store: SqlStore) -> None:
    signed_in(linking, store, ALICE)
    for _ in range(MAX_FAILURES - 1):
        expect("invalid_password", linking.sign_in, ALICE, "wrong password", source="10.0.0.9")
    err = expect("locked_out", linking.sign_in, ALICE, "wrong password", source="10.0.0.9")
    assert err.retry_after and err.retry_after > 0
    # Locked for the right password too, and through the mobile app, and at the copier.
    expect("locked_out", linking.sign_in, ALICE, PASSWORD)
    expect("locked_out", linking.mobile_sign_in, ALICE, PASSWORD, app_id="app")
    assert store.locked_until("user", ALICE, time.time()) is not None
    # An unknown email is answered like a wrong password.
    expect("invalid_password", linking.sign_in, "ghost@example.org", PASSWORD)
    actions = [a[2] for a in store.audit_log(100)]
    assert "portal.wrong_password" in actions and "lockout" in actions


def test_share_link_signs_in_the_orgs_users_only_and_rotates(linking: Linking,
                                                             store: SqlStore) -> None:
    link = linking.share_link("org_demo")
    assert link == linking.share_link("org_demo")  # printable again, not stored
    org = link.split("?org=", 1)[1]
    signed_in(linking, store, ALICE)
    assert linking.sign_in(ALICE, PASSWORD, org_token=org).user.email == ALICE
    with store.transaction():
        other = store.create_org("Other Org")
        store.add_user(other, "olga@other.test", "Olga")
    signed_in(linking, store, "olga@other.test")
    expect("invalid_password", linking.sign_in, "olga@other.test", PASSWORD, org_token=org)
    rotated = linking.share_link("org_demo", rotate=True)
    assert rotated != link
    expect("invalid_token", linking.sign_in, ALICE, PASSWORD, org_token=org)
    expect("invalid_token", linking.sign_in, ALICE, PASSWORD, org_token="org_demo.forged")


def test_set_up_my_devices_gives_a_personal_installer(linking: Linking, store: SqlStore,
                                                      clock: Clock) -> None:
    session = signed_in(linking, store, CHEN)
    issued = linking.setup_devices(session)
    assert issued.expires_at == pytest.approx(clock.now + SETUP_TTL)
    r = linking.register(token_of(issued.url, "installer"), machine="m", os_user="chen")
    assert r.user is not None and r.user.email == CHEN and r.install.via == "installer:setup"
    user, installs = linking.my_devices(session)
    assert user.email == CHEN and [i.id for i in installs] == [r.install.id]


# ------------------------------------------------------------------ mobile


def test_mobile_app_links_with_password_and_gets_a_user_token(linking: Linking,
                                                              store: SqlStore) -> None:
    signed_in(linking, store, BOB)
    r = linking.mobile_sign_in(BOB, PASSWORD, app_id="app-42")
    assert r.token.startswith("mfu_") and r.install.kind == "mobile"
    assert r.install.via == "mobile:password"
    s = linking.submit(r.token, "Boarding pass", DOC)
    assert s.owner is not None and s.owner.email == BOB
    expect("invalid_password", linking.mobile_sign_in, BOB, "nope", app_id="app-43")


def test_linking_codes_are_one_time_and_expire(linking: Linking, store: SqlStore,
                                               clock: Clock) -> None:
    session = signed_in(linking, store, CHEN)
    issued = linking.create_linking_code(session)
    assert len(issued.token) == 9 and issued.token[4] == "-"
    r = linking.mobile_link_code(issued.token.lower().replace("-", " "), app_id="app-1")
    assert r.user is not None and r.user.email == CHEN and r.install.via == "mobile:code"
    expect("invalid_code", linking.mobile_link_code, issued.token, app_id="app-2")
    late = linking.create_linking_code(session)
    clock.now += LINKING_CODE_TTL + 1
    expect("invalid_code", linking.mobile_link_code, late.token, app_id="app-3")




def test_a_linking_code_raced_by_two_apps_links_one(linking: Linking, store: SqlStore) -> None:
    code = linking.create_linking_code(signed_in(linking, store, CHEN)).token
    results = race(store, 2, lambda i: linking.mobile_link_code(code, app_id=f"app-{i}"),
                   together=True)
    [won] = [r for r in results if isinstance(r, Registered)]
    [lost] = [r for r in results if isinstance(r, LinkingError)]
    assert won.user is not None and won.user.email == CHEN
    assert lost.code == "invalid_code"
    linked = store.query_all("SELECT COUNT(*) FROM client_installs WHERE kind = 'mobile'")
    assert linked == [(1,)]


def test_an_invitation_raced_twice_sets_one_password(linking: Linking, store: SqlStore) -> None:
    token = token_of(linking.invite_portal(BOB).url, "invitation")
    results = race(store, 2, lambda i: linking.accept_invitation(token, f"{PASSWORD} {i}"),
                   together=True)
    [won] = [r for r in results if isinstance(r, PortalSession)]
    [lost] = [r for r in results if isinstance(r, LinkingError)]
    assert won.user.email == BOB and lost.code == "invalid_token"
    winner = results.index(won)
    # The password that works is the winner's, and only it.
    assert linking.sign_in(BOB, f"{PASSWORD} {winner}").user.email == BOB
    expect("invalid_password", linking.sign_in, BOB, f"{PASSWORD} {1 - winner}")


def test_wrong_linking_codes_lock_the_address(linking: Linking, store: SqlStore) -> None:
    from cloud.linking import ADDRESS_MAX_FAILURES

    for _ in range(ADDRESS_MAX_FAILURES - 1):
        expect("invalid_code", linking.mobile_link_code, "AAAA-AAAA", app_id="a",
               source="192.0.2.7")
    expect("locked_out", linking.mobile_link_code, "AAAA-AAAA", app_id="a", source="192.0.2.7")
    session = signed_in(linking, store, CHEN)
    good = linking.create_linking_code(session).token
    expect("locked_out", linking.mobile_link_code, good, app_id="a", source="192.0.2.7")
    assert linking.mobile_link_code(good, app_id="a", source="192.0.2.8").user is not None


# ------------------------------------------------------------------ admin


def test_import_adds_users_cards_and_codes_in_one_go(linking: Linking,
                                                     store: SqlStore) -> None:
    text = ("\ufeffemail,display name,card,code\n"
            "dana@example.org,Dana Reyes,0004567890,583920\n"
            "\n"
            "# a comment\n"
            "eli@example.org,\"Eli, Jr.\",,\n"
            "FRAN@example.org,Fran Ode,0009998887,\n")
    report = linking.import_users("org_demo", text, name="staff.csv")
    assert (report.users, report.cards, report.codes) == (3, 2, 1)
    fran = store.user_by_email("fran@example.org")
    assert fran is not None and fran.display_name == "Fran Ode"
    eli = store.user_by_email("eli@example.org")
    assert eli is not None and eli.display_name == "Eli, Jr."
    secret = store.org_secret("org_demo")
    dana = store.user_by_card("org_demo", card_hash(secret, "0004567890"))
    assert dana is not None and dana.email == "dana@example.org"
    assert store.user_by_code("org_demo", code_hash(secret, "583920")) is not None


def test_import_reads_tsv(linking: Linking, store: SqlStore) -> None:
    report = linking.import_users("org_demo", "gil@example.org\tGil Moss\t0001112223\t\n",
                                  name="staff.tsv")
    assert report.users == 1 and report.cards == 1


def test_a_bad_row_imports_nothing_and_names_its_line(linking: Linking,
                                                      store: SqlStore) -> None:
    before = len(store.users("org_demo"))
    text = ("email,name,card,code\n"
            "dana@example.org,Dana Reyes,,\n"
            "not-an-email,Nobody,,\n"
            "eli@example.org,Eli,,123456\n"
            "dana@example.org,Dana Again,,\n")
    err = expect("import_invalid", linking.import_users, "org_demo", text, name="staff.csv")
    assert "line 3" in err.message and "line 4" in err.message and "line 5" in err.message
    assert "line 2:" not in err.message and "123456" not in err.message
    assert "on line 2 already" in err.message
    assert len(store.users("org_demo")) == before
    # Conflicts with the store are found in the same pass, and still nothing is imported.
    text = ("zed@example.org,Zed,,\n"
            f"{ALICE},Alice Again,,\n"
            f"yan@example.org,Yan,{DEMO_USERS[1].badge},\n"
            f"xi@example.org,Xi,,{DEMO_USERS[2].access_code}\n")
    err = expect("import_invalid", linking.import_users, "org_demo", text)
    assert "line 2" in err.message and "line 3" in err.message and "line 4" in err.message
    assert DEMO_USERS[1].badge not in err.message
    assert store.user_by_email("zed@example.org") is None
    # One try shows both kinds at once: a malformed row and a row the store refuses.
    text = f"{ALICE},Alice Again,,\nnot-an-email,X,,\n"
    err = expect("import_invalid", linking.import_users, "org_demo", text)
    assert err.rows == [f"line 1: user {ALICE} exists already",
                        "line 2: 'not-an-email' is not an email address"]
    # An email taken in another org is refused without saying whose it is.
    other = linking.store.create_org("Elsewhere")
    linking.store.add_user(other, "zoe@elsewhere.test", "Zoe")
    err = expect("import_invalid", linking.import_users, "org_demo", "zoe@elsewhere.test,Z,,\n")
    assert err.rows == ["line 1: this email cannot be used; choose another"]
    expect("import_invalid", linking.import_users, "org_demo", "a@b.org,A,,,extra\n")
    expect("import_invalid", linking.import_users, "org_demo", "\n\n")


def test_cards_remove_one_or_all(linking: Linking, store: SqlStore) -> None:
    alice = store.user_by_email(ALICE)
    assert alice is not None
    from cloud.directory import add_card

    add_card(store, ALICE, "0000000042")
    assert len(store.user_cards(alice.id)) == 2
    expect("invalid_field", linking.remove_cards, ALICE, DEMO_USERS[1].badge)
    assert linking.remove_cards(ALICE, "0000000042") == 1
    assert linking.remove_cards(ALICE) == 1
    assert store.user_cards(alice.id) == []


def test_codes_reset_gives_a_new_non_trivial_code(linking: Linking, store: SqlStore) -> None:
    from cloud.directory import check_access_code

    code = linking.reset_access_code(ALICE)
    assert check_access_code(code) == code and len(code) == 8
    secret = store.org_secret("org_demo")
    assert store.user_by_code("org_demo", code_hash(secret, code)).email == ALICE  # type: ignore
    assert store.user_by_code("org_demo", code_hash(secret, DEMO_USERS[0].access_code)) is None
    assert code not in " ".join(str(a) for a in store.audit_log(20))


def test_secrets_are_stored_and_audited_only_as_hashes(linking: Linking, store: SqlStore,
                                                       store_url: str) -> None:
    inv = linking.invite_classic(ALICE)
    installer = token_of(inv.url, "installer")
    portal = token_of(linking.invite_portal(BOB).url, "invitation")
    client = linking.register(installer, machine="m", os_user="alice").token
    session = linking.accept_invitation(portal, PASSWORD).token
    code = linking.create_linking_code(session).token
    user_token = linking.mobile_link_code(code_in(inv.body), app_id="app").token
    anon = linking.register(linking.bulk_installer("org_demo").token, machine="n", os_user="x")
    request = token_of(linking.submit(anon.token, "a.pdf", DOC).sign_in_url or "", "request")
    secrets_ = [installer, portal, client, session, code, user_token, request, PASSWORD,
                code_in(inv.body)]
    store.close()
    again = open_store(store_url)  # what a restarted cloud would find
    raw = stored_bytes(again)
    audit = " ".join(" ".join(map(str, a)) for a in again.audit_log(500))
    again.close()
    # The search sees what is stored: the address in clear, the job's document.
    assert ALICE.encode() in raw and DOC in raw
    for s in secrets_:
        assert s.encode() not in raw, s[:4]
        assert s not in audit


def test_purge_forgets_old_sessions_and_links(linking: Linking, store: SqlStore,
                                              clock: Clock) -> None:
    session = signed_in(linking, store, ALICE)
    linking.create_linking_code(session)
    assert linking.purge() == 0
    clock.now += 2 * 86_400
    assert linking.purge() == 2


def test_base_url_defaults_to_the_one_the_portal_recorded(store: SqlStore) -> None:
    plain = Linking(store)
    assert plain.base_url == "http://127.0.0.1:8631"
    plain.set_public_url("https://print.acme.test/")
    assert Linking(store).base_url == "https://print.acme.test"
    assert Linking(store).share_link("org_demo").startswith("https://print.acme.test/portal/")


def test_org_settings_default_policy_is_print_again() -> None:
    assert OrgSettings().aop_pending == "print_again"


def test_import_takes_an_optional_language_column(linking: Linking, store: SqlStore) -> None:
    text = ("email,display name,card,code,language\n"
            "hana@example.org,Hana Mori,,,ja\n"
            "ines@example.org,Inês Costa,,,pt-BR\n"
            "jon@example.org,Jon Berg,,\n"          # a row of the older shape: no language
            "kai@example.org,Kai Lund,,,\n")
    assert linking.import_users("org_demo", text, name="staff.csv").users == 4
    languages = {e: store.user_by_email(e) for e in
                 ("hana@example.org", "ines@example.org", "jon@example.org", "kai@example.org")}
    assert {e: u.language for e, u in languages.items() if u is not None} == {
        "hana@example.org": "ja", "ines@example.org": "pt-BR", "jon@example.org": "",
        "kai@example.org": ""}
    # The older four-column files import as before: no preference.
    assert linking.import_users("org_demo", "lea@example.org\tLea Roth\t\t\n",
                                name="old.tsv").users == 1
    lea = store.user_by_email("lea@example.org")
    assert lea is not None and lea.language == ""
    assert [a for a in store.audit_log(10) if a[2] == "users.import"]


def test_a_bad_language_in_the_import_names_its_line_and_imports_nothing(
        linking: Linking, store: SqlStore) -> None:
    before = len(store.users("org_demo"))
    text = ("email,display name,card,code,language\n"
            "mia@example.org,Mia,,,de\n"
            "nils@example.org,Nils,,,日本語\n"
            "olga@example.org,Olga,,,de-\n")
    err = expect("import_invalid", linking.import_users, "org_demo", text, name="staff.csv")
    assert "line 3: column 5 (language) is not a language tag" in err.message
    assert "line 4: column 5 (language) is not a language tag" in err.message
    assert "line 2" not in err.message
    # Not quoted: in a file whose columns slipped, column 5 may hold a card number or a code.
    assert "日本語" not in err.message and "'de-'" not in err.message
    assert len(store.users("org_demo")) == before
    err = expect("import_invalid", linking.import_users, "org_demo", "a@b.org,A,,,ja,extra\n")
    assert "6 columns" in err.message and "language" in err.message

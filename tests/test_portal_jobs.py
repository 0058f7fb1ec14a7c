"""The User Portal's job use-cases (cloud/portal_jobs.py, cloud/linking/portal_extra.py) on both
store backends: a person touches only their own jobs and devices (another person's ids are
refused like missing ones, nothing changes, the attempt is audited), changes follow the org's
policy and only the thrifty way, and an upload is a PDF by its bytes within the size limit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from cloud import admin, directory, portal_jobs
from cloud.linking import Linking
from cloud.linking.portal_extra import PortalExtra
from cloud.portal_jobs import PortalRefused
from cloud.storage.factory import open_store
from cloud.storage.port import User
from cloud.storage.sql import SqlStore

PDF = b"%PDF-1.7\n1 0 obj << /Type /Pages /Count 2 >>\n2 0 obj << /Type /Page >>\n" \
      b"3 0 obj << /Type/Page >>\n%%EOF\n"
NOW = 1_800_000_000.0
PASSWORD = "correct horse battery"


@dataclass
class Two:
    store: SqlStore
    ada: User
    bob: User
    org: str


@pytest.fixture
def two(store_url: str) -> Iterator[Two]:
    store = open_store(store_url)
    assert isinstance(store, SqlStore)
    try:
        org = admin.create_org(store, "Acme")
        admin.add_user(store, org, "ada@example.org", "Ada")
        admin.add_user(store, org, "bob@example.org", "Bob")
        ada, bob = store.user_by_email("ada@example.org"), store.user_by_email("bob@example.org")
        assert ada and bob
        yield Two(store, ada, bob, org)
    finally:
        store.close()


def _print(t: Two, user: User, *, color: bool = True, duplex: bool = False) -> str:
    return portal_jobs.web_print(t.store, user, "memo.pdf", PDF, max_size=1 << 20, color=color,
                                 duplex=duplex, copies=1, now=NOW)


def _audit(t: Two, action: str) -> list[tuple[float, str, str, str, str]]:
    with t.store.transaction():
        return [row for row in t.store.audit_log(500) if row[2] == action]


def test_an_upload_becomes_a_held_job_with_its_pages(two: Two) -> None:
    job_id = _print(two, two.ada)
    with two.store.transaction():
        job = two.store.jobs([job_id])[0]
    assert (job.owner_id, job.state, job.pages, job.source) == (two.ada.id, "HELD", 2,
                                                                "Web print")
    assert job.expires_at == NOW + 8 * 3600
    assert _audit(two, "job.submit")


@pytest.mark.parametrize(("data", "code"), [
    (b"", "invalid_field"),
    (b"PK\x03\x04 a zip named memo.pdf", "unsupported_type"),
    (PDF + b"x" * 2000, "too_large"),
])
def test_an_upload_is_refused_by_its_bytes(two: Two, data: bytes, code: str) -> None:
    with pytest.raises(PortalRefused) as refused:
        portal_jobs.web_print(two.store, two.ada, "memo.pdf", data, max_size=1024, color=False,
                              duplex=False, copies=1, now=NOW)
    assert refused.value.code == code
    with two.store.transaction():
        assert two.store.held_jobs(two.ada.id, 0, 10, NOW)[1] == 0


def test_another_persons_job_is_refused_like_a_missing_one(two: Two) -> None:
    bobs = _print(two, two.bob)
    calls = [
        lambda: portal_jobs.delete_jobs(two.store, two.ada, [bobs], NOW),
        lambda: portal_jobs.change_job(two.store, two.ada, bobs, grayscale=True, duplex=True,
                                       copies=5, now=NOW),
    ]
    for call in calls:
        with pytest.raises(PortalRefused) as refused:
            call()
        assert refused.value.code == "job_not_found"
    with pytest.raises(PortalRefused) as missing:
        portal_jobs.delete_jobs(two.store, two.ada, ["j_nosuchjob"], NOW)
    assert missing.value.message.replace("j_nosuchjob", bobs) == refused.value.message
    with two.store.transaction():
        job = two.store.jobs([bobs])[0]
    assert (job.state, job.color, job.duplex, job.copies) == ("HELD", True, False, 1)
    refusals = _audit(two, "jobs.delete_refused") + _audit(two, "job.change_refused")
    # Three attempts, three entries: the missing job is traced like the other person's.
    assert len(refusals) == 3 and all(r[1] == f"user:{two.ada.id}" for r in refusals)


def test_changes_go_the_thrifty_way_and_follow_the_policy(two: Two) -> None:
    job_id = _print(two, two.ada, color=True, duplex=False)
    job = portal_jobs.change_job(two.store, two.ada, job_id, grayscale=True, duplex=True,
                                 copies=3, now=NOW)
    assert (job.color, job.duplex, job.copies) == (False, True, 3)
    for grey, duplex in ((False, True), (True, False)):  # back to colour; back to one side
        with pytest.raises(PortalRefused):
            portal_jobs.change_job(two.store, two.ada, job_id, grayscale=grey, duplex=duplex,
                                   copies=3, now=NOW)
    with pytest.raises(PortalRefused) as copies:
        portal_jobs.change_job(two.store, two.ada, job_id, grayscale=True, duplex=True,
                               copies=0, now=NOW)
    assert copies.value.field == "copies"
    with two.store.transaction():
        settings = two.store.org_settings(two.org)
        two.store.set_org_settings(two.org, replace(settings, release_changes=False))
    with pytest.raises(PortalRefused) as policy:
        portal_jobs.change_job(two.store, two.ada, job_id, grayscale=True, duplex=True,
                               copies=4, now=NOW)
    assert policy.value.code == "not_allowed"
    with two.store.transaction():
        assert two.store.jobs([job_id])[0].copies == 3
    assert len(_audit(two, "job.change")) == 1


def test_delete_takes_all_or_none(two: Two) -> None:
    mine, bobs = _print(two, two.ada), _print(two, two.bob)
    with pytest.raises(PortalRefused):
        portal_jobs.delete_jobs(two.store, two.ada, [mine, bobs], NOW)
    with two.store.transaction():
        assert {j.state for j in two.store.jobs([mine, bobs])} == {"HELD"}
    assert portal_jobs.delete_jobs(two.store, two.ada, [mine], NOW) == 1
    with two.store.transaction():
        assert two.store.jobs([mine])[0].state == "DELETED"


def test_a_person_unlinks_only_their_own_device(two: Two) -> None:
    directory.set_password(two.store, "ada@example.org", PASSWORD)
    directory.set_password(two.store, "bob@example.org", PASSWORD)
    extra = PortalExtra(two.store, clock=lambda: NOW)
    linking = Linking(two.store, clock=lambda: NOW)
    ada = linking.sign_in("ada@example.org", PASSWORD).token
    bob = linking.sign_in("bob@example.org", PASSWORD).token
    bobs_pc = linking.register(linking.setup_devices(bob).token, machine="bob-pc", os_user="b")
    with pytest.raises(Exception, match="not among your linked devices"):
        extra.unlink_device(ada, bobs_pc.install.id)
    assert linking.client_state(bobs_pc.token).user == two.bob  # still linked, still works
    assert _audit(two, "client.unlink_refused")
    extra.unlink_device(bob, bobs_pc.install.id)
    with pytest.raises(Exception, match="not registered"):
        linking.client_state(bobs_pc.token)
    assert _audit(two, "client.unlink")[0][1] == f"user:{two.bob.id}"


def test_an_installer_is_looked_at_without_being_spent(two: Two) -> None:
    linking = Linking(two.store, clock=lambda: NOW)
    invitation = linking.invite_classic("ada@example.org")
    token = invitation.url.split("#installer=")[1]
    info = PortalExtra(two.store, clock=lambda: NOW).installer_info(token)
    assert (info.user, info.org_name) == (two.ada, "Acme")
    assert linking.register(token, machine="pc", os_user="ada").user == two.ada
    with pytest.raises(Exception, match="not valid"):
        PortalExtra(two.store, clock=lambda: NOW).installer_info("mfi_forged")
    later = PortalExtra(two.store, clock=lambda: info.expires_at + 1)
    with pytest.raises(Exception, match="expired"):
        later.installer_info(token)

"""Roles and org scoping under the admin console (issue 12), on a real store of each backend:
who is an administrator (``mfd admin role-set``, ``user-add --admin``), that every audit entry an
org's administrator can cause lands in that org, and that the console's reads of one org find
nothing of another. Also the technician badge kept off the command line (--badge-file)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloud import admin, devices, directory
from cloud.linking import Linking
from cloud.storage.factory import open_store
from cloud.storage.port import ACTING_ADMIN, CloudStore
from mfdkit.cli import main as mfd
from protocol.errors import MfdError, StoreError


@dataclass
class Two:
    store: CloudStore
    url: str
    a: str
    b: str
    ann: str  # a user of org a
    bea: str  # a user of org b


@pytest.fixture
def two(store_url: str) -> Iterator[Two]:
    store = open_store(store_url)
    a, b = admin.create_org(store, "Acme"), admin.create_org(store, "Globex")
    ann = admin.add_user(store, a, "ann@acme.test", "Ann")
    bea = admin.add_user(store, b, "bea@globex.test", "Bea")
    devices.add_device(store, a, "copier-a", "Hall", time.time())
    devices.add_device(store, b, "copier-b", "Lobby", time.time())
    yield Two(store, store_url, a, b, ann, bea)
    store.close()


def test_a_role_is_set_audited_and_read_back_by_every_query(two: Two) -> None:
    assert admin.require_user(two.store, "ann@acme.test").role == "user"
    assert admin.set_role(two.store, "Ann@Acme.test", "admin").role == "admin"
    with two.store.transaction():
        assert two.store.user(two.ann) is not None
        assert two.store.user(two.ann).role == "admin"  # type: ignore[union-attr]
        assert [u.role for u in two.store.users(two.a)] == ["admin"]
    assert admin.org_audit(two.store, two.a, action="user.role")[0][2:] == (
        "user.role", f"user:{two.ann}", "user -> admin")
    with pytest.raises(StoreError, match="a role is user or admin"):
        admin.set_role(two.store, "ann@acme.test", "root")
    with pytest.raises(StoreError, match="no user"):
        admin.set_role(two.store, "nobody@acme.test", "admin")


def test_mfd_admin_role_set_and_user_add_admin(two: Two, capsys: pytest.CaptureFixture[str]
                                               ) -> None:
    assert mfd(["admin", "--store", two.url, "user-add", "--org", two.a, "--admin",
                "root@acme.test", "Root"]) == 0
    assert admin.require_user(two.store, "root@acme.test").role == "admin"
    assert admin.org_audit(two.store, two.a, action="user.add")[0][4] == "role admin"
    with pytest.raises(StoreError, match="a role is user or admin"):
        admin.add_user(two.store, two.a, "eve@acme.test", "Eve", role="root")
    assert [u.email for u in admin.users(two.store, two.a)] == ["ann@acme.test",
                                                                "root@acme.test"]
    assert mfd(["admin", "--store", two.url, "role-set", "root@acme.test", "user"]) == 0
    assert "root@acme.test is now a user" in capsys.readouterr().out
    assert admin.require_user(two.store, "root@acme.test").role == "user"
    assert mfd(["admin", "--store", two.url, "users", "--org", two.a]) == 0
    assert "\troot@acme.test\tRoot\tuser" in capsys.readouterr().out


def test_a_technician_badge_comes_from_a_file_and_argv_is_warned_about(
        two: Two, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    badge = tmp_path / "badge.txt"
    badge.write_text("0007654321\n", encoding="utf-8")
    assert mfd(["admin", "--store", two.url, "technician", "add", "--org", two.a,
                "--name", "Bob Fixit", "--badge-file", str(badge)]) == 0
    out = capsys.readouterr()
    assert "added with a badge" in out.out and "warning" not in out.err
    assert "0007654321" not in out.out + out.err
    # The badge from the file is the one stored: a user cannot be given it now.
    with pytest.raises(StoreError, match="technician's badge"):
        directory.add_card(two.store, "ann@acme.test", "0007654321")
    assert mfd(["admin", "--store", two.url, "technician", "add", "--org", two.a,
                "--name", "Old Habit", "--badge", "0001112223"]) == 0
    err = capsys.readouterr().err
    assert "--badge puts the badge number on the command line" in err and "--badge-file" in err
    assert "0001112223" not in err
    empty = tmp_path / "empty.txt"
    empty.write_text("\n", encoding="utf-8")
    assert mfd(["admin", "--store", two.url, "technician", "add", "--org", two.a,
                "--name", "Nobody", "--badge-file", str(empty)]) != 0
    assert "is empty" in capsys.readouterr().err


def test_every_audit_entry_an_org_admin_causes_lands_in_that_org(two: Two,
                                                                 tmp_path: Path) -> None:
    s, org = two.store, two.a
    with s.transaction():
        before = len(s.audit_org_of(10_000))
    linking = Linking(s, base_url="http://portal.test")
    admin.add_user(s, org, "cy@acme.test", "Cy")
    admin.set_role(s, "cy@acme.test", "admin")
    admin.set_user_language(s, "cy@acme.test", "de")
    admin.change_org_settings(s, org, hold_hours=12.0)
    admin.set_aop_pending(s, org, "join")
    admin.unlock(s, "user", "cy@acme.test")
    admin.unlock(s, "device", "copier-a")
    directory.add_card(s, "cy@acme.test", "0000000042")
    directory.set_access_code(s, "cy@acme.test", "739184")
    directory.set_password(s, "cy@acme.test", "a long enough password")
    linking.remove_cards("cy@acme.test")
    linking.reset_access_code("cy@acme.test")
    linking.invite_classic("cy@acme.test")
    linking.invite_portal("cy@acme.test")
    linking.import_users(org, "dee@acme.test,Dee\n", name="staff.csv")
    linking.share_link(org, rotate=True)
    linking.add_queue(org, "Colour A3")
    devices.new_registration_code(s, "copier-a", time.time())
    admin.replace_device_config(s, "copier-a", "[policy]\nidle_timeout = 90\n")
    tech = admin.add_technician(s, org, "Tess", code=True).technician
    admin.revoke_technician(s, tech.id)
    directory.submit_job(s, "cy@acme.test", "report.pdf", b"%PDF-1.4 x")
    with s.transaction():
        written = s.audit_org_of(10_000)[: len(s.audit_org_of(10_000)) - before]
    assert len(written) >= 22
    assert [(action, subject) for action, subject, o in written if o != org] == []
    # And the other org's administrators read none of it.
    assert {row[2] for row in admin.org_audit(two.store, two.b)} == {"org.add", "user.add",
                                                                     "device.add"}


def test_an_org_reads_its_own_users_devices_jobs_and_audit_only(two: Two) -> None:
    s = two.store
    a_job = directory.submit_job(s, "ann@acme.test", "a.pdf", b"%PDF a")
    b_job = directory.submit_job(s, "bea@globex.test", "b.pdf", b"%PDF b")
    assert admin.org_user(s, two.a, two.ann).email == "ann@acme.test"
    for call in (lambda: admin.org_user(s, two.a, two.bea),
                 lambda: admin.org_device(s, two.a, "copier-b"),
                 lambda: admin.org_device(s, two.a, "no-such-copier")):
        with pytest.raises(StoreError) as err:
            call()
        assert err.value.code == "not_found"
    assert [d.device_id for d in admin.device_rows(s, two.a)] == ["copier-a"]
    assert {d.device_id for d in admin.device_rows(s)} == {"copier-a", "copier-b"}
    row = admin.org_device(s, two.a, "copier-a")
    assert (row.status, row.last_seen, row.config_version) == ("unknown", 0.0, 0)
    assert [j.id for j in admin.org_jobs(s, two.a)] == [a_job]
    assert [j.id for j in admin.org_jobs(s, two.a, state="HELD", user_id=two.ann)] == [a_job]
    assert admin.org_jobs(s, two.a, state="PRINTED") == []
    assert admin.org_jobs(s, two.a, user_id=two.bea) == []  # another org's user: nothing
    assert [j.id for j in admin.org_jobs(s, two.b)] == [b_job]
    with pytest.raises(StoreError, match="job state"):
        admin.org_jobs(s, two.a, state="BURNT")
    # The audit by family, actor, subject and time.
    assert {r[2] for r in admin.org_audit(s, two.a, action="job")} == {"job.submit"}
    assert [r[3] for r in admin.org_audit(s, two.a, subject=f"user:{two.ann}")] == [
        f"user:{two.ann}"]
    assert admin.org_audit(s, two.a, actor=f"user:{two.ann}")[0][2] == "job.submit"
    assert admin.org_audit(s, two.a, since=time.time() + 60) == []
    assert admin.org_audit(s, two.a, until=0.0) == []
    assert all(r[3] != f"job:{b_job}" for r in admin.org_audit(s, two.a, limit=1000))


def test_the_config_editor_sets_what_the_text_has_and_unsets_what_it_lost(two: Two) -> None:
    s = two.store
    version, text = admin.device_config_toml(s, "copier-a")
    assert (version, text) == (0, "")
    with pytest.raises(StoreError, match="not TOML"):
        admin.replace_device_config(s, "copier-a", "[policy\n")
    with pytest.raises(MfdError, match="not stored"):  # the device's own schema says no
        admin.replace_device_config(s, "copier-a", "[policy]\nidle_timeout = \"soon\"\n")
    stored = admin.replace_device_config(
        s, "copier-a", "[policy]\nidle_timeout = 90\ncard_pin = true\n")
    assert stored.version == 1
    assert admin.device_config_toml(s, "copier-a")[0] == 1
    with pytest.raises(StoreError, match="unchanged"):
        admin.replace_device_config(s, "copier-a", admin.device_config_toml(s, "copier-a")[1])
    assert admin.replace_device_config(s, "copier-a", "[policy]\nidle_timeout = 90\n"
                                       ).version == 2
    config = devices.device_config(s, "copier-a")
    assert config == {"version": 2, "policy": {"idle_timeout": 90}}
    assert json.loads(json.dumps(config))  # stored as the device will be sent it


def test_an_acting_administrator_is_named_in_the_audit(two: Two) -> None:
    token = ACTING_ADMIN.set(two.ann)
    try:
        admin.set_role(two.store, "bea@globex.test", "admin")
    finally:
        ACTING_ADMIN.reset(token)
    admin.set_role(two.store, "bea@globex.test", "user")
    rows = admin.org_audit(two.store, two.b, action="user.role")
    assert [(r[1], r[4]) for r in rows] == [("admin", "admin -> user"),
                                            (f"admin:{two.ann}", "user -> admin")]
    by_admins = admin.org_audit(two.store, two.b, actor="admin")
    assert {r[1] for r in by_admins} == {"admin", f"admin:{two.ann}"}
    assert {r[2] for r in by_admins} == {"org.add", "user.add", "device.add", "user.role"}
    assert admin.org_audit(two.store, two.b, actor=f"admin:{two.ann}")[0][4] == "user -> admin"

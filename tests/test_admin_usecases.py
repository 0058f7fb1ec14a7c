"""cloud/admin.py, the administrator's use-cases every front end calls, on a real store of each
backend: the checks and the audit entries are theirs, not the CLI's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloud import admin, directory, throttle
from cloud.demo import seed_demo
from cloud.storage.factory import open_store
from cloud.storage.port import CloudStore
from protocol.errors import StoreError


@pytest.fixture
def store(store_url: str) -> Iterator[CloudStore]:
    s = open_store(store_url)
    seed_demo(s, now=0.0)
    yield s
    s.close()


def _actions(store: CloudStore) -> list[str]:
    return [row[2] for row in admin.audit_log(store, 100)]


def test_orgs_and_users_are_checked_and_audited(store: CloudStore) -> None:
    org = admin.create_org(store, " Acme ")
    assert org in admin.org_ids(store) and "org.add" in _actions(store)
    with pytest.raises(StoreError, match="needs a name"):
        admin.create_org(store, " ")
    user = admin.add_user(store, org, "ann@acme.example", "Ann")
    assert [u.id for u in admin.users(store, org)] == [user] and "user.add" in _actions(store)
    with pytest.raises(StoreError, match="not an email"):
        admin.add_user(store, org, "ann", "Ann")
    with pytest.raises(StoreError, match="no org org_typo") as err:
        admin.users(store, "org_typo")
    assert err.value.code == "not_found" and org in str(err.value)
    # Two orgs now: "the only org" is no longer a guess to make.
    with pytest.raises(StoreError, match="pass --org"):
        admin.resolve_org(store, None)


def test_org_settings_change_once_and_say_what_changed(store: CloudStore) -> None:
    before = len(_actions(store))
    assert admin.change_org_settings(store, "org_demo").hold_hours == 8.0
    assert len(_actions(store)) == before  # nothing changed, nothing written
    new = admin.change_org_settings(store, "org_demo", hold_hours=24.0)
    assert new.hold_hours == 24.0 and admin.org_settings(store, "org_demo").hold_hours == 24.0
    assert admin.audit_log(store, 1)[0][2:] == ("org.settings", "org:org_demo",
                                                "hold_hours=24.0")
    with pytest.raises(StoreError, match="no org setting"):
        admin.change_org_settings(store, "org_demo", colour="red")
    with pytest.raises(StoreError, match="hold time"):
        admin.change_org_settings(store, "org_demo", hold_hours=1000.0)
    assert admin.set_aop_pending(store, "org_demo", "join").aop_pending == "join"


def test_names_that_do_not_exist_are_named(store: CloudStore) -> None:
    with pytest.raises(StoreError, match="no device nodev"):
        admin.unlock(store, "device", "nodev")
    with pytest.raises(StoreError, match=r"no user nobody@example\.org"):
        admin.unlock(store, "user", "nobody@example.org")
    with pytest.raises(StoreError, match="no device nodev"):
        throttle.lift(store, "device", "nodev")
    assert admin.unlock(store, "user", " Alice@Example.org ") is False
    with pytest.raises(StoreError, match="card number"):
        directory.add_card(store, "alice@example.org", "00 12")
    with pytest.raises(StoreError, match="--set"):
        admin.push_device_config(store, "copier-1", {})

"""User groups (cloud/admin.py ``group_*``, cloud/storage/sql_groups.py) and offline mode's
``offline_users = "group:NAME"`` (cloud/offline.py), on SQLite and on PostgreSQL: the groups
are made with `mfd admin group` as an administrator would, and each bundle is opened and
checked as a device does (tests/test_offline_cloud.py's World)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloud import admin
from mfdkit.cli import main
from protocol.errors import ConfigError, StoreError
from protocol.managed import Policy, parse_policy
from tests.test_offline_cloud import ALICE, BOB, CHEN, DAY, World

DAVE = "dave@example.org"  # a member with no card and no code: nothing to sign in with offline


@pytest.fixture
def world(store_url: str) -> Iterator[World]:
    w = World(store_url)
    yield w
    w.store.close()


def listed(world: World) -> list[str]:
    return [u.user_id for u in world.bundle().users]


def test_a_group_policy_lists_its_members_with_verifiers_and_drops_one_removed(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    alice, bob, chen = (world.user_id(u) for u in (ALICE, BOB, CHEN))
    dave = admin.add_user(world.store, "org_demo", DAVE, "Dave Night")
    start = world.clock.now
    world.clock.now = start - DAY
    world.sign_in(BOB, method="code")
    world.clock.now = start
    world.sign_in(ALICE)
    world.sign_in(CHEN)  # signed in here, but not of the group

    cli = ["admin", "--store", world.url, "group"]
    assert main([*cli, "add", "night-shift", ALICE.email, BOB.email, DAVE]) == 0
    assert "3 added" in capsys.readouterr().out
    assert main([*cli, "add", "night-shift", ALICE.email]) == 0  # a member already: no change
    assert "0 added" in capsys.readouterr().out
    assert main([*cli, "list"]) == 0
    assert capsys.readouterr().out.splitlines() == ["night-shift\t3"]
    assert main([*cli, "list", "night-shift"]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == [
        ALICE.email, BOB.email, DAVE]

    world.policy(offline_users="group:night-shift")
    assert listed(world) == [alice, bob]  # most recently active first; Dave has no verifier
    world.policy(offline_users="group:night-shift", offline_max_users=1)
    assert listed(world) == [alice]
    world.policy(offline_users="group:day-shift")  # no such group: nobody
    assert listed(world) == []

    world.policy(offline_users="group:night-shift")
    assert main([*cli, "remove", "night-shift", BOB.email]) == 0
    assert "1 removed" in capsys.readouterr().out
    assert listed(world) == [alice]
    assert chen not in listed(world)

    assert sorted(a[3] for a in world.audits("group.add")) == sorted(
        f"user:{i}" for i in (alice, bob, dave))
    assert [(a[1], a[3], a[4]) for a in world.audits("group.remove")] == [
        ("admin", f"user:{bob}", "group night-shift")]


def test_group_commands_refuse_bad_names_and_unknown_members(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    cli = ["admin", "--store", world.url, "group"]
    assert main([*cli, "add", "night shift", ALICE.email]) != 0
    assert "not a group name" in capsys.readouterr().err
    assert main([*cli, "add", "night-shift", ALICE.email, "nobody@example.org"]) != 0
    assert "no user nobody@example.org" in capsys.readouterr().err
    assert main([*cli, "remove", "night-shift", ALICE.email]) != 0  # nothing was added
    assert "none of them is in group" in capsys.readouterr().err
    assert main([*cli, "list", "night-shift"]) != 0
    assert world.audits("group.add") == [] and world.audits("group.remove") == []
    other = admin.create_org(world.store, "Other")
    admin.add_user(world.store, other, "eve@example.org", "Eve Else")
    with pytest.raises(StoreError, match=r"no user eve@example\.org in org"):
        admin.group_add(world.store, "org_demo", "night-shift", ["eve@example.org"])


@pytest.mark.parametrize("value", ["group:", "group:night shift", "group:" + "x" * 65,
                                   "group:a/b", "groups:x", "nobody"])
def test_the_policy_refuses_a_bad_offline_users_naming_the_key(value: str) -> None:
    with pytest.raises(ConfigError, match=r"policy\.offline_users"):
        parse_policy({"offline_users": value}, Policy())


def test_the_policy_takes_a_group() -> None:
    policy = parse_policy({"offline_users": "group:Night_shift.2-b"}, Policy())
    assert policy.offline_users == "group:Night_shift.2-b"

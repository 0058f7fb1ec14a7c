"""A user's own language on the panel (issue 10): the cloud keeps it (set, changed, audited, on
SQLite and PostgreSQL), the identify answer carries it, and the session speaks it while that
user is signed in and the device's language again once they are gone. Last, the whole way:
a Japanese user badges in at a German copier over the real broker."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import World
from e2e_helpers import serial_device
from panel_helpers import dummy_video

from cloud import admin
from cloud.demo import DEMO_USERS, seed_demo
from cloud.service import CloudService
from cloud.storage import schema
from cloud.storage.factory import open_store
from cloud.storage.port import CloudStore
from cloud.storage.sql import SqlStore
from device_app.app import DeviceApp
from device_app.panel.renderer import PanelRenderer
from device_app.panel.tree import TextNode
from device_app.session import (
    Answered,
    CardPresented,
    Policy,
    Send,
    SessionMachine,
    State,
    Tapped,
)
from device_app.view import Action, PanelView, Screen
from firmware_stubs.mfd_controller import MfdControllerStub
from firmware_stubs.serial_readers import Em4100Stub
from protocol import messages as m
from protocol.errors import StoreError

ALICE = DEMO_USERS[0]
# What the panel says, from its catalogues (device_app/i18n/locales).
JA_IDLE, DE_IDLE = "カードをかざしてください", "Karte an den Leser halten"
JA_HELLO = "Alice さん、こんにちは"


# --------------------------------------------------------------------------- the cloud


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    s = open_store(store_url)
    seed_demo(s, now=0.0)
    yield s
    s.close()


def _audit(store: CloudStore) -> list[tuple[str, str, str]]:
    return [(row[2], row[3], row[4]) for row in admin.audit_log(store, 100)]


def test_a_users_language_is_set_changed_cleared_and_audited(store: CloudStore) -> None:
    uid = admin.add_user(store, "org_demo", "aiko@example.org", "Aiko Sato", language="ja")
    assert admin.require_user(store, "aiko@example.org").language == "ja"
    assert ("user.add", f"user:{uid}", "language ja") in _audit(store)

    changed = admin.set_user_language(store, "AIKO@example.org", " fr-CH ")
    assert changed.language == "fr-CH" == admin.require_user(store, "aiko@example.org").language
    assert _audit(store)[0] == ("user.language", f"user:{uid}", "ja -> fr-CH")
    cleared = admin.set_user_language(store, "aiko@example.org", "")
    assert cleared.language == "" == admin.require_user(store, "aiko@example.org").language
    assert _audit(store)[0] == ("user.language", f"user:{uid}", "fr-CH -> (none)")
    # The same language again changes nothing and writes nothing.
    before = len(_audit(store))
    admin.set_user_language(store, "aiko@example.org", "")
    assert len(_audit(store)) == before

    # A user added without one has none: the copier's own language.
    assert admin.require_user(store, ALICE.email).language == ""


@pytest.mark.parametrize("tag", ["日本語", "de-", "j", "ja\nde", "de CH", "١٢", "e" * 40])
def test_a_bad_language_is_refused_and_nothing_changes(store: CloudStore, tag: str) -> None:
    before = len(_audit(store))
    with pytest.raises(StoreError, match="not a language tag") as err:
        admin.add_user(store, "org_demo", "aiko@example.org", "Aiko", language=tag)
    assert err.value.code == "invalid_field"
    with pytest.raises(StoreError, match="not a language tag"):
        admin.set_user_language(store, ALICE.email, tag)
    assert admin.require_user(store, ALICE.email).language == ""
    assert store.user_by_email("aiko@example.org") is None
    assert len(_audit(store)) == before


def test_changing_the_language_of_nobody_names_the_email(store: CloudStore) -> None:
    with pytest.raises(StoreError, match=r"no user nobody@example\.org") as err:
        admin.set_user_language(store, "nobody@example.org", "ja")
    assert err.value.code == "not_found"


def test_the_identify_answer_carries_the_users_language(store: CloudStore) -> None:
    service = CloudService(store)

    def identify(method: str, value: str) -> m.IdentifyResult:
        answer = m.decode_response(service.handle("copier-1", m.encode(
            m.Identify(method=method, value=value))), "identify")
        assert isinstance(answer, m.IdentifyResult)
        return answer

    assert identify("card", ALICE.badge).language == ""
    admin.set_user_language(store, ALICE.email, "ja")
    assert identify("card", ALICE.badge).language == "ja"
    assert identify("code", ALICE.access_code).language == "ja"
    # A value no admin path writes (put in by hand) is not sent: the user still signs in.
    with store.transaction():
        store.set_user_language(admin.require_user(store, ALICE.email).id, "日本語")
    answer = identify("card", ALICE.badge)
    assert answer.language == "" and answer.display_name == ALICE.name


def test_the_language_survives_a_restart_of_the_store(store_url: str,
                                                      store: CloudStore) -> None:
    admin.set_user_language(store, ALICE.email, "de-CH")
    again = open_store(store_url)
    try:
        assert admin.require_user(again, ALICE.email).language == "de-CH"
        assert [u.language for u in admin.users(again, "org_demo")
                if u.email == ALICE.email] == ["de-CH"]
    finally:
        again.close()


def test_a_store_from_before_the_language_gains_it_empty(store_url: str,
                                                          store: SqlStore) -> None:
    """A store at schema 6 (users without the column) opens at the latest schema with every
    user's language "" (the copier's own), and takes one afterwards."""
    with store.transaction():
        # Back to schema 6: what the steps after it added goes too.
        store.execute("ALTER TABLE users DROP COLUMN language")
        store.execute("ALTER TABLE users DROP COLUMN role")
        store.execute("ALTER TABLE audit DROP COLUMN org_id")
        store.execute("DROP TABLE release_orders")
        store.execute("DELETE FROM schema_version WHERE version > 6")
    store.close()
    upgraded = open_store(store_url, create=False)
    try:
        assert upgraded.schema_version() == schema.LATEST
        assert admin.require_user(upgraded, ALICE.email).language == ""
        admin.set_user_language(upgraded, ALICE.email, "ja")
        assert admin.require_user(upgraded, ALICE.email).language == "ja"
    finally:
        upgraded.close()


def _mfd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mfdkit", *args], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ), check=False)


@pytest.mark.integration
def test_mfd_admin_sets_a_language_at_user_add_and_user_set(store_url: str,
                                                            store: CloudStore) -> None:
    added = _mfd("admin", "--store", store_url, "user-add", "--org", "org_demo",
                 "--language", "ja", "aiko@example.org", "Aiko Sato")
    assert added.returncode == 0, added.stderr
    assert admin.require_user(store, "aiko@example.org").language == "ja"
    changed = _mfd("admin", "--store", store_url, "user-set", "aiko@example.org",
                   "--language", "fr")
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.strip() == "language of aiko@example.org: fr"
    assert admin.require_user(store, "aiko@example.org").language == "fr"
    cleared = _mfd("admin", "--store", store_url, "user-set", "aiko@example.org",
                   "--language", "")
    assert "none" in cleared.stdout and admin.require_user(store, "aiko@example.org").language == ""
    bad = _mfd("admin", "--store", store_url, "user-set", "aiko@example.org",
               "--language", "日本語")
    assert bad.returncode == 1 and bad.stderr.startswith("mfd admin: error: ")
    assert "not a language tag" in bad.stderr and bad.stderr.strip().count("\n") == 0


# --------------------------------------------------------------------------- the session


def _machine(language: str = "de") -> SessionMachine:
    ids = itertools.count(1)
    return SessionMachine(new_id=lambda: f"id-{next(ids)}", policy=Policy(language=language),
                          strict=True)


def _sent(effects: list[Any]) -> Send:
    [effect] = [e for e in effects if isinstance(e, Send)]
    return effect


def _job(i: int) -> m.JobSummary:
    return m.JobSummary(job_id=f"j{i}", name=f"Job {i}", pages=1, color=False, duplex=False,
                        copies=1, size=100, submitted_at=1000.0 - i)


def _sign_in(sm: SessionMachine, language: str | None) -> None:
    ident = _sent(sm.handle(CardPresented("111")))
    result = m.IdentifyResult("tok", "u1", "Alice", 300) if language is None else \
        m.IdentifyResult("tok", "u1", "Alice", 300, language=language)
    lst = _sent(sm.handle(Answered(ident.tag, result)))
    assert sm.state is State.LOADING
    sm.handle(Answered(lst.tag, m.JobList((_job(1),), 1)))
    assert sm.state is State.JOBS


def test_a_japanese_user_at_a_german_copier_reads_japanese_until_logout() -> None:
    sm = _machine("de")
    assert sm.view().title == DE_IDLE
    ident = _sent(sm.handle(CardPresented("111")))
    lst = _sent(sm.handle(Answered(ident.tag, m.IdentifyResult("tok", "u1", "Alice", 300,
                                                               language="ja"))))
    loading = sm.view()
    assert loading.title == JA_HELLO and loading.language == "ja"
    sm.handle(Answered(lst.tag, m.JobList((_job(1),), 1)))
    jobs = sm.view()
    # The panel draws its own labels (Log out, Release) in the view's language.
    assert jobs.screen is Screen.JOBS and jobs.language == "ja" and jobs.user_name == "Alice"
    assert sm.user_language == "ja"

    _sent(sm.handle(Tapped(Action.LOGOUT)))
    idle = sm.view()
    assert sm.state is State.IDLE and idle.title == DE_IDLE and idle.language == "de"
    assert sm.user_language == ""


@pytest.mark.parametrize("language", [None, "", "pt-BR"])
def test_without_a_language_the_panel_has_the_device_speaks_its_own(
        language: str | None) -> None:
    """An older cloud (no field), a user without a preference, and a language the panel has
    no words for: the copier's language stays."""
    sm = _machine("de")
    _sign_in(sm, language)
    assert sm.view().language == "de"


def test_the_next_user_does_not_inherit_the_language() -> None:
    sm = _machine("de")
    _sign_in(sm, "ja")
    assert sm.view().language == "ja"
    # Another badge logs Alice out and signs the next one in; until the cloud answers, and
    # after an answer without a language, it is the copier's.
    out = sm.handle(CardPresented("222"))
    assert sm.view().language == "de"
    ident = next(e for e in out if isinstance(e, Send) and isinstance(e.request, m.Identify))
    sm.handle(Answered(ident.tag, m.IdentifyResult("tok2", "u2", "Bob", 300)))
    assert sm.view().language == "de" and sm.view().title == "Hallo, Bob"


def test_a_technicians_diagnostics_stay_in_the_devices_language() -> None:
    sm = _machine("de")
    ident = _sent(sm.handle(CardPresented("999")))
    sm.handle(Answered(ident.tag, m.IdentifyResult("-", "tech_1", "Technician", 0,
                                                   role=m.ROLE_TECHNICIAN, language="ja")))
    assert sm.state is State.DIAGNOSTICS
    assert sm.view().language == "de" and sm.user_language == ""


# --------------------------------------------------------------------------- the whole way


def _drawn(view: PanelView) -> list[str]:
    """Every text the panel draws for ``view`` (off-screen, SDL's dummy driver)."""
    with dummy_video():
        renderer = PanelRenderer((480, 800))
        renderer.draw(view, now=0.0)
        return [n.text for n in renderer.tree if isinstance(n, TextNode)]


@pytest.fixture
def german_copier(world: World) -> Iterator[tuple[DeviceApp, Em4100Stub, MfdControllerStub]]:
    with serial_device(world, "Kopierer 1", Policy(language="de")) as parts:
        yield parts


@pytest.mark.integration
def test_a_japanese_user_badges_in_at_a_german_copier_over_the_broker(
        german_copier: tuple[DeviceApp, Em4100Stub, MfdControllerStub], world: World) -> None:
    app, badge, engine = german_copier
    admin.set_user_language(world.store, ALICE.email, "ja")
    assert app.view().title == DE_IDLE

    badge.present(ALICE.badge_tag)
    assert app.run_until(lambda a: a.machine.state is State.JOBS, 5)
    view = app.view()
    assert view.language == "ja" and view.user_name == ALICE.name and view.total_jobs == 5
    # The panel's own labels follow: its Log out button is drawn in Japanese.
    assert "ログアウト" in _drawn(view) and "Log out" not in _drawn(view)
    app.tap(Action.SELECT, view.jobs[0].job_id)
    app.tap(Action.RELEASE)
    assert app.run_until(lambda a: len(engine.printed) == 1
                         and a.machine.state is State.JOBS, 5)
    assert app.view().message == "1 件を印刷しました"

    app.tap(Action.LOGOUT)
    assert app.run_until(lambda a: a.machine.state is State.IDLE, 2)
    assert app.view().title == DE_IDLE and app.view().language == "de"
    # The idle screen's own button is German again (the title wraps over two lines).
    assert "Zugangscode eingeben" in _drawn(app.view())

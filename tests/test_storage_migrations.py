"""The store's schema versions: a store made before versions existed, by the old code's DDL,
upgrades in place with its data; a store upgrades once; a store a newer release upgraded is
refused. On SQLite and PostgreSQL (the ``store_url`` fixture)."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
import pytest

from cloud.linking import Linking
from cloud.storage import schema
from cloud.storage.factory import open_store
from protocol.errors import StoreError

# The DDL of the last release before schema versions, verbatim: what an existing store has.
OLD_CORE = """
CREATE TABLE IF NOT EXISTS orgs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, secret {blob} NOT NULL,
    hold_hours {real} NOT NULL DEFAULT 8, card_policy TEXT NOT NULL DEFAULT 'replace_oldest',
    release_changes INTEGER NOT NULL DEFAULT 1,
    aop_pending TEXT NOT NULL DEFAULT 'print_again');
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id),
    email TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL, password_hash TEXT);
CREATE TABLE IF NOT EXISTS cards (
    org_id TEXT NOT NULL, card_hash TEXT NOT NULL, user_id TEXT NOT NULL REFERENCES users(id),
    added_at {real} NOT NULL, PRIMARY KEY (org_id, card_hash));
CREATE INDEX IF NOT EXISTS cards_user ON cards (user_id);
CREATE TABLE IF NOT EXISTS access_codes (
    org_id TEXT NOT NULL, code_hash TEXT NOT NULL, user_id TEXT NOT NULL REFERENCES users(id),
    PRIMARY KEY (org_id, code_hash));
CREATE UNIQUE INDEX IF NOT EXISTS access_codes_user ON access_codes (user_id);
CREATE TABLE IF NOT EXISTS failures (
    scope TEXT NOT NULL, subject TEXT NOT NULL, at {real} NOT NULL);
CREATE INDEX IF NOT EXISTS failures_subject ON failures (scope, subject, at);
CREATE TABLE IF NOT EXISTS lockouts (
    scope TEXT NOT NULL, subject TEXT NOT NULL, until {real} NOT NULL,
    PRIMARY KEY (scope, subject));
CREATE TABLE IF NOT EXISTS throttles (
    scope TEXT NOT NULL, subject TEXT NOT NULL, tat {real} NOT NULL DEFAULT 0,
    until {real} NOT NULL DEFAULT 0, started_at {real} NOT NULL DEFAULT 0,
    refused BIGINT NOT NULL DEFAULT 0, unaudited BIGINT NOT NULL DEFAULT 0,
    audited_at {real} NOT NULL DEFAULT 0, PRIMARY KEY (scope, subject));
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), name TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'unknown', epoch BIGINT NOT NULL DEFAULT -1,
    status_at {real} NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY, device_id TEXT NOT NULL, user_id TEXT NOT NULL,
    expires_at {real} NOT NULL, ended INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, owner_id TEXT REFERENCES users(id), name TEXT NOT NULL,
    pages INTEGER NOT NULL, color INTEGER NOT NULL, duplex INTEGER NOT NULL,
    copies INTEGER NOT NULL, size BIGINT NOT NULL, sha256 TEXT NOT NULL,
    submitted_at {real} NOT NULL, source TEXT NOT NULL, state TEXT NOT NULL,
    release_id TEXT, device_id TEXT, updated_at {real} NOT NULL,
    expires_at {real} NOT NULL, client_id TEXT, fetched_at {real});
CREATE INDEX IF NOT EXISTS jobs_owner_state ON jobs (owner_id, state, submitted_at);
CREATE INDEX IF NOT EXISTS jobs_expiry ON jobs (state, expires_at);
CREATE TABLE IF NOT EXISTS documents (
    job_id TEXT PRIMARY KEY REFERENCES jobs(id), data {blob} NOT NULL);
CREATE TABLE IF NOT EXISTS releases (
    id TEXT PRIMARY KEY, device_id TEXT NOT NULL, user_id TEXT NOT NULL,
    created_at {real} NOT NULL, options TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS replies (
    device_id TEXT NOT NULL, request_id TEXT NOT NULL, kind TEXT NOT NULL, reply {blob} NOT NULL,
    created_at {real} NOT NULL, PRIMARY KEY (device_id, request_id));
CREATE INDEX IF NOT EXISTS replies_age ON replies (created_at);
CREATE TABLE IF NOT EXISTS audit (
    id {auto_id}, at {real} NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '');
"""

OLD_DEVICES = """
CREATE TABLE IF NOT EXISTS device_registrations (
    code_hash TEXT PRIMARY KEY, device_id TEXT NOT NULL REFERENCES devices(id),
    expires_at {real} NOT NULL, used_at {real});
CREATE TABLE IF NOT EXISTS device_configs (
    device_id TEXT PRIMARY KEY REFERENCES devices(id), version INTEGER NOT NULL,
    config TEXT NOT NULL, pushed_version INTEGER NOT NULL DEFAULT 0,
    applied_version INTEGER NOT NULL DEFAULT 0, refused_version INTEGER NOT NULL DEFAULT 0,
    refusal TEXT NOT NULL DEFAULT '', updated_at {real} NOT NULL,
    pushed_at {real} NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS device_engines (
    device_id TEXT PRIMARY KEY REFERENCES devices(id), engine TEXT NOT NULL,
    updated_at {real} NOT NULL);
"""

OLD_LINKING = """
CREATE TABLE IF NOT EXISTS client_installs (
    id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), kind TEXT NOT NULL,
    machine TEXT NOT NULL, os_user TEXT NOT NULL, user_id TEXT REFERENCES users(id),
    token_hash TEXT NOT NULL UNIQUE, via TEXT NOT NULL, created_at {real} NOT NULL,
    linked_at {real}, revoked_at {real});
CREATE UNIQUE INDEX IF NOT EXISTS client_installs_seat
    ON client_installs (org_id, kind, machine, os_user) WHERE revoked_at IS NULL;
CREATE INDEX IF NOT EXISTS client_installs_user ON client_installs (user_id);
CREATE TABLE IF NOT EXISTS installer_tokens (
    id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, org_id TEXT NOT NULL REFERENCES orgs(id),
    user_id TEXT REFERENCES users(id), purpose TEXT NOT NULL, created_at {real} NOT NULL,
    expires_at {real} NOT NULL, revoked_at {real}, uses INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS invitations (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, org_id TEXT NOT NULL REFERENCES orgs(id),
    user_id TEXT NOT NULL REFERENCES users(id), token_hash TEXT UNIQUE, installer_id TEXT,
    created_at {real} NOT NULL, expires_at {real} NOT NULL, accepted_at {real});
CREATE TABLE IF NOT EXISTS portal_sessions (
    token_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id),
    created_at {real} NOT NULL, expires_at {real} NOT NULL, ended INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS auth_requests (
    id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL REFERENCES client_installs(id), job_id TEXT,
    created_at {real} NOT NULL, expires_at {real} NOT NULL, used_at {real}, user_id TEXT);
CREATE INDEX IF NOT EXISTS auth_requests_client ON auth_requests (client_id);
CREATE TABLE IF NOT EXISTS linking_codes (
    id TEXT PRIMARY KEY, code_hash TEXT NOT NULL UNIQUE, user_id TEXT NOT NULL REFERENCES users(id),
    created_at {real} NOT NULL, expires_at {real} NOT NULL, used_at {real});
CREATE TABLE IF NOT EXISTS print_queues (
    id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), name TEXT NOT NULL,
    created_at {real} NOT NULL, UNIQUE (org_id, name));
CREATE TABLE IF NOT EXISTS share_links (
    org_id TEXT PRIMARY KEY REFERENCES orgs(id), generation INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS portal_config (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


#: What each backend put in the placeholders then.
TYPES = {"sqlite": {"blob": "BLOB", "real": "REAL", "auto_id": "INTEGER PRIMARY KEY AUTOINCREMENT"},
         "postgres": {"blob": "BYTEA", "real": "DOUBLE PRECISION",
                      "auto_id": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"}}


def _connect(url: str) -> Any:
    if url.startswith("sqlite:"):
        return sqlite3.connect(url.removeprefix("sqlite:///"))
    return psycopg.connect(url)


def _old_store(url: str, *, without: tuple[str, ...] = ()) -> None:
    """Create the tables as the old code did, less the ``without`` columns (an older release
    still: they were added later), with an org, a user and a held job in them."""
    kind = "sqlite" if url.startswith("sqlite:") else "postgres"
    text = OLD_CORE + OLD_DEVICES + OLD_LINKING
    for column in without:
        assert column in text
        text = text.replace(column, "")
    text = text.format(**TYPES[kind])
    con = _connect(url)
    for statement in (s.strip() for s in text.split(";")):
        if statement:
            con.execute(statement)
    mark = "?" if kind == "sqlite" else "%s"
    con.execute(f"INSERT INTO orgs (id, name, secret) VALUES ({mark}, {mark}, {mark})",
                ("org_old", "Old Org", b"k" * 32))
    con.execute(f"INSERT INTO users (id, org_id, email, display_name) VALUES "
                f"({mark}, {mark}, {mark}, {mark})", ("u_old", "org_old", "old@example.org", "Old"))
    con.execute("INSERT INTO jobs (id, owner_id, name, pages, color, duplex, copies, size, sha256,"
                " submitted_at, source, state, updated_at, expires_at) VALUES "
                f"({', '.join([mark] * 14)})",
                ("j_old", "u_old", "old.pdf", 1, 0, 0, 1, 3, "00", 1.0, "test", "HELD", 1.0,
                 9e12))
    con.commit()
    con.close()


@pytest.mark.parametrize("without", [(), (", fetched_at {real}",
                                          ",\n    pushed_at {real} NOT NULL DEFAULT 0")],
                         ids=["last-release", "older-release"])
def test_a_store_from_before_versions_upgrades_with_its_data(store_url: str,
                                                              without: tuple[str, ...]) -> None:
    _old_store(store_url, without=without)
    store = open_store(store_url)
    assert store.schema_version() == schema.LATEST
    with store.transaction():
        assert [j.id for j in store.all_jobs("HELD")] == ["j_old"]
        assert store.lapse_unfetched_releases(0.0, 2.0) == []  # reads jobs.fetched_at
        assert store.configs_to_push(0.0) == []  # reads device_configs.pushed_at
        assert store.user_by_email("old@example.org") is not None
    steps = store.query_all("SELECT version FROM schema_version ORDER BY version")
    assert steps == [(s.version,) for s in schema.STEPS]
    store.close()


def test_a_store_upgrades_once(store_url: str) -> None:
    first = open_store(store_url)
    first.close()
    again = open_store(store_url)
    assert again.upgrade() == schema.LATEST  # nothing left to do
    assert again.query_one("SELECT count(*) FROM schema_version") == (len(schema.STEPS),)
    again.close()


def test_linking_tables_exist_without_linking_having_run(store_url: str) -> None:
    store = open_store(store_url)
    with store.transaction():
        assert store.queue_names("org_none") == ()
    Linking(store)  # creates nothing, changes no version
    assert store.schema_version() == schema.LATEST
    store.close()


def test_a_store_a_newer_release_upgraded_is_refused(store_url: str) -> None:
    store = open_store(store_url)
    with store.transaction():
        store.execute("INSERT INTO schema_version VALUES (?,?,?)", schema.LATEST + 1, 0.0,
                      "from the future")
    store.close()
    with pytest.raises(StoreError, match="newer than this release"):
        open_store(store_url)



def test_a_store_with_each_devices_last_bundle_keeps_them_by_sequence_number(
        store_url: str) -> None:
    """Step 13: the offline bundles a step-12 store kept (the last and the one before, per
    device) become rows of ``offline_issued``, still checked against."""
    store = open_store(store_url)
    with store.transaction():
        store.execute("DROP TABLE offline_issued")
        store.execute("DROP TABLE user_groups")  # step 14's: a step-12 store has none
        store.execute("CREATE TABLE offline_bundles (device_id TEXT PRIMARY KEY, seq BIGINT NOT "
                      "NULL, issued_at REAL NOT NULL, jobs TEXT NOT NULL, earlier_jobs TEXT NOT "
                      "NULL DEFAULT '')")
        store.execute("INSERT INTO offline_bundles VALUES ('dev-a', 7, 100.0, '[\"j1\"]', "
                      "'[\"j0\"]'), ('dev-b', 3, 100.0, '[]', '')")
        store.execute("DELETE FROM schema_version WHERE version >= 13")
    store.close()
    store = open_store(store_url)
    try:
        assert store.schema_version() == schema.LATEST
        with store.transaction():
            assert store.offline_last_seq("dev-a") == 7
            assert store.offline_last_seq("dev-b") == 3
            assert store.offline_bundle_jobs("dev-a", 7, 200.0) == {"j0", "j1"}
            assert store.offline_bundle_jobs("dev-a", 6, 1e12) == {"j0"}
            assert store._try("SELECT 1 FROM offline_bundles") is False
            assert store.groups("org-none") == []  # step 14 ran after it
    finally:
        store.close()

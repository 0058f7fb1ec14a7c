"""The cloud's schema, and the versioned steps that bring any older store up to it.

Tables are written in the subset of SQL that SQLite and PostgreSQL share; ``{blob}``, ``{real}``
and ``{auto_id}`` are filled in by the adapter. ``schema_version`` holds one row per step applied,
so a store knows what it has and each step runs once, in order, inside one transaction with the
others (cloud/storage/sql_base.py runs them; PostgreSQL takes an advisory lock first, since
workers starting together all upgrade).

Stores made before the version table existed have none of its rows, but may be at any release:
their tables were created ``IF NOT EXISTS`` (which leaves an existing table's columns alone) and
columns added later were added when missing. So step 1 creates what is absent, and the steps for
those later columns (2 and 3) *probe* before they add. Steps written from now on can say plainly
what they change, because the version table tells exactly which stores lack it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Where each store records the steps it has taken.
VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY, applied_at {real} NOT NULL, what TEXT NOT NULL)
"""

#: Users, cards and codes, guessing, devices, sessions, jobs, replies, audit.
CORE = """
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

#: Device registration codes, pushed configuration, reported engines (cloud/devices.py).
DEVICES = """
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

#: Client installs, installer tokens, invitations, portal sessions, Authenticate-on-Print,
#: linking codes, queues, share links (cloud/linking/).
LINKING = """
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


#: An outbox: a row per job that became HELD for its owner (submitted, linked by sign-in, back
#: from a failed or lapsed release), written in the transaction that made it HELD, so the
#: notice is never lost nor sent for a job that rolled back; the workers take rows out
#: (cloud/service.py ``devices_to_tell``) and tell the device where that user is signed in.
JOB_NOTICES = """
CREATE TABLE IF NOT EXISTS job_notices (
    id {auto_id}, user_id TEXT NOT NULL, at {real} NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id);
"""


#: Technicians' credentials (issued in cloud/admin.py, answered in cloud/identity.py): a badge
#: or an access code, each stored as the same keyed hash a user's would be (``secret_hash``).
#: An active credential is unique within its org and kind; a revoked one stays, for the audit.
TECHNICIANS = """
CREATE TABLE IF NOT EXISTS technicians (
    id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), name TEXT NOT NULL,
    kind TEXT NOT NULL, secret_hash TEXT NOT NULL, created_at {real} NOT NULL,
    revoked_at {real});
CREATE UNIQUE INDEX IF NOT EXISTS technicians_secret
    ON technicians (org_id, kind, secret_hash) WHERE revoked_at IS NULL;
"""


#: A release asked for from the User Portal for a chosen copier: written with the release in one
#: transaction (so it is never lost nor sent for a release that rolled back); the workers push it
#: to the device's command topic until the device has taken it (``taken_at``), and the device
#: prints it through the same journal as a release tapped on its panel.
RELEASE_ORDERS = """
CREATE TABLE IF NOT EXISTS release_orders (
    release_id TEXT PRIMARY KEY, device_id TEXT NOT NULL REFERENCES devices(id),
    user_id TEXT NOT NULL REFERENCES users(id), payload TEXT NOT NULL,
    created_at {real} NOT NULL, pushed_at {real} NOT NULL DEFAULT 0, taken_at {real});
CREATE INDEX IF NOT EXISTS release_orders_device ON release_orders (device_id, taken_at);
"""


#: Who a user is at the single sign-on provider: the provider's subject (``sub``) recorded at
#: the user's first single sign-on, so a later sign-in under the same email from another account
#: at the provider (an address re-assigned there) is refused. One subject per user and issuer,
#: and one user per subject.
SSO_IDENTITIES = """
CREATE TABLE IF NOT EXISTS sso_identities (
    user_id TEXT NOT NULL REFERENCES users(id), issuer TEXT NOT NULL, subject TEXT NOT NULL,
    bound_at {real} NOT NULL, PRIMARY KEY (user_id, issuer));
CREATE UNIQUE INDEX IF NOT EXISTS sso_identities_subject ON sso_identities (issuer, subject);
"""


#: Offline mode (cloud/offline.py, protocol/offline.py). ``offline_verifiers``: scrypt of each
#: card number and access code under the org's offline salt, recorded when the value passed
#: through the cloud in clear, keyed by the credential's own hash (``cred_hash``: the card's
#: or the code's), so a bundle lists a verifier only while that credential exists (joined with
#: ``cards`` / ``access_codes``): a removed card or a replaced code drops out by itself.
#: ``device_sign_ins``: the last sign-in of each user at each device (the "recent" policy).
#: ``offline_bundles``: each device's last bundle (its sequence number, the jobs it and the one
#: before listed: what the device may fetch sealed and report printed). ``offline_keys``: the
#: installation's Ed25519 signing key, one row, shared by every worker.
OFFLINE = """
CREATE TABLE IF NOT EXISTS offline_verifiers (
    org_id TEXT NOT NULL, kind TEXT NOT NULL, cred_hash TEXT NOT NULL, verifier {blob} NOT NULL,
    added_at {real} NOT NULL, PRIMARY KEY (org_id, kind, cred_hash));
CREATE TABLE IF NOT EXISTS device_sign_ins (
    device_id TEXT NOT NULL, user_id TEXT NOT NULL, at {real} NOT NULL,
    PRIMARY KEY (device_id, user_id));
CREATE INDEX IF NOT EXISTS device_sign_ins_user ON device_sign_ins (user_id, at);
CREATE TABLE IF NOT EXISTS offline_bundles (
    device_id TEXT PRIMARY KEY, seq BIGINT NOT NULL, issued_at {real} NOT NULL,
    jobs TEXT NOT NULL, earlier_jobs TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS offline_keys (
    id INTEGER PRIMARY KEY, private_key {blob} NOT NULL, created_at {real} NOT NULL);
"""


#: Every bundle made for a device and not yet expired, by (device, seq), with the jobs it
#: listed: what a report (which names the bundle it was written under) and a sealed document's
#: fetch are checked against. Replaces ``offline_bundles``, which kept the last two only: a
#: device still on bundle N after the cloud made N+1 and N+2 (answers lost, a bundle refused)
#: had its printed jobs found nowhere, and they stayed printable. Rows of the old table are
#: kept with the longest validity a policy allows (30 days), the earlier jobs as ``seq - 1``.
OFFLINE_ISSUED = """
CREATE TABLE IF NOT EXISTS offline_issued (
    device_id TEXT NOT NULL, seq BIGINT NOT NULL, issued_at {real} NOT NULL,
    expires_at {real} NOT NULL, jobs TEXT NOT NULL, PRIMARY KEY (device_id, seq));
CREATE INDEX IF NOT EXISTS offline_issued_expiry ON offline_issued (expires_at);
INSERT INTO offline_issued (device_id, seq, issued_at, expires_at, jobs)
    SELECT device_id, seq, issued_at, issued_at + 2592000, jobs FROM offline_bundles;
INSERT INTO offline_issued (device_id, seq, issued_at, expires_at, jobs)
    SELECT device_id, seq - 1, issued_at, issued_at + 2592000, earlier_jobs
    FROM offline_bundles WHERE earlier_jobs <> '';
DROP TABLE offline_bundles
"""


#: Named groups of an org's users, for a policy that chooses people by group (offline mode's
#: ``offline_users = "group:NAME"``). A group exists while it has members: no table of groups,
#: so removing its last member leaves nothing behind.
USER_GROUPS = """
CREATE TABLE IF NOT EXISTS user_groups (
    org_id TEXT NOT NULL, name TEXT NOT NULL, user_id TEXT NOT NULL REFERENCES users(id),
    added_at {real} NOT NULL, PRIMARY KEY (org_id, name, user_id));
CREATE INDEX IF NOT EXISTS user_groups_user ON user_groups (user_id)
"""


@dataclass(frozen=True, slots=True)
class Step:
    """One schema change. ``ddl`` statements run as given; ``add_column`` (table, column, type)
    adds a column only where it is missing (for changes made before versioning)."""

    version: int
    what: str
    ddl: str = ""
    add_column: tuple[str, str, str] | None = None


STEPS: tuple[Step, ...] = (
    Step(1, "the tables of the releases before schema versions", ddl=CORE + DEVICES + LINKING),
    Step(2, "jobs.fetched_at: releases whose document no device fetched lapse",
         add_column=("jobs", "fetched_at", "{real}")),
    Step(3, "device_configs.pushed_at: unacknowledged configuration is pushed again",
         add_column=("device_configs", "pushed_at", "{real} NOT NULL DEFAULT 0")),
    Step(4, "job_notices: whose held jobs changed, for the workers to tell the device where "
            "that user is signed in", ddl=JOB_NOTICES),
    Step(5, "technicians: badges and codes that open a copier's diagnostics screen",
         ddl=TECHNICIANS),
    Step(6, "device_engines.firmware: the firmware versions a device reports online (JSON)",
         add_column=("device_engines", "firmware", "TEXT")),
    Step(7, "users.language: the user's preferred language, for the panel while they are "
            "signed in ('' = no preference)",
         ddl="ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT ''"),
    Step(8, "users.role: 'admin' users run their org from the admin console, 'user' users "
            "only their own jobs and clients",
         ddl="ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'user'"),
    Step(9, "audit.org_id: whose audit entry it is, so an org's administrators read their own "
            "('' = the operator's, before orgs were recorded)",
         ddl="ALTER TABLE audit ADD COLUMN org_id TEXT NOT NULL DEFAULT ''"),
    Step(10, "release_orders: releases asked for away from the copier (the User Portal), an "
             "outbox the workers push to the device", ddl=RELEASE_ORDERS),
    Step(11, "sso_identities: the provider's subject of each user's first single sign-on; "
             "another subject for the same user is refused", ddl=SSO_IDENTITIES),
    Step(12, "offline mode: credential verifiers, sign-ins per device, each device's last "
             "bundle, the installation's signing key", ddl=OFFLINE),
    Step(13, "offline_issued: the jobs of every unexpired offline bundle by (device, seq), "
             "instead of each device's last two", ddl=OFFLINE_ISSUED),
    Step(14, "user_groups: named groups of an org's users (offline mode lists one)",
         ddl=USER_GROUPS),
)

#: The version a store has once every step ran.
LATEST = STEPS[-1].version


def pending(current: int) -> tuple[Step, ...]:
    """The steps a store at ``current`` still needs, in order."""
    return tuple(s for s in STEPS if s.version > current)

"""The queries of client linking (cloud/linking/): client installs, installer tokens,
invitations, portal sessions, Authenticate-on-Print requests, linking codes, print queues,
share links and the portal's recorded settings.

One-time secrets (installer tokens aside, which count uses) are spent by a guarded ``UPDATE ...
WHERE used_at IS NULL``: of two redemptions racing, one changes the row and the other is told
it lost. Secrets are looked up by their hash only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cloud.storage.port import ClientInstall, Redeemable
from cloud.storage.sql_base import SqlBase

_INSTALL_COLS = ("id, org_id, kind, machine, os_user, user_id, via, created_at, linked_at, "
                 "revoked_at")

#: Each one-time secret's table and the column that marks it spent: the SQL below is built
#: only from these constants and ``?`` placeholders (hence the S608 noqa marks).
_ONE_TIME = {
    "auth_request": ("auth_requests", "used_at"),
    "linking_code": ("linking_codes", "used_at"),
    "invitation": ("invitations", "accepted_at"),
    "registration": ("device_registrations", "used_at"),
}


def _install(row: Sequence[Any]) -> ClientInstall:
    return ClientInstall(str(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]),
                         row[5], str(row[6]), float(row[7]),
                         None if row[8] is None else float(row[8]),
                         None if row[9] is None else float(row[9]))


class LinkingQueries(SqlBase):
    """Client linking's queries."""

    # -- one-time secrets, looked up by hash and spent once
    def one_time(self, kind: str, secret_hash: str) -> Redeemable | None:
        """The one-time secret of ``kind`` whose hash this is (``invitation``: a portal
        invitation; ``registration``: a device's code), spent or not."""
        table, spent = _ONE_TIME[kind]
        if kind == "registration":
            row = self.query_one("SELECT code_hash, device_id, expires_at, used_at FROM "
                                 "device_registrations WHERE code_hash=?", secret_hash)
        elif kind == "auth_request":
            row = self.query_one("SELECT id, client_id, expires_at, used_at FROM auth_requests "
                                 "WHERE token_hash=?", secret_hash)
        elif kind == "invitation":
            row = self.query_one("SELECT id, user_id, expires_at, accepted_at FROM invitations "
                                 "WHERE token_hash=? AND kind='portal'", secret_hash)
        else:
            row = self.query_one(f"SELECT id, user_id, expires_at, {spent} FROM {table} "  # noqa: S608
                                 "WHERE code_hash=?", secret_hash)
        if row is None:
            return None
        return Redeemable(str(row[0]), str(row[1]), float(row[2]), row[3] is not None)

    def spend(self, kind: str, secret_id: str, now: float) -> bool:
        """Mark it spent; False if another request spent it first."""
        table, spent = _ONE_TIME[kind]
        key = "code_hash" if kind == "registration" else "id"
        return self.execute(f"UPDATE {table} SET {spent}=? WHERE {key}=? AND "  # noqa: S608
                            f"{spent} IS NULL", now, secret_id) > 0

    # -- the portal's recorded settings
    def portal_setting(self, name: str) -> str | None:
        row = self.query_one("SELECT value FROM portal_config WHERE name=?", name)
        return str(row[0]) if row else None

    def set_portal_setting(self, name: str, value: str) -> None:
        if not self.execute("UPDATE portal_config SET value=? WHERE name=?", value, name):
            self.execute("INSERT INTO portal_config VALUES (?,?)", name, value)

    def org_name(self, org_id: str) -> str | None:
        row = self.query_one("SELECT name FROM orgs WHERE id=?", org_id)
        return str(row[0]) if row else None

    # -- print queues and share links
    def queue_names(self, org_id: str) -> tuple[str, ...]:
        rows = self.query_all("SELECT name FROM print_queues WHERE org_id=? ORDER BY name",
                              org_id)
        return tuple(str(r[0]) for r in rows)

    def add_queue(self, queue_id: str, org_id: str, name: str, now: float) -> bool:
        """False if the org has a queue of that name already."""
        if self.query_one("SELECT id FROM print_queues WHERE org_id=? AND name=?", org_id,
                          name):
            return False
        self.execute("INSERT INTO print_queues VALUES (?,?,?,?)", queue_id, org_id, name, now)
        return True

    def share_generation(self, org_id: str) -> int | None:
        row = self.query_one("SELECT generation FROM share_links WHERE org_id=?", org_id)
        return int(row[0]) if row else None

    def set_share_generation(self, org_id: str, generation: int) -> None:
        if not self.execute("UPDATE share_links SET generation=? WHERE org_id=?", generation,
                            org_id):
            self.execute("INSERT INTO share_links VALUES (?,?)", org_id, generation)

    # -- installer tokens and invitations
    def add_installer_token(self, token_id: str, token_hash: str, org_id: str,
                            user_id: str | None, purpose: str, now: float,
                            expires_at: float) -> None:
        self.execute("INSERT INTO installer_tokens (id, token_hash, org_id, user_id, purpose, "
                     "created_at, expires_at) VALUES (?,?,?,?,?,?,?)", token_id, token_hash,
                     org_id, user_id, purpose, now, expires_at)

    def installer_token(self, token_hash: str) -> tuple[str, str, str | None, str, float,
                                                        bool] | None:
        """(id, org_id, user_id, purpose, expires_at, revoked)."""
        row = self.query_one("SELECT id, org_id, user_id, purpose, expires_at, revoked_at "
                             "FROM installer_tokens WHERE token_hash=?", token_hash)
        if row is None:
            return None
        return (str(row[0]), str(row[1]), None if row[2] is None else str(row[2]), str(row[3]),
                float(row[4]), row[5] is not None)

    def count_installer_use(self, token_id: str) -> None:
        self.execute("UPDATE installer_tokens SET uses = uses + 1 WHERE id=?", token_id)

    def revoke_installer_token(self, token_id: str, now: float) -> bool:
        return self.execute("UPDATE installer_tokens SET revoked_at=? WHERE id=? AND "
                            "revoked_at IS NULL", now, token_id) > 0

    def add_invitation(self, invite_id: str, kind: str, org_id: str, user_id: str, *,
                       token_hash: str | None, installer_id: str | None, now: float,
                       expires_at: float) -> None:
        self.execute("INSERT INTO invitations (id, kind, org_id, user_id, token_hash, "
                     "installer_id, created_at, expires_at) VALUES (?,?,?,?,?,?,?,?)",
                     invite_id, kind, org_id, user_id, token_hash, installer_id, now,
                     expires_at)

    # -- portal sessions
    def add_portal_session(self, token_hash: str, user_id: str, now: float,
                           expires_at: float) -> None:
        self.execute("INSERT INTO portal_sessions VALUES (?,?,?,?,0)", token_hash, user_id, now,
                     expires_at)

    def portal_session(self, token_hash: str) -> tuple[str, float, bool] | None:
        """(user_id, expires_at, ended)."""
        row = self.query_one("SELECT user_id, expires_at, ended FROM portal_sessions "
                             "WHERE token_hash=?", token_hash)
        return (str(row[0]), float(row[1]), bool(row[2])) if row else None

    def end_portal_session(self, token_hash: str) -> None:
        self.execute("UPDATE portal_sessions SET ended=1 WHERE token_hash=?", token_hash)

    def sso_identity(self, user_id: str, issuer: str) -> str | None:
        """The provider's subject recorded for the user at ``issuer``."""
        row = self.query_one("SELECT subject FROM sso_identities WHERE user_id=? AND issuer=?",
                             user_id, issuer)
        return str(row[0]) if row else None

    def sso_user(self, issuer: str, subject: str) -> str | None:
        """The user the provider's ``subject`` at ``issuer`` was recorded for."""
        row = self.query_one("SELECT user_id FROM sso_identities WHERE issuer=? AND subject=?",
                             issuer, subject)
        return str(row[0]) if row else None

    def add_sso_identity(self, user_id: str, issuer: str, subject: str, now: float) -> None:
        self.execute("INSERT INTO sso_identities (user_id, issuer, subject, bound_at) "
                     "VALUES (?,?,?,?)", user_id, issuer, subject, now)

    def end_portal_sessions_of(self, user_id: str) -> int:
        """End every open portal session of the user; how many were open."""
        return self.execute("UPDATE portal_sessions SET ended=1 WHERE user_id=? AND ended=0",
                            user_id)

    # -- linking codes and Authenticate-on-Print requests
    def linking_code_taken(self, code_hash: str) -> bool:
        return self.query_one("SELECT id FROM linking_codes WHERE code_hash=?",
                              code_hash) is not None

    def add_linking_code(self, code_id: str, code_hash: str, user_id: str, now: float,
                         expires_at: float) -> None:
        self.execute("INSERT INTO linking_codes VALUES (?,?,?,?,?,NULL)", code_id, code_hash,
                     user_id, now, expires_at)

    def add_auth_request(self, request_id: str, token_hash: str, client_id: str, job_id: str,
                         now: float, expires_at: float) -> None:
        self.execute("INSERT INTO auth_requests (id, token_hash, client_id, job_id, created_at, "
                     "expires_at) VALUES (?,?,?,?,?,?)", request_id, token_hash, client_id,
                     job_id, now, expires_at)

    def close_auth_requests(self, client_id: str, now: float) -> None:
        """Every open sign-in link of an install stops working."""
        self.execute("UPDATE auth_requests SET used_at=? WHERE client_id=? AND used_at IS NULL",
                     now, client_id)

    def set_auth_request_user(self, request_id: str, user_id: str) -> None:
        self.execute("UPDATE auth_requests SET user_id=? WHERE id=?", user_id, request_id)

    def adopt_pending_job(self, job_id: str, user_id: str, expires_at: float,
                          now: float) -> bool:
        """A PENDING_AUTH job joins its new owner's queue; False if it is not pending any more
        (expired meanwhile)."""
        if not self.execute("UPDATE jobs SET owner_id=?, state='HELD', expires_at=?, "
                            "updated_at=? WHERE id=? AND state='PENDING_AUTH' AND "
                            "owner_id IS NULL", user_id, expires_at, now, job_id):
            return False
        # Held for its owner now: the copier where they are signed in is told (job_notices).
        self.execute("INSERT INTO job_notices (user_id, at) VALUES (?,?)", user_id, now)
        return True

    # -- client installs
    def install(self, install_id: str) -> ClientInstall | None:
        row = self.query_one(f"SELECT {_INSTALL_COLS} FROM client_installs "  # noqa: S608
                             "WHERE id=?", install_id)
        return _install(row) if row else None

    def install_by_token(self, token_hash: str) -> ClientInstall | None:
        """The install this client token belongs to, unless revoked."""
        row = self.query_one(f"SELECT {_INSTALL_COLS} FROM client_installs "  # noqa: S608
                             "WHERE token_hash=? AND revoked_at IS NULL", token_hash)
        return _install(row) if row else None

    def installs_of_org(self, org_id: str, include_revoked: bool) -> list[ClientInstall]:
        where = "" if include_revoked else " AND revoked_at IS NULL"
        rows = self.query_all(f"SELECT {_INSTALL_COLS} FROM client_installs "  # noqa: S608
                              f"WHERE org_id=?{where} ORDER BY created_at, id", org_id)
        return [_install(r) for r in rows]

    def installs_of_user(self, user_id: str) -> list[ClientInstall]:
        rows = self.query_all(f"SELECT {_INSTALL_COLS} FROM client_installs "  # noqa: S608
                              "WHERE user_id=? AND revoked_at IS NULL ORDER BY created_at, id",
                              user_id)
        return [_install(r) for r in rows]

    def seat_installs(self, org_id: str, kind: str, machine: str, os_user: str) -> list[str]:
        """Ids of the active installs of this seat (at most one, bar a race)."""
        rows = self.query_all("SELECT id FROM client_installs WHERE org_id=? AND kind=? AND "
                              "machine=? AND os_user=? AND revoked_at IS NULL", org_id, kind,
                              machine, os_user)
        return [str(r[0]) for r in rows]

    def add_install(self, install: ClientInstall, token_hash: str) -> None:
        """Raises ConflictError if the seat's install was added meanwhile."""
        self.execute(f"INSERT INTO client_installs ({_INSTALL_COLS}, token_hash) "  # noqa: S608
                     "VALUES (?,?,?,?,?,?,?,?,?,?,?)", install.id, install.org_id, install.kind,
                     install.machine, install.os_user, install.user_id, install.via,
                     install.created_at, install.linked_at, install.revoked_at, token_hash)

    def revoke_install(self, install_id: str, now: float) -> bool:
        return self.execute("UPDATE client_installs SET revoked_at=? WHERE id=? AND "
                            "revoked_at IS NULL", now, install_id) > 0

    def link_install(self, install_id: str, user_id: str, now: float, via: str) -> bool:
        """An unlinked, active install gets its user; False if it has one already."""
        return self.execute("UPDATE client_installs SET user_id=?, linked_at=?, via=? WHERE "
                            "id=? AND user_id IS NULL AND revoked_at IS NULL", user_id, now, via,
                            install_id) > 0

    # -- housekeeping
    def purge_linking(self, before: float) -> int:
        """Forget portal sessions, linking codes and sign-in links that expired before."""
        return (self.execute("DELETE FROM portal_sessions WHERE expires_at < ?", before)
                + self.execute("DELETE FROM linking_codes WHERE expires_at < ?", before)
                + self.execute("DELETE FROM auth_requests WHERE expires_at < ?", before))

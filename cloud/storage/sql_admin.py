"""The queries of the admin console: roles and what an org's administrators read of their own
org only (cloud/admin.py).

Every read here takes the org and filters by it in SQL: an id from another org finds nothing,
the same answer as an id that does not exist.
"""

from __future__ import annotations

from typing import Any

from cloud.storage.port import Job
from cloud.storage.sql_base import SqlBase
from cloud.storage.sql_core import _JOB_COLS, _job

#: The org a job belongs to: its owner's, or (waiting for sign-in) its client's.
_JOB_ORG = ("COALESCE((SELECT u.org_id FROM users u WHERE u.id = j.owner_id), "
            "(SELECT ci.org_id FROM client_installs ci WHERE ci.id = j.client_id))")
_J_COLS = ", ".join(f"j.{c.strip()}" for c in _JOB_COLS.split(","))


class AdminQueries(SqlBase):
    """Roles, and the org-scoped reads of the admin console."""

    def org_devices(self, org_id: str) -> list[tuple[str, str, str, float]]:
        """(id, name, status, status_at) of the org's devices; status_at 0 = never seen."""
        rows = self.query_all("SELECT id, name, status, status_at FROM devices WHERE org_id=? "
                              "ORDER BY id", org_id)
        return [(str(a), str(b), str(c), float(d)) for a, b, c, d in rows]

    def org_jobs(self, org_id: str, *, state: str | None = None, owner_id: str | None = None,
                 device_id: str | None = None, limit: int = 200) -> list[Job]:
        """The org's jobs, newest first, filtered by state, owner and (released to) device."""
        where, args = [f"{_JOB_ORG} = ?"], [org_id]
        for column, value in (("j.state", state), ("j.owner_id", owner_id),
                              ("j.device_id", device_id)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        rows = self.query_all(f"SELECT {_J_COLS} FROM jobs j WHERE "  # noqa: S608
                              + " AND ".join(where) + " ORDER BY j.submitted_at DESC LIMIT ?",
                              *args, limit)
        return [_job(r) for r in rows]

    def org_audit(self, org_id: str, *, action: str = "", actor: str = "", subject: str = "",
                  since: float | None = None, until: float | None = None,
                  limit: int = 200) -> list[tuple[float, str, str, str, str]]:
        """(at, actor, action, subject, detail) of the org's audit, newest first. ``action``
        matches a whole action or its family ("card" finds card.add and card.remove), ``actor``
        a whole actor or its kind ("admin" finds "admin:u_1", "device" every device)."""
        where: list[str] = ["org_id = ?"]
        args: list[Any] = [org_id]
        if action:
            where.append("(action = ? OR substr(action, 1, ?) = ?)")
            args += [action, len(action) + 1, action + "."]
        if actor:  # "admin" finds every administrator's ("admin:USER_ID") too
            where.append("(actor = ? OR substr(actor, 1, ?) = ?)")
            args += [actor, len(actor) + 1, actor + ":"]
        if subject:
            where.append("subject = ?")
            args.append(subject)
        if since is not None:
            where.append("at >= ?")
            args.append(since)
        if until is not None:
            where.append("at < ?")
            args.append(until)
        rows = self.query_all("SELECT at, actor, action, subject, detail FROM audit WHERE "  # noqa: S608
                              + " AND ".join(where) + " ORDER BY id DESC LIMIT ?", *args, limit)
        return [(float(a), str(b), str(c), str(d), str(e)) for a, b, c, d, e in rows]

    def audit_org_of(self, limit: int = 100) -> list[tuple[str, str, str]]:
        """(action, subject, org_id) of the newest entries: what tests read to check that each
        entry landed in its org."""
        rows: list[Any] = self.query_all("SELECT action, subject, org_id FROM audit "
                                         "ORDER BY id DESC LIMIT ?", limit)
        return [(str(a), str(b), str(c)) for a, b, c in rows]


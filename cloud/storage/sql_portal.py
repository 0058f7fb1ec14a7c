"""The queries of the User Portal's own pages (cloud/portal_jobs.py): what a person may change
about their held jobs."""

from __future__ import annotations

from cloud.storage.sql_base import SqlBase


class PortalQueries(SqlBase):
    """A person's own held jobs, as the portal changes them."""

    def change_held_job(self, job_id: str, owner_id: str, *, color: bool, duplex: bool,
                        copies: int, now: float) -> bool:
        """Set a held job's colour, sides and copies. Guarded: only the owner's job, only while
        it is HELD and not expired (a release or an expiry that won meanwhile keeps the job as
        it was); the answer says whether this call changed it."""
        return bool(self.execute(
            "UPDATE jobs SET color=?, duplex=?, copies=?, updated_at=? WHERE id=? AND owner_id=? "
            "AND state='HELD' AND expires_at > ?",
            int(color), int(duplex), copies, now, job_id, owner_id, now))

"""The queries of user groups (cloud/admin.py's ``group_*``, cloud/offline.py's "group:NAME"):
named sets of an org's users. A group is its rows in ``user_groups``; it exists while it has a
member, so there is nothing to create first and nothing left when its last member goes.

Adding a member twice is no change (``ON CONFLICT DO NOTHING``), and each change answers
whether it changed anything, so the use-case audits only what happened."""

from __future__ import annotations

from cloud.storage.sql_base import SqlBase
from cloud.storage.sql_offline import _HAS_VERIFIER


class GroupQueries(SqlBase):
    """Group members: add, remove, list; the members an offline bundle may list."""

    def add_to_group(self, org_id: str, name: str, user_id: str, now: float) -> bool:
        """True if ``user_id`` was not a member yet."""
        return self.execute("INSERT INTO user_groups (org_id, name, user_id, added_at) "
                            "VALUES (?,?,?,?) ON CONFLICT (org_id, name, user_id) DO NOTHING",
                            org_id, name, user_id, now) > 0

    def remove_from_group(self, org_id: str, name: str, user_id: str) -> bool:
        """True if ``user_id`` was a member."""
        return self.execute("DELETE FROM user_groups WHERE org_id=? AND name=? AND user_id=?",
                            org_id, name, user_id) > 0

    def group_members(self, org_id: str, name: str) -> list[str]:
        """The members' user ids, in id order."""
        return [str(r[0]) for r in self.query_all(
            "SELECT user_id FROM user_groups WHERE org_id=? AND name=? ORDER BY user_id",
            org_id, name)]

    def groups(self, org_id: str) -> list[tuple[str, int]]:
        """(name, member count) of the org's groups, by name."""
        return [(str(n), int(c)) for n, c in self.query_all(
            "SELECT name, count(*) FROM user_groups WHERE org_id=? GROUP BY name ORDER BY name",
            org_id)]

    def group_offline_candidates(self, org_id: str, name: str,
                                 limit: int) -> list[tuple[str, str, str]]:
        """As ``offline_candidates`` for everyone, among the group's members only: (user_id,
        display_name, language) of those holding a credential with a verifier, by their last
        sign-in anywhere, most recent first."""
        rows = self.query_all(
            "SELECT u.id, u.display_name, u.language FROM user_groups g "  # noqa: S608
            "JOIN users u ON u.id = g.user_id WHERE g.org_id=? AND g.name=? AND u.org_id=? "
            f"AND {_HAS_VERIFIER} ORDER BY COALESCE((SELECT max(s.at) FROM device_sign_ins s "
            "WHERE s.user_id = u.id), 0) DESC, u.id LIMIT ?", org_id, name, org_id, limit)
        return [(str(a), str(b), str(c)) for a, b, c in rows]

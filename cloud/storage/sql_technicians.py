"""The queries of technicians' credentials (issued by cloud/admin.py, answered by
cloud/identity.py): a badge or an access code per technician, under the same keyed hash a
user's would have, so the store never holds one in clear."""

from __future__ import annotations

from typing import Any

from cloud.storage.port import ConflictError, Technician
from cloud.storage.sql_base import SqlBase
from protocol.errors import StoreError

_COLS = "id, org_id, name, kind, created_at, revoked_at"


def _technician(row: tuple[Any, ...]) -> Technician:
    return Technician(str(row[0]), str(row[1]), str(row[2]), str(row[3]), float(row[4]),
                      None if row[5] is None else float(row[5]))


class TechnicianQueries(SqlBase):
    """Technicians' credentials: issue, look up (active ones only), list, revoke."""

    def add_technician(self, technician_id: str, org_id: str, name: str, kind: str,
                       secret_hash: str, now: float) -> None:
        try:
            self.execute("INSERT INTO technicians (id, org_id, name, kind, secret_hash, "
                         "created_at) VALUES (?,?,?,?,?,?)", technician_id, org_id, name, kind,
                         secret_hash, now)
        except ConflictError:
            raise StoreError(f"that {kind} is a technician's already", code="conflict") from None

    def technician_by_secret(self, org_id: str, kind: str, secret_hash: str
                             ) -> Technician | None:
        row = self.query_one(f"SELECT {_COLS} FROM technicians WHERE org_id=? AND kind=? "  # noqa: S608
                             "AND secret_hash=? AND revoked_at IS NULL", org_id, kind,
                             secret_hash)
        return _technician(row) if row else None

    def technician(self, technician_id: str) -> Technician | None:
        row = self.query_one(f"SELECT {_COLS} FROM technicians WHERE id=?",  # noqa: S608
                             technician_id)
        return _technician(row) if row else None

    def technicians(self, org_id: str, include_revoked: bool = False) -> list[Technician]:
        where = "" if include_revoked else " AND revoked_at IS NULL"
        return [_technician(r) for r in self.query_all(
            f"SELECT {_COLS} FROM technicians WHERE org_id=?{where} "  # noqa: S608
            "ORDER BY name, created_at", org_id)]

    def revoke_technician(self, technician_id: str, now: float) -> bool:
        return self.execute("UPDATE technicians SET revoked_at=? WHERE id=? AND "
                            "revoked_at IS NULL", now, technician_id) > 0

"""The queries of release orders: releases asked for away from the copier (the User Portal),
kept as an outbox the workers push to the device (cloud/release_orders.py)."""

from __future__ import annotations

from cloud.storage.sql_base import SqlBase


class ReleaseOrderQueries(SqlBase):
    """Release orders: write with the release, list what to push, mark pushed and taken."""

    def org_copiers(self, org_id: str) -> list[tuple[str, str, str, float]]:
        """(id, name, status, status_at) of the org's devices, by name."""
        rows = self.query_all("SELECT id, name, status, status_at FROM devices WHERE org_id=? "
                              "ORDER BY name, id", org_id)
        return [(str(a), str(b), str(c), float(d)) for a, b, c, d in rows]

    def add_release_order(self, release_id: str, device_id: str, user_id: str, payload: str,
                          now: float) -> None:
        self.execute("INSERT INTO release_orders (release_id, device_id, user_id, payload, "
                     "created_at) VALUES (?,?,?,?,?)", release_id, device_id, user_id, payload,
                     now)

    def release_orders_to_push(self, pushed_before: float, limit: int = 100
                               ) -> list[tuple[str, str, str, float]]:
        """(release_id, device_id, payload, pushed_at) of the orders not taken yet whose device is
        online, never pushed or pushed before ``pushed_before`` or before the device last came
        online, and whose release still has a job RELEASING (a lapsed one is not sent)."""
        rows = self.query_all(
            "SELECT o.release_id, o.device_id, o.payload, o.pushed_at FROM release_orders o "
            "JOIN devices d ON d.id = o.device_id WHERE o.taken_at IS NULL "
            "AND d.status = 'online' AND (o.pushed_at < ? OR o.pushed_at < d.status_at) "
            "AND EXISTS (SELECT 1 FROM jobs j WHERE j.release_id = o.release_id "
            "AND j.state = 'RELEASING') ORDER BY o.created_at LIMIT ?", pushed_before, limit)
        return [(str(r), str(d), str(p), float(t)) for r, d, p, t in rows]

    def claim_order_push(self, release_id: str, seen_pushed_at: float, now: float) -> bool:
        """Record that this worker pushes the order now; False if another worker did since
        ``seen_pushed_at`` was read (or the device took it): that one publishes it."""
        return self.execute("UPDATE release_orders SET pushed_at=? WHERE release_id=? AND "
                            "taken_at IS NULL AND pushed_at=?", now, release_id,
                            seen_pushed_at) > 0

    def take_release_order(self, release_id: str, device_id: str, now: float) -> bool:
        """The device took the order (a document fetched, an outcome reported); False if it
        was taken already or is no order of that device's."""
        return self.execute("UPDATE release_orders SET taken_at=? WHERE release_id=? AND "
                            "device_id=? AND taken_at IS NULL", now, release_id,
                            device_id) > 0

    def release_order(self, release_id: str
                      ) -> tuple[str, str, float, float, float | None] | None:
        """(device_id, user_id, created_at, pushed_at, taken_at) of one order."""
        row = self.query_one("SELECT device_id, user_id, created_at, pushed_at, taken_at FROM "
                             "release_orders WHERE release_id=?", release_id)
        if row is None:
            return None
        return (str(row[0]), str(row[1]), float(row[2]), float(row[3]),
                None if row[4] is None else float(row[4]))

"""The queries of device registration and pushed configuration (cloud/devices.py): one-time
registration codes (spent through sql_linking's one-time secrets), each device's managed
configuration with the versions pushed, applied and refused, and the engine and firmware
versions it reports."""

from __future__ import annotations

from cloud.storage.port import ConflictError
from cloud.storage.sql_base import SqlBase
from protocol.errors import StoreError


class DeviceQueries(SqlBase):
    """Device registration's and configuration's queries."""

    def add_registration(self, code_hash: str, device_id: str, expires_at: float) -> None:
        self.execute("INSERT INTO device_registrations VALUES (?,?,?,NULL)", code_hash,
                     device_id, expires_at)

    def device_name(self, device_id: str) -> str | None:
        row = self.query_one("SELECT name FROM devices WHERE id=?", device_id)
        return str(row[0]) if row else None

    def device_config_text(self, device_id: str) -> tuple[int, str] | None:
        """(version, managed configuration as JSON) of the newest version."""
        row = self.query_one("SELECT version, config FROM device_configs WHERE device_id=?",
                             device_id)
        return (int(row[0]), str(row[1])) if row else None

    def store_device_config(self, device_id: str, version: int, text: str, now: float) -> None:
        """The device's next version (the first, or one after what it has)."""
        if version > 1:
            self.execute("UPDATE device_configs SET version=?, config=?, updated_at=? "
                         "WHERE device_id=?", version, text, now, device_id)
            return
        try:
            self.execute("INSERT INTO device_configs (device_id, version, config, updated_at) "
                         "VALUES (?,?,?,?)", device_id, version, text, now)
        except ConflictError:
            raise StoreError("the configuration changed meanwhile; try again") from None

    def config_versions(self, device_id: str) -> tuple[int, int, int, int, str] | None:
        """(version, pushed, applied, refused, refusal)."""
        row = self.query_one("SELECT version, pushed_version, applied_version, refused_version, "
                             "refusal FROM device_configs WHERE device_id=?", device_id)
        if row is None:
            return None
        return int(row[0]), int(row[1]), int(row[2]), int(row[3]), str(row[4])

    def configs_to_push(self, pushed_before: float) -> list[tuple[str, int, str]]:
        """(device_id, version, JSON) newer than what was last published, or published before
        ``pushed_before`` and neither applied nor refused yet."""
        rows = self.query_all("SELECT device_id, version, config FROM device_configs "
                              "WHERE version > pushed_version OR (version > applied_version AND "
                              "version > refused_version AND pushed_at < ?)", pushed_before)
        return [(str(d), int(v), str(c)) for d, v, c in rows]

    def mark_pushed(self, device_id: str, version: int, now: float) -> None:
        self.execute("UPDATE device_configs SET pushed_version=?, pushed_at=? WHERE device_id=? "
                     "AND pushed_version <= ?", version, now, device_id, version)

    def mark_applied(self, device_id: str, version: int) -> None:
        self.execute("UPDATE device_configs SET applied_version=? WHERE device_id=? AND "
                     "applied_version < ?", version, device_id, version)

    def mark_refused(self, device_id: str, version: int, reason: str) -> None:
        self.execute("UPDATE device_configs SET refused_version=?, refusal=? WHERE "
                     "device_id=?", version, reason, device_id)

    def record_engine(self, device_id: str, engine: str, now: float,
                      firmware: str | None = None) -> None:
        self.execute("INSERT INTO device_engines (device_id, engine, updated_at, firmware) "
                     "VALUES (?,?,?,?) ON CONFLICT (device_id) DO UPDATE SET "
                     "engine=excluded.engine, updated_at=excluded.updated_at, "
                     "firmware=excluded.firmware", device_id, engine, now, firmware)

    def device_firmware(self, device_id: str) -> str | None:
        """The firmware mapping (JSON) the device last reported online; None if none."""
        row = self.query_one("SELECT firmware FROM device_engines WHERE device_id=?",
                             device_id)
        return str(row[0]) if row and row[0] is not None else None

    def device_engine(self, device_id: str) -> str:
        row = self.query_one("SELECT engine FROM device_engines WHERE device_id=?", device_id)
        return str(row[0]) if row else ""

"""The SQL store: every query of the cloud, written once in the subset of SQL that SQLite and
PostgreSQL share, for the adapters (cloud/storage/sqlite.py, cloud/storage/postgres.py) to
subclass with connections and transactions. The queries are grouped by who asks them."""

from __future__ import annotations

from cloud.storage.sql_admin import AdminQueries
from cloud.storage.sql_core import CoreQueries
from cloud.storage.sql_devices import DeviceQueries
from cloud.storage.sql_groups import GroupQueries
from cloud.storage.sql_linking import LinkingQueries
from cloud.storage.sql_offline import OfflineQueries
from cloud.storage.sql_portal import PortalQueries
from cloud.storage.sql_release_orders import ReleaseOrderQueries
from cloud.storage.sql_technicians import TechnicianQueries


class SqlStore(CoreQueries, LinkingQueries, DeviceQueries, TechnicianQueries, ReleaseOrderQueries,
               AdminQueries, PortalQueries, OfflineQueries, GroupQueries):
    """Every query of the cloud; an adapter supplies connections and transactions."""

"""The queries of the admin console: roles and what an org's administrators read of their own
org only (cloud/admin.py)."""

from __future__ import annotations

from cloud.storage.sql_base import SqlBase


class AdminQueries(SqlBase):
    """Roles, and the org-scoped reads of the admin console."""

"""The queries of the User Portal's own pages (cloud/portal_jobs.py): what a person may change
about their held jobs."""

from __future__ import annotations

from cloud.storage.sql_base import SqlBase


class PortalQueries(SqlBase):
    """A person's own held jobs, as the portal changes them."""

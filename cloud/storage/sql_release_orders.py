"""The queries of release orders: releases asked for away from the copier (the User Portal),
kept as an outbox the workers push to the device (cloud/release_orders.py)."""

from __future__ import annotations

from cloud.storage.sql_base import SqlBase


class ReleaseOrderQueries(SqlBase):
    """Release orders: write with the release, list what to push, mark pushed and taken."""

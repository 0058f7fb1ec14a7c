"""What every fleet test checks at a checkpoint (tests/test_fleet.py, tests/test_fleet_hosts.py):
every request answered, no print lost or doubled, the engines' and the cloud's records agree."""

from __future__ import annotations

from typing import Any


def assert_nothing_lost(t: dict[str, Any]) -> None:
    assert t["unanswered"] == [], t["unanswered"][:10]
    prints = t["prints"]
    assert prints["doubled"] == 0, prints
    assert prints["lost"] == 0, prints
    assert prints["printed"] == prints["cloud_printed"], prints

"""A device's answers to pushed config versions (cloud/devices.py record_ack): each outcome is
recorded and audited once; acks for versions never pushed, or repeated, change nothing, so one
device's credentials cannot flood the audit log through its events topic."""

from __future__ import annotations

import time

from conftest import World

from cloud import devices
from protocol import messages as m


def audited(world: World) -> list[tuple[float, str, str, str, str]]:
    return [a for a in world.store.audit_log(100_000) if a[2].startswith("config.")]


def test_each_ack_is_recorded_once_and_unpushed_versions_not_at_all(world: World) -> None:
    store = world.store
    dev = "copier-1"
    now = time.time()
    # A flood before any version exists: nothing recorded, nothing audited.
    for version in range(1, 300):
        assert not devices.record_ack(store, dev, m.ConfigAck(version, applied=True), now)
    assert audited(world) == []
    v1 = devices.set_device_config(store, dev, {"policy": {"idle_timeout": 90}}, now)
    v2 = devices.set_device_config(store, dev, {"policy": {"idle_timeout": 120}}, now)
    refusal = m.ConfigAck(v1, applied=False, reason="no such reader")
    assert devices.record_ack(store, dev, refusal, now)
    assert not devices.record_ack(store, dev, refusal, now)  # redelivered at a reconnect
    assert devices.record_ack(store, dev, m.ConfigAck(v2, applied=True), now)
    for _ in range(50):
        assert not devices.record_ack(store, dev, m.ConfigAck(v2, applied=True), now)
        assert not devices.record_ack(store, dev, m.ConfigAck(v1, applied=True), now)  # older
        assert not devices.record_ack(store, dev, m.ConfigAck(v2 + 1, applied=True), now)
    assert sorted((a[2], a[3]) for a in audited(world)) == [
        ("config.applied", f"version {v2}"), ("config.refused", f"version {v1}")]
    state = devices.config_state(store, dev)
    assert state["applied"] == v2 and state["refused"] == v1

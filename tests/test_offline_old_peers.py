"""Offline mode against peers from before it (docs/protocol.md, "Offline mode": the three
requests are new types, so an older peer is unaffected). An older cloud answers them
``unknown_type`` (it cannot decode them): the device goes on as a device without offline mode
(sign-ins go to the cloud, a cut shows "Can't reach the print service" and never offline mode),
it does not ask again before its next round, and it keeps nothing at rest. An older device
never sends them, and the cloud answers its requests as before (its identify without a page
size gets no page: tests/test_identify_first_page.py)."""

from __future__ import annotations

import time

from test_offline_device import FakeCloud
from waiting import eventually

from device_app.offline.desk import Desk
from device_app.offline.link import OfflineLink
from device_app.offline.store import OfflineStore
from protocol import messages as m
from protocol.errors import ErrorCode, MfdError, RemoteError
from protocol.managed import Policy


def _older_cloud(request: m.Request) -> m.Result | MfdError:
    # What a cloud from before offline mode answers: its codec knows no such type.
    return RemoteError(ErrorCode.UNKNOWN_TYPE.value, f"unknown request type {request.TYPE!r}",
                       "type")


def test_an_older_cloud_leaves_the_device_as_it_was() -> None:
    fake = FakeCloud()
    for kind in (m.OfflineSync, m.FetchOffline, m.OfflineReport):
        fake.answers[kind] = _older_cloud
    fake.answers[m.Identify] = lambda _r: m.IdentifyResult("s1", "u1", "Ada", 300)
    store = OfflineStore.memory()
    desk = Desk(store, fake.cloud.public(), "dev-offline-1")  # type: ignore[arg-type]
    told: list[bool] = []
    link = OfflineLink(fake, desk, policy=lambda: Policy(offline=True), grace=0.3,
                       sync_every=3600, retry=0.2)
    link.on_connection = told.append
    try:
        fake.set(True)
        up_at = time.monotonic()
        # It asked once, was told the type is unknown, and holds nothing.
        assert eventually(lambda: any(isinstance(r, m.OfflineSync) for r in fake.sent)
                          and link.idle() and link.caught_up(up_at))
        assert desk.bundle is None and store.bundle() is None and not store.chunk_sizes()
        # Online sign-ins are the cloud's, unchanged.
        who = link.call(m.Identify(method="card", value="04A1B2C3D4"))
        assert isinstance(who, m.IdentifyResult) and who.display_name == "Ada"
        # The link goes: down, and still down past the grace (no bundle: no offline mode).
        fake.set(False)
        past_grace = time.monotonic() + 0.3
        assert eventually(lambda: link.stepped_at > past_grace)
        assert not link.local and told[-1] is False and not link.connected
        # Back: no second sync within the round (an older cloud is not asked again at once).
        asked = sum(isinstance(r, m.OfflineSync) for r in fake.sent)
        fake.set(True)
        back_at = time.monotonic()
        assert eventually(lambda: link.caught_up(back_at) and link.idle())
        assert sum(isinstance(r, m.OfflineSync) for r in fake.sent) <= asked + 1
    finally:
        link.close()

"""The web app's store connections: lent to a request and given back, so bursts of requests
reuse them (the pool's threads come and go; connections must not pile up with them), and a
request that fails gives its connection back too."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from cloud.web.context import Stores
from tests.waiting import eventually
from tests.web_helpers import make_world


def test_bursts_of_requests_reuse_a_bounded_set_of_connections(tmp_path: Path) -> None:
    world = make_world(f"sqlite:///{tmp_path / 'cloud.db'}")
    try:
        stores: Stores = world.server.app.state.stores

        def ask(_i: int) -> int:
            # A bogus client token: the API looks it up in the store and refuses it.
            r = httpx.get(world.url + "/api/v1/client",
                          headers={"authorization": "Bearer mfc_nope"}, timeout=10)
            return r.status_code

        peaks = []
        for _burst in range(3):
            with ThreadPoolExecutor(max_workers=12) as pool:
                assert set(pool.map(ask, range(60))) == {401}
            peaks.append(stores.open_count)
            # Every answer is sent: every connection comes back (just after its answer), none
            # is kept by a thread.
            assert eventually(lambda: stores.idle_count == stores.open_count, timeout=5)
        # Never more than the requests at once (12), over all three bursts: later bursts reuse
        # what the first opened and add at most what it never needed at once (a first burst
        # that peaked at 11 may leave a twelfth for a later one; seen on a loaded machine). A
        # store opened per request and kept would reach 60 in the first burst; one closed after
        # each request would leave none open (the first assertion).
        assert 1 <= peaks[0] and max(peaks) <= 12, peaks
    finally:
        world.server.close()
    assert stores.open_count == 0  # all closed at shutdown


def test_a_request_that_fails_gives_its_connection_back(tmp_path: Path) -> None:
    world = make_world(f"sqlite:///{tmp_path / 'cloud.db'}")
    try:
        stores: Stores = world.server.app.state.stores
        for _ in range(20):
            r = httpx.post(world.url + "/api/v1/portal/signin",
                           json={"email": "nobody@example.org", "password": "x"}, timeout=10)
            assert r.status_code in (401, 429)  # refused, then locked out for guessing
        assert 1 <= stores.open_count <= 2
        assert eventually(lambda: stores.idle_count == stores.open_count, timeout=5)
    finally:
        world.server.close()

"""The pytest fixture around :class:`simulator.pcscd.PrivatePcscd`: here, not in the simulator,
so that the simulator (and the benches that use the daemon) never import pytest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from simulator.pcscd import PrivatePcscd, missing_requirements


def pcscd_fixture(scope: Any = "module") -> Callable[..., Iterator[PrivatePcscd]]:
    """A pytest fixture yielding a started :class:`PrivatePcscd`; when one cannot run here the
    test fails naming the missing piece (never a skip: a skipped PC/SC suite hid an untested
    reader family).

    In a test module: ``pcscd = pcscd_fixture()``. It fails (rather than testing the wrong
    daemon) if PC/SC was used before this module was imported. A test that stops the daemon
    must start it again; a per-test fixture can do that in its teardown.
    """

    @pytest.fixture(scope=scope)
    def _fixture() -> Iterator[PrivatePcscd]:
        reason = missing_requirements()
        if reason is not None:
            pytest.fail(f"private pcscd cannot run: {reason}", pytrace=False)
        daemon = PrivatePcscd()
        daemon.start()
        try:
            daemon.check_client()
            yield daemon
        finally:
            daemon.stop()

    return _fixture

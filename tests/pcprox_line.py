"""A pcProx reader on a pty, for the tests that configure or read one: the stub answers on the
pty's far end as the USB reader would on its serial line."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from firmware_stubs.serial_readers import PcProxStub
from readers.pty import PtyPort


def pcprox_fixture() -> Callable[..., Iterator[tuple[PtyPort, PcProxStub]]]:
    """A pytest fixture yielding the pty (its ``device`` is the port a test points the tool at)
    and the stub behind it, both closed after the test. In a test module:
    ``pcprox = pcprox_fixture()``."""

    @pytest.fixture
    def pcprox() -> Iterator[tuple[PtyPort, PcProxStub]]:
        port = PtyPort()
        stub = PcProxStub(port)
        yield port, stub
        stub.close()
        port.close()

    return pcprox

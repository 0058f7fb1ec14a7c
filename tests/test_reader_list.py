"""mfd reader list names the PC/SC readers of a real (private) pcscd and the serial ports."""

from __future__ import annotations

import argparse

import pytest
from pcscd_fixture import pcscd_fixture

from readers import cli
from simulator.pcscd import PrivatePcscd

pytestmark = pytest.mark.integration

pcscd = pcscd_fixture()


def test_list_names_the_virtual_reader_with_its_spec(pcscd: PrivatePcscd,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.cmd_list(argparse.Namespace()) == 0
    out = capsys.readouterr().out
    assert "PC/SC readers:" in out and "pcsc:mfdkit Virtual PCD" in out
    assert "serial ports:" in out

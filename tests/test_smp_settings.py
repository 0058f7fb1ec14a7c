"""SMP's settings group (3) on the emulated devices (issue 11): the store and its flash area,
the server's answers, and the reader whose badge output follows its committed settings, driven
by the technician's client (smpclient) and by ``mfd flash --set``.

The settings area is an emulated NOR flash (firmware_stubs/mcuboot/flash.py); its power-cut
injector cuts a save at every one of its operations, at several tear points, and every boot
after it must find the old values or the new ones, whole.
"""

from __future__ import annotations

import asyncio
import json
import queue
import random
import shutil
import tempfile
from pathlib import Path

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_stubs.mcuboot import Bootloader, factory_flash
from firmware_stubs.mcuboot.flash import Flash, PowerCut
from firmware_stubs.smp.packets import (
    Group,
    MgmtErr,
    SettingDelete,
    SettingRead,
    SettingsCommit,
    SettingsLoad,
    SettingsSave,
    SettingWrite,
    decode_packet,
    encode_request,
    parse_request,
)
from firmware_stubs.smp.panel_device import PanelDevice
from firmware_stubs.smp.reader_device import ReaderDevice
from firmware_stubs.smp.server import DeviceIdentity, SmpServer
from firmware_stubs.smp.settings import (
    READER_SETTINGS,
    SettingsErr,
    SettingsRefusal,
    SettingsStore,
    create_area,
)
from mfdkit.cli import main
from provisioning import image as img
from provisioning import keys as keymod
from provisioning.smp_device import DeviceError, SmpDevice
from readers.events import CardRead
from readers.spec import open_reader

MODEL = "reader-em4100"


def store(path: Path) -> SettingsStore:
    return SettingsStore(create_area(path), READER_SETTINGS)


# --- the store and its flash area --------------------------------------------------------------


def test_saved_values_survive_a_restart_and_unsaved_ones_do_not(tmp_path: Path) -> None:
    area = tmp_path / "settings.bin"
    s = store(area)
    assert s.read("reader/format") == b"em4100"  # the default, nothing stored
    s.write("reader/format", b"hex")
    s.write("reader/prefix", b"ID:")
    assert s.value("reader/format") == b"em4100"  # written, not yet committed
    s.commit()
    assert s.value("reader/format") == b"hex"
    s.save()
    s.write("reader/suffix", b"!")  # never saved
    s.flash.close()
    again = store(area)  # a reboot: the flash file is all that is left
    assert again.value("reader/format") == b"hex" and again.value("reader/prefix") == b"ID:"
    assert again.read("reader/suffix") == b""
    again.delete("reader/prefix")  # from storage at once, back to its default
    again.flash.close()
    assert store(area).read("reader/prefix") == b""


def test_many_saves_alternate_sectors_and_the_newest_wins(tmp_path: Path) -> None:
    s = store(tmp_path / "settings.bin")
    for i in range(7):
        s.write("reader/prefix", f"P{i}".encode())
        s.save()
    erases = s.flash.erases
    s.flash.close()
    assert store(tmp_path / "settings.bin").read("reader/prefix") == b"P6"
    assert erases == 5  # the first two saves found their sector erased


@pytest.mark.parametrize("tear", [0.0, 0.2, 0.5, 0.8, 0.99])
def test_a_power_cut_at_any_point_of_a_save_leaves_old_or_new_never_a_mix(
        tmp_path: Path, tear: float) -> None:
    base = tmp_path / "base.bin"
    s = store(base)
    s.write("reader/format", b"dec")
    s.write("reader/prefix", b"OLD")
    s.save()
    s.save()  # both sectors hold a record: the next save must erase first
    s.flash.close()
    old = {"reader/format": b"dec", "reader/prefix": b"OLD", "reader/suffix": b""}
    new = {"reader/format": b"hex", "reader/prefix": b"NEW", "reader/suffix": b";"}
    seen = set()
    cut_at = 1
    while True:
        area = tmp_path / f"cut{cut_at}.bin"
        shutil.copy(base, area)
        s = SettingsStore(Flash(area, cut_at=cut_at, tear=tear), READER_SETTINGS)
        for name, value in new.items():
            s.write(name, value)
        try:
            s.save()
        except PowerCut:
            pass
        else:
            break  # no cut: this many operations is the whole save
        finally:
            s.flash.close()
        after = store(area)
        got = {n: after.read(n) for n in new}
        assert got in (old, new), f"cut at operation {cut_at}: {got}"
        seen.add("new" if got == new else "old")
        cut_at += 1
    assert cut_at == 4  # erase, record, commit byte: three operations, each cut
    assert "old" in seen  # a cut before the commit byte keeps the old values


def test_refusals_carry_the_settings_group_codes(tmp_path: Path) -> None:
    s = store(tmp_path / "settings.bin")
    with pytest.raises(SettingsRefusal) as unknown:
        s.write("reader/colour", b"red")
    assert unknown.value.group_rc is SettingsErr.KEY_NOT_FOUND
    assert "reader/format" in unknown.value.message  # it names what it has
    with pytest.raises(SettingsRefusal) as long_name:
        s.read("reader/" + "x" * 40)
    assert long_name.value.group_rc is SettingsErr.KEY_TOO_LONG
    with pytest.raises(SettingsRefusal) as long_value:
        s.write("reader/prefix", b"x" * 9)
    assert long_value.value.rc == MgmtErr.EMSGSIZE and long_value.value.group_rc is None
    with pytest.raises(SettingsRefusal) as bad:
        s.write("reader/format", b"wiegand")
    assert bad.value.rc == MgmtErr.EINVAL and "em4100, dec, hex" in bad.value.message
    with pytest.raises(SettingsRefusal):
        s.write("reader/suffix", b"a\rb")  # a CR would end the badge line early


# --- the server's answers ------------------------------------------------------------------------


def ask(server: SmpServer, request: object, *, version: int = 1) -> dict[str, object]:
    reply = server.handle(encode_request(request, 7, version=version))  # type: ignore[arg-type]
    assert reply.packet is not None
    packet = decode_packet(reply.packet)
    assert packet.header.group == Group.SETTINGS and packet.header.sequence == 7
    return packet.body


def test_the_server_serves_group_3_as_zephyr_does(tmp_path: Path) -> None:
    flash = factory_flash(tmp_path / "flash.bin", _image(1))
    boot = Bootloader(flash, model=MODEL, trusted_keys=[])
    s = store(tmp_path / "settings.bin")
    server = SmpServer(boot, DeviceIdentity(MODEL), settings=s)
    assert ask(server, SettingRead("reader/format")) == {"val": b"em4100"}
    assert ask(server, SettingWrite("reader/format", b"hex")) == {}
    assert ask(server, SettingRead("reader/format", max_size=2)) == {"val": b"he",
                                                                     "max_size": 3}
    assert ask(server, SettingsCommit()) == {} and s.value("reader/format") == b"hex"
    assert ask(server, SettingsSave()) == {}
    assert ask(server, SettingWrite("reader/format", b"dec")) == {}
    assert ask(server, SettingsLoad()) == {} and s.read("reader/format") == b"hex"
    assert ask(server, SettingDelete("reader/format")) == {}
    # Names: the group's own codes in a version 1 (SMPv2) request, the generic ones in v0.
    assert ask(server, SettingRead("reader/colour")) == {"err": {"group": 3, "rc": 3}}
    v0 = ask(server, SettingRead("reader/colour"), version=0)
    assert v0["rc"] == MgmtErr.ENOENT and "reader/format" in str(v0["rsn"])
    assert ask(server, SettingRead("r" * 33)) == {"err": {"group": 3, "rc": 2}}
    too_long = ask(server, SettingWrite("reader/prefix", b"x" * 9))
    assert too_long["rc"] == MgmtErr.EMSGSIZE and "8" in str(too_long["rsn"])
    bare = SmpServer(boot, DeviceIdentity(MODEL))  # a device without settings
    assert ask(bare, SettingsSave())["rc"] == MgmtErr.ENOTSUP


@given(name=st.text(max_size=40), val=st.binary(max_size=80))
def test_setting_requests_round_trip(name: str, val: bytes) -> None:
    for request in (SettingWrite(name, val), SettingRead(name), SettingDelete(name)):
        assert parse_request(decode_packet(encode_request(request, 1))) == request


# --- a reader managed by the technician's client -------------------------------------------------


def _image(n: int) -> bytes:
    return img.build(random.Random(n).randbytes(4000), version=f"1.{n}.0", model=MODEL,
                     security_counter=1, key=_KEY)


_KEY = keymod.generate()


def _reader(tmp_path: Path) -> ReaderDevice:
    der = keymod.public_der(_KEY)
    boot = Bootloader(factory_flash(tmp_path / "flash.bin", _image(1)), model=MODEL,
                      trusted_keys=[der])
    return ReaderDevice(boot, DeviceIdentity(MODEL, (keymod.key_id(_KEY),), (der,)),
                        settings=create_area(tmp_path / "settings.bin"))


def _badge_lines(dev: ReaderDevice, query: str) -> queue.Queue[CardRead]:
    reads: queue.Queue[CardRead] = queue.Queue()
    reader = open_reader(f"serial:{dev.badge_device}?{query}", reader_id="door")
    reader.start(reads.put)
    _open.append(reader)
    return reads


_open: list[object] = []


@pytest.fixture(autouse=True)
def _stop_readers() -> object:
    yield
    while _open:
        _open.pop().stop()  # type: ignore[attr-defined]


def test_a_technician_changes_the_badge_output_and_it_survives_a_reset(tmp_path: Path) -> None:
    with _reader(tmp_path) as dev:
        assert dev.present(4660)[:1] == b"\x02"  # type: ignore[index]  # the RDM6300 frame

        async def configure() -> tuple[bytes, bytes]:
            async with SmpDevice(dev.device, timeout_s=1.0, retries=1) as smp:
                await smp.write_setting("reader/format", b"hex")
                await smp.write_setting("reader/prefix", b"ID")
                before = dev.present(4660)  # written, not committed: output as it was
                await smp.commit_settings()
                after = dev.present(4660)
                await smp.save_settings()
                assert await smp.read_setting("reader/format") == b"hex"
                await smp.reset()
                await smp.wait_back(10)
                return before or b"", after or b""

        before, after = asyncio.run(configure())
        assert before[:1] == b"\x02"
        assert after == b"ID1234\r"
        assert dev.boots == 2 and dev.present(4660) == b"ID1234\r"  # saved: kept at boot


def test_the_client_says_what_an_unknown_name_or_a_long_value_means(tmp_path: Path) -> None:
    with _reader(tmp_path) as dev:
        async def go() -> tuple[DeviceError, DeviceError]:
            async with SmpDevice(dev.device, timeout_s=1.0, retries=1) as smp:
                with pytest.raises(DeviceError) as unknown:
                    await smp.write_setting("reader/colour", b"red")
                with pytest.raises(DeviceError) as long_value:
                    await smp.write_setting("reader/prefix", b"0123456789")
                return unknown.value, long_value.value

        unknown, long_value = asyncio.run(go())
        assert "no setting named reader/colour" in unknown.message
        assert unknown.code == "setting_unknown"
        assert "longer than the 8" in long_value.message


def test_mfd_flash_set_with_settings_only(tmp_path: Path, capsys) -> None:
    with _reader(tmp_path) as dev:
        code = main(["flash", "--settings-only", "--port", dev.device, "--json",
                     "--timeout", "1", "--set", "reader/format=dec",
                     "--set", "reader/suffix=;"])
        out = json.loads(capsys.readouterr().out)
        assert code == 0, out
        [d] = out["devices"]
        assert d["outcome"] == "configured"
        assert d["settings"] == {"reader/format": "dec", "reader/suffix": ";"}
        assert dev.present(77) == b"77;\r"
        reads = _badge_lines(dev, "family=twn4&base=dec&post=%3B")
        dev.present(88)
        assert reads.get(timeout=3).number.endswith("88")
    # Saved: a new power-on of the same flash files reads them back.
    with _reader_again(tmp_path) as dev:
        assert dev.present(5) == b"5;\r"


def _reader_again(tmp_path: Path) -> ReaderDevice:
    der = keymod.public_der(_KEY)
    boot = Bootloader(Flash(tmp_path / "flash.bin"), model=MODEL, trusted_keys=[der])
    return ReaderDevice(boot, DeviceIdentity(MODEL), settings=create_area(
        tmp_path / "settings.bin"))


def test_mfd_flash_set_refused_name_fails_the_device_and_says_so(tmp_path: Path,
                                                                 capsys) -> None:
    with _reader(tmp_path) as dev:
        code = main(["flash", "--settings-only", "--port", dev.device, "--timeout", "1",
                     "--set", "reader/colour=red"])
        captured = capsys.readouterr()
        assert code == 1
        assert "no setting named reader/colour" in captured.out
        assert dev.present(5)[:1] == b"\x02"  # type: ignore[index]  # nothing changed


def test_set_without_a_value_is_a_usage_error(capsys) -> None:
    assert main(["flash", "--settings-only", "--port", "/dev/null", "--set",
                 "reader/format"]) != 0
    assert "NAME=VALUE" in capsys.readouterr().err


def test_cbor_of_the_record_is_a_map_of_bytes(tmp_path: Path) -> None:
    s = store(tmp_path / "settings.bin")
    s.write("reader/prefix", b"A")
    s.save()
    raw = s.flash.read(0, 64)
    length = int.from_bytes(raw[4:8], "little")
    assert cbor2.loads(raw[12:12 + length]) == {"reader/prefix": b"A"}


# --- a panel over UDP --------------------------------------------------------------------------


class _Up:
    """The panel's app for this test: up at once (the app itself is tested in
    test_smp_panel.py; here only the panel's SMP settings are)."""

    def healthy(self) -> bool:
        return True

    def stop(self) -> None:
        pass


def _panel(tmp_path: Path, *, new: bool) -> PanelDevice:
    der = keymod.public_der(_KEY)
    if new:
        flash = factory_flash(tmp_path / "panel.bin", img.build(
            b"mfd-app bundle\n" + random.Random(9).randbytes(3000), version="1.0.0",
            model="panel-mfd", security_counter=1, key=_KEY))
        Flash.create(tmp_path / "bootcount.bin", flash.sector_size).close()
    else:
        flash = Flash(tmp_path / "panel.bin")
    boot = Bootloader(flash, model="panel-mfd", trusted_keys=[der])
    return PanelDevice(boot, DeviceIdentity("panel-mfd", name="mfd-panel"),
                       lambda payload: _Up(), Flash(tmp_path / "bootcount.bin"), port=0,
                       settings=create_area(tmp_path / "panel-settings.bin"))


def test_a_panel_keeps_its_device_id_and_broker_over_udp(tmp_path: Path, capsys) -> None:
    panel = _panel(tmp_path, new=True)
    try:
        assert panel.serving.wait(10)
        code = main(["flash", "--settings-only", "--port", panel.address, "--json",
                     "--timeout", "1", "--set", "panel/device_id=copier-7",
                     "--set", "panel/broker=mqtts://broker.example:8883"])
        [d] = json.loads(capsys.readouterr().out)["devices"]
        assert code == 0, d
        assert d["baud"] is None and d["bauds_tried"] == []  # UDP: no rate to find
        assert panel.settings is not None
        assert panel.settings.value("panel/device_id") == b"copier-7"
    finally:
        panel.close()
        panel.bootloader.flash.close()
    again = _panel(tmp_path, new=False)
    try:
        assert again.serving.wait(10) and again.settings is not None
        assert again.settings.value("panel/broker") == b"mqtts://broker.example:8883"
    finally:
        again.close()


def test_a_password_in_a_setting_is_kept_but_never_shown(tmp_path: Path, capsys) -> None:
    panel = _panel(tmp_path, new=True)
    try:
        assert panel.serving.wait(10)
        code = main(["flash", "--settings-only", "--port", panel.address, "--json",
                     "--timeout", "1", "--set", "panel/broker=mqtts://dev:s3cret@b.example:8883"])
        out = capsys.readouterr()
        [d] = json.loads(out.out)["devices"]
        assert code == 0, d
        assert d["settings"]["panel/broker"] == "mqtts://dev:***@b.example:8883"
        assert "s3cret" not in out.out + out.err
        assert panel.settings is not None  # the device has what was sent
        assert panel.settings.value("panel/broker") == b"mqtts://dev:s3cret@b.example:8883"
    finally:
        panel.close()
        panel.bootloader.flash.close()


@given(junk=st.binary(min_size=0, max_size=300), at=st.integers(0, 2 * 4096 - 300))
def test_any_bytes_in_the_settings_area_load_as_a_record_or_the_defaults(junk: bytes,
                                                                        at: int) -> None:
    # Whatever a damaged part or a foreign image left there: load never raises, and a value it
    # returns is one the schema takes (or the default).
    with tempfile.TemporaryDirectory() as d:
        area = Path(d) / "settings.bin"
        good = store(area)
        good.write("reader/prefix", b"OK")
        good.save()
        good.flash.close()
        raw = bytearray(area.read_bytes())
        raw[at:at + len(junk)] = junk
        area.write_bytes(bytes(raw))
        s = store(area)
        assert s.read("reader/prefix") in (b"OK", b"")
        assert s.read("reader/format") == b"em4100"
        s.flash.close()

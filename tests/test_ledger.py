"""The fleet ledger (provisioning/ledger.py): what ``mfd flash`` records per device, that
concurrent writers never interleave, that a line torn by a power cut is skipped, and that no
key ends up in it. ``mfd ledger`` reads it back. Emulated readers with MCUboot on ptys, real
smpclient, real processes for the concurrency."""

from __future__ import annotations

import json
import logging
import multiprocessing
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from utf8 import utf8_encodable

from firmware_stubs.mcuboot import Bootloader, factory_flash
from firmware_stubs.smp.reader_device import ReaderDevice
from firmware_stubs.smp.server import DeviceIdentity
from mfdkit.cli import flash as flash_cli
from mfdkit.cli import ledger as ledger_cli
from mfdkit.cli.common import _Parser
from provisioning import image as img
from provisioning import keys as keymod
from provisioning.ledger import Entry, Ledger, LedgerError, record

MODEL = "reader-em4100"


def mfd(*argv: str) -> int:
    # The two roles under test on a parser of their own (the same register() mfd calls).
    p = _Parser(prog="mfd")
    sub = p.add_subparsers(dest="command", required=True)
    flash_cli.register(sub)
    ledger_cli.register(sub)
    args = p.parse_args(list(argv))
    result: int = args.func(args)
    return result


@pytest.fixture
def devices(tmp_path: Path) -> Iterator[tuple[list[ReaderDevice], dict[str, Path], bytes]]:
    key = keymod.generate()
    rng = random.Random(3)
    images = {v: img.build(rng.randbytes(6_000), version=v, model=MODEL, security_counter=1,
                           key=key) for v in ("1.0.0", "1.0.1", "1.1.0")}
    paths = {}
    for v, data in images.items():
        paths[v] = tmp_path / f"reader-{v}.img"
        paths[v].write_bytes(data)
    der = keymod.public_der(key)
    made = []
    # One to update, one already on the image, one on a newer image (a downgrade: refused).
    for n, factory in enumerate(("1.0.0", "1.0.1", "1.1.0")):
        boot = Bootloader(factory_flash(tmp_path / f"flash{n}.bin", images[factory]),
                          model=MODEL, trusted_keys=[der])
        made.append(ReaderDevice(boot, DeviceIdentity(MODEL, (keymod.key_id(key),), (der,))))
    # The signing key's own bytes (private, raw) and the public key the devices trust.
    yield made, paths, (key.key.private_bytes_raw(), der)
    for d in made:
        d.close()


def test_a_flash_of_three_readers_leaves_one_entry_each(devices, tmp_path, capsys) -> None:
    devs, paths, key_bytes = devices
    ledger = tmp_path / "ledger.jsonl"
    argv = ["flash", str(paths["1.0.1"]), "--timeout", "1", "--ledger", str(ledger),
            "--who", "tech-ana", "--json"]
    for d in devs:
        argv += ["--port", d.device]
    assert mfd(*argv) == 1  # one refused
    out = json.loads(capsys.readouterr().out)
    assert out["ledger"] == str(ledger)

    entries = list(Ledger(ledger).read())
    by_port = {e.device["port"]: e for e in entries}
    assert len(entries) == 3 and set(by_port) == {d.device for d in devs}
    updated, skipped, refused = (by_port[d.device] for d in devs)
    assert (updated.result, updated.code) == ("ok", None)
    assert (skipped.result, refused.result) == ("skipped", "refused")
    assert refused.code == img.DOWNGRADE and "downgrade" in refused.message
    want = img.inspect(paths["1.0.1"].read_bytes())
    for e in entries:
        assert e.action == "flash" and e.who == "tech-ana" and e.when.endswith("Z")
        assert e.image_hash == want.hash.hex() and e.key_id == want.key_id
        assert e.version == "1.0.1" and e.device["model"] == MODEL
    assert updated.from_version == "1.0.0" and refused.from_version == "1.1.0"
    # The slot state after: the new image runs, confirmed; the refused one still runs 1.1.0.
    assert any(s["active"] and s["confirmed"] and s["version"] == "1.0.1"
               for s in updated.slots)
    assert any(s["active"] and s["version"] == "1.1.0" for s in refused.slots)

    # No key in the ledger: the key's id only, never the key (private or public).
    text = ledger.read_bytes()
    for secret in key_bytes:
        assert secret not in text and secret.hex().encode() not in text

    # mfd ledger shows them; --device keeps one device's.
    assert mfd("ledger", "--ledger", str(ledger), "--device", devs[2].device) == 0
    table = capsys.readouterr().out
    assert "refused (image_downgrade)" in table and "1.1.0 -> 1.0.1" in table
    assert devs[0].device not in table
    assert mfd("ledger", "--ledger", str(ledger), "--json") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(x)["result"] for x in lines] == [e.result for e in entries]


def test_a_dry_run_is_not_recorded(devices, tmp_path) -> None:
    devs, paths, _ = devices
    ledger = tmp_path / "ledger.jsonl"
    assert mfd("flash", str(paths["1.0.1"]), "--port", devs[0].device, "--dry-run",
               "--ledger", str(ledger)) == 0
    assert list(Ledger(ledger).read()) == []


def test_an_unwritable_ledger_stops_the_flash_before_any_device(devices, tmp_path,
                                                                capsys) -> None:
    devs, paths, _ = devices
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(LedgerError, match="cannot write the ledger"):
        mfd("flash", str(paths["1.0.1"]), "--port", devs[0].device, "--ledger",
            str(blocker / "ledger.jsonl"))
    assert devs[0].upload_requests == 0 and devs[0].bootloader.running().version == "1.0.0"


def _entry(n: int, writer: int) -> Entry:
    # Long enough that a line spans many of the pipe/page sizes where interleaving would show.
    return Entry(action="flash", device={"port": f"/dev/ttyACM{writer}", "serial": f"S{n}"},
                 result="ok", image_hash="ab" * 32, key_id="00" * 8, version="1.0.0",
                 message="x" * 3000, who=f"writer{writer}", details={"n": n})


def _writer(path: str, writer: int, count: int) -> None:
    ledger = Ledger(path)
    for n in range(count):
        ledger.append(_entry(n, writer))


def test_concurrent_appends_from_processes_never_interleave(tmp_path) -> None:
    path = tmp_path / "ledger.jsonl"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 200)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""  # ends with a whole line
    parsed = [json.loads(x) for x in lines[:-1]]  # every line parses
    assert len(parsed) == 8 * 200
    for w in range(8):
        mine = [e["details"]["n"] for e in parsed if e["who"] == f"writer{w}"]
        assert mine == list(range(200))  # each writer's entries whole and in its order


def test_a_torn_last_line_is_skipped_with_a_warning_and_the_next_entry_is_whole(
        tmp_path, caplog) -> None:
    path = tmp_path / "ledger.jsonl"
    record(_entry(1, 0), path)
    record(_entry(2, 0), path)
    whole = path.read_bytes()
    path.write_bytes(whole[:-1500])  # the power cut, halfway through the second line
    with caplog.at_level(logging.WARNING, logger="provisioning.ledger"):
        assert [e.details["n"] for e in Ledger(path).read()] == [1]
    assert "line 2 is damaged" in caplog.text
    # The next entry starts on a line of its own: the torn one does not take it down.
    record(_entry(3, 0), path)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="provisioning.ledger"):
        assert [e.details["n"] for e in Ledger(path).read()] == [1, 3]
    assert "line 2 is damaged" in caplog.text


@pytest.mark.parametrize("name", ["broker_password", "mqtt_token", "private_key",
                                  "access_code", "Secret"])
def test_details_that_look_like_secrets_are_refused(tmp_path, name) -> None:
    path = tmp_path / "ledger.jsonl"
    entry = Entry(action="provision", device={"id": "copier-1"}, result="ok",
                  details={name: "hunter2"})
    with pytest.raises(LedgerError, match="looks like a secret"):
        record(entry, path)
    assert not path.exists() or b"hunter2" not in path.read_bytes()


def test_a_provision_entry_round_trips_and_bad_entries_are_refused(tmp_path) -> None:
    path = tmp_path / "ledger.jsonl"
    written = record(Entry(action="provision", device={"id": "copier-1", "serial": "SN-7"},
                           result="failed", code="config_invalid", version="3",
                           details={"config_version": 3}), path)
    assert [*Ledger(path).read()] == [written] and written.who and written.when
    assert Ledger(path).for_device("SN-7") == [written]
    for bad in (Entry(action="reboot", device={"id": "x"}, result="ok"),
                Entry(action="flash", device={"id": "x"}, result="done"),
                Entry(action="flash", device={}, result="ok")):
        with pytest.raises(LedgerError):
            record(bad, path)


_text = st.text(max_size=60).filter(lambda t: "\x00" not in t and utf8_encodable(t))


@settings(max_examples=150, deadline=None)
@given(port=_text.filter(bool), message=_text, who=_text.filter(bool), version=_text,
       details=st.dictionaries(st.sampled_from(["image", "bytes_sent", "seconds", "note"]),
                               _text | st.integers(-2**53, 2**53) | st.booleans()))
def test_any_entry_reads_back_as_written(tmp_path_factory, port, message, who, version,
                                         details) -> None:
    path = tmp_path_factory.mktemp("ledger") / "ledger.jsonl"
    entry = Entry(action="flash", device={"port": port}, result="failed", code="device_silent",
                  message=message, version=version, who=who, details=details,
                  slots=({"slot": 0, "version": version, "active": True},))
    written = record(entry, path)
    assert list(Ledger(path).read()) == [written]
    assert path.read_bytes().count(b"\n") == 1  # one line, whatever the text held

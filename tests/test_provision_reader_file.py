"""mfd provision --reader-file (issue 11): reader specs that carry a key (OSDP's scbk) come
from a file instead of the command line, which every user of the machine sees in ps; a key
given on the command line is warned about, by the parameter's name, never its value. The key
written from the file is proved by the emulated OSDP reader: Secure Channel comes up with it
and a card arrives."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_app.config import load_config
from firmware_stubs.osdp_pd import OsdpPdStub, h10301
from mfdkit.cli import main
from provisioning.provision import spec_secrets
from readers.events import CardRead
from readers.pty import PtyPort
from readers.spec import open_reader

pytestmark = pytest.mark.integration

KEY = "5f3e8a1c2b7d40e9a6c1d2e3f4a5b6c7"
ADDRESS = 2


def provision_args(tmp: Path, *extra: str) -> list[str]:
    (tmp / "pw").write_text("pw-r\n")
    return ["provision", str(tmp / "dev"), "--device-id", "copier-r",
            "--broker", "mqtt://127.0.0.1:1883", "--username", "copier-r",
            "--password-file", str(tmp / "pw"), "--engine", "emulator",
            "--ledger", str(tmp / "ledger.jsonl"), *extra]


def private_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.fixture
def line() -> Iterator[PtyPort]:
    with PtyPort() as port:
        yield port


def test_specs_from_a_file_reach_the_device_and_its_key_opens_secure_channel(
        line: PtyPort, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    osdp = f"osdp:{line.device}?address={ADDRESS}&scbk={KEY}&lockout=0&id=door"
    specs = private_file(tmp_path / "readers.txt", f"# the front door's OSDP reader\n\n"
                         f"  {osdp}  \n# a bench reader\nsim:bench?lockout=0\n")
    assert main([*provision_args(tmp_path, "--reader", "sim:first?lockout=0",
                                 "--reader-file", str(specs))]) == 0
    out = capsys.readouterr()
    assert "warning" not in out.err  # nothing on the command line carried a key
    assert KEY not in (out.out + out.err).lower()
    cfg = load_config(tmp_path / "dev" / "device.toml")
    # --reader first, then the file's lines in order; comments, blanks and spaces gone.
    assert cfg.readers == ("sim:first?lockout=0", osdp, "sim:bench?lockout=0")
    assert (tmp_path / "dev" / "device.toml").stat().st_mode & 0o777 == 0o600
    # The key as written is the reader's: the panel's side of the link comes up secure.
    pd = OsdpPdStub(line, address=ADDRESS, scbk=bytes.fromhex(KEY))
    pd.start()
    reader = open_reader(cfg.readers[1])
    reads: queue.Queue[CardRead] = queue.Queue()
    reader.start(reads.put)
    try:
        pd.present(h10301(2, 10482))
        read = reads.get(timeout=5)
        assert (read.number, read.reader_id) == ("00451E5", "door")
        assert getattr(reader, "secure", False)
    finally:
        reader.stop()
        pd.stop()


def test_a_key_on_the_command_line_is_warned_about_by_name_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keyed = f"osdp:/dev/ttyUSB0?address=0&scbk={KEY}"
    assert main([*provision_args(tmp_path, "--reader", "sim:a?lockout=0",
                                 "--reader", keyed, "--dry-run")]) == 0
    err = capsys.readouterr().err
    assert "--reader #2 carries a secret (scbk)" in err and "--reader-file" in err
    assert "#1" not in err and KEY not in err.lower()
    # A mistyped spec is refused, and still warned about: its key is in argv all the same.
    assert main([*provision_args(tmp_path, "--reader", f"osdp:/dev/ttyUSB0?scbk:{KEY}",
                                 "--dry-run")]) == 1
    err = capsys.readouterr().err
    assert "carries a secret" in err and KEY not in err.lower()
    # No key, no warning (a by-id path's long hex serial number is no key).
    by_id = "serial:/dev/serial/by-id/usb-Arduino_85734323231351F07191-if00?family=pcprox"
    assert main([*provision_args(tmp_path, "--reader", by_id, "--dry-run")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_bad_line_is_named_and_nothing_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    specs = private_file(tmp_path / "readers.txt", "# readers\nsim:ok?lockout=0\n\n"
                         f"osdp:/dev/ttyUSB0?address=0&scbk={KEY}&bogus=1\n")
    assert main(provision_args(tmp_path, "--reader-file", str(specs))) == 1
    err = capsys.readouterr().err
    assert f"--reader-file {specs}, line 4:" in err and "bogus" in err
    assert KEY not in err.lower()
    assert not (tmp_path / "dev").exists()
    assert main(provision_args(tmp_path, "--reader-file", str(tmp_path / "missing.txt"))) == 1
    assert "missing.txt: cannot read it" in capsys.readouterr().err
    # A key in a file other users may read: said, with the fix; the run itself goes on.
    specs.write_text(f"osdp:/dev/ttyUSB0?address=0&scbk={KEY}\n")
    specs.chmod(0o644)
    assert main([*provision_args(tmp_path, "--reader-file", str(specs), "--dry-run")]) == 0
    err = capsys.readouterr().err
    assert f"chmod 600 {specs}" in err and KEY not in err.lower()


@pytest.mark.parametrize(("spec", "names"), [
    (f"osdp:/dev/ttyUSB0?address=0&scbk={KEY}", ["scbk"]),
    (f"osdp:/dev/ttyUSB0&scbk={KEY}", ["scbk"]),  # the "?" forgotten
    (f"osdp:/dev/ttyUSB0?address=0&{KEY}", ["***"]),  # a bare key: named masked
    ("sim:x?master_key=1&pin=2", ["master_key", "pin"]),
    ("osdp:/dev/ttyUSB0?plaintext=1&address=126", []),
    ("serial:/dev/ttyUSB0?family=pcprox&base=hex&pre=;&post=?&width=8", []),
])
def test_spec_secrets_names_without_values(spec: str, names: list[str]) -> None:
    assert spec_secrets(spec) == names


def test_of_every_backends_parameters_only_the_osdp_key_is_a_secret() -> None:
    # No warning for an ordinary spec: a warning that fires on every spec gets ignored.
    import importlib

    from readers.adapters import BACKENDS

    found = {}
    for scheme, module in BACKENDS.items():
        params = importlib.import_module(module).SPEC_PARAMS
        found[scheme] = spec_secrets(f"{scheme}:x?" + "&".join(f"{p}=1" for p in params))
    assert found == {"serial": [], "pcsc": [], "osdp": ["scbk"], "replay": [], "sim": []}

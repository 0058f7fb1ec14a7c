"""`mfd admin` mistakes are one-line errors with a non-zero exit, never a silent success
(issue 8, defects 5, 7 and 8): run as a user runs it, on a real store of each backend."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

MFD = [sys.executable, "-m", "mfdkit"]
KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MFD, *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ), check=False)


def fails(out: subprocess.CompletedProcess[str], *words: str) -> None:
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert out.stderr.startswith("mfd admin: error: "), out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr
    for word in words:
        assert word in out.stderr, out.stderr


@pytest.fixture
def admin(store_url: str) -> object:
    """`mfd admin --store URL ACTION...` on a store with the demo org."""
    assert run("admin", "--store", store_url, "init").returncode == 0
    assert run("admin", "--store", store_url, "demo").returncode == 0

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return run("admin", "--store", store_url, *args)

    return call


def test_a_store_that_does_not_exist_is_an_error_not_an_empty_one(tmp_path: Path) -> None:
    typo = tmp_path / "clod.db"
    for action in (["users", "--org", "org_demo"], ["jobs"], ["org-add", "Acme"],
                   ["devices"], ["audit"]):
        fails(run("admin", "--store", f"sqlite:///{typo}", *action), "no store at", "init")
        assert not typo.exists()
    # Only `init` (and the laptop `demo`) create one.
    out = run("admin", "--store", f"sqlite:///{typo}", "init")
    assert out.returncode == 0 and typo.is_file()
    assert run("admin", "--store", f"sqlite:///{typo}", "users", "--org", "x").returncode == 1
    demo = tmp_path / "demo.db"
    assert run("admin", "--store", f"sqlite:///{demo}", "demo").returncode == 0
    assert "alice" in run("admin", "--store", f"sqlite:///{demo}", "users", "--org",
                          "org_demo").stdout


def test_a_store_without_mfdkit_tables_is_an_error_not_a_new_schema(
        store_url: str, backend: str) -> None:
    """An existing empty database (a mistyped PostgreSQL name, ``touch e.db``) is not made a
    store by any action but ``init`` and ``demo``: each says so in one line, non-zero."""
    from cloud.storage.factory import open_store
    from protocol.errors import StoreError

    if backend == "sqlite":
        Path(store_url.removeprefix("sqlite:///")).touch()
    for action in (["devices"], ["users", "--org", "org_demo"], ["org-add", "Acme"],
                   ["throttles"], ["audit"]):
        fails(run("admin", "--store", store_url, *action), "no mfdkit tables",
              "mfd admin --store URL init")
    if backend == "sqlite":
        import sqlite3

        with contextlib.closing(sqlite3.connect(store_url.removeprefix("sqlite:///"))) as con:
            assert con.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    with pytest.raises(StoreError, match="no mfdkit tables"):
        open_store(store_url, create=False)  # still none: nothing above created them
    assert run("admin", "--store", store_url, "init").returncode == 0
    out = run("admin", "--store", store_url, "devices")
    assert out.returncode == 0 and out.stdout == "", out.stderr


def test_an_unsupported_store_url_is_quoted_without_its_password() -> None:
    out = run("admin", "--store", "mysql://u:S3cretPw@db.example.org/print", "devices")
    fails(out, "unsupported store URL", "mysql://u:")
    assert "S3cretPw" not in out.stderr


def test_unknown_org_user_and_device_are_errors(admin) -> None:  # type: ignore[no-untyped-def]
    fails(admin("users", "--org", "org_typo"), "no org org_typo", "org_demo")
    fails(admin("org-settings", "--org", "org_typo"), "no org org_typo")
    fails(admin("device-add", "--org", "org_typo", "copier-7"), "no org org_typo")
    fails(admin("queues", "--org", "org_typo"), "no org org_typo")
    fails(admin("unlock", "--user", "nobody@example.org"), "no user nobody@example.org")
    fails(admin("unlock", "--device", "copier-404"), "no device copier-404")
    audit = admin("audit", "--limit", "5").stdout
    assert "unlock" not in audit
    # Not "not throttled", which reads as all clear: there is no such device.
    fails(admin("unthrottle", "--device", "nodev"), "no device nodev")
    assert "not throttled" in admin("unthrottle", "--device", "copier-1").stderr
    # A real user who is not locked: said so, not "unlocked".
    out = admin("unlock", "--user", "alice@example.org")
    assert out.returncode == 0 and "was not locked" in out.stdout


def test_what_is_added_must_be_usable(admin) -> None:  # type: ignore[no-untyped-def]
    fails(admin("org-add", " "), "name")
    fails(admin("user-add", "--org", "org_demo", "not-an-email", "Name"), "not an email")
    fails(admin("user-add", "--org", "org_demo", "ann@example.org", ""), "display name")
    for number in ("", "00 12", "x" * 129):
        out = admin("card-add", "alice@example.org", number)
        fails(out, "card number")
        if number.strip():
            assert number not in out.stderr  # never a card number in clear
    users = admin("users", "--org", "org_demo").stdout
    assert "not-an-email" not in users and "ann@example.org" not in users
    assert admin("card-add", "alice@example.org", "0009876543").returncode == 0


def test_counts_must_be_positive(admin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "a.pdf"
    doc.write_bytes(b"%PDF-1.4")
    for args in (["job-add", "--user", "alice@example.org", str(doc), "--pages", "0"],
                 ["job-add", "--user", "alice@example.org", str(doc), "--copies", "-2"],
                 ["audit", "--limit", "-1"], ["bulk-installer", "--days", "-1"]):
        out = admin(*args)
        assert out.returncode == 2 and "must be" in out.stderr, (args, out.stderr)
    assert "a.pdf" not in admin("jobs").stdout


@pytest.mark.parametrize("device_id", ["cloud", "cloud-0", "cloud-12", "admin", "dynsec"])
def test_device_add_refuses_reserved_account_names(admin, device_id: str) -> None:  # type: ignore[no-untyped-def]
    fails(admin("device-add", "--org", "org_demo", device_id), "reserved")
    assert device_id not in [line.split("\t")[0] for line in admin("devices").stdout.splitlines()]


def test_device_config_is_checked_with_the_device_schema(admin) -> None:  # type: ignore[no-untyped-def]
    def state() -> str:
        line = next(x for x in admin("devices").stdout.splitlines()
                    if x.startswith("copier-1\t"))
        return line.rsplit("\t", 1)[1]

    for bad, named in [("policy.bogus=1", "bogus"), ("policy.idle_timeout=1", "idle_timeout"),
                       ("policy.card_pin=yes", "card_pin"),
                       ("readers.specs=\"serial:x\"", "readers.specs"),
                       ('readers.specs=["usb:x"]', "readers.specs[0]"),
                       ("broker.url=x", "broker")]:
        fails(admin("device-config", "copier-1", "--set", bad), named)
    assert state() == "no pushed config"
    # A malformed OSDP spec: refused, and its key is not in the error.
    out = admin("device-config", "copier-1", "--set",
                "readers.specs=" + json.dumps([f"osdp:/dev/ttyS0?scbk={KEY}&address"]))
    fails(out, "readers.specs[0]")
    assert KEY not in out.stderr and KEY.upper() not in out.stderr
    # Good values are stored; --unset removes a key (and the next version carries the rest).
    assert admin("device-config", "copier-1", "--set", "policy.idle_timeout=90",
                 "--set", "policy.card_pin=true").returncode == 0
    assert state().startswith("config v1")
    out = admin("device-config", "copier-1", "--unset", "policy.card_pin")
    assert out.returncode == 0 and "version 2" in out.stdout
    fails(admin("device-config", "copier-1", "--unset", "policy.card_pin"), "policy.card_pin")
    fails(admin("device-config", "copier-1"), "--set", "--unset")
    fails(admin("device-config", "copier-404", "--set", "policy.idle_timeout=90"), "copier-404")
    # A combination the device refuses is refused as a whole, whichever key made it so.
    fails(admin("device-config", "copier-1", "--set", "policy.allow_code=false",
                "--set", "policy.card_pin=true"), "card_pin")
    assert state().startswith("config v2")


def test_after_a_refusal_the_next_version_says_what_it_still_carries(
        admin, store_url: str) -> None:  # type: ignore[no-untyped-def]
    from cloud import devices
    from cloud.storage.factory import open_store
    from protocol import messages as m

    spec = '["replay:/var/lib/mfdkit/badges.rec"]'  # a file only the device can look for
    assert admin("device-config", "copier-1", "--set", f"readers.specs={spec}").returncode == 0
    store = open_store(store_url)
    try:  # the device's answer, as the worker records it
        devices.record_ack(store, "copier-1", m.ConfigAck(
            version=1, applied=False, reason="config key 'readers.specs[0]': no such file"),
            time.time())
    finally:
        store.close()
    out = admin("device-config", "copier-1", "--set", "policy.idle_timeout=90")
    assert out.returncode == 0 and "version 2" in out.stdout
    assert "refused version 1" in out.stderr and "--unset" in out.stderr
    out = admin("device-config", "copier-1", "--unset", "readers")
    assert out.returncode == 0 and "version 3" in out.stdout


def test_a_portal_url_that_is_not_a_web_address_is_refused(admin) -> None:  # type: ignore[no-untyped-def]
    # It goes into links people are sent by email: a typo would send links that never open.
    for url in ("notaurl", "ftp://print.example.org", "https://", "print.example.org"):
        out = admin("--portal-url", url, "share-link", "--org", "org_demo")
        assert out.returncode == 2 and "is not an http:// or https:// address" in out.stderr
        assert "/portal/" not in out.stdout
    ok = admin("--portal-url", "https://print.example.org", "share-link", "--org", "org_demo")
    assert ok.returncode == 0 and "https://print.example.org/" in ok.stdout, ok.stderr

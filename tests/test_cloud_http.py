"""``mfd cloud --http``: the whole web app (API, User Portal, admin console) served by uvicorn
from the command line, with its settings: the shared session key file, HTTPS-only cookies,
mail and single sign-on, secrets from files or the environment only."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Broker

from mfdkit.cli import build_parser
from mfdkit.cli.cloud import session_key, web_settings
from protocol.errors import MfdError


def parse(*options: str) -> argparse.Namespace:
    return build_parser().parse_args(["cloud", "--broker", "mqtt://127.0.0.1:1", "--store",
                                      "sqlite:///x.db", "--http", "127.0.0.1:0", *options])


def test_the_session_key_file_is_made_once_shared_and_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "session.key"
    key = session_key(str(path))
    assert key is not None and len(key) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert session_key(str(path)) == key  # a second process reads the same key
    assert [p.name for p in tmp_path.iterdir()] == ["session.key"]  # no temporary left
    path.chmod(0o644)
    with pytest.raises(MfdError, match="chmod 600"):
        session_key(str(path))
    path.write_text("short\n")
    path.chmod(0o600)
    with pytest.raises(MfdError, match="32 characters"):
        session_key(str(path))
    assert session_key(None) is None


def test_web_settings_from_options_files_and_environment(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith(("MFD_SMTP_", "MFD_OIDC_"))]:
        monkeypatch.delenv(name)
    plain = web_settings(parse())
    assert plain.smtp is None and plain.oidc is None and not plain.https_only
    secret = tmp_path / "smtp.pw"
    secret.write_text("mail secret\n")
    client_secret = tmp_path / "oidc.secret"
    client_secret.write_text("oidc secret\n")
    s = web_settings(parse(
        "--https-only", "--public-url", "https://print.acme.test/",
        "--smtp", "mail.acme.test:587", "--mail-from", "Print <print@acme.test>",
        "--smtp-user", "print", "--smtp-password-file", str(secret),
        "--oidc-issuer", "https://id.acme.test/", "--oidc-client-id", "portal",
        "--oidc-client-secret-file", str(client_secret), "--oidc-label", "Acme",
        "--oidc-org", "org_acme", "--oidc-email-domains", "acme.test, @Acme.example",
        "--session-key-file", str(tmp_path / "k")))
    assert s.https_only and s.public_url == "https://print.acme.test"
    assert s.smtp is not None and (s.smtp.host, s.smtp.port, s.smtp.starttls) == \
        ("mail.acme.test", 587, True)
    assert (s.smtp.username, s.smtp.password) == ("print", "mail secret")
    assert s.oidc is not None and (s.oidc.issuer, s.oidc.client_id, s.oidc.client_secret,
                                   s.oidc.label) == ("https://id.acme.test", "portal",
                                                     "oidc secret", "Acme")
    assert (s.oidc.org, s.oidc.domains) == ("org_acme", ("acme.test", "acme.example"))
    assert s.secret_key == (tmp_path / "k").read_bytes().strip()
    # Secrets stay out of reprs (and so out of logs and tracebacks).
    assert "mail secret" not in repr(s) and "oidc secret" not in repr(s)
    # The environment, as docs/sso-and-mail.md names it.
    monkeypatch.setenv("MFD_SMTP_HOST", "relay.acme.test")
    monkeypatch.setenv("MFD_SMTP_SENDER", "print@acme.test")
    monkeypatch.setenv("MFD_SMTP_STARTTLS", "0")
    monkeypatch.setenv("MFD_OIDC_ISSUER", "https://id.acme.test")
    monkeypatch.setenv("MFD_OIDC_CLIENT_ID", "portal")
    monkeypatch.setenv("MFD_OIDC_CLIENT_SECRET", "from env")
    s = web_settings(parse())
    assert s.smtp is not None and (s.smtp.host, s.smtp.port, s.smtp.starttls) == \
        ("relay.acme.test", 587, False)
    assert s.oidc is not None and s.oidc.client_secret == "from env"
    # Refusals name what is missing.
    monkeypatch.delenv("MFD_SMTP_SENDER")
    with pytest.raises(MfdError, match="--mail-from"):
        web_settings(parse())
    monkeypatch.delenv("MFD_SMTP_HOST")
    monkeypatch.delenv("MFD_OIDC_CLIENT_SECRET")
    with pytest.raises(MfdError, match="oidc-client-secret-file"):
        web_settings(parse())
    # An issuer reached without TLS could hand out its own keys: only on this machine.
    monkeypatch.setenv("MFD_OIDC_CLIENT_SECRET", "from env")
    with pytest.raises(MfdError, match="https:// URL"):
        web_settings(parse("--oidc-issuer", "http://id.acme.test"))
    local = web_settings(parse("--oidc-issuer", "http://127.0.0.1:9000"))
    assert local.oidc is not None and local.oidc.issuer == "http://127.0.0.1:9000"
    monkeypatch.delenv("MFD_OIDC_ISSUER")
    monkeypatch.delenv("MFD_OIDC_CLIENT_SECRET")
    with pytest.raises(MfdError, match="--smtp wants HOST:PORT"):
        web_settings(parse("--smtp", "mail.acme.test", "--mail-from", "p@acme.test"))
    # No option takes a secret on the command line, nor is one taken for a file's name.
    for option in ("--smtp-password", "--oidc-client-secret", "--session-key"):
        with pytest.raises(MfdError, match=f"{option} is not taken") as refused:
            web_settings(parse(option, "hunter2-secret"))
        assert "hunter2" not in refused.value.message


def test_mfd_cloud_http_serves_the_api_the_portal_and_secure_cookies(
        broker: Broker, tmp_path: Path) -> None:
    addr = broker.address("cloud-1")
    key = tmp_path / "session.key"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mfdkit", "cloud", "--broker", f"mqtt://{addr.host}:{addr.port}",
         "--username", addr.username, "--store", f"sqlite:///{tmp_path / 'cloud.db'}",
         "--http", "127.0.0.1:0", "--session-key-file", str(key), "--https-only"],
        stderr=subprocess.PIPE, text=True,
        env={**os.environ, "MFD_CLOUD_PASSWORD": addr.password})
    try:
        assert proc.stderr is not None
        lines = []
        while len(lines) < 20 and not any("User Portal" in line for line in lines):
            lines.append(proc.stderr.readline())
        assert any(f"made a new session key in {key}" in line for line in lines), lines
        serving = lines[-1]
        assert "User Portal and client API on http://127.0.0.1:" in serving, lines
        port = int(serving.split("http://127.0.0.1:", 1)[1].split()[0])
        assert f"admin console at http://127.0.0.1:{port}/admin/" in proc.stderr.readline()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/v1/openapi.json")
        doc = json.loads(conn.getresponse().read())
        assert "/api/v1/jobs" in doc["paths"]
        conn.request("GET", "/portal/signin")
        page = conn.getresponse()
        assert page.status == 200 and b"<form" in page.read()
        cookie = page.getheader("set-cookie") or ""
        assert "mfd_session=" in cookie and "secure" in cookie.lower() and \
            "httponly" in cookie.lower()
        conn.close()
        proc.terminate()
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_mfd_cloud_serves_every_broker_it_is_given(broker: Broker, tmp_path: Path) -> None:
    """``--broker`` again for each broker of a site: one worker answers devices on both (here
    with ``--lanes 2``: its requests done on two threads of their own)."""
    from conftest import CLOUD_USERS, DEVICE_PASSWORDS

    from cloud.demo import seed_demo
    from cloud.storage.factory import open_store
    from device_app.link import MqttCloudLink
    from protocol import messages as m
    from protocol.address import BrokerAddress
    from protocol.errors import RemoteError
    from simulator.broker import MosquittoBroker

    users = {u: f"pw-{u}" for u in CLOUD_USERS} | DEVICE_PASSWORDS
    second = MosquittoBroker(tmp_path / "b2", users, cloud_users=CLOUD_USERS).start()
    store_url = f"sqlite:///{tmp_path / 'cloud.db'}"
    store = open_store(store_url)
    seed_demo(store, now=0.0, jobs=False)
    store.close()
    first = broker.mosquitto
    addr = broker.address("cloud-1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mfdkit", "cloud",
         "--broker", f"mqtt://{first.host}:{first.port}",
         "--broker", f"mqtt://{second.host}:{second.port}",
         "--username", addr.username, "--store", store_url, "--lanes", "2"],
        stderr=subprocess.PIPE, text=True,
        env={**os.environ, "MFD_CLOUD_PASSWORD": addr.password})
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        while "serving" not in line and line:
            line = proc.stderr.readline()
        assert f"{first.host}:{first.port}, {second.host}:{second.port}" in line, line
        for b in (first, second):
            link = MqttCloudLink(BrokerAddress(b.host, b.port, "copier-1",
                                               DEVICE_PASSWORDS["copier-1"]),
                                 "copier-1").start()
            try:
                # An unknown card: the worker's refusal is an answer, on this broker.
                with pytest.raises(RemoteError) as refused:
                    link.call(m.Identify("card", "9999999999"), timeout=10)
                assert refused.value.code == "unknown_card"
            finally:
                link.close()
        proc.terminate()
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        second.stop()

"""A real, certified OpenID provider for the single sign-on tests: the ``oidc-provider`` package
for Node.js (tests/oidc/, installed by ``npm ci --prefix tests/oidc``, which scripts/setup.sh
runs) started as ``node tests/oidc/provider.mjs`` on a free port, waited for until its discovery
document answers, and stopped after."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.mail_helpers import free_port

OIDC_DIR = Path(__file__).with_name("oidc")
CLIENT_ID = "mfdkit-portal"
CLIENT_SECRET = "test-client-secret-not-for-production"
START_TIMEOUT = 20.0


@dataclass
class OidcProvider:
    issuer: str
    process: subprocess.Popen[bytes]

    def discovery(self) -> dict[str, Any]:
        r = httpx.get(self.issuer + "/.well-known/openid-configuration", timeout=5)
        r.raise_for_status()
        doc: dict[str, Any] = r.json()
        return doc


def node_path() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("Node.js is not installed (Debian package nodejs, version 20 or "
                           "later): the single sign-on tests run a real OpenID provider on it")
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        raise RuntimeError("the test OpenID provider is not installed: run "
                           "`npm ci --prefix tests/oidc` (scripts/setup.sh does)")
    return node


def start_provider(redirect_uri: str, accounts: list[dict[str, Any]],
                   port: int | None = None) -> OidcProvider:
    """``node tests/oidc/provider.mjs`` on ``port`` (a free one by default), registered with one
    client whose redirect URI is ``redirect_uri``; returns once discovery answers."""
    port = port or free_port()
    env = {**os.environ, "OIDC_PORT": str(port), "OIDC_CLIENT_ID": CLIENT_ID,
           "OIDC_CLIENT_SECRET": CLIENT_SECRET, "OIDC_REDIRECT_URI": redirect_uri,
           "OIDC_ACCOUNTS": json.dumps(accounts)}
    process = subprocess.Popen([node_path(), str(OIDC_DIR / "provider.mjs")], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    issuer = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"the test OpenID provider exited ({process.returncode}): {err}")
        try:
            if httpx.get(issuer + "/.well-known/openid-configuration", timeout=1).is_success:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_provider(OidcProvider(issuer, process))
            raise RuntimeError(f"the test OpenID provider did not answer on {issuer}")
        time.sleep(0.05)
    return OidcProvider(issuer, process)


def stop_provider(provider: OidcProvider) -> None:
    provider.process.terminate()
    try:
        provider.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        provider.process.kill()
        provider.process.wait()
    for stream in (provider.process.stdout, provider.process.stderr):
        if stream is not None:
            stream.close()


def running_provider(redirect_uri: str, accounts: list[dict[str, Any]],
                     port: int) -> Iterator[OidcProvider]:
    provider = start_provider(redirect_uri, accounts, port)
    try:
        yield provider
    finally:
        stop_provider(provider)

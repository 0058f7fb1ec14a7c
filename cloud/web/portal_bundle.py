"""The personalised client package "Set up my devices" and the Classic Invitation's link hand
out: for the reference print client (client/print_client.py), a zip that runs as it is.

What a real installer would be per operating system (an MSI, a signed pkg, distribution
packages, the Chrome extension) is said on the page (:data:`REAL_INSTALLERS`); this bundle is
what the reference client needs on any of them: the one-time installer token in
``installer.json``, a run script for POSIX shells and one for Windows, and a README. Running the
script links the client to its person the moment it registers (cloud/linking/clients.py).

The token is a secret: the archive is made in memory, sent once with ``no-store``, and never
written on the server.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile

from cloud.storage.port import User

#: What the page says a production installer covers, per system.
REAL_INSTALLERS = (
    ("Windows 10 and 11", "an MSI package (per user, no administrator rights needed)"),
    ("macOS 12 and later", "a signed and notarised .pkg"),
    ("Linux", ".deb and .rpm packages adding a CUPS queue"),
    ("ChromeOS", "the Chrome extension your administrator deploys; open the same link there"),
)

FOLDER = "mfdkit-client"

# The scripts are constants: no name, email or other text a person chose is ever pasted into
# something a shell runs (a line break in a name would have become a command).
_LINK_SH = """#!/bin/sh
# Links the mfdkit print client to the person named in installer.json and adds the
# mfdkit Printer for this OS user.
# Needs the reference client (`pip install mfdkit`, Python 3.11 or later).
set -eu
cd "$(dirname "$0")"
link=$(python3 -c 'import json; print(json.load(open("installer.json"))["installer_link"])')
exec mfd client link --installer-token "$link" "$@"
"""

_LINK_CMD = """@echo off
rem Links the mfdkit print client to the person named in installer.json and adds the
rem mfdkit Printer for this Windows user.
rem Needs the reference client (pip install mfdkit, Python 3.11 or later).
cd /d "%~dp0"
set MFD_READ=import json; print(json.load(open('installer.json'))['installer_link'])
for /f "usebackq delims=" %%L in (`python -c "%MFD_READ%"`) do set MFD_LINK=%%L
mfd client link --installer-token "%MFD_LINK%" %*
"""

_README = """mfdkit print client for {who}
{line}

This package links the mfdkit print client on this computer to {who_long}
at {org}. Print to "mfdkit Printer" afterwards: your documents wait for you at any copier
of {org} until you log in there.

1. Install the reference print client: pip install mfdkit (Python 3.11 or later).
2. Run, as the person who prints on this computer (not as an administrator):
     Linux, macOS:  sh link.sh
     Windows:       link.cmd
3. Print a test page: mfd client print some.pdf

The link inside (installer.json) is personal and works until {until} UTC.
Do not pass this package on: anyone running it prints in your name.
Each person who logs in to a shared computer installs the client with their own package.

A production installer would come as:
{installers}
"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "client"


def filename(user: User | None) -> str:
    return f"mfdkit-client-{_slug(user.email.split('@')[0]) if user else 'anonymous'}.zip"


def build(installer_link: str, installer_token: str, *, user: User | None, org: str,
          portal_url: str, expires_at: float) -> bytes:
    """The zip, in memory."""
    who = user.display_name if user else "the person who signs in first"
    who_long = f"{user.display_name} <{user.email}>" if user else \
        "whoever signs in at the first print (Authenticate-on-Print)"
    until = time.strftime("%Y-%m-%d %H:%M", time.gmtime(expires_at))
    config = {"portal": portal_url, "installer_link": installer_link,
              "installer_token": installer_token, "kind": "workstation",
              "user": user.email if user else None, "expires_at": until + " UTC"}
    readme = _README.format(who=who, line="=" * (len(who) + 27), who_long=who_long, org=org,
                            until=until, installers="\n".join(
                                f"  - {system}: {what}" for system, what in REAL_INSTALLERS))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        _add(z, "README.txt", readme, 0o644)
        _add(z, "installer.json", json.dumps(config, indent=2) + "\n", 0o600)
        _add(z, "link.sh", _LINK_SH, 0o755)
        _add(z, "link.cmd", _LINK_CMD.replace("\n", "\r\n"), 0o644)
    return buf.getvalue()


def _add(z: zipfile.ZipFile, name: str, text: str, mode: int) -> None:
    info = zipfile.ZipInfo(f"{FOLDER}/{name}", date_time=time.gmtime()[:6])
    info.external_attr = (0o100000 | mode) << 16  # a regular file with these permissions
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, text.encode("utf-8"))

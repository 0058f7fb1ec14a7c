"""``mfd ledger``: what was flashed or provisioned, on which device, by whom, and how it ended.

``mfd ledger [--device D] [--ledger PATH] [--json]``
    Reads the fleet ledger (provisioning/ledger.py), oldest first: a table, or with ``--json``
    one JSON object per line (the ledger's own lines, for jq). ``--device`` keeps the entries of
    one device, by its id, port, serial or model. A damaged line (a power cut during its write)
    is skipped with a warning on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TextIO

from provisioning.ledger import Entry, Ledger


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ledger", help="show the fleet ledger: every flash and provision",
                       description="Every flash and provision, one entry per device: when, "
                                   "who, the device, the image and version, the result.")
    p.add_argument("--device", metavar="D",
                   help="only this device (its id, port, serial or model)")
    p.add_argument("--ledger", type=Path, metavar="PATH",
                   help="the ledger file (default: $MFD_LEDGER, else "
                        "$XDG_DATA_HOME/mfdkit/ledger.jsonl)")
    p.add_argument("--json", action="store_true", help="one JSON object per entry")
    p.set_defaults(func=cmd_ledger)


def cmd_ledger(args: argparse.Namespace) -> int:
    # The warning for a damaged line goes to stderr even without --debug.
    logging.getLogger("provisioning.ledger").setLevel(logging.WARNING)
    ledger = Ledger(args.ledger)
    entries = ledger.for_device(args.device) if args.device else list(ledger.read())
    if args.json:
        for e in entries:
            print(json.dumps(e.to_json(), ensure_ascii=False, sort_keys=True))
        return 0
    if not entries:
        print(f"no entries in {ledger.path}" + (f" for {args.device}" if args.device else ""),
              file=sys.stderr)
        return 0
    print_table(entries, sys.stdout)
    return 0


def _device(e: Entry) -> str:
    d = e.device
    return str(d.get("id") or d.get("serial") or d.get("port") or "?")


def print_table(entries: list[Entry], out: TextIO) -> None:
    rows = [("WHEN", "WHO", "ACTION", "DEVICE", "VERSION", "IMAGE", "KEY", "RESULT")]
    for e in entries:
        version = (f"{e.from_version} -> {e.version}" if e.from_version and e.version
                   and e.from_version != e.version else e.version or "-")
        result = e.result if e.result in ("ok", "skipped") else f"{e.result} ({e.code})"
        rows.append((e.when[:19].replace("T", " "), e.who, e.action, _device(e), version,
                     (e.image_hash or "-")[:12], e.key_id or "-", result))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1],
              file=out)

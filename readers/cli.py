"""``mfd reader ...``: a technician's tools for card readers.

``mfd reader decode --format em4100 VALUE [--json]``
    Decode one frame copied from a serial log. VALUE may be written as

    * the 12 hex digits between STX and ETX, e.g. ``0A0012D68749`` (what a serial terminal
      shows, since STX/ETX are invisible);
    * the same with the literal STX/ETX control characters around it;
    * a hex dump of the 14 raw bytes, e.g. ``02 30 41 ... 39 03`` (28 hex digits starting
      ``02`` and ending ``03``), or of the 12 bytes between them (24 hex digits).

    Spaces, colons and dashes are ignored. Exit 0 with version, tag and number; exit 1 with a
    one-line message on stderr if the frame is bad (with ``--json`` a checksum failure also
    prints the object, ``"checksum_ok": false``, so scripts can see what the frame said).

``mfd reader watch SPEC [--seconds N]``
    Open the reader SPEC names (see :mod:`readers.spec`) and print one line per accepted
    read until Ctrl-C or N seconds. Card numbers are printed in clear on purpose -- finding
    out what a card reads as is what the tool is for -- but never logged.

Exit codes: 0 success, 1 bad input or reader failure, 2 bad configuration (as argparse).
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import time

from protocol.errors import ConfigError, MfdError
from readers.em4100 import ETX, STX, Em4100FrameError, FrameFault, decode_frame
from readers.events import CardRead
from readers.spec import open_reader

__all__ = ["cmd_decode", "cmd_watch", "parse_em4100_value", "register"]

FORMATS = ("em4100",)
_SEPARATORS = str.maketrans("", "", " \t:-")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``reader`` command group to an ``add_subparsers()`` result."""
    reader = subparsers.add_parser(
        "reader", help="inspect and test card readers",
        description="Inspect and test card readers: decode frames, watch a reader live.")
    leaves = reader.add_subparsers(dest="reader_command", metavar="COMMAND", required=True)

    decode = leaves.add_parser(
        "decode", help="decode one reader frame",
        description="Decode one frame copied from a serial log or terminal.")
    decode.add_argument("--format", required=True, choices=FORMATS,
                        help="the reader's frame format")
    decode.add_argument("value", metavar="VALUE",
                        help="the 12 hex digits between STX and ETX, or a hex dump of the "
                             "raw frame bytes (e.g. 0A0012D68749)")
    decode.add_argument("--json", action="store_true", help="print one JSON object")
    decode.set_defaults(func=cmd_decode)

    watch = leaves.add_parser(
        "watch", help="print reads from a live reader",
        description="Print one line per card read until Ctrl-C (or --seconds).")
    watch.add_argument("spec", metavar="SPEC",
                       help="reader spec, e.g. serial:/dev/ttyUSB0?family=em4100")
    watch.add_argument("--seconds", type=_positive_float, default=None, metavar="N",
                       help="stop after N seconds")
    watch.set_defaults(func=cmd_watch)


def parse_em4100_value(value: str) -> bytes:
    """The 14 frame bytes a VALUE stands for; ValueError naming the accepted forms if none."""
    text = value.strip()
    if text[:1] == chr(STX) and text[-1:] == chr(ETX):
        text = text[1:-1]
    compact = text.translate(_SEPARATORS)
    if len(compact) == 12 and compact.isascii():
        return bytes([STX]) + compact.encode("ascii") + bytes([ETX])
    if len(compact) in (24, 28):
        try:
            data = bytes.fromhex(compact)
        except ValueError:
            data = b""
        if len(data) == 12:
            return bytes([STX]) + data + bytes([ETX])
        if len(data) == 14 and data[0] == STX and data[-1] == ETX:
            return data
    raise ValueError(
        "VALUE must be the 12 hex digits between STX and ETX (e.g. 0A0012D68749), or a hex "
        f"dump of the 14 raw bytes from 02 to 03; got {len(compact)} characters")


def cmd_decode(args: argparse.Namespace) -> int:
    prog = "mfd reader decode"
    try:
        raw = parse_em4100_value(args.value)
        frame = decode_frame(raw)
    except Em4100FrameError as exc:
        if args.json and exc.fault is FrameFault.CHECKSUM:
            print(json.dumps({
                "format": "em4100",
                "version": int(exc.raw[1:3], 16),
                "tag": int(exc.raw[3:11], 16),
                "number": f"{int(exc.raw[3:11], 16):010d}",
                "checksum_ok": False,
                "checksum": f"{exc.found:02X}",
                "expected_checksum": f"{exc.expected:02X}",
            }))
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"format": "em4100", "version": frame.version, "tag": frame.tag,
                          "number": frame.number, "checksum_ok": True}))
    else:
        print(f"format:   em4100\nversion:  0x{frame.version:02X} ({frame.version})\n"
              f"tag:      0x{frame.tag:08X} ({frame.tag})\nnumber:   {frame.number}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    prog = "mfd reader watch"
    try:
        reader = open_reader(args.spec)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    # The sink runs on the reader's thread: it only hands the read over, we print here.
    reads: queue.Queue[CardRead] = queue.Queue()
    try:
        reader.start(reads.put)
    except MfdError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    started = time.monotonic()
    try:
        while deadline is None or time.monotonic() < deadline:
            wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
            try:
                read = reads.get(timeout=wait)
            except queue.Empty:
                continue
            print(f"{read.at - started:8.3f}s  raw={read.raw.hex()}  number={read.number}",
                  flush=True)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a technician ends a watch; not an error
    finally:
        reader.stop()
    health = reader.health
    print(f"{prog}: {health.reads} read(s), {health.suppressed} repeat(s) of a held card "
          f"suppressed, {health.bad_frames} bad frame(s), {health.reconnects} reconnect "
          "attempt(s)", file=sys.stderr)
    return 0


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value

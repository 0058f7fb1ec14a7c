"""``mfd reader``: the readers package brings its own subcommands; this is the glue, plus
``mfd reader emulate``, which plays a reader with emulated hardware (firmware_stubs) and so
cannot live in the readers package (production imports no emulation).

``mfd reader emulate FAMILY --port PORT --card NUMBER [--repeat N] [--interval S]``
    Write the frames a FAMILY reader sends for card NUMBER on PORT (a USB-serial cable to
    the copier, or a pty), ``--repeat`` times ``--interval`` seconds apart (a card held on
    the reader), then exit. ``--wiegand FORMAT`` picks the Wiegand layout (family
    ``wiegand``). With ``--pty`` instead of ``--port``, a new pseudo-terminal is made and its
    path printed (``port: /dev/pts/N``) with the reader spec that reads it; then each line on
    stdin (Enter) presents the card once, until end of input (Ctrl-D) or Ctrl-C.

    The card number is printed masked (``card#`` and a hash, as in the logs), never in clear.
    Exit 0 when done; 2 for an unknown family, a number the family cannot carry, or a port
    that cannot be opened (one line on stderr, no traceback); 1 if the port fails mid-way.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import TYPE_CHECKING

from protocol.errors import ConfigError

if TYPE_CHECKING:
    from readers.codecs.card_frames import CardFrames

_PROG = "mfd reader emulate"
EXIT_USAGE = 2
EXIT_FAILED = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from readers.cli import register as register_reader
    from readers.codecs.card_frames import EMULATED_FAMILIES
    from readers.numbers import wiegand

    leaves = register_reader(sub)
    emulate = leaves.add_parser(
        "emulate", help="play a card reader on a serial port, to test a copier without a badge",
        description="Write the frames a reader of FAMILY sends for one card on a serial port "
                    "or pty, as if the card were held on it.")
    emulate.add_argument("family", metavar="FAMILY",
                         help="the reader family to play: " + ", ".join(EMULATED_FAMILIES))
    where = emulate.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", metavar="PORT",
                       help="serial device or pty path to write to, e.g. /dev/ttyUSB0")
    where.add_argument("--pty", action="store_true",
                       help="make a pty, print its path, and present the card on each Enter")
    emulate.add_argument("--card", required=True, metavar="NUMBER",
                         help="the card number the device should read; "
                              + "; ".join(f"{name}: {enc.syntax}"
                                          for name, enc in EMULATED_FAMILIES.items()))
    emulate.add_argument("--wiegand", metavar="FORMAT",
                         help="Wiegand format for family wiegand ("
                              + ", ".join(wiegand.FORMATS) + "; default h10301)")
    emulate.add_argument("--repeat", type=_count, default=1, metavar="N",
                         help="frames per presentation, as a held card repeats (default 1)")
    emulate.add_argument("--interval", type=_seconds, default=0.5, metavar="S",
                         help="seconds between repeated frames (default 0.5)")
    emulate.add_argument("--baud", type=_count, default=9600, metavar="BAUD",
                         help="baud rate of --port (default 9600, as the reader spec's)")
    emulate.set_defaults(func=cmd_emulate)


def cmd_emulate(args: argparse.Namespace) -> int:
    from readers.adapters.serial_reader import SERIAL_FAMILIES
    from readers.codecs.card_frames import EMULATED_FAMILIES, encode_card_frames
    from readers.events import mask_card
    from readers.numbers import wiegand

    family = args.family.strip().lower()
    # The device's registry says which families exist; the encoders must cover every one
    # (tests/test_reader_emulate.py), so this refuses only what the device cannot read either.
    if family not in SERIAL_FAMILIES or family not in EMULATED_FAMILIES:
        print(f"{_PROG}: unknown reader family {args.family!r}; known families: "
              + ", ".join(sorted(set(SERIAL_FAMILIES) & set(EMULATED_FAMILIES)))
              + (f" ({family} is a Wiegand format: family wiegand --wiegand {family})"
                 if family in wiegand.FORMATS else ""), file=sys.stderr)
        return EXIT_USAGE
    try:
        card = encode_card_frames(family, args.card, wiegand_format=args.wiegand)
    except ConfigError as exc:
        print(f"{_PROG}: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    options = "".join(f"&{k}={v}" for k, v in card.spec_options)
    masked = mask_card(card.number)
    if args.pty:
        return _emulate_on_pty(card, masked, options, args)
    from firmware_stubs.serial_readers import EmulatedReader, open_serial_line

    try:
        line = open_serial_line(args.port, args.baud)
    except (OSError, ValueError) as exc:
        print(f"{_PROG}: cannot open port {args.port!r}: {_reason(exc)}. Check the path (see "
              "`mfd reader list`) and that this user may open it (usually the 'dialout' "
              "group)", file=sys.stderr)
        return EXIT_USAGE
    stopping = threading.Event()
    try:
        print(f"{_PROG}: {family} reader on {args.port}, card {masked}", flush=True)
        sent = EmulatedReader(line, card).present(args.repeat, args.interval,
                                                  sleep=stopping.wait)
    except (OSError, ValueError) as exc:
        print(f"{_PROG}: port {args.port!r} failed: {_reason(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    finally:
        line.close()
    print(f"{_PROG}: sent {sent} frame(s) of card {masked}", flush=True)
    return 0


def _emulate_on_pty(card: CardFrames, masked: str, options: str,
                    args: argparse.Namespace) -> int:
    from firmware_stubs.serial_readers import EmulatedReader
    from readers.pty import PtyPort

    stopping = threading.Event()
    with PtyPort() as port:
        reader = EmulatedReader(port, card)
        # Bytes written before the host opens the port are flushed by it (pyserial does on
        # open), so nothing is sent until someone says the host is listening: a line on stdin.
        print(f"port: {port.device}", flush=True)
        print(f"spec: serial:{port.device}?family={card.family}{options}", flush=True)
        print(f"{_PROG}: {card.family} reader, card {masked}; press Enter to present the "
              "card, Ctrl-D to stop", file=sys.stderr, flush=True)
        presented = 0
        try:
            for _ in sys.stdin:
                sent = reader.present(args.repeat, args.interval, sleep=stopping.wait)
                presented += 1
                print(f"presented card {masked} ({sent} frame(s))", flush=True)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a technician ends it
    print(f"{_PROG}: presented card {masked} {presented} time(s)", file=sys.stderr)
    return 0


def _reason(exc: BaseException) -> str:
    # pyserial's messages repeat the path around the errno; the errno's text says what to fix.
    errno = getattr(exc, "errno", None)
    if isinstance(errno, int):
        return os.strerror(errno)
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a whole number > 0, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text!r}")
    return value

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

``mfd reader decode --format h10301|h10306|c1000|h10304|h10302 VALUE [--json]``
    Decode one Wiegand frame (:mod:`readers.numbers.wiegand`). VALUE is the whole frame, parity bits
    included, as hex (``0x000451E5`` or ``000451E5``: what USB readers print) or as exactly
    as many bits as the format has (``00000001000101000111100101``; ``0b`` optional). A
    parity failure exits 1 naming the parity bit; with ``--json`` the object is printed too.

``mfd reader convert --pipeline P VALUE...``
    Run each VALUE through the conversion pipeline P (:mod:`readers.numbers.convert`) and print the
    results one per line. A value a step refuses stops the run with exit 1, naming the
    value's position and the step; a pipeline that does not parse exits 2.

``mfd reader infer RAW=EXPECTED ...``
    Find the pipelines that map every reading to its expected number (:mod:`readers.numbers.infer`)
    and print them one per line, simplest first. If none fits, exit 1 and say which pair
    defeats the nearest candidates.

``mfd reader list``
    every PC/SC reader and serial port found.

``mfd reader watch SPEC [--seconds N]``
    Open the reader SPEC names (see :mod:`readers.spec`) and print one line per accepted
    read until Ctrl-C or N seconds. Card numbers are printed in clear on purpose -- finding
    out what a card reads as is what the tool is for -- but never logged.

``mfd reader emulate FAMILY --port PORT|--pty --card NUMBER``
    Play a reader of FAMILY: added by :mod:`mfdkit.cli.reader`, because it drives emulated
    hardware (:mod:`firmware_stubs`), which nothing in this package may import.

Exit codes: 0 success, 1 bad input or reader failure, 2 bad configuration (as argparse).
"""

from __future__ import annotations

import argparse
import itertools
import json
import queue
import sys
import time

from protocol.errors import ConfigError, MfdError
from readers.codecs.em4100 import ETX, STX, Em4100FrameError, FrameFault, decode_frame
from readers.events import CardRead
from readers.numbers import wiegand
from readers.numbers.convert import ConversionError, Pipeline, PipelineError
from readers.numbers.infer import MAX_STEPS, InferError, InferResult, infer
from readers.spec import open_reader

__all__ = ["cmd_convert", "cmd_decode", "cmd_infer", "cmd_list", "cmd_watch", "parse_em4100_value",
           "parse_wiegand_value", "register"]

FORMATS = ("em4100", *wiegand.FORMATS)
_SEPARATORS = str.maketrans("", "", " \t:-")
_WIEGAND_SEPARATORS = str.maketrans("", "", " \t:-_")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]
             ) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Add the ``reader`` command group to an ``add_subparsers()`` result; returns its own
    ``add_subparsers()`` result, for commands added from above (``emulate``)."""
    reader = subparsers.add_parser(
        "reader", help="inspect and test card readers",
        description="Inspect and test card readers: decode frames, convert and infer card "
                    "numbers, watch a reader live.")
    leaves = reader.add_subparsers(dest="reader_command", metavar="COMMAND", required=True)

    decode = leaves.add_parser(
        "decode", help="decode one reader frame",
        description="Decode one frame copied from a serial log or terminal.")
    decode.add_argument("--format", required=True, choices=FORMATS, type=str.lower,
                        help="the reader's frame format")
    decode.add_argument("value", metavar="VALUE",
                        help="em4100: the 12 hex digits between STX and ETX, or a hex dump of "
                             "the raw frame bytes (e.g. 0A0012D68749); Wiegand: the whole "
                             "frame as hex (0x000451E5) or as bits")
    decode.add_argument("--json", action="store_true", help="print one JSON object")
    decode.set_defaults(func=cmd_decode)

    convert = leaves.add_parser(
        "convert", help="run card numbers through a conversion pipeline",
        description="Convert each VALUE with a pipeline of steps chained with '|', e.g. "
                    "'reverse-bytes|hex2dec'. Prints one result per line.")
    convert.add_argument("--pipeline", required=True, metavar="P",
                         help="the pipeline, e.g. 'ascii-enc|hex2dec' (quote it: '|' is a "
                              "shell pipe)")
    convert.add_argument("values", nargs="+", metavar="VALUE", help="a reader's output")
    convert.set_defaults(func=cmd_convert)

    inf = leaves.add_parser(
        "infer", help="find the pipeline that maps readings to card numbers",
        description="Given a few RAW=EXPECTED pairs (what the reader sends = the number the "
                    "directory holds), print every simplest pipeline that maps them all.")
    inf.add_argument("pairs", nargs="+", metavar="RAW=EXPECTED",
                     help="a reading and its expected number; three or more pairs are wise")
    inf.add_argument("--max-steps", type=int, default=3, choices=range(1, MAX_STEPS + 1),
                     metavar="N", help=f"longest pipeline to try (1..{MAX_STEPS}, default 3)")
    inf.set_defaults(func=cmd_infer)

    lister = leaves.add_parser(
        "list", help="every PC/SC reader and serial port found, with what it is",
        description="List the PC/SC readers pcscd knows and the serial ports of this machine, "
        "each with the reader spec that opens it.")
    lister.set_defaults(func=cmd_list)

    watch = leaves.add_parser(
        "watch", help="print reads from a live reader",
        description="Print one line per card read until Ctrl-C (or --seconds).")
    watch.add_argument("spec", metavar="SPEC",
                       help="reader spec, e.g. serial:/dev/ttyUSB0?family=em4100")
    watch.add_argument("--seconds", type=_positive_float, default=None, metavar="N",
                       help="stop after N seconds")
    watch.add_argument("--pipeline", metavar="P",
                       help="also show each number converted by this pipeline")
    watch.add_argument("--record", metavar="FILE",
                       help="save the raw byte stream with timing (serial readers); replay it "
                       "with the spec replay:FILE")
    watch.set_defaults(func=cmd_watch)
    return leaves


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
    if args.format != "em4100":
        return _decode_wiegand(args)
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


def parse_wiegand_value(value: str, layout: wiegand.WiegandFormat) -> int:
    """The frame a VALUE stands for: hex (``0x`` optional) or exactly ``bit_count`` bits.

    A string of only 0s and 1s as long as the format's frame is read as bits: as hex it
    would be four times too wide, so the reading is never ambiguous. ValueError if neither.
    """
    text = value.strip().translate(_WIEGAND_SEPARATORS)
    lower = text.lower()
    if lower.startswith("0b") or (len(text) == layout.bit_count and set(text) <= {"0", "1"}):
        bits = text[2:] if lower.startswith("0b") else text
        if not bits or not set(bits) <= {"0", "1"}:
            raise ValueError("VALUE after 0b must be bits (0 and 1)")
        if len(bits) != layout.bit_count:
            raise ValueError(f"VALUE has {len(bits)} bits; {layout.name} frames have "
                             f"{layout.bit_count} (leading zeros count when giving bits)")
        return int(bits, 2)
    digits = text[2:] if lower.startswith("0x") else text
    if not digits or not set(digits) <= set("0123456789abcdefABCDEF"):
        raise ValueError(f"VALUE must be the whole {layout.name} frame as hex (e.g. 0x000451E5) "
                         f"or as {layout.bit_count} bits")
    return int(digits, 16)


def _decode_wiegand(args: argparse.Namespace) -> int:
    prog = "mfd reader decode"
    layout = wiegand.FORMATS[args.format]
    try:
        frame = parse_wiegand_value(args.value, layout)
        card = wiegand.decode(layout.name, frame, layout.bit_count)
    except (ValueError, wiegand.WiegandError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    failures = card.parity_failures
    if args.json:
        out: dict[str, object] = {"format": card.format, "facility": card.facility,
                                  "card": card.card, "parity_ok": card.parity_ok}
        if failures:
            out["failed_parity_bits"] = [p.position for p in failures]
        print(json.dumps(out))
    elif not failures:
        width = (layout.bit_count + 3) // 4
        print(f"format:   {layout.name} ({layout.title})\n"
              f"frame:    0x{frame:0{width}X} ({layout.bit_count} bits)\n"
              f"bits:     {_grouped_bits(layout, frame)}\n"
              f"facility: {'none in this format' if card.facility is None else card.facility}"
              f"\ncard:     {card.card}\nparity:   ok")
    if failures:
        print(f"{prog}: bad {layout.name} parity: "
              + "; ".join(f"{p.describe()} does not hold" for p in failures), file=sys.stderr)
        return 1
    return 0


def _grouped_bits(layout: wiegand.WiegandFormat, frame: int) -> str:
    """The frame's bits with a space at every field boundary: parity | FC | card | parity."""
    cuts = {1, layout.bit_count + 1, layout.card[0], layout.card[0] + layout.card[1]}
    if layout.facility is not None:
        cuts |= {layout.facility[0], layout.facility[0] + layout.facility[1]}
    bits = f"{frame:0{layout.bit_count}b}"
    edges = sorted(cuts)
    return " ".join(bits[a - 1:b - 1] for a, b in itertools.pairwise(edges))


def cmd_convert(args: argparse.Namespace) -> int:
    prog = "mfd reader convert"
    try:
        pipeline = Pipeline.parse(args.pipeline)
    except PipelineError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    for position, value in enumerate(args.values, start=1):
        try:
            result = pipeline.apply(value)
        except ConversionError as exc:
            # Stop rather than skip: line N of the output must stay the result of value N.
            print(f"{prog}: value {position}: {exc}", file=sys.stderr)
            return 1
        print(result, flush=True)
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    prog = "mfd reader infer"
    pairs: list[tuple[str, str]] = []
    for position, text in enumerate(args.pairs, start=1):
        # The last '=' splits: a reading may contain '=', a card number does not.
        raw, sep, expected = text.rpartition("=")
        if not sep:
            print(f"{prog}: pair {position} must be RAW=EXPECTED, e.g. 04A1B2C3=3283263748",
                  file=sys.stderr)
            return 2
        pairs.append((raw, expected))
    try:
        result = infer(pairs, max_steps=args.max_steps)
    except InferError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    if result.found:
        for pipeline in result.pipelines:
            print(str(pipeline))
        if result.pipelines == (Pipeline(),):
            print(f"{prog}: the readings already are the expected numbers: no conversion "
                  "needed (an empty pipeline)", file=sys.stderr)
        elif len(result.pipelines) > 1:
            print(f"{prog}: {len(result.pipelines)} pipelines fit these pairs equally; add a "
                  "pair that tells them apart, or use the first", file=sys.stderr)
        return 0
    for line in _explain_failure(result, args.max_steps):
        print(line, file=sys.stderr)
    return 1


def _explain_failure(result: InferResult, max_steps: int) -> list[str]:
    prog = "mfd reader infer"
    pairs = result.pairs
    if result.conflict is not None:
        a, b = result.conflict
        return [f"{prog}: pairs {a + 1} and {b + 1} have the same reading "
                f"({pairs[a][0]}) but different expected numbers ({pairs[a][1]}, "
                f"{pairs[b][1]}): no conversion can give both"]
    lines = [f"{prog}: no pipeline of up to {max_steps} step(s) maps every pair"]
    if not result.exhausted:
        lines[0] += (f" (the search stopped after {result.applications} step applications "
                     "before trying them all)")
    if not result.near_misses:
        lines.append("  no pipeline maps even half of the pairs: check that each RAW is what "
                     "the reader sends and each EXPECTED is that card's number")
    for miss in result.near_misses:
        raw, expected = pairs[miss.pair]
        outcome = (f"gives {miss.got}" if miss.got is not None
                   else f"is refused: {miss.reason}")
        lines.append(f"  nearest: {miss.pipeline} maps {miss.matched} of {len(pairs)} pairs, "
                     f"but pair {miss.pair + 1} ({raw}={expected}) {outcome}")
    return lines


def cmd_list(args: argparse.Namespace) -> int:
    from readers.adapters.pcsc_reader import list_readers
    from readers.adapters.serial_reader import list_serial_ports

    pcsc = list_readers()
    serial_ports = list_serial_ports()
    print("PC/SC readers:" if pcsc else "PC/SC readers: none (is pcscd running? is a reader "
          "plugged in?)")
    for name in pcsc:
        print(f"  pcsc:{name}")
    print("serial ports:" if serial_ports else "serial ports: none")
    for device, description in serial_ports:
        print(f"  serial:{device}?family=...   {description}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    prog = "mfd reader watch"
    recorder = None
    try:
        pipeline = Pipeline.parse(args.pipeline) if args.pipeline else None
        if args.record:
            from readers.record.recording import Recorder, header_for_spec

            recorder = Recorder(args.record, header_for_spec(args.spec))
        reader = open_reader(args.spec, on_raw=recorder.on_raw if recorder else None)
    except ConfigError as exc:
        if recorder is not None:
            recorder.close()
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
    done = getattr(getattr(reader, "inner", reader), "done", None)  # a replay that ends
    try:
        while deadline is None or time.monotonic() < deadline:
            if done is not None and done.is_set() and reads.empty():
                break
            wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
            try:
                read = reads.get(timeout=wait)
            except queue.Empty:
                continue
            line = f"{read.at - started:8.3f}s  raw={read.raw.hex()}  number={read.number}"
            if pipeline is not None:
                try:
                    line += f"  converted={pipeline.apply(read.number)}"
                except ConversionError as exc:
                    line += f"  converted=! {exc.message}"
            print(line, flush=True)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a technician ends a watch; not an error
    finally:
        # Where a reader that waits for its hardware (PC/SC, OSDP) is, before stopping it.
        inner = getattr(reader, "inner", reader)
        state = getattr(inner, "state", None) or getattr(getattr(inner, "status", None),
                                                         "state", None)
        problem = getattr(inner, "last_error", None) or getattr(
            getattr(inner, "status", None), "fault", None)
        reader.stop()
        if recorder is not None:
            recorder.close()
            print(f"{prog}: recorded {recorder.chunks} chunk(s) to {args.record} "
                  "(it holds card numbers in clear: keep it private, delete it when done)",
                  file=sys.stderr)
    health = reader.health
    print(f"{prog}: {health.reads} read(s), {health.suppressed} repeat(s) of a held card "
          f"suppressed, {health.bad_frames} bad frame(s), {health.reconnects} reconnect "
          "attempt(s)", file=sys.stderr)
    if state is not None:
        print(f"{prog}: reader state {getattr(state, 'value', state)}"
              + (f"; last problem: {problem}" if problem else ""), file=sys.stderr)
    return 0


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value

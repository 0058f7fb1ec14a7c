"""Serial reader latency: the last byte of a frame written to a pty -> CardRead at the sink.

Each sample: the family's frame for a new card number. The bench writes all but its last
byte, waits 1 ms (a UART trickles the bytes, so the reader has already taken the head of the
frame), then starts the clock and writes the last byte.
The sample ends when the serial adapter (pyserial on the pty, the family's codec, the
debouncer) hands the CardRead to the sink. The adapter polls with a read timeout
(``POLL_TIMEOUT_S``); this measures that a frame does not wait for that tick.

A pty has no baud rate: on a real UART add the frame's wire time (a 14-byte EM4100 frame at
9600 8N1 is 14.6 ms; at 115200, 1.2 ms).

    python -m bench.serial_read [--n 500] [--family em4100] [--json]
"""

from __future__ import annotations

import argparse
import queue
import time
from collections.abc import Callable

from bench.common import report, summary
from readers.adapters.serial_reader import POLL_TIMEOUT_S, SerialCardReader
from readers.codecs.ascii import AsciiFormat, encode_line
from readers.codecs.em4100 import encode_frame
from readers.codecs.wiegand_serial import encode_card
from readers.pty import PtyPort
from readers.spec import open_reader

# family -> (spec query, the frame its reader sends for card n -- what the firmware stubs
# send too). The bench writes the bytes itself, to split off the last byte.
_FAMILIES: dict[str, tuple[str, Callable[[int], bytes]]] = {
    "em4100": ("family=em4100", lambda n: encode_frame(0x0A, n)),
    "pcprox": ("family=pcprox&sep=:", lambda n: encode_line(AsciiFormat(sep=b":"), n, 12)),
    "twn4": ("family=twn4", lambda n: encode_line(AsciiFormat(base=16), n)),
    "wiegand": ("family=wiegand&format=c1000", lambda n: encode_card("c1000", 7, n)),
}


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.serial_read", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="samples (default 500)")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--family", choices=sorted(_FAMILIES), default="em4100")
    ap.add_argument("--json", action="store_true", help="print one JSON object last")
    args = ap.parse_args()

    query, frame_for = _FAMILIES[args.family]
    delivered: queue.Queue[tuple[str, float]] = queue.Queue()
    samples: list[float] = []
    with PtyPort() as pty:
        reader = open_reader(f"serial:{pty.device}?{query}&lockout=0", reader_id="bench")
        assert isinstance(reader, SerialCardReader)
        reader.start(lambda read: delivered.put((read.number, time.perf_counter())))
        try:
            time.sleep(0.05)  # pyserial flushes input on open; let that be done
            for i in range(args.warmup + args.n):
                frame = frame_for(1000 + i)
                pty.write(frame[:-1])
                time.sleep(0.001)
                t0 = time.perf_counter()
                pty.write(frame[-1:])
                try:
                    _, t1 = delivered.get(timeout=2.0)
                except queue.Empty:
                    raise SystemExit(f"sample {i}: no read within 2 s") from None
                if i >= args.warmup:
                    samples.append((t1 - t0) * 1000)
        finally:
            reader.stop()
        health = reader.health
    if health.bad_frames:
        raise SystemExit(f"{health.bad_frames} bad frame(s) during the bench")
    figures = {"family": args.family, "n": args.n, **summary(samples),
               "poll_timeout_ms": POLL_TIMEOUT_S * 1000, "target_p99_ms": 2.0,
               "reads": health.reads}
    report("serial_read", figures, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

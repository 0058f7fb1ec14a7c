"""Card on a PC/SC reader to CardRead, through a private pcscd, vpcd and a virtual card.

Each sample: the virtual card connects to vpcd (the tap), pcscd notices it at its next
presence poll, the adapter's status wait returns, it reads the UID (connect, GET DATA UID,
disconnect), debounces and hands the CardRead to the sink. Then the card is taken away and
the next sample starts once the adapter has seen the reader empty again, after a random
pause of 0-400 ms: without it every tap would land just after a poll (the one that saw the
removal) and wait a whole poll period.

Two figures per sample, both on ``time.perf_counter``:

* ``p50_ms``/``p99_ms``: from pcscd reporting the card present (the moment the adapter's
  ``SCardGetStatusChange`` returns, which is ``CardRead.at``) to the CardRead delivered to the
  sink -- our software path. Target: p99 <= 5 ms.
* ``poll_*``: from the card connecting to pcscd reporting it -- pcscd's 400 ms presence
  poll, compiled into pcscd and outside our control (uniform over 0-400 ms, since taps come
  at a random phase).

``--no-quickack`` leaves TCP_QUICKACK off on the card's socket to show the delayed-ACK trap
(FIELD_NOTES: ~44 ms per APDU instead of ~0.15 ms).

    python -m bench.pcsc_read [--n 100] [--json] [--no-quickack]
"""

from __future__ import annotations

import argparse
import queue
import random
import sys
import time

from bench.common import report, summary
from firmware_stubs.vpcd_card import VirtualCard
from readers.adapters.pcsc_reader import PcscCardReader, ReaderState
from readers.events import CardRead

# Importing it sets PCSCLITE_CSOCK_NAME, which pcsc-lite reads at the first PC/SC call.
from simulator import pcscd

_TIMEOUT_S = 3.0
_POLL_S = 0.4  # pcscd's presence poll period (compiled in)


def _wait_state(reader: PcscCardReader, state: ReaderState) -> None:
    deadline = time.monotonic() + _TIMEOUT_S
    while reader.state != state:
        if time.monotonic() > deadline:
            raise SystemExit(f"reader stuck in state {reader.state.value}, wanted {state.value}")
        time.sleep(0.001)


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.pcsc_read", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="samples (default 100)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--no-quickack", action="store_true",
                    help="leave TCP_QUICKACK off on the virtual card's socket")
    ap.add_argument("--json", action="store_true", help="print one JSON object last")
    args = ap.parse_args()

    reason = pcscd.missing_requirements()
    if reason is not None:
        print(f"cannot run a private pcscd: {reason}", file=sys.stderr)
        return 2

    delivered: queue.Queue[tuple[CardRead, float]] = queue.Queue()

    def sink(read: CardRead) -> None:
        delivered.put((read, time.perf_counter()))

    with pcscd.PrivatePcscd() as daemon:
        daemon.check_client()
        reader = PcscCardReader(reader_id="bench", lockout_s=0.0, clock=time.perf_counter)
        reader.start(sink)
        card = VirtualCard(daemon.slot_port(0), quickack=not args.no_quickack)
        software_ms: list[float] = []
        poll_ms: list[float] = []
        try:
            _wait_state(reader, ReaderState.READY)
            phase = random.Random(1)
            for i in range(args.warmup + args.n):
                time.sleep(phase.uniform(0.0, _POLL_S))
                uid = (0x04000000 + i).to_bytes(4, "big")
                card.insert(uid)
                read, at = delivered.get(timeout=_TIMEOUT_S)
                assert read.raw == uid and card.inserted_at is not None
                if i >= args.warmup:
                    software_ms.append((at - read.at) * 1000)
                    poll_ms.append((read.at - card.inserted_at) * 1000)
                card.remove()
                _wait_state(reader, ReaderState.READY)
        finally:
            card.remove()
            reader.stop()
        health = reader.health

    figures = {
        "samples": len(software_ms),
        **summary(software_ms),
        **summary(poll_ms, prefix="poll_"),
        "target_p99_ms": 5.0,
        "quickack": not args.no_quickack,
        "bad_reads": health.bad_frames,
        "pcscd": pcscd.pcscd_version(),
    }
    report("pcsc_read", figures, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The print service across distance: badge to job list, and a document from the Release tap to
the engine, each measured through a WAN link (simulator/netem.py) between the device and the
broker and, in the same run, on loopback.

It runs the two benchmarks that measure these on loopback, each in a process of its own so that
one's memory does not count against the other's:

- ``bench.badge_to_jobs``: badge frame written -> job list drawn (the real panel loop, SDL dummy);
- ``bench.release_to_engine --jobs 1 --size DOC``: release request -> the engine accepted the
  document (the device's Printer and journal; the device is that process, whose peak resident
  memory is ``device_peak_rss_mb``).

Round trips: ``badge_to_list_rtts`` is the p50 minus the loopback p50, divided by the RTT (how
many round trips the distance costs); likewise ``doc_rtts`` for the document.

    python -m bench.wan [--rtt-ms 40] [--bandwidth B/S] [--n 50] [--doc-mib 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from bench.common import report


def _run(module: str, *args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", module, *args, "--json"], check=True,
                         capture_output=True, text=True, timeout=1800)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.wan", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rtt-ms", type=float, default=40.0)
    ap.add_argument("--bandwidth", type=float, default=0.0,
                    help="bytes/s each way on the WAN link (default 0: uncapped)")
    ap.add_argument("--n", type=int, default=50, help="badge samples per link (default 50)")
    ap.add_argument("--doc-mib", type=float, default=10.0)
    ap.add_argument("--doc-n", type=int, default=5, help="document samples per link")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    def badge(rtt: float) -> dict[str, Any]:
        return _run("bench.badge_to_jobs", "--n", str(args.n), "--frames", "10",
                    "--rtt-ms", str(rtt))

    def doc(rtt: float, bandwidth: float) -> dict[str, Any]:
        return _run("bench.release_to_engine", "--jobs", "1", "--n", str(args.doc_n),
                    "--warmup", "1", "--page-time", "0", "--in-process",
                    "--size", str(int(args.doc_mib * 1024 * 1024)),
                    "--rtt-ms", str(rtt), "--bandwidth", str(bandwidth))

    far_badge, near_badge = badge(args.rtt_ms), badge(0)
    far_doc, near_doc = doc(args.rtt_ms, args.bandwidth), doc(0, 0)
    rtt_s = args.rtt_ms / 1000 if args.rtt_ms else float("nan")
    figures = {
        "rtt_ms": args.rtt_ms, "bandwidth": args.bandwidth,
        "badge_to_list_p50_ms": far_badge["p50_ms"],
        "badge_to_list_p99_ms": far_badge["p99_ms"],
        "badge_to_list_loopback_p50_ms": near_badge["p50_ms"],
        "badge_to_list_loopback_p99_ms": near_badge["p99_ms"],
        "badge_to_list_rtts": round((far_badge["p50_ms"] - near_badge["p50_ms"]) / 1000
                                    / rtt_s, 2),
        "doc_mib": args.doc_mib,
        "doc_to_engine_ms": far_doc["p50_ms"],
        "doc_to_engine_loopback_ms": near_doc["p50_ms"],
        "doc_rtts": round((far_doc["p50_ms"] - near_doc["p50_ms"]) / 1000 / rtt_s, 2),
        "doc_loopback_mib_per_s": round(args.doc_mib / (near_doc["p50_ms"] / 1000), 1),
        "device_peak_rss_mb": max(far_doc["device_peak_rss_mb"],
                                  near_doc["device_peak_rss_mb"]),
        "badge_n": args.n, "doc_n": args.doc_n,
    }
    report("wan", figures, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Shared bits of the benchmarks: percentiles, the machine description, the JSON last line."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from typing import Any

from simulator.stats import percentile

__all__ = ["machine", "parse_size", "percentile", "report", "summary"]


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mosquitto = ""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if os.path.exists(exe):
        out = subprocess.run([exe, "-h"], capture_output=True, text=True, check=False).stdout
        mosquitto = out.splitlines()[0] if out else ""
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}", "broker": mosquitto}


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` (e.g. ``1280x800``) for ``--size``; argparse reports the ValueError."""
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) <= 0 or int(h) <= 0:
        raise ValueError(f"size must be WIDTHxHEIGHT, e.g. 1280x800, got {text!r}")
    return int(w), int(h)


def summary(samples_ms: list[float], prefix: str = "") -> dict[str, float]:
    return {f"{prefix}p50_ms": round(statistics.median(samples_ms), 3),
            f"{prefix}p99_ms": round(percentile(samples_ms, 0.99), 3),
            f"{prefix}max_ms": round(max(samples_ms), 3)}


def report(name: str, figures: dict[str, Any], as_json: bool) -> None:
    result = {"bench": name, **figures, "machine": machine()}
    for key, value in figures.items():
        print(f"{key:>24}: {value}")
    print(f"{'machine':>24}: {result['machine']}")
    if as_json:
        print(json.dumps(result, sort_keys=True))
    sys.stdout.flush()

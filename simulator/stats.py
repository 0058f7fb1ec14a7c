"""Percentiles and CPU time as the benchmarks (bench/) and the simulator's figures (``mfd sim
--fleet``) report them: one definition, so the same samples give the same figures in both."""

from __future__ import annotations

import os

TICKS = os.sysconf("SC_CLK_TCK")


def percentile(samples: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``samples``, interpolated between the two nearest ranks;
    NaN for no samples."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def machine_cpu() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine so far, all cores, from /proc/stat:
    busy is everything but idle, I/O wait and steal; stolen is the time a virtual machine's
    cores were ready to run but the host ran something else (another tenant): a run with
    much of it measured a slower machine, not slower code."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user already)
    idle, iowait, steal = fields[3], fields[4], fields[7] if len(fields) > 7 else 0
    return (sum(fields[:8]) - idle - iowait - steal) / TICKS, steal / TICKS


def processes_cpu() -> dict[int, tuple[str, float]]:
    """Every live process's (command name, user + system CPU seconds), from /proc: two of
    these apart say which process used the machine's CPU in between (one that started or
    ended in between counts only for what /proc showed of it)."""
    out: dict[int, tuple[str, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:  # else it ended
            name, fields = stat
            out[int(entry)] = (name, (int(fields[11]) + int(fields[12])) / TICKS)
    return out


def _stat(pid: int) -> tuple[str, list[str]] | None:
    """A live process's command name and the fields of /proc/PID/stat after it (fields[0] is
    the state, field 3; utime is fields[11]); None for a process that is gone. The name may
    hold spaces and parentheses: the fields start after its last ")"."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    head, _, rest = stat.rpartition(")")
    return head.partition("(")[2], rest.split()


def cpu_seconds(pid: int, children: bool = False) -> float:
    """user + system CPU of a live process (with ``children``: of its waited-for children
    too), from /proc/PID/stat; 0 for a process that is gone."""
    stat = _stat(pid)
    if stat is None:
        return 0.0
    fields = stat[1]
    # fields[0] is the state (field 3): utime is field 14, stime 15, cutime 16, cstime 17.
    used = int(fields[11]) + int(fields[12])
    if children:
        used += int(fields[13]) + int(fields[14])
    return used / TICKS

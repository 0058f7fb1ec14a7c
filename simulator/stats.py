"""Percentiles as the benchmarks (bench/) and the simulator's figures (``mfd sim --fleet``)
report them: one definition, so the same samples give the same p99 in both."""

from __future__ import annotations


def percentile(samples: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``samples``, interpolated between the two nearest ranks;
    NaN for no samples."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)

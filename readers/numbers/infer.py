"""Infer a conversion pipeline from examples: (what the reader sent, the number expected). Pure.

Theory of operation
-------------------
A technician holds a few cards whose numbers the directory already has, reads each one, and
asks: which pipeline (:mod:`readers.numbers.convert`) maps every reading to its number? Doing that
by trial and error at a copier is how sites lose an afternoon; doing it offline from three to
five pairs is a small search.

The search is breadth-first over pipelines of up to ``max_steps`` steps, and *simplest first*:
all one-step pipelines before any two-step one, and within a length in the fixed step order
of :data:`readers.numbers.convert.STEPS` (so ``reverse-bytes|hex2dec`` is found before anything more
exotic that happens to fit). It stops after the first length at which something fits and
returns *every* fitting pipeline of that length: two different rules that both fit the
evidence mean the pairs do not tell them apart, and the technician should know.

Parameterised steps get their parameters from the pairs rather than from a blind sweep:

* ``lpad:N`` with N the length of the expected numbers (when they all have one length);
* ``substr`` ranges that cut each expected number out of the current values at one common
  position (counted from the start or from the end), tried at any point; plus, as a first
  step only, the ranges that trim the raw readings: a prefix or suffix of any length, or up
  to eight characters from both ends (a reader's length field, a checksum), at byte
  boundaries when the readings are whole hex bytes;
* ``wiegand:FORMAT`` and ``wiegand:FORMAT:fc`` for every format the (hex) values fit in.

``regex`` is never inferred: a pattern that fits three examples is a guess about the fourth.

The search state is the tuple of current values, one per pair; a pipeline that reaches a
state already reached by a simpler one is not extended (it cannot find anything the simpler
one does not), and steps that change nothing or that some pair refuses are not extended
either. That, and a hard cap on step applications, keeps it well under a second for a
handful of pairs.

When nothing fits, the result carries the *near misses*: the pipelines that map the most
pairs (at least half of them), simplest first, each with the first pair that defeats it and
what it made of that pair. Usually that points at a mistyped expected number, or a card from
another batch.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from protocol.errors import ConfigError
from readers.numbers.convert import MAX_LENGTH, ConversionError, Pipeline, Step, make_step
from readers.numbers.wiegand import FORMATS

__all__ = ["MAX_APPLICATIONS", "MAX_STEPS", "InferError", "InferResult", "NearMiss", "infer"]

#: Longest pipeline :func:`infer` will search for. Each step multiplies the search.
MAX_STEPS = 4
#: Hard cap on step applications (one step on every pair counts once), whatever the input.
MAX_APPLICATIONS = 20_000
#: Most characters a first-step trim drops from each end when it cuts both.
_MAX_TRIM = 8
#: Near misses reported when nothing fits.
NEAR_MISSES = 3

_HEX = frozenset("0123456789abcdefABCDEF")
_PLAIN_STEPS = ("hex2dec", "dec2hex", "reverse-bytes", "reverse-bits", "invert", "ascii-enc",
                "strip-zeros")


class InferError(ConfigError):
    """The pairs or limits given to :func:`infer` cannot be searched (e.g. no pairs)."""

    code = "bad_infer_input"


@dataclass(frozen=True, slots=True)
class NearMiss:
    """A pipeline that maps ``matched`` pairs but not pair ``pair`` (0-based).

    ``got`` is what it made of that pair's RAW, or None if a step refused it; then ``reason``
    is the refusal.
    """

    pipeline: Pipeline
    matched: int
    pair: int
    got: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class InferResult:
    """What :func:`infer` found. ``pipelines`` fit every pair, simplest first.

    ``conflict`` names two pairs (0-based) with the same RAW but different EXPECTED, which no
    pipeline can satisfy. ``exhausted`` is False when the search hit :data:`MAX_APPLICATIONS`
    before covering every pipeline up to ``max_steps``.
    """

    pairs: tuple[tuple[str, str], ...]
    pipelines: tuple[Pipeline, ...]
    near_misses: tuple[NearMiss, ...]
    conflict: tuple[int, int] | None
    applications: int
    exhausted: bool

    @property
    def found(self) -> bool:
        return bool(self.pipelines)

    @property
    def best(self) -> Pipeline | None:
        return self.pipelines[0] if self.pipelines else None


def infer(pairs: Sequence[tuple[str, str]], max_steps: int = 3) -> InferResult:
    """Search for the pipelines that map every RAW to its EXPECTED (see the module docstring)."""
    checked = _check(pairs, max_steps)
    raws = tuple(raw for raw, _ in checked)
    goal = tuple(expected for _, expected in checked)
    conflict = _conflict(checked)
    if conflict is not None:
        return InferResult(checked, (), (), conflict, 0, True)
    if raws == goal:
        return InferResult(checked, (Pipeline(),), (), None, 0, True)
    return _Search(checked, raws, goal, max_steps).run()


def _check(pairs: Sequence[tuple[str, str]], max_steps: int) -> tuple[tuple[str, str], ...]:
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) \
            or not 1 <= max_steps <= MAX_STEPS:
        raise InferError(f"max_steps must be 1..{MAX_STEPS}, got {max_steps!r}")
    if not pairs:
        raise InferError("no pairs to infer from; give at least one (three or more is wise)")
    out: list[tuple[str, str]] = []
    for number, pair in enumerate(pairs, start=1):
        if not (isinstance(pair, tuple | list) and len(pair) == 2
                and all(isinstance(v, str) for v in pair)):
            raise InferError(f"pair {number} is not a (raw, expected) pair of strings")
        raw, expected = pair[0], pair[1]
        if not raw or not expected:
            raise InferError(f"pair {number} has an empty {'raw' if not raw else 'expected'} "
                             "value")
        if len(raw) > MAX_LENGTH or len(expected) > MAX_LENGTH:
            raise InferError(f"pair {number} is longer than {MAX_LENGTH} characters")
        out.append((raw, expected))
    return tuple(out)


def _conflict(pairs: tuple[tuple[str, str], ...]) -> tuple[int, int] | None:
    first_seen: dict[str, int] = {}
    for index, (raw, expected) in enumerate(pairs):
        earlier = first_seen.setdefault(raw, index)
        if pairs[earlier][1] != expected:
            return earlier, index
    return None


class _Search:
    __slots__ = ("applications", "found", "goal", "max_steps", "near", "near_seen", "pairs",
                 "raws")

    def __init__(self, pairs: tuple[tuple[str, str], ...], raws: tuple[str, ...],
                 goal: tuple[str, ...], max_steps: int) -> None:
        self.pairs = pairs
        self.raws = raws
        self.goal = goal
        self.max_steps = max_steps
        self.applications = 0
        self.found: list[Pipeline] = []
        # (matched, -length, -order) is the ranking; order keeps the ranking stable.
        self.near: list[tuple[int, int, int, NearMiss]] = []
        self.near_seen: set[tuple[str | None, ...]] = set()

    def run(self) -> InferResult:
        frontier: list[tuple[Pipeline, tuple[str, ...]]] = [(Pipeline(), self.raws)]
        seen = {self.raws}
        exhausted = True
        for depth in range(1, self.max_steps + 1):
            extend = depth < self.max_steps
            next_frontier: list[tuple[Pipeline, tuple[str, ...]]] = []
            for pipeline, values in frontier:
                for step in self._candidates(values, first=depth == 1):
                    if self.applications >= MAX_APPLICATIONS:
                        exhausted = False
                        break
                    self.applications += 1
                    state = self._apply(pipeline | step, step, values)
                    if state is not None and extend and state not in seen:
                        seen.add(state)
                        next_frontier.append((pipeline | step, state))
                if not exhausted:
                    break
            if self.found or not exhausted:
                break
            frontier = next_frontier
        near = tuple(n for *_, n in sorted(self.near, key=lambda t: t[:3], reverse=True))
        return InferResult(self.pairs, tuple(self.found), () if self.found else near, None,
                           self.applications, exhausted)

    def _apply(self, pipeline: Pipeline, step: Step,
               values: tuple[str, ...]) -> tuple[str, ...] | None:
        """Apply ``step`` to every pair; record a fit or a near miss; the new state or None."""
        outs = tuple(step.try_apply(value) for value in values)
        if outs == self.goal:
            self.found.append(pipeline)
            return None
        matched = sum(out == want for out, want in zip(outs, self.goal, strict=True))
        if 2 * matched >= len(outs) and outs not in self.near_seen:
            # The first pipeline to give these outputs is the simplest one that does.
            self.near_seen.add(outs)
            self._near(pipeline, matched, values, outs)
        if None in outs:
            return None  # a pair was refused: no extension of this can fit every pair
        state = tuple(out for out in outs if out is not None)  # narrowed for mypy
        return None if state == values else state

    def _near(self, pipeline: Pipeline, matched: int, values: tuple[str, ...],
              outs: tuple[str | None, ...]) -> None:
        index = next(i for i, out in enumerate(outs) if out != self.goal[i])
        reason = None
        if outs[index] is None:
            try:
                pipeline.steps[-1].apply(values[index], len(pipeline) - 1)
            except ConversionError as exc:
                reason = str(exc)
        miss = NearMiss(pipeline, matched, index, outs[index], reason)
        self.near.append((matched, -len(pipeline), -self.applications, miss))
        if len(self.near) > 4 * NEAR_MISSES:
            self.near.sort(key=lambda t: t[:3], reverse=True)
            del self.near[NEAR_MISSES:]

    def _candidates(self, values: tuple[str, ...], *, first: bool) -> Iterator[Step]:
        """The steps worth trying on ``values``, in the fixed step order."""
        for name in _PLAIN_STEPS:
            yield _step(name)
        lengths = {len(g) for g in self.goal}
        if len(lengths) == 1:
            (width,) = lengths
            if any(len(v) < width for v in values):
                yield _step("lpad", width)
        yield from self._substr_candidates(values, first=first)
        if all(v and set(v) <= _HEX for v in values):
            widest = max(int(v, 16).bit_length() for v in values)
            for name, layout in FORMATS.items():
                if widest <= layout.bit_count:
                    yield _step("wiegand", name)
                    if layout.facility is not None:
                        yield _step("wiegand", name, "fc")

    def _substr_candidates(self, values: tuple[str, ...], *, first: bool) -> Iterator[Step]:
        texts: list[str] = []
        # Ranges that cut every expected number out of its value at one common position.
        common: set[str] | None = None
        for value, expected in zip(values, self.goal, strict=True):
            fits = _cuts(value, expected)
            common = fits if common is None else common & fits
            if not common:
                break
        if common:
            texts.extend(sorted(common, key=_substr_order))
        if first:
            # Trims of the raw reading, for the steps after them to work on.
            shortest = min(len(v) for v in values)
            # Hex readings of whole bytes are cut at byte boundaries; anything else anywhere.
            grain = 2 if all(len(v) % 2 == 0 and set(v) <= _HEX for v in values) else 1
            trims: list[str] = []
            for k in range(grain, shortest, grain):
                trims += [f"{k}", f"-{k}", f"0:{k}"]
            # Both ends at once: reader prefixes and suffixes are short (a length field, a
            # checksum), and the O(n^2) sweep of every range would dominate the search.
            for start in range(grain, min(shortest - 1, _MAX_TRIM + 1), grain):
                for length in range(max(grain, shortest - start - _MAX_TRIM),
                                    shortest - start, grain):
                    trims.append(f"{start}:{length}")
            texts.extend(t for t in trims if t not in texts)
        for text in texts:
            yield _step("substr", *text.split(":"))


def _cuts(value: str, expected: str) -> set[str]:
    """The ``substr`` arguments that give ``expected`` from ``value``."""
    found: set[str] = set()
    m, n = len(expected), len(value)
    if m >= n:
        return found
    pos = value.find(expected)
    while pos >= 0:
        found.add(f"{pos}:{m}")
        found.add(f"{pos - n}:{m}" if pos + m < n else f"{pos - n}")
        if pos + m == n:
            found.add(f"{pos}")
        pos = value.find(expected, pos + 1)
    return found


def _substr_order(text: str) -> tuple[int, int, str]:
    # Fewer arguments first, then non-negative starts, then the text itself.
    return (text.count(":"), 1 if text.startswith("-") else 0, text)


@functools.lru_cache(maxsize=4096)
def _step(name: str, *args: str | int) -> Step:
    # Candidates repeat from state to state; building (validating) each once is enough.
    return make_step(name, *args)

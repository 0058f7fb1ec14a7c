"""Card-number conversion: what a reader sends -> the number the user directory holds. Pure.

Theory of operation
-------------------
Readers rarely send the number printed on a card or stored in the directory: one sends the
UID in hex, another the same UID byte-reversed, a USB keyboard-wedge reader the whole Wiegand
frame with its parity bits. Rather than one reader setting per case, a site configures a
*pipeline* of small steps chained with ``|``, applied left to right::

    reverse-bytes|hex2dec          04A1B2C3 -> C3B2A104 -> 3283263748
    wiegand:h10301                 000451E5 -> 10482

Step names and behaviour follow PaperCut's card-number converters where PaperCut has the
step (``hex2dec``, ``dec2hex``, ``ascii-enc``; ``regex`` behaves like its card-number regex,
first group), so a site moving over can keep its setting. The rest are ours. Every step is a
function from string to string; :data:`STEPS` is the table of them, with their argument
syntax, in the fixed order tools list (and :mod:`readers.numbers.infer` tries) them.

Two kinds of failure, deliberately different:

* :class:`PipelineError` (a :class:`ConfigError`) -- the pipeline text itself is wrong: an
  unknown step, a bad argument. Raised by :meth:`Pipeline.parse`, naming the step and its
  position, once at start-up.
* :class:`ConversionError` (a :class:`FrameError`) -- a read the pipeline cannot take, e.g.
  text where ``hex2dec`` needs hex digits, or a Wiegand frame with bad parity. Raised by
  :meth:`Pipeline.apply`, naming the step, its index and what *kind* of input it got
  ("7 hex digits"), never the input itself: these messages reach logs, and a card number is
  an identity. A reader adapter counts it like a bad frame.

Steps are strict rather than forgiving: ``hex2dec`` refuses a stray space or ``0x`` instead of
guessing, ``substr`` refuses a value too short for its range instead of returning less, and
Wiegand parity must hold. A conversion that quietly produces some *other* number logs the
wrong person in (or, at best, fails in a way nobody can diagnose); a refusal is visible.

Syntax details: step names are case-insensitive and spaces around ``|`` are ignored. A ``|``
inside an argument (a regex alternation) is written ``\\|``; any other backslash is kept as it
is, so ``regex:(\\d+)`` means what it says. ``str(pipeline)`` gives the canonical text, which
parses back to an equal pipeline. An empty pipeline is the identity.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from protocol.errors import ConfigError, FrameError
from readers.numbers import wiegand

__all__ = [
    "MAX_LENGTH",
    "STEPS",
    "ConversionError",
    "Pipeline",
    "PipelineError",
    "Step",
    "StepSpec",
    "describe_input",
    "make_step",
]

#: Longest value a step accepts and widest ``lpad``. Card numbers are a few dozen characters;
#: the cap keeps every step cheap and far from Python's int/str conversion limits.
MAX_LENGTH = 256

_DEC = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")


class PipelineError(ConfigError):
    """Pipeline text that does not parse. ``position`` is the 1-based step, ``step`` its text."""

    code = "bad_pipeline"

    def __init__(self, message: str, *, position: int | None = None,
                 step: str | None = None) -> None:
        super().__init__(message)
        self.position = position
        self.step = step


class ConversionError(FrameError):
    """A value a pipeline step cannot take.

    ``step`` is the step's text, ``index`` its 0-based index (the message says "step N" with N
    1-based, as people count), ``kind`` a description of the input such as "7 hex digits".
    The input itself is never in the message.
    """

    code = "conversion_failed"

    def __init__(self, step: str, index: int, kind: str, reason: str) -> None:
        super().__init__(f"conversion step {index + 1} ({step}) cannot take {kind}: {reason}")
        self.step = step
        self.index = index
        self.kind = kind
        self.reason = reason


class _Refused(Exception):
    """Raised by a step function; :meth:`Step.apply` turns it into a ConversionError."""


class _BadArgs(Exception):
    """Raised by a step factory; :func:`make_step` turns it into a PipelineError."""


def describe_input(value: str) -> str:
    """What kind of value this is, without the value: safe for messages and logs."""
    n = len(value)
    if n == 0:
        return "an empty value"
    chars = set(value)
    if chars <= _DEC:
        return f"{n} decimal digit{'s' if n != 1 else ''}"
    if chars <= _HEX:
        return f"{n} hex digit{'s' if n != 1 else ''}"
    if value.isascii() and value.isprintable():
        return f"{n} character{'s' if n != 1 else ''} of text"
    return f"{n} character{'s' if n != 1 else ''} including non-ASCII or control characters"


# -- the steps -----------------------------------------------------------------------------
# Each factory takes the step's argument strings, validates them (raising _BadArgs) and
# returns the function that converts one value (raising _Refused). The checks use explicit
# character sets, not int(): int() also takes spaces, underscores and non-ASCII digits.


def _need_hex(value: str, *, whole_bytes: bool = False) -> None:
    if not value or not set(value) <= _HEX:
        raise _Refused("needs hex digits (0-9, A-F)")
    if whole_bytes and len(value) % 2:
        raise _Refused("needs whole bytes (an even number of hex digits); lpad first?")


def _no_args(name: str, args: list[str]) -> None:
    if args:
        raise _BadArgs(f"{name} takes no argument")


def _hex2dec(args: list[str]) -> Callable[[str], str]:
    _no_args("hex2dec", args)

    def run(value: str) -> str:
        _need_hex(value)
        return str(int(value, 16))

    return run


def _dec2hex(args: list[str]) -> Callable[[str], str]:
    _no_args("dec2hex", args)

    def run(value: str) -> str:
        if not value or not set(value) <= _DEC:
            raise _Refused("needs decimal digits (0-9)")
        text = f"{int(value):X}"
        # Whole bytes, like every hex a reader sends: the next step may well be reverse-bytes.
        return text if len(text) % 2 == 0 else "0" + text

    return run


def _ascii_enc(args: list[str]) -> Callable[[str], str]:
    _no_args("ascii-enc", args)

    def run(value: str) -> str:
        _need_hex(value, whole_bytes=True)
        data = bytes.fromhex(value)
        # Printable ASCII only: a control byte here means the value was not ASCII-encoded.
        if any(not 0x20 <= b <= 0x7E for b in data):
            raise _Refused("the bytes are not printable ASCII characters")
        return data.decode("ascii")

    return run


def _reverse_bytes(args: list[str]) -> Callable[[str], str]:
    _no_args("reverse-bytes", args)

    def run(value: str) -> str:
        _need_hex(value, whole_bytes=True)
        return "".join(value[i:i + 2] for i in range(len(value) - 2, -1, -2))

    return run


def _reverse_bits(args: list[str]) -> Callable[[str], str]:
    _no_args("reverse-bits", args)

    def run(value: str) -> str:
        _need_hex(value)
        width = 4 * len(value)
        bits = f"{int(value, 16):0{width}b}"
        return f"{int(bits[::-1], 2):0{len(value)}X}"

    return run


def _invert(args: list[str]) -> Callable[[str], str]:
    _no_args("invert", args)

    def run(value: str) -> str:
        _need_hex(value)
        mask = (1 << (4 * len(value))) - 1
        return f"{~int(value, 16) & mask:0{len(value)}X}"

    return run


def _strip_zeros(args: list[str]) -> Callable[[str], str]:
    _no_args("strip-zeros", args)

    def run(value: str) -> str:
        stripped = value.lstrip("0")
        # A number that is all zeros is zero, not nothing.
        return stripped if stripped or not value else "0"

    return run


def _int_arg(text: str, what: str, *, low: int, high: int) -> int:
    body = text[1:] if text.startswith("-") else text
    if not body or not set(body) <= _DEC:
        raise _BadArgs(f"{what} must be a whole number, got {text!r}")
    # Compare as text first when long: int() of a huge digit string is slow, then refused.
    if len(body) > 6 or not low <= int(text) <= high:
        raise _BadArgs(f"{what} must be {low}..{high}, got {text}")
    number = int(text)
    return number


def _lpad(args: list[str]) -> Callable[[str], str]:
    if len(args) != 1:
        raise _BadArgs("lpad takes one argument, the width: lpad:10")
    width = _int_arg(args[0], "lpad width", low=1, high=MAX_LENGTH)

    def run(value: str) -> str:
        return value.rjust(width, "0")

    return run


def _substr(args: list[str]) -> Callable[[str], str]:
    if len(args) not in (1, 2):
        raise _BadArgs("substr takes START or START:LEN, e.g. substr:2:8 or substr:-6")
    start = _int_arg(args[0], "substr START", low=-MAX_LENGTH, high=MAX_LENGTH - 1)
    length = (None if len(args) == 1
              else _int_arg(args[1], "substr LEN", low=1, high=MAX_LENGTH))
    if start < 0 and length is not None and length > -start:
        raise _BadArgs(f"substr LEN {length} runs past the end: START {start} leaves only "
                       f"{-start} characters")
    # The shortest value the range fits in.
    need = -start if start < 0 else start + (length or 1)

    def run(value: str) -> str:
        # Refuse rather than return less: a shorter value cut differently is another number.
        if len(value) < need:
            raise _Refused(f"needs at least {need} characters")
        first = start if start >= 0 else len(value) + start
        return value[first:] if length is None else value[first:first + length]

    return run


def _regex(args: list[str]) -> Callable[[str], str]:
    if len(args) != 1 or not args[0]:
        raise _BadArgs(r"regex takes a pattern, e.g. regex:ID=(\d+)")
    try:
        pattern = re.compile(args[0])
    except re.error as exc:
        raise _BadArgs(f"regex pattern does not compile: {exc}") from exc

    def run(value: str) -> str:
        match = pattern.search(value)
        if match is None:
            raise _Refused("the pattern does not match")
        # PaperCut's card-number regex returns the first group; with no group, the match.
        found = match.group(1) if pattern.groups else match.group(0)
        if not found:
            raise _Refused("the pattern matched, but its first group is empty or unused")
        return found

    return run


def _wiegand(args: list[str]) -> Callable[[str], str]:
    if len(args) not in (1, 2) or (len(args) == 2 and args[1].lower() != "fc"):
        raise _BadArgs("wiegand takes a format and optionally 'fc', e.g. wiegand:h10301 or "
                       "wiegand:h10301:fc")
    try:
        layout = wiegand.get_format(args[0])
    except wiegand.WiegandError as exc:
        raise _BadArgs(str(exc)) from exc
    want_fc = len(args) == 2
    if want_fc and layout.facility is None:
        raise _BadArgs(f"{layout.name} has no facility code")

    def run(value: str) -> str:
        _need_hex(value)
        frame = int(value, 16)
        if frame >> layout.bit_count:
            raise _Refused(f"wider than {layout.name} frames ({layout.bit_count} bits)")
        card = wiegand.decode(layout.name, frame, layout.bit_count)
        if not card.parity_ok:
            failed = "; ".join(p.describe() for p in card.parity_failures)
            raise _Refused(f"bad {layout.name} parity at {failed}")
        return str(card.facility if want_fc else card.card)

    return run


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One kind of step: its name, argument syntax, one-line summary and whether PaperCut has
    it under the same name. ``split`` is how many ``:``-separated arguments to split off
    (a regex pattern may contain ``:``, so it is never split)."""

    name: str
    syntax: str
    summary: str
    papercut: bool
    factory: Callable[[list[str]], Callable[[str], str]] = field(repr=False)
    split: bool = True


#: Every step, in the fixed order they are listed and tried in.
STEPS: dict[str, StepSpec] = {
    s.name: s
    for s in (
        StepSpec("hex2dec", "hex2dec", "hex to decimal (946EBD28 -> 2490285352)", True,
                 _hex2dec),
        StepSpec("dec2hex", "dec2hex",
                 "decimal to upper-case hex, whole bytes (2490285352 -> 946EBD28)", True,
                 _dec2hex),
        StepSpec("reverse-bytes", "reverse-bytes", "reverse the byte order of a hex value",
                 False, _reverse_bytes),
        StepSpec("reverse-bits", "reverse-bits", "reverse the bit order of a whole hex value",
                 False, _reverse_bits),
        StepSpec("invert", "invert", "flip every bit of a hex value (same width)", False,
                 _invert),
        StepSpec("ascii-enc", "ascii-enc",
                 "hex bytes read as ASCII text (3934364542443238 -> 946EBD28)", True,
                 _ascii_enc),
        StepSpec("strip-zeros", "strip-zeros", "drop leading zeros (0 stays 0)", False,
                 _strip_zeros),
        StepSpec("lpad", "lpad:N", "left-pad with zeros to N characters", False, _lpad),
        StepSpec("substr", "substr:START[:LEN]",
                 "characters from START (negative: from the end), LEN of them or to the end",
                 False, _substr),
        StepSpec("regex", "regex:PATTERN",
                 "first group of the first match (whole match without a group)", False,
                 _regex, split=False),
        StepSpec("wiegand", "wiegand:FORMAT[:fc]",
                 "hex Wiegand frame -> card number (or facility code), parity checked", False,
                 _wiegand),
    )
}


@dataclass(frozen=True, slots=True)
class Step:
    """One configured step. Equal steps have equal name and arguments (the function is
    derived from them); build one with :func:`make_step` or :meth:`Pipeline.parse`."""

    name: str
    args: tuple[str, ...]
    run: Callable[[str], str] = field(compare=False, repr=False)

    def __str__(self) -> str:
        return ":".join((self.name, *(_escape(a) for a in self.args)))

    def try_apply(self, value: str) -> str | None:
        """Convert one value, or None if refused: for searches that try many values cheaply."""
        if len(value) > MAX_LENGTH:
            return None
        try:
            return self.run(value)
        except _Refused:
            return None

    def apply(self, value: str, index: int = 0) -> str:
        """Convert one value; ConversionError (as step ``index`` of a pipeline) if refused."""
        try:
            if len(value) > MAX_LENGTH:
                raise _Refused(f"longer than {MAX_LENGTH} characters")
            return self.run(value)
        except _Refused as exc:
            raise ConversionError(str(self), index, describe_input(value), str(exc)) from None


def make_step(name: str, *args: str | int) -> Step:
    """A validated step, e.g. ``make_step("lpad", 10)``; PipelineError if it is not one."""
    return _build(name, [str(a) for a in args], position=1)


def _build(name: str, args: list[str], *, position: int) -> Step:
    key = name.strip().lower()
    text = ":".join((name, *args))
    spec = STEPS.get(key)
    if spec is None:
        raise PipelineError(
            f"pipeline step {position} ({text!r}): unknown step {name!r}; known steps: "
            + ", ".join(STEPS), position=position, step=text)
    try:
        run = spec.factory(args)
    except _BadArgs as exc:
        raise PipelineError(f"pipeline step {position} ({text!r}): {exc}; syntax: "
                            f"{spec.syntax}", position=position, step=text) from exc
    # Canonical arguments: format names and "fc" in lower case.
    canon = tuple(a.lower() for a in args) if key == "wiegand" else tuple(args)
    # Only reachable through make_step (parsed text never holds these): arguments that could
    # not be written back as pipeline text, which would break str() -> parse() round trips.
    if any(_split_steps(_escape(arg)) != [arg] for arg in canon):
        raise PipelineError(
            f"pipeline step {position} ({text!r}): an argument cannot contain a backslash "
            "before '|' (for a literal '|' in a regex write [|])", position=position, step=text)
    if canon and canon[-1] != canon[-1].rstrip():
        raise PipelineError(
            f"pipeline step {position} ({text!r}): an argument cannot end in white space "
            r"(spaces around '|' are ignored; in a regex write [ ] or \s)", position=position,
            step=text)
    return Step(key, canon, run)


def _split_steps(text: str) -> list[str]:
    """Split on ``|``, except ``\\|``, which is a ``|`` inside an argument.

    A backslash before any other character is kept together with it, so ``\\\\|`` is an
    escaped backslash followed by a separator -- the same pairing :func:`_escape` writes.
    """
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            current.append("|" if nxt == "|" else ch + nxt)
            i += 2
        elif ch == "|":
            parts.append("".join(current))
            current = []
            i += 1
        else:
            current.append(ch)
            i += 1
    parts.append("".join(current))
    return parts


def _escape(arg: str) -> str:
    """An argument as pipeline text: ``|`` becomes ``\\|``; a backslash and the character
    after it are copied as a pair, exactly as :func:`_split_steps` reads them back."""
    out: list[str] = []
    i = 0
    while i < len(arg):
        ch = arg[i]
        if ch == "\\" and i + 1 < len(arg) and arg[i + 1] != "|":
            out.append(arg[i:i + 2])
            i += 2
            continue
        out.append("\\|" if ch == "|" else ch)
        i += 1
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Pipeline:
    """Steps applied left to right. ``Pipeline()`` is the identity; ``p | step`` extends."""

    steps: tuple[Step, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Pipeline:
        """Parse ``step|step|...``; :class:`PipelineError` naming the first bad step."""
        if not text.strip():
            return cls()
        steps: list[Step] = []
        for position, raw in enumerate(_split_steps(text), start=1):
            item = raw.strip()
            if not item:
                raise PipelineError(f"pipeline step {position} is empty (a '|' too many?)",
                                    position=position, step="")
            name, colon, rest = item.partition(":")
            spec = STEPS.get(name.strip().lower())
            if not colon:
                args: list[str] = []
            elif spec is not None and not spec.split:
                args = [rest]
            else:
                args = rest.split(":")
            steps.append(_build(name.strip(), args, position=position))
        return cls(tuple(steps))

    def apply(self, value: str) -> str:
        """Convert one value; :class:`ConversionError` names the step that refused it."""
        for index, step in enumerate(self.steps):
            value = step.apply(value, index)
        return value

    def __or__(self, other: Pipeline | Step) -> Pipeline:
        more = other.steps if isinstance(other, Pipeline) else (other,)
        return Pipeline(self.steps + more)

    def __len__(self) -> int:
        return len(self.steps)

    def __str__(self) -> str:
        return "|".join(str(s) for s in self.steps)

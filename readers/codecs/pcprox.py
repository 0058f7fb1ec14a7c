"""The pcProx ASCII command protocol (a subset), and the decoder of a pcProx line. Pure.

A pcProx prints card lines as any ASCII reader (:mod:`readers.codecs.ascii`) and takes
commands on the same line; this module speaks the commands and follows their replies.

pcProx ASCII command protocol (a subset)
----------------------------------------
A pcProx serial reader also takes commands on the same line (RF IDeas' "ASCII Command
Protocol"): ``rfid:`` + a command + CR or LF. This module implements a small, documented
subset of it, using RF IDeas' variable names so that the same bytes configure a real reader:

* query ``rfid:NAME?`` -- the reader answers ``{VALUE}`` CR LF;
* assign ``rfid:NAME=VALUE`` -- the reader stores the value and answers with it, read back
  (``{VALUE}``), so one command always gets one reply (our convention; the real firmware
  also prints a ``RF IDeas>`` prompt and may echo the command, which the decoder skips);
* errors: ``{ERR syntax}``, ``{ERR unknown}`` (no such variable), ``{ERR value}`` (out of
  range) -- our own codes; RF IDeas' numeric error codes are not modelled.

Values are written as in RF IDeas' manual: booleans ``True``/``False`` (``1``/``0``/``t``/``f``
accepted), integers in decimal (``0x`` hex accepted), characters single-quoted, ``':'`` or
``'\\x0D'``. The variables (:data:`ACP_VARIABLES`):

* ``chr.1``, ``chr.2``, ``chr.3`` (char): delimiter characters; the first
  ``chr.count.lead`` of them precede the card data, the next ``chr.count.trail`` follow it;
* ``chr.count.lead``, ``chr.count.trail`` (0..3, together at most 3);
* ``chr.fac`` (char): separator between facility code and ID;
* ``chr.eol`` (char): line terminator, CR (``'\\x0D'``) or LF (``'\\x0A'``) in this subset;
* ``disp.fac.send`` (bool): send the facility code (``chr.fac`` must then be set);
* ``disp.id.hex`` (bool): numbers in hex, else decimal; in this subset it governs the
  facility code too (the real reader has a separate ``disp.fac.hex``);
* ``disp.id.digits`` (0..32): zero-pad the ID to this many digits, 0 = no padding;
* ``time.lo`` (0..255): lock-out, in 48 ms ticks a card must be away before it is read
  again (a different card is read at once).

:class:`PcProxDecoder` decodes card lines like :class:`AsciiDecoder` and also speaks this:
:meth:`~PcProxDecoder.send` turns a command into bytes and remembers it; each reply line is
paired with the oldest unanswered command and yields an :class:`AcpResult`. A successful
reply updates the decoder's copy of the reader's variables and, from them, the
:class:`AsciiFormat` it parses card lines with -- so switching the reader to hex over the
wire switches the host too, at the exact point in the stream where the reader switched.

Usage, h11-style, as for every codec: ``decoder.receive_data(chunk)`` then
``decoder.next_event()`` until ``None``, or ``decoder.feed(chunk)``; nothing here raises on
bad input from the wire.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

from protocol.errors import ConfigError, FrameError
from readers.codecs.ascii import (
    MAX_DIGITS,
    AsciiCard,
    AsciiFormat,
    AsciiFrameError,
    CardLineBuffer,
    LineFault,
)

__all__ = [
    "ACP_PREFIX",
    "ACP_PROMPT",
    "ACP_VARIABLES",
    "AcpAssign",
    "AcpCommand",
    "AcpError",
    "AcpErrorCode",
    "AcpQuery",
    "AcpReply",
    "AcpResult",
    "AcpType",
    "AcpValue",
    "AcpVariable",
    "PcProxDecoder",
    "PcProxEvent",
    "encode_command",
    "encode_reply",
    "format_from_acp",
    "format_to_acp",
    "format_value",
    "parse_command",
    "parse_reply",
    "parse_value",
]

_LINE_ENDS = b"\r\n"

ACP_PREFIX = b"rfid:"
#: What a real pcProx prints before it waits for a command; skipped where it appears.
ACP_PROMPT = b"RF IDeas>"


class AcpType(StrEnum):
    BOOL = "bool"
    INT = "int"
    CHAR = "char"


#: A variable's value: ``bool``, ``int``, or a one-byte ``bytes`` for a character.
AcpValue: TypeAlias = bool | int | bytes


@dataclass(frozen=True, slots=True)
class AcpVariable:
    name: str
    type: AcpType
    doc: str
    low: int = 0
    high: int = 255


ACP_VARIABLES: dict[str, AcpVariable] = {v.name: v for v in (
    AcpVariable("chr.1", AcpType.CHAR, "delimiter character 1"),
    AcpVariable("chr.2", AcpType.CHAR, "delimiter character 2"),
    AcpVariable("chr.3", AcpType.CHAR, "delimiter character 3"),
    AcpVariable("chr.count.lead", AcpType.INT, "delimiters before the card data", 0, 3),
    AcpVariable("chr.count.trail", AcpType.INT, "delimiters after the card data", 0, 3),
    AcpVariable("chr.fac", AcpType.CHAR, "separator between facility code and ID"),
    AcpVariable("chr.eol", AcpType.CHAR, "end of line: CR or LF"),
    AcpVariable("disp.fac.send", AcpType.BOOL, "send the facility code"),
    AcpVariable("disp.id.hex", AcpType.BOOL, "numbers in hex rather than decimal"),
    AcpVariable("disp.id.digits", AcpType.INT, "zero-pad the ID to this many digits (0: off)",
                0, MAX_DIGITS),
    AcpVariable("time.lo", AcpType.INT, "lock-out in 48 ms ticks", 0, 255),
)}

#: Lock-out tick of the pcProx firmware, seconds.
ACP_TICK_S = 0.048


class AcpErrorCode(StrEnum):
    """Error replies of the subset: ``{ERR <code>}``."""

    SYNTAX = "syntax"  # not ``rfid:NAME?`` or ``rfid:NAME=VALUE``
    UNKNOWN = "unknown"  # no such variable (or a function outside the subset)
    VALUE = "value"  # the value does not parse or is out of range


class AcpError(FrameError):
    """A command or reply that does not parse. ``code`` says why; ``raw`` holds the bytes."""

    def __init__(self, code: AcpErrorCode, message: str, raw: bytes = b"") -> None:
        super().__init__(f"bad pcProx command protocol line: {message}")
        self.acp_code = code
        self.raw = raw


@dataclass(frozen=True, slots=True)
class AcpQuery:
    name: str


@dataclass(frozen=True, slots=True)
class AcpAssign:
    name: str
    value: AcpValue


AcpCommand: TypeAlias = AcpQuery | AcpAssign


@dataclass(frozen=True, slots=True)
class AcpReply:
    """One reply line: ``text`` is what stood between the braces."""

    text: str
    raw: bytes = field(repr=False, default=b"")

    @property
    def error(self) -> AcpErrorCode | str | None:
        """The error code of an ``{ERR code}`` reply (a plain string if not one of ours)."""
        if not self.text.startswith("ERR"):
            return None
        code = self.text[3:].strip()
        try:
            return AcpErrorCode(code)
        except ValueError:
            return code


@dataclass(frozen=True, slots=True)
class AcpResult:
    """A reply paired with the command it answers (``None`` if nothing was pending).

    ``value`` is the variable's value as the reader reported it, ``None`` when the reply is
    an error or does not parse as that variable's type.
    """

    command: AcpCommand | None
    reply: AcpReply
    value: AcpValue | None = None

    @property
    def ok(self) -> bool:
        return self.value is not None


def _variable(name: str, raw: bytes = b"") -> AcpVariable:
    var = ACP_VARIABLES.get(name.lower())
    if var is None:
        raise AcpError(AcpErrorCode.UNKNOWN, f"no variable {name!r} in the supported subset", raw)
    return var


def format_value(name: str, value: AcpValue) -> str:
    """``value`` as written on the wire for variable ``name``; ValueError if it does not fit."""
    var = ACP_VARIABLES.get(name)
    if var is None:
        raise ValueError(f"unknown pcProx variable {name!r}")
    if var.type is AcpType.BOOL:
        if not isinstance(value, bool):
            raise ValueError(f"{name} takes a bool, got {value!r}")
        return "True" if value else "False"
    if var.type is AcpType.INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} takes an int, got {value!r}")
        if not var.low <= value <= var.high:
            raise ValueError(f"{name} must be {var.low}..{var.high}, got {value}")
        return str(value)
    if not isinstance(value, bytes) or len(value) != 1:
        raise ValueError(f"{name} takes one character as bytes, got {value!r}")
    byte = value[0]
    if 0x20 <= byte <= 0x7E and byte not in b"'\\{}":
        return f"'{chr(byte)}'"
    return f"'\\x{byte:02X}'"


def parse_value(name: str, text: str, raw: bytes = b"") -> AcpValue:
    """Parse a value written for ``name``; :class:`AcpError` (``unknown``/``value``) if bad."""
    var = _variable(name, raw)
    word = text.strip()
    if var.type is AcpType.BOOL:
        folded = word.lower()
        if folded in ("true", "t", "1"):
            return True
        if folded in ("false", "f", "0"):
            return False
        raise AcpError(AcpErrorCode.VALUE, f"{var.name} takes True or False", raw)
    if var.type is AcpType.INT:
        try:
            number = int(word, 16) if word[:2].lower() == "0x" else int(word, 10)
        except ValueError:
            raise AcpError(AcpErrorCode.VALUE, f"{var.name} takes an integer", raw) from None
        if not var.low <= number <= var.high:
            raise AcpError(AcpErrorCode.VALUE,
                           f"{var.name} must be {var.low}..{var.high}", raw)
        return number
    inner = word[1:-1] if len(word) >= 2 and word[0] == word[-1] == "'" else None
    if inner is not None and len(inner) == 1 and inner.isascii():
        return inner.encode("ascii")
    # RF IDeas write '\x3a'; their manual also shows 'x3a'. Accept both.
    if inner is not None and len(inner) in (3, 4) and inner.lstrip("\\")[:1] in ("x", "X"):
        hex_part = inner.lstrip("\\")[1:]
        if len(hex_part) == 2 and all(c in "0123456789abcdefABCDEF" for c in hex_part):
            return bytes((int(hex_part, 16),))
    raise AcpError(AcpErrorCode.VALUE,
                   f"{var.name} takes one quoted character, e.g. ':' or '\\x0D'", raw)


def encode_command(command: AcpCommand) -> bytes:
    """The bytes a host sends: ``rfid:NAME?`` or ``rfid:NAME=VALUE``, then CR."""
    if command.name not in ACP_VARIABLES:
        raise ValueError(f"unknown pcProx variable {command.name!r}")
    if isinstance(command, AcpQuery):
        text = f"{command.name}?"
    else:
        text = f"{command.name}={format_value(command.name, command.value)}"
    return ACP_PREFIX + text.encode("ascii") + b"\r"


def parse_command(line: bytes) -> AcpCommand:
    """Parse one command line (terminator optional), as the reader firmware does.

    Variable names are case-insensitive, as on the real reader. Raises :class:`AcpError`.
    """
    body = line.strip(_LINE_ENDS + b" ")
    if body[:len(ACP_PREFIX)].lower() != ACP_PREFIX:
        raise AcpError(AcpErrorCode.SYNTAX, "a command starts with 'rfid:'", bytes(line))
    try:
        text = body[len(ACP_PREFIX):].decode("ascii")
    except UnicodeDecodeError:
        raise AcpError(AcpErrorCode.SYNTAX, "commands are ASCII", bytes(line)) from None
    if text.endswith("?"):
        return AcpQuery(_variable(text[:-1].strip(), bytes(line)).name)
    name, eq, value = text.partition("=")
    if not eq:
        # A bare name is a function call on the real reader; none is in the subset.
        _variable(name.strip(), bytes(line))
        raise AcpError(AcpErrorCode.SYNTAX, "expected 'rfid:NAME?' or 'rfid:NAME=VALUE'",
                       bytes(line))
    var = _variable(name.strip(), bytes(line))
    return AcpAssign(var.name, parse_value(var.name, value, bytes(line)))


def encode_reply(text: str | AcpErrorCode) -> bytes:
    """A reply line: ``{text}`` CR LF, or ``{ERR code}`` CR LF for an error code."""
    if isinstance(text, AcpErrorCode):
        text = f"ERR {text.value}"
    if not text.isascii() or any(c in text for c in "{}\r\n"):
        raise ValueError(f"reply text must be ASCII without braces or line ends: {text!r}")
    return b"{" + text.encode("ascii") + b"}\r\n"


def parse_reply(line: bytes) -> AcpReply:
    """Parse one reply line (a leading prompt and line ends are ignored); AcpError if bad."""
    body = line.strip(_LINE_ENDS)
    if body.startswith(ACP_PROMPT):
        body = body[len(ACP_PROMPT):].strip(_LINE_ENDS + b" ")
    if len(body) < 2 or body[:1] != b"{" or body[-1:] != b"}":
        raise AcpError(AcpErrorCode.SYNTAX, "a reply is '{...}'", bytes(line))
    inner = body[1:-1]
    if b"{" in inner or b"}" in inner or not inner.isascii():
        raise AcpError(AcpErrorCode.SYNTAX, "a reply is one '{...}' of ASCII text", bytes(line))
    return AcpReply(inner.decode("ascii"), bytes(line))


# The subset's factory settings: a pcProx printing the decimal ID and CR, lock-out 24 ticks.
_ACP_DEFAULTS: dict[str, AcpValue] = {
    "chr.1": b"\x00", "chr.2": b"\x00", "chr.3": b"\x00",
    "chr.count.lead": 0, "chr.count.trail": 0,
    "chr.fac": b":", "chr.eol": b"\r",
    "disp.fac.send": False, "disp.id.hex": False, "disp.id.digits": 0,
    "time.lo": 24,
}


def format_to_acp(fmt: AsciiFormat, *, lockout_ticks: int = 24) -> dict[str, AcpValue]:
    """The pcProx variables that make a reader print ``fmt``.

    :class:`ConfigError` if a pcProx cannot print it: more than three delimiters in all, a
    separator longer than one character, or a CR LF terminator.
    """
    if len(fmt.pre) + len(fmt.post) > 3:
        raise ConfigError("a pcProx has three delimiter characters in all: 'pre' and 'post' "
                          f"together are {len(fmt.pre) + len(fmt.post)}")
    if len(fmt.sep) > 1:
        raise ConfigError(f"a pcProx facility separator 'sep' is one character, got {fmt.sep!r}")
    if fmt.term not in (b"\r", b"\n"):
        raise ConfigError("a pcProx ends lines with one character: 'term' must be cr or lf")
    if not 0 <= lockout_ticks <= 255:
        raise ConfigError(f"pcProx lock-out must be 0..255 ticks of 48 ms, got {lockout_ticks}")
    delims = fmt.pre + fmt.post
    variables = dict(_ACP_DEFAULTS)
    for i, byte in enumerate(delims):
        variables[f"chr.{i + 1}"] = bytes((byte,))
    variables["chr.count.lead"] = len(fmt.pre)
    variables["chr.count.trail"] = len(fmt.post)
    if fmt.sep:
        variables["chr.fac"] = fmt.sep
    variables["disp.fac.send"] = fmt.has_facility
    variables["chr.eol"] = fmt.term
    variables["disp.id.hex"] = fmt.base == 16
    variables["disp.id.digits"] = fmt.width
    variables["time.lo"] = lockout_ticks
    return variables


def format_from_acp(variables: Mapping[str, AcpValue]) -> AsciiFormat:
    """The line layout a pcProx with these variables prints (missing ones take the subset's
    defaults). :class:`ConfigError` if it prints nothing decodable."""
    merged = {**_ACP_DEFAULTS, **variables}

    def get_int(name: str) -> int:
        value = merged[name]
        assert isinstance(value, int)
        return value

    def get_char(name: str) -> bytes:
        value = merged[name]
        assert isinstance(value, bytes)
        return value

    lead, trail = get_int("chr.count.lead"), get_int("chr.count.trail")
    if lead + trail > 3:
        raise ConfigError("pcProx chr.count.lead + chr.count.trail exceed the 3 delimiters")
    delims = b"".join(get_char(f"chr.{i}") for i in (1, 2, 3))
    eol = get_char("chr.eol")
    if eol not in (b"\r", b"\n"):
        raise ConfigError(f"pcProx chr.eol {eol!r} is not CR or LF")
    sep = get_char("chr.fac") if merged["disp.fac.send"] else b""
    if sep == b"\x00":
        raise ConfigError("pcProx sends the facility code with no separator (chr.fac)")
    return AsciiFormat(pre=delims[:lead], post=delims[lead:lead + trail], sep=sep, term=eol,
                       base=16 if merged["disp.id.hex"] else 10,
                       width=get_int("disp.id.digits"))


PcProxEvent: TypeAlias = AsciiCard | AsciiFrameError | AcpResult


class PcProxDecoder(CardLineBuffer[PcProxEvent]):
    """Card lines and command replies from one pcProx on one line.

    Starts from the layout the host was configured with (``fmt``); :meth:`send` registers a
    command. Reply lines (``{...}``) answer pending commands in order; a successful one
    updates :attr:`variables` and re-derives :attr:`format`. If the reported settings describe
    no decodable layout, card lines are rejected (``format`` fault) until they do again --
    better no read than a card read in the wrong base.
    """

    def __init__(self, fmt: AsciiFormat | None = None, *, lockout_ticks: int = 24) -> None:
        super().__init__(fmt)
        problem = _reply_lookalike(self.format)
        if problem is not None:
            raise ConfigError(problem)
        self.variables: dict[str, AcpValue] = format_to_acp(self.format,
                                                            lockout_ticks=lockout_ticks)
        self._pending: deque[AcpCommand] = deque()
        self._format_problem: str | None = None

    @property
    def pending_commands(self) -> int:
        return len(self._pending)

    def send(self, command: AcpCommand) -> bytes:
        """Bytes to write for ``command``; its reply will come out as an :class:`AcpResult`."""
        data = encode_command(command)
        self._pending.append(command)
        return data

    def _handle_line(self, raw: bytes) -> None:
        body = raw.strip(_LINE_ENDS)
        if body.startswith(ACP_PROMPT):
            body = body[len(ACP_PROMPT):].lstrip(b" ")
        if not body or body[:len(ACP_PREFIX)].lower() == ACP_PREFIX:
            # Blank, a bare prompt, or the reader echoing a command back: not data.
            self.skipped_bytes += len(raw)
            return
        if body[:1] == b"{" and body[-1:] == b"}":
            self._reply_line(raw)
            return
        if self._format_problem is not None:
            self._reject(AsciiFrameError(
                LineFault.FORMAT, f"reader settings give no decodable layout: "
                f"{self._format_problem}", raw))
            return
        self._card_line(body, raw)

    def _reply_line(self, raw: bytes) -> None:
        try:
            reply = parse_reply(raw)
        except AcpError as exc:
            self._reject(AsciiFrameError(LineFault.REPLY, str(exc), raw))
            return
        command = self._pending.popleft() if self._pending else None
        value: AcpValue | None = None
        if command is not None and reply.error is None:
            try:
                value = parse_value(command.name, reply.text, raw)
            except AcpError:
                value = None
        if command is not None and value is not None:
            self._apply(command.name, value)
        self._events.append(AcpResult(command, reply, value))

    def _apply(self, name: str, value: AcpValue) -> None:
        self.variables[name] = value
        try:
            fmt = format_from_acp(self.variables)
        except ConfigError as exc:
            self._format_problem = str(exc)
            return
        self._format_problem = _reply_lookalike(fmt)
        if self._format_problem is None:
            self.format = fmt


def _reply_lookalike(fmt: AsciiFormat) -> str | None:
    # Card lines and replies share the line; a card line in braces would be taken for a reply.
    if fmt.pre[:1] == b"{":
        return "pcProx pre-delimiter 'pre' must not start with '{' (replies do)"
    return None

"""The schema machinery of MQTT contract v1's messages: :mod:`protocol.messages`' private part.

Theory of operation
-------------------
Each message is a frozen dataclass that :mod:`protocol.messages` registers with
:func:`register`. Its annotated fields *are* the schema: the type annotation gives the JSON type,
``spec(...)`` metadata gives bounds, and a default makes a field optional. :func:`from_object`
checks every field of a parsed JSON object and raises :class:`ProtocolError` naming the first
offending one, so a peer always learns what to fix; :func:`to_object` is its inverse.

* **Unknown fields are ignored** (tolerant reader): :func:`from_object` reads the fields the
  schema names and nothing else.
* Secrets are marked ``secret`` in their ``spec`` (read by ``messages.redacted()``).
* **Only what every peer can hold** (I-JSON, RFC 7493): strings are Unicode text without NUL
  (a lone UTF-16 surrogate, which a ``\\ud800`` escape smuggles past Python's JSON parser,
  cannot be written back as UTF-8; PostgreSQL's text cannot hold ``\\u0000``); integers are
  within +/- 2**53 - 1 (exact in a 64-bit float, the only number some peers have, and in every
  store column); numbers are finite (``NaN``, ``Infinity`` and ``1e999`` are refused). Anything
  else is the protocol's error, never an exception from deeper down; :func:`printable` makes
  any text an error answer echoes encodable.

Only :mod:`protocol.messages` imports this module (a contract in pyproject.toml says so); every
public name here is also reachable as ``messages.NAME``, the way importers should use it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, Union

from protocol.errors import ErrorCode, ProtocolError

_ID_RE = r"^[A-Za-z0-9_.:-]{1,64}$"
#: The largest integer magnitude any field takes (2**53 - 1, exact in a 64-bit float).
MAX_INT = 2**53 - 1


@dataclass(frozen=True, slots=True)
class Spec:
    min_len: int | None = None
    max_len: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    secret: bool = False
    #: For a mapping: the most characters of each name and of each value.
    item_max_len: int | None = None
    #: What a value that does not match ``pattern`` should be, for the error ("a language
    #: tag such as ..."); without it the error says only that the value does not fit.
    shape: str | None = None


def spec(**kwargs: Any) -> dict[str, Spec]:
    return {"spec": Spec(**kwargs)}


#: Field metadata of an identifier (request, job, release, user ids).
ID = spec(pattern=_ID_RE)

#: A language tag, BCP 47's shape loosely (the way protocol/managed.py checks a policy's): a
#: language of 2-3 letters, then optional subtags (region, script) of 2-8 letters or digits;
#: ASCII only, so that no look-alike letter or digit of another script gets through. Empty is
#: "no preference".
LANGUAGE_TAG = r"^(?:[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*)?$"
#: The longest tag a field takes (BCP 47's advice for a buffer that holds any practical tag).
LANGUAGE_MAX = 35
#: Field metadata of a language tag (a user's preferred language).
LANGUAGE = spec(max_len=LANGUAGE_MAX, pattern=LANGUAGE_TAG,
                shape='a language tag such as "de", "ja" or "fr-CH", or empty')


def is_language_tag(value: str) -> bool:
    """Whether ``value`` is a language tag a message can carry ("" included)."""
    return len(value) <= LANGUAGE_MAX and re.fullmatch(LANGUAGE_TAG, value) is not None


class Message:
    """Base of every message. ``TYPE`` is the wire ``type``; ``KIND`` says which way it goes."""

    TYPE: ClassVar[str]
    KIND: ClassVar[str]  # "request", "result", "part", "status"


class Request(Message):
    KIND: ClassVar[str] = "request"


class Result(Message):
    KIND: ClassVar[str] = "result"


class Part(Message):
    """An object nested inside another message (a job in a list)."""

    KIND: ClassVar[str] = "part"
    TYPE: ClassVar[str] = ""


@dataclass(frozen=True, slots=True)
class FieldInfo:
    name: str
    kind: str  # str int bool bytes float strs parts strmap
    optional: bool  # may be null
    required: bool  # must be present
    spec: Spec
    part: type[Message] | None


SCHEMAS: dict[type[Message], tuple[FieldInfo, ...]] = {}

M = TypeVar("M", bound=Message)


def _kind_of(tp: Any) -> tuple[str, bool, type[Message] | None]:
    optional = False
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) != 1:
            raise TypeError(f"unsupported union {tp}")
        tp = args[0]
        origin = typing.get_origin(tp)
    if tp in (str, int, bool, bytes, float):
        return tp.__name__, optional, None
    if origin is dict and typing.get_args(tp) == (str, str):
        return "strmap", optional, None
    if origin is tuple:
        (item, _ellipsis) = typing.get_args(tp)
        if item is str:
            return "strs", optional, None
        if isinstance(item, type) and issubclass(item, Part):
            return "parts", optional, item
    raise TypeError(f"unsupported field type {tp}")


def register(cls: type[M]) -> type[M]:
    """Record the schema of message class ``cls`` from its annotated dataclass fields."""
    hints = typing.get_type_hints(cls)
    infos = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        kind, optional, part = _kind_of(hints[f.name])
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        infos.append(FieldInfo(f.name, kind, optional, required, f.metadata.get("spec", Spec()),
                               part))
    SCHEMAS[cls] = tuple(infos)
    return cls


# --------------------------------------------------------------------------- codec


def _fail(message: str, field_name: str | None, code: ErrorCode = ErrorCode.INVALID_FIELD) -> None:
    raise ProtocolError(message, code=code, field=field_name)


def _check_value(info: FieldInfo, value: Any, path: str) -> Any:
    s = info.spec
    if value is None:
        if info.optional:
            return None
        _fail(f"{path} must not be null", path)
    kind = info.kind
    if kind == "str":
        if not isinstance(value, str):
            _fail(f"{path} must be a string", path)
        if not is_text(value):
            _fail(f"{path} must be Unicode text without NUL or lone surrogates", path)
        _check_len(value, s, path)
        if s.choices is not None and value not in s.choices:
            _fail(f"{path} must be one of {', '.join(s.choices)}", path)
        if s.pattern is not None and not re.fullmatch(s.pattern, value):
            _fail(f"{path} must be {s.shape}" if s.shape else
                  f"{path} has characters or a length it may not have", path)
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(f"{path} must be an integer", path)
        if not -MAX_INT <= value <= MAX_INT:
            _fail(f"{path} is out of range (at most {MAX_INT} either way)", path)
        if s.minimum is not None and value < s.minimum:
            _fail(f"{path} must be at least {s.minimum}", path)
        if s.maximum is not None and value > s.maximum:
            _fail(f"{path} must be at most {s.maximum}", path)
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            _fail(f"{path} must be a number", path)
        # An integer past MAX_INT may not even convert (OverflowError); 1e999 parses as inf.
        if isinstance(value, int) and not -MAX_INT <= value <= MAX_INT:
            _fail(f"{path} is out of range (at most {MAX_INT} either way)", path)
        if not math.isfinite(value):
            _fail(f"{path} must be a finite number", path)
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            _fail(f"{path} must be true or false", path)
        return value
    if kind == "bytes":
        if not isinstance(value, str):
            _fail(f"{path} must be a base64 string", path)
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            _fail(f"{path} is not valid base64", path)
    if kind == "strmap":
        # Names and values are text (any Unicode but NUL and lone surrogates); a name is not
        # empty. The bounds keep a status small and every store column able to hold it.
        if not isinstance(value, Mapping):
            _fail(f"{path} must be an object of names to strings", path)
        if s.max_len is not None and len(value) > s.max_len:
            _fail(f"{path} must have at most {s.max_len} entries, it has {len(value)}", path)
        out: dict[str, str] = {}
        for name, item in value.items():
            where = f"{path}[{json.dumps(printable(str(name)))}]"
            if not isinstance(name, str) or not name or not is_text(name):
                _fail(f"{path} has a name that is empty or not Unicode text without NUL", path)
            if not isinstance(item, str) or not is_text(item):
                _fail(f"{where} must be Unicode text without NUL or lone surrogates", where)
            limit = s.item_max_len
            if limit is not None and (len(name) > limit or len(item) > limit):
                _fail(f"{where}: names and values have at most {limit} characters", where)
            out[name] = item
        return out
    if kind in ("strs", "parts"):
        if not isinstance(value, list):
            _fail(f"{path} must be a list", path)
        _check_len(value, s, path)
        if kind == "strs":
            item = dataclasses.replace(info, kind="str", optional=False,
                                       spec=Spec(pattern=_ID_RE))
            return tuple(_check_value(item, v, f"{path}[{i}]") for i, v in enumerate(value))
        assert info.part is not None
        part = info.part
        return tuple(from_object(part, v, f"{path}[{i}].") for i, v in enumerate(value))
    raise AssertionError(kind)  # pragma: no cover - the schema builder refuses other kinds


def is_text(value: str) -> bool:
    """No NUL (PostgreSQL's text cannot hold it) and no lone surrogate (UTF-8 cannot)."""
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(value: str) -> str:
    """``value`` with any NUL or lone surrogate replaced: text any peer can encode and show."""
    if is_text(value):
        return value
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def refuse_constant(token: str) -> Any:
    raise ProtocolError(f"{token} is not a JSON number", code=ErrorCode.BAD_REQUEST)


def _check_len(value: Any, s: Spec, path: str) -> None:
    unit = "item(s)" if isinstance(value, list) else "character(s)"
    if s.min_len is not None and len(value) < s.min_len:
        _fail(f"{path} must have at least {s.min_len} {unit}", path)
    if s.max_len is not None and len(value) > s.max_len:
        _fail(f"{path} must have at most {s.max_len} {unit}", path)


def from_object(cls: type[M], obj: Any, prefix: str = "") -> M:
    if not isinstance(obj, Mapping):
        _fail(f"{prefix.rstrip('.') or 'message'} must be an object", prefix.rstrip(".") or None)
    values: dict[str, Any] = {}
    for info in SCHEMAS[cls]:
        path = prefix + info.name
        if info.name not in obj:
            if info.required:
                _fail(f"{path} is required", path)
            continue
        values[info.name] = _check_value(info, obj[info.name], path)
    return cls(**values)


def to_object(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for info in SCHEMAS[type(msg)]:
        value = getattr(msg, info.name)
        if info.kind == "bytes" and value is not None:
            value = base64.b64encode(value).decode("ascii")
        elif info.kind == "parts" and value is not None:
            value = [to_object(p) for p in value]
        elif info.kind == "strs" and value is not None:
            value = list(value)
        elif info.kind == "strmap" and value is not None:
            value = dict(value)
        out[info.name] = value
    return out


def validate(msg: M) -> M:
    """Check a message built in code against its schema (raises ProtocolError)."""
    obj = json.loads(json.dumps(to_object(msg)))
    from_object(type(msg), obj)
    return msg

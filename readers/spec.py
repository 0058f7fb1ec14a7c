"""Reader spec strings: one line of config (or a CLI argument) that names a reader.

``scheme:TARGET?key=value&...``, in the spirit of nfcpy's ``tty:USB0:pn532`` paths. Today:

``serial:PORT?family=em4100&baud=9600&lockout=2``
    PORT is a device path (``/dev/ttyUSB0``, ``/dev/serial/by-id/...``, a pty such as
    ``/dev/pts/3``) or a pyserial URL (``loop://``). Everything after the *first* ``?`` is
    ours, so pyserial URL options cannot be passed through (none is needed yet).
    ``family`` (default ``em4100``), ``baud`` (default 9600), ``lockout`` (seconds a held
    card is ignored, default 2) and ``id`` (the reader id, default the spec itself).

``pcsc:``, ``osdp:``, ``replay:`` and ``sim:`` are reserved for adapters still to come. Every
mistake is a :class:`ConfigError` that names the offending part, checked here, before any
port is opened.
"""

from __future__ import annotations

import math
from urllib.parse import parse_qsl

from protocol.errors import ConfigError
from readers.events import CardReader
from readers.serial_reader import SERIAL_FAMILIES, SerialCardReader

__all__ = ["PLANNED_SCHEMES", "SCHEMES", "open_reader"]

SCHEMES = ("serial",)
PLANNED_SCHEMES = ("pcsc", "osdp", "replay", "sim")

_SERIAL_PARAMS = ("family", "baud", "lockout", "id")
_EXAMPLE = "serial:/dev/ttyUSB0?family=em4100"


def open_reader(spec: str, *, reader_id: str | None = None) -> CardReader:
    """Build (but do not start) the reader ``spec`` names.

    ``reader_id`` overrides the spec's ``id=``; with neither, the spec string is the id, which
    is unique per machine and tells a technician which wire it is.
    """
    scheme, sep, rest = spec.partition(":")
    scheme = scheme.strip().lower()
    if not sep or not scheme:
        raise ConfigError(f"reader spec {spec!r} has no scheme; expected e.g. {_EXAMPLE!r}")
    if scheme in PLANNED_SCHEMES:
        raise ConfigError(f"reader scheme {scheme!r} is not supported yet; supported: "
                          + ", ".join(SCHEMES))
    if scheme != "serial":
        raise ConfigError(f"unknown reader scheme {scheme!r} in spec {spec!r}; supported: "
                          + ", ".join(SCHEMES))
    return _open_serial(spec, rest, reader_id)


def _open_serial(spec: str, rest: str, reader_id: str | None) -> SerialCardReader:
    port, _, query = rest.partition("?")
    if not port:
        raise ConfigError(f"reader spec {spec!r} names no port; expected e.g. {_EXAMPLE!r}")
    params = _parse_query(spec, query)
    family = params.get("family", "em4100")
    if family not in SERIAL_FAMILIES:
        raise ConfigError(f"reader spec parameter 'family': unknown family {family!r}; "
                          "known families: " + ", ".join(sorted(SERIAL_FAMILIES)))
    baud = _positive_int(params, "baud", 9600)
    lockout = _non_negative_float(params, "lockout", 2.0)
    rid = reader_id or params.get("id") or spec
    return SerialCardReader(port, reader_id=rid, family=family, baud=baud, lockout_s=lockout)


def _parse_query(spec: str, query: str) -> dict[str, str]:
    if not query:
        return {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise ConfigError(f"reader spec {spec!r}: cannot parse parameters {query!r} "
                          "(expected key=value&key=value)") from exc
    params: dict[str, str] = {}
    for key, value in pairs:
        if key not in _SERIAL_PARAMS:
            raise ConfigError(f"reader spec parameter {key!r} is not known for serial readers; "
                              "known: " + ", ".join(_SERIAL_PARAMS))
        if key in params:
            raise ConfigError(f"reader spec parameter {key!r} is given twice")
        params[key] = value
    return params


def _positive_int(params: dict[str, str], key: str, default: int) -> int:
    text = params.get(key)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"reader spec parameter {key!r} must be a positive integer, "
                          f"got {text!r}")
    return value


def _non_negative_float(params: dict[str, str], key: str, default: float) -> float:
    text = params.get(key)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"reader spec parameter {key!r} must be a number of seconds >= 0, "
                          f"got {text!r}")
    return value

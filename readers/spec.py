"""Reader spec strings: one line of config (or a CLI argument) that names a reader.

``scheme:TARGET?key=value&...``, in the spirit of nfcpy's ``tty:USB0:pn532`` paths. The scheme
picks the backend module; the module parses its own TARGET and parameters:

``serial:PORT?family=em4100&baud=9600&lockout=2``  (readers.adapters.serial_reader)
    PORT is a device path (``/dev/ttyUSB0``, ``/dev/serial/by-id/...``, a pty such as
    ``/dev/pts/3``) or a pyserial URL (``loop://``). Everything after the *first* ``?`` is
    ours, so pyserial URL options cannot be passed through (none is needed yet).
    ``family`` (default ``em4100``), ``baud`` (default 9600), ``lockout`` (seconds a held
    card is ignored, default 2) and ``id`` (the reader id, default the spec itself).

``replay:FILE?speed=1&loop=0&id=NAME``  (readers.record.replay)
    plays a recording (readers.record.recording) back through the same codecs as the live reader.

``sim:NAME?lockout=2&id=ID``  (readers.adapters.sim_reader)
    an in-process simulated reader, driven by ``get_sim_reader(NAME).present(number)``.

Every scheme also takes ``pipeline=STEPS`` (readers.numbers.convert, e.g.
``reverse-bytes|hex2dec``; percent-encode ``&`` ``=`` ``#`` inside a step): the reader's
numbers are converted to the canonical card number before anyone sees them
(readers.numbers.converting).

``pcsc:`` and ``osdp:`` are described in their modules. Backends registered in
:data:`readers.adapters.BACKENDS` whose module is not there are refused as "not supported
yet". Every mistake is a
:class:`ConfigError` that names the offending part, checked before any port is opened. An
error that quotes a spec quotes it through :func:`redact_spec`: a spec may carry a key
(``osdp:...&scbk=``), and a malformed one is exactly the spec an error quotes whole, which
then goes to the log and, for a pushed config, to the cloud.

A backend module provides ``SPEC_PARAMS`` (the parameter names it takes) and
``open_spec(spec, target, params, reader_id) -> CardReader``; the helpers below parse values.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Callable
from urllib.parse import parse_qsl, unquote

from protocol.errors import ConfigError
from protocol.redact import redact
from readers.adapters import BACKENDS
from readers.events import CardReader

__all__ = ["BACKENDS", "check_spec", "non_negative_float", "open_reader", "parse_params",
           "positive_int", "redact_spec", "supported_schemes"]

#: The one redaction for reader specs (and any text quoting one): secret-looking parameter
#: values and long hex runs masked (protocol.redact).
redact_spec = redact


_EXAMPLE = "serial:/dev/ttyUSB0?family=em4100"


def supported_schemes() -> list[str]:
    """The schemes whose backend module is present in this installation."""
    return [s for s, mod in BACKENDS.items() if importlib.util.find_spec(mod) is not None]


def open_reader(spec: str, *, reader_id: str | None = None,
                on_raw: Callable[[bytes, float], None] | None = None) -> CardReader:
    """Build (but do not start) the reader ``spec`` names.

    ``reader_id`` overrides the spec's ``id=``; with neither, the spec string is the id, which
    is unique per machine and tells a technician which wire it is.
    """
    try:
        return _open_reader(spec, reader_id, on_raw)
    except ConfigError as exc:
        # Every message is redacted at its source; this net catches one that is not (a
        # backend's or a library's message quoting a value), as the key must never get out.
        exc.message = redact_spec(exc.message)
        exc.args = (exc.message,)
        raise


def _open_reader(spec: str, reader_id: str | None,
                 on_raw: Callable[[bytes, float], None] | None) -> CardReader:
    scheme, sep, rest = spec.partition(":")
    scheme = scheme.strip().lower()
    if not sep or not scheme:
        raise ConfigError(f"reader spec {redact_spec(spec)!r} has no scheme; expected e.g. "
                          f"{_EXAMPLE!r}")
    module_name = BACKENDS.get(scheme)
    if module_name is None:
        raise ConfigError(f"unknown reader scheme {redact_spec(scheme)!r} in spec "
                          f"{redact_spec(spec)!r}; supported: " + ", ".join(supported_schemes()))
    if importlib.util.find_spec(module_name) is None:
        raise ConfigError(f"reader scheme {scheme!r} is not supported yet; supported: "
                          + ", ".join(supported_schemes()))
    backend = importlib.import_module(module_name)
    target, _, query = rest.partition("?")
    pipeline_text, query = _take(spec, query, "pipeline")
    params = parse_params(spec, query, tuple(backend.SPEC_PARAMS), scheme)
    reader: CardReader = backend.open_spec(spec, target, params, reader_id)
    if on_raw is not None:
        tap = getattr(reader, "tap_raw", None)
        if tap is None:
            raise ConfigError(f"reader spec {redact_spec(spec)!r}: only serial readers have "
                              "a raw byte stream to record")
        tap(on_raw)
    if pipeline_text is not None:
        from readers.numbers.convert import Pipeline
        from readers.numbers.converting import ConvertingReader

        reader = ConvertingReader(reader, Pipeline.parse(pipeline_text))
    return reader


#: Schemes whose spec names a file on the device itself (a recording): away from the device
#: (the cloud checking a config before it pushes it) only their syntax can be checked.
_DEVICE_FILES = ("replay",)


def check_spec(spec: str, *, here: bool = True) -> None:
    """Validate ``spec`` as :func:`open_reader` does, opening nothing. ``here=False``: the spec
    is for another machine, so a file it names is not looked for on this one."""
    scheme = spec.partition(":")[0].strip().lower()
    if here or scheme not in _DEVICE_FILES:
        open_reader(spec)
        return
    try:
        target, _, query = spec.partition(":")[2].partition("?")
        pipeline_text, query = _take(spec, query, "pipeline")
        backend = importlib.import_module(BACKENDS[scheme])
        parse_params(spec, query, tuple(backend.SPEC_PARAMS), scheme)
        if not target:
            raise ConfigError(f"reader spec {redact_spec(spec)!r} names no file")
        if pipeline_text is not None:
            from readers.numbers.convert import Pipeline

            Pipeline.parse(pipeline_text)
    except ConfigError as exc:
        exc.message = redact_spec(exc.message)
        exc.args = (exc.message,)
        raise


def _take(spec: str, query: str, key: str) -> tuple[str | None, str]:
    """Remove ``key=value`` (a parameter every scheme takes) from a query string."""
    found: str | None = None
    kept: list[str] = []
    for part in query.split("&") if query else []:
        name, _, value = part.partition("=")
        if name == key:
            if found is not None:
                raise ConfigError(f"reader spec parameter {key!r} is given twice")
            found = unquote(value)
        else:
            kept.append(part)
    return found, "&".join(kept)


def parse_params(spec: str, query: str, allowed: tuple[str, ...],
                 scheme: str = "this") -> dict[str, str]:
    if not query:
        return {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        # Not chained: the library's message quotes the query, key included.
        raise ConfigError(f"reader spec {redact_spec(spec)!r}: cannot parse parameters "
                          f"{redact_spec(query)!r} (expected name=value&name=value)") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            raise ConfigError(f"reader spec parameter {redact_spec(key)!r} is not known for "
                              f"{scheme} readers; known: " + ", ".join(allowed))
        if key in params:
            raise ConfigError(f"reader spec parameter {key!r} is given twice")
        params[key] = value
    return params


def positive_int(params: dict[str, str], key: str, default: int) -> int:
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


def non_negative_float(params: dict[str, str], key: str, default: float) -> float:
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

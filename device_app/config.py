"""The device's configuration: validated once, with the offending key named.

Two sources, one schema. ``device.toml`` on the panel holds where the cloud is and what hardware
the device has; the cloud may push the *managed* part (readers and their conversion pipelines,
login/logout/release policy, timeouts) at any time over ``.../cmd`` (a ``config`` command). A
pushed config is validated exactly like the file; an invalid push is refused with the reason
and the running configuration stays.

The print engine has no default: a copier whose file names none would print into the
emulator while the cloud marks its jobs printed. ``device.toml`` must say ``[engine] kind``:
``ipp`` (with ``uri``), ``socket``, or, for a bench device that prints nothing, ``emulator``.

``[broker] url`` is one broker URL or a list of them, tried in order, the first the primary
(the device fails over to the next and comes back: mqtt_client/failover.py). The first is
``broker_url``, the others ``broker_fallbacks``; a list of one is the same as the string.

``[offline] cloud_key`` is the cloud's public key for offline bundles (protocol/offline.py);
a device without one has no offline mode, whatever the policy says (device_app/offline/).

Pure: parsing and validation only (``tomllib`` to read the file text, ``tomli_w`` to write it:
JSON quoting is not TOML quoting). Secrets are not here: the broker password lives in its own
file, readable by the device's user only (:func:`load_credentials` /
:func:`save_credentials`).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomli_w

from mqtt_client.endpoint import SCHEMES
from protocol.errors import ConfigError, MfdError
from protocol.managed import (
    MANAGED,
    POLICY_TYPES,
    Policy,
    parse_policy,
    parse_reader_specs,
)
from protocol.managed import expect as _expect
from protocol.managed import table as _table
from protocol.offline import OfflineError, parse_public_key
from protocol.redact import redact
from protocol.topics import check_device_id

__all__ = ["MANAGED", "DeviceConfig", "EngineConfig", "Policy", "UiConfig", "apply_push",
           "broker_url_key", "check_engine", "engine_choice", "load_config",
           "load_credentials", "parse_broker_urls", "parse_config",
           "resolve_paths", "save_credentials", "to_toml", "write_private"]

#: "ipp" (a printer by IPP), "socket" (an engine server), "emulator" (prints nothing).
ENGINE_KINDS = ("ipp", "socket", "emulator")
#: URI schemes of an IPP printer (``--engine`` takes one of these URIs for kind "ipp").
IPP_SCHEMES = ("ipp://", "ipps://", "http://", "https://")
_ENGINE_REQUIRED = ("config key 'engine.kind' is required: name the print engine, e.g. "
                    "[engine] kind = \"ipp\", uri = \"ipp://PRINTER/ipp/print\" (or kind = "
                    "\"emulator\" on a bench: released jobs then print nowhere)")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    kind: str = ""  # one of ENGINE_KINDS; "" only before a config names one
    uri: str = ""  # ipp://host:631/ipp/print, or the engine server's socket path

    @property
    def emulated(self) -> bool:
        return self.kind == "emulator"


def engine_choice(text: str) -> EngineConfig:
    """The engine from a command line's ``--engine``: an IPP printer URI, ``socket:PATH``, or
    ``emulator`` (said explicitly: a copier must never fall back to it)."""
    text = text.strip()
    if text == "emulator":
        return EngineConfig("emulator")
    if text.lower().startswith(IPP_SCHEMES) and len(text.split("://", 1)[1]) > 0:
        return EngineConfig("ipp", text)
    if text.startswith("socket:") and len(text) > len("socket:"):
        return EngineConfig("socket", text[len("socket:"):])
    raise ConfigError(f"--engine {redact(text)!r}: give the printer's URI "
                      "(ipp://PRINTER/ipp/print), socket:PATH, or emulator (prints nothing)")


#: ``ui.orientation``: the layout family; "auto" follows the screen's own aspect.
ORIENTATIONS = ("landscape", "portrait", "auto")
_SIZE = re.compile(r"([0-9]{3,5})x([0-9]{3,5})")
# BCP-47 as far as a panel needs it: a language, then subtags (script, region, variant).
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")


@dataclass(frozen=True, slots=True)
class UiConfig:
    """How the panel is shown: ``[ui]`` of device.toml (``fullscreen`` stays on DeviceConfig).

    ``size`` is the window (full screen takes the display's own size); ``scale`` multiplies
    text and controls (None: from ``dpi``, else from the screen's size); ``dpi`` is the
    glass's pixel density, which sets the 9 mm touch-target floor; ``language`` a BCP-47 tag
    ("" for the built-in English)."""

    size: tuple[int, int] = (800, 480)
    scale: float | None = None
    orientation: str = "auto"
    dpi: float | None = None
    language: str = ""


def parse_ui(ui: dict[str, Any], base: UiConfig) -> UiConfig:
    """``[ui]`` keys other than ``fullscreen`` on top of ``base``; ConfigError names the key."""
    cfg = base
    if "size" in ui:
        text = _expect(ui["size"], str, "ui.size")
        match = _SIZE.fullmatch(text.strip().lower())
        if match is None:
            raise ConfigError(f"config key 'ui.size' = {text!r} must be WIDTHxHEIGHT in "
                              "pixels, e.g. \"1280x800\"")
        size = (int(match[1]), int(match[2]))
        if not all(200 <= n <= 8192 for n in size):
            raise ConfigError(f"config key 'ui.size' = {text!r}: each side must be "
                              "200 to 8192 pixels")
        cfg = replace(cfg, size=size)
    if "scale" in ui:
        cfg = replace(cfg, scale=_in_range(ui["scale"], "ui.scale", 0.25, 8,
                                           "1 is the 800x480 design"))
    if "dpi" in ui:
        cfg = replace(cfg, dpi=_in_range(ui["dpi"], "ui.dpi", 50, 1000,
                                         "a 7-inch 800x480 panel is about 133"))
    if "orientation" in ui:
        orientation = _expect(ui["orientation"], str, "ui.orientation")
        if orientation not in ORIENTATIONS:
            raise ConfigError("config key 'ui.orientation' must be " + ", ".join(ORIENTATIONS))
        cfg = replace(cfg, orientation=orientation)
    if "language" in ui:
        language = _expect(ui["language"], str, "ui.language")
        if language and _LANGUAGE.fullmatch(language) is None:
            raise ConfigError(f"config key 'ui.language' = {language!r} must be a BCP-47 tag "
                              "such as \"de\", \"ja\" or \"pt-BR\"")
        cfg = replace(cfg, language=language)
    return cfg


def _in_range(value: Any, key: str, low: float, high: float, hint: str) -> float:
    """``value`` as a number from ``low`` to ``high``; ConfigError names ``key`` and gives
    ``hint`` (what a usual value is) otherwise."""
    number = _number(value, key)
    if not low <= number <= high:
        raise ConfigError(f"config key {key!r} = {number} must be {low:g} to {high:g} ({hint})")
    return number


def _number(value: Any, key: str) -> float:
    # TOML writes 2 and 2.0 differently; both mean the same here. A bool is not a number.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"config key {key!r} must be a number")
    return float(value)


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    device_id: str
    name: str = ""
    broker_url: str = "mqtt://127.0.0.1:1883"  # the primary broker
    #: The brokers after the primary, in the order the device fails over to them.
    broker_fallbacks: tuple[str, ...] = ()
    ca_file: str = ""  # TLS: the CA that signed the brokers' certificates (mqtts:// URLs)
    credentials_file: str = "credentials"
    journal_file: str = "journal.db"
    readers: tuple[str, ...] = ()
    policy: Policy = field(default_factory=Policy)
    engine: EngineConfig = field(default_factory=EngineConfig)
    fullscreen: bool = True
    ui: UiConfig = field(default_factory=UiConfig)
    version: int = 0  # the version of the last pushed config applied (0: the file's own)
    #: ``[offline] cloud_key``: the cloud's public key that signs this device's offline bundles
    #: (protocol/offline.py, ``ed25519:<base64>``); "" (the default): no offline mode at all.
    offline_key: str = ""

    @property
    def broker_urls(self) -> tuple[str, ...]:
        """Every broker, the primary first."""
        return (self.broker_url, *self.broker_fallbacks)

    def managed(self) -> dict[str, Any]:
        """The part the cloud manages, as plain data (for acknowledging a push)."""
        return {"readers": {"specs": list(self.readers)},
                "policy": {f.name: getattr(self.policy, f.name) for f in fields(Policy)}}


def _readers(value: Any, here: bool) -> tuple[str, ...]:
    from readers.spec import check_spec

    return parse_reader_specs(value, lambda spec: check_spec(spec, here=here))


def check_engine(engine: EngineConfig) -> EngineConfig:
    """An engine choice that names a kind this device knows, with the URI it needs."""
    kind, uri = engine.kind, engine.uri
    if kind == "stub":
        # What `mfd device register` wrote before it asked: never chosen by anyone.
        raise ConfigError("config key 'engine.kind' = \"stub\" is the emulated engine, "
                          "which prints nothing; name the printer (kind = \"ipp\", uri = "
                          "\"ipp://PRINTER/ipp/print\"), or say kind = \"emulator\" on "
                          "a bench")
    if not kind:
        raise ConfigError(_ENGINE_REQUIRED)
    if kind not in ENGINE_KINDS:
        raise ConfigError("config key 'engine.kind' must be " + ", ".join(ENGINE_KINDS))
    if kind != "emulator" and not uri:
        raise ConfigError(f"config key 'engine.uri' is required for engine.kind {kind!r}")
    return engine


def parse_config(data: dict[str, Any], base: DeviceConfig | None = None, *,
                 here: bool = True) -> DeviceConfig:
    """A config from parsed TOML/JSON data, on top of ``base`` (a push changes only what it
    names). Raises ConfigError naming the first bad key. ``here=False``: checked away from the
    device (the cloud, before it stores a push), so files a reader spec names are not looked
    for."""
    top = {"device", "broker", "readers", "policy", "engine", "ui", "files", "version",
           "offline"}
    unknown = sorted(set(data) - top)
    if unknown:
        raise ConfigError(f"config key {unknown[0]!r} is not known; known: "
                          + ", ".join(sorted(top)))
    device = _table(data, "device", {"id", "name"})
    broker = _table(data, "broker", {"url", "ca_file"})
    readers = _table(data, "readers", {"specs"})
    policy = _table(data, "policy", set(POLICY_TYPES))
    engine = _table(data, "engine", {"kind", "uri"})
    ui = _table(data, "ui", {"fullscreen", "size", "scale", "orientation", "dpi", "language"})
    files = _table(data, "files", {"credentials", "journal"})
    offline = _table(data, "offline", {"cloud_key"})
    if base is None:
        if "id" not in device:
            raise ConfigError("config key 'device.id' is required")
        device_id = _expect(device["id"], str, "device.id")
        try:
            check_device_id(device_id)
        except MfdError as exc:
            raise ConfigError(f"config key 'device.id': {exc.message}") from None
        base = DeviceConfig(device_id=device_id)
    elif "id" in device and device["id"] != base.device_id:
        raise ConfigError("config key 'device.id' cannot change in a pushed config")
    cfg = base
    if "name" in device:
        cfg = replace(cfg, name=_expect(device["name"], str, "device.name"))
    if "url" in broker:
        urls = parse_broker_urls(broker["url"])
        cfg = replace(cfg, broker_url=urls[0], broker_fallbacks=urls[1:])
    if "ca_file" in broker:
        cfg = replace(cfg, ca_file=_expect(broker["ca_file"], str, "broker.ca_file"))
    if "specs" in readers:
        cfg = replace(cfg, readers=_readers(readers["specs"], here))
    if policy:
        cfg = replace(cfg, policy=parse_policy(policy, cfg.policy))
    if engine:
        kind = _expect(engine.get("kind", cfg.engine.kind), str, "engine.kind")
        uri = _expect(engine.get("uri", cfg.engine.uri), str, "engine.uri")
        cfg = replace(cfg, engine=check_engine(EngineConfig(kind, uri)))
    if "fullscreen" in ui:
        cfg = replace(cfg, fullscreen=_expect(ui["fullscreen"], bool, "ui.fullscreen"))
    if set(ui) - {"fullscreen"}:
        cfg = replace(cfg, ui=parse_ui(ui, cfg.ui))
    if "credentials" in files:
        cfg = replace(cfg, credentials_file=_expect(files["credentials"], str,
                                                    "files.credentials"))
    if "journal" in files:
        cfg = replace(cfg, journal_file=_expect(files["journal"], str, "files.journal"))
    if "version" in data:
        cfg = replace(cfg, version=_expect(data["version"], int, "version"))
    if "cloud_key" in offline:
        cfg = replace(cfg, offline_key=_offline_key(offline["cloud_key"]))
    return cfg


def _offline_key(value: Any) -> str:
    """``[offline] cloud_key``: "" (no offline mode) or a key protocol/offline.py can use."""
    key = str(_expect(value, str, "offline.cloud_key"))
    if key:
        try:
            parse_public_key(key)
        except OfflineError as exc:
            raise ConfigError(f"config key 'offline.cloud_key': {exc.message}") from None
    return key


def parse_broker_urls(value: Any, key: str = "broker.url") -> tuple[str, ...]:
    """``[broker] url``: one URL, or a non-empty list of them, each a string starting with
    mqtt:// or mqtts:// (the offending one named by its place, ``broker.url[1]``), and no
    broker twice (``mqtt://h`` and ``mqtt://h:1883`` are the same one). The rest of each URL
    (host, port) is checked when the device builds its link from it (device_app/runner.py), by
    :func:`mqtt_client.endpoint.check_broker_url`, naming the same key: device.toml keeps
    whatever text it was given, as it always did."""
    if isinstance(value, str):
        return (_scheme(value, key),)
    if not isinstance(value, list):
        raise ConfigError(f"config key {key!r} must be a broker URL or a list of them, e.g. "
                          "[\"mqtts://broker-a:8883\", \"mqtts://broker-b:8883\"]")
    if not value:
        raise ConfigError(f"config key {key!r} is an empty list: name at least one broker")
    seen: dict[tuple[str, str, int | str], int] = {}
    for i, url in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(url, str):
            raise ConfigError(f"config key {where!r} must be a string (a broker URL)")
        _scheme(url, where)
        same = _broker_identity(url)
        if same in seen:
            raise ConfigError(f"config key {where!r} = {redact(url)!r} names the broker of "
                              f"{key}[{seen[same]}] again: list each broker once")
        seen[same] = i
    return tuple(value)


def broker_url_key(cfg: DeviceConfig, index: int) -> str:
    """The config key of the ``index``-th broker, as errors name it."""
    return "broker.url" if not cfg.broker_fallbacks else f"broker.url[{index}]"


def _scheme(url: str, key: str) -> str:
    if not url.startswith(SCHEMES):
        raise ConfigError(f"config key {key!r} = {redact(url)!r} must start with mqtt:// or "
                          "mqtts://")
    return url


def _broker_identity(url: str) -> tuple[str, str, int | str]:
    # Which broker a URL names, to find one listed twice; a URL too broken to say is only
    # the same as the same text (and refused when the link is built from it).
    scheme, rest = url.split("://", 1)
    try:
        parts = urlsplit("mqtt://" + rest)
        port: int | str = parts.port or (8883 if scheme == "mqtts" else 1883)
    except ValueError:
        return scheme, rest, ""
    return scheme, (parts.hostname or "").lower(), port


def load_config(path: str | Path) -> DeviceConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}") from None
    cfg = parse_config(data)
    if not cfg.engine.kind:
        raise ConfigError(f"{_ENGINE_REQUIRED} (in {path})")
    return resolve_paths(cfg, path.parent)


def resolve_paths(cfg: DeviceConfig, base: str | Path) -> DeviceConfig:
    """``cfg`` with every relative file path in it made relative to ``base``, the folder of the
    device.toml that names it: the CA file, the credentials, the journal and an engine socket.
    Taken as written, they would be looked for in whatever folder the service was started
    from, and a device started elsewhere would not find its CA. Absolute paths stay as they
    are; an empty ``ca_file`` (the system CAs) stays empty."""
    base = Path(base)

    def anchored(name: str) -> str:
        return name if not name or Path(name).is_absolute() else str(base / name)

    engine = cfg.engine
    if engine.kind == "socket":  # the engine server's Unix socket: a file path too
        engine = replace(engine, uri=anchored(engine.uri))
    # (base / an absolute path is that path.)
    return replace(cfg, ca_file=anchored(cfg.ca_file),
                   credentials_file=str(base / cfg.credentials_file),
                   journal_file=str(base / cfg.journal_file), engine=engine)


def apply_push(current: DeviceConfig, payload: bytes) -> DeviceConfig:
    """A pushed config (JSON: {"version": N, "readers": {...}, "policy": {...}}) on top of the
    running one. Only the managed sections may be pushed."""
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"pushed config is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("pushed config must be an object")
    # The contract's envelope: {"v": 1, "type": "config", ...}.
    if data.pop("v", 1) != 1 or data.pop("type", "config") != "config":
        raise ConfigError("pushed command is not a v1 config")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError("pushed config needs a positive integer 'version'")
    if version <= current.version:
        raise ConfigError(f"pushed config version {version} is not newer than {current.version}")
    extra = sorted(set(data) - {"version", *MANAGED})
    if extra:
        raise ConfigError(f"config key {extra[0]!r} cannot be pushed; the cloud manages "
                          + ", ".join(MANAGED))
    return parse_config(data, current)


def to_toml(cfg: DeviceConfig) -> str:
    """device.toml text for a config (what `mfd device register` writes). A TOML writer
    quotes every string so that tomllib reads it back (JSON quoting does not: a DEL
    character, for one)."""
    broker: dict[str, Any] = {"url": list(cfg.broker_urls) if cfg.broker_fallbacks
                              else cfg.broker_url}
    if cfg.ca_file:
        broker["ca_file"] = cfg.ca_file
    data: dict[str, Any] = {
        "device": {"id": cfg.device_id, "name": cfg.name},
        "broker": broker,
        "readers": {"specs": list(cfg.readers)},
        "engine": {"kind": cfg.engine.kind, "uri": cfg.engine.uri},
        "ui": _ui_table(cfg),
        "files": {"credentials": Path(cfg.credentials_file).name,
                  "journal": Path(cfg.journal_file).name},
    }
    # Only what differs from the defaults: a policy written in full would read as chosen.
    policy = {f.name: getattr(cfg.policy, f.name) for f in fields(Policy)
              if getattr(cfg.policy, f.name) != getattr(Policy(), f.name)}
    if policy:
        data["policy"] = policy
    if cfg.offline_key:
        data["offline"] = {"cloud_key": cfg.offline_key}
    return ("# mfdkit device configuration (see docs/technician-guide.md)\n\n"
            + tomli_w.dumps(data))


def _ui_table(cfg: DeviceConfig) -> dict[str, Any]:
    ui = cfg.ui
    table: dict[str, Any] = {"fullscreen": cfg.fullscreen,
                             "size": f"{ui.size[0]}x{ui.size[1]}",
                             "orientation": ui.orientation}
    # TOML has no null: an automatic scale or an unknown density is simply not written.
    if ui.scale is not None:
        table["scale"] = ui.scale
    if ui.dpi is not None:
        table["dpi"] = ui.dpi
    if ui.language:
        table["language"] = ui.language
    return table


def write_private(path: str | Path, text: str) -> None:
    """A file only the device's user may read (credentials; reader specs may carry an OSDP
    key), replaced atomically so a power cut never leaves half of it."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)  # also when a stale temporary file had looser permissions
    os.replace(tmp, path)


def save_credentials(path: str | Path, username: str, password: str) -> None:
    """The broker credentials, readable and writable by the device's user only."""
    write_private(path, json.dumps({"username": username, "password": password}) + "\n")


def load_credentials(path: str | Path) -> tuple[str, str]:
    path = Path(path)
    try:
        mode = path.stat().st_mode
        if mode & 0o077:
            raise ConfigError(f"credentials file {path} is readable by others (mode "
                              f"{mode & 0o777:o}); run: chmod 600 {path}")
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read credentials {path}: {exc.strerror}; register the "
                          "device with: mfd device register --code CODE") from None
    except ValueError:
        raise ConfigError(f"credentials file {path} is damaged; register the device again"
                          ) from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str)
                                             for k in ("username", "password")):
        raise ConfigError(f"credentials file {path} is damaged; register the device again")
    return data["username"], data["password"]

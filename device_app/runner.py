"""The device as it runs on a copier: built from its configuration, kept in step with the cloud.

``Device`` is the composition root: it opens the readers the config names, the print engine,
the MQTT link (TLS for ``mqtts://``; with ``[broker] url`` a list, every broker in order, the
link failing over between them), and the app; and it applies configuration pushed by the
cloud on ``.../cmd`` live (policy at once; readers reopened when their specs change),
acknowledging each version on ``.../events``. An invalid push is refused with the reason and the
running configuration stays. The managed part of the last applied push is kept next to the
config file (``managed.json``), so a restart keeps it until the cloud sends a newer one.

``register`` is the other half of ``mfd device register``: it trades a one-time registration
code at the portal for the device's broker credentials and configuration, and writes them.

The print engine is never a default: the config names it and the engine registry
(device_app/engines/registry.py) opens it; a device on the emulated engine (``kind =
"emulator"``, which prints nothing while the cloud marks jobs printed, and which only the
programs that ship the emulator register) warns at start and reports ``engine: "emulator"`` in
its status.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

from device_app.app import DeviceApp
from device_app.config import (
    MANAGED,
    DeviceConfig,
    EngineConfig,
    apply_push,
    broker_url_key,
    check_engine,
    load_config,
    load_credentials,
    parse_config,
    save_credentials,
    to_toml,
    write_private,
)
from device_app.engines.registry import open_engine
from device_app.link import MqttCloudLink
from device_app.offline.desk import Desk
from device_app.offline.link import OfflineLink
from device_app.offline.store import OfflineStore, path_beside
from device_app.ports import CloudLink, PrintEngine
from device_app.printing.journal import Journal
from device_app.session import events as ev
from mqtt_client.endpoint import endpoint
from mqtt_client.failover import FailoverTiming
from protocol import messages as m
from protocol.errors import ConfigError, MfdError, StoreError
from protocol.managed import Policy
from protocol.offline import parse_public_key
from protocol.redact import redact
from readers.events import CardReader
from readers.spec import open_reader

log = logging.getLogger(__name__)

MANAGED_FILE = "managed.json"


def app_version() -> str:
    """The installed mfdkit's version ("unknown" when run from a tree that is not installed)."""
    try:
        return importlib.metadata.version("mfdkit")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class Device:
    def __init__(self, cfg: DeviceConfig, password: str, *, config_dir: Path | None = None,
                 engine: PrintEngine | None = None,
                 failover: FailoverTiming | None = None) -> None:
        self.config_dir = config_dir
        # What the cloud pushed (only the keys it sent), kept beside the config file: it applies
        # on top of device.toml, so a technician's edit of a key never pushed still counts.
        self._pushed: dict[str, Any] = {}
        # Every push carries the whole managed configuration and applies on top of the file's:
        # a key the cloud no longer sends (mfd admin device-config --unset) goes back to the
        # file's value instead of staying at an old pushed one.
        self._file_cfg = cfg
        self.cfg = self._with_saved_push(cfg)
        # Every broker of [broker] url, in order (mqtts:// without a port means 8883); the
        # link fails over between them (mqtt_client/failover.py).
        brokers = [endpoint(url, self.cfg.device_id, password, ca_file=self.cfg.ca_file,
                            key=broker_url_key(self.cfg, i))
                   for i, url in enumerate(self.cfg.broker_urls)]
        self.link = MqttCloudLink(brokers, self.cfg.device_id, on_command=self._on_command,
                                  failover=failover)
        self.engine = engine or open_engine(self.cfg.engine)
        self.link.engine = self.cfg.engine.kind
        self.link.firmware = self.firmware_versions
        if self.cfg.engine.emulated:
            log.warning("device %s prints on the EMULATED engine (engine.kind = \"emulator\"): "
                        "released jobs are marked printed and no paper comes out",
                        self.cfg.device_id)
        self.readers: tuple[CardReader, ...] = tuple(open_reader(s) for s in self.cfg.readers)
        # The device's memory across power cuts; a damaged one stops start-up (never print
        # blind) with the technician's way out in the message.
        self.journal = Journal.open(self.cfg.journal_file) if config_dir is not None else None
        # Offline mode only where the config names the cloud's key; the policy then decides,
        # live, whether the bundle is synced and used (device_app/offline/).
        self.offline: OfflineLink | None = None
        self.offline_store: OfflineStore | None = None
        app_link: CloudLink = self.link
        if self.cfg.offline_key:
            try:
                self.offline_store = OfflineStore.open(path_beside(self.cfg.journal_file)) \
                    if config_dir is not None else OfflineStore.memory()
            except StoreError as exc:
                # Online the copier works without it: say so, and run without offline mode.
                log.error("offline mode is off: its store cannot be opened (%s)", exc)
        if self.offline_store is not None:
            desk = Desk(self.offline_store, parse_public_key(self.cfg.offline_key),
                        self.cfg.device_id)
            # The running configuration's policy, pushes included (its worker starts before
            # the app exists, so not the app's machine's).
            self.offline = OfflineLink(self.link, desk, policy=lambda: self.cfg.policy)
            app_link = self.offline
        self.app = DeviceApp(app_link, self.engine, readers=self.readers,
                             device_name=self.cfg.name or self.cfg.device_id,
                             policy=self._policy(self.cfg), journal=self.journal)
        if self.offline is not None:
            offline_panel(self.app, self.offline)
        self.app.on_command = self._apply
        # The diagnostics screen shows which pushed version runs (0: the file's own).
        self.app.config_version = lambda: self.cfg.version
        #: The pushed version last refused: the broker hands the retained push over again at
        #: every reconnect, and refusing (and acking, and auditing) it again each time says
        #: nothing new.
        self.refused_version: int | None = None

    def firmware_versions(self) -> dict[str, str]:
        """What the "online" status reports in ``firmware`` (``mfd admin devices`` shows it):
        ``app``, the device app's own version, and ``reader:<id>`` for each reader whose
        adapter knows its firmware's version (a ``firmware_version`` attribute; most readers
        do not tell, and are left out)."""
        out = {"app": app_version()}
        for reader in self.readers:
            version = getattr(reader, "firmware_version", None)
            if isinstance(version, str) and version:
                out[f"reader:{reader.reader_id}"] = version
        return out

    # -------------------------------------------------------------- lifecycle

    def start(self, wait: float = 5.0) -> Device:
        self.link.start(wait)
        self.app.start()
        return self

    def stop(self) -> None:
        self.app.stop()
        if self.offline is not None:
            self.offline.close()  # closes the real link too
        else:
            self.link.close()
        if self.offline_store is not None:
            self.offline_store.close()
        close = getattr(self.engine, "close", None)
        if close is not None:
            close()
        if self.journal is not None:
            self.journal.close()

    # -------------------------------------------------------------- config pushes

    def _on_command(self, payload: bytes) -> None:
        # paho's thread: hand over to the app loop, which applies it between two events.
        self.app.command(payload)

    def _apply(self, payload: bytes) -> None:
        version = _version_of(payload)
        if version is not None and version <= self.cfg.version:
            return  # the retained push we already run (a reconnect delivers it again)
        if version is not None and version == self.refused_version:
            return  # the retained push we already refused, delivered again by a reconnect
        try:
            new = apply_push(replace(self._file_cfg, version=self.cfg.version), payload)
        except ConfigError as exc:
            # Redacted here too: the reason is logged and stored by the cloud, and a reader
            # spec it quotes may carry a key.
            reason = redact(exc.message)
            log.warning("refused pushed config version %s: %s", version, reason)
            self.refused_version = version
            if version is not None:
                self.link.publish_event(m.ConfigAck(version=version, applied=False,
                                                    reason=reason[:500]))
            return
        if new.readers != self.cfg.readers:
            self._swap_readers(new.readers)
        self.app.machine.policy = self._policy(new)
        self.cfg = new
        self._remember(payload)
        try:
            self._save_push()
        except OSError as exc:
            # Applied live all the same: after a restart the broker's retained push brings
            # it back. Refusing a good config over a full disk would help nobody.
            log.error("applied config version %d but could not save it beside device.toml "
                      "(%s); it applies until the next restart, when the cloud sends it again",
                      new.version, exc.strerror or exc)
        log.info("applied config version %d", new.version)
        self.link.publish_event(m.ConfigAck(version=new.version, applied=True))

    @staticmethod
    def _policy(cfg: DeviceConfig) -> Policy:
        """The session's policy: the cloud's, speaking the device's own ``[ui] language``
        where the cloud names none."""
        if cfg.policy.language or not cfg.ui.language:
            return cfg.policy
        return replace(cfg.policy, language=cfg.ui.language)

    def _swap_readers(self, specs: tuple[str, ...]) -> None:
        fresh = tuple(open_reader(s) for s in specs)  # validated already: opens nothing yet
        for reader in self.readers:
            reader.stop()
        self.readers = fresh
        self.app.readers = fresh
        for reader in fresh:
            reader.start(self.app.on_card)

    def _remember(self, payload: bytes) -> None:
        data = json.loads(payload)
        self._pushed = {section: data[section] for section in MANAGED
                        if isinstance(data.get(section), dict)}
        self._pushed["version"] = data["version"]

    def _save_push(self) -> None:
        if self.config_dir is None:
            return
        data = dict(self._pushed)
        write_private(self.config_dir / MANAGED_FILE, json.dumps(data, indent=2))

    def _with_saved_push(self, cfg: DeviceConfig) -> DeviceConfig:
        if self.config_dir is None or not (self.config_dir / MANAGED_FILE).exists():
            return cfg
        try:
            data = json.loads((self.config_dir / MANAGED_FILE).read_text(encoding="utf-8"))
            applied = parse_config(data, cfg)
            self._pushed = data
            return applied
        except (ValueError, ConfigError) as exc:
            log.warning("ignoring the saved pushed config (%s); the cloud will send it again",
                        exc)
            return cfg


def offline_panel(app: DeviceApp, link: OfflineLink) -> None:
    """Have the offline link's changes reach the app as the real link's do, saying whether the
    device answers for the print service itself (the panel then says it is in offline mode)."""

    def changed(up: bool) -> None:
        if up:
            app.printer.link_back()
        app.events.put(ev.LinkChanged(up, local=up and link.local))

    link.on_connection = changed


def _version_of(payload: bytes) -> int | None:
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    v = data.get("version") if isinstance(data, dict) else None
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def from_config_file(path: str | Path, *, engine: PrintEngine | None = None,
                     failover: FailoverTiming | None = None) -> Device:
    cfg = load_config(path)
    username, password = load_credentials(cfg.credentials_file)
    if username != cfg.device_id:
        raise ConfigError(f"the credentials are for device {username!r}, the config for "
                          f"{cfg.device_id!r}; register the device again")
    return Device(cfg, password, config_dir=Path(path).parent, engine=engine,
                  failover=failover)


def register(portal_url: str, code: str, directory: str | Path, *, engine: EngineConfig,
             timeout: float = 10.0) -> DeviceConfig:
    """Trade a one-time registration code for credentials and configuration; write
    ``device.toml`` and ``credentials`` (0600) into ``directory``. ``engine`` is the
    technician's choice (``engine_choice``), checked before the code is spent."""
    directory = Path(directory)
    if not portal_url.startswith(("http://", "https://")):
        raise ConfigError(f"portal URL {portal_url!r} must start with http:// or https://")
    check_engine(engine)  # before the one-time code is spent
    body = json.dumps({"code": code}).encode()
    request = urllib.request.Request(  # noqa: S310  # scheme checked above
        portal_url.rstrip("/") + "/api/v1/devices/register", data=body, method="POST",
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            err = json.loads(exc.read()).get("error", {})
        except ValueError:
            err = {}
        raise MfdError(err.get("message") or f"the portal answered HTTP {exc.code}",
                       code=err.get("code") or "registration_refused") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise MfdError(f"cannot reach the portal at {portal_url}: {exc}",
                       code="unreachable") from None
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cfg = parse_config({"device": {"id": answer["device_id"], "name": answer.get("name", "")},
                        # One URL, or the list of a cloud that serves several brokers.
                        "broker": {"url": answer.get("broker_urls")
                                   or answer.get("broker_url") or "mqtt://127.0.0.1:1883"},
                        "engine": {"kind": engine.kind, "uri": engine.uri}})
    if answer.get("offline_key"):
        # The cloud's key for offline bundles (device_app/offline/), checked like the file's.
        cfg = parse_config({"offline": {"cloud_key": answer["offline_key"]}}, cfg)
    pushed = answer.get("config") or {}
    if pushed:
        # Validated like any push; kept where a push is kept (the cloud manages this part).
        cfg = parse_config(pushed, cfg)
        write_private(directory / MANAGED_FILE, json.dumps(pushed, indent=2))
    save_credentials(directory / "credentials", answer["username"], answer["password"])
    write_private(directory / "device.toml", to_toml(cfg))
    return cfg


"""Devices: one-time registration codes, broker accounts, and pushed configuration.

Registration: an administrator adds a device (``mfd admin device-add``) and gets a one-time
code, valid 24 hours. The technician runs ``mfd device register --code CODE`` on the copier; the
portal trades the code for the device's broker credentials (a fresh random password, given to
the broker through the :class:`BrokerAccounts` port) and its configuration.
A code works once; only its hash is stored.

Configuration: the cloud stores the *managed* part of each device's configuration (readers and
their pipelines, login/logout/release policy; see protocol/managed.py) with a version. Workers
publish a device's newest version, retained, on its ``.../cmd`` topic, so a device gets it when
it (re)connects; the device validates it, applies it live or refuses it with the reason, and
acknowledges on ``.../events``. The cloud checks each version with the schema the device
checks a push with (protocol.managed) before it stores it, so an administrator's mistake is refused
at once rather than carried by every later version; the device stays the judge of what it can
run (a file a reader spec names, say), keeps its running configuration when it refuses, and
takes the next version whatever it refused before. Every version carries the whole managed
configuration: a key removed (``--unset``) goes back to the device's own file.

A refusal's reason is stored redacted (protocol.redact): it may quote a reader spec, and a spec
may carry a key. The device redacts it already; the cloud does not rely on that.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from cloud.hashing import token_hash
from cloud.linking.redeem import redeem
from cloud.offline import offline_public_key
from cloud.storage.port import CloudStore
from protocol import messages as m
from protocol.errors import ConfigError, MfdError, ProtocolError, StoreError
from protocol.managed import MANAGED, check_managed
from protocol.redact import redact
from protocol.topics import check_new_device_id, is_reserved_account
from readers.spec import check_spec

log = logging.getLogger(__name__)

REGISTRATION_TTL = 24 * 3600.0



class RegistrationError(MfdError):
    code = "registration_refused"


class BrokerAccounts(Protocol):
    """Where device broker credentials go: the production writer is
    :class:`cloud.broker_accounts.DynsecAccounts` (Mosquitto's dynamic-security plugin). There is
    no password-file writer any more: Mosquitto checks an acl_file only at delivery, so a device
    could join the cloud's shared subscription and black-hole the fleet's requests.

    ``set_password`` creates the device's account confined to its own topics, or gives it a new
    password; it refuses a reserved name (:func:`protocol.topics.is_reserved_account`) and never
    overwrites an account that is not that device's (a cloud worker, an administrator)."""

    def set_password(self, username: str, password: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Registration:
    device_id: str
    name: str
    org_id: str
    username: str
    password: str
    config: dict[str, Any]
    #: The public key the device checks offline bundles with (``ed25519:...``,
    #: cloud/offline.py); its device.toml keeps it as ``[offline] cloud_key``.
    offline_key: str = ""


def _new_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(10)).decode("ascii")  # 16 chars, 80 bits
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def _normal(code: str) -> str:
    return code.strip().upper().replace(" ", "").replace("-", "")


def add_device(store: CloudStore, org_id: str, device_id: str, name: str, now: float) -> str:
    """Register a device with an org; returns its one-time registration code. A reserved
    account name (``cloud``, ``cloud-0``...) is refused: registering it would rewrite that
    account's broker password and hand the device its access."""
    check_new_device_id(device_id)
    with store.transaction():
        store.add_device(device_id, org_id, name or device_id)
        code = _new_code()
        store.add_registration(token_hash(_normal(code)), device_id, now + REGISTRATION_TTL)
        store.audit(now, "admin", "device.add", f"device:{device_id}", f"org {org_id}")
    return code


def new_registration_code(store: CloudStore, device_id: str, now: float) -> str:
    """A fresh code for a device that exists (a replaced panel, a lost code)."""
    with store.transaction():
        if store.device_org(device_id) is None:
            raise StoreError(f"no device {device_id}")
        check_new_device_id(device_id)  # a reserved name from an older version: never usable
        code = _new_code()
        store.add_registration(token_hash(_normal(code)), device_id, now + REGISTRATION_TTL)
        store.audit(now, "admin", "device.code", f"device:{device_id}")
    return code


def register(store: CloudStore, code: str, accounts: BrokerAccounts, now: float) -> Registration:
    """Trade a one-time code for the device's broker credentials and configuration."""
    with store.transaction():
        # One answer for unknown, used and expired: a code is not to be probed. Spent before
        # the checks below: a refusal rolls the whole transaction back, spending included.
        row = redeem(store, "registration", token_hash(_normal(code)), now,
                     refused=lambda _row: _refused(store, now),
                     raced=RegistrationError("this registration code was just used"))
        device_id = row.owner
        if is_reserved_account(device_id):
            # A device row from before reserved names were refused: never give it the account.
            store.audit(now, "portal", "device.register_refused", f"device:{device_id}",
                        "reserved account name")
            raise RegistrationError(f"device id {device_id!r} is reserved for the print "
                                    "service's own accounts; add the device again under "
                                    "another id")
        org_id = store.device_org(device_id) or ""
        name = store.device_name(device_id)
        password = secrets.token_urlsafe(24)
        # Inside the transaction: if the broker cannot take the account, the code stays unused.
        accounts.set_password(device_id, password)
        store.audit(now, "portal", "device.registered", f"device:{device_id}")
        config = device_config(store, device_id)
        offline_key = offline_public_key(store)
    return Registration(device_id, name or device_id, org_id,
                        device_id, password, config, offline_key)


def _refused(store: CloudStore, now: float) -> RegistrationError:
    store.audit(now, "portal", "device.register_refused", "-")
    return RegistrationError("this registration code is not valid (unknown, used or expired); "
                             "ask the administrator for a new one")


def set_device_config(store: CloudStore, device_id: str, managed: dict[str, Any],
                      now: float, *, unset: tuple[str, ...] = ()) -> int:
    """Store a new managed configuration for a device: ``managed`` on top of the current one,
    less the ``unset`` keys (``SECTION.KEY``, or a whole ``SECTION``); returns its version.
    Refused, storing nothing, unless the device's schema accepts the result. Workers push it."""
    unknown = sorted(set(managed) - set(MANAGED))
    if unknown:
        raise StoreError(f"config section {unknown[0]!r} cannot be pushed; the cloud manages "
                         + ", ".join(MANAGED), code="config_invalid")
    for section in MANAGED:
        if section in managed and not isinstance(managed[section], dict):
            raise StoreError(f"config section {section!r} must be a table",
                             code="config_invalid")
    with store.transaction():
        if store.device_org(device_id) is None:
            raise StoreError(f"no device {device_id}", code="not_found")
        row = store.device_config_text(device_id)
        merged: dict[str, Any] = json.loads(row[1]) if row else {}
        for key in unset:
            section, dot, name = key.partition(".")
            if section not in merged or (dot and name not in merged[section]):
                raise StoreError(f"--unset {key!r}: not in the device's managed configuration",
                                 code="config_invalid")
            if dot:
                del merged[section][name]
                if not merged[section]:
                    del merged[section]
            else:
                del merged[section]
        for section, values in managed.items():
            merged.setdefault(section, {}).update(values)
        if not unset and not managed:
            raise StoreError("nothing to change: give --set or --unset", code="config_invalid")
        _check_with_device_schema(device_id, merged)
        version = (int(row[0]) if row else 0) + 1
        text = json.dumps(merged, sort_keys=True)
        store.store_device_config(device_id, version, text, now)
        store.audit(now, "admin", "device.config", f"device:{device_id}", f"version {version}")
    return version


def _check_with_device_schema(device_id: str, managed: dict[str, Any]) -> None:
    # The schema the device checks a push with (the contract's), and the readers' own spec
    # syntax: what keeps a typo from reaching (and blocking) a device. Files a spec names are
    # on the device, so they are not looked for here.
    try:
        check_managed(managed, lambda spec: check_spec(spec, here=False))
    except ConfigError as exc:
        raise ConfigError(f"not stored: {redact(exc.message)}") from None


def device_config(store: CloudStore, device_id: str) -> dict[str, Any]:
    row = store.device_config_text(device_id)
    if row is None:
        return {}
    config: dict[str, Any] = json.loads(row[1])
    config["version"] = int(row[0])
    return config


def record_engine(store: CloudStore, device_id: str, payload: bytes, now: float) -> None:
    """Remember the print engine a registered device's ``online`` status names, for
    ``mfd admin devices``: a copier on the emulator prints nothing while its jobs are marked
    printed, and the administrator must be able to see that (and it is logged). The firmware
    versions it reports (``firmware``) are kept beside it, as JSON; a device that reports none
    (an older one) has none kept, rather than versions it may no longer run."""
    try:
        status = m.decode_status(payload)
    except ProtocolError:
        return  # record_status has already said so
    if status.state != "online" or store.device_org(device_id) is None:
        return
    with store.transaction():
        firmware = (json.dumps(status.firmware, ensure_ascii=False, sort_keys=True)
                    if status.firmware else None)
        store.record_engine(device_id, status.engine, now, firmware)
    if status.engine == "emulator":
        log.warning("device %s prints on the EMULATED engine: its released jobs are marked "
                    "printed and no paper comes out", device_id)


def device_engine(store: CloudStore, device_id: str) -> str:
    """The engine kind the device last reported online ("" if none or unknown)."""
    with store.transaction():
        return store.device_engine(device_id)


def device_firmware(store: CloudStore, device_id: str) -> dict[str, str]:
    """The firmware versions the device last reported online ({} if none): ``app`` and
    ``reader:<id>`` entries (protocol/messages.py, DeviceStatus.firmware)."""
    with store.transaction():
        text = store.device_firmware(device_id)
    if text is None:
        return {}
    loaded = json.loads(text)
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def config_state(store: CloudStore, device_id: str) -> dict[str, Any]:
    with store.transaction():
        row = store.config_versions(device_id)
    if row is None:
        return {"version": 0, "pushed": 0, "applied": 0, "refused": 0, "refusal": ""}
    return {"version": row[0], "pushed": row[1], "applied": row[2],
            "refused": row[3], "refusal": row[4]}


#: A pushed version nobody acknowledged is published again after this long: a broker without
#: persistence forgets retained messages when it restarts.
REPUSH_AFTER = 60.0


def pending_pushes(store: CloudStore, now: float) -> list[tuple[str, bytes, int]]:
    """(device_id, payload, version) for every config newer than what was last published, or
    published a while ago and neither applied nor refused yet."""
    out = []
    for device_id, version, config in store.configs_to_push(now - REPUSH_AFTER):
        payload = {"v": m.VERSION, "type": "config", "version": version, **json.loads(config)}
        out.append((device_id, json.dumps(payload).encode(), version))
    return out


def mark_pushed(store: CloudStore, device_id: str, version: int, now: float) -> None:
    store.mark_pushed(device_id, version, now)


def record_ack(store: CloudStore, device_id: str, ack: m.ConfigAck, now: float) -> bool:
    """Record a device's answer to a pushed version; False (and nothing written) for an ack
    that says nothing new: a version this device was never given, or an outcome already
    recorded. A device's credentials could otherwise write an audit row per ack they send."""
    with store.transaction():
        row = store.config_versions(device_id)
        latest, applied, refused = (row[0], row[2], row[3]) if row is not None else (0, 0, 0)
        if not 0 < ack.version <= latest or ack.version <= applied or (
                not ack.applied and ack.version == refused):
            return False
        if ack.applied:
            store.mark_applied(device_id, ack.version)
            store.audit(now, f"device:{device_id}", "config.applied", f"version {ack.version}")
        else:
            reason = refusal_reason(ack)
            store.mark_refused(device_id, ack.version, reason[:500])
            store.audit(now, f"device:{device_id}", "config.refused", f"version {ack.version}",
                        reason[:200])
    return True


def refusal_reason(ack: m.ConfigAck) -> str:
    """A refusal's reason as the cloud keeps and logs it: redacted (defence in depth)."""
    return redact(ack.reason)

"""Broker accounts on Mosquitto's dynamic-security plugin ("dynsec").

Why dynsec and not a password file and an ``acl_file``: Mosquitto 2.0 checks an ``acl_file`` only
when it delivers a message, never at SUBSCRIBE. A device could subscribe to the cloud's shared
subscription (``$share/cloud/mfd/v1/dev/+/req``), get "granted", be counted in the share group,
and take its share of every device's requests, which the ACL then drops: requests of the whole
fleet went unanswered. dynsec has subscribe ACLs of their own (it sees the ``$share/<group>/``
prefix) and a default deny, and it manages accounts over MQTT (``$CONTROL/dynamic-security/v1``)
instead of a file the cloud rewrites and a SIGHUP.

Three things here, all built on the roles of protocol/topics.py (the one source of truth):

- :func:`dynsec_config`: the plugin's whole starting file (``plugin_opt_config_file``): the
  roles, the cloud workers' accounts, the account writer's own account, optional devices. It
  holds PBKDF2-SHA512 hashes, never a password in clear.
- :class:`EveryBroker` (:func:`every_broker`): the same on every broker of a site whose devices
  fail over between brokers: a device's account must exist wherever it goes.
- :class:`DynsecAccounts`: the production :class:`cloud.devices.BrokerAccounts`. It creates or
  updates one device's account and role over MQTT, as the broker admin account, and waits for
  each command's answer. A reserved name (``cloud``, ``cloud-0``, ``broker-admin``...) is refused
  before anything is sent, and an existing account that is not that device's (a cloud worker, an
  administrator, anything with another role) is never overwritten.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import logging
import queue
import secrets
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import paho.mqtt.client as mqtt

from mqtt_client import new_client
from mqtt_client.endpoint import BrokerEndpoint
from protocol import topics
from protocol.address import BrokerAddress
from protocol.errors import MfdError

log = logging.getLogger(__name__)

#: PBKDF2 iterations for accounts written into a starting file. dynsec itself uses 101 for every
#: password it sets over MQTT (Mosquitto 2.0's fixed default); the device passwords it sets are
#: 192-bit random tokens, where iterations add nothing. People choose the cloud's and the admin's.
DEFAULT_ITERATIONS = 100_000
SALT_LEN = 12  # Mosquitto 2.0's struct mosquitto_pw: a 12-byte salt, a 64-byte SHA-512 hash


class BrokerAccountError(MfdError):
    code = "broker_account_refused"


def password_hash(password: str, iterations: int = DEFAULT_ITERATIONS,
                  salt: bytes | None = None) -> dict[str, Any]:
    """The ``password``/``salt``/``iterations`` fields of a dynsec client."""
    salt = secrets.token_bytes(SALT_LEN) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return {"password": base64.b64encode(digest).decode("ascii"),
            "salt": base64.b64encode(salt).decode("ascii"), "iterations": iterations}


def dynsec_config(cloud_users: Mapping[str, str], admin: tuple[str, str], *,
                  devices: Mapping[str, str] | None = None,
                  iterations: int = DEFAULT_ITERATIONS) -> dict[str, Any]:
    """The dynamic-security plugin's starting file: roles, accounts (username -> password) of
    the cloud workers, of the account writer (``admin``), and of devices given here (each gets
    its own role). Everything not granted by a role is denied."""
    devices = dict(devices or {})
    for device_id in devices:
        topics.check_new_device_id(device_id)
    names = [*cloud_users, admin[0], *devices]
    if len(set(names)) != len(names):
        raise BrokerAccountError("a broker username is given twice (cloud users, admin, "
                                 "devices must all differ)")

    def client(name: str, password: str, role: str) -> dict[str, Any]:
        return {"username": name, **password_hash(password, iterations),
                "roles": [{"rolename": role}], "groups": []}

    return {
        "defaultACLAccess": dict(topics.DYNSEC_DEFAULT_ACCESS),
        "roles": topics.broker_roles(tuple(devices)),
        "clients": [client(n, p, topics.CLOUD_ROLE) for n, p in cloud_users.items()]
        + [client(admin[0], admin[1], topics.BROKER_ADMIN_ROLE)]
        + [client(d, p, topics.device_role_name(d)) for d, p in devices.items()],
        "groups": [],
    }


def _acl_key(acl: Mapping[str, Any]) -> tuple[str, str, bool]:
    return str(acl.get("acltype")), str(acl.get("topic")), bool(acl.get("allow"))


def _added_since_v1(device_id: str) -> set[tuple[str, str, bool]]:
    """The ACLs a device role gained after its first release: reading its ``.../notify``."""
    notify = topics.notify_topic(device_id)
    return {("subscribeLiteral", notify, True), ("publishClientReceive", notify, True)}


class DynsecAccounts:
    """Device broker accounts over the dynamic-security plugin's MQTT API.

    ``address`` is the broker and the admin account (role ``mfd-broker-admin``, see
    :func:`protocol.topics.broker_admin_role`). One connection per call: registrations are rare,
    and a short connection has no reconnect logic to get wrong. Calls are serialised: with client
    ids forced to usernames, two connections of the admin account would knock each other off.
    """

    _lock = threading.Lock()

    def __init__(self, address: BrokerAddress, *, timeout: float = 10.0,
                 tls_ca_file: str | None = None) -> None:
        if not address.username:
            raise BrokerAccountError("the broker admin account needs a username",
                                     code="config_invalid")
        self.address = address
        self.timeout = timeout
        self.tls_ca_file = tls_ca_file
        self._ids = itertools.count(1)

    # ------------------------------------------------------------ the port

    def set_password(self, username: str, password: str) -> None:
        """Create device ``username`` with ``password`` (or give the existing device account a
        new one). Refuses reserved names, and any existing account that is not this device's."""
        topics.check_new_device_id(username)  # ProtocolError naming the reserved names
        role = topics.device_role(username)
        rolename = role["rolename"]
        with self._lock, _Session(self) as session:
            found_client, found_role = session.run(
                {"command": "getClient", "username": username},
                {"command": "getRole", "rolename": rolename}, allow=("not found",))
            commands: list[dict[str, Any]] = []
            if found_role.get("error"):
                commands.append({"command": "createRole", "rolename": rolename,
                                 "acls": role["acls"]})
            else:
                have = set(map(_acl_key, found_role["data"]["role"].get("acls", [])))
                want = set(map(_acl_key, role["acls"]))
                if have == want - _added_since_v1(username):
                    # The role of a release before the notify topic: grant it that, and only
                    # that (its other ACLs are exactly a device's).
                    commands += [{"command": "addRoleACL", "rolename": rolename, **acl}
                                 for acl in role["acls"]
                                 if _acl_key(acl) in want - have]
                elif have != want:
                    raise BrokerAccountError(
                        f"the broker role {rolename} exists with other ACLs than a device's; "
                        "an administrator must check it (refusing to use it)")
            if found_client.get("error"):
                commands.append({"command": "createClient", "username": username,
                                 "password": password, "roles": [{"rolename": rolename}]})
            else:
                existing = found_client["data"]["client"]
                roles = [str(r.get("rolename")) for r in existing.get("roles", [])]
                if roles not in ([rolename], []) or existing.get("groups"):
                    # A cloud worker, an administrator or anything an operator made by hand.
                    raise BrokerAccountError(
                        f"the broker account {username} exists and is not this device's "
                        "account; refusing to overwrite it")
                commands.append({"command": "setClientPassword", "username": username,
                                 "password": password})
                if not roles:
                    commands.append({"command": "addClientRole", "username": username,
                                     "rolename": rolename})
            session.run(*commands)
        log.info("broker account of device %s written", username)

    # ------------------------------------------------------------ read-only checks

    def check(self) -> None:
        """Connect as the admin account and subscribe to the plugin's answers: raises
        :class:`BrokerAccountError` saying what is wrong (unreachable, refused, no role)."""
        with self._lock, _Session(self):
            pass

    def get_client(self, username: str) -> dict[str, Any] | None:
        """The account as the plugin describes it (roles, groups), or None; no password."""
        with self._lock, _Session(self) as session:
            (found,) = session.run({"command": "getClient", "username": username},
                                   allow=("not found",))
        return None if found.get("error") else dict(found["data"]["client"])


class _Session:
    """One admin connection: subscribe to the answers, send command batches, match answers by
    correlation data. Passwords travel in the command payloads only, never in a log line or an
    error (errors name the command and the plugin's reason)."""

    def __init__(self, owner: DynsecAccounts) -> None:
        self.owner = owner
        self.answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self.connected: queue.Queue[Any] = queue.Queue()
        self.subscribed: queue.Queue[Any] = queue.Queue()
        addr = owner.address
        client = new_client(addr.username, addr.username, addr.password,
                            tls_ca_file=owner.tls_ca_file or None)
        client.on_connect = lambda _c, _u, _f, rc, _p: self.connected.put(rc)
        client.on_subscribe = lambda _c, _u, _mid, rcs, _p: self.subscribed.put(rcs)
        client.on_message = self._on_message
        self.client = client

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(bytes(msg.payload))
            for answer in body.get("responses", []):
                if isinstance(answer, dict):
                    self.answers.put(answer)
        except (ValueError, AttributeError):
            log.warning("broker accounts: an answer that is not dynsec JSON was ignored")

    def _get(self, q: queue.Queue[Any], what: str) -> Any:
        try:
            return q.get(timeout=self.owner.timeout)
        except queue.Empty:
            raise BrokerAccountError(f"the broker did not answer ({what}) within "
                                     f"{self.owner.timeout:g} s", code="timeout") from None

    def __enter__(self) -> _Session:
        addr = self.owner.address
        try:
            self.client.connect(addr.host, addr.port, keepalive=30, clean_start=True)
        except (OSError, ValueError) as exc:
            raise BrokerAccountError(f"cannot reach the broker at {addr.host}:{addr.port}: "
                                     f"{exc}", code="timeout") from None
        self.client.loop_start()
        try:
            rc = self._get(self.connected, "connect")
            if rc.is_failure:
                raise BrokerAccountError(f"the broker refused the admin account "
                                         f"{addr.username}: {rc}", code="not_authorized")
            self.client.subscribe(topics.DYNSEC_RESPONSE_TOPIC, qos=1)
            (granted,) = self._get(self.subscribed, "subscribe")
            if granted.is_failure:
                raise BrokerAccountError(
                    f"account {addr.username} may not use the broker's dynamic-security API "
                    f"({granted}): is the plugin loaded and does it have the "
                    f"{topics.BROKER_ADMIN_ROLE} role?", code="not_authorized")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def run(self, *commands: dict[str, Any],
            allow: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Send commands as one batch (the plugin runs them in order); their answers, in order.
        An answer with an error raises, unless the error contains one of ``allow``."""
        if not commands:
            return []
        tagged = []
        for command in commands:
            tagged.append({**command, "correlationData": f"mfd-{next(self.owner._ids)}-"
                           f"{secrets.token_hex(4)}"})
        wanted = {c["correlationData"]: c["command"] for c in tagged}
        try:
            info = self.client.publish(topics.DYNSEC_TOPIC, json.dumps({"commands": tagged}),
                                       qos=1)
            info.wait_for_publish(self.owner.timeout)
        except (RuntimeError, ValueError) as exc:  # paho: not connected, queue full
            raise BrokerAccountError(f"the broker connection failed while sending "
                                     f"{', '.join(c['command'] for c in tagged)}: {exc}",
                                     code="timeout") from None
        got: dict[str, dict[str, Any]] = {}
        while len(got) < len(wanted):
            missing = sorted(wanted[t] for t in set(wanted) - set(got))
            answer = self._get(self.answers, "to " + ", ".join(missing))
            tag = answer.get("correlationData")
            if tag in wanted:
                got[str(tag)] = answer
        out = [got[c["correlationData"]] for c in tagged]
        for command, answer in zip(tagged, out, strict=True):
            error = answer.get("error")
            if error and not any(a in str(error).lower() for a in allow):
                raise BrokerAccountError(f"the broker refused {command['command']} "
                                         f"{command.get('username') or command.get('rolename')}"
                                         f": {error}")
        return out


class EveryBroker:
    """Device accounts on every broker of a site (devices fail over between them, and the
    device's account must exist wherever it goes): :class:`DynsecAccounts` per broker, in
    order. The port (:class:`cloud.devices.BrokerAccounts`) as one writer.

    Not atomic across brokers, and need not be: writing an account is idempotent (a new
    password for an existing device account), and a failure on any broker fails the whole
    registration, whose code then stays unspent (cloud/devices.py), so asking again writes the
    same account everywhere. The error names the broker that refused.
    """

    def __init__(self, writers: Sequence[DynsecAccounts]) -> None:
        if not writers:
            raise BrokerAccountError("no broker to write device accounts on",
                                     code="config_invalid")
        self.writers = tuple(writers)

    def set_password(self, username: str, password: str) -> None:
        for writer in self.writers:
            try:
                writer.set_password(username, password)
            except MfdError as exc:
                raise BrokerAccountError(f"broker {_where(writer)}: {exc.message}",
                                         code=exc.code) from None

    def check(self) -> None:
        """Every broker reachable as the admin account, with the plugin's API (see
        :meth:`DynsecAccounts.check`); the first that is not raises, named."""
        for writer in self.writers:
            try:
                writer.check()
            except MfdError as exc:
                raise BrokerAccountError(f"broker {_where(writer)}: {exc.message}",
                                         code=exc.code) from None

    def get_client(self, username: str) -> dict[str, Any] | None:
        """The account on the first broker (what :meth:`DynsecAccounts.get_client` says)."""
        return self.writers[0].get_client(username)

    def missing_on(self, username: str) -> list[str]:
        """The brokers (``host:port``) where ``username`` has no account: a device there could
        not fail over to them."""
        return [_where(w) for w in self.writers if w.get_client(username) is None]


def every_broker(brokers: Sequence[BrokerEndpoint], admin: str, password: str, *,
                 timeout: float = 10.0) -> EveryBroker:
    """The account writer on each of ``brokers`` (as :func:`cloud.worker.worker_brokers` reads
    ``mfd cloud --broker``), as ``admin`` with ``password`` (the same on each broker)."""
    return EveryBroker([DynsecAccounts(BrokerAddress(ep.host, ep.port, admin, password),
                                       timeout=timeout, tls_ca_file=ep.tls_ca_file)
                        for ep in brokers])


def _where(writer: DynsecAccounts) -> str:
    return f"{writer.address.host}:{writer.address.port}"

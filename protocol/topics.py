"""MQTT topic names of contract v1, and the broker roles that make them safe.

Every device topic sits under ``mfd/v1/dev/<device_id>/``, and ``<device_id>`` is the device's
broker username. The broker gives each device account a role naming only its own topics
(:func:`device_role`), so it is confined to its own tree, and the cloud may trust the device id
it reads from a request's topic. Client ids are forced to the username
(``use_username_as_clientid``) so stolen credentials of one device cannot knock another device
off by reusing its client id.
"""

from __future__ import annotations

import re
from typing import TypedDict

from protocol.errors import ErrorCode, ProtocolError

PREFIX = "mfd/v1/dev"
LEAVES = ("req", "resp", "status", "cmd", "events", "notify")

#: Cloud workers share one subscription so that adding workers spreads the load.
CLOUD_SHARE_GROUP = "cloud"
CLOUD_REQUEST_SUBSCRIPTION = f"$share/{CLOUD_SHARE_GROUP}/{PREFIX}/+/req"
CLOUD_STATUS_SUBSCRIPTION = f"{PREFIX}/+/status"
CLOUD_EVENTS_SUBSCRIPTION = f"$share/{CLOUD_SHARE_GROUP}/{PREFIX}/+/events"

#: Message Expiry Interval (s) a device sets on each request. Long enough that the broker never
#: discards a request (a burst must be answered, if only with "busy"); the broker hands it over
#: with the interval reduced by the time it queued, which tells the cloud how long it waited.
REQUEST_EXPIRY = 60

# A device id is one topic level and a broker username: no wildcards, no separators, short.
DEVICE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def check_device_id(device_id: str) -> str:
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise ProtocolError(
            f"device id {device_id!r} must be 1-63 of a-z 0-9 _ - and start with a letter or digit",
            code=ErrorCode.INVALID_FIELD, field="device_id")
    return device_id


#: Broker usernames that are never a device's: the cloud workers (``cloud``, ``cloud-0``...) and
#: the broker's administrators. A device registered under one of them would take over that
#: account's password and its access to every device's topics, so they are refused wherever a
#: device account is made (``mfd admin device-add``, registration, the broker-account writer).
RESERVED_ACCOUNT_RE = re.compile(r"^(cloud|admin|broker|mfd|dynsec)([-_].*)?$")


def is_reserved_account(name: str) -> bool:
    return RESERVED_ACCOUNT_RE.fullmatch(name) is not None


def check_new_device_id(device_id: str) -> str:
    """A device id for a new device account: well-formed and not a reserved account name."""
    check_device_id(device_id)
    if is_reserved_account(device_id):
        raise ProtocolError(
            f"device id {device_id!r} is reserved for the print service's own accounts "
            "(cloud, cloud-*, admin, broker, mfd, dynsec...); choose another",
            code=ErrorCode.INVALID_FIELD, field="device_id")
    return device_id


def request_topic(device_id: str) -> str:
    return f"{PREFIX}/{check_device_id(device_id)}/req"


def response_topic(device_id: str) -> str:
    return f"{PREFIX}/{check_device_id(device_id)}/resp"


def status_topic(device_id: str) -> str:
    return f"{PREFIX}/{check_device_id(device_id)}/status"


def command_topic(device_id: str) -> str:
    return f"{PREFIX}/{check_device_id(device_id)}/cmd"


def events_topic(device_id: str) -> str:
    return f"{PREFIX}/{check_device_id(device_id)}/events"


def notify_topic(device_id: str) -> str:
    """Where the cloud tells one device that its signed-in user's jobs changed (read only by
    that device: its role names it, and no other device's)."""
    return f"{PREFIX}/{check_device_id(device_id)}/notify"


def parse_device_topic(topic: str) -> tuple[str, str]:
    """Split ``mfd/v1/dev/<id>/<leaf>`` into ``(id, leaf)``; anything else is a ProtocolError."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != PREFIX or parts[4] not in LEAVES:
        raise ProtocolError(f"not a device topic: {topic!r}", code=ErrorCode.BAD_REQUEST,
                            field="topic")
    return check_device_id(parts[3]), parts[4]


# ---------------------------------------------------------------- broker roles
#
# The broker enforces the contract with Mosquitto's dynamic-security plugin, not an acl_file:
# Mosquitto 2.0 checks an acl_file only when it delivers a message, never at SUBSCRIBE, so a
# device could join the cloud's shared subscription (``$share/cloud/...``), be counted in the
# group and black-hole its share of every device's requests. dynsec checks subscriptions against
# their own ACLs (the ``$share/<group>/`` prefix included) with a default deny.
# Mosquitto 2.0's dynsec matches ACL topics literally (no ``%u``), so each device gets a role of
# its own that names its own six topics; the account writer creates it with the device.
# These functions are the one source of truth for what each account may do: the simulator's
# broker, ``mfd admin broker-acl`` and the account writer (cloud/broker_accounts.py) use them.

#: Role of the cloud workers: every device topic, and the cloud's shared subscriptions.
CLOUD_ROLE = "mfd-cloud"
#: Role of the account that manages broker accounts over ``$CONTROL/dynamic-security``.
BROKER_ADMIN_ROLE = "mfd-broker-admin"
#: Default username of that account (reserved: no device can take it).
BROKER_ADMIN_USER = "broker-admin"
DEVICE_ROLE_PREFIX = "mfd-device-"
DYNSEC_TOPIC = "$CONTROL/dynamic-security/v1"
DYNSEC_RESPONSE_TOPIC = f"{DYNSEC_TOPIC}/response"

#: What an account without a matching ACL may do: nothing but unsubscribe.
DYNSEC_DEFAULT_ACCESS: dict[str, bool] = {
    "publishClientSend": False, "publishClientReceive": False,
    "subscribe": False, "unsubscribe": True}


DynsecAcl = dict[str, str | int | bool]


class DynsecRole(TypedDict):
    """A role as the plugin's JSON (its file and its createRole command) spells it."""

    rolename: str
    acls: list[DynsecAcl]


def _acl(acltype: str, topic: str) -> DynsecAcl:
    return {"acltype": acltype, "topic": topic, "priority": 0, "allow": True}


def device_role_name(device_id: str) -> str:
    return DEVICE_ROLE_PREFIX + check_device_id(device_id)


def device_role(device_id: str) -> DynsecRole:
    """The dynsec role of one device: write its own req/status/events, subscribe to and receive
    its own resp/cmd/status/notify (a device reads back its retained status); nothing else.
    Literal subscriptions only: no wildcard, no shared subscription."""
    writes = [f"{PREFIX}/{device_id}/{leaf}" for leaf in ("req", "status", "events")]
    reads = [f"{PREFIX}/{device_id}/{leaf}" for leaf in ("resp", "cmd", "status", "notify")]
    return {"rolename": device_role_name(device_id),
            "acls": [_acl("publishClientSend", t) for t in writes]
            + [_acl("subscribeLiteral", t) for t in reads]
            + [_acl("publishClientReceive", t) for t in reads]}


def cloud_role() -> DynsecRole:
    """The dynsec role of the cloud workers: everything under ``mfd/v1/``, and the shared
    subscriptions of the cloud's group (dynsec sees the ``$share/<group>/`` prefix)."""
    tree = "mfd/v1/#"
    return {"rolename": CLOUD_ROLE,
            "acls": [_acl("publishClientSend", tree), _acl("publishClientReceive", tree),
                     _acl("subscribePattern", tree),
                     _acl("subscribePattern", f"$share/{CLOUD_SHARE_GROUP}/{tree}")]}


def broker_admin_role() -> DynsecRole:
    """The dynsec role of the account writer: the plugin's control topics only."""
    tree = "$CONTROL/dynamic-security/#"
    return {"rolename": BROKER_ADMIN_ROLE,
            "acls": [_acl("publishClientSend", tree), _acl("publishClientReceive", tree),
                     _acl("subscribePattern", tree)]}


def broker_roles(device_ids: tuple[str, ...] = ()) -> list[DynsecRole]:
    """Every role the broker needs: cloud, account writer, and one per device given."""
    return [cloud_role(), broker_admin_role(), *(device_role(d) for d in device_ids)]

"""A device is confined to its own topics at SUBSCRIBE, not only at delivery: real Mosquitto with
the dynamic-security plugin (simulator/broker.py), the real cloud worker.

The defect (issue 8, no. 9): with an acl_file, Mosquitto 2.0 granted a device the cloud's shared
subscription, counted it in the group and handed it its share of every device's requests, which
the ACL then dropped: half of another device's requests went unanswered. Here a device tries
every way into the fleet's traffic, each SUBACK must refuse it, and meanwhile every request of
another device is answered.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import Broker, World
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.broker_accounts import BrokerAccountError, DynsecAccounts, _Session
from cloud.demo import DEMO_USERS
from protocol import messages as m
from protocol import topics

pytestmark = pytest.mark.integration

#: Everything outside copier-2's own tree that it must not subscribe to.
FORBIDDEN = (
    topics.CLOUD_REQUEST_SUBSCRIPTION,            # $share/cloud/mfd/v1/dev/+/req
    topics.CLOUD_EVENTS_SUBSCRIPTION,             # $share/cloud/mfd/v1/dev/+/events
    "$share/cloud/mfd/v1/#",
    "$share/cloud/#",
    "$share/other/mfd/v1/dev/+/req",
    "$share/cloud/mfd/v1/dev/copier-2/req",       # even its own requests, through the group
    "mfd/v1/dev/+/req",
    topics.CLOUD_STATUS_SUBSCRIPTION,             # mfd/v1/dev/+/status
    "mfd/v1/dev/+/resp",
    "mfd/v1/#",
    "#",
    "+/+/+/+/+",
    topics.response_topic("copier-1"),
    topics.command_topic("copier-1"),
    topics.request_topic("copier-1"),
    topics.events_topic("copier-1"),
    topics.notify_topic("copier-1"),              # another copier's "your user's jobs changed"
    "mfd/v1/dev/copier-2/+",                      # a wildcard over its own tree, too
    "mfd/v1/dev/copier-2/#",
    topics.request_topic("copier-2"),             # it writes its requests; it does not read them
    "$CONTROL/dynamic-security/#",
    "$SYS/#",
)
OWN = (topics.response_topic("copier-2"), topics.command_topic("copier-2"),
       topics.status_topic("copier-2"), topics.notify_topic("copier-2"))


class Client:
    """A raw MQTT 5 client that records SUBACK reason codes and messages."""

    def __init__(self, broker: Broker, user: str, password: str | None = None) -> None:
        addr = broker.address(user)
        self.inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.subacks: queue.Queue[tuple[int, list[Any]]] = queue.Queue()
        self.connacks: queue.Queue[Any] = queue.Queue()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
        c.username_pw_set(addr.username, password if password is not None else addr.password)
        c.on_message = lambda _c, _u, msg: self.inbox.put(msg)
        c.on_connect = lambda _c, _u, _f, rc, _p: self.connacks.put(rc)
        c.on_subscribe = lambda _c, _u, mid, rcs, _p: self.subacks.put((mid, list(rcs)))
        c.connect(addr.host, addr.port)
        c.loop_start()
        self.c = c
        self.connack = self.connacks.get(timeout=5)

    def subscribe(self, topic: str) -> Any:
        """The SUBACK reason code for one filter."""
        _rc, mid = self.c.subscribe(topic, qos=1)
        got_mid, codes = self.subacks.get(timeout=5)
        assert got_mid == mid
        return codes[0]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def clients(world: World) -> Iterator[tuple[Client, Client]]:
    victim, attacker = Client(world.broker, "copier-1"), Client(world.broker, "copier-2")
    yield victim, attacker
    victim.close()
    attacker.close()


def _requests(device: Client, device_id: str, n: int) -> dict[bytes, mqtt.MQTTMessage]:
    """Send n identify requests as ``device_id``; wait for every answer (10 s in all)."""
    resp = topics.response_topic(device_id)
    assert device.subscribe(resp).value == 1  # granted QoS 1
    for i in range(n):
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = resp
        props.CorrelationData = i.to_bytes(2, "big")
        props.MessageExpiryInterval = topics.REQUEST_EXPIRY
        device.c.publish(topics.request_topic(device_id),
                         # Access codes: 50 badge sign-ins at machine speed from one
                         # copier would rightly be throttled (tests/test_card_throttle.py).
                         m.encode(m.Identify("code", DEMO_USERS[i % 3].access_code)), qos=1,
                         properties=props)
    answers: dict[bytes, mqtt.MQTTMessage] = {}
    while len(answers) < n:
        try:
            msg = device.inbox.get(timeout=10)
        except queue.Empty:
            break
        if msg.topic == resp:
            answers[bytes(msg.properties.CorrelationData)] = msg  # type: ignore[union-attr]
    return answers


def test_a_device_cannot_join_the_clouds_share_group_nor_read_others(
        world: World, clients: tuple[Client, Client]) -> None:
    victim, attacker = clients
    assert not victim.connack.is_failure and not attacker.connack.is_failure
    refused = {f: attacker.subscribe(f) for f in FORBIDDEN}
    granted = [f for f, rc in refused.items() if not rc.is_failure]
    assert granted == [], f"a device was granted {granted}"
    assert all(rc.value == 0x87 for rc in refused.values())  # Not authorized
    # Its own tree is still open to it (literal filters).
    assert [attacker.subscribe(t).value for t in OWN] == [1, 1, 1, 1]

    # While it sits there having tried, every request of another device is answered, and
    # answered right: not one lands in the attacker's share.
    answers = _requests(victim, "copier-1", 50)
    assert len(answers) == 50, f"{50 - len(answers)} of 50 requests were never answered"
    for i, msg in answers.items():
        result = m.decode_response(bytes(msg.payload), "identify")
        assert isinstance(result, m.IdentifyResult)
        assert result.display_name == DEMO_USERS[int.from_bytes(i, "big") % 3].name
    # The attacker's own request is answered too (the cloud is there for it), and nothing of
    # copier-1's reached it before that answer.
    (own,) = _requests(attacker, "copier-2", 1).values()
    assert isinstance(m.decode_response(bytes(own.payload), "identify"), m.IdentifyResult)
    seen = []
    while not attacker.inbox.empty():
        seen.append(attacker.inbox.get().topic)
    assert all(t in OWN for t in seen), seen


def test_cloud_workers_keep_their_share_group(world: World) -> None:
    """The worker (role mfd-cloud) was granted its shared subscriptions: it answers; a second
    worker account is granted the group and the status wildcard as well."""
    cloud = Client(world.broker, "cloud-1")
    try:
        codes = [cloud.subscribe(f).value for f in (topics.CLOUD_REQUEST_SUBSCRIPTION,
                                                   topics.CLOUD_EVENTS_SUBSCRIPTION,
                                                   topics.CLOUD_STATUS_SUBSCRIPTION)]
        assert codes == [1, 1, 1]
        assert cloud.subscribe("#").is_failure  # outside mfd/v1/: nothing
    finally:
        cloud.close()


def test_a_device_cannot_publish_as_another(world: World,
                                           clients: tuple[Client, Client]) -> None:
    """copier-2 publishing copier-1's request reaches no worker: the broker refuses it
    (PUBACK "not authorized"), and the worker's count proves it only saw copier-2's own."""
    _victim, attacker = clients
    acks: queue.Queue[Any] = queue.Queue()
    attacker.c.on_publish = lambda _c, _u, _mid, rc, _p: acks.put(rc)
    before = world.worker.handled
    info = attacker.c.publish(topics.request_topic("copier-1"),
                              m.encode(m.Identify("card", DEMO_USERS[0].badge)), qos=1)
    info.wait_for_publish(5)
    assert acks.get(timeout=5).value == 0x87
    (own,) = _requests(attacker, "copier-2", 1).values()
    assert isinstance(m.decode_response(bytes(own.payload), "identify"), m.IdentifyResult)
    assert world.worker.handled == before + 1



def _dies_with_will(broker: Broker, user: str, will_topic: str, payload: bytes) -> None:
    """Connect as ``user`` with a Will on ``will_topic``, then drop the TCP connection without
    a DISCONNECT, so the broker sends the Will (if the account may publish there)."""
    addr = broker.address(user)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
    c.username_pw_set(addr.username, addr.password)
    c.will_set(will_topic, payload, qos=1)
    connacks: queue.Queue[Any] = queue.Queue()
    c.on_connect = lambda _c, _u, _f, rc, _p: connacks.put(rc)
    c.connect(addr.host, addr.port)
    while connacks.empty():
        c.loop(0.1)
    assert not connacks.get().is_failure
    sock = c.socket()
    assert sock is not None
    sock.close()  # no DISCONNECT: the broker sees the connection die


def test_a_devices_will_cannot_speak_for_another_device(broker: Broker) -> None:
    """A Will is a publish too: copier-2 cannot leave a status on copier-1's topic by dying."""
    observer = Client(broker, "cloud-1")
    try:
        assert observer.subscribe(topics.CLOUD_STATUS_SUBSCRIPTION).value == 1
        forged = m.encode(m.DeviceStatus(state="offline", epoch=1, since=1.0))
        own = m.encode(m.DeviceStatus(state="offline", epoch=2, since=2.0))
        _dies_with_will(broker, "copier-2", topics.status_topic("copier-1"), forged)
        # The same account again: the broker has dealt with the first connection (and its Will)
        # before it accepts this one, so this Will arriving proves the first one's turn passed.
        _dies_with_will(broker, "copier-2", topics.status_topic("copier-2"), own)
        seen: list[tuple[str, bytes]] = []
        while (topics.status_topic("copier-2"), own) not in seen:
            msg = observer.inbox.get(timeout=10)
            seen.append((msg.topic, bytes(msg.payload)))
        assert (topics.status_topic("copier-1"), forged) not in seen
    finally:
        observer.close()


def test_a_device_role_from_before_the_notify_topic_is_granted_it_on_registration(
        broker: Broker) -> None:
    """A broker set up by an older release has device roles without ``.../notify``: writing
    the account again (a re-registration) adds exactly those two ACLs, and the device can
    then read its own notices, and still nobody else's."""
    writer = DynsecAccounts(broker.mosquitto.admin_address, timeout=5)
    role = topics.device_role("copier-old")
    before = [a for a in role["acls"] if not str(a["topic"]).endswith("/notify")]
    with _Session(writer) as session:
        session.run({"command": "createRole", "rolename": role["rolename"], "acls": before})
    writer.set_password("copier-old", "pw-copier-old")
    device = Client(broker, "copier-old", "pw-copier-old")
    try:
        assert device.subscribe(topics.notify_topic("copier-old")) < 0x80
        assert device.subscribe(topics.notify_topic("copier-1")) >= 0x80
    finally:
        device.close()
    # A role with anything else than a device's ACLs is still refused, not "upgraded".
    odd = topics.device_role("copier-odd")
    with _Session(writer) as session:
        session.run({"command": "createRole", "rolename": odd["rolename"],
                     "acls": [*before[:1], {"acltype": "subscribePattern", "topic": "#",
                                            "priority": 0, "allow": True}]})
    with pytest.raises(BrokerAccountError, match="other ACLs"):
        writer.set_password("copier-odd", "pw")

"""mqtt_client/properties.py's LeanProperties against paho's Properties: for any properties
set on any packet type (valid or not: unknown names, names of another packet type, values out
of range), the same errors, the same bytes on the wire, and the same properties read back; and
any bytes read give the same properties or the same error. The cloud and the device use it on
every message, and paho's decoder builds it once installed."""

from __future__ import annotations

from typing import Any

import paho.mqtt._packet as paho_packet
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import mqtt_client  # noqa: F401 - installs the lean properties in paho's decoder
from mqtt_client.properties import LeanProperties, publish_properties

PACKETS = [PacketTypes.CONNECT, PacketTypes.CONNACK, PacketTypes.PUBLISH, PacketTypes.PUBACK,
           PacketTypes.SUBSCRIBE, PacketTypes.SUBACK, PacketTypes.DISCONNECT,
           PacketTypes.AUTH, PacketTypes.WILLMESSAGE]
_PAHO = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
ATTRS = [name.replace(" ", "") for name in _PAHO.names]
TABLES = {"packetType", "types", "names", "properties"}

text = st.text(max_size=20)
# Every kind of value any property takes, in and out of its range, and of the wrong kind.
values = st.one_of(st.integers(-2, 300), st.integers(0, 2**32 - 1), st.integers(-1, 2**29),
                   st.binary(max_size=20), text, st.tuples(text, text),
                   st.lists(st.tuples(text, text), max_size=2))


def _outcome(make: Any, packet: int, settings_: list[tuple[str, Any]]) -> tuple[Any, ...]:
    props = make(packet)
    errors = []
    for name, value in settings_:
        try:
            setattr(props, name, value)
        except Exception as exc:  # paho's own error for a bad name, packet or value
            errors.append((type(exc).__name__, str(exc)))
    try:
        wire: Any = props.pack()
    except Exception as exc:  # a value of the wrong kind fails when packed
        wire = (type(exc).__name__, str(exc))
    return errors, wire, _attrs(props), props.isEmpty()


def _attrs(props: Properties) -> dict[str, Any]:
    return {k: v for k, v in vars(props).items() if k not in TABLES}


def _read(make: Any, packet: int, data: bytes) -> Any:
    try:
        props, used = make(packet).unpack(data)
    except Exception as exc:
        return type(exc).__name__, str(exc)
    return _attrs(props), used


@settings(max_examples=400)
@given(packet=st.sampled_from(PACKETS),
       settings_=st.lists(st.tuples(st.sampled_from([*ATTRS, "Response Topic", "NoSuch"]),
                                    values), max_size=6))
def test_the_same_errors_bytes_and_properties_as_paho(packet: int,
                                                      settings_: list[tuple[str, Any]]) -> None:
    paho = _outcome(Properties, packet, settings_)
    lean = _outcome(LeanProperties, packet, settings_)
    assert lean == paho
    wire = paho[1]
    if isinstance(wire, bytes):
        # Read back alike (what comes back is paho's business: bytes set on a text property
        # come back as text, a NUL in text is refused when read).
        assert _read(LeanProperties, packet, wire) == _read(Properties, packet, wire)


@settings(max_examples=400)
@given(packet=st.sampled_from(PACKETS), data=st.binary(max_size=40))
def test_any_bytes_read_alike(packet: int, data: bytes) -> None:
    assert _read(LeanProperties, packet, data) == _read(Properties, packet, data)


def test_clear_empties_and_the_decoder_builds_lean_ones() -> None:
    props = publish_properties()
    assert props.isEmpty()
    props.CorrelationData = b"\x00\x01"
    props.UserProperty = ("a", "1")
    props.UserProperty = ("b", "2")
    assert vars(props)["UserProperty"] == [("a", "1"), ("b", "2")] and not props.isEmpty()
    props.clear()
    assert props.isEmpty() and _attrs(props) == {}
    assert isinstance(props, Properties)  # paho's publish() checks this


def test_paho_reads_a_publish_into_lean_properties() -> None:
    # A PUBLISH's variable header and payload as paho's decoder takes them: topic, packet id,
    # properties, payload. A later paho that moves its decoder fails here, not silently.
    props = publish_properties()
    props.ResponseTopic = "mfd/v1/dev/copier-1/res"
    props.CorrelationData = b"\x00\x07"
    topic = b"mfd/v1/dev/copier-1/req"
    body = len(topic).to_bytes(2, "big") + topic + (7).to_bytes(2, "big") + props.pack() + b"{}"
    packet = paho_packet.decode_publish(0x32, body, MQTTProtocolVersion.MQTTv5)  # QoS 1
    assert isinstance(packet.properties, LeanProperties)
    assert packet.properties.CorrelationData == b"\x00\x07" and packet.payload == b"{}"

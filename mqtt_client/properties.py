"""paho's MQTT 5 ``Properties``, without rebuilding paho's tables for every packet.

paho builds a ``Properties`` for every PUBLISH it reads, every PUBACK it reads (with or without
properties) and every answer we send; each one builds a 27-name dict and a 27-entry table in
``__init__``, and finds a name by scanning them with a string replace per entry. Under
``py-spy --gil`` that was about 30 % of a cloud worker's held-GIL time in bench.cloud_identify
(``__init__`` 11 %, ``unpack`` 10 %, ``__setattr__`` 9 %, ``pack`` 5 %).

:class:`LeanProperties` is a subclass: the same attributes, checks and wire bytes (the tests
hold it to paho's class on random properties), with the tables built once and names found by
dict. :func:`install` has paho's packet decoder build these (paho's own module global;
``isinstance`` against paho's class still holds); :func:`publish_properties` is the one for
answers and requests we send.
"""

from __future__ import annotations

from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers

__all__ = ["LeanProperties", "install", "publish_properties"]

_TABLES = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
_TYPES: list[str] = _TABLES.types
_NAMES: dict[str, int] = _TABLES.names
_KINDS: dict[int, tuple[int, list[int]]] = _TABLES.properties
#: "ResponseTopic" -> 8: the attribute names paho uses, to the identifiers.
_IDENT: dict[str, int] = {name.replace(" ", ""): ident for name, ident in _NAMES.items()}
#: 8 -> "Response Topic"; paho's own lookup keeps the last name with an identifier.
_NAME: dict[int, str] = {ident: name for name, ident in _NAMES.items()}
_MULTIPLE = frozenset(ident for attr, ident in _IDENT.items()
                      if _TABLES.allowsMultiple(attr))  # type: ignore[no-untyped-call]
_PRIVATE = frozenset(("packetType", "types", "names", "properties"))
#: Names whose values paho range-checks, or that collect several values: set through paho's own
#: ``__setattr__``, which does that; every other name only needs to exist for the packet type.
_PAHO_SETS = frozenset(("ReceiveMaximum", "TopicAlias", "TopicAliasMaximum",
                        "MaximumPacketSize", "SubscriptionIdentifier",
                        "RequestResponseInformation", "RequestProblemInformation",
                        "PayloadFormatIndicator")) | frozenset(
    attr for attr, ident in _IDENT.items() if ident in _MULTIPLE)


class LeanProperties(Properties):
    """paho's ``Properties``, its tables shared (they are never changed) and names looked up
    by dict. Everything else, checks, errors and bytes on the wire, is paho's."""

    def __init__(self, packetType: int) -> None:
        state = self.__dict__
        state["packetType"] = packetType
        state["types"] = _TYPES
        state["names"] = _NAMES
        state["properties"] = _KINDS

    def getIdentFromName(self, compressedName: str) -> int:
        return _IDENT.get(compressedName, -1)

    def getNameFromIdent(self, identifier: int) -> str | None:
        return _NAME.get(identifier)

    def allowsMultiple(self, compressedName: str) -> bool:
        return _IDENT.get(compressedName, -1) in _MULTIPLE

    def __setattr__(self, name: str, value: Any) -> None:
        attr = name.replace(" ", "")
        ident = _IDENT.get(attr)
        if attr in _PRIVATE or ident is None or attr in _PAHO_SETS or \
                self.packetType not in _KINDS[ident][1]:
            # paho's own path: its error for a bad name or packet type, its checks.
            super().__setattr__(name, value)  # type: ignore[no-untyped-call]
            return
        object.__setattr__(self, attr, value)

    def clear(self) -> None:
        state = self.__dict__
        for attr in _IDENT:
            state.pop(attr, None)

    def isEmpty(self) -> bool:
        state = self.__dict__
        return not any(attr in state for attr in _IDENT)

    def pack(self) -> bytes:
        # paho's order (its names table), so the bytes are paho's.
        state = self.__dict__
        out = bytearray()
        for attr, ident in _IDENT.items():
            if attr in state:
                kind = _KINDS[ident][0]
                values = state[attr] if ident in _MULTIPLE else (state[attr],)
                for value in values:
                    out += self.writeProperty(ident, kind, value)  # type: ignore[no-untyped-call]
        length: bytes = VariableByteIntegers.encode(len(out))  # type: ignore[no-untyped-call]
        return length + bytes(out)


def publish_properties() -> LeanProperties:
    """A new, empty set of PUBLISH properties for a message we send."""
    return LeanProperties(PacketTypes.PUBLISH)


def install() -> bool:
    """Have paho's packet decoder build :class:`LeanProperties` (it names the class through its
    module's global); False where this paho has no such decoder (before 2.2: its reads keep
    paho's own class, and every message still works). Idempotent."""
    try:
        import paho.mqtt._packet as paho_packet
    except ImportError:
        return False
    if not isinstance(getattr(paho_packet, "Properties", None), type):
        return False
    paho_packet.Properties = LeanProperties  # type: ignore[attr-defined]
    return True

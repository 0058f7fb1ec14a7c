"""Where a broker is and who connects to it, as the device, the cloud and the tools pass it
around (mqtt_client/endpoint.py reads broker URLs into it). No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str = ""
    password: str = field(default="", repr=False)

    def with_user(self, username: str, password: str) -> BrokerAddress:
        return BrokerAddress(self.host, self.port, username, password)

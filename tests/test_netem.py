"""The WAN link of simulator/netem.py, against real peers: an echo server and Mosquitto.

What a test or benchmark relies on when it puts distance between a device and its broker: the
round trip grows by the configured delay in each direction (never less: the lower bound is what
figures rest on), bandwidth caps how fast a large transfer goes, order and bytes are kept, and
each fault does what real links do (a black hole swallows, a reset resets, a cut closes and
refuses until restored)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.netem import LinkProfile, WanProxy
from tests.conftest import Broker
from tests.waiting import eventually


class Echo:
    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass


@pytest.fixture(scope="module")
def echo() -> Iterator[Echo]:
    e = Echo()
    yield e
    e.listener.close()


def _connect(proxy: WanProxy) -> socket.socket:
    s = socket.create_connection((proxy.host, proxy.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _recv_exact(s: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return bytes(out)


def test_round_trip_takes_at_least_the_configured_delay(echo: Echo) -> None:
    with WanProxy("127.0.0.1", echo.port, LinkProfile(up_ms=15, down_ms=25)) as proxy:
        s = _connect(proxy)
        times = []
        for i in range(5):
            t = time.monotonic()
            s.sendall(b"ping%d" % i)
            assert _recv_exact(s, 5) == b"ping%d" % i
            times.append(time.monotonic() - t)
        s.close()
    assert min(times) >= 0.040
    # Loose: the proxy must not add much of its own beyond the delay (2 shared CPUs).
    assert sorted(times)[2] < 0.040 + 0.030


def test_bandwidth_caps_a_large_transfer(echo: Echo) -> None:
    size = 400_000
    with WanProxy("127.0.0.1", echo.port, LinkProfile(bandwidth=2_000_000)) as proxy:
        s = _connect(proxy)
        t = time.monotonic()
        threading.Thread(target=s.sendall, args=(b"x" * size,), daemon=True).start()
        assert _recv_exact(s, size) == b"x" * size
        elapsed = time.monotonic() - t
        s.close()
    # Up and down each carry 400 kB at 2 MB/s: at least 0.2 s each way, pipelined.
    assert elapsed >= 0.2


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=3000), min_size=1, max_size=12))
def test_bytes_and_order_are_kept(echo: Echo, chunks: list[bytes]) -> None:
    with WanProxy("127.0.0.1", echo.port, LinkProfile(up_ms=1, down_ms=1)) as proxy:
        s = _connect(proxy)
        for c in chunks:
            s.sendall(c)
        expected = b"".join(chunks)
        assert _recv_exact(s, len(expected)) == expected
        s.close()


def test_blackhole_swallows_and_restore_forwards_again(echo: Echo) -> None:
    with WanProxy("127.0.0.1", echo.port) as proxy:
        s = _connect(proxy)
        s.sendall(b"one")
        assert _recv_exact(s, 3) == b"one"
        proxy.blackhole()
        s.sendall(b"lost")
        assert eventually(lambda: proxy.bytes_up >= 3 + 4, timeout=5)  # it reached the link
        proxy.restore()
        s.sendall(b"two")
        # The positive signal that "lost" vanished: the next answer is "two", not "losttwo".
        assert _recv_exact(s, 3) == b"two"
        s.close()


def test_reset_resets_and_new_connections_work(echo: Echo) -> None:
    with WanProxy("127.0.0.1", echo.port) as proxy:
        s = _connect(proxy)
        s.sendall(b"a")
        assert _recv_exact(s, 1) == b"a"
        proxy.reset()
        # A quiet client learns at once: its next read is the reset, not a wait.
        s.settimeout(5)
        with pytest.raises(ConnectionResetError):
            s.recv(1)
        s2 = _connect(proxy)
        s2.sendall(b"d")
        assert _recv_exact(s2, 1) == b"d"
        s2.close()


def test_cut_closes_and_refuses_until_restored(echo: Echo) -> None:
    with WanProxy("127.0.0.1", echo.port) as proxy:
        s = _connect(proxy)
        proxy.cut()
        assert s.recv(1) == b""  # closed under the client
        s.close()
        refused = _connect(proxy)
        assert refused.recv(1) == b""
        refused.close()
        proxy.restore()
        s3 = _connect(proxy)
        s3.sendall(b"e")
        assert _recv_exact(s3, 1) == b"e"
        s3.close()


def test_mqtt_through_the_link(broker: Broker) -> None:
    """paho to Mosquitto through a 40 ms round trip: connect and a QoS 1 publish each cost what
    a copier far from its broker would pay."""
    m = broker.mosquitto
    addr = broker.address("cloud-0")
    with WanProxy(m.host, m.port, LinkProfile.rtt(40)) as proxy:
        got = threading.Event()
        acked = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="netem-test",
                        protocol=mqtt.MQTTv5)
        c.username_pw_set(addr.username, addr.password)
        c.on_message = lambda *_: got.set()
        c.on_publish = lambda *_: acked.set()
        connected = threading.Event()
        c.on_connect = lambda *_: connected.set()
        t = time.monotonic()
        c.connect(proxy.host, proxy.port)
        c.loop_start()
        try:
            assert connected.wait(5)
            assert time.monotonic() - t >= 0.040  # CONNECT/CONNACK crossed the link
            c.subscribe("mfd/v1/dev/netem/notify", qos=1)
            t = time.monotonic()
            c.publish("mfd/v1/dev/netem/notify", b"x", qos=1)
            assert acked.wait(5)
            assert time.monotonic() - t >= 0.040
            assert got.wait(5)
        finally:
            c.loop_stop()
            c.disconnect()

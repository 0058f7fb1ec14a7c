"""A device's list of brokers, without a network: ``[broker] url`` as a string or a list
(device_app/config.py), its round trip through device.toml, ``mfd provision`` with several
brokers, ``mfd cloud --broker`` parsing (cloud/worker.py), and the failover decision
(mqtt_client/failover.py) driven by a clock of the test's own."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.worker import worker_brokers
from device_app import config as device_config
from device_app.config import broker_url_key, parse_config, to_toml
from device_app.runner import Device
from firmware_stubs.mfd_controller import MfdControllerStub
from mqtt_client.endpoint import endpoint
from mqtt_client.failover import Failover, FailoverTiming
from protocol.errors import ConfigError
from provisioning.provision import ProvisionRequest, provision

BASE = {"device": {"id": "dev-1"}, "engine": {"kind": "emulator"}}

#: Strings that are often broker URLs (hosts from a small set, so duplicates happen), and
#: anything else.
hosts = st.sampled_from(["a", "b", "broker.example.org", "10.0.0.7", "B"])
ports = st.one_of(st.none(), st.integers(0, 70000))
urls = st.builds(lambda scheme, host, port, tail: f"{scheme}{host}"
                 + ("" if port is None else f":{port}") + tail,
                 st.sampled_from(["mqtt://", "mqtts://", "http://", "mqtt:/", ""]), hosts, ports,
                 st.sampled_from(["", "", "/", "/x", "?q"]))
strings = st.one_of(urls, st.text(max_size=30))


def with_url(value: object) -> dict[str, object]:
    return {**BASE, "broker": {"url": value}}


@given(st.lists(strings, max_size=5))
def test_any_list_of_strings_is_a_config_or_an_error_naming_the_key(value: list[str]) -> None:
    try:
        cfg = parse_config(with_url(value))
    except ConfigError as exc:
        assert "broker.url" in exc.message
        return
    assert cfg.broker_urls == tuple(value) and len(value) >= 1
    # It reads back from the device.toml it writes.
    assert parse_config(tomllib.loads(to_toml(cfg))) == cfg
    # Each one is usable by the link, or refused when the link is built, its key named; and
    # no broker is there twice.
    where = []
    for i, url in enumerate(value):
        key = broker_url_key(cfg, i)
        try:
            where.append(endpoint(url, key=key))
        except ConfigError as exc:
            assert f"'{key}'" in exc.message
    assert len({(e.host, e.port, e.tls_ca_file is None) for e in where}) == len(where)


@given(urls)
def test_a_single_url_is_a_string_or_a_list_of_one(url: str) -> None:
    try:
        as_string = parse_config(with_url(url))
    except ConfigError as exc:
        assert "broker.url" in exc.message
        with pytest.raises(ConfigError):
            parse_config(with_url([url]))
        return
    assert parse_config(with_url([url])) == as_string
    assert as_string.broker_fallbacks == ()
    assert 'url = "' in to_toml(as_string)  # one broker is written as it always was


@pytest.mark.parametrize(("value", "named"), [
    ([], "'broker.url' is an empty list"),
    (["mqtt://a", "mqtt://a:1883"], "'broker.url[1]'"),
    (["mqtts://A", "mqtts://a:8883"], "'broker.url[1]'"),
    (["mqtt://a", "ftp://b"], "'broker.url[1]'"),
    (["mqtt://a", 7], "'broker.url[1]' must be a string"),
    (["mqtt://cloud:s3cret@a", "http://cloud:s3cret@b"], "'broker.url[1]'"),
    ({"primary": "mqtt://a"}, "'broker.url' must be a broker URL or a list"),
])
def test_a_bad_list_names_the_offending_url(value: object, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(with_url(value))
    assert named in info.value.message
    assert "s3cret" not in info.value.message  # a password in a URL is never quoted


def test_a_bad_host_or_port_stops_the_device_at_start_with_its_key(tmp_path: Path) -> None:
    # device.toml keeps any text after the scheme (it round-trips); the device refuses it
    # when it builds its link, before it connects anywhere, naming which broker.
    cfg = parse_config({**with_url(["mqtt://a:1883", "mqtt://cloud:s3cret@b:x"]),
                        "files": {"journal": str(tmp_path / "j.db")}})
    for url, said in (("mqtt://cloud:s3cret@b:x", "'broker.url[1]' = 'mqtt://cloud:***@b:x' "
                       "has a bad port"), ("mqtts://[b", "'broker.url[1]' = 'mqtts://[b' is not "
                                           "a URL"), ("mqtt://:1883", "names no host")):
        engine = MfdControllerStub()
        try:
            with pytest.raises(ConfigError) as info:
                Device(replace(cfg, broker_fallbacks=(url,)), "pw", engine=engine)
        finally:
            engine.close()
        assert said in info.value.message and "s3cret" not in info.value.message


def test_the_same_host_on_another_port_or_scheme_is_another_broker() -> None:
    cfg = parse_config(with_url(["mqtt://a", "mqtt://a:1884", "mqtts://a"]))
    assert cfg.broker_url == "mqtt://a" and cfg.broker_fallbacks == ("mqtt://a:1884",
                                                                     "mqtts://a")


def test_provision_writes_a_list_of_brokers_that_reads_back(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("secret-pw\n")
    req = ProvisionRequest(directory=tmp_path / "dev", device_id="copier-5",
                           broker_url=("mqtt://a:1883", "mqtt://b:1883"), username="copier-5",
                           password="secret-pw", engine_kind="emulator")
    result = provision(req, device_config)
    cfg = device_config.load_config(tmp_path / "dev" / "device.toml")
    assert cfg.broker_urls == ("mqtt://a:1883", "mqtt://b:1883")
    assert result.config.broker_urls == cfg.broker_urls  # type: ignore[attr-defined]
    refused = replace(req, broker_url=("mqtt://a:1883", "mqtt://a"))
    with pytest.raises(ConfigError, match=r"broker\.url\[1\]"):
        provision(refused, device_config)


def test_the_cloud_takes_several_brokers_each_once() -> None:
    eps = worker_brokers(["mqtt://a:1883", "mqtts://b", "tcp://c"], "cloud", "pw",
                         ca_file="ca.pem")
    assert [(e.host, e.port, e.username, e.tls_ca_file) for e in eps] == [
        ("a", 1883, "cloud", None), ("b", 8883, "cloud", "ca.pem"), ("c", 1883, "cloud", None)]
    for bad, said in ((["mqtt://a", "mqtt://a:1883"], "given twice"),
                      (["mqtt://a", "http://b"], "broker URL 'http://b' must look like"),
                      ([], "at least one")):
        with pytest.raises(ConfigError, match=said):
            worker_brokers(bad, "cloud", "pw")


# ---------------------------------------------------------------- the failover decision

T = FailoverTiming(switch_after=2.0, probe_every=10.0, probe_timeout=1.0, healthy_probes=3,
                   hold=60.0, max_healthy_probes=12)


def lowest(low: float, _high: float) -> float:
    return low  # the jitter's lower bound: times the test can name


def test_a_broker_is_left_after_the_switch_delay_and_the_list_wraps_around() -> None:
    f = Failover(3, T, rng=lowest)
    f.connecting(0.0)
    assert f.next_action(1.9, connected=False, idle=True) is None  # still retrying it
    assert f.next_action(2.0, connected=False, idle=True) == ("switch", 1)
    assert f.next_action(3.9, connected=False, idle=True) is None
    assert f.next_action(4.0, connected=False, idle=True) == ("switch", 2)
    assert f.next_action(6.0, connected=False, idle=True) == ("switch", 0)


def test_a_short_drop_heals_on_the_same_broker() -> None:
    f = Failover(2, T, rng=lowest)
    f.connected(0.0)
    f.lost(10.0)
    assert f.next_action(11.0, connected=False, idle=True) is None
    f.connected(11.5)
    assert f.next_action(20.0, connected=True, idle=True) is None and f.current == 0


def test_the_switch_delay_is_jittered_and_bounded() -> None:
    delays = set()
    for _ in range(50):
        f = Failover(2, T)
        f.connecting(0.0)
        t = next(t / 100 for t in range(0, 1000) if f.next_action(
            t / 100, connected=False, idle=True) is not None)
        delays.add(t)
    assert len(delays) > 5 and min(delays) >= 2.0 and max(delays) <= 3.01


def on_secondary() -> Failover:
    f = Failover(2, T, rng=lowest)
    f.connecting(0.0)
    assert f.next_action(2.0, connected=False, idle=True) == ("switch", 1)
    f.connected(2.5)  # the first probe is due at 2.5 + 7.5
    return f


def probe(f: Failover, now: float, healthy: bool) -> None:
    assert f.next_action(now, connected=True, idle=True) == ("probe", 0)
    assert f.next_action(now, connected=True, idle=True) is None  # one at a time
    f.probe_result(healthy, now + 0.5)


def test_the_primary_is_probed_and_returned_to_after_good_probes_in_a_row() -> None:
    f = on_secondary()
    assert f.next_action(9.9, connected=True, idle=True) is None
    probe(f, 10.0, True)
    probe(f, 18.0, True)
    probe(f, 26.0, True)
    assert f.next_action(33.9, connected=True, idle=False) is None  # busy: not now
    assert f.next_action(34.0, connected=True, idle=True) == ("return", 0)
    f.returned(34.2)
    assert f.current == 0 and f.next_action(100.0, connected=True, idle=True) is None


def test_a_primary_that_comes_and_goes_is_not_returned_to() -> None:
    f = on_secondary()
    now = 10.0
    for healthy in (True, True, False, True, True, False, True, True, False):
        probe(f, now, healthy)
        now += 8.0
    assert f.current == 1 and f.good_probes == 0


def test_a_return_that_does_not_hold_asks_for_longer_health_next_time() -> None:
    f = on_secondary()
    now = 10.0
    for _ in range(3):
        probe(f, now, True)
        now += 8.0
    assert f.next_action(now, connected=True, idle=True) == ("return", 0)
    f.returned(now)
    f.lost(now + 5)  # lost again at once: the return did not hold
    assert f.needed == 6
    assert f.next_action(now + 7.0, connected=False, idle=True) == ("switch", 1)
    f.connected(now + 7.5)
    now += 15.0
    for _ in range(5):
        probe(f, now, True)
        now += 8.0
    assert f.next_action(now, connected=True, idle=True) == ("probe", 0)  # not yet: 6 needed
    f.probe_result(True, now)
    assert f.next_action(now + 8.0, connected=True, idle=True) == ("return", 0)
    f.returned(now + 8.0)
    # Held past `hold`: the usual need again.
    assert f.next_action(now + 8.0 + T.hold, connected=True, idle=True) is None
    assert f.needed == 3


def test_failover_timing_is_checked() -> None:
    with pytest.raises(ValueError):
        FailoverTiming(switch_after=0)
    with pytest.raises(ValueError):
        FailoverTiming(healthy_probes=0)

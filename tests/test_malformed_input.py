"""Malformed and hostile input to the cloud (issue 8, defect 11): every malformed request gets an
error answer a device can decode, or is dropped by design; malformed statuses and events are
dropped without an exception; the worker keeps serving.

Two levels: a property test feeding generated payloads to ``CloudService.handle`` on a real
store (SQLite and PostgreSQL), and the real path through Mosquitto, where a raw paho client with
a device's credentials sends the garbage and waits for each answer (or, for what is dropped by
design, for the worker's counter and a later good request's answer: positive signals, no sleep).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import World
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raw_device import RawDevice
from waiting import eventually

from cloud.demo import DEMO_USERS, seed_demo
from cloud.service import CloudService, record_status
from cloud.storage.postgres import PostgresStore
from cloud.storage.sql import SqlStore
from cloud.storage.sqlite import SqliteStore
from protocol import messages as m
from protocol.errors import ErrorCode, RemoteError

WIRE_CODES = {c.value for c in ErrorCode}

# ----------------------------------------------------------------------------- generators

#: Strings a peer can put in JSON that Python's parser lets through: any code point, lone
#: surrogates (from "\udXXX" escapes), NUL.
hostile_text = (st.text(alphabet=st.characters(blacklist_categories=()), max_size=10)
                | st.sampled_from(["\ud800", "x\udfff", "\x00", "a\x00b", "\ud83d\ude00"]))
hostile_numbers = (st.integers() | st.sampled_from([2**53, 2**63, 2**64, -(2**63) - 1, 10**300])
                   | st.floats(allow_nan=True, allow_infinity=True))
hostile_values = st.recursive(
    st.none() | st.booleans() | hostile_numbers | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=6)

#: A plausible request of each type, to get past the envelope and into the service.
GOOD: dict[str, dict[str, object]] = {
    "identify": {"method": "card", "value": DEMO_USERS[0].badge},
    "identify.associate": {"request_id": "r1", "card": "0000000042", "method": "code",
                           "value": DEMO_USERS[0].access_code},
    "jobs.list": {"session": "s" * 32},
    "jobs.release": {"request_id": "r2", "session": "s" * 32, "job_ids": ["j_1"]},
    "jobs.delete": {"request_id": "r3", "session": "s" * 32, "job_ids": ["j_1"]},
    "jobs.document": {"release_id": "rel_1", "job_id": "j_1"},
    "jobs.printed": {"request_id": "r4", "release_id": "rel_1", "job_id": "j_1"},
    "jobs.failed": {"request_id": "r5", "release_id": "rel_1", "job_id": "j_1"},
    "logout": {"request_id": "r6", "session": "s" * 32},
}


@st.composite
def hostile_requests(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(sorted(GOOD)))
    obj: dict[str, object] = {"v": 1, "type": kind, **GOOD[kind]}
    for _ in range(draw(st.integers(1, 3))):
        # Mostly the fields this type has (they reach the service), strings half the time.
        name = draw(st.sampled_from(sorted(obj)) | st.sampled_from(
            ["method", "username", "pin", "offset", "length", "reason", "copies", "all_held",
             "extra"]))
        obj[name] = draw(hostile_text | hostile_values)
    if draw(st.booleans()):
        # Written raw: a lone surrogate becomes bytes that are not UTF-8.
        return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return json.dumps(obj).encode("utf-8")


def assert_an_answer(answer: bytes, payload: bytes) -> str:
    """The answer is UTF-8 JSON that a device decodes: a result, or an error with a wire code
    that is not ``internal`` (the cloud understood what was wrong). Returns the outcome."""
    answer.decode("utf-8")
    answering = m.request_type_of(payload)
    try:
        m.decode_response(answer, answering)
    except RemoteError as exc:
        assert exc.code in WIRE_CODES
        assert exc.code != "internal", (payload, exc.message)
        return exc.code
    return "ok"


# ----------------------------------------------------------------------------- the service


@pytest.fixture(scope="module", params=("sqlite", "postgres"))
def module_store(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlStore]:
    s: SqlStore
    if request.param == "sqlite":
        s = SqliteStore(tmp_path_factory.mktemp("malformed") / "cloud.db")
    else:
        s = PostgresStore(request.getfixturevalue("pg_database").schema_url())
    seed_demo(s, now=time.time())
    yield s
    s.close()


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=hostile_requests())
def test_every_hostile_request_gets_an_answer_a_device_decodes(module_store: SqlStore,
                                                               payload: bytes) -> None:
    service = CloudService(module_store)
    assert_an_answer(service.handle("copier-1", payload), payload)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(st.sampled_from(["state", "epoch", "since", "type", "v"]),
                              hostile_numbers | hostile_text | hostile_values, max_size=3))
def test_a_hostile_status_is_dropped_without_an_exception(module_store: SqlStore,
                                                          fields: dict[str, object]) -> None:
    before = module_store.device_status("copier-2")
    obj = {"v": 1, "type": "status", "state": "online", "epoch": 7, **fields}
    payload = json.dumps(obj).encode()
    try:
        status = m.decode_status(payload)
    except Exception:
        status = None
    recorded = record_status(module_store, "copier-2", payload, time.time())
    after = module_store.device_status("copier-2")
    if status is None:
        assert not recorded and after == before
    else:
        assert after is not None and (not recorded or after == (status.state, status.epoch))


@pytest.mark.parametrize("payload", [
    b'{"v":1,"type":"status","state":"online","epoch":' + str(2**64).encode() + b"}",
    b'{"v":1,"type":"status","state":"online","epoch":5,"since":1' + b"0" * 400 + b"}",
])
def test_a_status_with_a_huge_integer_does_not_reach_the_store(payload: bytes,
                                                               tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "c.db")
    seed_demo(store, now=time.time(), jobs=False)
    assert record_status(store, "copier-1", payload, time.time()) is False
    assert store.device_status("copier-1") == ("unknown", -1)


# ----------------------------------------------------------------------------- through Mosquitto


def raw_device(world: World, device_id: str) -> RawDevice:
    addr = world.broker.address(device_id)
    return RawDevice(addr.host, addr.port, device_id, addr.password, addr.username)


GARBAGE_REQUESTS: list[tuple[bytes, str]] = [
    (b'{"v":1,"type":"\\ud800"}', "invalid_field"),
    (b'{"v":1,"type":"identify\\udfff","method":"card","value":"1"}', "invalid_field"),
    (b'{"v":1,"type":"identify","method":"card","value":"\\udc00"}', "invalid_field"),
    ('{"v":1,"type":"identify","method":"card","value":"\udc00"}'.encode(
        "utf-8", "surrogatepass"), "bad_request"),
    (b'{"v":1,"type":"identify","method":"password","value":"x","username":"a\\u0000b"}',
     "invalid_field"),
    (b'{"v":1,"type":"jobs.document","release_id":"r","job_id":"j","offset":' +
     str(2**64).encode() + b"}", "invalid_field"),
    (b'{"v":1,"type":"jobs.document","release_id":"r","job_id":"j","offset":' +
     str(2**53 - 1).encode() + b"}", "unknown_release"),
    (b'{"v":1,"type":"jobs.list","session":"s","offset":NaN}', "bad_request"),
    (b'{"v":1,"type":"jobs.list","session":"s","limit":1e999}', "invalid_field"),
    (b'{"v":1,"type":"jobs.list","session":"s","offset":-Infinity}', "bad_request"),
    (b'{"v":' + b"9" * 300 + b',"type":"identify"}', "unsupported_version"),
    (b'{"v":1,"type":' + b"1" * 300 + b"}", "invalid_field"),
    (b'{"v":1,"type":"identify","method":["card"],"value":1}', "invalid_field"),
    (b'{"v":1,"type":"identify","extra":' + b"[" * 20000 + b"]" * 20000 + b"}", "bad_request"),
    (b"", "bad_request"),
    (b"\xff\xfe\x00", "bad_request"),
    (b"[1,2,3]", "bad_request"),
    (b"x" * (m.MAX_REQUEST_BYTES + 1), "too_large"),
]


def test_garbage_requests_through_mosquitto_are_each_answered(world: World) -> None:
    device = raw_device(world, "copier-1")
    try:
        sent = [(device.request(payload), payload, code) for payload, code in GARBAGE_REQUESTS]
        for corr, payload, code in sent:
            answer = device.answer(corr)
            assert assert_an_answer(answer, payload) == code, (payload[:80], answer[:200])
        # Dropped by design: no Response Topic, nobody to answer. The good request after it is
        # answered, and the worker counted the drop: it ran, and the worker still serves.
        device.request(b'{"v":1,"type":"\\ud800"}', reply_to=None)
        good = device.request(m.encode(m.Identify("card", DEMO_USERS[0].badge)))
        result = m.decode_response(device.answer(good), "identify")
        assert isinstance(result, m.IdentifyResult) and result.display_name == "Alice Martin"
        assert world.worker.dropped == 1
        assert world.worker.failed == 0
    finally:
        device.close()


GARBAGE_STATUSES = [
    b'{"v":1,"type":"status","state":"online","epoch":' + str(2**64).encode() + b"}",
    b'{"v":1,"type":"status","state":"online","epoch":5,"since":1' + b"0" * 400 + b"}",
    b'{"v":1,"type":"status","state":"online","epoch":5,"since":NaN}',
    b'{"v":1,"type":"status","state":"\\ud800","epoch":5}',
    b'{"v":1,"type":"\\ud800","state":"online","epoch":5}',
    b"\xed\xa0\x80",
    b"",
]
GARBAGE_EVENTS = [
    b'{"v":1,"type":"config.ack","version":' + str(2**40).encode() + b',"applied":true}',
    b'{"v":1,"type":"config.ack","version":3,"applied":false,"reason":"a\\u0000b"}',
    b'{"v":1,"type":"config.ack","version":3,"applied":false,"reason":"\\udc00"}',
    b'{"v":1,"type":"config.ack","version":1e999,"applied":true}',
    b'{"v":1,"type":"\\ud800"}',
    b"\xff",
]


def test_garbage_statuses_and_events_are_dropped_and_the_worker_keeps_serving(
        world: World) -> None:
    device = raw_device(world, "copier-2")
    worker = world.worker
    try:
        # A known status first: the broker is shared by the whole run, so an earlier test's
        # copier-2 may have left a retained status (its Will, with a clock-based epoch) that
        # the worker records first; only a newer epoch supersedes it (the epoch rule).
        epoch = int(time.time() * 1000) + 10**9
        device.publish("status", m.encode(m.DeviceStatus("online", epoch)))
        assert eventually(lambda: world.store.device_status("copier-2") == ("online", epoch))
        statuses, events = worker.statuses, worker.events
        for payload in GARBAGE_STATUSES:
            device.publish("status", payload)
        for payload in GARBAGE_EVENTS:
            device.publish("events", payload)
        # Positive signals: the worker processed every one of them to the end...
        assert eventually(lambda: worker.statuses >= statuses + len(GARBAGE_STATUSES)
                          and worker.events >= events + len(GARBAGE_EVENTS))
        assert worker.failed == 0
        assert world.store.device_status("copier-2") == ("online", epoch)
        # ...and a good status after them is recorded, a good request answered.
        device.publish("status", m.encode(m.DeviceStatus("online", epoch + 1)))
        assert eventually(
            lambda: world.store.device_status("copier-2") == ("online", epoch + 1))
        good = device.request(m.encode(m.Identify("card", DEMO_USERS[1].badge)))
        result = m.decode_response(device.answer(good), "identify")
        assert isinstance(result, m.IdentifyResult) and result.display_name == "Bob Okafor"
        assert worker.failed == 0
    finally:
        device.publish("status", m.encode(m.DeviceStatus("offline", 43)))
        device.close()


def test_a_job_name_with_nul_from_the_store_does_not_spoil_the_device_s_list(
        tmp_path: Path) -> None:
    """Strings on the wire never hold NUL; a SQLite store can (a print client's job name), so
    the cloud shows it as U+FFFD rather than send an answer the device must refuse."""
    from cloud.directory import submit_job

    store = SqliteStore(tmp_path / "c.db")
    seed_demo(store, now=time.time(), jobs=False)
    submit_job(store, DEMO_USERS[0].email, "re\x00port.pdf", b"%PDF-1.4 x", source="W\x00S")
    service = CloudService(store)
    ident = m.decode_response(service.handle(
        "copier-1", m.encode(m.Identify("card", DEMO_USERS[0].badge))), "identify")
    assert isinstance(ident, m.IdentifyResult)
    listed = m.decode_response(service.handle("copier-1", m.encode(m.ListJobs(ident.session))),
                               "jobs.list")
    assert isinstance(listed, m.JobList)
    assert [(j.name, j.source) for j in listed.jobs] == [("re\ufffdport.pdf", "W\ufffdS")]

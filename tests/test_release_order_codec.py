"""The ``release.order`` command (protocol/messages.py): any Unicode, any number of jobs within
bounds, round trips; anything malformed is the protocol's error naming what is wrong, never a
crash; and the device's loop drops a malformed order, queues a good one once, and still hands
every other command (a config push) to whoever applies it (device_app/app.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_app.app import DeviceApp
from device_app.view import Action
from firmware_stubs.mfd_controller import MfdControllerStub
from protocol import messages as m
from protocol.errors import ErrorCode, ProtocolError

# Unicode text a message can carry: no NUL, no lone surrogates (schema.is_text).
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
ids = st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True)
languages = st.sampled_from(["", "de", "ja", "fr-CH", "zh_Hant"])
jobs = st.builds(m.ReleasedJob, job_id=ids, name=text.filter(lambda s: len(s) <= 256),
                 size=st.integers(0, m.MAX_INT),
                 sha256=st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
                 pages=st.integers(0, m.MAX_INT), copies=st.integers(1, 999),
                 color=st.booleans(), duplex=st.booleans())
orders = st.builds(m.ReleaseOrder, release_id=ids,
                   jobs=st.lists(jobs, min_size=1, max_size=8).map(tuple),
                   user_name=text.filter(lambda s: len(s) <= 128), language=languages)


@settings(max_examples=60)
@given(orders)
def test_every_order_round_trips(order: m.ReleaseOrder) -> None:
    assert m.decode_command(m.encode(order)) == order


def test_the_job_count_is_bounded_both_ways() -> None:
    job = m.ReleasedJob(job_id="j", name="n", size=1, sha256="0" * 64)
    assert len(m.decode_command(m.encode(m.ReleaseOrder("r", (job,) * 500))).jobs) == 500
    for count in (0, 501):
        payload = json.dumps({"v": 1, "type": "release.order", "release_id": "r",
                              "jobs": [m.to_object(job)] * count}).encode()
        with pytest.raises(ProtocolError) as caught:
            m.decode_command(payload)
        assert caught.value.field == "jobs"


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_an_order_or_the_protocol_error(data: bytes) -> None:
    try:
        m.decode_command(data)
    except ProtocolError as exc:
        assert exc.code in {c.value for c in ErrorCode}


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(2**53, 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=10)
FIELDS = ["release_id", "jobs", "user_name", "language", "extra"]


@settings(max_examples=200)
@given(st.dictionaries(st.sampled_from(FIELDS), values, max_size=5))
def test_malformed_orders_name_the_field(body: dict[str, object]) -> None:
    data = json.dumps({"v": 1, "type": "release.order", **body}).encode()
    try:
        order = m.decode_command(data)
    except ProtocolError as exc:
        assert exc.error_code is ErrorCode.INVALID_FIELD
        assert exc.field is not None and exc.field.split("[")[0].split(".")[0] in FIELDS
    else:
        assert m.decode_command(m.encode(order)) == order


def test_another_command_is_not_taken_for_an_order() -> None:
    with pytest.raises(ProtocolError) as caught:
        m.decode_command(b'{"v":1,"type":"config","version":3}')
    assert caught.value.error_code is ErrorCode.UNKNOWN_TYPE


class _Link:
    """Enough of a link for the loop: connected, a device id, nothing sent."""

    connected = True
    device_id = "copier-1"
    on_connection = None
    on_command = None

    def request(self, *_a: object) -> None:  # pragma: no cover - nothing is sent here
        raise AssertionError("no request expected")


def test_the_loop_drops_a_malformed_order_and_keeps_a_good_one_once() -> None:
    engine = MfdControllerStub()
    link = _Link()
    app = DeviceApp(link, engine)  # type: ignore[arg-type]
    configs: list[bytes] = []
    app.on_command = configs.append
    # Nobody wired the cmd topic: the app did, so orders reach it.
    assert link.on_command is not None
    try:
        # A person is at the panel (typing a code): the order must wait, not print.
        app.tap(Action.ENTER_CODE)
        app.step(0)
        good = m.encode(m.ReleaseOrder("rel_1", (m.ReleasedJob("j1", "a", 1, "0" * 64),),
                                       user_name="Zoë"))
        for payload in (b'{"v":1,"type":"release.order","release_id":"r","jobs":[]}',
                        b'{"v":1,"type":"release.order"', good, good,
                        b'{"v":1,"type":"config","version":2}'):
            link.on_command(payload)
        app.step(0)
        assert [o.release_id for o in app.orders] == ["rel_1"]
        assert app.orders_repeated == 1
        # What is not JSON at all is no order: the config applier refuses it, as ever.
        assert configs == [b'{"v":1,"type":"release.order"', b'{"v":1,"type":"config",'
                           b'"version":2}']
    finally:
        app.stop()
        engine.close()

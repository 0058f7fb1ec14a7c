"""Access-code entry: the pure KeypadBuffer (examples and properties) and the KeypadSource."""

from __future__ import annotations

from typing import cast

import pytest
from clocks import Clock
from fakes import IdleLink
from hypothesis import given, settings
from hypothesis import strategies as st

from device_app.app import DeviceApp
from device_app.ports import CloudLink, PrintEngine
from device_app.session import CodeEntered
from protocol.errors import ConfigError
from readers.keypad import (
    MASK_CHAR,
    CodeEntry,
    Key,
    KeypadBuffer,
    KeypadSource,
    Rejected,
    RejectReason,
)


def type_keys(buffer: KeypadBuffer, keys: str | list[str], now: float = 0.0) -> list[object]:
    return [buffer.press(k, now) for k in keys]


# -- the buffer, by example ------------------------------------------------------------


def test_digits_then_enter_give_the_code() -> None:
    buffer = KeypadBuffer()
    assert type_keys(buffer, "2580") == [None] * 4
    assert buffer.display == MASK_CHAR * 4 == "\u2022\u2022\u2022\u2022"
    assert buffer.press(Key.ENTER, 1.0) == CodeEntry("2580")
    assert len(buffer) == 0 and buffer.display == ""


def test_backspace_and_clear() -> None:
    buffer = KeypadBuffer()
    type_keys(buffer, ["1", "2", "3", Key.BACKSPACE, "4", "5"])
    assert buffer.press(Key.ENTER, 0) == CodeEntry("1245")
    type_keys(buffer, ["9", "9", Key.CLEAR, Key.BACKSPACE, "7", "7", "7", "7"])
    assert buffer.press("enter", 0) == CodeEntry("7777")  # the plain strings work too


def test_too_short_is_rejected_with_a_reason_and_cleared() -> None:
    buffer = KeypadBuffer(min_length=6)
    type_keys(buffer, "12345")
    outcome = buffer.press(Key.ENTER, 0)
    assert isinstance(outcome, Rejected) and outcome.reason is RejectReason.TOO_SHORT
    assert "at least 6" in outcome.message and len(buffer) == 0
    empty = buffer.press(Key.ENTER, 0)
    assert isinstance(empty, Rejected) and empty.reason is RejectReason.TOO_SHORT


def test_full_buffer_refuses_more() -> None:
    buffer = KeypadBuffer()
    assert type_keys(buffer, "0123456789") == [None] * 10
    outcome = buffer.press("5", 0)
    assert isinstance(outcome, Rejected) and outcome.reason is RejectReason.FULL
    assert buffer.press(Key.ENTER, 0) == CodeEntry("0123456789")


@pytest.mark.parametrize("key", ["A", "a", "", "12", "#", " ", "\u0661"])  # last: Arabic 1
def test_digits_only_keypad_refuses_other_keys(key: str) -> None:
    buffer = KeypadBuffer()
    outcome = buffer.press(key, 0)
    assert isinstance(outcome, Rejected) and outcome.reason is RejectReason.NOT_ALLOWED
    assert "digits only" in outcome.message and len(buffer) == 0


def test_letters_when_allowed() -> None:
    buffer = KeypadBuffer(letters=True)
    assert type_keys(buffer, "AB12CZ") == [None] * 6
    lower = buffer.press("a", 0)  # codes are case-sensitive: no silent upper-casing
    assert isinstance(lower, Rejected) and lower.reason is RejectReason.NOT_ALLOWED
    assert buffer.press(Key.ENTER, 0) == CodeEntry("AB12CZ")


def test_inactivity_clears_before_the_next_key() -> None:
    buffer = KeypadBuffer(timeout_s=30)
    type_keys(buffer, "1234", now=10.0)
    assert not buffer.expire(39.9)
    assert buffer.press("5", 39.9) is None  # within the timeout: the 5th character
    outcome = buffer.press(Key.ENTER, 69.9)  # walked away: nothing left to enter
    assert isinstance(outcome, Rejected) and outcome.reason is RejectReason.TOO_SHORT


def test_expire_tick_clears_and_a_backwards_clock_does_not() -> None:
    buffer = KeypadBuffer(timeout_s=5)
    type_keys(buffer, "123", now=100.0)
    assert not buffer.expire(50.0)  # clock went back: keep
    assert len(buffer) == 3
    assert buffer.expire(105.0) and len(buffer) == 0
    assert not buffer.expire(500.0)  # nothing left to clear


def test_code_never_in_repr() -> None:
    entry = CodeEntry("483920")
    assert "483920" not in repr(entry) and "6 chars" in repr(entry)
    buffer = KeypadBuffer()
    type_keys(buffer, "483920")
    assert "483920" not in repr(buffer) and "6 of 10" in repr(buffer)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_length": 11}, {"max_length": 0}, {"min_length": 0}, {"min_length": 8, "max_length": 6},
     {"timeout_s": 0}, {"timeout_s": float("inf")}],
)
def test_bad_settings_are_config_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="keypad"):
        KeypadBuffer(**kwargs)  # type: ignore[arg-type]


# -- the buffer, by property -------------------------------------------------------------

KEYS = st.one_of(
    st.sampled_from(list("0123456789")),
    st.sampled_from(list("AZaz#")),
    st.sampled_from([Key.BACKSPACE, Key.CLEAR, Key.ENTER]),
    st.text(max_size=3),
)
# (key, seconds since the previous key); now and then a pause past the 30 s timeout.
PRESSES = st.lists(st.tuples(KEYS, st.one_of(st.floats(0, 5), st.just(30.0), st.floats(30, 99))),
                   max_size=60)


@settings(max_examples=300, deadline=None)
@given(presses=PRESSES, letters=st.booleans(), min_length=st.integers(1, 10))
def test_any_key_sequence_keeps_a_consistent_state(
        presses: list[tuple[str, float]], letters: bool, min_length: int) -> None:
    buffer = KeypadBuffer(min_length=min_length, letters=letters, timeout_s=30)
    model: list[str] = []  # what should be in the buffer
    now = last = 0.0
    for key, gap in presses:
        now += gap
        if now - last >= 30:
            model.clear()
        last = now
        outcome = buffer.press(key, now)
        if key == Key.ENTER:
            if len(model) >= min_length:
                assert outcome == CodeEntry("".join(model))
            else:
                assert isinstance(outcome, Rejected)
                assert outcome.reason is RejectReason.TOO_SHORT
            model.clear()
        elif key == Key.BACKSPACE:
            assert outcome is None
            if model:
                model.pop()
        elif key == Key.CLEAR:
            assert outcome is None
            model.clear()
        elif key in buffer.allowed and len(model) < 10:
            assert outcome is None
            model.append(key)
        else:
            assert isinstance(outcome, Rejected)
        assert len(buffer) == len(model) <= 10
        assert buffer.display == MASK_CHAR * len(model)
        assert len(buffer.display) == len(buffer)


@given(presses=PRESSES)
def test_enter_always_leaves_an_empty_buffer(presses: list[tuple[str, float]]) -> None:
    buffer = KeypadBuffer(letters=True)
    now = 0.0
    for key, gap in presses:
        now += gap
        buffer.press(key, now)
    outcome = buffer.press(Key.ENTER, now)
    assert len(buffer) == 0 and buffer.display == ""
    if isinstance(outcome, CodeEntry):
        assert 4 <= len(outcome.code) <= 10
        assert all(c.isascii() and (c.isdigit() or c.isupper()) for c in outcome.code)
        assert outcome.code not in repr(outcome)


# -- the source --------------------------------------------------------------------------


def test_source_hands_completed_codes_to_the_sink() -> None:
    codes: list[str] = []
    source = KeypadSource()
    inactive = source.press("1")
    assert isinstance(inactive, Rejected) and inactive.reason is RejectReason.INACTIVE
    source.start(codes.append)
    for key in "4839":
        source.press(key)
    assert source.display == MASK_CHAR * 4
    assert source.press(Key.ENTER) == CodeEntry("4839")
    assert codes == ["4839"] and source.codes == 1
    short = source.press(Key.ENTER)
    assert isinstance(short, Rejected) and codes == ["4839"]


def test_stop_forgets_a_half_typed_code() -> None:
    codes: list[str] = []
    source = KeypadSource()
    source.start(codes.append)
    for key in "123":
        source.press(key)
    source.stop()
    source.stop()
    assert source.display == "" and not source.running
    source.start(codes.append)
    source.press("4")
    assert isinstance(source.press(Key.ENTER), Rejected) and codes == []


def test_source_timeout_uses_its_clock() -> None:
    clock = Clock()
    source = KeypadSource(KeypadBuffer(timeout_s=10), clock=clock)
    source.start(lambda code: None)
    for key in "1234":
        source.press(key)
    clock.now = 10.0
    assert source.expire() and source.display == ""


def test_sink_may_stop_the_source() -> None:
    source = KeypadSource()
    source.start(lambda code: source.stop())
    for key in ["5", "5", "5", "5", Key.ENTER]:
        source.press(key)
    assert not source.running


def test_source_feeds_the_device_app() -> None:
    app = DeviceApp(cast(CloudLink, IdleLink()), cast(PrintEngine, object()))
    try:
        source = KeypadSource(KeypadBuffer(min_length=6))
        source.start(app.enter_code)
        for key in [*"739120", Key.ENTER]:
            source.press(key)
        assert app.events.get_nowait() == CodeEntered("739120")
    finally:
        app.printer.close()

"""Held-card suppression: per card, window restarted by every read, bounded memory."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from readers.debounce import Debouncer


def test_first_read_is_accepted() -> None:
    assert Debouncer().accept("0001234567", 100.0)


def test_held_card_is_suppressed() -> None:
    d = Debouncer(window_s=2.0)
    assert d.accept("A", 0.0)
    # An RDM6300 repeats the frame every ~100 ms while the card is in the field.
    assert not any(d.accept("A", t / 10) for t in range(1, 50))


def test_window_runs_from_the_last_read_of_that_card() -> None:
    d = Debouncer(window_s=2.0)
    assert d.accept("A", 0.0)
    assert not d.accept("A", 1.5)
    assert not d.accept("A", 3.0)  # 3 s after the first read, but only 1.5 s after the last
    assert d.accept("A", 5.0)  # lifted at 3.0, tapped again 2 s later


def test_other_card_is_accepted_at_once() -> None:
    d = Debouncer(window_s=2.0)
    assert d.accept("A", 0.0)
    assert d.accept("B", 0.01)
    assert not d.accept("A", 0.02)  # A's own window is unaffected by B


def test_same_card_after_the_window_is_accepted() -> None:
    d = Debouncer(window_s=2.0)
    assert d.accept("A", 10.0)
    assert not d.accept("A", 11.999)
    assert d.accept("A", 13.999)
    assert d.accept("A", 15.999)  # exactly one window later counts as a new tap


def test_zero_window_accepts_every_read() -> None:
    d = Debouncer(window_s=0.0)
    assert all(d.accept("A", 1.0) for _ in range(3))


@pytest.mark.parametrize("window", [-1.0, float("nan"), float("inf")])
def test_bad_window_is_refused(window: float) -> None:
    with pytest.raises(ValueError):
        Debouncer(window_s=window)


def test_expired_cards_are_forgotten() -> None:
    d = Debouncer(window_s=2.0)
    for i in range(100):
        d.accept(f"{i:010d}", float(i))
    assert len(d) <= 3


@given(st.lists(st.tuples(st.integers(0, 10_000), st.floats(0, 1))), st.integers(1, 16))
def test_memory_is_bounded(reads: list[tuple[int, float]], cap: int) -> None:
    d = Debouncer(window_s=1_000.0, max_cards=cap)
    now = 0.0
    for card, step in reads:
        now += step
        d.accept(str(card), now)
        assert len(d) <= cap


@given(st.lists(st.floats(0, 5), min_size=1, max_size=30))
def test_matches_the_rule_for_a_single_card(gaps: list[float]) -> None:
    # Reference: accepted iff it is the first read or the gap since the previous read >= window.
    d = Debouncer(window_s=2.0)
    now = 0.0
    assert d.accept("A", now)
    for gap in gaps:
        previous, now = now, now + gap
        # The gap as the timestamps give it: float addition may round ``gap`` itself.
        assert d.accept("A", now) == (now - previous >= 2.0)

"""protocol/assignment.py: a device's brokers in rendezvous order (its home first). Properties:
the order is a permutation of the distinct brokers given, it does not depend on the order they
were named in, and taking away a broker that is not a device's home leaves its home alone (the
"minimal on change" docs/fleet.md promises)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.assignment import broker_order, home_broker

names = st.text(min_size=1, max_size=30)
devices = st.text(min_size=1, max_size=40)


@given(devices, st.lists(names, min_size=1, max_size=8), st.randoms())
def test_an_order_is_every_broker_once_whatever_order_they_came_in(
        device: str, brokers: list[str], rnd: object) -> None:
    order = broker_order(device, brokers)
    assert sorted(order) == sorted(set(brokers))
    shuffled = list(brokers)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert broker_order(device, shuffled) == order
    assert home_broker(device, brokers) == order[0]


@given(devices, st.lists(names, min_size=2, max_size=8, unique=True), st.data())
def test_taking_away_another_broker_leaves_the_home_and_the_order(
        device: str, brokers: list[str], data: st.DataObject) -> None:
    order = broker_order(device, brokers)
    gone = data.draw(st.sampled_from(order[1:]))
    assert broker_order(device, [b for b in brokers if b != gone]) == tuple(
        b for b in order if b != gone)


def test_no_broker_is_an_error() -> None:
    assert broker_order("copier-1", []) == ()
    with pytest.raises(ValueError):
        home_broker("copier-1", [])

"""Feeding a codec its input in pieces, as a serial port delivers it: the one helper the codec
tests share (h11's tests feed whole and one byte at a time; Hypothesis picks the cuts here)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TypeVar

from readers.codecs._receivebuffer import ReceiveBuffer

E = TypeVar("E")


def split_feed(decoder: ReceiveBuffer[E], data: bytes, cuts: list[int], *,
               max_pending: int | Callable[[], int]) -> list[E]:
    """Feed ``data`` cut at the given offsets, through receive_data/next_event.

    After each piece the decoder may hold back at most ``max_pending`` bytes (a callable for a
    bound that moves, as a pcProx's line limit does when a reply changes its layout): what
    bounds its memory whatever arrives.
    """
    events: list[E] = []
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    for lo, hi in itertools.pairwise(bounds):
        decoder.receive_data(data[lo:hi])
        limit = max_pending() if callable(max_pending) else max_pending
        assert decoder.pending_bytes <= limit
        while (event := decoder.next_event()) is not None:
            events.append(event)
    return events

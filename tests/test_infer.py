"""Pipeline inference: PC/SC UIDs, Wiegand frames, the no-pipeline report, bounds."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import ConfigError
from readers.numbers.convert import Pipeline
from readers.numbers.infer import MAX_APPLICATIONS, InferError, InferResult, infer
from readers.numbers.wiegand import encode

# 4-byte MIFARE Classic UIDs as a PC/SC reader returns them (FF CA 00 00 00), and the numbers
# a door system enrolled for them: the UID read as a little-endian integer, in decimal.
UIDS = ["04A1B2C3", "8E3F0912", "5D77C0A4"]


def little_endian_decimal(uid: str) -> str:
    return str(int.from_bytes(bytes.fromhex(uid), "little"))


UID_PAIRS = [(uid, little_endian_decimal(uid)) for uid in UIDS]

# Three HID Prox cards on a USB reader that sends the raw 26-bit frame in hex (parity bits
# included): the FIELD_NOTES card 10482 and two more from other facility codes.
PROX_CARDS = [(2, 10482), (12, 3456), (200, 65000)]
WIEGAND_PAIRS = [(f"{encode('h10301', fc, card):08X}", str(card)) for fc, card in PROX_CARDS]


def timed(pairs: list[tuple[str, str]], max_steps: int = 3) -> tuple[float, InferResult]:
    start = time.perf_counter()
    result = infer(pairs, max_steps)
    return time.perf_counter() - start, result


def test_uid_pairs_give_reverse_bytes_then_hex2dec() -> None:
    assert UID_PAIRS[0] == ("04A1B2C3", "3283263748")
    elapsed, result = timed(UID_PAIRS)
    assert result.found and result.exhausted
    assert result.best == Pipeline.parse("reverse-bytes|hex2dec")
    assert [str(p) for p in result.pipelines] == ["reverse-bytes|hex2dec"]
    assert result.near_misses == ()
    assert elapsed < 0.5


def test_wiegand_frames_give_h10301() -> None:
    assert WIEGAND_PAIRS[0] == ("000451E5", "10482")
    result = infer(WIEGAND_PAIRS)
    assert result.best == Pipeline.parse("wiegand:h10301")
    for pipeline in result.pipelines:
        assert len(pipeline) == 1  # simplest first: nothing longer once one step fits
        assert all(pipeline.apply(raw) == expected for raw, expected in WIEGAND_PAIRS)


def test_facility_codes_are_found_too() -> None:
    pairs = [(raw, str(fc)) for (raw, _), (fc, _) in zip(WIEGAND_PAIRS, PROX_CARDS, strict=True)]
    assert infer(pairs).best == Pipeline.parse("wiegand:h10301:fc")


def test_decimal_frames_from_a_keyboard_wedge() -> None:
    # Some readers type the frame in decimal: convert back to hex first.
    pairs = [(str(int(raw, 16)), card) for raw, card in WIEGAND_PAIRS]
    assert infer(pairs).best == Pipeline.parse("dec2hex|wiegand:h10301")


def test_reader_prefix_is_trimmed() -> None:
    # A serial reader that prefixes "RR" and the bit count, as in FIELD_NOTES.
    pairs = [(f"RR0026{raw[1:]}", card) for raw, card in WIEGAND_PAIRS]
    result = infer(pairs)
    assert result.best == Pipeline.parse("substr:6|wiegand:h10301")
    assert all(len(p) == 2 for p in result.pipelines)


def test_em4100_tag_with_leading_zeros() -> None:
    pairs = [("0012D687", "0001234567"), ("E3086CED", "3808980205"), ("00000A2B", "0000002603")]
    assert infer(pairs).best == Pipeline.parse("hex2dec|lpad:10")


def test_expected_number_cut_out_of_the_reading() -> None:
    pairs = [("ID:12345678;", "12345678"), ("ID:00042424;", "00042424"),
             ("ID:98765432;", "98765432")]
    assert infer(pairs).best == Pipeline.parse("substr:3:8")


def test_already_the_number_is_the_empty_pipeline() -> None:
    result = infer([("1234", "1234"), ("5678", "5678")])
    assert result.pipelines == (Pipeline(),)


def test_no_pipeline_names_the_pair_that_defeats_the_nearest() -> None:
    # The third expected number was mistyped (last digit).
    typo = [*UID_PAIRS[:2], (UID_PAIRS[2][0], UID_PAIRS[2][1][:-1] + "0")]
    result = infer(typo)
    assert not result.found and result.best is None
    nearest = result.near_misses[0]
    assert nearest.pipeline == Pipeline.parse("reverse-bytes|hex2dec")
    assert (nearest.matched, nearest.pair) == (2, 2)
    assert nearest.got == UID_PAIRS[2][1]
    assert nearest.reason is None


def test_near_miss_refused_by_a_step_carries_the_reason() -> None:
    # The third reading lost a bit on the wire: its parity fails, the others decode.
    flipped = f"{int(WIEGAND_PAIRS[2][0], 16) ^ 1:08X}"
    bad = [*WIEGAND_PAIRS[:2], (flipped, WIEGAND_PAIRS[2][1])]
    result = infer(bad)
    assert not result.found
    nearest = result.near_misses[0]
    assert nearest.pipeline == Pipeline.parse("wiegand:h10301")
    assert (nearest.matched, nearest.pair, nearest.got) == (2, 2, None)
    assert nearest.reason is not None and "bit 26" in nearest.reason


def test_same_raw_with_different_expected_is_a_conflict() -> None:
    result = infer([("04A1B2C3", "1"), ("8E3F0912", "2"), ("04A1B2C3", "3")])
    assert result.conflict == (0, 2)
    assert not result.found and result.applications == 0


@pytest.mark.parametrize(("pairs", "max_steps", "named"), [
    ([], 3, "no pairs"),
    ([("", "1")], 3, "pair 1 has an empty raw"),
    ([("1", "2"), ("3", "")], 3, "pair 2 has an empty expected"),
    ([("1", "2")], 0, "max_steps"),
    ([("1", "2")], 9, "max_steps"),
])
def test_bad_input_is_an_infer_error(pairs: list[tuple[str, str]], max_steps: int,
                                     named: str) -> None:
    with pytest.raises(InferError, match=named) as info:
        infer(pairs, max_steps=max_steps)
    assert isinstance(info.value, ConfigError)


def test_bounded_on_hostile_pairs() -> None:
    # Long readings that nothing maps: the search must still end quickly.
    pairs = [(f"{i:x}" * 16, str(i * 7919)) for i in range(11, 16)]
    elapsed, result = timed(pairs, max_steps=4)
    assert elapsed < 2.0
    assert not result.found
    assert result.applications <= MAX_APPLICATIONS


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(min_size=4, max_size=7), min_size=3, max_size=5, unique=True),
       st.sampled_from(["reverse-bytes|hex2dec", "hex2dec", "hex2dec|lpad:20",
                        "reverse-bits|hex2dec", "invert|hex2dec"]))
def test_a_planted_pipeline_is_found_or_beaten_by_a_simpler_one(uids: list[bytes],
                                                                  planted: str) -> None:
    pipeline = Pipeline.parse(planted)
    pairs = [(uid.hex().upper(), pipeline.apply(uid.hex().upper())) for uid in uids]
    if len({expected for _, expected in pairs}) < len(pairs):
        return
    result = infer(pairs)
    assert result.found
    assert len(result.pipelines[0]) <= len(pipeline)
    for found in result.pipelines:
        assert all(found.apply(raw) == expected for raw, expected in pairs)

"""``mfd reader decode/convert/infer``: Wiegand decoding, pipelines and inference from the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from reader_helpers import run_cli

from readers.numbers.wiegand import encode

REPO = Path(__file__).resolve().parents[1]

# FIELD_NOTES: a HID Prox card printed 10482 reads 000451E5 on a USB reader.
PROX_10482 = "000451E5"
PROX_10482_BITS = "00000001000101000111100101"
UID_PAIRS = ["04A1B2C3=3283263748", "8E3F0912=302595982", "5D77C0A4=2764076893"]


# -- decode, Wiegand ---------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    "0x000451E5", PROX_10482, "451e5", "0X000451E5", PROX_10482_BITS, "0b" + PROX_10482_BITS,
    "0 00000010 0010100011110010 1",
])
def test_decode_h10301_json(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("reader", "decode", "--format", "h10301", value, "--json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "format": "h10301", "facility": 2, "card": 10482, "parity_ok": True}


def test_decode_brief_example(capsys: pytest.CaptureFixture[str]) -> None:
    frame = f"0x{encode('h10301', 12, 3456):08X}"
    assert run_cli("reader", "decode", "--format", "H10301", frame, "--json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "format": "h10301", "facility": 12, "card": 3456, "parity_ok": True}


def test_decode_text_shows_the_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("reader", "decode", "--format", "h10301", PROX_10482) == 0
    out = capsys.readouterr().out
    assert "bits:     0 00000010 0010100011110010 1" in out
    assert "facility: 2" in out and "card:     10482" in out and "parity:   ok" in out


@pytest.mark.parametrize(("fmt", "facility", "card"), [
    ("h10306", 65535, 1), ("c1000", 2643, 163271), ("h10304", 1000, 123456),
    ("h10302", None, 2**35 - 1),
])
def test_decode_other_formats(fmt: str, facility: int | None, card: int,
                              capsys: pytest.CaptureFixture[str]) -> None:
    frame = f"{encode(fmt, facility, card):X}"
    assert run_cli("reader", "decode", "--format", fmt, frame, "--json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "format": fmt, "facility": facility, "card": card, "parity_ok": True}


def test_decode_same_37_bits_two_ways(capsys: pytest.CaptureFixture[str]) -> None:
    frame = f"{encode('h10304', 1000, 123456):X}"
    run_cli("reader", "decode", "--format", "h10304", frame, "--json")
    run_cli("reader", "decode", "--format", "h10302", frame, "--json")
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert (first["facility"], first["card"]) == (1000, 123456)
    assert (second["facility"], second["card"]) == (None, 1000 * 2**19 + 123456)


def test_decode_bad_parity_names_the_bit(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("reader", "decode", "--format", "h10301", "000451E4") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "bit 26 (odd parity over bits 14-25)" in captured.err


def test_decode_bad_parity_json_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    # Flip bit 2 (top of the facility code): the even parity at bit 1 no longer holds.
    value = f"{int(PROX_10482, 16) ^ (1 << 24):08X}"
    assert run_cli("reader", "decode", "--format", "h10301", value, "--json") == 1
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["parity_ok"] is False and out["failed_parity_bits"] == [1]
    assert "bit 1 (even parity over bits 2-13)" in captured.err


@pytest.mark.parametrize(("value", "named"), [
    ("0x1000451E5", "33 significant bits"),
    ("0b1010", "4 bits"),
    ("0b12", "bits (0 and 1)"),
    ("hello", "as hex"),
    ("", "as hex"),
])
def test_decode_bad_wiegand_value(value: str, named: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("reader", "decode", "--format", "h10301", value) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err


def test_decode_em4100_still_works(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("reader", "decode", "--format", "EM4100", "0A0012D68749", "--json") == 0
    assert json.loads(capsys.readouterr().out)["number"] == "0001234567"


def test_decode_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        run_cli("reader", "decode", "--format", "h99999", "00")
    assert info.value.code == 2


# -- convert -----------------------------------------------------------------------------


def test_convert_prints_one_line_per_value(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("reader", "convert", "--pipeline", "reverse-bytes|hex2dec",
                   "04A1B2C3", "8E3F0912") == 0
    assert capsys.readouterr().out.splitlines() == ["3283263748", "302595982"]


def test_convert_papercut_chain(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("reader", "convert", "--pipeline", "ascii-enc|hex2dec",
                   "3934364542443238") == 0
    assert capsys.readouterr().out == "2490285352\n"


def test_convert_error_names_the_value_and_step(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("reader", "convert", "--pipeline", "strip-zeros|hex2dec",
                   "00FF", "12 34", "AB") == 1
    captured = capsys.readouterr()
    assert captured.out == "255\n"  # stopped at the bad value: line N is value N's result
    assert "value 2" in captured.err and "step 2 (hex2dec)" in captured.err


def test_convert_bad_pipeline_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("reader", "convert", "--pipeline", "hex2dec|lpad:x", "FF") == 2
    assert "step 2" in capsys.readouterr().err


def test_convert_empty_pipeline_is_identity(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("reader", "convert", "--pipeline", "", "0042") == 0
    assert capsys.readouterr().out == "0042\n"


# -- infer ---------------------------------------------------------------------------------


def test_infer_uid_pairs(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("reader", "infer", *UID_PAIRS) == 0
    assert capsys.readouterr().out.splitlines() == ["reverse-bytes|hex2dec"]


def test_infer_wiegand_pairs(capsys: pytest.CaptureFixture[str]) -> None:
    pairs = [f"{encode('h10301', fc, card):08X}={card}"
             for fc, card in [(2, 10482), (12, 3456), (200, 65000)]]
    assert pairs[0] == f"{PROX_10482}=10482"
    assert run_cli("reader", "infer", *pairs) == 0
    assert capsys.readouterr().out.splitlines()[0] == "wiegand:h10301"


def test_infer_no_pipeline_names_the_defeating_pair(capsys: pytest.CaptureFixture[str]) -> None:
    typo = [*UID_PAIRS[:2], "5D77C0A4=2764076890"]
    assert run_cli("reader", "infer", *typo) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no pipeline of up to 3 step(s)" in captured.err
    assert ("nearest: reverse-bytes|hex2dec maps 2 of 3 pairs, but pair 3 "
            "(5D77C0A4=2764076890) gives 2764076893") in captured.err


def test_infer_conflicting_pairs(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("reader", "infer", "04A1B2C3=1", "04A1B2C3=2") == 1
    assert "pairs 1 and 2 have the same reading" in capsys.readouterr().err


def test_infer_pair_without_equals_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("reader", "infer", "04A1B2C3=1", "8E3F0912") == 2
    assert "pair 2 must be RAW=EXPECTED" in capsys.readouterr().err


def test_infer_raw_may_contain_equals(capsys: pytest.CaptureFixture[str]) -> None:
    # PaperCut's example reader output: number, '=', a check digit.
    assert run_cli("reader", "infer", "5235092385=8=5235092385", "1234567890=1=1234567890") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "substr:0:10"


def test_infer_ambiguous_pairs_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    # "00" -> "0" is both hex2dec and strip-zeros: one pair cannot tell them apart.
    assert run_cli("reader", "infer", "00=0") == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) > 1
    assert "add a pair" in captured.err


# -- the real entry point ----------------------------------------------------------------


def test_mfd_reader_convert_subprocess() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mfdkit", "reader", "convert", "--pipeline",
         "wiegand:h10301", PROX_10482, f"{encode('h10301', 12, 3456):08X}"],
        cwd=REPO, capture_output=True, text=True, timeout=30, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "10482\n3456\n", "")

"""OSDP card data to a card number. Pure: the OSDP adapter hands it what libosdp reported.

OSDP readers report a card either as raw bits (osdp_RAW, format "Wiegand" or "unspecified")
or as characters (osdp_FMT / ASCII). See :func:`card_number`:

* **Raw bits** -> the whole bit string, parity bits included and the padding at the end
  dropped, as one unsigned number in upper-case hex, zero-padded to the digits the bit count
  needs (26 bits -> 7 digits, 32 -> 8, 37 -> 10). The adapter does not guess the layout:
  the same bit count does not mean the same layout (H10301 and proprietary 26-bit formats
  differ), and a wrong guess silently merges or splits cards. Splitting out facility and
  card number, dropping parity, hex to decimal belong to the per-device conversion rules,
  applied the same way to every reader. Hex keeps the bits readable against a layout table;
  the width keeps leading zeros fixed per format and keeps a 26-bit and a 32-bit credential
  with the same value apart. It is the spelling of the bits in mfdkit's Wiegand serial line
  (``W26:00451E5``, :mod:`readers.codecs.wiegand_serial`). Worked example: the H10301 card
  facility 2 / card 10482 reads ``00451E5``; the conversion step ``wiegand:h10301`` turns
  it into ``10482`` (parity checked), as it does the ``000451E5`` a raw-mode USB reader
  shows for the same card (FIELD_NOTES).
* **ASCII** (osdp_FMT, deprecated since OSDP 2.2 and no longer sent by libosdp's PD, but
  still met on old readers) -> the characters as the reader sent them, surrounding spaces
  and NULs stripped: the reader was configured to do the decoding, so its digits are the
  number.

``CardRead.raw`` is the card data bytes as the reader sent them, in both cases.
"""

from __future__ import annotations

from protocol.errors import FrameError

__all__ = ["FMT_ASCII", "FMT_RAW_UNSPECIFIED", "FMT_RAW_WIEGAND", "card_number"]

#: Card data formats as libosdp numbers them (``osdp_card_formats_e``; the adapter checks
#: at import that the library still agrees, as this module may not import it).
FMT_RAW_UNSPECIFIED = 0
FMT_RAW_WIEGAND = 1
FMT_ASCII = 2

_FMT_RAW = (FMT_RAW_UNSPECIFIED, FMT_RAW_WIEGAND)
_ASCII_PAD = b" \t\r\n\x00"


def card_number(fmt: int, bits: int | None, data: bytes) -> str:
    """The canonical card number for OSDP card data (see the module docstring).

    ``fmt`` is libosdp's format code, ``bits`` the bit count for raw formats, ``data`` the
    card data bytes. Raises :class:`FrameError` for data that cannot be a card read; the
    message never contains the data.
    """
    if fmt in _FMT_RAW:
        if bits is None or bits <= 0:
            raise FrameError(f"OSDP raw card read with a bit count of {bits}")
        if len(data) != (bits + 7) // 8:
            raise FrameError(f"OSDP raw card read of {bits} bits came with {len(data)} "
                             "data bytes")
        value = int.from_bytes(data, "big") >> (len(data) * 8 - bits)
        return f"{value:0{(bits + 3) // 4}X}"
    if fmt == FMT_ASCII:
        text = data.strip(_ASCII_PAD)
        if not text or not all(0x20 <= b < 0x7F for b in text):
            raise FrameError(f"OSDP ASCII card read of {len(data)} bytes is empty or not "
                             "printable ASCII")
        return text.decode("ascii")
    raise FrameError(f"OSDP card read in unknown format {fmt}")

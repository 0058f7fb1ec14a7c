"""For the property tests that draw any text: which of it UTF-8 can carry (a lone surrogate
cannot, and such text must be refused by name, not written half-way)."""

from __future__ import annotations


def utf8_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

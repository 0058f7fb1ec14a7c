"""Redaction of secrets in text that quotes configuration: the one function for every error,
log line, audit row and stored reason that may quote a reader spec.

A reader spec can carry a key (``osdp:/dev/ttyUSB0?address=0&scbk=<32 hex digits>``), and a
*malformed* spec is exactly the one an error quotes whole: a stray ``&address``, a mistyped
scheme, a missing ``?``. So redaction cannot rely on the spec parsing; it works on any text:

- the value of every parameter whose name looks secret (``scbk``, ``key``, ``pin``,
  ``password``, ``secret``, ``token``, ``psk``..., alone or as one ``_``/``-``/``.``-separated
  part of a longer name such as ``master_key``), given with ``=`` (spaces allowed) or a
  directly attached ``:``, up to the next ``&``, ``#``, ``;``, quote, bracket or space;
- the password of a URL's user information (``mqtt://cloud:<password>@host``,
  ``postgresql://u:<password>@db/x``): store and broker URLs are quoted by the errors about them;
- any long run of hex digits (20 or more, or 16 pairs with separators), whatever its name: a
  misspelled ``sckb=`` still carries a 32-digit key.

Pure, and idempotent: redacting redacted text changes nothing.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "redact"]

MASK = "***"

_WORDS = (r"scbk|s?key|keys|pin|pins|pass|passwd|password|passphrase|pwd|secret|secrets|token"
          r"|psk|mk|credentials?|auth")
_NAME = rf"(?:[A-Za-z0-9]+[_.-])*(?:{_WORDS})(?:[_.-][A-Za-z0-9]+)*"
# The value runs to the next parameter separator, quote, bracket or space; a value that is
# already the mask (idempotence) or a placeholder such as ``<32 hex digits>`` is left alone.
_SECRET_PARAM = re.compile(
    rf"(?i)(?<![A-Za-z0-9])({_NAME})(\s*=\s*|:)(?!\*\*\*|<[^<>]*>)([^&#;\s'\"`,)\]}}]+)")
# ``scheme://user:password@``: the user name stays (it says which account), the password goes.
_URL_PASSWORD = re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@'\"]*):(?!\*\*\*@)([^@/\s'\"]*)@")
# No word boundaries: a key glued to other letters (``sckb=<key>x``) is still a key. Ids in
# messages are shorter (16 hex digits), so they stay readable.
_HEX_RUN = re.compile(r"[0-9A-Fa-f]{20,}")
_HEX_PAIRS = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[:\s-]){15,}[0-9A-Fa-f]{2}"
                        r"(?![0-9A-Fa-f])")


def redact(text: str) -> str:
    """``text`` with the values of secret-looking parameters and long hex runs masked."""
    text = _URL_PASSWORD.sub(lambda mt: f"{mt.group(1)}:{MASK}@", text)
    text = _SECRET_PARAM.sub(lambda mt: f"{mt.group(1)}{mt.group(2)}{MASK}", text)
    text = _HEX_PAIRS.sub(MASK, text)
    return _HEX_RUN.sub(MASK, text)

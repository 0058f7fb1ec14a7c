"""How the cloud keeps secrets it must recognise but never show.

* Card numbers are *lookup keys* (a badge tap must find its user in one query, thousands of
  times a minute), so they are stored as HMAC-SHA256 under the org's secret.
* Access codes are lookup keys too, but short and guessable, so they get a slow hash: scrypt
  with a salt derived from the org's secret (one salt per org, not per user, because the code
  itself must find the user). Every candidate code then costs an attacker with a stolen store
  one scrypt per org (10^6 six-digit codes: hours, not microseconds), and the cloud ~15 ms per
  code login; the guessing lockout (cloud/identity.py) bounds what a device can ask.
* Passwords are checked against one user's record, so they get a slow, salted hash (scrypt,
  from the standard library) that makes a stolen store expensive to attack.
* Session tokens and one-time tokens are random and long; their SHA-256 is enough.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# scrypt cost: ~16 MiB and a few tens of ms per check on the 2-core reference machine.
_N, _R, _P = 2**14, 8, 1


def card_hash(org_secret: bytes, number: str) -> str:
    return hmac.new(org_secret, b"card:" + number.encode("utf-8"), hashlib.sha256).hexdigest()


# Access-code scrypt cost: ~15 ms per code login on the 2-core reference machine.
_CODE_N = 2**13


def code_hash(org_secret: bytes, code: str) -> str:
    salt = hmac.new(org_secret, b"code-salt", hashlib.sha256).digest()
    return hashlib.scrypt(code.encode("utf-8"), salt=salt, n=_CODE_N, r=_R, p=_P,
                          dklen=32).hex()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str | None) -> bool:
    """Constant-time check; a missing hash still costs one scrypt so timing does not tell
    whether the username exists."""
    if not stored:
        hashlib.scrypt(b"x", salt=b"0" * 16, n=_N, r=_R, p=_P, dklen=32)
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n),
                             r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))

"""Offline login and release: the signed bundle a cloud hands a device, and the cryptography both
ends share.

Theory of operation
-------------------
When its org's policy allows it, a device asks the cloud now and then (``offline.sync``) for an
**offline bundle**: who may sign in at this device while the cloud is unreachable, which of their
held jobs the device may print then, and until when. The bundle's body is canonical JSON, signed
by the cloud with Ed25519; the device checks the signature against the key it was provisioned
with, that the bundle names this device, that its sequence number is higher than any it has
accepted (a replayed older bundle is refused) and that it has not expired, by the later of the
device's clock and the latest time it has ever seen (a clock set back does not revive a bundle).

Nothing in a bundle is a card number or an access code. The cloud keeps, for each card and code,
a **verifier**: scrypt of the value under the org's offline salt (computed when the value passes
through the cloud in clear: enrolment, a sign-in). A bundle carries, per user, HMAC-SHA256 of each
verifier under a key drawn for that bundle, so entries cannot be matched across bundles or
devices. The device computes the verifier of what is presented (one scrypt, ~15 ms) and looks up
its HMAC.

The documents of the listed jobs are pre-delivered encrypted (AES-256-GCM, 256 KiB chunks on a
fixed grid, each sealed on its own) under a **user key** that only the cloud can derive; the
bundle carries that key wrapped under each of the user's verifiers. The device can therefore read
a user's documents only after that user presented their card or code: a stolen device holds
ciphertext and the bundle, and every guess at a card or code costs the thief one scrypt.

What a device did offline (sign-ins, jobs printed or failed) is journalled on the device and
reported with ``offline.report`` when the cloud is back; docs/offline.md has the whole flow and the
threat model.

This module is pure (bytes in, values out; time arrives as an argument) and imports only the
error tree: the cloud and the device both use it, and neither may change the format alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protocol.errors import MfdError

#: The bundle format's version (the body's ``"v"``).
BUNDLE_VERSION = 1
#: scrypt cost of a verifier: ~15 ms per sign-in on the device, per guess for a thief.
SCRYPT_N = 2**13
SCRYPT_R = 8
SCRYPT_P = 1
#: Pre-delivered documents travel and rest in chunks of this many plaintext bytes (the last one
#: shorter); a chunk is sealed on its own, so it is read back without the others. The same as
#: ``protocol.messages.DOCUMENT_CHUNK_BYTES`` (a test holds them equal).
CHUNK_BYTES = 256 * 1024
#: Bytes AES-GCM adds to each chunk (its tag).
TAG_BYTES = 16
#: Release ids a device mints for a release made offline: the cloud never issues one that starts
#: so, and the device answers every request about such a release itself.
OFFLINE_RELEASE_PREFIX = "off-"
#: Bounds of a bundle (the cloud's selection stays within them; a device refuses more).
MAX_USERS = 5000
MAX_JOBS = 2000
MAX_CREDENTIALS = 16  # cards plus the code, per user
#: Clock skew tolerated between cloud and device when a bundle is accepted.
SKEW_S = 300.0

KINDS = ("card", "code")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_WRAP_AAD = b"mfd offline user key v1"
_WRAP_INFO = b"mfd offline wrap v1"
_KEY_PREFIX = "ed25519:"


class OfflineError(MfdError):
    """A bundle, a key or a sealed chunk that cannot be used; ``code`` says why (bad_bundle,
    bad_signature, wrong_device, replayed, expired, clock_rollback, bad_key, bad_chunk)."""

    code = "offline"


# --------------------------------------------------------------------------- keys


def new_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_bytes(key: Ed25519PrivateKey) -> bytes:
    """The 32 raw bytes of a signing key (kept by the cloud, never sent)."""
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def load_private_key(raw: bytes) -> Ed25519PrivateKey:
    if len(raw) != 32:
        raise OfflineError("an offline signing key is 32 bytes", code="bad_key")
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public key as a device's configuration holds it: ``ed25519:<base64 of 32 bytes>``."""
    from cryptography.hazmat.primitives import serialization

    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A public key written by :func:`public_key_text`, or OfflineError (bad_key)."""
    if not isinstance(text, str) or not text.startswith(_KEY_PREFIX):
        raise OfflineError("an offline key is written 'ed25519:' and base64", code="bad_key")
    try:
        raw = base64.b64decode(text[len(_KEY_PREFIX):], validate=True)
    except ValueError:
        raise OfflineError("an offline key's base64 does not decode", code="bad_key") from None
    if len(raw) != 32:
        raise OfflineError("an Ed25519 public key is 32 bytes", code="bad_key")
    return Ed25519PublicKey.from_public_bytes(raw)


def key_id(text: str) -> str:
    """A short name of a public key (16 hex digits of its SHA-256), for logs and the doctor."""
    return hashlib.sha256(text.encode("ascii", "replace")).hexdigest()[:16]


def sign(key: Ed25519PrivateKey, body: bytes) -> bytes:
    return key.sign(body)


# --------------------------------------------------------------------------- verifiers


def verifier(salt: bytes, kind: str, value: str, n: int = SCRYPT_N) -> bytes:
    """What the cloud keeps of a card number or an access code for offline use, and what the
    device computes from what is presented: scrypt of ``kind:value`` under the org's salt."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    return hashlib.scrypt(f"{kind}:{value}".encode("utf-8", "surrogatepass"), salt=salt, n=n,
                          r=SCRYPT_R, p=SCRYPT_P, dklen=32)


def lookup(list_key: bytes, verifier_: bytes) -> str:
    """A verifier's entry in one bundle: HMAC-SHA256 under the bundle's key, in hex."""
    return hmac.new(list_key, verifier_, hashlib.sha256).hexdigest()


def _wrapping_key(verifier_: bytes) -> bytes:
    # HKDF-Expand with one block, by hand: the output is 32 bytes, a single HMAC.
    return hmac.new(verifier_, _WRAP_INFO + b"\x01", hashlib.sha256).digest()


def wrap(verifier_: bytes, user_key: bytes, nonce: bytes) -> bytes:
    """``user_key`` sealed under a key derived from one of the user's verifiers (nonce first)."""
    if len(nonce) != 12 or len(user_key) != 32:
        raise ValueError("a 12-byte nonce and a 32-byte key")
    return nonce + AESGCM(_wrapping_key(verifier_)).encrypt(nonce, user_key, _WRAP_AAD)


def unwrap(verifier_: bytes, sealed: bytes) -> bytes:
    """The user key, or OfflineError (bad_key) if ``sealed`` was not made for this verifier."""
    if len(sealed) != 12 + 32 + TAG_BYTES:
        raise OfflineError("a wrapped user key has the wrong length", code="bad_key")
    try:
        return AESGCM(_wrapping_key(verifier_)).decrypt(sealed[:12], sealed[12:], _WRAP_AAD)
    except InvalidTag:
        raise OfflineError("the user key does not open with this credential",
                           code="bad_key") from None


def user_key(secret: bytes, device_id: str, user_id: str) -> bytes:
    """The key a user's documents are sealed under for one device: the cloud derives it from a
    secret it never sends, so every pre-delivery of the same document seals it alike."""
    return hmac.new(secret, f"offline-documents:{device_id}:{user_id}".encode(),
                    hashlib.sha256).digest()


# --------------------------------------------------------------------------- chunks


def chunk_span(offset: int, total: int) -> int:
    """How many plaintext bytes the chunk at ``offset`` holds, or OfflineError (bad_chunk) if
    ``offset`` is not on the grid. A chunk's nonce is derived from (job, offset, length), and
    the grid makes the same bytes always sealed under the same nonce, never others."""
    if offset < 0 or total < 0 or offset % CHUNK_BYTES or (offset >= total and total > 0) \
            or (total == 0 and offset != 0):
        raise OfflineError(f"offset {offset} is not a chunk of a {total}-byte document",
                           code="bad_chunk")
    return min(CHUNK_BYTES, total - offset)


def _nonce(job_id: str, digest: str, offset: int, length: int) -> bytes:
    # The document's SHA-256 is in it too: were a job's document ever replaced (a conversion,
    # a restore), its chunks would get other nonces, never the old ones over new bytes.
    return hashlib.sha256(f"{job_id}:{digest}:{offset}:{length}".encode()).digest()[:12]


def _aad(job_id: str, digest: str, offset: int, total: int) -> bytes:
    return f"mfd offline chunk v1:{job_id}:{digest}:{offset}:{total}".encode()


def seal_chunk(key: bytes, job_id: str, offset: int, total: int, plaintext: bytes, *,
               digest: str) -> bytes:
    """One chunk of a document, sealed (ciphertext and tag). ``digest``: the whole document's
    SHA-256 in hex, as the bundle lists it."""
    length = chunk_span(offset, total)
    if len(plaintext) != length:
        raise OfflineError(f"chunk at {offset} must hold {length} bytes", code="bad_chunk")
    return AESGCM(key).encrypt(_nonce(job_id, digest, offset, length), plaintext,
                               _aad(job_id, digest, offset, total))


def open_chunk(key: bytes, job_id: str, offset: int, total: int, sealed: bytes, *,
               digest: str) -> bytes:
    """The plaintext of a sealed chunk, or OfflineError (bad_chunk): tampered, truncated, moved
    to another offset, job or document, or sealed under another key."""
    length = chunk_span(offset, total)
    if len(sealed) != length + TAG_BYTES:
        raise OfflineError(f"sealed chunk at {offset} has the wrong length", code="bad_chunk")
    try:
        return AESGCM(key).decrypt(_nonce(job_id, digest, offset, length), sealed,
                                   _aad(job_id, digest, offset, total))
    except InvalidTag:
        raise OfflineError(f"chunk at {offset} of job {job_id} does not authenticate",
                           code="bad_chunk") from None


# --------------------------------------------------------------------------- the bundle


@dataclass(frozen=True, slots=True)
class OfflineUser:
    user_id: str
    name: str
    language: str
    #: Lookup entries (:func:`lookup` of a verifier) of the user's cards.
    cards: tuple[str, ...]
    #: The lookup entry of the user's access code (also a card + PIN device's PIN), if any.
    code: str | None
    #: The user key wrapped under each credential's verifier, by that credential's entry.
    wraps: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OfflineJob:
    """A held job the device may print offline for its owner, with what ``ReleasedJob`` says."""

    job_id: str
    user_id: str
    name: str
    pages: int
    color: bool
    duplex: bool
    copies: int
    size: int
    sha256: str
    submitted_at: float


@dataclass(frozen=True, slots=True)
class Bundle:
    device_id: str
    org_id: str
    #: Higher than every earlier bundle for this device (the cloud counts in milliseconds).
    seq: int
    issued_at: float
    expires_at: float
    #: The org's verifier salt and the scrypt cost, so the device computes verifiers alike.
    salt: bytes
    n: int
    #: This bundle's HMAC key for lookup entries.
    list_key: bytes
    users: tuple[OfflineUser, ...]
    jobs: tuple[OfflineJob, ...]

    def find(self, kind: str, presented_verifier: bytes) -> tuple[OfflineUser, str] | None:
        """The user whose card (``kind`` "card") or code ("code") this verifier is, and the
        entry it matched; None if nobody's."""
        entry = lookup(self.list_key, presented_verifier)
        for user in self.users:
            if (entry in user.cards if kind == "card" else entry == user.code):
                return user, entry
        return None

    def jobs_of(self, user_id: str) -> tuple[OfflineJob, ...]:
        """The user's jobs in this bundle, newest first."""
        return tuple(sorted((j for j in self.jobs if j.user_id == user_id),
                            key=lambda j: j.submitted_at, reverse=True))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode_bundle(bundle: Bundle) -> bytes:
    """The body the cloud signs: canonical JSON (sorted keys, no spaces, ASCII)."""
    body = {
        "v": BUNDLE_VERSION, "device_id": bundle.device_id, "org_id": bundle.org_id,
        "seq": bundle.seq, "issued_at": bundle.issued_at, "expires_at": bundle.expires_at,
        "salt": _b64(bundle.salt), "n": bundle.n, "list_key": _b64(bundle.list_key),
        "users": [{"id": u.user_id, "name": u.name, "language": u.language,
                   "cards": list(u.cards), "code": u.code,
                   "wraps": {k: _b64(v) for k, v in sorted(u.wraps.items())}}
                  for u in bundle.users],
        "jobs": [{"id": j.job_id, "user": j.user_id, "name": j.name, "pages": j.pages,
                  "color": j.color, "duplex": j.duplex, "copies": j.copies, "size": j.size,
                  "sha256": j.sha256, "submitted_at": j.submitted_at} for j in bundle.jobs],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


class _Reader:
    """Field checks for a bundle body; every failure is OfflineError (bad_bundle) naming the
    field, never another exception."""

    def __init__(self, obj: Any, path: str) -> None:
        if not isinstance(obj, dict):
            raise OfflineError(f"bundle: {path or 'body'} must be an object", code="bad_bundle")
        self.obj, self.path = obj, path

    def _fail(self, name: str, what: str) -> OfflineError:
        return OfflineError(f"bundle: {self.path}{name} {what}", code="bad_bundle")

    def get(self, name: str) -> Any:
        if name not in self.obj:
            raise self._fail(name, "is missing")
        return self.obj[name]

    def text(self, name: str, max_len: int = 256, pattern: re.Pattern[str] | None = None) -> str:
        value = self.get(name)
        if not isinstance(value, str) or len(value) > max_len:
            raise self._fail(name, f"must be text of at most {max_len} characters")
        if pattern is not None and not pattern.fullmatch(value):
            raise self._fail(name, "is not well formed")
        return value

    def integer(self, name: str, low: int = 0, high: int = 2**62) -> int:
        value = self.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self._fail(name, f"must be a whole number from {low} to {high}")
        return value

    def number(self, name: str) -> float:
        value = self.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or not 0 <= value < 2**40:
            raise self._fail(name, "must be a time in seconds")
        return float(value)

    def flag(self, name: str) -> bool:
        value = self.get(name)
        if not isinstance(value, bool):
            raise self._fail(name, "must be true or false")
        return value

    def raw(self, name: str, size: int | None = None) -> bytes:
        value = self.get(name)
        try:
            data = base64.b64decode(value, validate=True) if isinstance(value, str) else None
        except ValueError:
            data = None
        if data is None or (size is not None and len(data) != size):
            raise self._fail(name, "must be base64" + (f" of {size} bytes" if size else ""))
        return data

    def items(self, name: str, bound: int) -> list[Any]:
        value = self.get(name)
        if not isinstance(value, list) or len(value) > bound:
            raise self._fail(name, f"must be a list of at most {bound}")
        return value


def _user(obj: Any, i: int) -> OfflineUser:
    r = _Reader(obj, f"users[{i}].")
    cards = r.items("cards", MAX_CREDENTIALS)
    if not all(isinstance(c, str) and _HEX64.fullmatch(c) for c in cards):
        raise OfflineError(f"bundle: users[{i}].cards holds a malformed entry",
                           code="bad_bundle")
    code = r.get("code")
    if code is not None and not (isinstance(code, str) and _HEX64.fullmatch(code)):
        raise OfflineError(f"bundle: users[{i}].code is malformed", code="bad_bundle")
    wraps_obj = _Reader(r.get("wraps"), f"users[{i}].wraps.")
    if len(wraps_obj.obj) > MAX_CREDENTIALS:
        raise OfflineError(f"bundle: users[{i}].wraps has too many entries", code="bad_bundle")
    wraps = {}
    for entry in wraps_obj.obj:
        if not (isinstance(entry, str) and _HEX64.fullmatch(entry)):
            raise OfflineError(f"bundle: users[{i}].wraps has a malformed entry",
                               code="bad_bundle")
        wraps[entry] = wraps_obj.raw(entry, 12 + 32 + TAG_BYTES)
    return OfflineUser(user_id=r.text("id", 64, _ID), name=r.text("name", 128),
                       language=r.text("language", 35), cards=tuple(cards), code=code,
                       wraps=wraps)


def _job(obj: Any, i: int) -> OfflineJob:
    r = _Reader(obj, f"jobs[{i}].")
    return OfflineJob(job_id=r.text("id", 64, _ID), user_id=r.text("user", 64, _ID),
                      name=r.text("name", 256), pages=r.integer("pages"),
                      color=r.flag("color"), duplex=r.flag("duplex"),
                      copies=r.integer("copies", 1, 999), size=r.integer("size"),
                      sha256=r.text("sha256", 64, _HEX64), submitted_at=r.number("submitted_at"))


def decode_bundle(body: bytes) -> Bundle:
    """A bundle body, or OfflineError (bad_bundle) naming the first bad field. It checks the
    shape only: :func:`open_bundle` checks the signature first, and the rest."""
    if len(body) > 4 * 1024 * 1024:
        raise OfflineError("bundle: too large", code="bad_bundle")
    try:
        obj = json.loads(body.decode("utf-8"), parse_constant=_refuse)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise OfflineError("bundle: not JSON", code="bad_bundle") from None
    r = _Reader(obj, "")
    if r.get("v") != BUNDLE_VERSION:
        raise OfflineError(f"bundle: version {str(r.get('v'))[:16]!r} is not "
                           f"{BUNDLE_VERSION}", code="bad_bundle")
    users = tuple(_user(u, i) for i, u in enumerate(r.items("users", MAX_USERS)))
    jobs = tuple(_job(j, i) for i, j in enumerate(r.items("jobs", MAX_JOBS)))
    ids = {u.user_id for u in users}
    for job in jobs:
        if job.user_id not in ids:
            raise OfflineError(f"bundle: job {job.job_id} belongs to no listed user",
                               code="bad_bundle")
    return Bundle(device_id=r.text("device_id", 64, _ID), org_id=r.text("org_id", 64, _ID),
                  seq=r.integer("seq", 1), issued_at=r.number("issued_at"),
                  expires_at=r.number("expires_at"), salt=r.raw("salt"),
                  n=r.integer("n", 2, 2**20), list_key=r.raw("list_key", 32),
                  users=users, jobs=jobs)


def _refuse(constant: str) -> Any:
    raise ValueError(constant)


def open_bundle(public_key: Ed25519PublicKey, body: bytes, signature: bytes, *,
                device_id: str, now: float, high_water: float = 0.0,
                last_seq: int = 0) -> Bundle:
    """A bundle this device may use now, or OfflineError saying why not:

    * ``bad_signature``: not signed by the cloud's key (checked before anything is parsed);
    * ``wrong_device``: made for another device;
    * ``replayed``: not newer than the bundle this device holds (``last_seq``);
    * ``clock_rollback``: the device's clock is behind the latest time it has seen
      (``high_water``) by more than the skew, or behind the bundle's issue: the clock cannot be
      trusted, so neither can an expiry;
    * ``expired``: past its ``expires_at``.
    """
    try:
        public_key.verify(signature, body)
    except InvalidSignature:
        raise OfflineError("the offline bundle is not signed by this device's cloud key",
                           code="bad_signature") from None
    bundle = decode_bundle(body)
    if bundle.device_id != device_id:
        raise OfflineError("the offline bundle was made for another device",
                           code="wrong_device")
    if bundle.seq <= last_seq:
        raise OfflineError(f"the offline bundle {bundle.seq} is not newer than {last_seq}",
                           code="replayed")
    check_usable(bundle, now, high_water)
    return bundle


def check_usable(bundle: Bundle, now: float, high_water: float) -> None:
    """OfflineError (clock_rollback, expired) unless ``bundle`` may be used at ``now``."""
    if now + SKEW_S < max(high_water, bundle.issued_at):
        raise OfflineError("the device's clock is behind a time it has already seen; offline "
                           "sign-in is off until the clock is right", code="clock_rollback")
    if max(now, high_water) >= bundle.expires_at:
        raise OfflineError("the offline bundle has expired", code="expired")


__all__ = ["BUNDLE_VERSION", "CHUNK_BYTES", "KINDS", "MAX_JOBS", "MAX_USERS",
           "OFFLINE_RELEASE_PREFIX", "SCRYPT_N", "Bundle", "OfflineError", "OfflineJob",
           "OfflineUser", "check_usable", "chunk_span", "decode_bundle", "encode_bundle",
           "key_id", "load_private_key", "lookup", "new_signing_key", "open_bundle",
           "open_chunk", "parse_public_key", "private_key_bytes", "public_key_text",
           "seal_chunk", "sign", "unwrap", "user_key", "verifier", "wrap"]

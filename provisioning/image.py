"""MCUboot images: build, sign, inspect and verify them (imgtool underneath).

An image is what MCUboot boots and imgtool makes (MCUboot docs/design.md, "Image format"):

    header (32 B: magic 0x96f3b83d, load address, header size, protected TLV size, payload size,
            flags, version major.minor.revision+build)
    payload (the firmware itself)
    protected TLV area  (info magic 0x6908): covered by the hash and so by the signature
        SEC_CNT  0x50    security counter, u32 LE: anti-rollback; a device refuses an image whose
                         counter is below the one it has stored
        MODEL    0x4D46  the target model, UTF-8 (mfdkit's custom TLV, see below)
    TLV area            (info magic 0x6907): not covered
        SHA256   0x10    SHA-256 of header + payload + protected TLVs
        KEYHASH  0x01    SHA-256 of the signing key's public DER (which key to check against)
        ED25519  0x24    or ECDSASIG 0x22: the signature (Ed25519 over the SHA-256; ECDSA-P256
                         with SHA-256 over the same bytes)

**The model TLV.** MCUboot reserves TLV types 0x00a0-0xfffe for vendors (imgtool's
``--custom-tlv`` takes them). mfdkit uses **0x4D46** (ASCII "MF") for the model the image is
built for, e.g. ``reader-em4100`` or ``panel-7in``. It sits in the *protected* area so nobody can
retarget a signed image without breaking its signature. Only protected TLVs are trusted here:
an unprotected SEC_CNT or MODEL is ignored, since anybody can add one.

``build`` and ``sign`` go through imgtool's Python API (imgtool.image.Image.create), so the
bytes are imgtool's own, and ``imgtool verify`` accepts them (a test runs it). ``parse``,
``inspect`` and ``verify`` are pure: bytes in, facts or a refusal out, so the emulated
bootloader (firmware_stubs/mcuboot) and the flashing tool judge an image with the same code.

Every refusal is an :class:`~protocol.errors.MfdError` whose ``code`` names it (``REFUSALS``)
and whose message says what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from imgtool import image as imgimage
from imgtool import version as imgversion

from protocol.errors import MfdError
from provisioning import keys as keymod
from provisioning.keys import ImgKey

IMAGE_MAGIC = imgimage.IMAGE_MAGIC
HEADER_SIZE = imgimage.IMAGE_HEADER_SIZE
TLV_INFO_MAGIC = imgimage.TLV_INFO_MAGIC
TLV_PROT_INFO_MAGIC = imgimage.TLV_PROT_INFO_MAGIC
#: mfdkit's custom TLV (vendor range 0x00a0-0xfffe): the target model, UTF-8.
TLV_MODEL = 0x4D46
TLV_SEC_CNT = imgimage.TLV_VALUES["SEC_CNT"]
TLV_SHA256 = imgimage.TLV_VALUES["SHA256"]
TLV_KEYHASH = imgimage.TLV_VALUES["KEYHASH"]
TLV_PUBKEY = imgimage.TLV_VALUES["PUBKEY"]
TLV_ED25519 = imgimage.TLV_VALUES["ED25519"]
TLV_ECDSA = imgimage.TLV_VALUES["ECDSASIG"]
_SIG_TYPES = {TLV_ED25519: "ed25519", TLV_ECDSA: "ecdsa-p256"}
IMAGE_F_NON_BOOTABLE = imgimage.IMAGE_F["NON_BOOTABLE"]
MAX_MODEL_LEN = 64

# Error codes, each a refusal a technician can look up in docs/firmware.md.
MALFORMED = "image_malformed"
TRUNCATED = "image_truncated"
TAMPERED = "image_tampered"
UNSIGNED = "image_unsigned"
UNKNOWN_KEY = "image_unknown_key"
BAD_SIGNATURE = "image_bad_signature"
WRONG_MODEL = "image_wrong_model"
DOWNGRADE = "image_downgrade"
REFUSALS = (MALFORMED, TRUNCATED, TAMPERED, UNSIGNED, UNKNOWN_KEY, BAD_SIGNATURE,
            WRONG_MODEL, DOWNGRADE)

_HEADER = struct.Struct("<IIHHIIBBHII")
_TLV_INFO = struct.Struct("<HH")
_TLV = struct.Struct("<HH")


def _refuse(code: str, message: str) -> MfdError:
    return MfdError(message, code=code)


@dataclass(frozen=True, slots=True)
class Tlv:
    type: int
    value: bytes


@dataclass(frozen=True, slots=True)
class Parsed:
    """An image taken apart, nothing checked beyond its structure."""

    load_addr: int
    header_size: int
    protected_size: int  # the protected TLV area with its info header, 0 if none
    payload_size: int
    flags: int
    version: tuple[int, int, int, int]  # major, minor, revision, build
    protected: tuple[Tlv, ...]
    tlvs: tuple[Tlv, ...]
    hashed_end: int  # header + payload + protected TLVs: what the hash covers
    size: int  # the whole image, TLVs included

    def first(self, kind: int, *, protected: bool) -> bytes | None:
        for t in self.protected if protected else self.tlvs:
            if t.type == kind:
                return t.value
        return None


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What ``inspect`` shows and ``verify`` returns."""

    version: str
    security_counter: int | None
    model: str | None
    hash: bytes  # the SHA-256 TLV's value (what SMP lists as the image hash)
    hash_ok: bool  # it matches the bytes
    key_id: str | None  # from KEYHASH (the key id keygen printed), None if unsigned
    signature: str | None  # "ed25519", "ecdsa-p256" or None
    header_size: int
    payload_size: int
    protected_size: int
    tlv_size: int
    size: int
    bootable: bool

    def to_json(self) -> dict[str, object]:
        return {"version": self.version, "security_counter": self.security_counter,
                "model": self.model, "hash": self.hash.hex(), "hash_ok": self.hash_ok,
                "key_id": self.key_id, "signature": self.signature,
                "header_size": self.header_size, "payload_size": self.payload_size,
                "protected_tlv_size": self.protected_size, "tlv_size": self.tlv_size,
                "size": self.size, "bootable": self.bootable}


def version_text(v: tuple[int, int, int, int]) -> str:
    """``1.2.3``, or ``1.2.3+4`` with a build number (imgtool's form)."""
    base = f"{v[0]}.{v[1]}.{v[2]}"
    return f"{base}+{v[3]}" if v[3] else base


def _tlv_area(data: bytes, off: int, magic: int, what: str) -> tuple[tuple[Tlv, ...], int]:
    if off + _TLV_INFO.size > len(data):
        raise _refuse(TRUNCATED, f"the image ends before its {what}: it was cut short; copy or "
                      "download it again")
    got, total = _TLV_INFO.unpack_from(data, off)
    if got != magic:
        raise _refuse(MALFORMED, f"no {what} where the header says it is: not an MCUboot "
                      "image, or a damaged one; build it again with `mfd image build`")
    end = off + total
    if end > len(data):
        raise _refuse(TRUNCATED, f"the image ends inside its {what}: it was cut short; copy "
                      "or download it again")
    items = []
    p = off + _TLV_INFO.size
    while p < end:
        if p + _TLV.size > end:
            raise _refuse(MALFORMED, f"a broken entry in the {what}: build the image again")
        kind, length = _TLV.unpack_from(data, p)
        p += _TLV.size
        if p + length > end:
            raise _refuse(MALFORMED, f"an entry overruns the {what}: build the image again")
        items.append(Tlv(kind, bytes(data[p:p + length])))
        p += length
    return tuple(items), end


def parse(data: bytes) -> Parsed:
    """Take an image apart; refuse what is not one (``image_malformed``/``image_truncated``).
    Bytes after the image (slot padding, a trailer) are ignored."""
    if len(data) < HEADER_SIZE:
        raise _refuse(TRUNCATED, f"{len(data)} bytes is shorter than an MCUboot header: the "
                      "file was cut short, or is not an image")
    (magic, load, hdr, prot, size, flags, major, minor, rev, build,
     _pad) = _HEADER.unpack_from(data, 0)
    if magic != IMAGE_MAGIC:
        raise _refuse(MALFORMED, "no MCUboot magic at the start: this is not an MCUboot image "
                      "(a raw binary? make an image of it with `mfd image build`)")
    if hdr < HEADER_SIZE:
        raise _refuse(MALFORMED, f"header size {hdr} is below {HEADER_SIZE}: a damaged image")
    body_end = hdr + size
    if body_end > len(data):
        raise _refuse(TRUNCATED, f"the header announces {body_end} bytes before the TLVs, the "
                      f"file has {len(data)}: it was cut short; copy or download it again")
    protected: tuple[Tlv, ...] = ()
    off = body_end
    if prot:
        protected, off = _tlv_area(data, body_end, TLV_PROT_INFO_MAGIC, "protected TLV area")
        if off - body_end != prot:
            raise _refuse(MALFORMED, "the protected TLV area disagrees with the header: a "
                          "damaged or hand-edited image; build it again")
    tlvs, end = _tlv_area(data, off, TLV_INFO_MAGIC, "TLV area")
    return Parsed(load, hdr, prot, size, flags, (major, minor, rev, build), protected, tlvs,
                  off, end)


def image_size(data: bytes) -> int:
    """How many bytes of ``data`` the image occupies (it may sit in a larger slot)."""
    return parse(data).size


def inspect(data: bytes) -> ImageInfo:
    """The facts of an image, nothing trusted: ``hash_ok`` says whether its hash matches."""
    p = parse(data)
    claimed = p.first(TLV_SHA256, protected=False)
    if claimed is None:
        raise _refuse(MALFORMED, "the image has no SHA-256 TLV: build it with `mfd image "
                      "build` (imgtool always adds one)")
    actual = hashlib.sha256(data[:p.hashed_end]).digest()
    keyhash = p.first(TLV_KEYHASH, protected=False)
    pubkey = p.first(TLV_PUBKEY, protected=False)
    if keyhash is not None:
        kid: str | None = keyhash[:8].hex()
    elif pubkey is not None:
        kid = hashlib.sha256(pubkey).digest()[:8].hex()
    else:
        kid = None
    sig = next((_SIG_TYPES[t.type] for t in p.tlvs if t.type in _SIG_TYPES), None)
    cnt = p.first(TLV_SEC_CNT, protected=True)
    model = p.first(TLV_MODEL, protected=True)
    return ImageInfo(
        version=version_text(p.version),
        security_counter=struct.unpack("<I", cnt)[0] if cnt is not None and len(cnt) == 4
        else None,
        model=model.decode("utf-8", "replace") if model is not None else None,
        hash=claimed, hash_ok=actual == claimed, key_id=kid, signature=sig,
        header_size=p.header_size, payload_size=p.payload_size,
        protected_size=p.protected_size, tlv_size=p.size - p.hashed_end, size=p.size,
        bootable=not p.flags & IMAGE_F_NON_BOOTABLE)


def verify(data: bytes, trusted: Sequence[ImgKey], *, model: str | None = None,
           min_counter: int | None = None) -> ImageInfo:
    """Accept the image only if it is whole, untampered, signed by one of ``trusted`` (public
    or private imgtool keys), built for ``model`` (when given) and not below ``min_counter``
    (when given); else raise MfdError with one of ``REFUSALS`` as its code."""
    info = inspect(data)
    p = parse(data)
    if not info.hash_ok:
        raise _refuse(TAMPERED, "the image's bytes do not match its SHA-256: it was changed "
                      "after it was built (or damaged in transit); get the original again")
    sig_tlv = next((t for t in p.tlvs if t.type in _SIG_TYPES), None)
    if sig_tlv is None:
        raise _refuse(UNSIGNED, "the image is not signed: sign it with `mfd image sign IMAGE "
                      "--key KEY` (the key the devices trust)")
    keyhash = p.first(TLV_KEYHASH, protected=False)
    pubkey = p.first(TLV_PUBKEY, protected=False)
    key = None
    for k in trusted:
        der = keymod.public_der(k)
        if (keyhash is not None and hashlib.sha256(der).digest() == keyhash) or (
                pubkey is not None and der == pubkey):
            key = keymod.public_of(k)
            break
    if key is None:
        raise _refuse(UNKNOWN_KEY, f"the image is signed by key {info.key_id}, which is not a "
                      "trusted key here: sign it with the fleet's key, or pass that key's "
                      "public file with --key")
    region = bytes(data[:p.hashed_end])
    try:
        if sig_tlv.type == TLV_ED25519 and keymod.kind_of(key) == "ed25519":
            key.verify_digest(sig_tlv.value, info.hash)
        elif sig_tlv.type == TLV_ECDSA and keymod.kind_of(key) == "ecdsa-p256":
            key.verify(sig_tlv.value, region)
        else:
            raise InvalidSignature
    except (InvalidSignature, ValueError, IndexError):
        raise _refuse(BAD_SIGNATURE, f"the signature does not verify with key {info.key_id}: "
                      "the image was altered or re-labelled; sign it again") from None
    if model is not None and info.model != model:
        raise _refuse(WRONG_MODEL, f"the image is built for model {info.model or 'none'!r}, "
                      f"this device is {model!r}: use the image built for {model!r}")
    counter = info.security_counter or 0
    if min_counter is not None and counter < min_counter:
        raise _refuse(DOWNGRADE, f"the image's security counter {counter} is below "
                      f"{min_counter}, the device's: a downgrade, refused; flash an image "
                      f"with security counter {min_counter} or more")
    return info


def _decode_version(text: str) -> object:
    try:
        return imgversion.decode_version(text)
    except ValueError:
        raise MfdError(f"version {text!r} is not MAJOR.MINOR.REVISION[+BUILD], e.g. 1.2.3",
                       code="config_invalid") from None


def build(payload: bytes, *, version: str, model: str, security_counter: int,
          key: ImgKey | None = None) -> bytes:
    """An MCUboot image of ``payload`` (a raw firmware binary); signed when ``key`` (a private
    imgtool key) is given, else carrying only its hash (sign it later with :func:`sign`)."""
    if not model or len(model.encode()) > MAX_MODEL_LEN or not model.isprintable():
        raise MfdError(f"model {model!r}: give 1 to {MAX_MODEL_LEN} printable characters",
                       code="config_invalid")
    if not 0 <= security_counter <= 0xFFFFFFFF:
        raise MfdError(f"security counter {security_counter} is out of 0..4294967295",
                       code="config_invalid")
    if key is not None and not keymod.is_private(key):
        raise MfdError("signing needs the private key (KEY.pem), not the public one",
                       code="config_invalid")
    img = imgimage.Image(version=_decode_version(version), header_size=HEADER_SIZE,
                         pad_header=True, security_counter=security_counter)
    # What Image.load does with a file, from bytes: room for the header, then the payload.
    img.payload = bytearray(b"\xff" * HEADER_SIZE + payload)
    img.infile_data = payload
    img.image_size = len(payload)
    # imgtool narrates on stdout ("sign the digest"); our CLI prints only its own lines.
    with contextlib.redirect_stdout(io.StringIO()):
        img.create(key, "hash", None, custom_tlvs={TLV_MODEL: model.encode()})
    return bytes(img.payload)


def sign(data: bytes, key: ImgKey) -> bytes:
    """Sign an image made by :func:`build` (unsigned, or signed by another key): the same
    header, payload and protected TLVs, so the same hash, with ``key``'s signature."""
    p = parse(data)
    info = inspect(data)
    if not info.hash_ok:
        raise _refuse(TAMPERED, "the image's bytes do not match its SHA-256: it changed after "
                      "it was built; build it again before signing")
    known = {TLV_SEC_CNT, TLV_MODEL}
    extra = [t.type for t in p.protected if t.type not in known]
    if extra or info.model is None:
        raise _refuse(MALFORMED, "only images made by `mfd image build` can be signed here "
                      "(a model TLV, no other protected TLVs): build it with mfd image build")
    payload = bytes(data[p.header_size:p.header_size + p.payload_size])
    major, minor, rev, bld = p.version
    out = build(payload, version=f"{major}.{minor}.{rev}+{bld}", model=info.model,
                security_counter=info.security_counter or 0, key=key)
    if inspect(out).hash != info.hash:
        raise MfdError("re-signing changed the image hash: the image was built with options "
                       "mfd image does not use; build it again with mfd image build",
                       code=MALFORMED)
    return out

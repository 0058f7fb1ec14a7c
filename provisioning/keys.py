"""Signing keys for MCUboot images: make one, load one, name one without showing it.

A key is an imgtool key object (``imgtool.keys``), so that the image code hands it straight to
imgtool's signer. Two kinds are supported, the two MCUboot builds for small devices use:
``ed25519`` (the default: small, fast, deterministic) and ``ecdsa-p256``.

A key is named by its **key id**: the first 8 bytes, in hex, of the SHA-256 of the public key
in DER SubjectPublicKeyInfo form. That is the prefix of the KEYHASH TLV imgtool puts into every
signed image, so ``mfd image inspect`` shows the same id for an image as ``keygen`` printed for
its key. The private key itself is never printed nor logged.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from imgtool import keys as imgkeys

from protocol.errors import ConfigError, MfdError

#: Kinds of key, by the name the CLI takes.
KINDS = ("ed25519", "ecdsa-p256")

# An imgtool key object (private or public). imgtool is untyped, hence Any.
ImgKey = Any


def generate(kind: str = "ed25519") -> ImgKey:
    if kind == "ed25519":
        return imgkeys.Ed25519.generate()
    if kind == "ecdsa-p256":
        return imgkeys.ECDSA256P1.generate()
    raise ConfigError(f"unknown key type {kind!r}: use one of {', '.join(KINDS)}")


def public_der(key: ImgKey) -> bytes:
    der: bytes = key.get_public_bytes()
    return der


def public_pem(key: ImgKey) -> bytes:
    pem: bytes = key.get_public_pem()
    return pem


def key_id(key: ImgKey) -> str:
    """The short public name of a key (see the module note)."""
    return hashlib.sha256(public_der(key)).digest()[:8].hex()


def kind_of(key: ImgKey) -> str:
    name: str = key.shortname()
    return {"ed25519": "ed25519", "ecdsa": "ecdsa-p256"}.get(name, name)


def is_private(key: ImgKey) -> bool:
    return isinstance(key, (imgkeys.Ed25519, imgkeys.ECDSA256P1))


def public_path(private_path: Path) -> Path:
    """Where ``keygen`` puts the public half of ``KEY.pem``: ``KEY.pub.pem``."""
    name = private_path.name
    stem = name[: -len(".pem")] if name.endswith(".pem") else name
    return private_path.with_name(stem + ".pub.pem")


def write_new(path: Path, kind: str = "ed25519") -> tuple[ImgKey, Path]:
    """Make a key, write its private half to ``path`` (mode 0600, never over an existing file)
    and its public half beside it; return the key and the public file's path."""
    key = generate(kind)
    pem = key.key.private_bytes(encoding=serialization.Encoding.PEM,
                                format=serialization.PrivateFormat.PKCS8,
                                encryption_algorithm=serialization.NoEncryption())
    try:
        # O_EXCL: a second keygen must not silently replace the key devices already trust.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} already exists: choose another file name, or move the old "
                          "key away first (devices may trust it)") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub = public_path(path)
    pub.write_bytes(public_pem(key))
    return key, pub


def load(path: str | os.PathLike[str]) -> ImgKey:
    """A key from a PEM file, private or public."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read key {path}: {exc.strerror}") from None
    return from_bytes(data, what=str(path))


def from_bytes(data: bytes, *, what: str = "key") -> ImgKey:
    """A key from PEM (private or public), DER SubjectPublicKeyInfo, or a raw public key (32
    bytes Ed25519, 65 bytes an uncompressed P-256 point)."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            if b"PRIVATE KEY" in data:
                if b"ENCRYPTED" in data:
                    raise ConfigError(f"{what} is protected by a passphrase, which mfd image "
                                      "does not take: export it without one onto an "
                                      "offline signing machine")
                return _wrap(serialization.load_pem_private_key(data, password=None), what)
            return _wrap(serialization.load_pem_public_key(data), what)
        if len(data) == 32:
            return imgkeys.Ed25519Public(ed25519.Ed25519PublicKey.from_public_bytes(data))
        if len(data) == 65 and data[0] == 0x04:  # a raw P-256 point, uncompressed
            return imgkeys.ECDSA256P1Public(
                ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), data))
        return _wrap(serialization.load_der_public_key(data), what)
    except (ValueError, TypeError):
        raise ConfigError(f"{what} is not a key (PEM, DER or raw): make one with "
                          "`mfd image keygen`") from None


def _wrap(k: object, what: str) -> ImgKey:
    if isinstance(k, ed25519.Ed25519PrivateKey):
        return imgkeys.Ed25519(k)
    if isinstance(k, ed25519.Ed25519PublicKey):
        return imgkeys.Ed25519Public(k)
    if isinstance(k, ec.EllipticCurvePrivateKey) and k.curve.name == "secp256r1":
        return imgkeys.ECDSA256P1(k)
    if isinstance(k, ec.EllipticCurvePublicKey) and k.curve.name == "secp256r1":
        return imgkeys.ECDSA256P1Public(k)
    raise ConfigError(f"{what} is neither Ed25519 nor ECDSA P-256, the two kinds mfdkit "
                      "signs with: make one with `mfd image keygen`")


def public_of(key: ImgKey) -> ImgKey:
    """The public half as its own imgtool object (what a device is given)."""
    return from_bytes(public_der(key))


def load_trusted(keys: Sequence[bytes | str | os.PathLike[str] | ImgKey]) -> list[ImgKey]:
    """Trusted public keys from bytes (PEM/DER/raw), file paths or key objects."""
    out = []
    for k in keys:
        if isinstance(k, bytes):
            out.append(public_of(from_bytes(k)))
        elif isinstance(k, (str, os.PathLike)):
            out.append(public_of(load(k)))
        elif hasattr(k, "get_public_bytes"):
            out.append(public_of(k))
        else:
            raise MfdError(f"not a key: {type(k).__name__}", code="config_invalid")
    return out

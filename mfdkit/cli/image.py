"""``mfd image``: make, sign and check MCUboot firmware images (provisioning/image.py does the
work; this parses and prints). docs/firmware.md describes the format and every error.

``mfd image keygen KEY.pem [--type ed25519|ecdsa-p256]``
    A new signing key: the private half in KEY.pem (mode 0600, never over an existing file),
    the public half in KEY.pub.pem (for devices and ``verify``). Prints the key id, never the key.
``mfd image build FIRMWARE.bin -o IMAGE --version V --model M --security-counter N [--key KEY]``
    An MCUboot image of a raw binary; signed if ``--key`` is given.
``mfd image sign IMAGE --key KEY.pem -o SIGNED``
    Sign (or re-sign) an image made by ``build``: same hash, new signature.
``mfd image verify IMAGE --key PUB [--key PUB ...] [--model M] [--min-counter N] [--json]``
    Exit 0 if a device trusting those keys, of that model, with that stored counter would boot
    it; else exit 1 with what is wrong and what to do.
``mfd image inspect IMAGE [--json]``
    Version, security counter, model, hash, key id, signature type and sizes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mfdkit.cli.common import EXIT_FAILED
from protocol.errors import ConfigError, MfdError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("image", help="make, sign and check MCUboot firmware images",
                       description="MCUboot firmware images for readers and panels: keys, "
                                   "build, sign, verify, inspect (see docs/firmware.md).")
    leaves = p.add_subparsers(dest="image_command", metavar="ACTION", required=True)

    k = leaves.add_parser("keygen", help="make a signing key",
                          description="Write a new private key (0600) and its public half "
                                      "beside it; print the key id.")
    k.add_argument("key", metavar="KEY.pem", type=Path)
    k.add_argument("--type", choices=("ed25519", "ecdsa-p256"), default="ed25519",
                   help="signature algorithm (default ed25519)")
    k.set_defaults(func=cmd_keygen)

    b = leaves.add_parser("build", help="make an image of a firmware binary",
                          description="Make an MCUboot image of a raw firmware binary, signed "
                                      "if --key is given.")
    b.add_argument("payload", metavar="FIRMWARE", type=Path)
    b.add_argument("-o", "--output", required=True, type=Path, metavar="IMAGE")
    b.add_argument("--version", required=True, help="MAJOR.MINOR.REVISION[+BUILD]")
    b.add_argument("--model", required=True, help="the device model it is for")
    b.add_argument("--security-counter", required=True, type=_counter, metavar="N",
                   help="anti-rollback counter: raise it to make older images unbootable")
    b.add_argument("--key", type=Path, metavar="KEY.pem", help="private key to sign with")
    b.set_defaults(func=cmd_build)

    s = leaves.add_parser("sign", help="sign an image made by build",
                          description="Sign (or re-sign) an image made by mfd image build.")
    s.add_argument("image", metavar="IMAGE", type=Path)
    s.add_argument("--key", required=True, type=Path, metavar="KEY.pem")
    s.add_argument("-o", "--output", required=True, type=Path, metavar="SIGNED")
    s.set_defaults(func=cmd_sign)

    v = leaves.add_parser("verify", help="would a device boot this image?",
                          description="Check an image as a device would: whole, untampered, "
                                      "signed by a trusted key, for its model, not a downgrade.")
    v.add_argument("image", metavar="IMAGE", type=Path)
    v.add_argument("--key", required=True, action="append", type=Path, metavar="PUB",
                   help="a trusted public key (repeat for several)")
    v.add_argument("--model", help="the device's model")
    v.add_argument("--min-counter", type=_counter, metavar="N",
                   help="the device's stored security counter")
    v.add_argument("--json", action="store_true", help="one JSON object on stdout")
    v.set_defaults(func=cmd_verify)

    i = leaves.add_parser("inspect", help="show what an image holds",
                          description="Version, security counter, model, hash, key id, "
                                      "signature type and sizes of an image.")
    i.add_argument("image", metavar="IMAGE", type=Path)
    i.add_argument("--json", action="store_true", help="one JSON object on stdout")
    i.set_defaults(func=cmd_inspect)


def _counter(text: str) -> int:
    value = int(text, 0)
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(text)
    return value


def _read(path: Path, what: str = "image") -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None


def _summary(info: object) -> str:
    from provisioning.image import ImageInfo

    assert isinstance(info, ImageInfo)
    signed = f"signed {info.signature} by key {info.key_id}" if info.signature else "unsigned"
    return (f"version {info.version}, model {info.model}, security counter "
            f"{info.security_counter}, {info.size} bytes, sha256 {info.hash.hex()}, {signed}")


def cmd_keygen(args: argparse.Namespace) -> int:
    from provisioning import keys

    key, pub = keys.write_new(args.key, args.type)
    print(f"key id {keys.key_id(key)} ({keys.kind_of(key)}): private key in {args.key} "
          f"(keep it secret), public key in {pub} (give it to devices and to verify --key)")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from provisioning import image, keys

    key = keys.load(args.key) if args.key else None
    data = image.build(_read(args.payload, "firmware"), version=args.version, model=args.model,
                       security_counter=args.security_counter, key=key)
    _write(args.output, data)
    print(f"built {args.output}: {_summary(image.inspect(data))}")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from provisioning import image, keys

    data = image.sign(_read(args.image), keys.load(args.key))
    _write(args.output, data)
    print(f"signed {args.output}: {_summary(image.inspect(data))}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from provisioning import image, keys

    trusted = [keys.load(k) for k in args.key]
    try:
        info = image.verify(_read(args.image), trusted, model=args.model,
                            min_counter=args.min_counter)
    except MfdError as exc:
        if not args.json:
            raise
        print(json.dumps({"ok": False, "code": exc.code, "error": exc.message}))
        return EXIT_FAILED
    if args.json:
        print(json.dumps({"ok": True, **info.to_json()}))
    else:
        print(f"OK: a device trusting key {info.key_id} would boot {args.image}: "
              f"{_summary(info)}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from provisioning import image

    info = image.inspect(_read(args.image))
    if args.json:
        print(json.dumps(info.to_json()))
        return 0
    rows = [("version", info.version), ("security counter", info.security_counter),
            ("model", info.model),
            ("sha256", info.hash.hex() + ("" if info.hash_ok else "  (DOES NOT MATCH: tampered)")),
            ("signature", info.signature or "none (unsigned)"), ("key id", info.key_id),
            ("bootable", "yes" if info.bootable else "no (flag NON_BOOTABLE)"),
            ("sizes", f"header {info.header_size}, payload {info.payload_size}, protected TLVs "
                      f"{info.protected_size}, TLVs {info.tlv_size}, total {info.size}")]
    for name, value in rows:
        print(f"{name:>17}: {value if value is not None else '-'}")
    return 0

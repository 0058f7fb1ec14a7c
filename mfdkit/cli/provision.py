"""``mfd provision``: write a device's configuration directory, or set a pcProx reader's output.

``mfd provision DIR --device-id ID --broker URL --username U --password-file F --engine E
[--ca FILE] [--reader SPEC ...] [--reader-file FILE ...] [--policy KEY=VALUE ...] [--name NAME]
[--dry-run]``
    Validates everything with the device app's own schema, then writes device.toml,
    credentials (0600) and ca.pem into DIR, nothing half-written, and reads them back
    (provisioning/provision.py). Each run (not a dry run) is appended to the fleet ledger.

``mfd provision --reader-config PORT --format dec|hex [--prefix X] [--suffix Y] [--digits N]``
    Sets a pcProx reader's output through its command set and reads it back. Both forms may
    be given at once.

Never prints a secret: the password comes from a file and is named nowhere. Reader specs with
a key (OSDP's ``scbk``) belong in ``--reader-file``: a ``--reader`` that carries one is warned
about on stderr (the command line is visible to every user of the machine in ``ps``), naming
the parameter, never its value.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mfdkit.cli.common import EXIT_USAGE
from protocol.errors import ConfigError, MfdError


def cmd_provision(args: argparse.Namespace) -> int:
    from device_app import config as device_config
    from device_app.config import engine_choice
    from provisioning.provision import (
        PcProxSettings,
        ProvisionRequest,
        configure_pcprox,
        parse_policy_options,
        provision,
        read_reader_file,
        record_provision,
    )

    if args.dir is None and args.reader_config is None:
        print("mfd provision: give DIR (a device's configuration directory) and/or "
              "--reader-config PORT", file=sys.stderr)
        return EXIT_USAGE
    out: dict[str, object] = {"dry_run": args.dry_run}
    if args.dir is not None:
        missing = [o for o, v in (("--device-id", args.device_id), ("--broker", args.broker),
                                  ("--username", args.username),
                                  ("--password-file", args.password_file),
                                  ("--engine", args.engine)) if not v]
        if missing:
            print(f"mfd provision: DIR needs {', '.join(missing)}", file=sys.stderr)
            return EXIT_USAGE
        try:
            password = Path(args.password_file).read_text(encoding="utf-8").strip("\r\n")
        except OSError as exc:
            raise ConfigError(f"--password-file {args.password_file}: cannot read it "
                              f"({exc.strerror})") from None
        _warn_secrets_in_argv(args.reader)
        readers = tuple(args.reader)
        for path in args.reader_file:
            from_file = read_reader_file(path)
            _warn_open_file(path, from_file)
            readers += from_file
        engine = engine_choice(args.engine)
        req = ProvisionRequest(
            directory=Path(args.dir), device_id=args.device_id, broker_url=tuple(args.broker),
            username=args.username, password=password, engine_kind=engine.kind,
            engine_uri=engine.uri,
            ca_file=Path(args.ca) if args.ca else None, readers=readers,
            policy=parse_policy_options(args.policy), name=args.name or "",
            device_dir=Path(args.device_dir) if args.device_dir else None)
        try:
            result = provision(req, device_config, dry_run=args.dry_run)
        except MfdError as exc:
            if not args.dry_run:
                record_provision(req, None, exc, ledger=args.ledger, who=args.who)
            raise
        if not args.dry_run:
            record_provision(req, result, None, ledger=args.ledger, who=args.who)
        out["device"] = {"id": result.config.device_id,
                         "files": [str(f) for f in result.files],
                         "readers": len(result.config.readers),
                         "engine": engine.kind,
                         "config_sha256": result.config_sha256}
        if not args.json:
            verb = "would write" if args.dry_run else "wrote and read back"
            print(f"{result.config.device_id}: {verb} "
                  + ", ".join(f.name for f in result.files) + f" in {args.dir}")
    if args.reader_config is not None:
        if args.format is None:
            print("mfd provision: --reader-config needs --format dec|hex", file=sys.stderr)
            return EXIT_USAGE
        settings = PcProxSettings(base=16 if args.format == "hex" else 10,
                                  prefix=args.prefix, suffix=args.suffix, digits=args.digits)
        variables = settings.variables()  # checked before the port is opened
        if not args.dry_run:
            variables = configure_pcprox(args.reader_config, settings, baud=args.baud)
        out["reader"] = {"port": args.reader_config,
                         "variables": {k: v.decode("latin-1") if isinstance(v, bytes) else v
                                       for k, v in variables.items()}}
        if not args.json:
            verb = "would set" if args.dry_run else "set and read back"
            print(f"reader {args.reader_config}: {verb} {args.format}, prefix "
                  f"{args.prefix!r}, suffix {args.suffix!r}, digits {args.digits}")
    if args.json:
        print(json.dumps(out))
    return 0


def _warn_secrets_in_argv(specs: list[str]) -> None:
    from provisioning.provision import spec_secrets

    for n, spec in enumerate(specs, 1):
        names = spec_secrets(spec)
        if names:
            # Said even when the run then fails: the key has already been in argv (and
            # likely the shell's history), so it may need changing whatever happens next.
            print(f"mfd provision: warning: --reader #{n} carries a secret ("
                  f"{', '.join(names)}) on the command line, where every user of this "
                  "machine can read it (ps, /proc) and the shell's history keeps it; put the "
                  "spec in a file only you can read (chmod 600) and give --reader-file FILE",
                  file=sys.stderr)


def _warn_open_file(path: str, specs: tuple[str, ...]) -> None:
    from provisioning.provision import spec_secrets

    mode = Path(path).stat().st_mode & 0o777
    if mode & 0o077 and any(spec_secrets(spec) for spec in specs):
        print(f"mfd provision: warning: --reader-file {path} holds a key and other users "
              f"may read it (mode {mode:o}); run: chmod 600 {path}", file=sys.stderr)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("provision", help="write a device's configuration (identity, broker, "
                       "CA, readers, policy, engine), or set a pcProx reader's output",
                       description="Validate with the device app's own schema, write "
                       "device.toml, credentials (0600) and the CA into DIR without leaving "
                       "anything half-written, and read them back.")
    p.add_argument("dir", nargs="?", metavar="DIR",
                   help="the device's configuration directory (or a mounted image's)")
    p.add_argument("--device-id", metavar="ID")
    p.add_argument("--device-dir", metavar="PATH", help="where DIR is on the device, to write "
                   "the CA's path in device.toml as PATH/ca.pem (default: ca.pem, found "
                   "beside device.toml wherever DIR ends up)")
    p.add_argument("--name", help="the name shown on the panel")
    p.add_argument("--broker", metavar="URL", action="append",
                   help="mqtts://HOST:8883 (or mqtt:// on a bench); again for each further "
                   "broker the device fails over to, in order")
    p.add_argument("--ca", metavar="FILE", help="PEM of the CA that signed the broker's "
                   "certificate (copied as ca.pem)")
    p.add_argument("--username", metavar="U", help="the broker username (= the device id)")
    p.add_argument("--password-file", metavar="F", help="a file holding the broker password "
                   "(never on the command line)")
    p.add_argument("--reader", action="append", default=[], metavar="SPEC",
                   help="a reader spec, e.g. serial:/dev/ttyUSB0?family=pcprox (repeatable; "
                   "a spec with a key, such as OSDP's scbk, goes in --reader-file)")
    p.add_argument("--reader-file", action="append", default=[], metavar="FILE",
                   help="reader specs, one a line ('#' comment lines and blank lines "
                   "skipped), after any --reader: keeps keys off the command line "
                   "(repeatable)")
    p.add_argument("--policy", action="append", default=[], metavar="KEY=VALUE",
                   help="a [policy] key, e.g. idle_timeout=90 (repeatable)")
    p.add_argument("--engine", metavar="URI|socket:PATH|emulator",
                   help="the print engine: ipp://PRINTER/ipp/print, socket:PATH, or emulator")
    p.add_argument("--reader-config", metavar="PORT",
                   help="a pcProx reader's serial port to set the output format on")
    p.add_argument("--format", choices=("dec", "hex"), help="the reader's number base")
    p.add_argument("--prefix", default="", help="characters before the number (3 in all)")
    p.add_argument("--suffix", default="", help="characters after the number")
    p.add_argument("--digits", type=int, default=0, help="zero-pad to N digits (0: off)")
    p.add_argument("--baud", type=int, default=9600, help="the reader's baud rate (9600)")
    p.add_argument("--dry-run", action="store_true", help="check everything, write nothing")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--ledger", type=Path, metavar="PATH", help="the fleet ledger (default: "
                   "$MFD_LEDGER, else $XDG_DATA_HOME/mfdkit/ledger.jsonl)")
    p.add_argument("--who", help="who provisions, for the ledger (default: the OS user)")
    p.set_defaults(func=cmd_provision)

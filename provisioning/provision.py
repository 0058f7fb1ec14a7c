"""``mfd provision``: put a device's identity, broker credentials, CA, readers, policy and engine
into its configuration directory, and set a pcProx reader's output format.

Theory of operation:

* **Validated before anything is written.** The files are built in memory and checked with the
  device app's own parser (``device_app.config.parse_config``, handed in as a
  :class:`DeviceSchema` because provisioning may not import device_app), which also checks
  reader specs with the readers' own syntax and the policy with the schema the cloud checks a
  push with;
  the device.toml text is then parsed back (``tomllib``) and must give the same configuration.
  A bad value is a :class:`ConfigError` that names the key, and the directory is untouched.
* **Nothing half-written.** Every file is first written beside its target as a temporary file
  (mode 0600, fsynced); only when all of them are on disk are they renamed over the targets,
  one ``os.replace`` each. A failure before the renames removes the temporary files and leaves
  the old configuration as it was.
* **Read back.** After the renames, the configuration is loaded as ``mfd device`` loads it
  (``load_config``, ``load_credentials``, with their permission checks) and compared with
  what was meant, CA bytes included; any difference is a :class:`ProvisionError`.
* **No secret printed.** The password comes from a file, never from the command line, and no
  result or error quotes it; the ledger entry (provisioning/ledger.py) names files, not values.
  Reader specs may carry a key too (OSDP's ``scbk``): :func:`read_reader_file` takes them from
  a file, and :func:`spec_secrets` names (never shows) the secrets a spec given on the command
  line would expose to every user of the machine through ``ps``.

The pcProx part (:func:`configure_pcprox`) speaks the reader's ASCII command protocol subset
(readers/codecs/pcprox.py: ``rfid:NAME=VALUE`` / ``rfid:NAME?``) through the serial adapter's
``command``: each variable is set, then queried back and compared.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import ssl
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from protocol.errors import ConfigError, MfdError, ReaderError
from protocol.managed import POLICY_TYPES
from protocol.redact import redact
from readers.codecs.ascii import AsciiFormat
from readers.codecs.pcprox import AcpAssign, AcpQuery, AcpValue, format_to_acp

__all__ = ["CA_FILE", "CONFIG_FILE", "CREDENTIALS_FILE", "PcProxSettings", "ProvisionError",
           "ProvisionRequest", "ProvisionResult", "configure_pcprox", "parse_policy_options",
           "provision", "read_reader_file", "record_provision", "spec_secrets"]

log = logging.getLogger(__name__)

CONFIG_FILE = "device.toml"
CREDENTIALS_FILE = "credentials"
CA_FILE = "ca.pem"


class DeviceConfigLike(Protocol):
    """What provisioning reads of a device configuration (device_app.config.DeviceConfig)."""

    @property
    def device_id(self) -> str: ...
    @property
    def readers(self) -> tuple[str, ...]: ...
    @property
    def credentials_file(self) -> str: ...


class DeviceSchema(Protocol):
    """The device app's own configuration schema, handed in by the front end: provisioning and
    device_app are sibling layers (pyproject's import contracts), so the module
    ``device_app.config`` itself is passed (it has exactly these functions)."""

    def parse_config(self, data: dict[str, Any], /) -> Any: ...
    def to_toml(self, cfg: Any, /) -> str: ...
    def load_config(self, path: str | Path, /) -> Any: ...
    def resolve_paths(self, cfg: Any, base: str | Path, /) -> Any: ...
    def load_credentials(self, path: str | Path, /) -> tuple[str, str]: ...


class ProvisionError(MfdError):
    """Provisioning failed: the files could not be written, or did not read back as written."""

    code = "provision_failed"


@dataclass(frozen=True, slots=True)
class ProvisionRequest:
    """What a technician gives ``mfd provision``. ``password`` never appears in a repr."""

    directory: Path
    device_id: str
    #: One broker URL, or several (``--broker`` given more than once): the device tries them
    #: in this order and fails over between them.
    broker_url: str | Sequence[str]
    username: str
    password: str = field(repr=False)
    engine_kind: str  # "ipp", "socket" or "emulator" (device_app.config.engine_choice)
    engine_uri: str = ""
    ca_file: Path | None = None  # the site CA to copy into the directory as ca.pem
    readers: tuple[str, ...] = ()
    policy: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""
    #: Where ``directory`` is on the device itself, to write ``ca_file`` as an absolute path
    #: there; None: ``ca.pem``, which the device finds beside device.toml wherever it is.
    device_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class ProvisionResult:
    config: DeviceConfigLike
    files: tuple[Path, ...]  # what was (or, dry run, would be) written
    dry_run: bool
    config_sha256: str  # of device.toml's text: which configuration a ledger line speaks of


def parse_policy_options(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings into a ``[policy]`` table, each value read as its key's type;
    ConfigError naming ``policy.KEY`` for an unknown key or a value of the wrong type."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"--policy {redact(item)!r}: expected KEY=VALUE, e.g. "
                              "idle_timeout=90")
        kind = POLICY_TYPES.get(key)
        if kind is None:
            raise ConfigError(f"config key 'policy.{key}' is not known; known: "
                              + ", ".join(sorted(POLICY_TYPES)))
        text = text.strip()
        try:
            if kind is bool:
                if text.lower() not in ("true", "false"):
                    raise ValueError(text)
                out[key] = text.lower() == "true"
            elif kind is int:
                out[key] = int(text)
            elif kind is float:
                out[key] = float(text)
            else:
                out[key] = text
        except ValueError:
            raise ConfigError(f"config key 'policy.{key}' must be {kind.__name__}, got "
                              f"{redact(text)!r}") from None
    return out


def spec_secrets(spec: str) -> list[str]:
    """The names of the secret parameters a reader spec carries (OSDP's ``scbk``, and any name
    such as ``key``, ``pin`` or ``password`` a backend may take); never their values. Secret
    means what the one redaction (protocol.redact) masks, judged on the parameter *names*, so
    a long hex serial number in a ``/dev/serial/by-id`` path is not taken for a key."""
    # Without its "?" (a malformed spec, about to be refused, but already in argv) the
    # parameters are looked for after the scheme.
    query = spec.partition("?")[2] if "?" in spec else spec.partition(":")[2]
    names: list[str] = []
    for part in query.replace(";", "&").split("&"):
        # A name whose value redact masks ("scbk=v" -> "scbk=***") is a secret's name. The
        # name is itself redacted: a mistyped "scbk:KEY" has the key in its "name".
        name = part.partition("=")[0].strip()
        if name and redact(f"{name}=v") != f"{name}=v" and redact(name) not in names:
            names.append(redact(name))
    return names


def read_reader_file(path: str | Path) -> tuple[str, ...]:
    """The reader specs in ``path``: one a line, in order; blank lines and lines whose first
    non-blank character is ``#`` are skipped (a ``#`` later on a line is part of the spec: a
    prefix character may be one). Every spec is checked with the readers' own syntax now, and
    a bad one is a ConfigError naming the file and line, with the spec redacted."""
    from readers.spec import check_spec

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--reader-file {path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--reader-file {path}: not UTF-8 text") from None
    specs: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        spec = line.strip()
        if not spec or spec.startswith("#"):
            continue
        try:
            check_spec(spec)
        except ConfigError as exc:  # already redacted by readers.spec
            raise ConfigError(f"--reader-file {path}, line {n}: {exc.message}") from None
        specs.append(spec)
    return tuple(specs)


def _urls(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _build(req: ProvisionRequest, schema: DeviceSchema) -> tuple[Any, dict[str, bytes]]:
    """The configuration and every file's bytes, validated; writes nothing."""
    if req.username != req.device_id:
        # The broker username is the device id (protocol/topics.py); mfd device refuses
        # credentials for another id, so they are refused here, before the directory changes.
        raise ConfigError(f"--username {req.username!r} must be the device id "
                          f"{req.device_id!r}: the broker confines a device by its username")
    if not req.password:
        raise ConfigError("the password file is empty")
    urls = _urls(req.broker_url)
    broker: dict[str, Any] = {"url": urls[0] if len(urls) == 1 else list(urls)}
    files: dict[str, bytes] = {}
    if req.ca_file is not None:
        files[CA_FILE] = _read_ca(req.ca_file)
        # The device resolves a relative ca_file against device.toml's folder
        # (device_app.config.resolve_paths), so "ca.pem" holds wherever the folder is
        # mounted or moved; an absolute path only when the technician names the folder.
        broker["ca_file"] = (str(req.device_dir / CA_FILE) if req.device_dir is not None
                             else CA_FILE)
    data: dict[str, Any] = {"device": {"id": req.device_id, "name": req.name},
                            "broker": broker,
                            "readers": {"specs": list(req.readers)},
                            "engine": {"kind": req.engine_kind, "uri": req.engine_uri}}
    if req.policy:
        data["policy"] = dict(req.policy)
    cfg = schema.parse_config(data)  # the device app's own schema: names the first bad key
    text = schema.to_toml(cfg)
    if schema.parse_config(tomllib.loads(text)) != cfg:
        raise ProvisionError("device.toml would not read back as the configuration given "
                             "(a bug: please report it with the options used)")
    files[CONFIG_FILE] = text.encode("utf-8")
    files[CREDENTIALS_FILE] = (json.dumps({"username": req.username,
                                           "password": req.password}) + "\n").encode("utf-8")
    return cfg, files


def _read_ca(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--ca {path}: cannot read it ({exc.strerror})") from None
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"--ca {path} holds no usable certificate ({exc}); give the PEM "
                          "file of the CA that signed the broker's certificate") from None
    return data


def provision(req: ProvisionRequest, schema: DeviceSchema, *,
              dry_run: bool = False) -> ProvisionResult:
    """Write (or, ``dry_run``, only check) the device's configuration into ``req.directory``,
    then read it back. ConfigError (a bad option, named) before anything is written;
    ProvisionError if writing or the read-back fails."""
    cfg, files = _build(req, schema)
    directory = req.directory
    _refuse_other_device(directory, req.device_id)
    digest = hashlib.sha256(files[CONFIG_FILE]).hexdigest()
    targets = tuple(directory / name for name in files)
    if dry_run:
        return ProvisionResult(cfg, targets, True, digest)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ProvisionError(f"cannot create {directory}: {exc.strerror}") from None
    _write_all(directory, files)
    _read_back(directory, schema, req, cfg, files)
    return ProvisionResult(cfg, targets, False, digest)


def _refuse_other_device(directory: Path, device_id: str) -> None:
    # managed.json and journal.db belong to the device that wrote them: provisioning another
    # identity over them would start it with the old one's pushed config and print journal.
    path = directory / CONFIG_FILE
    if not path.exists():
        return
    try:
        old = tomllib.loads(path.read_text(encoding="utf-8")).get("device", {}).get("id")
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return  # a damaged file is replaced, whoever it was for
    if isinstance(old, str) and old != device_id:
        raise ConfigError(f"{directory} holds device {old!r}'s configuration (and its journal "
                          f"and pushed config); provision {device_id!r} into an empty "
                          "directory, or remove the old one first")


def _write_all(directory: Path, files: Mapping[str, bytes]) -> None:
    temps: list[tuple[Path, Path]] = []
    try:
        for name, data in files.items():
            target = directory / name
            tmp = directory / f".{name}.provision.tmp"
            # A leftover (or planted) temporary file goes first, and the new one is created
            # exclusively and never through a link: credentials land only where we put them.
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            temps.append((tmp, target))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)  # also when a stale temporary file had looser permissions
    except OSError as exc:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise ProvisionError(f"cannot write into {directory}: {exc.strerror}; nothing was "
                             "changed") from None
    # All on disk: now the renames, each atomic. device.toml last, so a directory that has
    # it has the credentials and CA it names.
    temps.sort(key=lambda pair: pair[1].name == CONFIG_FILE)
    try:
        for tmp, target in temps:
            os.replace(tmp, target)
    except OSError as exc:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise ProvisionError(f"cannot replace {exc.filename}: {exc.strerror}; device.toml was "
                             "not changed") from None
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the renames themselves survive a power cut
    finally:
        os.close(dir_fd)


def _read_back(directory: Path, schema: DeviceSchema, req: ProvisionRequest, cfg: Any,
               files: Mapping[str, bytes]) -> None:
    try:
        loaded = schema.load_config(directory / CONFIG_FILE)
        username, password = schema.load_credentials(loaded.credentials_file)
    except ConfigError as exc:
        raise ProvisionError(f"read-back failed: {exc.message}") from None
    # The loaded config makes absolute file paths of device.toml's relative ones: it must be
    # what was meant with the same paths made absolute the same way.
    if schema.to_toml(loaded) != schema.to_toml(schema.resolve_paths(cfg, directory)):
        raise ProvisionError(f"read-back failed: {directory / CONFIG_FILE} does not hold what "
                             "was written (another program changed it?)")
    if (username, password) != (req.username, req.password):
        raise ProvisionError(f"read-back failed: {directory / CREDENTIALS_FILE} does not hold "
                             "the credentials written")
    if CA_FILE in files and (directory / CA_FILE).read_bytes() != files[CA_FILE]:
        raise ProvisionError(f"read-back failed: {directory / CA_FILE} differs from the CA "
                             "given")


def record_provision(req: ProvisionRequest, result: ProvisionResult | None,
                     error: MfdError | None, *, ledger: str | Path | None = None,
                     who: str | None = None) -> None:
    """The one place a provision reaches the fleet ledger (provisioning/ledger.py): one entry a
    run, ``ok``, ``refused`` (a bad option: nothing written) or ``failed``; it names the
    directory and the config's hash, never a secret."""
    from provisioning.ledger import Entry, record
    from provisioning.ledger import who as os_user

    details: dict[str, str | int | float | bool | None] = {
        "directory": str(req.directory),
        "broker": " ".join(redact(url) for url in _urls(req.broker_url)),
        "readers": len(req.readers), "engine": req.engine_kind, "tls": req.ca_file is not None}
    if result is not None:
        details["config_sha256"] = result.config_sha256
    entry = Entry(action="provision", device={"id": req.device_id},
                  result=("ok" if error is None else
                          "refused" if isinstance(error, ConfigError) else "failed"),
                  code=None if error is None else error.code,
                  message="" if error is None else redact(error.message)[:300],
                  who=who or os_user(), details=details)
    record(entry, ledger)


# ---------------------------------------------------------------- pcProx reader settings


@dataclass(frozen=True, slots=True)
class PcProxSettings:
    """The output format a technician sets on a pcProx: decimal or hex, prefix and suffix
    characters (three in all, the reader's chr.1..3), the ID zero-padded to ``digits``."""

    base: int = 10
    prefix: str = ""
    suffix: str = ""
    digits: int = 0

    def variables(self) -> dict[str, AcpValue]:
        """The reader variables these settings need; ConfigError if a pcProx cannot do it."""
        try:
            fmt = AsciiFormat(pre=self.prefix.encode("ascii"), post=self.suffix.encode("ascii"),
                              base=self.base, width=self.digits)
        except UnicodeEncodeError:
            raise ConfigError("--prefix/--suffix: a pcProx sends ASCII characters only"
                              ) from None
        if fmt.pre[:1] == b"{":
            raise ConfigError("--prefix must not start with '{' (the reader's replies do)")
        acp = format_to_acp(fmt)
        names = ("chr.1", "chr.2", "chr.3", "chr.count.lead", "chr.count.trail",
                 "disp.id.hex", "disp.id.digits")
        return {name: acp[name] for name in names}


#: Counts first to 0, characters, then the counts: the reader refuses (``{ERR value}``)
#: any moment where lead + trail would exceed its three characters.
_ORDER = ("chr.count.lead", "chr.count.trail", "chr.1", "chr.2", "chr.3", "disp.id.hex",
          "disp.id.digits")


def configure_pcprox(port: str, settings: PcProxSettings, *, baud: int = 9600,
                     timeout_s: float = 2.0) -> dict[str, AcpValue]:
    """Set a pcProx reader on ``port`` to ``settings`` through its command set, then query
    every variable back; returns what the reader reports. ReaderError if it does not answer,
    refuses a value, or reads back something else."""
    from readers.adapters.serial_reader import SerialCardReader

    wanted = settings.variables()
    reader = SerialCardReader(port, reader_id=f"provision:{port}", family="pcprox", baud=baud)
    reader.start(lambda _read: None)  # badges shown meanwhile are not ours to report
    try:
        steps: list[tuple[str, AcpValue]] = [("chr.count.lead", 0), ("chr.count.trail", 0)]
        steps += [(name, wanted[name]) for name in _ORDER[2:]]
        steps += [("chr.count.lead", wanted["chr.count.lead"]),
                  ("chr.count.trail", wanted["chr.count.trail"])]
        for name, value in steps:
            result = reader.command(AcpAssign(name, value), timeout_s)
            if not result.ok:
                raise ReaderError(f"reader on {port} refused {name} = {value!r} "
                                  f"({result.reply.text}); is it a pcProx with the ASCII "
                                  "command protocol?")
        got: dict[str, AcpValue] = {}
        for name in _ORDER:
            result = reader.command(AcpQuery(name), timeout_s)
            if result.value is None:
                raise ReaderError(f"reader on {port} did not report {name} "
                                  f"({result.reply.text})")
            got[name] = result.value
    finally:
        reader.stop()
    wrong = [name for name in _ORDER if got[name] != wanted[name]]
    if wrong:
        raise ReaderError(f"reader on {port} reads back {wrong[0]} = {got[wrong[0]]!r}, not "
                          f"{wanted[wrong[0]]!r}: it did not keep the setting")
    return got

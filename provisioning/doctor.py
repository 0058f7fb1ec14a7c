"""``mfd doctor``: what is wrong with this device, and what to do about it.

Theory of operation: each check is a function that returns a :class:`Check` (``ok``, ``warn``
or ``fail``, a one-line finding, and the fix), run in the order a technician would look: the
configuration, then the network up the stack (TCP, TLS, the broker's CONNACK, what the broker
lets the account do), then the clock, the cloud's configuration version, the readers, the
print engine and the firmware. A check whose ground is missing (no broker, no TLS) says so
as a ``warn`` "not checked" instead of failing a second time for the same cause.

With several brokers (``[broker] url`` a list), the broker checks run on each in turn, a
fallback's named with its place (``tls (broker 2)``); a fallback's failure is a warning (the
device works, but could not fail over there: its account missing on that broker, most often).

The broker checks run against the real broker as the device, on one MQTT 5 connection with
its own client id (``<device>-doctor-<random>``), clean start and no Will: on a broker that
honours client ids this never touches the device's session. A site broker configured as the
technician guide says forces client ids to usernames (``use_username_as_clientid``), and there
*any* second connection as the device takes its session over (the running device is thrown
off and reconnects). So before connecting, doctor looks for a running ``mfd device`` on the
same configuration: a process holding the configuration's journal file open (Linux /proc).
If one runs, the checks that need the device's own session (credentials, ACL, config
version) and its reader ports (which it holds) are not run, and say why.

The ACL check is made by the broker itself: SUBSCRIBE to another device's command topic, to
the cloud's shared request subscription and to the whole tree must each be refused in the
SUBACK, and a QoS 1 PUBLISH to a device id nobody can have (``mfd-doctor-probe``, a reserved
name) must be refused in the PUBACK. A granted probe means the device's role is too broad.

Clock skew: the MQTT contract carries no time, and a device's role may not read ``$SYS``; the
cloud's portal answers every HTTP request with a ``Date`` header (1 s resolution), so with
``--portal URL`` the skew is that Date against the middle of the request's round trip.

Config version: the cloud keeps a device's newest managed configuration retained on its
``.../cmd`` topic; the version there is compared with the one the device applied
(``managed.json`` beside device.toml; 0 when absent).

provisioning may not import device_app (sibling layers): the device's side (its config loader,
its engine registry) comes in through :class:`DeviceSide`, which the CLI fills.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import queue
import secrets
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from mqtt_client.endpoint import endpoint
from protocol import topics
from protocol.address import BrokerAddress
from protocol.engine import ENGINE_REASONS, EngineState
from protocol.errors import ConfigError, MfdError
from protocol.redact import redact

__all__ = ["PROBE_DEVICE", "Check", "DeviceSide", "DoctorOptions", "Report", "Status",
           "diagnose", "running_holders"]

#: A device id no device can have (reserved: protocol.topics), whose topics the ACL probes use,
#: so that a broker that wrongly grants them delivers nothing to anyone.
PROBE_DEVICE = "mfd-doctor-probe"
_NOT_AUTHORIZED = 0x87


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    finding: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "finding": self.finding,
                "fix": self.fix}


@dataclass(slots=True)
class Report:
    device_id: str
    config: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status is not Status.FAIL for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def to_json(self) -> dict[str, Any]:
        return {"device": self.device_id, "config": self.config, "ok": self.ok,
                "checks": [c.to_json() for c in self.checks]}


class DeviceSide(Protocol):
    """The device app's own loader and engine registry (device_app), handed in by the CLI."""

    #: The file beside device.toml holding the last applied push (device_app.runner).
    managed_file: str

    def load_config(self, path: Path) -> Any: ...

    def load_credentials(self, path: str) -> tuple[str, str]: ...

    def engine_state(self, cfg: Any) -> EngineState:
        """Open the configured engine, ask its state, close it; MfdError if it cannot."""
        ...


@dataclass(frozen=True, slots=True)
class DoctorOptions:
    portal: str = ""  # the cloud's portal URL: its Date header is the clock
    tap_s: float = 0.0  # > 0: wait this long on each reader for a badge
    smp_ports: tuple[str, ...] = ()  # the device's SMP ports (firmware and slots)
    timeout_s: float = 5.0


def running_holders(path: Path) -> list[int]:
    """Processes holding ``path`` open (Linux /proc; [] elsewhere or when none can be seen)."""
    try:
        target = str(path.resolve())
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []
    found = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # gone, or another user's
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    found.append(int(pid))
                    break
            except OSError:
                continue
    return found


def diagnose(config: Path, side: DeviceSide, options: DoctorOptions = DoctorOptions(),
             *, tap_sink: Callable[[str], None] | None = None) -> Report:
    """Run every check on the device configured in ``config`` (device.toml or its folder)."""
    path = config / "device.toml" if config.is_dir() else config
    report = Report("", str(path))
    try:
        cfg = side.load_config(path)
        username, password = side.load_credentials(cfg.credentials_file)
        if username != cfg.device_id:
            raise ConfigError(f"the credentials are for device {username!r}, the config for "
                              f"{cfg.device_id!r}")
    except MfdError as exc:
        report.checks.append(Check("config", Status.FAIL, redact(exc.message),
                                   "fix the key named (docs/technician-guide.md), or provision "
                                   "again: mfd provision DIR ..."))
        return report
    report.device_id = cfg.device_id
    report.checks.append(Check("config", Status.OK, f"{path} is valid for {cfg.device_id}"))
    holders = running_holders(Path(cfg.journal_file))
    running = (f"mfd device (pid {', '.join(map(str, holders))}) runs on this configuration"
               if holders else "")
    # Every broker of [broker] url (a list: the device fails over between them), each as the
    # device would reach it. A fallback's checks are named with its place ("broker 2"); one
    # that fails is a warning: the device works on its primary, but could not fail over there.
    for place, url in enumerate(_broker_urls(cfg), start=1):
        into = report if place == 1 else Report(report.device_id, report.config)
        _broker_checks(into, cfg, url, password, running, side, options)
        if into is not report:
            report.checks += [_fallback(c, place) for c in into.checks]
    report.checks.append(_clock(options.portal, options.timeout_s))
    _readers(report, cfg.readers, running, options.tap_s, tap_sink)
    report.checks.append(_engine(side, cfg))
    for port in options.smp_ports:
        report.checks.append(_firmware(port, options.timeout_s))
    return report


def _broker_checks(report: Report, cfg: Any, url: str, password: str, running: str,
                   side: DeviceSide, options: DoctorOptions) -> None:
    """TCP, TLS and the device's own session (credentials, ACL, config version) on one broker."""
    address, ca = _broker(cfg, url, password)
    reachable = _tcp(report, address, options.timeout_s)
    tls_ok = reachable and _tls(report, address, ca, options.timeout_s)
    session_ok = reachable and (ca is None or tls_ok)
    if running:
        why = (f"not checked: {running}, and a second connection as the device would take its "
               "session over on a broker that forces client ids to usernames")
        for name in ("credentials", "acl", "config version"):
            report.checks.append(Check(name, Status.WARN, why,
                                       "stop mfd device, run mfd doctor, start it again"))
    elif session_ok:
        _session_checks(report, cfg, address, ca, side.managed_file, options.timeout_s)
    else:
        for name in ("credentials", "acl", "config version"):
            report.checks.append(Check(name, Status.WARN, "not checked: no way to the broker",
                                       "fix the broker checks above first"))


def _fallback(check: Check, place: int) -> Check:
    if check.status is not Status.FAIL:
        return replace(check, name=f"{check.name} (broker {place})")
    return replace(check, name=f"{check.name} (broker {place})", status=Status.WARN,
                   finding=f"the device could not fail over to this broker: {check.finding}")


def _broker_urls(cfg: Any) -> tuple[str, ...]:
    urls = getattr(cfg, "broker_urls", None)  # a device config of before the list: one URL
    return tuple(urls) if urls else (str(cfg.broker_url),)


def _broker(cfg: Any, url: str, password: str) -> tuple[BrokerAddress, str | None]:
    # Read as device_app.runner reads it (mqtts:// without a port means 8883).
    ep = endpoint(url, cfg.device_id, password, ca_file=str(cfg.ca_file))
    return BrokerAddress(ep.host, ep.port, ep.username, ep.password), ep.tls_ca_file


def _tcp(report: Report, address: BrokerAddress, timeout_s: float) -> bool:
    where = f"{address.host}:{address.port}"
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout_s):
            pass
    except OSError as exc:
        report.checks.append(Check(
            "broker reachable", Status.FAIL, f"no TCP connection to {where}: "
            f"{exc.strerror or exc}",
            "check [broker] url in device.toml, that the broker runs, and that the network "
            "and firewalls let this device reach that port"))
        return False
    report.checks.append(Check("broker reachable", Status.OK, f"TCP connection to {where}"))
    return True


def _tls(report: Report, address: BrokerAddress, ca: str | None, timeout_s: float) -> bool:
    if ca is None:
        report.checks.append(Check(
            "tls", Status.WARN, "the broker link is plain mqtt://: credentials and badges "
            "cross the network in clear", "on a site, use mqtts:// with the site's CA "
            "(mfd provision --broker mqtts://HOST:8883 --ca CA.pem)"))
        return False
    try:
        context = ssl.create_default_context(cafile=ca or None)
    except (OSError, ssl.SSLError) as exc:
        report.checks.append(Check("tls", Status.FAIL, f"cannot use CA file {ca!r}: {exc}",
                                   "put the site CA's PEM file where [broker] ca_file says"))
        return False
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout_s) as raw, \
                context.wrap_socket(raw, server_hostname=address.host) as tls:
            version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        report.checks.append(Check(
            "tls", Status.FAIL, f"the broker's certificate is not trusted: "
            f"{exc.verify_message or exc}",
            f"[broker] ca_file ({ca or 'the system CAs'}) must be the CA that signed the "
            "broker's certificate, and the certificate must name the host in [broker] url"))
        return False
    except (ssl.SSLError, OSError) as exc:
        report.checks.append(Check("tls", Status.FAIL, f"no TLS handshake: {exc}",
                                   "is this port the broker's TLS listener (usually 8883)?"))
        return False
    report.checks.append(Check("tls", Status.OK, f"{version}, broker certificate verified "
                               f"against {ca or 'the system CAs'}"))
    return True


class _Probe:
    """One MQTT 5 connection as the device, under doctor's own client id: CONNACK, SUBACK and
    PUBACK reason codes and the messages received, handed over through queues."""

    def __init__(self, address: BrokerAddress, device_id: str, ca: str | None,
                 timeout_s: float) -> None:
        from mqtt_client import new_client

        self.timeout_s = timeout_s
        self.connacks: queue.Queue[Any] = queue.Queue()
        self.subacks: queue.Queue[Any] = queue.Queue()
        self.pubacks: queue.Queue[Any] = queue.Queue()
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.client_id = f"{device_id}-doctor-{secrets.token_hex(3)}"
        c = new_client(self.client_id, address.username, address.password, tls_ca_file=ca)
        c.reconnect_delay_set(60, 60)  # one attempt: a refusal is the finding, not a retry
        c.on_connect = lambda _c, _u, _f, rc, _p: self.connacks.put(rc)
        c.on_subscribe = lambda _c, _u, _m, rcs, _p: self.subacks.put(list(rcs))
        c.on_publish = lambda _c, _u, _m, rc, _p: self.pubacks.put(rc)
        c.on_message = lambda _c, _u, msg: self.inbox.put(msg)
        self.client = c
        self.address = address

    def connect(self) -> Any:
        self.client.connect(self.address.host, self.address.port, keepalive=15,
                            clean_start=True)
        self.client.loop_start()
        return self.connacks.get(timeout=self.timeout_s)

    def subscribe(self, topic: str) -> int:
        self.client.subscribe(topic, qos=1)
        return int(self.subacks.get(timeout=self.timeout_s)[0].value)

    def publish(self, topic: str) -> int:
        self.client.publish(topic, b"{}", qos=1)
        return int(self.pubacks.get(timeout=self.timeout_s).value)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _session_checks(report: Report, cfg: Any, address: BrokerAddress, ca: str | None,
                    managed_file: str, timeout_s: float) -> None:
    device_id: str = cfg.device_id
    probe = _Probe(address, device_id, ca, timeout_s)
    try:
        try:
            rc = probe.connect()
        except (OSError, queue.Empty) as exc:
            why = str(exc) or "timed out"
            report.checks.append(Check("credentials", Status.FAIL, f"no CONNACK: {why}",
                                       "check the broker's log"))
            return
        if rc.is_failure:
            report.checks.append(Check(
                "credentials", Status.FAIL, f"the broker refused {device_id}: {rc}",
                "the password in the credentials file is not the broker's: register the "
                "device again (mfd device register --code CODE from mfd admin device-add), "
                "or provision it with the password the administrator set"))
            return
        report.checks.append(Check("credentials", Status.OK,
                                   f"the broker accepted {device_id} (client id "
                                   f"{probe.client_id})"))
        own_cmd = topics.command_topic(device_id)
        try:
            own = probe.subscribe(own_cmd)
            granted = [t for t in (topics.command_topic(PROBE_DEVICE),
                                   topics.CLOUD_REQUEST_SUBSCRIPTION, f"{topics.PREFIX}/#")
                       if probe.subscribe(t) < 0x80]
            for t in granted:
                probe.client.unsubscribe(t)
            published = probe.publish(topics.command_topic(PROBE_DEVICE))
        except queue.Empty:
            for name in ("acl", "config version"):
                report.checks.append(Check(name, Status.FAIL, "the broker stopped answering "
                                           "(no SUBACK or PUBACK)", "check the broker's log"))
            return
        if granted or published < 0x80:
            what = (f"it may subscribe to {granted[0]}" if granted else
                    f"it may publish to {topics.command_topic(PROBE_DEVICE)}")
            report.checks.append(Check(
                "acl", Status.FAIL, f"the broker does not confine {device_id}: {what}",
                f"the role {topics.device_role_name(device_id)} must name only "
                f"{topics.PREFIX}/{device_id}/... topics (mfd admin broker-acl prints the "
                "intended roles); remove the extra ACL (mosquitto_ctrl dynsec removeRoleACL "
                "ROLE ACLTYPE TOPIC) and any other role given to the account"))
        elif own >= 0x80:
            report.checks.append(Check(
                "acl", Status.FAIL, f"the broker refuses {device_id} its own command topic",
                f"the role {topics.device_role_name(device_id)} lacks its ACLs: register the "
                "device again, which writes its role"))
        else:
            report.checks.append(Check("acl", Status.OK, "confined: another device's and "
                                       "the cloud's topics refused, its own granted"))
        # The retained config came before the later SUBACKs: the broker keeps the order.
        report.checks.append(_config_version(probe, own_cmd, Path(cfg.journal_file).parent
                                             / managed_file))
    finally:
        probe.close()


def _config_version(probe: _Probe, own_cmd: str, managed: Path) -> Check:
    cloud = 0
    while True:
        try:
            msg = probe.inbox.get_nowait()
        except queue.Empty:
            break
        if msg.topic == own_cmd and msg.retain:
            try:
                version = json.loads(bytes(msg.payload)).get("version")
            except (ValueError, AttributeError):
                continue
            if isinstance(version, int) and not isinstance(version, bool):
                cloud = max(cloud, version)
    applied = 0
    if managed.exists():
        try:
            applied = int(json.loads(managed.read_text(encoding="utf-8")).get("version", 0))
        except (ValueError, OSError, AttributeError, TypeError):
            return Check("config version", Status.FAIL, f"{managed} is damaged",
                         f"remove {managed}: the device takes the cloud's version at its next "
                         "connection")
    if cloud == applied:
        return Check("config version", Status.OK, f"version {applied} (the cloud's latest)"
                     if applied else "no pushed configuration (the cloud has none)")
    if cloud > applied:
        return Check("config version", Status.FAIL,
                     f"the device runs version {applied}, the cloud's latest is {cloud}",
                     "start mfd device (it takes the cloud's version when it connects); if "
                     "it refused that version, mfd admin devices shows why")
    return Check("config version", Status.WARN,
                 f"the device runs version {applied}, the broker holds no newer one than "
                 f"{cloud or 'none'}", "the broker may have lost its retained messages (a "
                 "restart without persistence); the cloud pushes again within a minute")


def _clock(portal: str, timeout_s: float) -> Check:
    if not portal:
        return Check("clock", Status.WARN, "not checked: the MQTT contract carries no time",
                     "give --portal URL (the cloud's portal): its Date header is the clock")
    start = time.time()
    try:
        with urllib.request.urlopen(portal, timeout=timeout_s) as response:  # noqa: S310
            date = response.headers.get("Date")
    except urllib.error.HTTPError as exc:
        date = exc.headers.get("Date")  # any answer has the server's time
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Check("clock", Status.WARN, f"not checked: the portal {portal} did not answer "
                     f"({exc})", "check --portal URL")
    end = time.time()
    if not date:
        return Check("clock", Status.WARN, f"not checked: {portal} sends no Date header",
                     "give the cloud portal's URL")
    server = email.utils.parsedate_to_datetime(date).timestamp()
    skew = (start + end) / 2 - server  # > 0: this device is ahead
    text = f"this device is {abs(skew):.1f} s {'ahead of' if skew > 0 else 'behind'} the cloud"
    fix = "enable time sync (NTP: timedatectl set-ntp true) and check the time zone"
    if abs(skew) <= 5:
        return Check("clock", Status.OK, text + " (Date has 1 s resolution)")
    if abs(skew) <= 60:
        return Check("clock", Status.WARN, text, fix)
    return Check("clock", Status.FAIL, text + ": TLS and the cloud's times will be wrong", fix)


def _readers(report: Report, specs: Sequence[str], running: str, tap_s: float,
             tap_sink: Callable[[str], None] | None) -> None:
    from readers.spec import open_reader, redact_spec

    if not specs:
        report.checks.append(Check("readers", Status.WARN, "no reader configured",
                                   "add one: mfd provision ... --reader SPEC"))
    for i, spec in enumerate(specs):
        name = f"reader {i + 1}"
        shown = redact_spec(spec)
        if running:
            report.checks.append(Check(name, Status.WARN, f"{shown}: not opened: {running} "
                                       "and holds it", "stop mfd device to test the reader"))
            continue
        reads: queue.Queue[object] = queue.Queue()
        try:
            reader = open_reader(spec)
            reader.start(reads.put)
        except MfdError as exc:
            report.checks.append(Check(name, Status.FAIL, f"{shown}: absent: "
                                       f"{redact(exc.message)}",
                                       "plug the reader in, check the port in the spec "
                                       "(ls /dev/serial/by-id/) and that this user may open it"))
            continue
        try:
            layout = _pcprox_layout(name, shown, reader)
            if layout is not None:
                report.checks.append(layout)
                continue
            if tap_s <= 0:
                report.checks.append(Check(name, Status.OK, f"{shown}: present (opened)"))
                continue
            if tap_sink is not None:
                tap_sink(f"{shown}: show a badge within {tap_s:g} s")
            try:
                reads.get(timeout=tap_s)
            except queue.Empty:
                report.checks.append(Check(name, Status.FAIL, f"{shown}: present, but no badge "
                                           f"read within {tap_s:g} s", "check the reader's "
                                           "family and format in the spec (mfd reader watch "
                                           "SPEC shows what arrives)"))
            else:  # the number itself is never shown: a badge number is a credential
                report.checks.append(Check(name, Status.OK, f"{shown}: present and reading"))
        finally:
            reader.stop()


#: What a pcProx is asked for its output layout (readers/codecs/pcprox.py).
_LAYOUT = ("chr.1", "chr.2", "chr.3", "chr.count.lead", "chr.count.trail", "chr.fac",
           "chr.eol", "disp.fac.send", "disp.id.hex", "disp.id.digits")


def _pcprox_layout(name: str, shown: str, reader: object) -> Check | None:
    """For a pcProx: the layout it prints, asked over its command set, against the layout its
    spec decodes; None when it matches (or the reader is not a pcProx). A reader printing hex
    while the spec reads decimal turns a digits-only hex number into another user's."""
    from readers.adapters.serial_reader import SERIAL_FAMILIES, SerialCardReader
    from readers.codecs.pcprox import AcpQuery, AcpValue, format_from_acp

    if not isinstance(reader, SerialCardReader) or reader.family != "pcprox":
        return None
    expected = getattr(SERIAL_FAMILIES["pcprox"].build(reader.options)(), "format", None)
    got: dict[str, AcpValue] = {}
    try:
        for variable in _LAYOUT:
            result = reader.command(AcpQuery(variable), 2.0)
            if result.value is None:
                # Not quoted: a badge read meanwhile would put its number here.
                raise MfdError(f"it answered something other than a value "
                               f"({len(result.reply.text)} characters) to rfid:{variable}?")
            got[variable] = result.value
        actual = format_from_acp(got)
    except MfdError as exc:
        return Check(name, Status.WARN, f"{shown}: present; its output settings could not be "
                     f"read ({redact(exc.message)})", "is it a pcProx with the ASCII command "
                     "protocol, at the spec's baud rate?")
    if actual == expected:
        return None
    return Check(name, Status.FAIL, f"{shown}: the reader prints {_layout(actual)}, the spec "
                 f"decodes {_layout(expected)}", "set the reader to the spec's layout (mfd "
                 "provision --reader-config PORT --format dec|hex --prefix X --suffix Y), or "
                 "make the spec say the reader's (base=, pre=, post=, width=)")


def _layout(fmt: Any) -> str:
    if fmt is None:
        return "an unknown layout"
    return (f"{'hex' if fmt.base == 16 else 'dec'}, prefix {fmt.pre.decode('latin-1')!r}, "
            f"suffix {fmt.post.decode('latin-1')!r}, {fmt.width or 'unpadded'} digits")


def _engine(side: DeviceSide, cfg: Any) -> Check:
    kind = cfg.engine.kind
    try:
        state = side.engine_state(cfg)
    except MfdError as exc:
        return Check("engine", Status.FAIL, f"{kind}: {redact(exc.message)}",
                     "check [engine] in device.toml and that the printer is on and reachable")
    if state.can_print:
        note = " (the EMULATOR: prints nothing)" if kind == "emulator" else ""
        return Check("engine", Status.OK, f"{kind}: {state.value}{note}")
    fix = ENGINE_REASONS.get(state, "check the printer")
    if state is EngineState.OFFLINE:  # also what an engine that does not answer reports
        fix += (f" Check [engine] uri in device.toml ({redact(cfg.engine.uri) or 'none'}) and "
                "that the printer is on and reachable from this device.")
    return Check("engine", Status.FAIL, f"{kind}: {state.value}", fix)


def _firmware(port: str, timeout_s: float) -> Check:
    from provisioning.smp_device import SmpDevice

    async def read() -> tuple[Any, list[Any]]:
        async with SmpDevice(port, timeout_s=timeout_s, retries=1) as device:
            return await device.facts(), await device.slots()

    name = f"firmware {port}"
    try:
        facts, slots = asyncio.run(read())
    except MfdError as exc:
        return Check(name, Status.FAIL, redact(exc.message), "check the port and that the "
                     "device runs its SMP server (mfd flash --dry-run --port PORT)")
    states = "; ".join(f"slot {s.slot} {s.version}" + "".join(
        f" {w}" for w in ("active", "confirmed", "pending") if getattr(s, w)) for s in slots)
    model = f"{facts.model} " if facts.model else ""
    active = [s for s in slots if s.active]
    if active and not active[0].confirmed:
        return Check(name, Status.WARN, f"{model}{states}: the running image is on test",
                     "it reverts at the next reset unless confirmed: mfd flash confirms it "
                     "after its health check")
    if any(s.pending for s in slots):
        return Check(name, Status.WARN, f"{model}{states}: an image waits for a test boot",
                     "reset the device to test it, or flash again")
    return Check(name, Status.OK, f"{model}{states}")

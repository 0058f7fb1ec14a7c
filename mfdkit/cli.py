"""``mfd``: one command, a subcommand per role.

Every failure a user can cause ends in one line on stderr that says what to do, and a non-zero
exit status; tracebacks are for bugs only (``--debug`` shows them for everything).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from protocol.errors import MfdError
from protocol.redact import redact

log = logging.getLogger("mfd")

# pygame prints a banner on import unless told not to; our output is a transcript.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

EXIT_USAGE = 2
EXIT_FAILED = 1


#: The `mfd admin` actions that may create a new store (`mfd cloud` creates one too). Every other
#: action needs the store to exist: a typo in a SQLite path would otherwise give an empty
#: database, and "no users" with exit status 0.
_CREATES_STORE = ("init", "demo")


def _store(url: str, *, create: bool = False) -> Any:
    from cloud.storage.factory import open_store

    if not create and url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if not path.is_file():
            raise MfdError(f"no store at {path} (check --store; sqlite:////absolute/path.db "
                           "takes four slashes); create a new one with: mfd admin --store URL "
                           "init", code="not_found")
    return open_store(url)


#: What an identify request can carry as a card number (protocol.messages.Identify.value).
_CARD_RE = re.compile(r"[!-~]{1,128}")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _check_known(store: Any, args: argparse.Namespace) -> None:
    """Every org, user and device an admin action names must exist, and what it adds must be
    usable (an email, a card number a device can send): acting on a typo and saying it worked
    is the mistake an administrator cannot see."""
    org = getattr(args, "org", None)
    if org and store.query_one("SELECT 1 FROM orgs WHERE id=?", org) is None:
        known = ", ".join(r[0] for r in store.query_all("SELECT id FROM orgs ORDER BY id"))
        raise MfdError(f"no org {org} in this store (orgs: {known or 'none'})",
                       code="not_found")
    if args.admin_cmd == "org-add" and not args.name.strip():
        raise MfdError("an org needs a name", code="invalid_field")
    if args.admin_cmd == "user-add":
        if not _EMAIL_RE.fullmatch(args.email.strip()) or len(args.email) > 254:
            raise MfdError(f"{args.email!r} is not an email address", code="invalid_field")
        if not args.name.strip():
            raise MfdError("a user needs a display name", code="invalid_field")
    if args.admin_cmd in ("card-add", "cards-add") and not _CARD_RE.fullmatch(args.number):
        # The number itself stays out of the message: card numbers are never shown in clear.
        raise MfdError("a card number is 1 to 128 characters without spaces, exactly as the "
                       "reader gives it (mfd reader watch shows it)", code="invalid_field")
    if args.admin_cmd == "unlock":
        if args.user and store.user_by_email(args.user.strip().lower()) is None:
            raise MfdError(f"no user {args.user}", code="not_found")
        if args.device and store.device_org(args.device) is None:
            raise MfdError(f"no device {args.device}", code="not_found")


def _secret(value: str | None, env: str, what: str) -> str:
    secret = value or os.environ.get(env, "")
    if not secret:
        raise MfdError(f"no {what}: pass --password or set {env}", code="config_invalid")
    return secret


# ---------------------------------------------------------------- sim


class StopSignals:
    """SIGINT and SIGTERM both mean "stop cleanly".

    The handler raises KeyboardInterrupt, so whatever the main thread is blocked in unwinds
    through the context managers that own processes and files, and it also sets a flag that
    loops poll: pygame's event pump can run Python signal handlers inside C code and drop the
    exception they raise (seen with the dummy video driver), so the flag is the guarantee.
    """

    def __init__(self, *, interrupt: bool = True) -> None:
        # Services (cloud, headless device) only poll the flag, so a stop is a normal exit (0)
        # that a service manager does not count as a failure.
        self.interrupt = interrupt
        self.requested = False
        signal.signal(signal.SIGINT, self._handler)
        signal.signal(signal.SIGTERM, self._handler)

    def _handler(self, _signum: int, _frame: Any) -> None:
        self.requested = True
        if self.interrupt:
            raise KeyboardInterrupt

    def __call__(self) -> bool:
        return self.requested


def sim_keys(app: Any, badge: Any) -> Any:
    """The simulator's keyboard: 1-3 tap the demo users' badges, 4 an unknown one; on a keypad
    screen the laptop keyboard stands in for the panel's keypad and keyboard."""
    from cloud.demo import DEMO_USERS, UNKNOWN_BADGE_TAG
    from device_app.session import State

    tags = [u.badge_tag for u in DEMO_USERS] + [UNKNOWN_BADGE_TAG]

    def on_key(key: int, text: str) -> None:
        import pygame

        if app.machine.state is State.ENTRY:
            named = {pygame.K_RETURN: "ENTER", pygame.K_KP_ENTER: "ENTER",
                     pygame.K_BACKSPACE: "BACKSPACE", pygame.K_TAB: "TAB"}
            if key in named:
                app.key(named[key])
            elif text and text.isprintable():
                app.key(text)
            return
        index = key - pygame.K_1
        if 0 <= index < len(tags):
            badge.present(tags[index])

    return on_key


def cmd_sim(args: argparse.Namespace) -> int:
    stop = StopSignals()
    if args.headless:
        from simulator.scenario import run_demo

        return run_demo(sys.stdout, Path(args.screenshots) if args.screenshots else None,
                        page_time=args.page_time)
    from cloud.demo import DEMO_USERS
    from device_app.window import run_window
    from simulator.world import SimWorld

    with SimWorld(page_time=args.page_time) as world:
        assert world.app and world.badge
        badge = world.badge
        print("mfd sim: panel window open. Keys: 1-3 tap the demo users' badges "
              f"({', '.join(u.name for u in DEMO_USERS)}), 4 an unknown badge, Esc quits; "
              "on a keypad screen the keyboard types (demo access codes: "
              f"{', '.join(u.access_code for u in DEMO_USERS)}).")
        on_key = sim_keys(world.app, badge)
        run_window(world.app, title="mfdkit simulator", on_key=on_key, should_stop=stop)
    return 0


# ---------------------------------------------------------------- device


def cmd_device(args: argparse.Namespace) -> int:
    if args.action == "register":
        from device_app.config import engine_choice
        from device_app.runner import register

        if not args.code or not args.portal:
            raise MfdError("register needs --portal URL and --code CODE (from mfd admin "
                           "device-add)", code="config_invalid")
        if not args.engine:
            # No default: a copier that falls back to the emulator prints nothing while the
            # cloud marks its jobs printed.
            raise MfdError("register needs --engine: the printer's URI (ipp://PRINTER/ipp/"
                           "print), socket:PATH, or emulator (prints nothing)",
                           code="config_invalid")
        cfg = register(args.portal, args.code, args.dir, engine=engine_choice(args.engine))
        print(f"registered as {cfg.device_id}; configuration in "
              f"{Path(args.dir) / 'device.toml'}, credentials (owner-only) beside it")
        if cfg.engine.emulated:
            print(_EMULATED.format(cfg.device_id), file=sys.stderr)
        print(f"next: add the readers to device.toml, then run: mfd device --config "
              f"{Path(args.dir) / 'device.toml'}")
        return 0
    # Before anything starts: a stop that arrives while we start up must still be clean.
    stop = StopSignals(interrupt=not args.headless)
    device = _build_device(args)
    if device.cfg.engine.emulated:
        print(_EMULATED.format(device.cfg.device_id), file=sys.stderr)
    device.start()
    app = device.app
    if not device.link.connected:
        print("mfd device: not connected to the print service yet; retrying in the background",
              file=sys.stderr)
    try:
        if args.headless:
            while not stop():
                app.step(0.1)
        else:
            from device_app.window import run_window

            run_window(app, title=device.cfg.device_id,
                       fullscreen=args.fullscreen or (bool(args.config) and device.cfg.fullscreen),
                       should_stop=stop)
    finally:
        device.stop()
    return 0


_EMULATED = ("mfd device: WARNING: {} prints on the EMULATED engine (engine.kind = "
             "\"emulator\"): released jobs are marked printed and no paper comes out")


def _build_device(args: argparse.Namespace) -> Any:
    from device_app.config import engine_choice, parse_config
    from device_app.runner import Device, from_config_file

    if args.config:
        if args.engine:
            raise MfdError("--engine is for register and the options-only form; with "
                           "--config, the engine is [engine] in device.toml",
                           code="config_invalid")
        return from_config_file(args.config)
    if not args.broker or not args.device_id or not args.engine:
        raise MfdError("give --config device.toml, or --broker URL, --device-id ID and "
                       "--engine (ipp://PRINTER/ipp/print, socket:PATH, or emulator)",
                       code="config_invalid")
    engine = engine_choice(args.engine)
    password = _secret(args.password, "MFD_DEVICE_PASSWORD", "device broker password")
    cfg = parse_config({"device": {"id": args.device_id, "name": args.name or ""},
                        "broker": {"url": args.broker},
                        "readers": {"specs": list(args.reader)},
                        "policy": {"idle_timeout": args.idle_timeout},
                        "engine": {"kind": engine.kind, "uri": engine.uri}})
    return Device(cfg, password)


# ---------------------------------------------------------------- cloud


def cmd_cloud(args: argparse.Namespace) -> int:
    from cloud.service import CloudService
    from cloud.storage.factory import open_store
    from cloud.worker import CloudWorker
    from protocol.address import BrokerAddress

    # Before anything starts: a stop that arrives while we start up must still be clean.
    stop = StopSignals(interrupt=False)
    password = _secret(args.password, "MFD_CLOUD_PASSWORD", "cloud broker password")
    base = BrokerAddress.parse(args.broker, args.username, password)
    http = _host_port(args.http) if args.http else None
    accounts = _broker_accounts(args, base)  # before anything starts: a bad admin fails here
    open_store(args.store).close()  # validates the URL and creates the schema once
    workers = []
    for i in range(args.workers):
        user = base.username if args.workers == 1 else f"{base.username}-{i}"
        worker = CloudWorker(lambda: CloudService(open_store(args.store)),
                             base.with_user(user, password), name=user)
        workers.append(worker.start())
    portal = None
    try:
        if http is not None:
            from cloud.portal import start_portal

            portal = start_portal(args.store, *http, public_url=args.public_url,
                                  accounts=accounts,
                                  device_broker_url=args.device_broker_url or args.broker)
            print(f"mfd cloud: User Portal and client API on {portal.url}"
                  + (f" (public {portal.public_url})" if args.public_url else ""),
                  file=sys.stderr)
        print(f"mfd cloud: {len(workers)} worker(s) serving {base.host}:{base.port}; "
              "Ctrl-C stops", file=sys.stderr)
        while not stop():
            time.sleep(0.2)
    finally:
        if portal is not None:
            portal.close()
        for w in workers:
            w.stop()
    return 0


def _broker_accounts(args: argparse.Namespace, base: Any) -> Any:
    """The device-account writer for registration: Mosquitto's dynamic-security API, as the
    --broker-admin account. None (registration off) without --broker-admin."""
    if args.broker_passwd or args.broker_pid:
        # Fail closed: a password file and an acl_file cannot keep a device out of the cloud's
        # shared subscription (Mosquitto checks an acl_file at delivery, not at SUBSCRIBE).
        raise MfdError("--broker-passwd and --broker-pid are gone: a password file and acl_file "
                       "let any device take a share of the fleet's requests. Load Mosquitto's "
                       "dynamic-security plugin and pass --broker-admin USER (technician guide, "
                       "section 3)", code="config_invalid")
    if not args.broker_admin:
        return None
    from cloud.broker_accounts import DynsecAccounts

    password = os.environ.get("MFD_BROKER_ADMIN_PASSWORD", "")
    if not password:
        raise MfdError("no broker admin password: set MFD_BROKER_ADMIN_PASSWORD",
                       code="config_invalid")
    accounts = DynsecAccounts(base.with_user(args.broker_admin, password))
    accounts.check()
    print(f"mfd cloud: device registration writes broker accounts as {args.broker_admin}",
          file=sys.stderr)
    return accounts


def _host_port(value: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT, or :PORT (loopback)."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise MfdError(f"--http wants HOST:PORT (e.g. 127.0.0.1:8631), not {value!r}",
                       code="config_invalid")
    return host, int(port)


# ---------------------------------------------------------------- admin


def _org(store: Any, given: str | None) -> str:
    """--org, or the store's only org."""
    if given:
        return given
    orgs = [str(r[0]) for r in store.query_all("SELECT id FROM orgs ORDER BY id")]
    if len(orgs) != 1:
        raise MfdError(f"this store has {len(orgs)} orgs; pass --org ORG",
                       code="config_invalid")
    return orgs[0]


def _user_password(given: str | None, what: str = "password") -> str:
    """--password, else MFD_USER_PASSWORD, else a prompt on a terminal."""
    if given:
        return given
    env = os.environ.get("MFD_USER_PASSWORD", "")
    if env:
        return env
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(f"{what}: ")
    raise MfdError(f"no {what}: pass --password, set MFD_USER_PASSWORD, or run on a terminal",
                   code="config_invalid")


def _broker_setup(args: argparse.Namespace) -> int:
    """``mfd admin broker-acl``: the dynamic-security plugin's starting file on stdout. It holds
    PBKDF2 hashes only; the passwords come from the environment or a prompt, never argv."""
    from protocol import topics

    if args.cloud_workers < 1:
        raise MfdError("--cloud-workers must be at least 1", code="config_invalid")
    if args.roles_only:
        print(json.dumps({"defaultACLAccess": topics.DYNSEC_DEFAULT_ACCESS,
                          "roles": topics.broker_roles()}, indent=2))
        return 0
    from cloud.broker_accounts import dynsec_config

    def ask(env: str, what: str) -> str:
        value = os.environ.get(env, "")
        if not value and sys.stdin.isatty():
            import getpass

            value = getpass.getpass(f"{what}: ")
        if not value:
            raise MfdError(f"no {what}: set {env}", code="config_invalid")
        return value

    admin = args.admin_user or topics.BROKER_ADMIN_USER
    users = [args.cloud_user if args.cloud_workers == 1 else f"{args.cloud_user}-{i}"
             for i in range(args.cloud_workers)]
    cloud_pw = ask("MFD_CLOUD_PASSWORD", "cloud workers' broker password")
    admin_pw = ask("MFD_BROKER_ADMIN_PASSWORD", f"broker password of {admin}")
    print(json.dumps(dynsec_config(dict.fromkeys(users, cloud_pw), (admin, admin_pw)), indent=2))
    return 0


def _positive_int(text: str) -> int:
    """An argparse type: a count that must be at least 1 (0 pages, -2 copies or a negative
    --limit were taken silently)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, not {text!r}")
    return value


def _when(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def cmd_admin(args: argparse.Namespace) -> int:
    from cloud import directory
    from cloud.demo import seed_demo

    if args.admin_cmd == "broker-acl":
        return _broker_setup(args)  # no store: it describes the broker, not the service
    if not args.store:
        raise MfdError("mfd admin needs --store URL (e.g. sqlite:////var/lib/mfdkit/cloud.db)",
                       code="config_invalid")
    store = _store(args.store, create=args.admin_cmd in _CREATES_STORE)
    _check_known(store, args)
    if args.admin_cmd in _LINKING_ADMIN:
        return _admin_linking(store, args)
    match args.admin_cmd:
        case "init":
            print(f"store ready: {args.store}")
        case "demo":
            org = seed_demo(store, now=time.time())
            print(f"demo org {org} created")
        case "org-add":
            print(store.create_org(args.name))
        case "user-add":
            print(store.add_user(args.org, args.email, args.name))
        case "users":
            for u in store.users(args.org):
                print(f"{u.id}\t{u.email}\t{u.display_name}")
        case "card-add" | "cards-add":
            directory.add_card(store, args.email, args.number)
            print(f"card added for {args.email}")
        case "code-set":
            directory.set_access_code(store, args.email, args.code)
            print(f"access code set for {args.email}")
        case "device-add":
            from cloud.devices import REGISTRATION_TTL, add_device

            code = add_device(store, args.org, args.device_id, args.name or "", time.time())
            print(f"device {args.device_id} added to {args.org}")
            print(f"registration code (one use, valid {REGISTRATION_TTL / 3600:g} h): {code}")
            print(f"on the device: mfd device register --portal PORTAL_URL --code {code}")
        case "device-code":
            from cloud.devices import new_registration_code

            print(new_registration_code(store, args.device_id, time.time()))
        case "devices":
            from cloud.devices import config_state, device_engine

            for device_id, org_id, name, status in store.devices():
                if device_engine(store, device_id) == "emulator":
                    status += " (EMULATED engine: prints nothing)"
                c = config_state(store, device_id)
                state = (f"config v{c['version']} (applied v{c['applied']}"
                         + (f", refused v{c['refused']}: {c['refusal']}" if c["refused"] > c[
                             "applied"] else "") + ")") if c["version"] else "no pushed config"
                print(f"{device_id}\t{org_id}\t{status}\t{name}\t{state}")
        case "device-config":
            from cloud.devices import set_device_config

            managed: dict[str, dict[str, Any]] = {}
            for item in args.set:
                key, sep, raw = item.partition("=")
                section, dot, name = key.partition(".")
                if not sep or not dot:
                    raise MfdError(f"--set {redact(item)!r}: use SECTION.KEY=VALUE, e.g. "
                                   "policy.idle_timeout=90", code="config_invalid")
                try:
                    value = json.loads(raw)
                except ValueError:
                    value = raw  # a bare word is a string
                managed.setdefault(section, {})[name] = value
            if not managed and not args.unset:
                raise MfdError("give --set SECTION.KEY=VALUE or --unset SECTION.KEY",
                               code="config_invalid")
            # Checked with the device's own schema before anything is stored.
            version = set_device_config(store, args.device_id, managed, time.time(),
                                        unset=tuple(args.unset))
            print(f"config version {version} stored for {args.device_id}; the cloud pushes it "
                  "to the device, which applies or refuses it (see: mfd admin devices)")
            from cloud.devices import config_state

            before = config_state(store, args.device_id)
            if before["refused"] == version - 1 and before["refused"] > before["applied"]:
                # Every version carries the whole managed configuration, so what the device
                # refused is in this one too unless it was changed or unset.
                print(f"note: the device refused version {version - 1} ({before['refusal']}); "
                      "this version keeps every key you did not change: --unset SECTION.KEY "
                      "drops one", file=sys.stderr)
        case "org-settings":
            from dataclasses import replace as _replace

            from cloud.storage.port import OrgSettings

            with store.transaction():
                current = store.org_settings(args.org)
                changes: dict[str, Any] = {}
                if args.hold_hours is not None:
                    changes["hold_hours"] = args.hold_hours
                if args.card_policy is not None:
                    changes["card_policy"] = args.card_policy
                if args.release_changes is not None:
                    changes["release_changes"] = args.release_changes == "yes"
                if args.aop_pending is not None:
                    changes["aop_pending"] = args.aop_pending
                new: OrgSettings = _replace(current, **changes)
                if changes:
                    store.set_org_settings(args.org, new)
                    store.audit(time.time(), "admin", "org.settings", f"org:{args.org}",
                                ", ".join(f"{k}={v}" for k, v in changes.items()))
            from dataclasses import fields as _fields

            for f in _fields(new):
                print(f"{f.name}\t{getattr(new, f.name)}")
        case "unlock":
            subject = args.device or (args.user or "").strip().lower()
            scope = "device" if args.device else "user"
            with store.transaction():
                locked = store.locked_until(scope, subject, time.time()) is not None
                store.unlock(scope, subject)  # also forgets the wrong guesses counted so far
                store.audit(time.time(), "admin", "unlock", f"{scope}:{subject}")
            print(f"{scope} {subject} unlocked" if locked else
                  f"{scope} {subject} was not locked; its count of wrong guesses is reset")
        case "throttles":
            from cloud import throttle

            for t in throttle.active(store):
                until = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t.until))
                print(f"{t.scope}\t{t.subject}\tuntil {until}\t{t.refused} lookup(s) refused")
        case "unthrottle":
            from cloud import throttle

            scope, subject = ("device", args.device) if args.device else ("org", args.org)
            t = throttle.lift(store, scope, subject)
            print(f"{scope} {subject}: badge sign-in works again ({t.refused} lookup(s) were "
                  "refused)")
        case "jobs":
            for j in store.all_jobs():
                print(f"{j.id}\t{j.state}\t{j.owner_id or '-'}\t{j.pages}p\t{j.name}\t"
                      f"{j.client_id or '-'}")
        case "audit":
            for at, actor, action, subject, detail in store.audit_log(args.limit):
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
                print(f"{stamp}\t{actor}\t{action}\t{subject}\t{detail}")
        case "job-add":
            path = Path(args.file)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise MfdError(f"cannot read {path}: {exc.strerror}", code="not_found") from None
            job_id = directory.submit_job(store, args.user, args.name or path.name, data,
                                          pages=args.pages, color=args.color,
                                          duplex=args.duplex, copies=args.copies,
                                          source=args.source)
            print(f"job {job_id} held for {args.user}")
        case "password-set":
            directory.set_password(store, args.email, _user_password(None, "new password"))
            print(f"password set for {args.email}")
        case "aop-policy":
            from dataclasses import replace

            org = _org(store, args.org)
            with store.transaction():
                store.set_org_settings(org, replace(store.org_settings(org),
                                                    aop_pending=args.policy))
                store.audit(time.time(), "admin", "org.aop_pending", f"org:{org}", args.policy)
            print(f"Authenticate-on-Print: pending jobs {args.policy.replace('_', ' ')} "
                  f"in {org}")
    return 0


def _http_url(text: str) -> str:
    """An http(s) URL with a host: it goes into links people are sent, which must open."""
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{redact(text)!r} is not an http:// or https:// address with a host "
            "(e.g. https://print.example.org)")
    return text


_LINKING_ADMIN = ("import", "invite", "share-link", "bulk-installer", "cards-remove",
                  "codes-reset", "queues-add", "queues", "clients", "client-revoke")


def _admin_linking(store: Any, args: argparse.Namespace) -> int:
    from cloud.linking import Linking

    linking = Linking(store, base_url=args.portal_url)
    match args.admin_cmd:
        case "import":
            path = Path(args.file)
            try:
                text = path.read_bytes().decode("utf-8-sig")
            except OSError as exc:
                raise MfdError(f"cannot read {path}: {exc.strerror}", code="not_found") from None
            except UnicodeDecodeError:
                raise MfdError(f"{path} is not UTF-8 text; save it as CSV UTF-8",
                               code="import_invalid") from None
            r = linking.import_users(_org(store, args.org), text, name=path.name)
            print(f"imported {r.users} user(s), {r.cards} card(s), {r.codes} access code(s) "
                  f"from {path.name}")
        case "invite":
            invitation = (linking.invite_classic(args.email) if args.classic
                          else linking.invite_portal(args.email))
            # The email is the deliverable: the admin sends it to the invitee (mfdkit has no
            # mail transport). Its links are the invitee's secrets.
            print(invitation.body, end="")
        case "share-link":
            print(linking.share_link(_org(store, args.org), rotate=args.rotate))
        case "bulk-installer":
            issued = linking.bulk_installer(_org(store, args.org), ttl=args.days * 86_400.0)
            print(f"org-wide anonymous installer {issued.id}, valid until "
                  f"{_when(issued.expires_at)}:\n  {issued.token}\n"
                  "Deploy it with the client (MDM), for every user of a computer:\n"
                  f"  mfd client --portal {linking.base_url} link --anonymous {issued.token}")
        case "cards-remove":
            n = linking.remove_cards(args.email, args.number)
            print(f"{n} card(s) removed from {args.email}")
        case "codes-reset":
            code = linking.reset_access_code(args.email)
            print(f"new access code for {args.email}: {code}\n(shown once: the cloud keeps only "
                  "a hash; give it to the user)")
        case "queues-add":
            linking.add_queue(_org(store, args.org), args.name)
            print(f"queue {args.name!r} deployed to linked clients")
        case "queues":
            for name in linking.queues(_org(store, args.org)):
                print(name)
        case "clients":
            for inst, user in linking.installs(_org(store, args.org),
                                               include_revoked=args.all):
                state = ("revoked" if inst.revoked_at else
                         f"linked {user.email}" if user else "anonymous")
                print(f"{inst.id}\t{inst.kind}\t{inst.machine}\t{inst.os_user or '-'}\t"
                      f"{state}\t{inst.via}\t{_when(inst.created_at)}")
        case "client-revoke":
            linking.revoke_install(args.client_id)
            print(f"client {args.client_id} revoked")
    return 0


# ---------------------------------------------------------------- client


def cmd_client(args: argparse.Namespace) -> int:
    from client.print_client import PortalBrowser, PrintClient

    client = PrintClient(args.state, args.portal)
    match args.client_cmd:
        case "link":
            if args.mobile:
                if args.linking_code:
                    answer = client.link_mobile(linking_code=args.linking_code,
                                                relink=args.relink)
                elif args.email:
                    answer = client.link_mobile(email=args.email,
                                                password=_user_password(args.password),
                                                relink=args.relink)
                else:
                    raise MfdError("link --mobile needs --email (and a password) or "
                                   "--linking-code", code="invalid_field")
            else:
                answer = client.link(args.installer_token or args.anonymous, kind=args.kind,
                                     machine=args.machine, os_user=args.os_user,
                                     relink=args.relink)
            _print_link(answer)
        case "status":
            _print_status(client.status())
        case "print":
            answer = client.print_file(args.file, name=args.name, pages=args.pages,
                                       color=args.color, duplex=args.duplex,
                                       copies=args.copies, queue=args.queue)
            if answer["state"] == "PENDING_AUTH":
                print(f"job {answer['job_id']} waits: this client is not linked to anyone yet."
                      f"\n{answer['message']}:\n  {answer['sign_in_url']}")
            else:
                owner = answer["owner"]
                print(f"job {answer['job_id']} held for {owner['email']} ({answer['size']} "
                      f"bytes, sha256 {answer['sha256'][:12]}...)")
        case "portal":
            _client_portal(PortalBrowser(args.state, args.portal), args)
    return 0


def _print_link(answer: dict[str, Any]) -> None:
    c, user = answer["client"], answer["user"]
    seat = f"{c['kind']} {c['machine']}" + (f" (os user {c['os_user']})" if c["os_user"] else "")
    if user:
        print(f"linked {seat} to {user['display_name']} <{user['email']}>")
    else:
        print(f"registered {seat} anonymously: the first print asks its user to sign in")
    print(f"queues: {', '.join(answer['queues'])}")


def _print_status(s: dict[str, Any]) -> None:
    c, user = s["client"], s["user"]
    print(f"client {c['id']}: {c['kind']} {c['machine']}"
          + (f" (os user {c['os_user']})" if c["os_user"] else ""))
    print(f"linked to: {user['display_name']} <{user['email']}> ({c['via']})" if user
          else "linked to: nobody yet (Authenticate-on-Print at the first print)")
    print(f"queues: {', '.join(s['queues'])}")
    if user:
        print(f"held jobs: {s['held_total']}")
        for j in s["held_jobs"]:
            print(f"  {j['id']}\t{j['pages']}p\t{j['name']}")


def _client_portal(browser: Any, args: argparse.Namespace) -> None:
    match args.portal_cmd:
        case "signin":
            a = browser.sign_in(args.email, _user_password(args.password), args.share_link)
            print(f"signed in to the User Portal as {a['user']['email']}")
        case "accept":
            a = browser.accept_invitation(args.invitation,
                                          _user_password(args.password, "new password"))
            print(f"password set; signed in to the User Portal as {a['user']['email']}")
        case "setup-devices":
            a = browser.setup_devices()
            print(f"your personal installer (valid {-(-a['expires_in'] // 3600)} h):\n"
                  f"  {a['url']}\n"
                  "Run it on your computer or Chromebook:\n"
                  "  mfd client link --installer-token '<that link>'")
        case "linking-code":
            a = browser.linking_code()
            print(f"linking code for the mobile app: {a['linking_code']} (valid "
                  f"{-(-a['expires_in'] // 60)} min, once)")
        case "confirm":
            d = browser.aop_details(args.sign_in_url)
            c = d["client"]
            print(f"linking {c['kind']} {c['machine']}"
                  + (f" (os user {c['os_user']})" if c["os_user"] else "")
                  + f" with {len(d['pending_jobs'])} pending job(s)")
            print(browser.aop_confirm(args.sign_in_url)["message"])
        case "devices":
            a = browser.devices()
            print(f"{a['user']['display_name']} <{a['user']['email']}>")
            for c in a["clients"]:
                print(f"  {c['id']}\t{c['kind']}\t{c['machine']}\t{c['os_user'] or '-'}\t"
                      f"{c['via']}")
        case "signout":
            browser.sign_out()
            print("signed out")


def _default_client_state() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return str(Path(base) / "mfdkit" / "client")


# ---------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse quotes a stray or bad argument back, and an argument can be a reader spec with
    its key in it: its errors are redacted like every other (subparsers share this class)."""

    def error(self, message: str) -> NoReturn:
        super().error(redact(message))


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mfd", description="mfdkit: secure print release at the "
                                "copier. One subcommand per role.")
    p.add_argument("--debug", action="store_true", help="verbose logs and full tracebacks")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("sim", help="run everything on this machine: broker, cloud, demo org and "
                       "the panel (a window, or --headless for the scripted demo)")
    s.add_argument("--headless", action="store_true",
                   help="no window: run the built-in demo scenario, print a transcript, exit")
    s.add_argument("--screenshots", metavar="DIR", help="with --headless: save a PNG per step")
    s.add_argument("--page-time", type=float, default=0.2, metavar="S",
                   help="seconds the emulated engine takes per copy (default 0.2)")
    s.set_defaults(func=cmd_sim)

    d = sub.add_parser("device", help="run the panel app on a copier (--config device.toml), "
                       "or register a new device (register --portal URL --code CODE)")
    d.add_argument("action", nargs="?", choices=("run", "register"), default="run")
    d.add_argument("--config", metavar="FILE", help="device.toml (from mfd device register)")
    d.add_argument("--portal", metavar="URL", help="register: the cloud's portal URL")
    d.add_argument("--code", help="register: the one-time code from mfd admin device-add")
    d.add_argument("--dir", default=".", help="register: where to write device.toml and "
                   "credentials (default: here)")
    d.add_argument("--engine", metavar="URI|socket:PATH|emulator",
                   help="register (and without --config): the print engine, no default: the "
                   "printer's URI (ipp://PRINTER/ipp/print), an engine socket, or emulator "
                   "(prints nothing: a bench only)")
    d.add_argument("--broker", help="mqtt://host:port (without --config)")
    d.add_argument("--device-id", help="this device's id = its broker username")
    d.add_argument("--password", help="broker password (or set MFD_DEVICE_PASSWORD)")
    d.add_argument("--reader", action="append", default=[], metavar="SPEC",
                   help="reader spec, e.g. serial:/dev/ttyUSB0?family=em4100 (repeatable)")
    d.add_argument("--name", help="name shown on the panel")
    d.add_argument("--idle-timeout", type=float, default=60.0, metavar="S")
    d.add_argument("--fullscreen", action="store_true")
    d.add_argument("--headless", action="store_true", help="no screen (readers only)")
    d.set_defaults(func=cmd_device)

    c = sub.add_parser("cloud", help="run the reference cloud's MQTT workers")
    c.add_argument("--broker", required=True, help="mqtt://host:port")
    c.add_argument("--store", required=True, help="sqlite:///relative.db or sqlite:////absolute/path.db")
    c.add_argument("--workers", type=int, default=1)
    c.add_argument("--username", default="cloud", help="broker username (-N appended per worker)")
    c.add_argument("--password", help="broker password (or set MFD_CLOUD_PASSWORD)")
    c.add_argument("--http", metavar="HOST:PORT",
                   help="also serve the User Portal and client API (JSON over HTTP) here, e.g. "
                   "127.0.0.1:8631; off unless given")
    c.add_argument("--public-url", metavar="URL",
                   help="the portal's address as users reach it (behind a TLS proxy), used in "
                   "links; default http://HOST:PORT")
    c.add_argument("--broker-admin", metavar="USER",
                   help="the broker's account-writer account (role mfd-broker-admin; password "
                   "in MFD_BROKER_ADMIN_PASSWORD): enables device registration (mfd device "
                   "register), which creates each new device's broker account and role through "
                   "Mosquitto's dynamic-security plugin")
    # Gone (a password file cannot confine subscriptions); kept only to say so when given.
    c.add_argument("--broker-passwd", help=argparse.SUPPRESS)
    c.add_argument("--broker-pid", help=argparse.SUPPRESS)
    c.add_argument("--device-broker-url", metavar="URL",
                   help="the broker address registered devices use (default: --broker)")
    c.set_defaults(func=cmd_cloud)

    a = sub.add_parser("admin", help="manage orgs, users, cards, devices; read jobs and audit")
    a.add_argument("--store", help="sqlite:///relative.db or sqlite:////absolute/path.db "
                   "(every action but broker-acl)")
    a.add_argument("--portal-url", metavar="URL", type=_http_url,
                   help="portal address for the links in invitations (default: the one `mfd "
                   "cloud --http` recorded in the store, else http://127.0.0.1:8631)")
    asub = a.add_subparsers(dest="admin_cmd", metavar="ACTION", required=True)
    asub.add_parser("init", help="create the store (its tables) if it does not exist yet; "
                    "every other action except demo needs an existing store")
    asub.add_parser("demo", help="create the demo org (users, badges, held jobs); creates the "
                    "store if needed")
    x = asub.add_parser("org-add", help="create an org; prints its id")
    x.add_argument("name")
    x = asub.add_parser("user-add", help="add a user; prints its id")
    x.add_argument("--org", required=True)
    x.add_argument("email")
    x.add_argument("name")
    x = asub.add_parser("users", help="list an org's users")
    x.add_argument("--org", required=True)
    for name in ("card-add", "cards-add"):
        x = asub.add_parser(name, help="link a card number to a user")
        x.add_argument("email")
        x.add_argument("number", help="canonical card number")
    x = asub.add_parser("cards-remove", help="remove one card of a user, or all of them")
    x.add_argument("email")
    x.add_argument("number", nargs="?", help="the card number (default: every card)")
    x = asub.add_parser("codes-reset", help="give a user a new random access code (printed once)")
    x.add_argument("email")
    x = asub.add_parser("code-set", help="set a user's access code (6-10 letters or digits)")
    x.add_argument("email")
    x.add_argument("code")
    x = asub.add_parser("device-add", help="add a device to an org; prints its one-time "
                        "registration code")
    x.add_argument("--org", required=True)
    x.add_argument("device_id")
    x.add_argument("--name")
    x = asub.add_parser("device-code", help="a new one-time registration code for a device")
    x.add_argument("device_id")
    asub.add_parser("devices", help="list devices with status and config state")
    x = asub.add_parser("device-config", help="push managed configuration to a device")
    x.add_argument("device_id")
    x.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="e.g. policy.idle_timeout=90, policy.card_pin=true, "
                   'readers.specs=\'["serial:/dev/ttyUSB0?family=em4100"]\'; checked with the '
                   "device's schema before it is stored")
    x.add_argument("--unset", action="append", default=[], metavar="SECTION.KEY",
                   help="stop managing a key (or a whole SECTION): the device goes back to its "
                   "device.toml value")
    x = asub.add_parser("org-settings", help="show or change an org's policy: hold time, "
                        "card policy, changes at release, Authenticate-on-Print")
    x.add_argument("--org", required=True)
    x.add_argument("--hold-hours", type=float, metavar="H", help="0.5 to 72 (default 8)")
    x.add_argument("--card-policy", choices=("replace_oldest", "refuse"),
                   help="what a third card does")
    x.add_argument("--release-changes", choices=("yes", "no"),
                   help="may users change colour/duplex/copies at release")
    x.add_argument("--aop-pending", choices=("join", "print_again"),
                   help="Authenticate-on-Print: the pending job joins the queue, or print again")
    x = asub.add_parser("unlock", help="lift a guessing lockout")
    who = x.add_mutually_exclusive_group(required=True)
    who.add_argument("--device", help="a device locked after wrong codes")
    who.add_argument("--user", metavar="EMAIL", help="a user locked after wrong passwords/PINs")
    asub.add_parser("throttles", help="devices and orgs whose badge sign-in is paused after too "
                    "many unknown badges")
    x = asub.add_parser("unthrottle", help="let a throttled device or org sign in by badge again")
    who = x.add_mutually_exclusive_group(required=True)
    who.add_argument("--device", help="a throttled device")
    who.add_argument("--org", help="a throttled org")
    asub.add_parser("jobs", help="list every job and its state")
    x = asub.add_parser("broker-acl", help="print the broker's starting dynamic-security file "
                        "(roles, the accounts of the cloud workers `mfd cloud --workers N "
                        "--username NAME` connects as and of the account writer); needs no store")
    x.add_argument("--cloud-workers", type=int, default=1)
    x.add_argument("--cloud-user", default="cloud")
    x.add_argument("--admin-user", default=None, metavar="NAME",
                   help="the account writer's username (default broker-admin)")
    x.add_argument("--roles-only", action="store_true",
                   help="only the roles and default access, no accounts (no passwords asked)")
    x = asub.add_parser("audit", help="the newest audit entries")
    x.add_argument("--limit", type=_positive_int, default=50)
    x = asub.add_parser("import", help="add users from a CSV or TSV file: email, display name, "
                        "card number (optional), access code (optional); all rows or none")
    x.add_argument("file")
    x.add_argument("--org", help="the org (default: the store's only org)")
    x = asub.add_parser("invite", help="print the invitation email for a user")
    g = x.add_mutually_exclusive_group(required=True)
    g.add_argument("--classic", action="store_true",
                   help="personal installer link and mobile linking code")
    g.add_argument("--portal", action="store_true",
                   help="User Portal sign-in with a first password")
    x.add_argument("email")
    x = asub.add_parser("share-link", help="the org's User Portal sign-in link")
    x.add_argument("--org")
    x.add_argument("--rotate", action="store_true", help="replace it; earlier links stop working")
    x = asub.add_parser("bulk-installer",
                        help="an org-wide anonymous installer token for MDM deployment")
    x.add_argument("--org")
    x.add_argument("--days", type=_positive_float, default=365.0,
                   help="valid for (default 365)")
    x = asub.add_parser("queues-add", help="deploy a print queue to the org's linked clients")
    x.add_argument("name")
    x.add_argument("--org")
    x = asub.add_parser("queues", help="list the deployed print queues")
    x.add_argument("--org")
    x = asub.add_parser("clients", help="list client installs and their link state")
    x.add_argument("--org")
    x.add_argument("--all", action="store_true", help="include replaced and revoked ones")
    x = asub.add_parser("client-revoke", help="revoke a client install (lost laptop or phone)")
    x.add_argument("client_id")
    x = asub.add_parser("password-set", help="set a user's portal password (from "
                        "MFD_USER_PASSWORD or a prompt)")
    x.add_argument("email")
    x = asub.add_parser("aop-policy", help="Authenticate-on-Print: the job that asked the user to "
                        "sign in joins their queue, or they print again")
    x.add_argument("policy", choices=["join", "print_again"])
    x.add_argument("--org")
    x = asub.add_parser("job-add", help="hold a document for a user, as the admin (no client)")
    x.add_argument("--user", required=True, help="the owner's email")
    x.add_argument("file", help="the document to print")
    x.add_argument("--name", help="job name (default: the file name)")
    x.add_argument("--pages", type=_positive_int, default=1)
    x.add_argument("--color", action="store_true")
    x.add_argument("--duplex", action="store_true")
    x.add_argument("--copies", type=_positive_int, default=1)
    x.add_argument("--source", default="mfd admin")
    a.set_defaults(func=cmd_admin)

    cl = sub.add_parser("client", help="act as a user's print client (workstation, Chromebook "
                        "or phone) over the portal's HTTP API: link, print, status")
    cl.add_argument("--state", default=_default_client_state(), metavar="DIR",
                    help="this OS user's client state, kept private (default %(default)s)")
    cl.add_argument("--portal", metavar="URL", help="portal URL (default: from the link, the "
                    "state, MFD_PORTAL_URL, or http://127.0.0.1:8631)")
    csub = cl.add_subparsers(dest="client_cmd", metavar="ACTION", required=True)
    x = csub.add_parser("link", help="link this client to its user")
    g = x.add_mutually_exclusive_group(required=True)
    g.add_argument("--installer-token", metavar="TOKEN_OR_LINK",
                   help="a personal installer (invitation link or Set up my devices)")
    g.add_argument("--anonymous", metavar="ORG_INSTALLER_TOKEN",
                   help="the org-wide installer: link at the first print")
    g.add_argument("--mobile", action="store_true", help="the mobile app")
    x.add_argument("--email", help="with --mobile")
    x.add_argument("--password", help="with --mobile --email (or MFD_USER_PASSWORD, or a prompt)")
    x.add_argument("--linking-code", help="with --mobile: a code from the User Portal")
    x.add_argument("--kind", choices=["workstation", "chromebook"], default="workstation")
    x.add_argument("--machine", help="host name, or the Chrome extension's install id")
    x.add_argument("--os-user", help="default: the current user (workstation)")
    x.add_argument("--relink", action="store_true", help="link again, replacing this link")
    x = csub.add_parser("print", help="send a document to hold at the copier")
    x.add_argument("file")
    x.add_argument("--name", help="job name (default: the file name)")
    x.add_argument("--pages", type=int, default=1)
    x.add_argument("--color", action="store_true")
    x.add_argument("--duplex", action="store_true")
    x.add_argument("--copies", type=int, default=1)
    x.add_argument("--queue", help="a deployed queue (default: the default printer)")
    csub.add_parser("status", help="link state, deployed queues and held jobs")
    x = csub.add_parser("portal", help="the user in the User Portal (what a browser does)")
    psub = x.add_subparsers(dest="portal_cmd", metavar="ACTION", required=True)
    y = psub.add_parser("signin", help="sign in with email and password")
    y.add_argument("--email", required=True)
    y.add_argument("--password", help="or MFD_USER_PASSWORD, or a prompt")
    y.add_argument("--share-link", help="the org's share link")
    y = psub.add_parser("accept", help="accept a User Portal invitation: choose a password")
    y.add_argument("invitation", help="the invitation link")
    y.add_argument("--password", help="or MFD_USER_PASSWORD, or a prompt")
    psub.add_parser("setup-devices", help="Set up my devices: a personal installer link")
    psub.add_parser("linking-code", help="a one-time linking code for the mobile app")
    y = psub.add_parser("confirm", help="Authenticate-on-Print: link the client that printed")
    y.add_argument("sign_in_url")
    psub.add_parser("devices", help="your linked clients")
    psub.add_parser("signout")
    cl.set_defaults(func=cmd_client)

    from readers.cli import register as register_reader

    register_reader(sub)  # type: ignore[arg-type]  # _Parser is an ArgumentParser
    return p


def _legacy_client(argv: list[str]) -> list[str]:
    """``mfd client --store URL --user EMAIL FILE`` wrote straight into the store, with the
    owner taken from the command line. A client now owns only what its token says, so that
    form became ``mfd admin --store URL job-add --user EMAIL FILE``; translate it."""
    i = next((k for k, a in enumerate(argv) if not a.startswith("-")), None)
    if i is None or argv[i] != "client":
        return argv
    rest, store, k = [], None, i + 1
    while k < len(argv):
        a = argv[k]
        if a == "--store" and k + 1 < len(argv):
            store, k = argv[k + 1], k + 2
            continue
        if a.startswith("--store="):
            store = a.split("=", 1)[1]
        else:
            rest.append(a)
        k += 1
    if store is None:
        return argv
    print("mfd client: --store is deprecated (a client talks to the portal now); running "
          "`mfd admin --store URL job-add ...` instead", file=sys.stderr)
    return [*argv[:i], "admin", "--store", store, "job-add", *rest]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_legacy_client(list(sys.argv[1:] if argv is None else argv)))
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result: int = args.func(args)
        return result
    except MfdError as exc:
        if args.debug:
            raise
        print(f"mfd {args.command}: error: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout.close()
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

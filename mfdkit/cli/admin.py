"""``mfd admin``: orgs, users, cards, devices, jobs and audit in a store."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from cloud import admin, directory, throttle
from cloud.storage.port import CloudStore
from mfdkit.cli.common import _user_password
from protocol.errors import MfdError
from protocol.redact import redact

#: The `mfd admin` actions that may create a new store (`mfd cloud` creates one too). Every other
#: action needs a store that is mfdkit's already: a typo in a SQLite path or a database name
#: would otherwise give an empty store, and "no users" with exit status 0.
_CREATES_STORE = ("init", "demo")


def _store(url: str, *, create: bool = False) -> CloudStore:
    from cloud.storage.factory import open_store

    return open_store(url, create=create)


def _check_known(store: CloudStore, args: argparse.Namespace) -> None:
    """Every org an action names must exist, before anything is done (the use-cases check the
    users and devices they are given)."""
    org = getattr(args, "org", None)
    if org:
        admin.require_org(store, org)


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
    if args.admin_cmd == "broker-acl":
        return _broker_setup(args)  # no store: it describes the broker, not the service
    if not args.store:
        raise MfdError("mfd admin needs --store URL (e.g. sqlite:////var/lib/mfdkit/cloud.db)",
                       code="config_invalid")
    store = _store(args.store, create=args.admin_cmd in _CREATES_STORE)
    _check_known(store, args)
    if args.admin_cmd in _LINKING_ADMIN:
        return _admin_linking(store, args)
    if args.admin_cmd == "technician":
        return _admin_technician(store, args)
    if args.admin_cmd == "group":
        return _admin_group(store, args)
    match args.admin_cmd:
        case "init":
            print(f"store ready: {redact(args.store)}")
        case "demo":
            from cloud.demo import seed_demo

            org = seed_demo(store, now=time.time())
            print(f"demo org {org} created")
        case "org-add":
            print(admin.create_org(store, args.name))
        case "user-add":
            print(admin.add_user(store, args.org, args.email, args.name,
                                 language=args.language,
                                 role="admin" if args.admin else "user"))
        case "role-set":
            user = admin.set_role(store, args.email, args.role)
            print(f"{user.email} is now {'an administrator' if user.role == 'admin' else 'a user'}"
                  f" of {user.org_id}")
        case "user-set":
            user = admin.set_user_language(store, args.email, args.language)
            print(f"language of {user.email}: "
                  + (user.language or "none (the copier's own)"))
        case "users":
            for u in admin.users(store, args.org):
                print(f"{u.id}\t{u.email}\t{u.display_name}\t{u.role}")
        case "card-add" | "cards-add":
            directory.add_card(store, args.email, args.number)
            print(f"card added for {args.email}")
        case "code-set":
            directory.set_access_code(store, args.email, args.code)
            print(f"access code set for {args.email}")
        case "offline-key":
            key, kid = admin.offline_key(store)
            print(key)
            print(f"key id {kid}: the [offline] cloud_key of every device.toml", file=sys.stderr)
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
            from cloud.devices import device_firmware

            for d in admin.device_rows(store):
                status = d.status + (" (EMULATED engine: prints nothing)" if d.emulated else "")
                state = (f"config v{d.config_version} (applied v{d.applied}"
                         + (f", refused v{d.refused}: {d.refusal}" if d.refused > d.applied
                            else "") + ")") if d.config_version else "no pushed config"
                # What it runs, as it last reported online: "app 0.9.0, reader:front 1.2.3".
                fw = device_firmware(store, d.device_id)
                firmware = ", ".join(f"{_oneline(k)} {_oneline(v)}"
                                     for k, v in sorted(fw.items())) or "-"
                # The config state stays last: scripts read the last column for it.
                print(f"{d.device_id}\t{d.org_id}\t{status}\t{d.name}\t{firmware}\t{state}")
        case "device-config":
            stored = admin.push_device_config(store, args.device_id, _managed(args.set),
                                              args.unset)
            print(f"config version {stored.version} stored for {args.device_id}; the cloud "
                  "pushes it to the device, which applies or refuses it (see: mfd admin "
                  "devices)")
            if stored.refused_before is not None:
                version, reason = stored.refused_before
                print(f"note: the device refused version {version} ({reason}); this version "
                      "keeps every key you did not change: --unset SECTION.KEY drops one",
                      file=sys.stderr)
        case "org-settings":
            changes: dict[str, Any] = {}
            if args.hold_hours is not None:
                changes["hold_hours"] = args.hold_hours
            if args.card_policy is not None:
                changes["card_policy"] = args.card_policy
            if args.release_changes is not None:
                changes["release_changes"] = args.release_changes == "yes"
            if args.aop_pending is not None:
                changes["aop_pending"] = args.aop_pending
            new = admin.change_org_settings(store, args.org, **changes)
            for name in admin.SETTINGS:
                print(f"{name}\t{getattr(new, name)}")
        case "unlock":
            scope, subject = ("device", args.device) if args.device else ("user", args.user)
            subject = subject if scope == "device" else subject.strip().lower()
            locked = admin.unlock(store, scope, subject)
            print(f"{scope} {subject} unlocked" if locked else
                  f"{scope} {subject} was not locked; its count of wrong guesses is reset")
        case "throttles":
            for t in throttle.active(store):
                until = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t.until))
                print(f"{t.scope}\t{t.subject}\tuntil {until}\t{t.refused} lookup(s) refused")
        case "unthrottle":
            scope, subject = ("device", args.device) if args.device else ("org", args.org)
            t = throttle.lift(store, scope, subject)
            print(f"{scope} {subject}: badge sign-in works again ({t.refused} lookup(s) were "
                  "refused)")
        case "jobs":
            for j in admin.jobs(store):
                print(f"{j.id}\t{j.state}\t{j.owner_id or '-'}\t{j.pages}p\t{j.name}\t"
                      f"{j.client_id or '-'}")
        case "audit":
            for at, actor, action, subject, detail in admin.audit_log(store, args.limit):
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
            org = admin.resolve_org(store, args.org)
            admin.set_aop_pending(store, org, args.policy)
            print(f"Authenticate-on-Print: pending jobs {args.policy.replace('_', ' ')} "
                  f"in {org}")
    return 0


def _admin_technician(store: CloudStore, args: argparse.Namespace) -> int:
    match args.technician_cmd:
        case "add":
            badge = args.badge
            if badge is not None:
                print("warning: --badge puts the badge number on the command line, where ps and "
                      "the shell history show it; use --badge-file FILE", file=sys.stderr)
            elif args.badge_file is not None:
                badge = _read_badge(args.badge_file)
            issued = admin.add_technician(store, admin.resolve_org(store, args.org), args.name,
                                          badge=badge, code=args.code)
            t = issued.technician
            print(f"technician {t.id} ({t.name}) added with a {t.kind}")
            if issued.code is not None:
                # The one place the code is ever shown: the store keeps only its hash.
                print(f"technician code: {issued.code}\n(shown once: the cloud keeps only a "
                      "hash; give it to the technician)")
        case "list":
            for t in admin.technicians(store, admin.resolve_org(store, args.org),
                                       include_revoked=args.all):
                state = f"revoked {_when(t.revoked_at)}" if t.revoked_at else "active"
                print(f"{t.id}\t{t.name}\t{t.kind}\t{state}\tissued {_when(t.created_at)}")
        case "revoke":
            t = admin.revoke_technician(store, args.technician_id)
            print(f"technician {t.id} ({t.name}) revoked: the {t.kind} opens nothing now")
    return 0


def _admin_group(store: CloudStore, args: argparse.Namespace) -> int:
    org = admin.resolve_org(store, args.org)
    match args.group_cmd:
        case "add":
            added = admin.group_add(store, org, args.name, args.emails)
            print(f"group {args.name}: {len(added)} added"
                  + "".join(f"\n  {u.email}" for u in added))
        case "remove":
            removed = admin.group_remove(store, org, args.name, args.emails)
            print(f"group {args.name}: {len(removed)} removed"
                  + "".join(f"\n  {u.email}" for u in removed))
        case "list" if args.name:
            for u in admin.group_members(store, org, args.name):
                print(f"{u.email}\t{u.display_name}")
        case "list":
            for name, count in admin.groups(store, org):
                print(f"{name}\t{count}")
    return 0


def _read_badge(name: str) -> str:
    """The badge number from a file ("-": stdin), its first line without the line break."""
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise MfdError(f"cannot read {name}: {exc.strerror}", code="not_found") from None
    except UnicodeDecodeError:
        raise MfdError(f"{name} is not UTF-8 text", code="invalid_field") from None
    lines = text.splitlines()
    number = lines[0].strip() if lines else ""
    if not number:
        raise MfdError(f"{name} is empty: put the badge number on its first line",
                       code="invalid_field")
    return number


def _managed(items: list[str]) -> dict[str, dict[str, Any]]:
    """``--set SECTION.KEY=VALUE`` options as the managed configuration they set; a value is
    JSON, or a bare word taken as a string."""
    managed: dict[str, dict[str, Any]] = {}
    for item in items:
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
    return managed


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


def _admin_linking(store: CloudStore, args: argparse.Namespace) -> int:
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
            r = linking.import_users(admin.resolve_org(store, args.org), text, name=path.name)
            print(f"imported {r.users} user(s), {r.cards} card(s), {r.codes} access code(s) "
                  f"from {path.name}")
        case "invite":
            invitation = (linking.invite_classic(args.email) if args.classic
                          else linking.invite_portal(args.email))
            # The email is the deliverable: the admin sends it to the invitee (mfdkit has no
            # mail transport). Its links are the invitee's secrets.
            print(invitation.body, end="")
        case "share-link":
            print(linking.share_link(admin.resolve_org(store, args.org), rotate=args.rotate))
        case "bulk-installer":
            issued = linking.bulk_installer(admin.resolve_org(store, args.org),
                                            ttl=args.days * 86_400.0)
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
            linking.add_queue(admin.resolve_org(store, args.org), args.name)
            print(f"queue {args.name!r} deployed to linked clients")
        case "queues":
            for name in linking.queues(admin.resolve_org(store, args.org)):
                print(name)
        case "clients":
            for inst, user in linking.installs(admin.resolve_org(store, args.org),
                                               include_revoked=args.all):
                state = ("revoked" if inst.revoked_at else
                         f"linked {user.email}" if user else "anonymous")
                print(f"{inst.id}\t{inst.kind}\t{inst.machine}\t{inst.os_user or '-'}\t"
                      f"{state}\t{inst.via}\t{_when(inst.created_at)}")
        case "client-revoke":
            linking.revoke_install(args.client_id)
            print(f"client {args.client_id} revoked")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    x.add_argument("--language", default="", metavar="TAG",
                   help="the user's language on the panel while signed in (de, ja, fr-CH); "
                   "default: the copier's own")
    x.add_argument("--admin", action="store_true",
                   help="an administrator of the org (the admin console)")
    x.add_argument("email")
    x.add_argument("name")
    x = asub.add_parser("role-set", help="make a user an administrator of their org (the admin "
                        "console) or a user again")
    x.add_argument("email")
    x.add_argument("role", choices=("admin", "user"))
    x = asub.add_parser("user-set", help="change a user's settings: --language")
    x.add_argument("email")
    x.add_argument("--language", required=True, metavar="TAG",
                   help="the user's language on the panel while signed in (de, ja, fr-CH); "
                   "\"\" for none (the copier's own)")
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
    asub.add_parser("devices", help="list devices with status, config state and firmware versions")
    asub.add_parser("offline-key", help="print the public key devices check offline bundles "
                    "with (their device.toml's [offline] cloud_key); made on first use")
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
                        "card number, access code, language tag (each optional); all rows or none")
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
    _register_technician(asub)
    _register_group(asub)
    a.set_defaults(func=cmd_admin)


def _register_group(asub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = asub.add_parser("group", help="named groups of an org's users (a copier's policy "
                        "offline_users = \"group:NAME\" lists one offline)")
    gsub = g.add_subparsers(dest="group_cmd", metavar="ACTION", required=True)
    x = gsub.add_parser("add", help="add users to a group (made by its first member)")
    x.add_argument("name", help="the group: 1-64 of A-Z a-z 0-9 . _ -")
    x.add_argument("emails", nargs="+", metavar="EMAIL")
    x.add_argument("--org", help="the org (default: the store's only org)")
    x = gsub.add_parser("remove", help="take users out of a group")
    x.add_argument("name")
    x.add_argument("emails", nargs="+", metavar="EMAIL")
    x.add_argument("--org", help="the org (default: the store's only org)")
    x = gsub.add_parser("list", help="the org's groups and their sizes, or one group's members")
    x.add_argument("name", nargs="?")
    x.add_argument("--org", help="the org (default: the store's only org)")


def _register_technician(asub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    t = asub.add_parser("technician", help="technicians' badges and codes: they open a "
                        "copier's diagnostics screen (no one's jobs); every use is audited")
    tsub = t.add_subparsers(dest="technician_cmd", metavar="ACTION", required=True)
    x = tsub.add_parser("add", help="issue a technician a badge or a generated code (the code "
                        "is printed once)")
    x.add_argument("--name", required=True, help="who the technician is (for the audit)")
    how = x.add_mutually_exclusive_group(required=True)
    how.add_argument("--badge", metavar="NUMBER", help="the badge's card number, as the "
                     "copier's reader gives it (visible in ps: prefer --badge-file)")
    how.add_argument("--badge-file", metavar="FILE", help="a file whose first line is the "
                     "badge's card number (- for stdin): kept out of the command line")
    how.add_argument("--code", action="store_true", help="generate a technician code")
    x.add_argument("--org", help="the org (default: the store's only org)")
    x = tsub.add_parser("list", help="the org's technicians")
    x.add_argument("--org", help="the org (default: the store's only org)")
    x.add_argument("--all", action="store_true", help="include revoked ones")
    x = tsub.add_parser("revoke", help="revoke a technician's badge or code")
    x.add_argument("technician_id")


def _oneline(text: str) -> str:
    """A device's own words on one line of a tab-separated row (it may send any Unicode)."""
    return "".join(c if c.isprintable() and c != "\t" else "\ufffd" for c in text)

"""``mfd cloud``: the reference cloud's MQTT workers, and with --http the web app (the JSON API,
the User Portal and the admin console) served by uvicorn."""

from __future__ import annotations

import argparse
import importlib
import os
import secrets
import sys
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mfdkit.cli.common import StopSignals, _secret, host_port
from protocol.errors import ConfigError, MfdError


def cmd_cloud(args: argparse.Namespace) -> int:
    from cloud.service import CloudService
    from cloud.storage.factory import open_store
    from cloud.worker import CloudWorker, default_lanes, start_workers, worker_brokers
    from cloud.worker_process import WorkerProcesses

    if args.first_worker < 0:
        raise ConfigError("--first-worker must be 0 or more", code="config_invalid")
    # Before anything starts: a stop that arrives while we start up must still be clean.
    stop = StopSignals(interrupt=False)
    password = _secret(args.password, "MFD_CLOUD_PASSWORD", "cloud broker password")
    brokers = worker_brokers(args.broker, args.username, password)
    http = host_port(args.http) if args.http else None
    # Before anything starts too: a missing mail sender or an unreadable secret fails here.
    web = web_settings(args) if http is not None else None
    accounts = _broker_accounts(args, brokers)  # before anything starts: a bad admin fails here
    open_store(args.store).close()  # validates the URL and creates the schema once
    pool: WorkerProcesses | None = None
    workers: list[CloudWorker] = []
    if args.workers > 1 or args.first_worker:
        # A process each: threads would share one interpreter lock (cloud/worker_process.py).
        first = args.first_worker
        pool = WorkerProcesses([f"{args.username}-{i}" for i in range(first, first + args.workers)],
                               args.store, args.broker, password, lanes=args.lanes,
                               debug=args.debug)
        pool.start(stop)
        if stop():  # asked to stop while the workers were starting (a broker slow to answer)
            pool.stop()
            return 0
    else:
        workers = start_workers(lambda: CloudService(open_store(args.store)), brokers,
                                args.workers, lanes=(default_lanes(args.store)
                                                     if args.lanes is None else args.lanes))
    portal = None
    try:
        if http is not None:
            _quiet_authlib()
            from cloud.portal import start_portal

            portal = start_portal(args.store, *http, public_url=args.public_url,
                                  accounts=accounts,
                                  device_broker_urls=tuple(args.device_broker_url
                                                           or args.broker),
                                  settings=web)
            print(f"mfd cloud: User Portal and client API on {portal.url}"
                  + (f" (public {portal.public_url})" if args.public_url else ""),
                  file=sys.stderr)
            print(f"mfd cloud: admin console at {portal.public_url}/admin/, API document at "
                  f"{portal.public_url}/api/v1/openapi.json", file=sys.stderr)
        where = ", ".join(f"{b.host}:{b.port}" for b in brokers)
        how = (f"{len(pool.names)} worker processes ({', '.join(pool.names)})"
               if pool is not None else "1 worker")
        print(f"mfd cloud: {how} serving {where}; Ctrl-C stops", file=sys.stderr)
        while not stop():
            time.sleep(0.2)
            # Not once a stop is asked: under a service manager that signals every process
            # of the service, the workers' exit is the stop, not a death to mend.
            if pool is not None and not stop():
                pool.poll()  # a worker that died is started again
    finally:
        if portal is not None:
            portal.close()
        if pool is not None:
            pool.stop()
        for w in workers:
            w.stop()
    return 0


def _quiet_authlib() -> None:
    """Authlib (single sign-on) warns on import about its own httpx shim: nothing an operator
    can act on, printed before the line that says where we serve. Its module puts an "always"
    filter first when imported, so ours goes in after that."""
    try:
        importlib.import_module("authlib.deprecate")
    except ImportError:
        return
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")


def web_settings(args: argparse.Namespace) -> Any:
    """The web app's settings from the options, with secrets from files or the environment
    only (a command line is visible to every user of the machine in the process list)."""
    from cloud.web.settings import WebSettings

    for name in ("smtp_password", "oidc_client_secret", "session_key"):
        if getattr(args, f"argv_{name}", None) is not None:
            option = "--" + name.replace("_", "-")
            raise MfdError(f"{option} is not taken on the command line (every user of this "
                           f"machine can read it): use {option}-file FILE"
                           + {"smtp_password": " or MFD_SMTP_PASSWORD",
                              "oidc_client_secret": " or MFD_OIDC_CLIENT_SECRET"}.get(name, ""),
                           code="config_invalid")
    values: dict[str, Any] = {"store_url": args.store,
                              "public_url": (args.public_url or "").rstrip("/"),
                              "https_only": args.https_only,
                              "smtp": _smtp(args), "oidc": _oidc(args)}
    key = session_key(args.session_key_file)
    if key is not None:
        values["secret_key"] = key
    return WebSettings(**values)


def session_key(path: str | None) -> bytes | None:
    """The cookie-signing key from ``path``: made there (random, owner-only) if the file does
    not exist, refused if others may read it. None without a path: a random key for this
    process (sessions then end when it stops; several processes need one shared file)."""
    if not path:
        return None
    target = Path(path)
    if not target.exists():
        _create_key(target)
    try:
        mode = target.stat().st_mode
        key = target.read_bytes().strip()
    except OSError as exc:
        raise MfdError(f"cannot read the session key file {path}: {exc.strerror}",
                       code="config_invalid") from None
    if mode & 0o077:
        raise MfdError(f"the session key file {path} may be read by others: chmod 600 it",
                       code="config_invalid")
    if len(key) < 32:
        raise MfdError(f"the session key file {path} holds less than 32 characters: make it "
                       "with 'openssl rand -hex 32' or delete it to have one made",
                       code="config_invalid")
    return key


def _create_key(target: Path) -> None:
    """Write a new key under a temporary name, then link it into place: another process
    starting at the same moment either wins (and both read its key) or finds ours whole."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, target)
            print(f"mfd cloud: made a new session key in {target}", file=sys.stderr)
        except FileExistsError:
            pass
    except OSError as exc:
        raise MfdError(f"cannot make the session key file {target}: {exc.strerror}",
                       code="config_invalid") from None
    finally:
        tmp.unlink(missing_ok=True)


def _secret_file(path: str | None, env: str, what: str) -> str:
    """A secret from a file (its first line) or the environment; "" when neither is given."""
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError, UnicodeDecodeError):
            raise MfdError(f"cannot read the {what} from {path}", code="config_invalid") from None
    return os.environ.get(env, "")


def _smtp(args: argparse.Namespace) -> Any:
    """Mail: the options, else the MFD_SMTP_* environment (docs/sso-and-mail.md); off when
    neither names a server."""
    from cloud.web.settings import SmtpSettings

    env = os.environ
    where = args.smtp or env.get("MFD_SMTP_HOST", "").strip()
    if not where:
        return None
    if args.smtp:
        host, port = host_port(args.smtp, option="--smtp")
    else:
        host, raw_port = where, env.get("MFD_SMTP_PORT", "587").strip()
        if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
            raise MfdError(f"MFD_SMTP_PORT must be a port number, not {raw_port!r}",
                           code="config_invalid")
        port = int(raw_port)
    sender = (args.mail_from or env.get("MFD_SMTP_SENDER", "")).strip()
    if "@" not in sender:
        raise MfdError("mail needs the address it comes from: --mail-from "
                       "'Print service <print@example.org>'", code="config_invalid")
    starttls = (args.smtp_starttls if args.smtp_starttls is not None
                else env.get("MFD_SMTP_STARTTLS", "1").strip() != "0")
    user = args.smtp_user or env.get("MFD_SMTP_USERNAME", "")
    password = _secret_file(args.smtp_password_file, "MFD_SMTP_PASSWORD", "SMTP password")
    if user and not password:
        raise MfdError("--smtp-user needs a password: --smtp-password-file FILE or "
                       "MFD_SMTP_PASSWORD", code="config_invalid")
    return SmtpSettings(host=host, port=port, sender=sender, starttls=starttls, username=user,
                        password=password)


def _oidc(args: argparse.Namespace) -> Any:
    """Single sign-on: the options, else the MFD_OIDC_* environment; off without an issuer."""
    from cloud.web.settings import OidcSettings

    env = os.environ
    issuer = (args.oidc_issuer or env.get("MFD_OIDC_ISSUER", "")).strip().rstrip("/")
    if not issuer:
        return None
    host = urlsplit(issuer).hostname or ""
    loopback = host in ("localhost", "127.0.0.1", "::1")
    # Plain HTTP would let anyone on the path swap the provider's keys and sign in as anyone:
    # only a provider on this machine (a test or a local proxy) may be reached without TLS.
    if not (issuer.startswith("https://") or (issuer.startswith("http://") and loopback)):
        raise MfdError(f"--oidc-issuer must be the provider's https:// URL (http:// only on "
                       f"this machine), not {issuer!r}", code="config_invalid")
    client_id = (args.oidc_client_id or env.get("MFD_OIDC_CLIENT_ID", "")).strip()
    secret = _secret_file(args.oidc_client_secret_file, "MFD_OIDC_CLIENT_SECRET",
                          "OIDC client secret")
    if not client_id or not secret:
        raise MfdError("single sign-on needs --oidc-client-id and the client secret "
                       "(--oidc-client-secret-file FILE or MFD_OIDC_CLIENT_SECRET)",
                       code="config_invalid")
    label = args.oidc_label or env.get("MFD_OIDC_LABEL", "") or "single sign-on"
    org = (args.oidc_org or env.get("MFD_OIDC_ORG", "")).strip()
    domains = tuple(d.strip().lower().lstrip("@") for d in
                    (args.oidc_email_domains or env.get("MFD_OIDC_EMAIL_DOMAINS", "")).split(",")
                    if d.strip())
    return OidcSettings(issuer=issuer, client_id=client_id, client_secret=secret, label=label,
                        org=org, domains=domains)


def _broker_accounts(args: argparse.Namespace, brokers: Any) -> Any:
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
    from cloud.broker_accounts import every_broker

    password = os.environ.get("MFD_BROKER_ADMIN_PASSWORD", "")
    if not password:
        raise MfdError("no broker admin password: set MFD_BROKER_ADMIN_PASSWORD",
                       code="config_invalid")
    accounts = every_broker(brokers, args.broker_admin, password)
    accounts.check()
    print(f"mfd cloud: device registration writes broker accounts as {args.broker_admin}",
          file=sys.stderr)
    return accounts


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = sub.add_parser("cloud", help="run the reference cloud's MQTT workers")
    c.add_argument("--broker", required=True, action="append",
                   help="mqtt://host:port; again for each broker of a site with several "
                   "(devices fail over between them): every worker serves every broker")
    c.add_argument("--store", required=True, help="sqlite:///relative.db or sqlite:////absolute/path.db")
    c.add_argument("--workers", type=int, default=1,
                   help="worker processes, each serving every broker (default 1: in this "
                   "process); usernames USERNAME-0 ... USERNAME-(N-1) when N > 1; one that dies "
                   "is started again")
    c.add_argument("--first-worker", type=int, default=0, metavar="K",
                   help="number this host's workers from K: USERNAME-K ... USERNAME-(K+N-1), so "
                   "that each host of a site has its own broker accounts (a broker lets one "
                   "connection per account)")
    c.add_argument("--lanes", type=int,
                   help="request threads per worker, each with its own store connection, a "
                   "copier's requests always on the same one; 0: on the MQTT thread (default: "
                   "4 on PostgreSQL, 0 on SQLite; docs/fleet.md)")
    c.add_argument("--username", default="cloud", help="broker username (-N appended per worker)")
    c.add_argument("--password", help="broker password (or set MFD_CLOUD_PASSWORD)")
    c.add_argument("--http", metavar="HOST:PORT",
                   help="also serve the web app here (uvicorn): the JSON API, the User Portal "
                   "and the admin console, e.g. 127.0.0.1:8631 behind a TLS proxy; off unless "
                   "given (docs/deployment.md)")
    c.add_argument("--public-url", metavar="URL",
                   help="the portal's address as users reach it (behind a TLS proxy), used in "
                   "links; default http://HOST:PORT")
    w = c.add_argument_group("web (with --http; secrets only from files or the environment)")
    w.add_argument("--session-key-file", metavar="FILE",
                   help="the key that signs session cookies: made (random, owner-only) if FILE "
                   "does not exist, refused if others may read it. Give every process behind "
                   "one address the same file. Default: a random key per process (sessions "
                   "end when it restarts)")
    w.add_argument("--https-only", action=argparse.BooleanOptionalAction, default=None,
                   help="session cookies only over HTTPS (Secure), and HSTS: on in production, "
                   "behind the TLS proxy. Default: on when --public-url is https://")
    w.add_argument("--smtp", metavar="HOST:PORT",
                   help="the mail server for invitations, share links and linking codes "
                   "(default MFD_SMTP_HOST/MFD_SMTP_PORT; mail is off without one)")
    w.add_argument("--mail-from", metavar="ADDRESS",
                   help="the From address, e.g. 'Print service <print@example.org>' "
                   "(default MFD_SMTP_SENDER)")
    w.add_argument("--smtp-starttls", action=argparse.BooleanOptionalAction, default=None,
                   help="upgrade to TLS before logging in (the default; --no-smtp-starttls "
                   "only for a relay on a trusted network)")
    w.add_argument("--smtp-user", metavar="USER",
                   help="log in to the mail server as USER (default MFD_SMTP_USERNAME)")
    w.add_argument("--smtp-password-file", metavar="FILE",
                   help="the SMTP password's file (or set MFD_SMTP_PASSWORD)")
    w.add_argument("--oidc-issuer", metavar="URL",
                   help="single sign-on: the OpenID provider's issuer URL (default "
                   "MFD_OIDC_ISSUER; off without one)")
    w.add_argument("--oidc-client-id", metavar="ID",
                   help="the portal's client id at the provider (default MFD_OIDC_CLIENT_ID)")
    w.add_argument("--oidc-client-secret-file", metavar="FILE",
                   help="the client secret's file (or set MFD_OIDC_CLIENT_SECRET)")
    # Exact names beat argparse's abbreviations: a secret typed here is refused by name, never
    # taken for the file option's path (and never echoed).
    for name in ("--smtp-password", "--oidc-client-secret", "--session-key"):
        w.add_argument(name, dest=f"argv_{name[2:].replace('-', '_')}", help=argparse.SUPPRESS)
    w.add_argument("--oidc-org", metavar="ORG",
                   help="the org whose people the provider signs in; others are refused. "
                   "Required when the store holds several orgs (default MFD_OIDC_ORG)")
    w.add_argument("--oidc-email-domains", metavar="DOMAINS",
                   help="only emails of these domains (comma-separated, e.g. example.org) sign "
                   "in with single sign-on (default MFD_OIDC_EMAIL_DOMAINS; any)")
    w.add_argument("--oidc-label", metavar="TEXT",
                   help="what the sign-in button names, e.g. Contoso (default MFD_OIDC_LABEL)")
    c.add_argument("--broker-admin", metavar="USER",
                   help="the broker's account-writer account (role mfd-broker-admin; password "
                   "in MFD_BROKER_ADMIN_PASSWORD): enables device registration (mfd device "
                   "register), which creates each new device's broker account and role through "
                   "Mosquitto's dynamic-security plugin")
    # Gone (a password file cannot confine subscriptions); kept only to say so when given.
    c.add_argument("--broker-passwd", help=argparse.SUPPRESS)
    c.add_argument("--broker-pid", help=argparse.SUPPRESS)
    c.add_argument("--device-broker-url", metavar="URL", action="append",
                   help="a broker address registered devices use; repeat it for several "
                   "brokers (each device gets them home broker first, then where to fail "
                   "over; default: the --broker addresses)")
    c.set_defaults(func=cmd_cloud)

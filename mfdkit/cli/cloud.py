"""``mfd cloud``: the reference cloud's MQTT workers, and the portal with --http."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from mfdkit.cli.common import StopSignals, _secret
from protocol.errors import MfdError


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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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

"""``mfd``: one command, a subcommand per role.

Every failure a user can cause ends in one line on stderr that says what to do, and a non-zero
exit status; tracebacks are for bugs only (``--debug`` shows them for everything).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from protocol.errors import MfdError

log = logging.getLogger("mfd")

# pygame prints a banner on import unless told not to; our output is a transcript.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

EXIT_USAGE = 2
EXIT_FAILED = 1


def _store(url: str) -> Any:
    from cloud.store import open_store

    return open_store(url)


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


def cmd_sim(args: argparse.Namespace) -> int:
    stop = StopSignals()
    if args.headless:
        from simulator.scenario import run_demo

        return run_demo(sys.stdout, Path(args.screenshots) if args.screenshots else None,
                        page_time=args.page_time)
    from cloud.demo import DEMO_USERS, UNKNOWN_BADGE_TAG
    from device_app.window import run_window
    from simulator.world import SimWorld

    with SimWorld(page_time=args.page_time) as world:
        assert world.app and world.badge
        badge = world.badge
        print("mfd sim: panel window open. Keys: 1-3 tap the demo users' badges "
              f"({', '.join(u.name for u in DEMO_USERS)}), 4 an unknown badge, Esc quits.")

        def on_key(key: int) -> None:
            import pygame

            tags = [u.badge_tag for u in DEMO_USERS] + [UNKNOWN_BADGE_TAG]
            index = key - pygame.K_1
            if 0 <= index < len(tags):
                badge.present(tags[index])

        run_window(world.app, title="mfdkit simulator", on_key=on_key, should_stop=stop)
    return 0


# ---------------------------------------------------------------- device


def cmd_device(args: argparse.Namespace) -> int:
    from device_app.app import DeviceApp
    from device_app.mqtt_link import MqttCloudLink
    from firmware_stubs.mfd_controller import MfdControllerStub
    from protocol.address import BrokerAddress
    from readers.spec import open_reader

    password = _secret(args.password, "MFD_DEVICE_PASSWORD", "device broker password")
    broker = BrokerAddress.parse(args.broker, args.device_id, password)
    readers = tuple(open_reader(s) for s in args.reader)  # the spec's id=, else the spec
    link = MqttCloudLink(broker, args.device_id).start()
    if not link.connected:
        print(f"mfd device: not connected to {broker.host}:{broker.port} yet; retrying in the "
              "background", file=sys.stderr)
    # The IPP engine adapter comes with the device-app work; until then the emulated engine.
    engine = MfdControllerStub()
    app = DeviceApp(link, engine, readers=readers, device_name=args.name or args.device_id,
                    idle_timeout=args.idle_timeout).start()
    stop = StopSignals(interrupt=not args.headless)
    try:
        if args.headless:
            while not stop():
                app.step(0.1)
        else:
            from device_app.window import run_window

            run_window(app, title=args.device_id, fullscreen=args.fullscreen, should_stop=stop)
    finally:
        app.stop()
        link.close()
        engine.close()
    return 0


# ---------------------------------------------------------------- cloud


def cmd_cloud(args: argparse.Namespace) -> int:
    from cloud.service import CloudService
    from cloud.store import open_store
    from cloud.worker import CloudWorker
    from protocol.address import BrokerAddress

    password = _secret(args.password, "MFD_CLOUD_PASSWORD", "cloud broker password")
    base = BrokerAddress.parse(args.broker, args.username, password)
    open_store(args.store).close()  # validates the URL and creates the schema once
    workers = []
    for i in range(args.workers):
        user = base.username if args.workers == 1 else f"{base.username}-{i}"
        worker = CloudWorker(lambda: CloudService(open_store(args.store)),
                             base.with_user(user, password), name=user)
        workers.append(worker.start())
    print(f"mfd cloud: {len(workers)} worker(s) serving {base.host}:{base.port}; Ctrl-C stops",
          file=sys.stderr)
    stop = StopSignals(interrupt=False)
    try:
        while not stop():
            time.sleep(0.2)
    finally:
        for w in workers:
            w.stop()
    return 0


# ---------------------------------------------------------------- admin


def cmd_admin(args: argparse.Namespace) -> int:
    from cloud import directory
    from cloud.demo import seed_demo

    store = _store(args.store)
    match args.admin_cmd:
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
        case "card-add":
            directory.add_card(store, args.email, args.number)
            print(f"card added for {args.email}")
        case "code-set":
            directory.set_access_code(store, args.email, args.code)
            print(f"access code set for {args.email}")
        case "device-add":
            from protocol.topics import check_device_id

            check_device_id(args.device_id)
            store.add_device(args.device_id, args.org, args.name or args.device_id)
            print(f"device {args.device_id} registered")
        case "jobs":
            for j in store.all_jobs():
                print(f"{j.id}\t{j.state}\t{j.owner_id}\t{j.pages}p\t{j.name}")
        case "broker-acl":
            from protocol.topics import broker_acl

            users = tuple(args.cloud_user if args.cloud_workers == 1 else
                          f"{args.cloud_user}-{i}" for i in range(args.cloud_workers))
            print(broker_acl(users), end="")
        case "audit":
            for at, actor, action, subject, detail in store.audit_log(args.limit):
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
                print(f"{stamp}\t{actor}\t{action}\t{subject}\t{detail}")
    return 0


# ---------------------------------------------------------------- client


def cmd_client(args: argparse.Namespace) -> int:
    from cloud import directory

    store = _store(args.store)
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MfdError(f"cannot read {path}: {exc.strerror}", code="not_found") from None
    job_id = directory.submit_job(store, args.user, args.name or path.name, data,
                                  pages=args.pages, color=args.color, duplex=args.duplex,
                                  copies=args.copies, source=args.source)
    print(f"job {job_id} held for {args.user}")
    return 0


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mfd", description="mfdkit: secure print release at the "
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

    d = sub.add_parser("device", help="run the panel app against a broker with real readers")
    d.add_argument("--broker", required=True, help="mqtt://host:port")
    d.add_argument("--device-id", required=True, help="this device's id = its broker username")
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
    c.set_defaults(func=cmd_cloud)

    a = sub.add_parser("admin", help="manage orgs, users, cards, devices; read jobs and audit")
    a.add_argument("--store", required=True, help="sqlite:///relative.db or sqlite:////absolute/path.db")
    asub = a.add_subparsers(dest="admin_cmd", metavar="ACTION", required=True)
    asub.add_parser("demo", help="create the demo org (users, badges, held jobs)")
    x = asub.add_parser("org-add", help="create an org; prints its id")
    x.add_argument("name")
    x = asub.add_parser("user-add", help="add a user; prints its id")
    x.add_argument("--org", required=True)
    x.add_argument("email")
    x.add_argument("name")
    x = asub.add_parser("users", help="list an org's users")
    x.add_argument("--org", required=True)
    x = asub.add_parser("card-add", help="link a card number to a user")
    x.add_argument("email")
    x.add_argument("number", help="canonical card number")
    x = asub.add_parser("code-set", help="set a user's access code (6-10 letters or digits)")
    x.add_argument("email")
    x.add_argument("code")
    x = asub.add_parser("device-add", help="register a device with an org")
    x.add_argument("--org", required=True)
    x.add_argument("device_id")
    x.add_argument("--name")
    asub.add_parser("jobs", help="list every job and its state")
    x = asub.add_parser("broker-acl", help="print the Mosquitto ACL for the cloud workers that "
                        "`mfd cloud --workers N --username NAME` connects as")
    x.add_argument("--cloud-workers", type=int, default=1)
    x.add_argument("--cloud-user", default="cloud")
    x = asub.add_parser("audit", help="the newest audit entries")
    x.add_argument("--limit", type=int, default=50)
    a.set_defaults(func=cmd_admin)

    cl = sub.add_parser("client", help="act as a user's print client: submit a job to hold")
    cl.add_argument("--store", required=True, help="sqlite:///relative.db or sqlite:////absolute/path.db")
    cl.add_argument("--user", required=True, help="the owner's email")
    cl.add_argument("file", help="the document to print")
    cl.add_argument("--name", help="job name (default: the file name)")
    cl.add_argument("--pages", type=int, default=1)
    cl.add_argument("--color", action="store_true")
    cl.add_argument("--duplex", action="store_true")
    cl.add_argument("--copies", type=int, default=1)
    cl.add_argument("--source", default="mfd client")
    cl.set_defaults(func=cmd_client)

    from readers.cli import register as register_reader

    register_reader(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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

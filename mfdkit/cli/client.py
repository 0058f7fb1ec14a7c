"""``mfd client``: a user's print client over the portal's HTTP API."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from mfdkit.cli.common import _user_password
from protocol.errors import MfdError


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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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

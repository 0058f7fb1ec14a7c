"""``mfd``: one command, a subcommand per role, one module per role (sim, device, cloud,
admin, client, reader). They parse and print; what an action does lives in the packages below
(the admin use-cases in cloud/admin.py), so every front end runs the same code.

Every failure a user can cause ends in one line on stderr that says what to do, and a non-zero
exit status; tracebacks are for bugs only (``--debug`` shows them for everything).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

from mfdkit.cli import (
    admin,
    client,
    cloud,
    device,
    doctor,
    emulate,
    flash,
    image,
    ledger,
    provision,
    reader,
    sim,
)
from mfdkit.cli.common import EXIT_FAILED, _Parser
from protocol.errors import MfdError

log = logging.getLogger("mfd")

# pygame prints a banner on import unless told not to; our output is a transcript.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mfd", description="mfdkit: secure print release at the "
                                "copier. One subcommand per role.")
    p.add_argument("--debug", action="store_true", help="verbose logs and full tracebacks")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for role in (sim, device, cloud, admin, client, reader, image, flash, emulate, provision,
                 doctor, ledger):
        role.register(sub)
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

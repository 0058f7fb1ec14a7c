"""What the reader tests share: the reader threads still alive, and `mfd reader` run in-process."""

from __future__ import annotations

import argparse
import threading

from readers import cli


def reader_threads() -> list[threading.Thread]:
    """The adapters' threads still alive (readers.adapters.lifecycle names them reader-ID)."""
    return [t for t in threading.enumerate() if t.name.startswith("reader-")]


def run_cli(*argv: str) -> int:
    """``mfd reader ...`` as the CLI runs it, in this process; its exit status."""
    parser = argparse.ArgumentParser(prog="mfd")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result = args.func(args)
    assert isinstance(result, int)
    return result

"""``mfd reader``: the readers package brings its own subcommands; this is the glue."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from readers.cli import register as register_reader

    register_reader(sub)

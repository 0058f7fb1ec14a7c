"""``mfd doctor``: technicians' commands (issue 11); filled in by the provisioning work."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """No subcommand yet: the module exists so that the provisioning work adds its commands
    here without touching the CLI's entry point."""

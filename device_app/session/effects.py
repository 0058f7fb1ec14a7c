"""What the session machine asks the app to do: its outputs, run by device_app/app.py."""

from __future__ import annotations

from dataclasses import dataclass

from protocol import messages as m


@dataclass(frozen=True, slots=True)
class Send:
    tag: str
    request: m.Request


@dataclass(frozen=True, slots=True)
class PrintJob:
    release_id: str
    job: m.ReleasedJob


@dataclass(frozen=True, slots=True)
class Detach:
    """The user walked away from a release ("Done, log me out"): its jobs print on, and their
    outcomes go to the cloud from the printer's journal, with nobody signed in."""

    release_id: str


Effect = Send | PrintJob | Detach


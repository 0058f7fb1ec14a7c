"""The world ``mfd sim`` opens for a person: one copier with a serial badge reader (so it can be
unplugged), the demo org's people and a few held jobs each. As a Scenario without steps, so
``mfd sim --record`` can write it at the head of the file it records."""

from __future__ import annotations

from protocol.managed import Policy
from simulator.scenarios.model import DeviceSpec, JobSpec, ReaderKind, ReaderSpec, Scenario
from simulator.scenarios.parse import demo_users

_JOBS = (
    JobSpec("alice", "Quarterly report.pdf", 12, "WS-ALICE", color=True, duplex=True),
    JobSpec("alice", "Boarding pass", 1, "WS-ALICE"),
    JobSpec("alice", "Team offsite agenda.docx", 3, "WS-ALICE", duplex=True, copies=2),
    JobSpec("bob", "Lecture notes week 7.pdf", 24, "WS-BOB", duplex=True),
    JobSpec("bob", "Concert tickets", 2, "WS-BOB", color=True),
    JobSpec("chen", "Contract draft v3.docx", 18, "WS-CHEN", duplex=True, copies=2),
    JobSpec("chen", "Poster.png", 1, "WS-CHEN", color=True),
)


#: Seconds without the broker before the simulator's copier goes offline (F10).
OFFLINE_GRACE_S = 30.0


def interactive_scenario(page_time: float = 0.2, name: str = "recorded session") -> Scenario:
    # Offline mode on (it is off by default on a real copier): F10 takes the broker away, and
    # after the grace time the panel signs people in from its own list (docs/offline.md).
    device = DeviceSpec("copier-1", readers=(ReaderSpec("front", ReaderKind.EM4100),),
                        page_time=page_time,
                        policy=Policy(offline=True, offline_grace=OFFLINE_GRACE_S,
                                      offline_users="everyone"))
    return Scenario(name=name, devices=(device,), users=demo_users(), jobs=_JOBS, steps=())

"""The session at the copier: events in (``events``), effects out (``effects``), the
table-driven machine between them (``machine``, its handlers by phase in ``ways_in``, ``jobs``,
``releasing`` and ``notices`` on ``base``), and what the panel says (``presenter``).
docs/session-states.md is its diagram, drawn from the table (``diagram``)."""

from device_app.session.base import Next
from device_app.session.effects import Detach, Effect, PrintJob, Send
from device_app.session.events import (
    Answered,
    CardPresented,
    CodeEntered,
    EngineChanged,
    Event,
    Failed,
    JobDone,
    JobsChanged,
    KeyPressed,
    LinkChanged,
    OrderArrived,
    PagesPrinted,
    Tapped,
    Tick,
)
from device_app.session.machine import TRANSITIONS, Rule, SessionMachine, TransitionError
from device_app.session.presenter import NOTICES
from device_app.session.state import Kind, Node, Policy, State

__all__ = [
    "NOTICES", "TRANSITIONS", "Answered", "CardPresented", "CodeEntered", "Detach", "Effect",
    "EngineChanged", "Event", "Failed", "JobDone", "JobsChanged", "KeyPressed", "Kind",
    "LinkChanged", "Next", "Node", "OrderArrived", "PagesPrinted", "Policy", "PrintJob", "Rule",
    "Send", "SessionMachine", "State", "Tapped", "Tick", "TransitionError",
]

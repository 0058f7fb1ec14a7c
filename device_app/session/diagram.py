"""The session machine's diagram, drawn from its table: ``python -m device_app.session.diagram >
docs/session-states.md``. tests/test_session_table.py fails when the committed file differs, so
the picture in the docs is the machine that runs.

An arrow is a move a table entry allows (what its handler may lead to), labelled with the events
that allow it; an answer names what the request was for. Staying put is left out: every entry
may, and it would only draw a loop on every node.
"""

from __future__ import annotations

from collections import defaultdict

from device_app.session.machine import TRANSITIONS
from device_app.session.state import Kind, Node

_HEADER = """\
# The session machine's states

Generated from `TRANSITIONS` in `device_app/session/machine.py` by
`python -m device_app.session.diagram > docs/session-states.md`; do not edit by hand (a test
fails when this file and the table differ). Each arrow is a move the table allows, labelled with
the events that may make it; `Answered`/`Failed` name what the request was for. An event a state
has no entry for is ignored. A notice is three states, one per place it leads when it ends
(a tap on OK or its time up); on the panel all three are the one notice screen.
"""


def _event(event: type, kind: Kind | None) -> str:
    return event.__name__ + (f" {kind.value}" if kind else "")


def mermaid() -> str:
    """The table as a Mermaid ``stateDiagram-v2``, one line per arrow, in a stable order."""
    order = list(Node)
    arrows: dict[tuple[Node, Node], list[str]] = defaultdict(list)
    for (node, event, kind), rule in TRANSITIONS.items():
        for to in rule.to:
            if to is not node:
                label = _event(event, kind)
                if label not in arrows[node, to]:
                    arrows[node, to].append(label)
    lines = ["stateDiagram-v2"]
    # A notice's node is named for the screen and where it leads, as the panel has one notice.
    lines += [f'    state "notice, then {node.value.removeprefix("notice_then_")}" as {node.value}'
              for node in Node if node.value.startswith("notice_then_")]
    lines.append(f"    [*] --> {Node.IDLE.value}")
    for (node, to), labels in sorted(arrows.items(),
                                     key=lambda a: (order.index(a[0][0]), order.index(a[0][1]))):
        lines.append(f"    {node.value} --> {to.value} : {', '.join(sorted(labels))}")
    return "\n".join(lines) + "\n"


def markdown() -> str:
    """docs/session-states.md as the table makes it."""
    return f"{_HEADER}\n```mermaid\n{mermaid()}```\n"


if __name__ == "__main__":
    print(markdown(), end="")

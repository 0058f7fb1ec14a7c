"""The diagnostics screen (device_app/panel/screens/diagnostics.py) on the panels the device ships
on: every row drawn, nothing off the glass or cut to nothing, Done a 9 mm target that means
DISMISS, and no user's identity in any drawn text even right after a user's session.

The renderer (device_app/panel/renderer.py, another engineer's) does not register the screen
yet: the tests register it on their renderer instance, as the one line to add there would."""

from __future__ import annotations

import itertools
from pathlib import Path

import pygame
import pytest
from panel_helpers import headless_pygame  # noqa: F401 (autouse: pygame headless)
from test_panel_layout import NOW, PANELS, problems

from device_app.panel import PanelRenderer
from device_app.panel.screens import diagnostics as screen
from device_app.panel.tree import TargetNode, TextNode
from device_app.session import (
    Answered,
    CardPresented,
    CodeEntered,
    Effect,
    Send,
    SessionMachine,
    State,
    Tapped,
)
from device_app.session import diagnostics as d
from device_app.view import Action, Screen
from protocol import messages as m
from protocol.engine import EngineState

SIZES = [((800, 480), 133.0), ((1280, 800), 149.0), ((1920, 1080), 141.0), ((480, 800), 133.0)]
assert all(p in PANELS for p in SIZES)

SNAP = d.Snapshot(badge=d.LastBadge(b"\x020A0012D68749\x03", "front", "1234567",
                                    "substr:2:8|hex2dec"),
                  engine=EngineState.READY, printed=12, failed=1, link_up=True,
                  round_trips=(0.0042, 0.0031, 0.0120), config_version=3)


def renderer(size: tuple[int, int], dpi: float | None) -> PanelRenderer:
    r = PanelRenderer(size, dpi=dpi)
    r._painters[Screen.DIAGNOSTICS] = screen.draw  # the line renderer.py is to get
    return r


def sends(effects: list[Effect]) -> list[Send]:
    return [e for e in effects if isinstance(e, Send)]


def after_alice() -> SessionMachine:
    """A machine whose last session was Alice's, then a technician's code."""
    ids = itertools.count(1)
    sm = SessionMachine(new_id=lambda: f"id-{next(ids)}", strict=True, snapshot=lambda: SNAP)
    [ident] = sends(sm.handle(CardPresented("1234567")))
    [listing] = sends(sm.handle(Answered(ident.tag, m.IdentifyResult("tok", "u_alice",
                                                                     "Alice Martin", 300))))
    job = m.JobSummary("j1", "Alice's payslip.pdf", 1, False, False, 1, 100, 1.0)
    sm.handle(Answered(listing.tag, m.JobList((job,), 1)))
    assert sm.state is State.JOBS and sm.view().user_name == "Alice Martin"
    sm.handle(Tapped(Action.LOGOUT))
    [ident] = sends(sm.handle(CodeEntered("8264019375")))
    sm.handle(Answered(ident.tag, m.IdentifyResult("-", "tech_1", "Technician", 0,
                                                   role=m.ROLE_TECHNICIAN)))
    assert sm.state is State.DIAGNOSTICS
    return sm


@pytest.mark.parametrize(("size", "dpi"), SIZES, ids=[f"{w}x{h}" for (w, h), _ in SIZES])
def test_every_row_is_drawn_and_fits(size: tuple[int, int], dpi: float,
                                     tmp_path: Path) -> None:
    view = after_alice().view()
    r = renderer(size, dpi)
    r.draw(view, NOW)
    assert problems(r, view, dpi) == []
    texts = [n for n in r.tree if isinstance(n, TextNode)]
    sources = {t.source for t in texts}
    for row in view.rows:
        assert row.label in sources, (row, size)
        if row.value:
            assert row.value in sources, (row, size)
    # Texts do not sit on each other: every row has its own line.
    for a, b in itertools.combinations(texts, 2):
        ax, ay, aw, ah = a.rect
        bx, by, bw, bh = b.rect
        assert not (ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah), (a, b)
    # The digits a technician compares with the card are whole on the glass, not cut.
    shown = {t.text for t in texts}
    assert "1234567" in shown and "0A0012D68749" in shown
    # Done: a target that means "leave".
    [done] = [g for g in r.tree if isinstance(g, TargetNode)]
    assert done.action == Action.DISMISS and done.label == "Done"
    x, y, w, h = done.rect
    assert r.hit((x + w // 2, y + h // 2)) == (Action.DISMISS, None)
    pygame.image.save(r.surface, str(tmp_path / f"diagnostics-{size[0]}x{size[1]}.png"))


def test_no_users_identity_is_drawn() -> None:
    sm = after_alice()
    view = sm.view()
    assert view.user_name == ""
    r = renderer((800, 480), 133.0)
    r.draw(view, NOW)
    drawn = " ".join(n.text for n in r.tree if isinstance(n, TextNode))
    for who in ("Alice", "Martin", "u_alice", "payslip", "Technician", "tech_1"):
        assert who not in drawn, who
    # The engine's and the link's rows are there, filled from the snapshot.
    assert "12" in drawn and "connected" in drawn and "ready" in drawn


def test_a_countdown_shows_along_the_bottom() -> None:
    sm = after_alice()
    sm.logout_in = 7
    view = sm.view()
    r = renderer((480, 800), 133.0)
    r.draw(view, NOW)
    [line] = [n for n in r.tree if isinstance(n, TextNode) and n.source == view.countdown]
    assert "7 s" in line.text and line.rect[1] > 700
    assert problems(r, view, 133.0) == []

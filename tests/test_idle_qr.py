"""The idle screen's QR code: the portal's page for this copier, drawn as rectangles on the
panel, read back from the pixels and compared with segno's symbol (device_app/panel/qr.py);
none without a portal address (protocol/managed.py, ``policy.portal_url``)."""

from __future__ import annotations

import pygame
import pytest
import segno
from panel_helpers import headless_pygame  # noqa: F401 (autouse: pygame headless)

from device_app.app import DeviceApp
from device_app.panel import PanelRenderer
from device_app.panel.qr import QUIET_ZONE
from device_app.panel.theme import CARD, INK
from device_app.panel.tree import TextNode
from device_app.session import Policy, State
from device_app.session.machine import SessionMachine
from device_app.session.presenter import present
from device_app.view import PanelView, Screen
from protocol.errors import ConfigError
from protocol.managed import parse_policy

URL = "https://print.example.org/copier/copier-1"
CAPTIONS = {"en": "Scan to release from your phone",
            "de": "Scannen, um vom Handy aus zu drucken"}


def _read_symbol(surface: pygame.Surface, caption: TextNode) -> list[list[bool]]:
    """The QR symbol as drawn, found from the caption under it: up from the caption to the
    white square, its sides along the quiet zone, then each module's centre pixel."""
    x, y = caption.rect[0] + caption.rect[2] // 2, caption.rect[1] - 1
    while tuple(surface.get_at((x, y)))[:3] != CARD:
        y -= 1
    bottom = y
    left = x
    while tuple(surface.get_at((left - 1, bottom)))[:3] == CARD:
        left -= 1
    right = x
    while tuple(surface.get_at((right + 1, bottom)))[:3] == CARD:
        right += 1
    side = right - left + 1
    top = bottom - side + 1
    n = len(segno.make(URL, error="m", micro=False, boost_error=False).matrix)
    module = side // (n + 2 * QUIET_ZONE)
    assert module * (n + 2 * QUIET_ZONE) == side, "modules of whole pixels"
    origin_x, origin_y = left + QUIET_ZONE * module, top + QUIET_ZONE * module
    out = []
    for row in range(n):
        line = []
        for col in range(n):
            colour = tuple(surface.get_at((origin_x + col * module + module // 2,
                                           origin_y + row * module + module // 2)))[:3]
            assert colour in (INK, CARD)
            line.append(colour == INK)
        out.append(line)
    return out


@pytest.mark.parametrize(("size", "language"), [((800, 480), "en"), ((480, 800), "en"),
                                                ((1280, 800), "de")])
def test_the_drawn_code_reads_back_as_the_portal_page(size: tuple[int, int],
                                                      language: str) -> None:
    renderer = PanelRenderer(size)
    renderer.draw(PanelView(screen=Screen.IDLE, device_name="Copier 1", title="Tap your badge",
                            language=language, qr_url=URL), now=0)
    captions = [n for n in renderer.tree if isinstance(n, TextNode) and n.role == "caption"]
    assert captions and captions[0].source == CAPTIONS[language]
    symbol = _read_symbol(renderer.surface, captions[0])
    expected = [[bool(v) for v in row]
                for row in segno.make(URL, error="m", micro=False, boost_error=False).matrix]
    assert symbol == expected


def test_no_code_without_a_portal_address() -> None:
    renderer = PanelRenderer((800, 480))
    renderer.draw(PanelView(screen=Screen.IDLE, device_name="Copier 1", title="Tap your badge"),
                  now=0)
    assert not [n for n in renderer.tree if isinstance(n, TextNode) and n.role == "caption"]
    # Nothing of the code's: no white square on the idle screen's background.
    colours = {tuple(renderer.surface.get_at((x, y)))[:3]
               for x in range(600, 800, 4) for y in range(80, 300, 4)}
    assert CARD not in colours


def test_the_idle_view_carries_the_page_only_with_a_portal_and_a_device_id() -> None:
    machine = SessionMachine(new_id=lambda: "r", policy=Policy())
    machine.device_id = "copier-1"
    assert present(machine).qr_url == ""
    machine.policy = parse_policy({"portal_url": "https://print.example.org/"}, Policy())
    assert present(machine).qr_url == URL
    # Only at the idle panel: a signed-in user's screens carry none.
    assert machine.state is State.IDLE
    machine.device_id = ""
    assert present(machine).qr_url == ""


class _Link:
    connected = True
    device_id = "copier-7"
    on_connection = None

    def request(self, *_a: object) -> None:  # pragma: no cover - nothing is sent here
        raise AssertionError("no request expected")


def test_the_app_tells_the_machine_its_device_id() -> None:
    from firmware_stubs.mfd_controller import MfdControllerStub
    engine = MfdControllerStub()
    app = DeviceApp(_Link(), engine,  # type: ignore[arg-type]
                    policy=Policy(portal_url="https://p.example.org"))
    try:
        assert app.view().qr_url == "https://p.example.org/copier/copier-7"
    finally:
        app.stop()
        engine.close()


@pytest.mark.parametrize("url", ["ftp://x.example", "https://x.example/?q=1", "https://a b",
                                 "javascript:alert(1)", "https://" + "a" * 200])
def test_a_portal_address_that_is_no_page_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match=r"policy\.portal_url"):
        parse_policy({"portal_url": url}, Policy())

"""Accessibility of the panel, measured: WCAG 2 contrast of every text the screens draw and of
every pair the theme declares, and touch targets of at least 9 mm at the panel's density."""

from __future__ import annotations

import math

import pygame
import pytest
from panel_helpers import headless_pygame  # noqa: F401 (autouse: pygame headless)

from device_app.panel import PanelRenderer
from device_app.panel.canvas import Canvas, Target, min_target_px
from device_app.panel.theme import DISABLED, DISABLED_INK, TEXT_PAIRS
from device_app.panel.tree import TargetNode, TextNode, contrast, is_large, required_contrast
from device_app.view import Action
from tests.test_panel_layout import NOW, PANELS, VIEWS


def test_wcag_arithmetic_matches_the_reference_values() -> None:
    assert contrast((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert contrast((255, 255, 255), (255, 255, 255)) == pytest.approx(1.0)
    # #767676 on white is the well-known lightest grey that passes AA: 4.54:1.
    assert contrast((118, 118, 118), (255, 255, 255)) == pytest.approx(4.54, abs=0.01)
    assert is_large(24, False, 96) and not is_large(23, False, 96)  # 18 pt at 96 dpi
    assert is_large(19, True, 96) and not is_large(18, True, 96)  # 14 pt bold


@pytest.mark.parametrize("name", sorted(TEXT_PAIRS))
def test_every_text_pair_the_theme_declares_reaches_aa(name: str) -> None:
    ink, ground = TEXT_PAIRS[name]
    # Declared pairs are held to 4.5:1 whatever size they are set at: the theme does not
    # know the size, and the large-text allowance is for the frames below to use.
    assert contrast(ink, ground) >= 4.5, (name, round(contrast(ink, ground), 2))


@pytest.mark.parametrize(("size", "dpi"), PANELS, ids=[f"{w}x{h}" for (w, h), _ in PANELS])
def test_every_text_drawn_on_every_screen_reaches_aa(size: tuple[int, int], dpi: float) -> None:
    renderer = PanelRenderer(size, dpi=dpi)
    low = []
    checked = 0
    for name, view in VIEWS.items():
        renderer.draw(view, NOW)
        for node in renderer.tree:
            if not isinstance(node, TextNode) or not node.text.strip():
                continue
            need = required_contrast(node, dpi)
            if (node.fg, node.bg) == (DISABLED_INK, DISABLED):
                # WCAG 2 (1.4.3) exempts the text of inactive controls. The theme still keeps
                # it at 4.5:1 (test above); here it need only stay legible, 3:1.
                need = 3.0
            checked += 1
            ratio = contrast(node.fg, node.bg)
            if ratio < need:
                low.append((name, node.text, node.fg, node.bg, round(ratio, 2), need))
    assert checked > 100
    assert low == []


@pytest.mark.parametrize(("size", "dpi"), PANELS, ids=[f"{w}x{h}" for (w, h), _ in PANELS])
def test_every_target_is_at_least_9_mm_at_the_panels_density(size: tuple[int, int],
                                                             dpi: float) -> None:
    least = math.ceil(dpi * 9 / 25.4)
    renderer = PanelRenderer(size, dpi=dpi)
    for view in VIEWS.values():
        renderer.draw(view, NOW)
        targets = [n for n in renderer.tree if isinstance(n, TargetNode)]
        assert targets or view.screen.value in ("busy", "releasing")
        for node in targets:
            w_mm, h_mm = node.rect[2] * 25.4 / dpi, node.rect[3] * 25.4 / dpi
            assert min(node.rect[2], node.rect[3]) >= least, (view.screen, node, w_mm, h_mm)


def test_the_canvas_grows_a_small_target_to_9_mm() -> None:
    """Whatever a screen appends, the canvas keeps the promise: at 300 dpi 9 mm is 107 px."""
    canvas = Canvas(pygame.Surface((1600, 1000)), dpi=300)
    assert canvas.min_target == min_target_px(300) == 107
    canvas.targets.append(Target(pygame.Rect(10, 10, 20, 20), Action.LOGOUT))
    [grown] = canvas.targets
    assert grown.rect.size == (107, 107) and canvas.surface.get_rect().contains(grown.rect)
    assert canvas.tap(10) == 107
    [node] = canvas.tree
    assert isinstance(node, TargetNode) and node.rect == tuple(grown.rect)

"""What the panel tests share: pygame on SDL's dummy video driver, so a renderer draws off-screen
on a machine with no display, and whatever driver was chosen before is back afterwards (a test
module that wants a real display, such as test_panel_xvfb.py, must not inherit ours)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pygame
import pytest


@contextmanager
def dummy_video() -> Iterator[None]:
    """``SDL_VIDEODRIVER=dummy`` inside the block; the previous value (or none) after it."""
    previous = os.environ.get("SDL_VIDEODRIVER")
    os.environ["SDL_VIDEODRIVER"] = "dummy"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("SDL_VIDEODRIVER", None)
        else:
            os.environ["SDL_VIDEODRIVER"] = previous


@pytest.fixture(scope="module", autouse=True)
def headless_pygame() -> Iterator[None]:
    """Every test of a module that imports this: pygame initialised on the dummy driver, and
    shut down when the module's tests are done."""
    with dummy_video():
        pygame.init()
        try:
            yield
        finally:
            pygame.quit()

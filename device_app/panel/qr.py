"""A QR code drawn on the panel: segno computes the symbol's modules, and each dark module is a
filled rectangle on the canvas, on a white square with the quiet zone a reader needs.

Whole pixels per module, never fractions: a module blurred across two pixels is what makes a
phone's camera give up. So the symbol is as large as whole modules allow within the room, and
never smaller than :data:`MIN_MODULE_PX` per module (then it is not drawn at all: a code no
phone can read is worse than none).
"""

from __future__ import annotations

import functools

import pygame
import segno

from device_app.panel.theme import CARD, INK

#: Modules of white around the symbol (the QR standard asks for 4).
QUIET_ZONE = 4
#: The least pixels a module may have.
MIN_MODULE_PX = 2


@functools.lru_cache(maxsize=8)
def modules(text: str) -> tuple[tuple[bool, ...], ...]:
    """The symbol for ``text``, row by row, True for a dark module (no quiet zone). Medium
    error correction: a smudged or glaring panel still reads, and a URL stays a small
    version."""
    code = segno.make(text, error="m", micro=False, boost_error=False)
    return tuple(tuple(bool(v) for v in row) for row in code.matrix)


def draw_qr(surface: pygame.Surface, text: str, room: pygame.Rect) -> pygame.Rect | None:
    """Draw the QR code of ``text`` as large as fits in ``room`` (centred, top-aligned);
    returns the square drawn, quiet zone included, or None where it would be too small."""
    grid = modules(text)
    n = len(grid)
    size = min(room.width, room.height) // (n + 2 * QUIET_ZONE)
    if size < MIN_MODULE_PX:
        return None
    side = size * (n + 2 * QUIET_ZONE)
    square = pygame.Rect(0, 0, side, side)
    square.midtop = room.midtop
    pygame.draw.rect(surface, CARD, square)
    left, top = square.left + QUIET_ZONE * size, square.top + QUIET_ZONE * size
    for y, row in enumerate(grid):
        x = 0
        while x < n:
            if not row[x]:
                x += 1
                continue
            run = x
            while run < n and row[run]:
                run += 1
            # A run of dark modules in a row is one rectangle: fewer draw calls, same pixels.
            pygame.draw.rect(surface, INK, (left + x * size, top + y * size,
                                            (run - x) * size, size))
            x = run
    return square

"""Fonts for every script: a chain of system fonts, tried character by character.

Job names are whatever people printed: Latin, Arabic, CJK, emoji, often mixed in one name.
pygame's Font draws one file and shows a box ("tofu") for every character that file lacks, so
the panel keeps a *chain* of Noto faces, found through fontconfig (``fc-list``, else the
Debian paths), each with its character map read by ``fc-query``. A string is split into runs,
each run set in the first face of the chain that has its characters, and the runs are drawn
side by side on one baseline. With no Noto on the system the chain is empty and pygame's
built-in font draws everything, as before: the panel never fails for want of a font.

:class:`ChainFont` *is* a ``pygame.font.Font`` (of the chain's first face), with ``size`` and
``render`` made chain-aware, so code written against pygame's Font keeps working.

Limits, said plainly: runs are laid out in logical order, left to right; an Arabic run is
shaped right to left inside itself (SDL_ttf with HarfBuzz), but a line mixing Arabic and Latin
is not reordered by the full bidi algorithm. Colour emoji come from a bitmap font at one fixed
size and are scaled to the line.
"""

from __future__ import annotations

import bisect
import logging
import shutil
import subprocess
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import pygame
from pygame.typing import ColorLike

log = logging.getLogger(__name__)

#: The chain, in order: the first family that has a character draws it. Latin/Greek/Cyrillic
#: first (most names), then the scripts people print in, then symbols, emoji last (the emoji
#: font also maps digits and '#', which must stay in the text face).
FAMILIES = ("Noto Sans", "Noto Sans Arabic", "Noto Sans Hebrew", "Noto Sans CJK JP",
            "Noto Sans Devanagari", "Noto Sans Thai", "Noto Sans Bengali", "Noto Sans Tamil",
            "Noto Sans Armenian", "Noto Sans Georgian", "Noto Sans Ethiopic",
            "Noto Sans Symbols", "Noto Sans Symbols 2", "Noto Sans Math", "Noto Color Emoji")
EMOJI_FAMILY = "Noto Color Emoji"
#: Where Debian's fonts-noto-* put them, for a system without fc-list.
_DEBIAN_FILES = {
    "Noto Sans": "truetype/noto/NotoSans-{Style}.ttf",
    "Noto Sans Arabic": "truetype/noto/NotoSansArabic-{Style}.ttf",
    "Noto Sans Hebrew": "truetype/noto/NotoSansHebrew-{Style}.ttf",
    "Noto Sans CJK JP": "opentype/noto/NotoSansCJK-{Style}.ttc",
    "Noto Color Emoji": "truetype/noto/NotoColorEmoji.ttf",
}
#: pygame's built-in font is set at this fraction of the size asked for; the Noto faces are
#: set the same way, so a design size means the same letter height with either.
SIZE_FACTOR = 0.6875


@dataclass(frozen=True, slots=True)
class Face:
    """One font face of the chain: its file, the face's index in a collection, and the
    code points it has (sorted, inclusive ranges)."""

    family: str
    path: str
    index: int
    ranges: tuple[tuple[int, int], ...]
    bold: bool = False

    def has(self, ch: str) -> bool:
        code = ord(ch)
        i = bisect.bisect_right(self.ranges, (code, 0x10FFFF + 1)) - 1
        return i >= 0 and self.ranges[i][0] <= code <= self.ranges[i][1]

    @property
    def bitmap(self) -> bool:
        return self.family == EMOJI_FAMILY


def parse_charset(text: str) -> tuple[tuple[int, int], ...]:
    """fontconfig's charset ("20-7e a0 100-17f") as sorted inclusive ranges."""
    ranges = []
    for part in text.split():
        lo, _, hi = part.partition("-")
        try:
            ranges.append((int(lo, 16), int(hi or lo, 16)))
        except ValueError:
            continue
    return tuple(sorted(ranges))


def _charset(path: str, index: int) -> tuple[tuple[int, int], ...]:
    try:
        out = subprocess.run(["fc-query", "-i", str(index), "-f", "%{charset}", path],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return parse_charset(out)


def _listed() -> dict[tuple[str, str], tuple[str, int]]:
    """(family, style) -> (file, index) of every installed face, from fontconfig."""
    if shutil.which("fc-list") is None:
        return {}
    try:
        out = subprocess.run(["fc-list", "-f", "%{family[0]}\t%{style[0]}\t%{file}\t%{index}\n"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    faces: dict[tuple[str, str], tuple[str, int]] = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[3].isdigit():
            faces.setdefault((parts[0], parts[1]), (parts[2], int(parts[3])))
    return faces


@lru_cache(maxsize=2)
def system_chain(bold: bool = False) -> tuple[Face, ...]:
    """The installed faces of :data:`FAMILIES`, in order; empty without Noto. Looked up once
    per process (fc-list and fc-query take a few milliseconds each)."""
    listed = _listed()
    style = "Bold" if bold else "Regular"
    chain = []
    for family in FAMILIES:
        found = listed.get((family, style)) or listed.get((family, "Regular"))
        if found is None and family in _DEBIAN_FILES:
            path = Path("/usr/share/fonts") / _DEBIAN_FILES[family].format(Style=style)
            if not path.exists():
                path = Path("/usr/share/fonts") / _DEBIAN_FILES[family].format(Style="Regular")
            found = (str(path), 0) if path.exists() else None
        if found is None:
            continue
        if found[1] != 0:
            # pygame's Font opens the first face of a collection only; a later face would be
            # drawn with another face's glyphs than its charset says. (CJK JP is face 0 of
            # Debian's NotoSansCJK-*.ttc.)
            log.info("font %s: face %d of a collection, which pygame cannot open; skipped",
                     found[0], found[1])
            continue
        ranges = _charset(*found)
        if not ranges:
            # No fc-query: trust the file for the basic block only, enough not to crash.
            ranges = ((0x20, 0x7E),) if family == "Noto Sans" else ()
        if ranges:
            chain.append(Face(family, found[0], found[1], ranges, bold))
    if not chain:
        log.warning("no Noto fonts found (install fonts-noto-core, fonts-noto-cjk, "
                    "fonts-noto-color-emoji): names in other scripts will show as boxes")
    return tuple(chain)


class ChainFont(pygame.font.Font):
    """A pygame Font that sets each character in the first face of ``chain`` that has it.

    ``px`` is the pixel size of the text faces. Measuring and rendering are cached by string:
    a panel redraws the same few dozen strings frame after frame."""

    def __init__(self, chain: tuple[Face, ...], px: int,
                 shared: dict[str, pygame.font.Font] | None = None) -> None:
        first = chain[0] if chain else None
        if first is None:
            super().__init__(None, px)
        else:
            super().__init__(first.path, round(px * SIZE_FACTOR))
        self.chain = chain
        self.px = px
        # Not module-wide: a Font dies with pygame.font.quit(), a canvas's fonts with it.
        self._shared = {} if shared is None else shared
        self._faces: dict[int, pygame.font.Font] = {0: self} if chain else {}
        self._runs: OrderedDict[str, tuple[tuple[int, str], ...]] = OrderedDict()
        self._sizes: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._images: OrderedDict[tuple[str, tuple[int, int, int]], pygame.Surface] = \
            OrderedDict()

    def _face(self, i: int) -> pygame.font.Font:
        font = self._faces.get(i)
        if font is None:
            face = self.chain[i]
            if face.bitmap:
                # Colour emoji have one strike (109 px), whatever size is asked: one Font for
                # every size (shared by the canvas's fonts), scaled when drawn, instead of a
                # 10 MB file opened per size.
                font = self._shared.get(face.path)
                if font is None:
                    font = self._shared[face.path] = pygame.font.Font(face.path, 109)
            else:
                font = pygame.font.Font(face.path, round(self.px * SIZE_FACTOR))
            self._faces[i] = font
        return font

    def runs(self, text: str) -> tuple[tuple[int, str], ...]:
        """``text`` as (chain index, substring) runs; characters no face has go to face 0."""
        cached = self._runs.get(text)
        if cached is not None:
            return cached
        if not self.chain:
            return ((0, text),)
        out: list[tuple[int, str]] = []
        for ch in text:
            pick = next((i for i, face in enumerate(self.chain) if face.has(ch)), 0)
            if ch in "\u200d\ufe0f" and out:
                pick = out[-1][0]  # joiners and variation selectors stay with their emoji
            if out and out[-1][0] == pick:
                out[-1] = (pick, out[-1][1] + ch)
            else:
                out.append((pick, ch))
        result = tuple(out)
        _remember(self._runs, text, result, 2048)
        return result

    def _run_size(self, i: int, run: str) -> tuple[int, int]:
        font = self._face(i) if self.chain else self
        if i == 0:
            return super().size(run)
        w, h = font.size(run)
        if self.chain[i].bitmap:
            # Scaled to the text face's ascent: an emoji as tall as a capital and a bit.
            target = self.get_ascent()
            return max(1, round(w * target / max(1, h))), self.get_height()
        return w, self.get_height()

    def size(self, text: str | bytes) -> tuple[int, int]:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        cached = self._sizes.get(text)
        if cached is not None:
            return cached
        runs = self.runs(text)
        if len(runs) == 1 and runs[0][0] == 0:
            result = super().size(text)
        else:
            result = (sum(self._run_size(i, run)[0] for i, run in runs), self.get_height())
        _remember(self._sizes, text, result, 4096)
        return result

    def render(self, text: str | bytes | None, antialias: bool | Literal[0, 1],
               color: ColorLike, bgcolor: ColorLike | None = None,
               wraplength: int = 0) -> pygame.Surface:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        text = text or ""
        antialias = bool(antialias)
        key_color = pygame.Color(color)
        key = (text, (key_color.r, key_color.g, key_color.b))
        if bgcolor is None and antialias:
            cached = self._images.get(key)
            if cached is not None:
                return cached
        runs = self.runs(text)
        if len(runs) == 1 and runs[0][0] == 0:
            image = super().render(text, antialias, color, bgcolor)
        else:
            image = self._render_runs(runs, antialias, key_color, bgcolor)
        if bgcolor is None and antialias:
            _remember(self._images, key, image, 512)
        return image

    def _render_runs(self, runs: tuple[tuple[int, str], ...], antialias: bool,
                     color: pygame.Color, bgcolor: ColorLike | None) -> pygame.Surface:
        width = sum(self._run_size(i, run)[0] for i, run in runs)
        height = self.get_height()
        image = pygame.Surface((max(1, width), height), pygame.SRCALPHA)
        if bgcolor is not None:
            image.fill(pygame.Color(bgcolor))
        baseline = self.get_ascent()
        x = 0
        for i, run in runs:
            if i == 0:
                part = super().render(run, antialias, color)
                image.blit(part, (x, 0))
                x += part.get_width()
                continue
            font = self._face(i)
            part = font.render(run, antialias, color)
            if self.chain[i].bitmap:
                w, _h = self._run_size(i, run)
                target = self.get_ascent()
                part = pygame.transform.smoothscale(part, (w, target))
                image.blit(part, (x, baseline - target + max(1, target // 8)))
            else:
                # Same baseline as the text face; a taller face is clipped at the line's top.
                image.blit(part, (x, baseline - font.get_ascent()))
            x += part.get_width()
        return image


def _remember(cache: OrderedDict, key: object, value: object, limit: int) -> None:  # type: ignore[type-arg]
    cache[key] = value
    if len(cache) > limit:
        cache.popitem(last=False)


def face_for(font: pygame.font.Font, ch: str) -> Face | None:
    """The face that draws ``ch`` in ``font`` (None for pygame's built-in font): what a test
    asks to know that CJK is not drawn as tofu."""
    if not isinstance(font, ChainFont) or not font.chain:
        return None
    index = font.runs(ch)[0][0]
    face = font.chain[index]
    return face if face.has(ch) else None

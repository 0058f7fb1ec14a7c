"""What a frame drew, as plain data: the draw tree that tests (and a person debugging a layout)
read instead of pixels.

Every text the canvas draws and every tappable area it records becomes a node, in drawing
order. Nodes are frozen dataclasses of strings, numbers and tuples, with no pygame object in
them, so a test can compare, print or keep them after the surface is gone. Geometry is
``(x, y, width, height)`` in pixels of the surface.

Pure: no pygame. The WCAG 2 arithmetic lives here too, because the tree is what it is run on.
"""

from __future__ import annotations

from dataclasses import dataclass

Box = tuple[int, int, int, int]
Color = tuple[int, int, int]

#: What a text is for; the tree says it so a test can hold each kind to its own rule.
ROLES = ("title", "prompt", "heading", "body", "row", "detail", "button", "key", "banner",
         "label", "field", "status")


@dataclass(frozen=True, slots=True)
class TextNode:
    """One drawn text: ``text`` as shown (cut, wrapped), ``source`` as the screen gave it
    (the whole message a wrapped line came from), its role, where it went, its ink and the
    colour under it, and the container it must stay inside."""

    text: str
    source: str
    role: str
    rect: Box
    fg: Color
    bg: Color
    container: Box
    px: int
    bold: bool


@dataclass(frozen=True, slots=True)
class TargetNode:
    """One tappable area: the action, its subject (job id, field, key) and the label on it."""

    action: str
    subject: str | None
    rect: Box
    label: str


Node = TextNode | TargetNode


def inside(inner: Box, outer: Box) -> bool:
    """True if ``inner`` lies wholly within ``outer`` (edges may touch)."""
    return (inner[0] >= outer[0] and inner[1] >= outer[1]
            and inner[0] + inner[2] <= outer[0] + outer[2]
            and inner[1] + inner[3] <= outer[1] + outer[3])


def overlap(a: Box, b: Box) -> bool:
    """True if two boxes share any area (touching edges do not)."""
    return (a[0] < b[0] + b[2] and b[0] < a[0] + a[2]
            and a[1] < b[1] + b[3] and b[1] < a[1] + a[3])


def _channel(v: int) -> float:
    c = v / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(color: Color) -> float:
    """WCAG 2 relative luminance of an sRGB colour."""
    r, g, b = color
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast(a: Color, b: Color) -> float:
    """WCAG 2 contrast ratio, 1 to 21."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def is_large(px: int, bold: bool, dpi: float) -> bool:
    """WCAG's "large text" (18 pt, or 14 pt bold) for a font of ``px`` pixels on glass of
    ``dpi`` pixels per inch: a point is 1/72 inch."""
    points = px * 72 / dpi
    return points >= 18 or (bold and points >= 14)


def required_contrast(node: TextNode, dpi: float) -> float:
    """WCAG 2 AA: 4.5:1, or 3:1 for large text."""
    return 3.0 if is_large(node.px, node.bold, dpi) else 4.5

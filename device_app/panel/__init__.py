"""The copier's touch panel in pygame: the only part of the device app that imports pygame.

renderer.py draws a PanelView and answers what a tap means (its docstring is the theory of
operation); theme.py is how it looks, text.py makes text fit, fonts.py finds a font for every
script, canvas.py and widgets.py are what screens are drawn with (at any size), tree.py the
plain-data record of what a frame drew, icons.py the drawn symbols, keyboard.py the on-screen
keyboards, screens/ one module per screen, demo.py a gallery of them, window.py the loop on a
real display. docs/panel.md shows the screens and the [ui] settings.
"""

from device_app.panel.canvas import Target
from device_app.panel.renderer import PanelRenderer
from device_app.panel.theme import DESIGN_SIZE, MIN_TARGET

__all__ = ["DESIGN_SIZE", "MIN_TARGET", "PanelRenderer", "Target"]

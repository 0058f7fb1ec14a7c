"""One module per screen of the panel, each a ``draw(canvas, view, now, ...)``."""

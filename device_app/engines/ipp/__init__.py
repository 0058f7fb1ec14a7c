"""The print engine as an IPP printer: model.py (the values), codec.py (RFC 8010 bytes),
transport.py (one HTTP POST per request), printer_state.py (a printer's state as the engine's),
engine.py (the PrintEngine port over them)."""

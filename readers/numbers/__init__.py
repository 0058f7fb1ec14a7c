"""Card numbers: Wiegand formats, the conversion pipeline, and its inference from examples.

Pure: a raw reading (a Wiegand frame, a hex UID) in, the canonical card number out. A reader
spec's ``pipeline=`` is applied here (``converting``) before anyone sees the number.
"""

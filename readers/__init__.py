"""Where a badge becomes a number.

In the order a badge travels: ``adapters/`` reads a wire (one module per reader family, the
only code that loads pyserial, pyscard or libosdp), ``codecs/`` turns its bytes into frames
(sans-I/O, one module per wire format), ``numbers/`` turns a frame into the canonical card
number (Wiegand formats, the conversion pipeline and its inference). ``events`` is the port
every reader implements (``CardReader``, ``CardRead``), ``spec`` builds a reader from a spec
string, ``record/`` records a serial reader's bytes and replays them, ``cli`` is
``mfd reader``.
"""

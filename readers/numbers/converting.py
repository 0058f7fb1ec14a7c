"""A reader with a conversion pipeline: the same CardRead port, the number converted.

Readers deliver what their hardware sends (a UID in hex, a Wiegand frame, an ASCII number);
the user directory holds one canonical number per badge. Each reader of a device carries
the pipeline (readers.numbers.convert) that turns its output into that number, so one
physical badge is the same number on every reader. A read the pipeline cannot take is
counted as a bad frame and logged by its step and input kind, never with the number.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from readers.events import CardRead, CardReader, CardSink, ReaderHealth
from readers.numbers.convert import ConversionError, Pipeline

log = logging.getLogger(__name__)


class ConvertingReader:
    def __init__(self, inner: CardReader, pipeline: Pipeline) -> None:
        self.inner = inner
        self.pipeline = pipeline
        self.reader_id = inner.reader_id
        self.health: ReaderHealth = inner.health  # the same counters, shared
    def start(self, sink: CardSink) -> None:
        def convert(read: CardRead) -> None:
            try:
                number = self.pipeline.apply(read.number)
            except ConversionError as exc:
                self.health.bad_frames += 1
                self.health.reads -= 1  # it was counted as a read; it is not one
                log.warning("reader %s: %s (read %s dropped)", self.reader_id, exc.message,
                            read.masked)
                return
            sink(replace(read, number=number))

        self.inner.start(convert)

    def stop(self) -> None:
        self.inner.stop()

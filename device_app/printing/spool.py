"""The device's document spool: released documents on their way to the engine, on disk.

A document is written here as it arrives from the cloud (documents.py), so the device's memory
stays bounded whatever its size; the engine adapter reads it from here (protocol.engine.
Document). Each file is private (0600, in a 0700 folder beside the release journal) and lives
as long as its job needs it:

* a fetch that fails removes its partial file;
* a job that fails before hand-over (damaged, engine fault, refused hand-over) removes it;
* a job handed over keeps it until the engine's outcome (an IPP printer's adapter reads it on
  its own thread, after ``submit`` returned), or until the engine's answer sends it to be asked
  again (duplicate hand-over);
* at start-up, :meth:`Spool.clean` removes whatever a previous run left (a crash, a kill): no
  engine of that run can still be reading it, and a job journaled before is never handed over
  again from a leftover file (a new fetch would be needed, and reconciliation settles it).

Without a journal file (tests, a device configured without one) the spool is a private
temporary folder, removed by :meth:`Spool.close`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Hashable
from typing import BinaryIO

log = logging.getLogger(__name__)

FOLDER = "spool"
_PREFIX = "doc-"
_SUFFIX = ".spool"


class Spool:
    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self._temporary = folder is None
        if folder is None:
            self.folder = tempfile.mkdtemp(prefix="mfd-spool-")  # 0700 by mkdtemp
        else:
            self.folder = os.fspath(folder)
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            os.chmod(self.folder, 0o700)
        self._lock = threading.Lock()
        self._kept: dict[Hashable, str] = {}

    @classmethod
    def beside(cls, journal_path: str) -> Spool:
        """The spool of a device whose release journal is ``journal_path`` (":memory:" or ""
        for none: a temporary folder)."""
        if not journal_path or journal_path == ":memory:":
            return cls()
        return cls(os.path.join(os.path.dirname(os.path.abspath(journal_path)), FOLDER))

    def create(self) -> tuple[BinaryIO, str]:
        """A new private file (0600: mkstemp's mode), open for writing, and its path."""
        fd, path = tempfile.mkstemp(prefix=_PREFIX, suffix=_SUFFIX, dir=self.folder)
        return os.fdopen(fd, "wb"), path

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def keep(self, key: Hashable, path: str) -> None:
        """``path`` belongs to ``key``'s job until :meth:`release` (see the module docstring)."""
        with self._lock:
            self._kept[key] = path

    def release(self, key: Hashable) -> None:
        with self._lock:
            path = self._kept.pop(key, None)
        if path is not None:
            self.remove(path)

    def files(self) -> list[str]:
        """The spool files there now (names only)."""
        try:
            return sorted(n for n in os.listdir(self.folder)
                          if n.startswith(_PREFIX) and n.endswith(_SUFFIX))
        except FileNotFoundError:
            return []

    def clean(self) -> int:
        """Remove every spool file (start-up: before this run fetched anything); how many."""
        names = self.files()
        for name in names:
            self.remove(os.path.join(self.folder, name))
        if names:
            log.info("removed %d document(s) a previous run left in the spool", len(names))
        return len(names)

    def close(self) -> None:
        if self._temporary:
            shutil.rmtree(self.folder, ignore_errors=True)

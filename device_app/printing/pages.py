"""A job's page count on its way from the engine to the panel (release.py's printer thread
posts it; see its module docstring, "How far a job is")."""

from __future__ import annotations

from dataclasses import dataclass

Key = tuple[str, str]  # (release_id, job_id)


@dataclass(frozen=True, slots=True)
class Pages:
    engine_id: str
    impressions: int


@dataclass(slots=True)
class Paging:
    """A job on the engine whose page count may still go to the panel (printer thread only)."""

    key: Key
    copies: int
    posted: int = 0
    pending: int | None = None  # pages done, newer than ``posted``, not posted yet
    at: float | None = None  # when ``posted`` was

    def seen(self, impressions: int) -> None:
        # The session counts the document's pages; the engine counts every copy's impressions.
        pages = impressions // self.copies
        if pages > max(self.posted, self.pending or 0):
            self.pending = pages

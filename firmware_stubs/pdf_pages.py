"""How many pages the emulated engine prints for a job: the document's pages, times its copies.

Pure: bytes in, a count out. A real engine interprets the PDF; the emulator reads only the page
tree's ``/Count``, which every PDF writer puts in the clear unless it compresses the page tree
into an object stream. A document it cannot read that way (not a PDF, such a compressed one)
counts one page a copy, as the emulator counted every job before it knew pages.
"""

from __future__ import annotations

import re

from protocol.engine import EngineJob

# A page-tree node: ``<< ... /Type /Pages ... /Count n ... >>``, keys in any order. The root's
# count is the largest: it counts every leaf below it.
_PAGES_NODE = re.compile(rb"<<((?:(?!<<|>>).)*?/Type\s*/Pages\b(?:(?!<<|>>).)*?)>>", re.S)
_COUNT = re.compile(rb"/Count\s+(\d{1,7})\b")


def pdf_page_count(document: bytes) -> int | None:
    """The pages of a PDF as its page tree counts them; None if it shows no readable page tree
    (not a PDF, or one whose page tree is compressed into an object stream)."""
    if not document.startswith(b"%PDF-"):
        return None
    counts = [int(c.group(1)) for node in _PAGES_NODE.finditer(document)
              if (c := _COUNT.search(node.group(1))) is not None]
    best = max(counts, default=0)
    return best if best > 0 else None


def impressions(job: EngineJob) -> int:
    """What the emulated engine prints for ``job``: its pages, times its copies."""
    return (pdf_page_count(job.document) or 1) * max(1, job.copies)

"""The demo org the simulator and tests start with: users with badges, held jobs, devices.

Deterministic: the same names, badges and documents every run, so transcripts and screenshots
are comparable. Badge numbers are the 10-digit decimal an EM4100 fob prints (readers.codecs.em4100).
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud.directory import add_card, set_access_code, submit_job
from cloud.storage.port import CloudStore


@dataclass(frozen=True, slots=True)
class DemoUser:
    email: str
    name: str
    badge_tag: int  # the 32-bit EM4100 tag on the user's fob
    access_code: str

    @property
    def badge(self) -> str:
        return f"{self.badge_tag:010d}"


DEMO_USERS = (
    DemoUser("alice@example.org", "Alice Martin", 0x0012D687, "482916"),
    DemoUser("bob@example.org", "Bob Okafor", 0x00BC614E, "730158"),
    DemoUser("chen@example.org", "Chen Wei", 0x075BCD15, "265093"),
)
UNKNOWN_BADGE_TAG = 0x0BADCAFE
DEMO_DEVICES = ("copier-1", "copier-2")

_JOBS = (
    ("alice@example.org", "Quarterly report.pdf", 12, True, True, 1),
    ("alice@example.org", "Boarding pass", 1, False, False, 1),
    ("alice@example.org", "Team offsite agenda.docx", 3, False, True, 2),
    ("alice@example.org", "Invoice 2026-114.pdf", 2, False, False, 1),
    ("alice@example.org", "Floor plan (A3).pdf", 1, True, False, 1),
    ("bob@example.org", "Lecture notes week 7.pdf", 24, False, True, 1),
    ("bob@example.org", "Concert tickets", 2, True, False, 1),
    ("bob@example.org", "Tax form 1040.pdf", 6, False, False, 1),
    ("bob@example.org", "Recipe - lasagne", 1, True, False, 1),
    ("chen@example.org", "Contract draft v3.docx", 18, False, True, 2),
    ("chen@example.org", "Poster.png", 1, True, False, 1),
    ("chen@example.org", "Expenses.xlsx", 4, False, False, 1),
)


def demo_document(name: str, pages: int) -> bytes:
    """A small, valid PDF of ``pages`` pages with the job name and page number on each, so a
    real printer could print it and an engine that counts pages counts as many as the job says
    (about 300 bytes a page: the demo's longest job, 24 pages, is 7.5 KB)."""
    objs = ["<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(pages))
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>")
    font = 3 + 2 * pages
    safe = name.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    for i in range(pages):
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents "
                    f"{4 + 2 * i} 0 R /Resources << /Font << /F1 {font} 0 R >> >> >>")
        text = f"BT /F1 24 Tf 72 760 Td ({safe} - page {i + 1} of {pages}) Tj ET"
        objs.append(f"<< /Length {len(text)} >>\nstream\n{text}\nendstream")
    objs.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode("latin-1", "replace")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += (f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
            .encode())
    return bytes(out)


def seed_demo(store: CloudStore, *, now: float, devices: tuple[str, ...] = DEMO_DEVICES,
              jobs: bool = True) -> str:
    """Create the demo org; returns its id. Job times count back from ``now``."""
    with store.transaction():
        org_id = store.create_org("Demo Org", org_id="org_demo")
        for u in DEMO_USERS:
            store.add_user(org_id, u.email, u.name)
        for d in devices:
            store.add_device(d, org_id, d.replace("-", " ").title())
    for u in DEMO_USERS:
        add_card(store, u.email, u.badge)
        set_access_code(store, u.email, u.access_code)
    if jobs:
        for i, (email, name, pages, color, duplex, copies) in enumerate(_JOBS):
            submit_job(store, email, name, demo_document(name, pages), pages=pages,
                       color=color, duplex=duplex, copies=copies,
                       source="WS-" + email.split("@")[0].upper(),
                       submitted_at=now - 600 * (i + 1))
    return org_id

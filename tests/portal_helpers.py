"""What the User Portal's browser tests share: a served cloud with a second person and copiers,
held jobs made through the portal's own use-case, screenshots for docs/portal-guide.md."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from cloud import admin, directory, portal_jobs
from cloud.storage.factory import open_store
from cloud.storage.sql import SqlStore
from tests.web_helpers import PASSWORD, WebWorld, make_world

SHOTS = Path(__file__).resolve().parent.parent / "docs" / "img" / "web"
PDF = (b"%PDF-1.7\n1 0 obj << /Type /Pages /Count 1 >>\n2 0 obj << /Type /Page >>\n"
       b"trailer << /Root 1 0 R >>\n%%EOF\n")
BOB = "bob@example.org"


def portal_world(path: Path, **settings: Any) -> WebWorld:
    """make_world's org and people, plus Bob (a second person of the org)."""
    w = make_world(f"sqlite:///{path}", **settings)
    store = open_store(w.store_url)
    try:
        admin.add_user(store, w.org_id, BOB, "Bob Babbage")
        directory.set_password(store, BOB, PASSWORD)
    finally:
        store.close()
    return w


def store_of(world: WebWorld) -> SqlStore:
    store = open_store(world.store_url)
    assert isinstance(store, SqlStore)
    return store


def user(store: SqlStore, email: str) -> Any:
    with store.transaction():
        found = store.user_by_email(email)
    assert found is not None
    return found


def hold(store: SqlStore, email: str, name: str, *, color: bool = True, duplex: bool = False,
         copies: int = 1) -> str:
    """A held job of this person (through Print from the browser's use-case)."""
    return portal_jobs.web_print(store, user(store, email), name, PDF, max_size=1 << 20,
                                 color=color, duplex=duplex, copies=copies, now=time.time())


def copier(store: SqlStore, org_id: str, device_id: str, name: str, *,
           online: bool = True) -> str:
    with store.transaction():
        store.add_device(device_id, org_id, name)
        store.record_status(device_id, "online" if online else "offline", 1, time.time())
    return device_id


def job(store: SqlStore, job_id: str) -> Any:
    with store.transaction():
        return store.jobs([job_id])[0]


def shot(page: Any, name: str) -> None:
    """docs/img/web/portal-NAME.png, only when MFD_SCREENSHOTS=1 (the docs' pictures)."""
    if os.environ.get("MFD_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"portal-{name}.png"), full_page=True)


def no_sideways_scroll(page: Any) -> bool:
    return bool(page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"))


def csrf(page: Any) -> str:
    return str(page.locator("input[name=csrf]").first.get_attribute("value"))


def tab_to(page: Any, selector: str, limit: int = 60) -> None:
    """Press Tab until the focused element matches ``selector`` (keyboard only)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)",
                         selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


_CONTRAST_JS = """() => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = el => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const bad = [];
  for (const el of document.querySelectorAll("body *")) {
    const text = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    const style = getComputedStyle(el);
    if (!text || style.visibility === "hidden" || el.offsetParent === null) continue;
    const a = lum(rgb(style.color).slice(0, 3)), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) bad.push(el.tagName + " '" + el.textContent.trim().slice(0, 30) + "' " +
                             ratio.toFixed(2));
  }
  return bad;
}"""


def low_contrast(page: Any) -> list[str]:
    """Visible text below WCAG AA's 4.5:1 against its background (computed, as rendered)."""
    return list(page.evaluate(_CONTRAST_JS))

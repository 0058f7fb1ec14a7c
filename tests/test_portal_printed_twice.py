"""A job printed twice is told to its owner (issue 13: "the user is told if it raced"): a copier
that printed a job offline after it had been printed elsewhere is reported by the cloud as
``offline.raced`` under the owner (tests/test_offline_cloud.py drives that report); the User
Portal's My jobs then says which job, where and when, in the browser. Another user is told
nothing, and an old race is no longer shown."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud import directory
from cloud.offline_report import RACED, RACED_SHOWN_DAYS, printed_twice
from cloud.storage.factory import open_store
from tests.web_helpers import WebWorld, browser, make_world, page, sign_in

__all__ = ["browser", "page"]  # fixtures, imported to be found


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebWorld]:
    path: Path = tmp_path_factory.mktemp("web") / "cloud.db"
    w = make_world(f"sqlite:///{path}")
    try:
        yield w
    finally:
        w.server.close()


def _race(world: WebWorld, name: str, at: float) -> None:
    store = open_store(world.store_url)
    try:
        job = directory.submit_job(store, world.user_email, name, b"%PDF-1.4 twice")
        user = store.user_by_email(world.user_email)
        assert user is not None
        with store.transaction():
            # As cloud/offline_report.py writes it when the report comes in.
            store.audit(at, "device:copier-3", "offline.raced", f"user:{user.id}",
                        RACED.format(job=job, here="copier-3", release="off-1a2b",
                                     state="printed", there="copier-1"))
    finally:
        store.close()


def test_the_owner_is_told_of_a_job_printed_twice(page: Any, world: WebWorld) -> None:
    now = time.time()
    _race(world, "Quarterly report.pdf", now - 3600)
    _race(world, "Old race.pdf", now - (RACED_SHOWN_DAYS + 1) * 86400)
    store = open_store(world.store_url)
    try:
        ada = store.user_by_email(world.user_email)
        root = store.user_by_email(world.admin_email)
        assert ada is not None and root is not None
        told = printed_twice(store, ada, now)
        assert [(t.name, t.offline_at, t.before_at) for t in told] == [
            ("Quarterly report.pdf", "copier-3", "copier-1")]
        assert printed_twice(store, root, now) == []
    finally:
        store.close()
    sign_in(page, world, world.user_email)
    section = page.get_by_role("region", name="Printed twice")
    text = section.inner_text()
    assert "Quarterly report.pdf" in text and "copier-3" in text and "copier-1" in text
    assert "Old race.pdf" not in text

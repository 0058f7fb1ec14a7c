"""The web front end against the findings of its security review: each test here failed on the
code before its fix. One served cloud (SQLite) for the page-level checks; the use-case checks
run on the store of each backend."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from cloud import admin, directory
from cloud.linking import Linking
from cloud.storage.factory import open_store
from cloud.storage.sql import SqlStore
from protocol.errors import ErrorCode, MfdError
from tests.admin_console_helpers import csrf_of
from tests.web_helpers import PASSWORD, WebWorld, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebWorld]:
    served = make_world(f"sqlite:///{tmp_path_factory.mktemp('web-sec') / 'cloud.db'}")
    yield served
    served.server.close()


@pytest.fixture
def acme(store_url: str) -> Iterator[tuple[SqlStore, str]]:
    """A store of the test's backend with org Acme, ada (a user) and both passwords set."""
    store = open_store(store_url)
    org = admin.create_org(store, "Acme")
    admin.add_user(store, org, "ada@example.org", "Ada Lovelace")
    directory.set_password(store, "ada@example.org", PASSWORD)
    yield store, org
    store.close()


def audit_rows(world: WebWorld) -> list[tuple[float, str, str, str, str]]:
    store = open_store(world.store_url)
    try:
        return store.audit_log(500)
    finally:
        store.close()


# ------------------------------------------------------------ 1. the sign-in lockout per address

def test_an_address_guessing_until_locked_does_not_lock_out_another(
        acme: tuple[SqlStore, str]) -> None:
    store, _org = acme
    linking = Linking(store, base_url="https://print.example.org")
    locked = False
    for i in range(25):  # a different account each time: only the address is counted
        try:
            linking.sign_in(f"guess{i}@example.org", "wrong", source="203.0.113.9")
        except MfdError as exc:
            if exc.code == ErrorCode.LOCKED_OUT:
                locked = True
                break
    assert locked, "the guessing address was never locked"
    with pytest.raises(MfdError) as refused:
        linking.sign_in("ada@example.org", PASSWORD, source="203.0.113.9")
    assert refused.value.code == ErrorCode.LOCKED_OUT
    # The victim, elsewhere, signs in.
    session = linking.sign_in("ada@example.org", PASSWORD, source="198.51.100.7")
    assert session.user.email == "ada@example.org"


def test_the_sign_in_page_counts_failures_against_the_client_address(world: WebWorld) -> None:
    with httpx.Client(base_url=world.url) as http:
        csrf = csrf_of(http.get("/portal/signin").text)
        r = http.post("/portal/signin", data={"csrf": csrf, "email": "ada@example.org",
                                              "password": "not it"})
        assert r.status_code == 401
    wrong = [row for row in audit_rows(world) if row[2] == "portal.wrong_password"]
    assert wrong and wrong[0][4] == "from 127.0.0.1", wrong

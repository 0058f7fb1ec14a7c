"""Linking.sign_in_sso, the use-case behind single sign-on (cloud/linking/sso.py), on SQLite and
PostgreSQL: the verified email finds its user (in any letter case) and opens a portal session,
audited like a password sign-in with the provider and subject; an unknown email is refused and
the refusal audited for the administrator, creating nobody; an account locked by wrong
passwords is refused here too."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from cloud import admin, directory
from cloud.identity import MAX_FAILURES
from cloud.linking import LinkCode, Linking
from cloud.storage.factory import open_store
from cloud.storage.sql import SqlStore
from protocol.errors import ErrorCode, MfdError

ISSUER = "https://login.example.test"


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    s = open_store(store_url)
    org = admin.create_org(s, "Acme")
    admin.add_user(s, org, "ada@example.org", "Ada Lovelace")
    directory.set_password(s, "ada@example.org", "correct horse battery")
    yield s
    s.close()


def audit(store: SqlStore, action: str) -> list[tuple[float, str, str, str, str]]:
    with store.transaction():
        return [row for row in store.audit_log(100) if row[2] == action]


def test_a_verified_email_opens_a_session_for_its_user(store: SqlStore) -> None:
    linking = Linking(store)
    session = linking.sign_in_sso("Ada@Example.ORG", ISSUER, "sub-123")
    assert session.user.email == "ada@example.org"
    assert session.expires_at > time.time()
    assert linking.session_user(session.token).id == session.user.id
    (entry,) = audit(store, "portal.sign_in")
    assert entry[1] == f"user:{session.user.id}"
    assert f"single sign-on via {ISSUER}, subject sub-123" in entry[4]


def test_an_unknown_email_is_refused_and_nobody_is_created(store: SqlStore) -> None:
    linking = Linking(store)
    with pytest.raises(MfdError) as refused:
        linking.sign_in_sso("stranger@example.org", ISSUER, "sub-9")
    assert refused.value.code == LinkCode.UNKNOWN_USER
    assert "ask your administrator" in refused.value.message
    with store.transaction():
        assert store.user_by_email("stranger@example.org") is None
    (entry,) = audit(store, "sso.unknown_email")
    assert "stranger@example.org" in entry[4] and ISSUER in entry[4]
    assert audit(store, "portal.sign_in") == []


def test_a_locked_out_account_is_refused(store: SqlStore) -> None:
    linking = Linking(store)
    for _ in range(MAX_FAILURES):
        with pytest.raises(MfdError):
            linking.sign_in("ada@example.org", "wrong guess", source="198.51.100.7")
    with pytest.raises(MfdError) as refused:
        linking.sign_in_sso("ada@example.org", ISSUER, "sub-123")
    assert refused.value.code == ErrorCode.LOCKED_OUT
    assert audit(store, "portal.sign_in") == []


def test_malformed_claims_are_refused(store: SqlStore) -> None:
    linking = Linking(store)
    for email, issuer, subject in [
            ("", ISSUER, "s"), ("ada@example.org", "", "s"), ("ada@example.org", ISSUER, ""),
            ("ada@example.org\nx", ISSUER, "s"), ("ada@example.org", ISSUER, "s" * 300)]:
        with pytest.raises(MfdError) as refused:
            linking.sign_in_sso(email, issuer, subject)
        assert refused.value.code == ErrorCode.INVALID_FIELD, (email, issuer, subject)
    assert audit(store, "portal.sign_in") == []

"""The JSON API fuzzed from its own OpenAPI document with schemathesis: every operation, with
a valid client token or portal session where the route needs one (so the requests reach past
authentication), answers no 5xx, only documented statuses and content types, and bodies in the
documented shapes (every error the one ``{"ok": false, "error": {...}}`` model).

Bounded and repeatable: hypothesis derandomized (a fixed seed per operation), MAX_EXAMPLES
examples per operation, one server for the module on a SQLite store; about 20 s in all.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from cloud.demo import DEMO_USERS, seed_demo
from cloud.directory import set_password
from cloud.linking import Linking
from cloud.portal import PortalServer, start_portal
from cloud.storage.factory import open_store

#: Examples per operation: enough to reach every refusal path of a route, small enough to
#: keep the module near 20 s (14 operations, valid and invalid requests each).
MAX_EXAMPLES = 15
PASSWORD = "fuzzing password 1"
ALICE = DEMO_USERS[0].email

CHECKS = [schemathesis.checks.not_a_server_error,
          schemathesis.checks.response_schema_conformance,
          schemathesis.checks.status_code_conformance,
          schemathesis.checks.content_type_conformance]


class Credentials:
    """Real credentials, made in-process through the same use-cases the API calls."""

    def __init__(self, store_url: str) -> None:
        self.store = open_store(store_url)
        self.linking = Linking(self.store)
        installer = self.linking.invite_classic(ALICE).url.split("#installer=", 1)[1]
        self.client = self.linking.register(installer, machine="fuzz-pc", os_user="alice").token
        self.session = self.new_session()

    def new_session(self) -> str:
        # Another source than the fuzzer's address: its wrong passwords lock that one out.
        return self.linking.sign_in(ALICE, PASSWORD, source="fixture").token

    def headers(self, path: str) -> dict[str, str]:
        if path in ("/api/v1/client", "/api/v1/jobs"):
            return {"Authorization": f"Bearer {self.client}"}
        if path == "/api/v1/portal/signout":
            # Signing out ends the session: each call spends a fresh one.
            return {"Authorization": f"Bearer {self.new_session()}"}
        if path.startswith("/api/v1/portal/") and path != "/api/v1/portal/signin":
            return {"Authorization": f"Bearer {self.session}"}
        return {}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PortalServer, Credentials]]:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('fuzz')) / 'cloud.db'}"
    store = open_store(url)
    seed_demo(store, now=time.time(), jobs=False)
    set_password(store, ALICE, PASSWORD)
    store.close()
    server = start_portal(url, max_document=256 * 1024)
    creds = Credentials(url)
    try:
        yield server, creds
    finally:
        server.close()
        creds.store.close()


def test_every_operation_answers_as_documented(
        served: tuple[PortalServer, Credentials]) -> None:
    server, creds = served
    schema = schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json")
    failures: dict[str, str] = {}
    seen: list[str] = []
    accepted: set[str] = set()  # operations that answered 2xx at least once
    for result in schema.get_all_operations():
        operation = result.ok()
        seen.append(operation.label)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None,
                      database=None, suppress_health_check=list(HealthCheck),
                      phases=[Phase.explicit, Phase.generate])
            def call(case: schemathesis.Case) -> None:
                headers = {**(case.headers or {}), **creds.headers(case.path)}
                if case.path == "/api/v1/devices/register":
                    # Registration is off on this server (no broker to write accounts to): its
                    # documented answer is 501 not_enabled; any other 5xx still fails.
                    answer = case.call_and_validate(
                        base_url=server.url, headers=headers, checks=CHECKS,
                        excluded_checks=[schemathesis.checks.not_a_server_error])
                    assert answer.status_code < 500 or answer.status_code == 501
                else:
                    answer = case.call_and_validate(base_url=server.url, headers=headers,
                                                    checks=CHECKS)
                if answer.status_code < 300:
                    accepted.add(case.path)

            try:
                call()
            except Unsatisfiable:
                # Nothing invalid to send (no parameters, no body): the positive run covers it.
                assert mode is GenerationMode.NEGATIVE, operation.label
            except Exception as exc:  # every operation runs; the failures are listed at the end
                failures[f"{operation.label} ({mode.value})"] = str(exc)[:2000]
    assert len(seen) == 14, seen
    # The credentials took the requests past authentication (the other routes need secrets
    # the fuzzer cannot guess: installer tokens, invitations, passwords, codes).
    assert {"/api/v1/health", "/api/v1/client", "/api/v1/jobs", "/api/v1/portal/signout",
            "/api/v1/portal/devices", "/api/v1/portal/installer",
            "/api/v1/portal/linking-code"} <= accepted, accepted
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())


def test_the_document_describes_every_route_and_its_errors(
        served: tuple[PortalServer, Credentials]) -> None:
    import json
    import urllib.request

    server, _ = served
    with urllib.request.urlopen(f"{server.url}/api/v1/openapi.json", timeout=10) as resp:
        doc = json.load(resp)
    operations = {(method.upper(), path) for path, item in doc["paths"].items()
                  for method in item}
    assert operations == {
        ("GET", "/api/v1/health"), ("POST", "/api/v1/clients"), ("GET", "/api/v1/client"),
        ("POST", "/api/v1/jobs"), ("POST", "/api/v1/mobile/link"),
        ("POST", "/api/v1/invitations/accept"), ("POST", "/api/v1/portal/signin"),
        ("POST", "/api/v1/portal/signout"), ("GET", "/api/v1/portal/devices"),
        ("POST", "/api/v1/portal/installer"), ("POST", "/api/v1/portal/linking-code"),
        ("POST", "/api/v1/portal/aop"), ("POST", "/api/v1/portal/aop/confirm"),
        ("POST", "/api/v1/devices/register")}
    error_ref = "#/components/schemas/ErrorAnswer"
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if path == "/api/v1/health":
                continue
            errors = {s: r for s, r in op["responses"].items() if s[0] in "45"}
            assert "400" in errors and "422" not in op["responses"], (method, path)
            for status, answer in errors.items():
                assert answer["content"]["application/json"]["schema"]["$ref"] == error_ref, \
                    (method, path, status)
    assert {"ClientToken", "PortalSession"} <= set(doc["components"]["securitySchemes"])
    assert "HTTPValidationError" not in doc["components"]["schemas"]

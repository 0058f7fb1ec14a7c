"""Every client linking method end to end: a simulated client links over the portal's HTTP
API, prints a file, and the job shows up at a copier's device app (paho over the private
Mosquitto, the cloud worker on the same store) for its user and for no one else. Each test runs
on SQLite and on PostgreSQL (the ``world`` fixture of tests/conftest.py)."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from conftest import World

from client.print_client import ClientStateError, PortalBrowser, PrintClient
from cloud.demo import DEMO_USERS, DemoUser
from cloud.directory import set_password
from cloud.linking import DEFAULT_QUEUE, Linking
from cloud.portal import PortalServer, start_portal
from device_app.app import DeviceApp
from device_app.link import MqttCloudLink
from device_app.session import State
from device_app.view import Action
from firmware_stubs.mfd_controller import MfdControllerStub
from protocol.errors import RemoteError

pytestmark = pytest.mark.integration

ALICE, BOB, CHEN = DEMO_USERS
PASSWORD = "e2e test password"


@dataclass
class Copier:
    app: DeviceApp
    engine: MfdControllerStub

    def log_in(self, user: DemoUser) -> None:
        if self.app.machine.state is not State.IDLE:
            self.log_out()
        self.app.enter_code(user.access_code)
        assert self.app.run_until(lambda a: a.machine.state is State.JOBS, 5), \
            self.app.view().title
        assert self.app.view().user_name == user.name

    def log_out(self) -> None:
        self.app.tap(Action.LOGOUT)
        assert self.app.run_until(lambda a: a.machine.state is State.IDLE, 5)

    def jobs_of(self, user: DemoUser) -> dict[str, str]:
        """The held jobs the panel lists for this user: id -> name."""
        self.log_in(user)
        view = self.app.view()
        assert view.total_jobs == len(view.jobs)  # the whole list fits one page
        jobs = {j.job_id: j.name for j in view.jobs}
        self.log_out()
        return jobs

    def release(self, user: DemoUser, job_id: str) -> str:
        """Release one job to paper; the SHA-256 the engine verified."""
        self.log_in(user)
        before = len(self.engine.printed)
        self.app.tap(Action.SELECT, job_id)
        self.app.tap(Action.RELEASE)
        assert self.app.run_until(lambda a: len(self.engine.printed) == before + 1
                                  and a.machine.state is State.JOBS, 10)
        printed = self.engine.printed[-1]
        assert printed.job_id == job_id
        self.log_out()
        return printed.sha256


@pytest.fixture
def portal(world: World) -> Iterator[PortalServer]:
    srv = start_portal(world.store_url, "127.0.0.1", 0)
    yield srv
    srv.close()


@pytest.fixture
def linking(world: World, portal: PortalServer) -> Linking:
    """The admin's side, on the cloud's store (links point at the portal)."""
    return Linking(world.store)


@pytest.fixture
def copier(world: World) -> Iterator[Copier]:
    link = MqttCloudLink(world.broker.address("copier-1"), "copier-1").start()
    assert link.connected
    engine = MfdControllerStub()
    app = DeviceApp(link, engine, device_name="Copier 1").start()
    yield Copier(app, engine)
    app.stop()
    link.close()
    engine.close()


@pytest.fixture
def document(tmp_path: Path) -> Path:
    path = tmp_path / "Quarterly memo.pdf"
    path.write_bytes(b"%PDF-1.4\n% linking e2e\n" + os.urandom(2048))
    return path


def profile(tmp_path: Path, name: str) -> Path:
    """An OS user's profile directory on the simulated machine."""
    return tmp_path / "profiles" / name


def only_for(copier: Copier, job_id: str, owner: DemoUser | None) -> None:
    """The job is listed at the copier for its owner (None: nobody) and for no one else."""
    for user in DEMO_USERS:
        listed = job_id in copier.jobs_of(user)
        assert listed == (user is owner), f"{job_id} listed for {user.email}: {listed}"


def printed_and_only_for(copier: Copier, answer: dict[str, Any], document: Path,
                         owner: DemoUser) -> None:
    assert answer["state"] == "HELD"
    job_id = str(answer["job_id"])
    only_for(copier, job_id, owner)
    assert copier.release(owner, job_id) == hashlib.sha256(document.read_bytes()).hexdigest()


def set_policy(world: World, policy: str) -> None:
    with world.store.transaction():
        world.store.set_org_settings("org_demo", replace(world.store.org_settings("org_demo"),
                                                         aop_pending=policy))


# ------------------------------------------------------------------ computers


def test_classic_invitation_links_a_workstation(world: World, linking: Linking, copier: Copier,
                                                document: Path, tmp_path: Path) -> None:
    email = linking.invite_classic(ALICE.email).body
    link = next(w for w in email.split() if "/install#installer=" in w)
    client = PrintClient(profile(tmp_path, "alice"))
    linked = client.link(link, machine="lab-pc-7", os_user="alice")
    assert linked["user"]["email"] == ALICE.email
    state_file = profile(tmp_path, "alice") / "client.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    answer = client.print_file(document, pages=2)
    assert answer["owner"]["email"] == ALICE.email
    printed_and_only_for(copier, answer, document, ALICE)


def test_portal_invitation_then_set_up_my_devices(world: World, linking: Linking,
                                                  copier: Copier, document: Path,
                                                  tmp_path: Path) -> None:
    home = profile(tmp_path, "bob")
    browser = PortalBrowser(home)
    browser.accept_invitation(linking.invite_portal(BOB.email).url, PASSWORD)
    installer = browser.setup_devices()["url"]
    client = PrintClient(home)
    assert client.link(installer, machine="bob-laptop", os_user="bob")["user"]["email"] \
        == BOB.email
    assert [c["machine"] for c in browser.devices()["clients"]] == ["bob-laptop"]
    printed_and_only_for(copier, client.print_file(document), document, BOB)


def test_share_link_sign_in_then_set_up_my_devices(world: World, linking: Linking,
                                                   copier: Copier, document: Path,
                                                   tmp_path: Path) -> None:
    set_password(world.store, CHEN.email, PASSWORD)
    home = profile(tmp_path, "chen")
    browser = PortalBrowser(home)
    browser.sign_in(CHEN.email, PASSWORD, share_link=linking.share_link("org_demo"))
    client = PrintClient(home)
    client.link(browser.setup_devices()["url"], machine="chen-mac", os_user="chen")
    printed_and_only_for(copier, client.print_file(document), document, CHEN)


@pytest.mark.parametrize("policy", ["print_again", "join"])
def test_bulk_deployment_with_authenticate_on_print(world: World, linking: Linking,
                                                    copier: Copier, document: Path,
                                                    tmp_path: Path, policy: str) -> None:
    set_policy(world, policy)
    linking.add_queue("org_demo", "Colour A3")
    bulk = linking.bulk_installer("org_demo").token
    home = profile(tmp_path, "bob")
    client = PrintClient(home, portal=linking.base_url)
    anonymous = client.link(bulk, machine="kiosk-3", os_user="bob")
    assert anonymous["user"] is None and anonymous["queues"] == [DEFAULT_QUEUE]
    pending = client.print_file(document)
    assert pending["state"] == "PENDING_AUTH" and pending["owner"] is None
    only_for(copier, str(pending["job_id"]), owner=None)

    set_password(world.store, BOB.email, PASSWORD)
    browser = PortalBrowser(home)
    browser.sign_in(BOB.email, PASSWORD)
    assert browser.aop_details(str(pending["sign_in_url"]))["policy"] == policy
    outcome = browser.aop_confirm(str(pending["sign_in_url"]))
    assert outcome["user"]["email"] == BOB.email
    state = client.status()
    assert state["user"]["email"] == BOB.email
    assert state["queues"] == [DEFAULT_QUEUE, "Colour A3"]  # deployed after linking
    job = world.store.jobs([str(pending["job_id"])])[0]
    if policy == "join":
        assert outcome["joined"] == [pending["job_id"]] and job.state == "HELD"
        printed_and_only_for(copier, {"state": "HELD", "job_id": job.id}, document, BOB)
    else:
        assert outcome["discarded"] == [pending["job_id"]] and job.state == "DELETED"
        assert "print your document again" in str(outcome["message"]).lower()
        only_for(copier, job.id, owner=None)
        printed_and_only_for(copier, client.print_file(document), document, BOB)


def test_two_os_users_on_one_computer_link_their_own_installs(
        world: World, linking: Linking, copier: Copier, document: Path, tmp_path: Path) -> None:
    alice = PrintClient(profile(tmp_path, "alice"))
    alice.link(linking.invite_classic(ALICE.email).url, machine="shared-pc", os_user="alice")
    bob = PrintClient(profile(tmp_path, "bob"), portal=linking.base_url)
    # Bob's profile has no token: Alice's link does not print for him.
    with pytest.raises(ClientStateError, match="not linked"):
        bob.print_file(document)
    bob.link(linking.invite_classic(BOB.email).url, machine="shared-pc", os_user="bob")
    a = alice.print_file(document, name="alice.pdf")
    b = bob.print_file(document, name="bob.pdf")
    assert a["owner"]["email"] == ALICE.email and b["owner"]["email"] == BOB.email
    only_for(copier, str(a["job_id"]), ALICE)
    only_for(copier, str(b["job_id"]), BOB)
    owners = {i.os_user: u.email if u else None for i, u in linking.installs("org_demo")}
    assert owners == {"alice": ALICE.email, "bob": BOB.email}


def test_chromebook_extension_links_with_the_invitation(world: World, linking: Linking,
                                                        copier: Copier, document: Path,
                                                        tmp_path: Path) -> None:
    client = PrintClient(profile(tmp_path, "chen-chromebook"))
    linked = client.link(linking.invite_classic(CHEN.email).url, kind="chromebook")
    assert linked["client"]["kind"] == "chromebook"
    assert linked["client"]["machine"].startswith("ext-")
    answer = client.print_file(document)
    job = world.store.jobs([str(answer["job_id"])])[0]
    assert job.source == "Chromebook"
    printed_and_only_for(copier, answer, document, CHEN)


# ------------------------------------------------------------------ mobile


def test_mobile_app_with_email_and_password_gets_a_user_token(world: World, linking: Linking,
                                                              copier: Copier, document: Path,
                                                              tmp_path: Path) -> None:
    set_password(world.store, ALICE.email, PASSWORD)
    phone = PrintClient(profile(tmp_path, "alice-phone"), portal=linking.base_url)
    with pytest.raises(RemoteError) as info:
        phone.link_mobile(email=ALICE.email, password="not her password")
    assert info.value.code == "invalid_password"
    linked = phone.link_mobile(email=ALICE.email, password=PASSWORD)
    assert linked["user_token"].startswith("mfu_") and linked["client"]["kind"] == "mobile"
    printed_and_only_for(copier, phone.print_file(document), document, ALICE)


@pytest.mark.parametrize("where", ["portal", "classic_email"])
def test_mobile_app_with_a_linking_code(world: World, linking: Linking, copier: Copier,
                                        document: Path, tmp_path: Path, where: str) -> None:
    if where == "portal":
        set_password(world.store, BOB.email, PASSWORD)
        browser = PortalBrowser(profile(tmp_path, "bob"), portal=linking.base_url)
        browser.sign_in(BOB.email, PASSWORD)
        code = browser.linking_code()["linking_code"]
    else:
        body = linking.invite_classic(BOB.email).body
        code = body.split("linking code:\n", 1)[1].split()[0]
    phone = PrintClient(profile(tmp_path, "bob-phone"), portal=linking.base_url)
    assert phone.link_mobile(linking_code=code)["user"]["email"] == BOB.email
    printed_and_only_for(copier, phone.print_file(document), document, BOB)
    other = PrintClient(profile(tmp_path, "thief-phone"), portal=linking.base_url)
    with pytest.raises(RemoteError) as info:
        other.link_mobile(linking_code=code)
    assert info.value.code == "invalid_code"


# ------------------------------------------------------------------ the command line


def mfd(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MFD_USER_PASSWORD": PASSWORD}
    return subprocess.run([sys.executable, "-m", "mfdkit", *args], capture_output=True,
                          text=True, timeout=60, env=env, check=False)


def test_mfd_client_links_prints_and_reports_status(world: World, linking: Linking,
                                                    portal: PortalServer, copier: Copier,
                                                    document: Path, tmp_path: Path) -> None:
    store = world.store_url
    bulk = mfd("admin", "--store", store, "bulk-installer")
    assert bulk.returncode == 0, bulk.stderr
    token = bulk.stdout.split("\n")[1].strip()
    home = str(profile(tmp_path, "chen"))
    out = mfd("client", "--state", home, "--portal", portal.url, "link", "--anonymous", token,
              "--machine", "kiosk-1", "--os-user", "chen")
    assert out.returncode == 0, out.stderr
    assert "anonymously" in out.stdout
    out = mfd("client", "--state", home, "print", str(document), "--pages", "2")
    assert out.returncode == 0, out.stderr
    url = next(w for w in out.stdout.split() if "/portal/aop#request=" in w)
    set_password(world.store, CHEN.email, PASSWORD)
    assert mfd("client", "--state", home, "portal", "signin", "--email", CHEN.email
               ).returncode == 0
    out = mfd("client", "--state", home, "portal", "confirm", url)
    assert out.returncode == 0 and "print your document again" in out.stdout.lower(), out.stderr
    out = mfd("client", "--state", home, "print", str(document), "--pages", "2")
    assert out.returncode == 0 and f"held for {CHEN.email}" in out.stdout, out.stderr
    job_id = out.stdout.split()[1]
    only_for(copier, job_id, CHEN)
    status = mfd("client", "--state", home, "status")
    assert f"linked to: {CHEN.name} <{CHEN.email}> (aop)" in status.stdout
    assert "held jobs: 4" in status.stdout  # the demo's three and this one
    clients = mfd("admin", "--store", store, "clients").stdout
    assert "kiosk-1\tchen\tlinked chen@example.org\taop" in clients
    for name in ("client.json", "portal.json"):
        assert stat.S_IMODE((Path(home) / name).stat().st_mode) == 0o600
    audit = mfd("admin", "--store", store, "audit", "--limit", "200").stdout
    assert "client.link" in audit and token not in audit and url.split("=")[-1] not in audit
    again = mfd("client", "--state", home, "link", "--anonymous", token)
    assert again.returncode == 1 and "--relink" in again.stderr


def test_mfd_cloud_serves_the_portal_next_to_its_workers(world: World, tmp_path: Path) -> None:
    addr = world.broker.address("cloud-1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mfdkit", "cloud", "--broker", f"mqtt://{addr.host}:{addr.port}",
         "--username", addr.username, "--store", world.store_url,
         "--http", "127.0.0.1:0", "--public-url", "https://print.acme.test/"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "MFD_CLOUD_PASSWORD": addr.password})
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "User Portal and client API on http://127.0.0.1:" in line, line
        url = line.split(" on ", 1)[1].split()[0]
        from client.print_client import PortalApi

        assert PortalApi(url).call("GET", "/api/v1/health")["ok"] is True
        # The public URL went into the store, for the links `mfd admin` prints.
        assert Linking(world.store).base_url == "https://print.acme.test"
        proc.terminate()
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    bad = mfd("cloud", "--broker", "mqtt://127.0.0.1:1", "--store",
              f"sqlite:///{tmp_path}/unused.db", "--password", "x", "--http", "nowhere")
    assert bad.returncode == 1 and "--http wants HOST:PORT" in bad.stderr

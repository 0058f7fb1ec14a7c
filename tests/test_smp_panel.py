"""The emulated panel over SMP on UDP: ``mfd flash --port udp:...`` updates its app bundle, and
the panel itself decides whether the update stays (issue 11).

Real parts: smpclient's UDP transport on the technician's side (through the real ``mfd flash``
command), our SMP server on a UDP socket, the emulated MCUboot and its flash file, the boot
counter in its own flash file, and for the good bundle the real device app
(``device_app.runner.Device``) against the private Mosquitto, whose health check is its MQTT
link being up.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from device_app.config import parse_config
from firmware_stubs.mcuboot import Bootloader, Flash, factory_flash
from firmware_stubs.mfd_controller import register_emulator
from firmware_stubs.smp.panel_device import (
    CRASH_MARK,
    OFFLINE_MARK,
    TRIAL,
    BootCounter,
    Last,
    PanelDevice,
    Step,
    decide,
    device_app_starter,
    marked_app,
)
from firmware_stubs.smp.server import DeviceIdentity
from mfdkit.cli import main
from provisioning import image as img
from provisioning import keys as keymod
from provisioning.flash import FlashOptions, flash, load_image
from provisioning.smp_device import DeviceError, parse_udp_port
from tests.conftest import Broker

MODEL = "panel-mfd"
DEVICE = "copier-2"


@dataclass(frozen=True)
class Bundles:
    key: object
    pub: Path
    data: dict[str, bytes]
    paths: dict[str, Path]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    d = tmp_path_factory.mktemp("bundles")
    key, pub = keymod.write_new(d / "panel.key")
    rng = random.Random(5)

    def bundle(version: str, head: bytes = b"mfd-app bundle\n") -> bytes:
        return img.build(head + rng.randbytes(30_000), version=version, model=MODEL,
                         security_counter=1, key=key)

    data = {"v1": bundle("1.0.0"), "v2": bundle("1.1.0"),
            "crash": bundle("1.2.0", CRASH_MARK), "offline": bundle("1.3.0", OFFLINE_MARK)}
    paths = {}
    for name, blob in data.items():
        paths[name] = d / f"{name}.img"
        paths[name].write_bytes(blob)
    return Bundles(key, pub, data, paths)


@pytest.fixture
def panels(tmp_path: Path, broker: Broker, bundles: Bundles) -> Iterator[_Panels]:
    made = _Panels(tmp_path, broker, bundles)
    yield made
    made.close()


class _Panels:
    def __init__(self, tmp_path: Path, broker: Broker, bundles: Bundles) -> None:
        self.tmp_path, self.broker, self.bundles = tmp_path, broker, bundles
        self.devices: list[PanelDevice] = []
        register_emulator()
        addr = broker.address(DEVICE)
        cfg = parse_config({"device": {"id": DEVICE},
                            "broker": {"url": f"mqtt://{addr.host}:{addr.port}"},
                            "engine": {"kind": "emulator"}})
        self.start_app = marked_app(device_app_starter(cfg, addr.password or ""))

    def new(self, *, factory: str | None = "v1", cut_at: int | None = None,
            **kw: object) -> PanelDevice:
        """A panel on a free UDP port; ``factory=None`` boots what the flash files hold."""
        flash_path = self.tmp_path / "flash.bin"
        counter_path = self.tmp_path / "bootcount.bin"
        if factory is not None:
            flash = factory_flash(flash_path, self.bundles.data[factory])
            Flash.create(counter_path, flash.sector_size).close()
        else:
            flash = Flash(flash_path)
        der = keymod.public_der(self.bundles.key)  # type: ignore[arg-type]
        boot = Bootloader(flash, model=MODEL, trusted_keys=[der])
        identity = DeviceIdentity(MODEL, (keymod.key_id(self.bundles.key),),  # type: ignore[arg-type]
                                  (der,), name="mfd-panel", firmware="mfdkit-panel")
        # Room for a loaded machine: a healthy start ends its wait at once, so only the
        # offline bundle pays the full timeouts.
        opts: dict[str, object] = {"attempts": 2, "health_timeout_s": 3.0,
                                   "trial_deadline_s": 10.0, **kw}
        panel = PanelDevice(boot, identity, self.start_app, Flash(counter_path, cut_at=cut_at),
                            port=0, **opts)  # type: ignore[arg-type]
        self.devices.append(panel)
        return panel

    def off(self, panel: PanelDevice) -> None:
        """Power off: the panel stops, its flash files are closed (the next one reopens them)."""
        panel.close()
        panel.bootloader.flash.close()
        panel.counter.flash.close()
        self.devices.remove(panel)

    def close(self) -> None:
        for panel in list(self.devices):
            self.off(panel)


def mfd_flash(bundles: Bundles, name: str, address: str, capsys) -> dict[str, object]:
    code = main(["flash", str(bundles.paths[name]), "--port", address, "--key",
                 str(bundles.pub), "--timeout", "1", "--retries", "3", "--boot-timeout", "20",
                 "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == (0 if out["ok"] else 1)
    [device] = out["devices"]
    return device  # type: ignore[no-any-return]


def healthy_soon(panel: PanelDevice, timeout_s: float = 10.0) -> bool:
    """Whether the panel's app passes its health check within ``timeout_s`` (the app of a
    confirmed bundle starts at boot and connects in the background)."""
    deadline = time.monotonic() + timeout_s
    while not panel.app_healthy():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def running(panel: PanelDevice) -> tuple[str, bool] | None:
    slot = panel.bootloader.running()
    return (slot.version, slot.confirmed) if slot is not None else None


@pytest.mark.integration
def test_a_good_bundle_test_boots_connects_and_the_panel_confirms_itself(panels, bundles,
                                                                         capsys) -> None:
    panel = panels.new()
    assert panel.serving.wait(10) and running(panel) == ("1.0.0", True)
    assert healthy_soon(panel)  # the factory app is up on the broker

    res = mfd_flash(bundles, "v2", panel.address, capsys)

    assert (res["outcome"], res["from_version"], res["to_version"]) == \
        ("updated", "1.0.0", "1.1.0")
    assert running(panel) == ("1.1.0", True)
    assert "confirmed 1.1.0 after 1 start(s)" in panel.events
    # The tool's confirm came after the panel had confirmed itself: it decided nothing.
    assert panel.tool_confirms and all(panel.tool_confirms)
    assert panel.app_healthy()  # the new app runs, connected
    assert panel.counter.read() is None  # the trial is over
    # A reset now keeps the new bundle: it is confirmed for good.
    panels.off(panel)
    again = panels.new(factory=None)
    assert again.serving.wait(10) and running(again) == ("1.1.0", True)


@pytest.mark.integration
def test_messages_fit_the_buffer_the_panel_reports(panels, bundles, capsys) -> None:
    """A panel with a Zephyr-sized network buffer (384 bytes) drops any longer datagram: the
    update goes through only if every message the tool sends fits it."""
    panel = panels.new(buf_size=384)
    assert panel.serving.wait(10)
    res = mfd_flash(bundles, "v2", panel.address, capsys)
    assert res["outcome"] == "updated", res["message"]
    assert res["mtu"] == 384 and panel.oversize == 0
    assert running(panel) == ("1.1.0", True)


@pytest.mark.integration
@pytest.mark.parametrize("bad, why", [("crash", "crashed at start"),
                                      ("offline", "not healthy in time")])
def test_a_bad_bundle_is_rolled_back_by_the_panel_itself(panels, bundles, capsys, bad: str,
                                                         why: str) -> None:
    panel = panels.new()
    assert panel.serving.wait(10)
    version = img.inspect(bundles.data[bad]).version

    res = mfd_flash(bundles, bad, panel.address, capsys)

    assert (res["outcome"], res["code"]) == ("rolled_back", "rolled_back")
    assert running(panel) == ("1.0.0", True)
    failed = [e for e in panel.events if e.startswith("attempt ")]
    assert len(failed) == 2 and all(why in e for e in failed), panel.events
    assert f"rolled_back {version} -> 1.0.0" in panel.events
    assert not panel.tool_confirms  # nobody confirmed anything
    assert healthy_soon(panel)  # the previous app is back on the broker
    assert panel.counter.read() is None
    # Within the deadline: two starts of at most 3 s each, inside the trial's 10 s (plus the
    # upload and the tool's polling).
    assert float(str(res["seconds"])) < 10 + 5


@pytest.mark.integration
@pytest.mark.parametrize("bundle, ops", [("v2", 3), ("crash", 5)])
def test_a_power_cut_in_the_boot_counter_leaves_a_bootable_consistent_panel(
        panels, bundles, bundle: str, ops: int) -> None:
    """Cut the power at each flash operation of the boot counter during the trial (its
    record, its commit, its clearing), then power on again: the panel boots a confirmed
    bundle with its app up, holds no trial record, and takes the same update again."""
    new_hash = img.inspect(bundles.data[bundle]).hash
    data = bundles.data[bundle]
    for cut in range(1, ops + 1):
        panel = panels.new()
        assert panel.serving.wait(10)
        # What `mfd flash` does before its reset, through the bootloader directly.
        assert panel.bootloader.upload(0, data, total=len(data)) == len(data)
        panel.bootloader.test(new_hash)
        panels.off(panel)

        cut_panel = panels.new(factory=None, cut_at=cut)
        assert cut_panel.wait_for("power_cut", 15), (cut, cut_panel.events)
        panels.off(cut_panel)

        back = panels.new(factory=None)
        assert back.serving.wait(15), (cut, back.events)
        state = running(back)
        assert state is not None and state[1], (cut, back.events)
        assert back.counter.read() is None, (cut, back.events)
        assert healthy_soon(back), (cut, back.events)
        if bundle == "v2":
            # Cut before the panel confirmed: the reset reverted; after: the new one stays.
            assert state[0] == ("1.0.0" if cut < ops else "1.1.0"), (cut, back.events)
        else:
            assert state[0] == "1.0.0", (cut, back.events)
        if cut == 1 and bundle == "v2":
            # Consistent: the same update, asked again, goes through.
            [res] = flash([back.address], load_image(bundles.paths["v2"]),
                          FlashOptions(timeout_s=1.0, retries=3, boot_timeout_s=20))
            assert res.outcome == "updated", res.message
            assert running(back) == ("1.1.0", True)
        panels.off(back)


def test_the_boot_counter_keeps_the_last_committed_count_through_torn_writes(
        tmp_path: Path) -> None:
    """Every cut point of two records and a clear: what is read after the cut is the count
    before or after the interrupted operation, never anything else."""
    h = bytes(range(32))
    script = [("record", 1), ("record", 2), ("clear", 0), ("record", 1)]
    expected_after = [1, 2, None, 1]
    path = tmp_path / "c.bin"
    total_ops = 2 + 2 + 1 + 2
    for cut in range(1, total_ops + 1):
        Flash.create(path, 4096).close()
        before: int | None = None
        with Flash(path, cut_at=cut) as f:
            counter = BootCounter(f)
            for (op, n), after in zip(script, expected_after, strict=True):
                try:
                    counter.record(h, n) if op == "record" else counter.clear()
                except Exception as exc:  # the PowerCut
                    assert type(exc).__name__ == "PowerCut"
                    allowed = {before, after}
                    break
                before = after
            else:
                allowed = {before}
        with Flash(path) as f:
            got = BootCounter(f).read()
            assert (got.attempts if got else None) in allowed, (cut, got)
            BootCounter(f).record(h, 7)  # and it takes the next record
            got = BootCounter(f).read()
            assert got is not None and got.attempts == 7 and got.hash8 == h[:8]


@pytest.mark.integration
def test_mfd_emulate_panel_runs_the_device_app_on_the_broker(tmp_path, broker, bundles,
                                                             capsys) -> None:
    """The command a technician rehearses with: its own process, the real device app on the
    broker given, updated by `mfd flash` and rolled back by itself."""
    addr = broker.address(DEVICE)
    url = f"mqtt://{addr.username}:{addr.password}@{addr.host}:{addr.port}"
    proc = subprocess.Popen([sys.executable, "-m", "mfdkit", "emulate", "panel", "--port", "0",
                             "--flash", str(tmp_path / "panel.bin"), "--image",
                             str(bundles.paths["v1"]), "--trust", str(bundles.pub),
                             "--broker", url, "--attempts", "1", "--health-timeout", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        said: dict[str, str] = {}
        while "flash" not in said:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            name, _, value = line.partition(": ")
            said[name] = value.strip()
        assert said["address"].startswith("udp:127.0.0.1:")
        assert said["model"] == MODEL and said["running"] == "1.0.0"
        assert said["trusts"] == keymod.key_id(bundles.key)  # type: ignore[arg-type]

        assert mfd_flash(bundles, "v2", said["address"], capsys)["outcome"] == "updated"
        assert mfd_flash(bundles, "offline", said["address"], capsys)["outcome"] == \
            "rolled_back"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "confirmed 1.1.0 after 1 start(s)" in err
    assert "rolled_back 1.3.0 -> 1.1.0" in err
    assert "stopped (" in err and "running 1.1.0)" in err
    assert addr.password not in err  # the broker password is never printed


def test_udp_port_strings() -> None:
    assert parse_udp_port("udp:192.0.2.7:1337") == ("192.0.2.7", 1337)
    assert parse_udp_port("udp:[fd00::7]:1337") == ("fd00::7", 1337)
    assert parse_udp_port("udp:panel-3.local:9000") == ("panel-3.local", 9000)
    assert parse_udp_port("/dev/ttyACM0") is None
    for bad in ("udp:", "udp:192.0.2.7", "udp::1337", "udp:host:0", "udp:host:65536",
                "udp:host:x"):
        with pytest.raises(DeviceError) as err:
            parse_udp_port(bad)
        assert "udp:HOST:PORT" in err.value.message, bad


def test_the_trial_table_confirms_only_after_a_healthy_start() -> None:
    assert len(TRIAL) == 2 * len(Last) * 2 * 2  # every case decided
    for (on_trial, last, left, time_left), step in TRIAL.items():
        if not on_trial:
            assert step is Step.RUN
        elif last is Last.HEALTHY:
            assert step is Step.CONFIRM  # even on the last start, at the deadline
        else:
            assert step is (Step.START if left and time_left else Step.ROLL_BACK)
    # Through decide(): the third start of three has failed -> roll back, never confirm.
    assert decide(on_trial=True, last=Last.FAILED, starts=3, attempts=3,
                  time_left=5.0) is Step.ROLL_BACK
    assert decide(on_trial=True, last=Last.FAILED, starts=1, attempts=3,
                  time_left=0.0) is Step.ROLL_BACK
    assert decide(on_trial=True, last=Last.NONE, starts=0, attempts=3,
                  time_left=1.0) is Step.START

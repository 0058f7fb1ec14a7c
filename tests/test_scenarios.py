"""The scenario library (scenarios/*.toml) runs green on the real stacks, deterministically; a
wrong expectation fails naming its step; a bad file is a ConfigError naming where.

Every file in scenarios/ runs, each in its own world (its own Mosquitto, cloud and devices: a
fault scenario stops the broker or the cloud, so sharing one would couple the files). About
30 s on a 2-core machine; the determinism test runs one scenario twice more.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest

from mfdkit.cli.sim import run_scenario_file
from protocol.errors import ConfigError
from simulator.scenarios.driver import run_scenario
from simulator.scenarios.dump import dump_scenario
from simulator.scenarios.model import Expect, Scenario, Tap
from simulator.scenarios.parse import parse_scenario

LIBRARY = Path(__file__).resolve().parent.parent / "scenarios"
FILES = sorted(LIBRARY.glob("*.toml"))


def _load(path: Path) -> Scenario:
    return parse_scenario(path.read_text(encoding="utf-8"), path.name)


def test_the_library_covers_every_flow_and_fault() -> None:
    names = {f.stem for f in FILES}
    assert {"badge-login-release", "code-login", "unknown-badge-association", "delete-jobs",
            "release-options", "logout-and-next-user", "idle-timeout", "card-and-pin",
            "printer-jam", "out-of-paper", "reader-unplug", "broker-down", "cloud-restart",
            "link-latency", "clock-jump", "two-copiers", "jam-mid-job", "password-login",
            "jobs-from-linked-clients", "two-readers"} <= names
    faults = {s.kind.value for f in FILES for s in _load(f).steps if hasattr(s, "kind")}
    assert faults >= {"jam", "no_paper", "clear", "unplug", "replug", "broker_down",
                      "broker_up", "cloud_kill", "cloud_restart", "latency", "clock_jump"}


@pytest.mark.integration
@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_every_scenario_in_the_library_passes(path: Path) -> None:
    outcome = run_scenario(_load(path))
    assert outcome.ok, "\n".join([outcome.failure or "", *outcome.transcript[-15:]])
    assert outcome.transcript[-1].endswith("scenario passed")


@pytest.mark.integration
def test_the_same_seed_gives_the_same_transcript() -> None:
    # Fresh unknown badges come from the seed; the screens come from the events' order.
    scenario = _load(LIBRARY / "unknown-badge-association.toml")
    first = run_scenario(scenario, seed=7).transcript
    second = run_scenario(scenario, seed=7).transcript
    assert first == second
    assert first[0].startswith("[t=     0.0s] scenario")
    # Simulated times only, and never a card number or a typed code.
    text = "\n".join(first)
    assert "265093" not in text and "Chen Wei" in text


@pytest.mark.integration
def test_simulated_time_moves_only_when_the_scenario_says() -> None:
    outcome = run_scenario(_load(LIBRARY / "idle-timeout.toml"))
    assert outcome.ok, outcome.failure
    # The session ends at 45 s of simulated time (the policy's idle timeout), not before.
    ended = [line for line in outcome.transcript if "copier-1: idle / idle" in line]
    assert ended[-1].startswith("[t=    45.0s]")


@pytest.mark.integration
def test_a_wrong_expectation_fails_naming_its_step_and_what_was_seen(tmp_path: Path) -> None:
    text = (LIBRARY / "badge-login-release.toml").read_text(encoding="utf-8")
    wrong = text.replace('printed = ["Boarding pass"]', 'printed = ["Quarterly report.pdf"]')
    assert wrong != text
    path = tmp_path / "wrong.toml"
    path.write_text(wrong, encoding="utf-8")
    outcome = run_scenario(_load(path))
    assert outcome.failure is not None
    assert outcome.failure.startswith("step 6 (line ")
    assert "expected printed ['Quarterly report.pdf'], saw ['Boarding pass']" in outcome.failure
    assert outcome.transcript[-1].endswith(outcome.failure)
    # The command exits 1 and says the same.
    out = io.StringIO()
    assert run_scenario_file(str(path), out=out) == 1
    assert "FAILED step 6" in out.getvalue()


# ---------------------------------------------------------------- the file format (pure)


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_a_scenario_written_back_reads_the_same(path: Path) -> None:
    scenario = _load(path)
    again = parse_scenario(dump_scenario(scenario), path.name)
    assert dataclasses.replace(again, lines=()) == dataclasses.replace(scenario, lines=())


BASE = '[[job]]\nowner = "alice"\nname = "A"\n\n'


@pytest.mark.parametrize(("text", "message"), [
    (BASE + '[[step]]\ntap = "alice"\n\n[[step]]\ntpa = "bob"\n',
     "step 2 (line 8): a step has exactly one of"),
    (BASE + '[[step]]\ntap = "alice"\nreder = "x"\n', "step 1 (tap) (line 5): unknown key 'reder'"),
    (BASE + '[[step]]\nwait = "jobz"\n', "step 1 (wait) (line 5): wait 'jobz'"),
    (BASE + '[[step]]\nexpect = { screen = "jobs", jbos = [] }\n',
     "unknown expectation 'jbos'"),
    (BASE + '[[step]]\nexpect = { cloud = { "B" = "PRINTED" } }\n',
     "expect.cloud: job 'B' is not among the [[job]]s"),
    (BASE + '[[step]]\nfault = "unplug"\n',
     "only an em4100 reader (on a serial line) can be unplugged"),
    (BASE + '[[step]]\nfault = "clock_jump"\n', "clock_jump needs seconds"),
    (BASE + '[[step]]\nfault = "latency"\nafter_pages = 1\n',
     "after_pages means nothing for fault 'latency'"),
    (BASE + '[[step]]\nfault = "jam"\nms = 5\n', "ms means nothing for fault 'jam'"),
    (BASE + '[[step]]\nrelease = "B"\n', "job 'B' is not among the scenario's [[job]]s"),
    (BASE + '[[step]]\npress = "selekt"\n', "press 'selekt' is not one of"),
    (BASE + '[[step]]\npress = "select"\n', "press 'select' needs job"),
    (BASE + '[[step]]\npress = "key"\n', "press 'key' needs key"),
    (BASE + '[[step]]\npress = "logout"\njob = "A"\n', "job means nothing for press 'logout'"),
    (BASE + '[[step]]\nadvance = -1\n', "advance is a number of seconds above 0"),
    (BASE + '[[step]]\ntap = "alice"\ndevice = "copier-9"\n', "device 'copier-9' is not in"),
    ('[[device]]\nid = "c1"\npolicy = { idel_timeout = 5 }\n[[step]]\nadvance = 1\n',
     "[[device]] 1: unknown policy key 'idel_timeout'"),
    ('[[device]]\nid = "c1"\npolicy = { idle_timeout = "soon" }\n[[step]]\nadvance = 1\n',
     "'idle_timeout' must be float"),
    ('[[job]]\nowner = "zed"\nname = "A"\n[[step]]\nadvance = 1\n',
     "[[job]] 1: owner 'zed' is no user"),
    ('[scenario]\nname = "x"\n', "no [[step]]"),
    ('[[user]]\nkey = "dana"\ncode = "123456"\n[[step]]\ntap = "dana"\n',
     "step 1 (tap) (line 4): user 'dana' has no badge to tap"),
    ('[[step]\ntap = "alice"\n', "not valid TOML"),
    ('[[step]]\ntap = "alice"\n[[step]]\n', "step 2 (line 3): a step has exactly one of"),
])
def test_a_bad_file_is_a_config_error_naming_where(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_scenario(text, "bad.toml")
    assert message in info.value.message
    assert info.value.message.startswith("bad.toml: ")


def test_steps_default_to_the_first_device_and_its_first_reader() -> None:
    sc = parse_scenario('[[device]]\nid = "c1"\nreaders = [{ name = "side" }]\n'
                        '[[device]]\nid = "c2"\n[[step]]\ntap = "bob"\n'
                        '[[step]]\nexpect = { device = "c2", state = "idle" }\n', "x")
    assert sc.steps[0] == Tap("bob", "c1", "side")
    assert isinstance(sc.steps[1], Expect) and sc.steps[1].device == "c2"
    assert sc.lines == (6, 8)  # the lines of the two [[step]] headers

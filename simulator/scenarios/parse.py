"""A scenario file (TOML) into a :class:`~simulator.scenarios.model.Scenario`, or a ConfigError.

Every mistake is reported as a ConfigError that names where it is: the file's line for bad
TOML, else the step (its number and its line) or the section and the key. Unknown keys are
refused, so a typo never silently turns into a step that checks nothing. Pure: text in, data out.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import fields, replace
from typing import Any

from protocol.errors import ConfigError
from protocol.managed import POLICY_TYPES, Policy, expect
from simulator.scenarios.model import (
    Advance,
    DeviceSpec,
    Expect,
    Fault,
    FaultKind,
    JobSpec,
    Press,
    ReaderKind,
    ReaderSpec,
    Release,
    Scenario,
    Step,
    Tap,
    Type,
    UserSpec,
    Wait,
)

#: The demo org's people (cloud/demo.py), under the keys steps call them by.
DEMO_KEYS = ("alice", "bob", "chen")

#: What ``press`` may name: the panel's actions (device_app.view.Action), less scrolling (the
#: window's own business) and ENTER (a key: use ``type``).
PRESS_ACTIONS = ("select", "select_all", "release", "release_all", "logout", "dismiss", "retry",
                 "load_more", "delete", "confirm", "cancel", "options", "toggle_grayscale",
                 "toggle_duplex", "copies_up", "copies_down", "enter_code", "enter_password",
                 "switch_entry", "focus", "key")
STATES = ("idle", "entry", "identifying", "loading", "jobs", "options", "confirm_delete",
          "deleting", "releasing", "notice", "offline")
#: Screens a wait may name besides the states (the others share their state's name).
WAIT_SCREENS = ("busy", "confirm")
SCREENS = ("idle", "busy", "jobs", "releasing", "notice", "offline", "entry", "confirm",
           "options")
ENGINE_STATES = ("ready", "printing", "jam", "no_paper", "door_open", "offline")
JOB_STATES = ("PENDING_AUTH", "HELD", "RELEASING", "PRINTED", "DELETED", "EXPIRED")
#: The steps' action keys: each step has exactly one.
ACTIONS = ("tap", "type", "press", "release", "wait", "advance", "expect", "fault")

_STEP_KEYS: dict[str, set[str]] = {
    "tap": {"device", "reader"},
    "type": {"device", "enter"},
    "press": {"device", "job", "field", "key"},
    "release": {"device"},
    "wait": {"device", "timeout"},
    "advance": set(),
    "expect": {"device"},
    "fault": {"device", "reader", "ms", "seconds", "after_pages"},
}
_EXPECT_KEYS = {"device", "screen", "state", "title", "message", "user", "jobs", "job_count",
                "cloud", "printed", "engine"}
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def parse_scenario(text: str, name: str = "scenario") -> Scenario:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: not valid TOML: {exc}") from None
    return _Parser(name, _step_lines(text)).scenario(data)


def _step_lines(text: str) -> list[int]:
    return [n for n, line in enumerate(text.splitlines(), 1)
            if re.match(r"\s*\[\[\s*step\s*\]\]", line)]


class _Parser:
    def __init__(self, name: str, step_lines: list[int]) -> None:
        self.name = name
        self.step_lines = step_lines
        self.devices: tuple[DeviceSpec, ...] = ()
        self.user_keys: set[str] = set()
        self.badgeless: set[str] = set()

    def fail(self, where: str, what: str) -> ConfigError:
        return ConfigError(f"{self.name}: {where}: {what}")

    # ------------------------------------------------------------ sections

    def scenario(self, data: dict[str, Any]) -> Scenario:
        _only(self, data, "the file", {"scenario", "device", "user", "job", "step", "world"})
        head = _table(self, data, "scenario")
        _only(self, head, "[scenario]", {"name", "description"})
        world = _table(self, data, "world")
        _only(self, world, "[world]", {"demo_users"})
        demo = world.get("demo_users", True)
        if not isinstance(demo, bool):
            raise self.fail("[world]", "demo_users must be true or false")
        self.devices = tuple(self.device(i, d)
                             for i, d in enumerate(_array(self, data, "device"), 1))
        if not self.devices:
            self.devices = (DeviceSpec("copier-1"),)
        ids = [d.id for d in self.devices]
        if len(set(ids)) != len(ids):
            raise self.fail("[[device]]", f"device ids repeat: {ids}")
        users = list(demo_users()) if demo else []
        for i, u in enumerate(_array(self, data, "user"), 1):
            user = self.user(i, u)
            users = [x for x in users if x.key != user.key] + [user]
        self.user_keys = {u.key for u in users}
        self.badgeless = {u.key for u in users if not u.badge}
        jobs = tuple(self.job(i, j) for i, j in enumerate(_array(self, data, "job"), 1))
        raw_steps = _array(self, data, "step")
        if not raw_steps:
            raise self.fail("the file", "no [[step]]: a scenario needs a timeline")
        job_names = {j.name for j in jobs}
        steps = tuple(self.step(i, s, job_names) for i, s in enumerate(raw_steps, 1))
        lines = tuple(self.step_lines) if len(self.step_lines) == len(steps) else ()
        return Scenario(name=str(head.get("name", self.name)), devices=self.devices,
                        users=tuple(users), jobs=jobs, steps=steps, lines=lines,
                        description=str(head.get("description", "")))

    def device(self, n: int, d: dict[str, Any]) -> DeviceSpec:
        where = f"[[device]] {n}"
        _only(self, d, where, {"id", "name", "readers", "page_time", "policy"})
        dev_id = _text(self, d, where, "id", required=True)
        if not _ID.fullmatch(dev_id):
            raise self.fail(where, f"id {dev_id!r} must be lower-case letters, digits and '-'")
        readers = []
        for k, r in enumerate(d.get("readers", [{}]), 1):
            rw = f"{where} reader {k}"
            if not isinstance(r, dict):
                raise self.fail(rw, "a reader is a table, e.g. { name = \"front\" }")
            _only(self, r, rw, {"name", "kind", "lockout"})
            kind = _text(self, r, rw, "kind") or "sim"
            if kind not in {k.value for k in ReaderKind}:
                raise self.fail(rw, f"kind {kind!r} is not one of "
                                f"{', '.join(k.value for k in ReaderKind)}")
            readers.append(ReaderSpec(_text(self, r, rw, "name") or "front", ReaderKind(kind),
                                      _number(self, r, rw, "lockout", 0.0)))
        if not readers:
            raise self.fail(where, "readers is empty: a device needs a reader")
        policy = Policy()
        raw_policy = d.get("policy", {})
        if not isinstance(raw_policy, dict):
            raise self.fail(where, "policy must be a table")
        for key, value in raw_policy.items():
            if key not in POLICY_TYPES:
                raise self.fail(where, f"unknown policy key {key!r} (known: "
                                f"{', '.join(sorted(POLICY_TYPES))})")
            try:
                policy = replace(policy, **{key: expect(value, POLICY_TYPES[key], key)})
            except ConfigError as exc:
                raise self.fail(where, exc.message) from None
        return DeviceSpec(dev_id, _text(self, d, where, "name"), tuple(readers),
                          _number(self, d, where, "page_time", 0.0), policy)

    def user(self, n: int, u: dict[str, Any]) -> UserSpec:
        where = f"[[user]] {n}"
        _only(self, u, where, {f.name for f in fields(UserSpec)})
        key = _text(self, u, where, "key", required=True)
        name = _text(self, u, where, "name") or key.title()
        badge = u.get("badge", "")
        if isinstance(badge, int) and not isinstance(badge, bool):
            badge = f"{badge:010d}"
        if not isinstance(badge, str) or (badge and not badge.isdigit()):
            raise self.fail(where, "badge must be the number the reader gives, e.g. \"0001234567\"")
        return UserSpec(key, name, _text(self, u, where, "email") or f"{key}@example.org", badge,
                        _text(self, u, where, "code"), _text(self, u, where, "password"),
                        _text(self, u, where, "language") or "en")

    def job(self, n: int, j: dict[str, Any]) -> JobSpec:
        where = f"[[job]] {n}"
        _only(self, j, where, {f.name for f in fields(JobSpec)})
        owner = _text(self, j, where, "owner", required=True)
        if owner not in self.user_keys:
            raise self.fail(where, f"owner {owner!r} is no user (users: "
                            f"{', '.join(sorted(self.user_keys))})")
        pages = _number(self, j, where, "pages", 1)
        copies = _number(self, j, where, "copies", 1)
        if pages < 1 or copies < 1 or pages != int(pages) or copies != int(copies):
            raise self.fail(where, "pages and copies are whole numbers from 1")
        return JobSpec(owner, _text(self, j, where, "name", required=True), int(pages),
                       _text(self, j, where, "client") or "WS-SIM",
                       _flag(self, j, where, "color"), _flag(self, j, where, "duplex"),
                       int(copies))

    # ------------------------------------------------------------ steps

    def step(self, n: int, s: dict[str, Any], job_names: set[str]) -> Step:
        line = f" (line {self.step_lines[n - 1]})" if n <= len(self.step_lines) else ""
        where = f"step {n}{line}"
        actions = [a for a in ACTIONS if a in s]
        if len(actions) != 1:
            raise self.fail(where, "a step has exactly one of " + ", ".join(ACTIONS)
                            + (f"; it has {', '.join(actions)}" if actions else ""))
        action = actions[0]
        where = f"step {n} ({action}){line}"
        _only(self, s, where, {action} | _STEP_KEYS[action])
        device = _text(self, s, where, "device") or self.devices[0].id
        spec = next((d for d in self.devices if d.id == device), None)
        if spec is None:
            raise self.fail(where, f"device {device!r} is not in the scenario "
                            f"({', '.join(d.id for d in self.devices)})")
        value = s[action]
        if action == "tap":
            badge = _value_text(self, where, action, value)
            if not (badge == "unknown" or badge in self.user_keys or badge.isdigit()
                    or (badge.startswith("unknown:") and len(badge) > 8)):
                raise self.fail(where, f"tap {badge!r}: name a user ("
                                f"{', '.join(sorted(self.user_keys))}), \"unknown\", "
                                "\"unknown:<label>\" or a number")
            if badge in self.badgeless:
                raise self.fail(where, f"user {badge!r} has no badge to tap")
            reader = _text(self, s, where, "reader") or spec.readers[0].name
            if reader not in {r.name for r in spec.readers}:
                raise self.fail(where, f"device {device} has no reader {reader!r}")
            return Tap(badge, device, reader)
        if action == "type":
            return Type(_value_text(self, where, action, value), _flag(self, s, where, "enter",
                                                                        True), device)
        if action == "press":
            act = _value_text(self, where, action, value)
            if act not in PRESS_ACTIONS:
                raise self.fail(where, f"press {act!r} is not one of {', '.join(PRESS_ACTIONS)}")
            # select names a job, focus a field, key a key; nothing else takes one.
            wants = {"select": "job", "focus": "field", "key": "key"}.get(act)
            for k in ("job", "field", "key"):
                if k in s and k != wants:
                    raise self.fail(where, f"{k} means nothing for press {act!r}")
            arg = _text(self, s, where, wants) if wants else ""
            if wants and not arg:
                raise self.fail(where, f"press {act!r} needs {wants} = \"...\"")
            if act == "select" and arg not in job_names:
                raise self.fail(where, f"job {arg!r} is not among the scenario's [[job]]s")
            return Press(act, device, arg)
        if action == "release":
            if value == "all":
                return Release((), device)
            names = (value,) if isinstance(value, str) else value
            if (not isinstance(names, list | tuple) or not names
                    or not all(isinstance(x, str) for x in names)):
                raise self.fail(where, "release is \"all\", a job name or a list of them")
            unknown = [x for x in names if x not in job_names]
            if unknown:
                raise self.fail(where, f"job {unknown[0]!r} is not among the scenario's [[job]]s")
            return Release(tuple(names), device)
        if action == "wait":
            state = _value_text(self, where, action, value)
            if state not in STATES + WAIT_SCREENS:
                raise self.fail(where, f"wait {state!r}: a state is one of "
                                f"{', '.join(STATES + WAIT_SCREENS)}")
            timeout = _number(self, s, where, "timeout", 0.0)
            if timeout < 0:
                raise self.fail(where, "timeout must not be negative")
            return Wait(state, timeout, device)
        if action == "advance":
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not math.isfinite(value) or value <= 0):
                raise self.fail(where, "advance is a number of seconds above 0")
            return Advance(float(value))
        if action == "fault":
            return self.fault(where, s, _value_text(self, where, action, value), spec)
        return self.expectation(where, value, device, job_names)

    def fault(self, where: str, s: dict[str, Any], kind: str, spec: DeviceSpec) -> Fault:
        if kind not in {k.value for k in FaultKind}:
            raise self.fail(where, f"fault {kind!r} is not one of "
                            f"{', '.join(k.value for k in FaultKind)}")
        fk = FaultKind(kind)
        # A key that means nothing for this fault is refused, not ignored.
        own = {FaultKind.UNPLUG: "reader", FaultKind.REPLUG: "reader", FaultKind.LATENCY: "ms",
               FaultKind.CLOCK_JUMP: "seconds", FaultKind.JAM: "after_pages",
               FaultKind.NO_PAPER: "after_pages", FaultKind.DOOR_OPEN: "after_pages"}
        for key in ("reader", "ms", "seconds", "after_pages"):
            if key in s and own.get(fk) != key:
                raise self.fail(where, f"{key} means nothing for fault {kind!r}")
        reader = _text(self, s, where, "reader") or spec.readers[0].name
        if fk in (FaultKind.UNPLUG, FaultKind.REPLUG):
            rs = next((r for r in spec.readers if r.name == reader), None)
            if rs is None:
                raise self.fail(where, f"device {spec.id} has no reader {reader!r}")
            if rs.kind is not ReaderKind.EM4100:
                raise self.fail(where, f"reader {reader!r} is kind {rs.kind.value}: only an "
                                "em4100 reader (on a serial line) can be unplugged")
        ms = _number(self, s, where, "ms", 0.0)
        seconds = _number(self, s, where, "seconds", 0.0)
        if fk is FaultKind.LATENCY and ms < 0:
            raise self.fail(where, "ms must not be negative")
        if fk is FaultKind.CLOCK_JUMP and seconds <= 0:
            raise self.fail(where, "clock_jump needs seconds = <how far forward, above 0>")
        after = s.get("after_pages")
        if after is not None:
            if isinstance(after, bool) or not isinstance(after, int) or after < 0:
                raise self.fail(where, "after_pages is a whole number from 0")
        return Fault(fk, spec.id, reader, ms, seconds, after)

    def expectation(self, where: str, value: Any, device: str, job_names: set[str]) -> Expect:
        if not isinstance(value, dict) or not value:
            raise self.fail(where, "expect is a table, e.g. expect = { screen = \"jobs\" }")
        unknown = sorted(set(value) - _EXPECT_KEYS)
        if unknown:
            raise self.fail(where, f"unknown expectation {unknown[0]!r} (known: "
                            f"{', '.join(sorted(_EXPECT_KEYS))})")
        def one_of(key: str, allowed: tuple[str, ...]) -> str | None:
            v = value.get(key)
            if v is None:
                return None
            if v not in allowed:
                raise self.fail(where, f"expect.{key} {v!r} is not one of {', '.join(allowed)}")
            return str(v)

        def names(key: str) -> tuple[str, ...] | None:
            v = value.get(key)
            if v is None:
                return None
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise self.fail(where, f"expect.{key} is a list of job names")
            return tuple(v)

        cloud = value.get("cloud", {})
        if not isinstance(cloud, dict):
            raise self.fail(where, "expect.cloud is a table: { \"<job name>\" = \"PRINTED\" }")
        for job, state in cloud.items():
            if job not in job_names:
                raise self.fail(where, f"expect.cloud: job {job!r} is not among the [[job]]s")
            if state not in JOB_STATES:
                raise self.fail(where, f"expect.cloud: {state!r} is not one of "
                                f"{', '.join(JOB_STATES)}")
        count = value.get("job_count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise self.fail(where, "expect.job_count is a whole number")
        texts = {}
        for key in ("title", "message", "user"):
            v = value.get(key)
            if v is not None and not isinstance(v, str):
                raise self.fail(where, f"expect.{key} is text")
            texts[key] = v
        if "device" in value:
            device = value["device"]
            if not isinstance(device, str) or device not in {d.id for d in self.devices}:
                raise self.fail(where, f"expect.device {device!r} is not in the scenario")
        return Expect(device, one_of("screen", SCREENS), one_of("state", STATES),
                      texts["title"], texts["message"], texts["user"], names("jobs"), count,
                      tuple(sorted(cloud.items())), names("printed"),
                      one_of("engine", ENGINE_STATES))


# ---------------------------------------------------------------- small readers


def demo_users() -> tuple[UserSpec, ...]:
    from cloud.demo import DEMO_USERS  # the demo org's data: no I/O

    return tuple(UserSpec(k, u.name, u.email, u.badge, u.access_code)
                 for k, u in zip(DEMO_KEYS, DEMO_USERS, strict=True))


def _only(p: _Parser, d: dict[str, Any], where: str, allowed: set[str]) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise p.fail(where, f"unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")


def _table(p: _Parser, d: dict[str, Any], key: str) -> dict[str, Any]:
    v = d.get(key, {})
    if not isinstance(v, dict):
        raise p.fail(f"[{key}]", "must be a table")
    return v


def _array(p: _Parser, d: dict[str, Any], key: str) -> list[dict[str, Any]]:
    v = d.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise p.fail(f"[[{key}]]", "must be an array of tables ([[" + key + "]])")
    return v


def _text(p: _Parser, d: dict[str, Any], where: str, key: str, *, required: bool = False) -> str:
    v = d.get(key, "")
    if not isinstance(v, str):
        raise p.fail(where, f"{key} must be text")
    if required and not v:
        raise p.fail(where, f"{key} is required")
    return v


def _value_text(p: _Parser, where: str, key: str, v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise p.fail(where, f"{key} must be non-empty text")
    return v


def _number(p: _Parser, d: dict[str, Any], where: str, key: str, default: float) -> float:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise p.fail(where, f"{key} must be a number")
    return float(v)


def _flag(p: _Parser, d: dict[str, Any], where: str, key: str, default: bool = False) -> bool:
    v = d.get(key, default)
    if not isinstance(v, bool):
        raise p.fail(where, f"{key} must be true or false")
    return v

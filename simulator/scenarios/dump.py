"""A :class:`Scenario` back into TOML, as ``parse_scenario`` reads it (the recorder writes its
files with this). Pure; ``parse_scenario(dump_scenario(s))`` gives ``s`` back (tested)."""

from __future__ import annotations

import json
import math
from dataclasses import fields

from protocol.managed import Policy
from simulator.scenarios.model import (
    Advance,
    DeviceSpec,
    Expect,
    Fault,
    FaultKind,
    Press,
    ReaderSpec,
    Release,
    Scenario,
    Step,
    Tap,
    Type,
    Wait,
)
from simulator.scenarios.parse import DEMO_KEYS


def _q(value: object) -> str:
    # JSON's strings, numbers and booleans are TOML's too, with two differences handled here:
    # a character past U+FFFF is written as itself (JSON's ASCII form would be a surrogate
    # pair, which TOML refuses), and DEL is escaped (JSON leaves it bare, TOML does not).
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def dump_scenario(sc: Scenario) -> str:
    out = ["[scenario]", f"name = {_q(sc.name)}"]
    if sc.description:
        out.append(f"description = {_q(sc.description)}")
    demo = tuple(u.key for u in sc.users[:len(DEMO_KEYS)]) == DEMO_KEYS
    if not demo:
        out += ["", "[world]", "demo_users = false"]
    for d in sc.devices:
        out += ["", *_device(d)]
    from simulator.scenarios.parse import demo_users  # the demo people, to leave them out

    builtin = set(demo_users()) if demo else set()
    for u in sc.users:
        if u in builtin:
            continue
        out += ["", "[[user]]", f"key = {_q(u.key)}", f"name = {_q(u.name)}",
                f"email = {_q(u.email)}"]
        out += [f"{k} = {_q(getattr(u, k))}" for k in ("badge", "code", "password", "language")
                if getattr(u, k)]
    for j in sc.jobs:
        out += ["", "[[job]]", f"owner = {_q(j.owner)}", f"name = {_q(j.name)}",
                f"pages = {j.pages}", f"client = {_q(j.client)}"]
        out += [f"{k} = {_q(getattr(j, k))}" for k in ("color", "duplex") if getattr(j, k)]
        if j.copies != 1:
            out.append(f"copies = {j.copies}")
    first = sc.devices[0].id
    for step in sc.steps:
        out += ["", "[[step]]", *_step(step, first, sc)]
    return "\n".join(out) + "\n"


def _device(d: DeviceSpec) -> list[str]:
    out = ["[[device]]", f"id = {_q(d.id)}"]
    if d.name:
        out.append(f"name = {_q(d.name)}")
    if d.readers != (ReaderSpec(),):
        out.append("readers = [" + ", ".join(
            "{ " + f"name = {_q(r.name)}, kind = {_q(r.kind.value)}, lockout = {_q(r.lockout)}"
            + " }" for r in d.readers) + "]")
    if d.page_time:
        out.append(f"page_time = {_q(d.page_time)}")
    changed = {f.name: getattr(d.policy, f.name) for f in fields(Policy)
               if getattr(d.policy, f.name) != getattr(Policy(), f.name)}
    if changed:
        out.append("policy = { " + ", ".join(f"{k} = {_q(v)}" for k, v in changed.items())
                   + " }")
    return out


def _step(step: Step, first: str, sc: Scenario) -> list[str]:
    dev = getattr(step, "device", first)
    out: list[str]
    if isinstance(step, Tap):
        out = [f"tap = {_q(step.badge)}"]
        if step.reader != sc.device(dev).readers[0].name:
            out.append(f"reader = {_q(step.reader)}")
    elif isinstance(step, Type):
        out = [f"type = {_q(step.text)}"] + ([] if step.enter else ["enter = false"])
    elif isinstance(step, Press):
        out = [f"press = {_q(step.action)}"]
        if step.job:
            key = {"select": "job", "focus": "field", "key": "key"}.get(step.action, "job")
            out.append(f"{key} = {_q(step.job)}")
    elif isinstance(step, Release):
        out = ["release = " + (_q(list(step.jobs)) if step.jobs else '"all"')]
    elif isinstance(step, Wait):
        out = [f"wait = {_q(step.state)}"] + ([f"timeout = {_q(step.timeout)}"]
                                              if step.timeout else [])
    elif isinstance(step, Advance):
        out = [f"advance = {_q(step.seconds)}"]
    elif isinstance(step, Fault):
        out = [f"fault = {_q(step.kind.value)}"]
        if step.kind in (FaultKind.UNPLUG, FaultKind.REPLUG):
            out.append(f"reader = {_q(step.reader)}")
        if step.kind is FaultKind.LATENCY:
            out.append(f"ms = {_q(step.ms)}")
        if step.kind is FaultKind.CLOCK_JUMP:
            out.append(f"seconds = {_q(step.seconds)}")
        if step.after_pages is not None:
            out.append(f"after_pages = {step.after_pages}")
    else:
        assert isinstance(step, Expect)
        terms: dict[str, object] = {}
        for k in ("screen", "state", "title", "message", "user", "job_count", "engine"):
            if getattr(step, k) is not None:
                terms[k] = getattr(step, k)
        for k in ("jobs", "printed"):
            if getattr(step, k) is not None:
                terms[k] = list(getattr(step, k))
        body = ", ".join(f"{k} = {_q(v)}" for k, v in terms.items())
        if step.cloud:
            body += (", " if body else "") + "cloud = { " + ", ".join(
                f"{_q(j)} = {_q(s)}" for j, s in step.cloud) + " }"
        out = ["expect = { " + body + " }"]
    if dev != first:
        out.append(f"device = {_q(dev)}")
    return out

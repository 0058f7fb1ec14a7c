"""The scenario file format as a codec: whatever a file holds, parsing gives a Scenario or a
ConfigError, never another exception (Hypothesis); and what it accepts, it writes back."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import ConfigError
from simulator.scenarios.dump import dump_scenario
from simulator.scenarios.parse import ACTIONS, PRESS_ACTIONS, STATES, parse_scenario


def _toml(value: Any) -> str:
    """A value as a TOML inline value (JSON's scalars are TOML's; tables inline)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return json.dumps(value, ensure_ascii=False)


_WORDS = st.sampled_from(["alice", "bob", "unknown", "unknown:x", "jobs", "idle", "A", "jam",
                          "latency", "copier-1", "copier-2", "front", "", "0012345678",
                          *PRESS_ACTIONS, *STATES])
# TOML has no lone surrogates (JSON would escape them): leave them out of generated text.
_CHARS = st.characters(exclude_categories=["Cs"])
_TEXT = st.text(alphabet=_CHARS, max_size=8)
_SCALARS = st.one_of(_WORDS, _TEXT, st.integers(-5, 100), st.booleans(),
                     st.floats(allow_nan=True, allow_infinity=True))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(_WORDS, st.sampled_from(["screen", "jobs", "cloud", "printed",
                                                       "user", "timeout", "device"])),
                    inner, max_size=3)), max_leaves=6)
_KEYS = st.one_of(st.sampled_from([*ACTIONS, "device", "reader", "timeout", "enter", "job",
                                   "field", "key", "ms", "seconds", "after_pages"]), _WORDS)
_TABLE = st.dictionaries(_KEYS, _VALUES, max_size=4)


# Steps near the valid ones, so that the checks past the first are reached too.
_STEP = st.one_of(
    st.fixed_dictionaries({"tap": st.sampled_from(["alice", "unknown", "unknown:x", "zed",
                                                   "0012345678"])},
                          optional={"device": _WORDS, "reader": _WORDS}),
    st.fixed_dictionaries({"type": _TEXT}, optional={"enter": st.booleans()}),
    st.fixed_dictionaries({"press": st.sampled_from(PRESS_ACTIONS)},
                          optional={"job": st.sampled_from(["A", "B"])}),
    st.fixed_dictionaries({"release": st.one_of(st.just("all"), st.just("A"),
                                                st.lists(st.sampled_from(["A", "B"])))}),
    st.fixed_dictionaries({"wait": st.sampled_from([*STATES, "x"])},
                          optional={"timeout": st.integers(-1, 5)}),
    st.fixed_dictionaries({"advance": st.floats(-1, 100)}),
    st.fixed_dictionaries({"fault": st.sampled_from(["jam", "clear", "latency", "unplug",
                                                     "clock_jump", "broker_down", "x"])},
                          optional={"ms": st.integers(-1, 500), "seconds": st.integers(-1, 9),
                                    "after_pages": st.integers(-1, 3)}),
    st.fixed_dictionaries({"expect": st.dictionaries(
        st.sampled_from(["screen", "state", "user", "jobs", "job_count", "engine", "title",
                         "message", "printed", "cloud", "device"]),
        st.one_of(_WORDS, st.lists(st.sampled_from(["A", "B"]), max_size=2),
                  st.integers(0, 3), st.just({"A": "PRINTED"})), min_size=1, max_size=3)}),
    _TABLE,
)
_JOB = st.just({"owner": "alice", "name": "A"})


def _file(sections: list[tuple[str, dict[str, Any]]]) -> str:
    out = []
    for header, table in sections:
        out.append(f"[[{header}]]")
        out += [f"{json.dumps(k)} = {_toml(v)}" for k, v in table.items()]
    return "\n".join(out) + "\n"


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.just("step"), _STEP),
                          st.tuples(st.just("job"), _JOB),
                          st.tuples(st.sampled_from(["job", "device", "user"]), _TABLE)),
                max_size=6))
def test_any_file_is_a_scenario_or_a_config_error(sections: list[tuple[str, dict[str, Any]]]
                                                  ) -> None:
    text = _file(sections)
    try:
        scenario = parse_scenario(text, "fuzz.toml")
    except ConfigError as exc:
        assert exc.message.startswith("fuzz.toml: ")
        return
    # Accepted: it writes back to the same scenario.
    again = parse_scenario(dump_scenario(scenario), "fuzz.toml")
    assert dataclasses.replace(again, lines=()) == dataclasses.replace(scenario, lines=())


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=_CHARS, max_size=200))
def test_any_text_is_a_scenario_or_a_config_error(text: str) -> None:
    try:
        parse_scenario(text, "fuzz.toml")
    except ConfigError:
        pass

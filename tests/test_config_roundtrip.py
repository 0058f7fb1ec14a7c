"""device.toml as `mfd device register` and the simulator write it: whatever policy a device
was given comes back from the file (it was dropped before, so a simulator world's page size
never reached its device)."""

from __future__ import annotations

import tomllib
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from device_app.config import parse_config, to_toml
from protocol.managed import Policy

seconds = st.floats(5, 3600, allow_nan=False).map(lambda s: round(s, 3))
policies = st.builds(
    Policy, card_pin=st.booleans(), allow_code=st.just(True), allow_password=st.booleans(),
    self_association=st.booleans(), new_badge_logs_in=st.booleans(),
    logout_after_release_all=st.booleans(), release_changes=st.booleans(),
    idle_timeout=seconds, entry_timeout=seconds, notice_timeout=seconds,
    page_size=st.integers(10, 500), language=st.sampled_from(["en", "de", "fr-CH", "ja"]))
BASE = parse_config({"device": {"id": "dev-1"}, "engine": {"kind": "emulator"}})


@given(policies)
def test_a_policy_written_to_device_toml_reads_back(policy: Policy) -> None:
    cfg = replace(BASE, policy=policy)
    assert parse_config(tomllib.loads(to_toml(cfg))).policy == policy


def test_a_default_policy_is_not_written_out() -> None:
    # Only what was chosen: a later change of a default reaches devices that never chose.
    assert "[policy]" not in to_toml(BASE)
    text = to_toml(replace(BASE, policy=Policy(page_size=205)))
    assert "[policy]\npage_size = 205\n" in text

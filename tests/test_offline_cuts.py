"""Offline mode's reconciliation when the link drops again as the cloud comes back (issue 13,
"tests cut the cloud at every step"): a job printed offline, then the WAN proxy cut at each
message of the way back (the report going up, the report's answer coming down, the new bundle,
the first sign-in after it) and restored. Whatever was lost, the job ends PRINTED in the cloud
once (one ``job.printed_offline`` audit row), the engine printed it once, and it is offered
nowhere again; the device's journal empties."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import World
from test_offline_device import ALICE, offline_copier

from device_app.session import State
from device_app.view import Action

pytestmark = pytest.mark.integration

#: Where the way back is cut: (direction, a needle the proxy waits for in that direction).
STEPS = {
    "report-up": ("up", b'"type":"offline.report"'),
    "report-answer": ("down", b'"type":"offline.report"'),
    "bundle-answer": ("down", b'"type":"offline.sync"'),
    "first-sign-in": ("up", b'"type":"identify"'),
}


@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_cut_at_any_step_of_the_way_back_prints_nothing_twice(world: World, tmp_path: Path,
                                                                step: str) -> None:
    with offline_copier(world, tmp_path) as c:
        c.badge()
        jobs = [j.job_id for j in c.app.view().jobs]
        c.logout()
        c.until(lambda a: set(jobs) <= c.link.desk.complete_jobs(), "her documents here")
        mine = jobs[0]

        c.net.cut()
        c.until(lambda a: a.machine.state is State.IDLE and a.machine.link_local,
                "offline mode")
        c.badge()
        c.app.tap(Action.SELECT, mine)
        c.app.tap(Action.RELEASE)
        c.until(lambda a: len(c.engine.printed) == 1 and a.machine.state is State.JOBS,
                "the job printed offline")
        c.logout()

        direction, needle = STEPS[step]
        c.net.cut_at(direction, needle)
        c.net.restore()
        if step == "first-sign-in":
            # Back online, Alice badges at once: that sign-in is what the cut takes.
            c.until(lambda a: not a.machine.link_local and a.link.connected, "online again")
            c.reader.present(ALICE.badge)
        c.until(lambda a: c.net.was_cut.is_set(), f"the proxy to see {needle!r} going {direction}",
                30)
        c.net.restore()

        c.until(lambda a: world.store.jobs([mine])[0].state == "PRINTED", "the cloud told", 40)
        c.until(lambda a: not c.store.events(), "the report answered", 40)
        c.until(lambda a: a.machine.state in (State.IDLE, State.JOBS, State.NOTICE)
                and not a.machine.link_local, "online again", 40)
        if c.app.machine.state is not State.IDLE:
            c.app.tap(Action.LOGOUT if c.app.machine.state is State.JOBS else Action.DISMISS)
            c.until(lambda a: a.machine.state is State.IDLE, "the idle panel")
        c.until(lambda a: c.link.desk.bundle is not None
                and mine not in {j.job_id for j in c.link.desk.bundle.jobs},
                "a bundle without it", 40)
        c.badge()
        assert mine not in {j.job_id for j in c.app.view().jobs}
        assert len(c.engine.printed) == 1
        audits = [a for a in world.store.audit_log(10_000) if a[2] == "job.printed_offline"]
        assert len(audits) == 1, audits
        c.until(lambda a: c.link.idle(), "nothing left on its way", 10)

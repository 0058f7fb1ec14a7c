"""The session machine's release: the cloud's answer, each job the engine prints or fails, and
the cloud's acknowledgement of each outcome.

A release ends when every job's outcome is confirmed (or refused: the job is back in the list);
then the list loads again, or the session ends (logged out meanwhile, or "release all" by policy).
Once the cloud has answered, the user may walk away ("Done, log me out"): the machine hands the
release to the printer (``Detach``), which prints on and reports each outcome from its journal,
and logs out; the engine's outcomes then find no release here and are left to the printer.
"""

from __future__ import annotations

from dataclasses import replace

from device_app.session.base import MachineBase, Next
from device_app.session.effects import Detach, Effect, PrintJob
from device_app.session.events import (
    Answered,
    Failed,
    JobDone,
    OrderArrived,
    PagesPrinted,
    Tapped,
)
from device_app.session.state import Kind, Node, Printed, Release
from device_app.view import Action, JobProgress, OptionsView
from protocol import messages as m


class Releasing(MachineBase):
    """Handlers for a release on its way: its answer, the engine's outcomes, their confirmations."""

    def on_released(self, event: Answered) -> Next:
        assert isinstance(event.result, m.ReleaseResult) and self.release is not None
        rel = self.release
        rel.release_id = event.result.release_id
        effects: list[Effect] = []
        for job in event.result.jobs:
            rel.progress[job.job_id] = JobProgress(job.job_id, job.name, "printing",
                                                   pages=job.pages)
            rel.unconfirmed.add(job.job_id)
            effects.append(PrintJob(event.result.release_id, job))
        return self._stay(*effects)

    def on_order(self, event: OrderArrived) -> Next:
        """A release ordered from the portal, at an idle panel: printed as a release tapped
        here would be (the same effects, journal and reports), for a user who is not here. The
        panel shows whose it is, in their language; no session is opened, so nothing of
        anyone's list shows, and the panel is idle again when every outcome is confirmed."""
        order = event.order
        self._forget_user()
        self.user = order.user_name
        self.user_language = order.language
        rel = Release(order.release_id, {}, set(), ordered_by=order.user_name or "?")
        for job in order.jobs:
            rel.progress[job.job_id] = JobProgress(job.job_id, job.name, "printing",
                                                   pages=job.pages)
            rel.unconfirmed.add(job.job_id)
        self.release = rel
        return Next(Node.RELEASING, tuple(PrintJob(order.release_id, job) for job in order.jobs))

    def on_pages_printed(self, event: PagesPrinted) -> Next:
        rel = self.release
        old = rel.progress.get(event.job_id) if rel and rel.release_id == event.release_id \
            else None
        if rel is not None and old is not None and old.state == "printing":
            done = max(0, event.done)
            rel.progress[event.job_id] = replace(
                old, pages_done=min(done, old.pages) if old.pages else done)
        return self._stay()

    def on_tap_releasing(self, event: Tapped) -> Next:
        rel = self.release
        if event.action is not Action.WALK_AWAY or rel is None or not rel.release_id:
            # Before the cloud's answer, nothing is printing yet that could go on alone.
            return self._stay()
        # "Done, log me out": the jobs print on; the printer reports them from its journal.
        return Next(self.node, (Detach(rel.release_id),)).then(self._logout())

    def on_release_failed(self, event: Failed) -> Next:
        return self._jobs_refused(event)

    def on_job_done(self, event: JobDone) -> Next:
        rel = self.release
        if rel is None or event.release_id != rel.release_id or event.job_id not in rel.progress:
            return self._stay()
        old = rel.progress[event.job_id]
        rel.progress[event.job_id] = replace(old, state="printed" if event.ok else "failed",
                                             detail=event.detail)
        if event.ok:
            req: m.Request = m.JobPrinted(request_id=self.new_id(), release_id=rel.release_id,
                                          job_id=event.job_id)
        else:
            req = m.JobFailed(request_id=self.new_id(), release_id=rel.release_id,
                              job_id=event.job_id, reason=event.detail[:200])
        return self._stay(self._send(req, Kind.CONFIRM, about=event.job_id))

    def on_confirmed(self, event: Answered | Failed) -> Next:
        # The cloud acknowledged a job's outcome (or refused: then the job is back in the list).
        rel = self.release
        if rel is None:
            return self._stay()
        if isinstance(event, Failed) and self._subject in rel.progress:
            old = rel.progress[self._subject]
            rel.progress[self._subject] = replace(old, detail=f"not confirmed: {event.message}")
        rel.unconfirmed.discard(self._subject or "")
        if rel.unconfirmed:
            return self._stay()
        printed = sum(1 for p in rel.progress.values() if p.state == "printed")
        failed = [p for p in rel.progress.values() if p.state == "failed"]
        self._say(Printed(printed, len(failed), failed[0].detail if failed else ""))
        self.release = None
        self.selected = set()
        self.options = OptionsView()
        if self._session is None:
            # Logged out meanwhile, or a portal order's user (never signed in): their name
            # and language go with the release.
            self._forget_user()
            return self._idle()
        if rel.everything and self.policy.logout_after_release_all and not failed:
            return self._logout()
        return self._load()

"""What a device did while the cloud was unreachable (``offline.report``), reconciled.

Theory of operation
-------------------
A device that signed people in and printed from its offline bundle (cloud/offline.py) journals
each of those events and reports them, in order, when the cloud is back. Reconciling them:

* ``login`` and ``refused`` are audited (refusals counted in one entry per report): an
  administrator sees who used the copier while it was offline.
* ``printed``: paper came out, so the job must never print again anywhere. A job the device was
  given in the bundle the report names (``seq``) or in another not expired yet, held by the user the
  event names, becomes PRINTED in a release of this device whose id is the device's (``off-...``);
  one the device had been released online and printed offline is recorded likewise. A job printed or
  released *elsewhere* first, or printed at this very copier in another release (online, after the
  offline printing and before this report), is named in ``raced`` and audited under its owner (it
  was printed twice: the administrator and the user can see it); one deleted or expired meanwhile is
  named in ``gone``. Anything else (a job never delivered to this device, another user's) is audited
  and changes nothing: a device cannot end a job it was not given.
* ``failed`` is audited; the job stays HELD.

The report runs in one durable transaction (cloud/service.py), with its answer stored under its
``request_id``: a repeat gets the same answer and does nothing again; a second report of the
same printing under another id finds the job PRINTED in this very release and does nothing
either. Job changes are the store's guarded updates (HELD -> PRINTED), so a release racing the
report is one or the other, never both.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cloud.offline import Stores, with_offline
from cloud.refusal import Refused
from cloud.storage.port import CloudStore, Job, Store, User
from protocol import messages as m
from protocol import offline as po
from protocol.errors import ErrorCode

if TYPE_CHECKING:
    from cloud.identity import Identity

log = logging.getLogger(__name__)

_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


#: The audit detail of a job printed twice (``offline.raced``, under its owner): also what the
#: owner is shown (:func:`printed_twice`), so it is written and read here only.
RACED = ("job {job} printed offline at {here} ({release!r}) after it was {state} at {there}: "
         "printed twice")
_RACED = re.compile(r"job (?P<job>\S+) printed offline at (?P<here>\S+) \(.*\) after it was "
                    r"(?P<state>\w+) at (?P<there>.+): printed twice")
#: How long the owner is shown a job printed twice.
RACED_SHOWN_DAYS = 14


@dataclass(frozen=True, slots=True)
class PrintedTwice:
    at: float
    job_id: str
    name: str
    #: The copier that printed it offline, and where it had been printed (or released) before.
    offline_at: str
    before_at: str


def printed_twice(store: CloudStore, user: User, now: float,
                  days: float = RACED_SHOWN_DAYS) -> list[PrintedTwice]:
    """The user's jobs printed twice lately (printed offline at one copier after they had been
    printed or released elsewhere), newest first: what the User Portal tells them."""
    rows = store.org_audit(user.org_id, action="offline.raced", subject=f"user:{user.id}",
                           since=now - days * 86400, limit=50)
    found = [(at, match) for at, _actor, _action, _subject, detail in rows
             if (match := _RACED.fullmatch(detail)) is not None]
    names = {j.id: j.name for j in store.jobs([mt["job"] for _at, mt in found])}
    return [PrintedTwice(at, mt["job"], names.get(mt["job"], mt["job"]), mt["here"],
                         mt["there"]) for at, mt in found]


class Reconcile:
    """One device's offline report, inside the service's transaction."""

    def __init__(self, store: Store, identity: Identity, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = with_offline(store)
        self.identity = identity
        self.clock = clock

    def report(self, device_id: str, req: m.OfflineReport) -> m.OfflineReportResult:
        org_id = self.identity.org_of(device_id)
        if self.store is None:
            raise Refused(ErrorCode.NOT_ALLOWED, "this print service keeps no offline mode",
                          "type")
        now = self.clock()
        # The bundle the report names, and any other the device may still print from.
        run = _Run(self.store, device_id, org_id, req.seq, now,
                   self.store.offline_bundle_jobs(device_id, req.seq, now))
        for event in req.events:
            run.event(event)
        run.finish(len(req.events))
        return m.OfflineReportResult(accepted=len(req.events), raced=tuple(run.raced),
                                     gone=tuple(run.gone))


class _Run:
    def __init__(self, store: Stores, device_id: str, org_id: str, seq: int, now: float,
                 delivered: frozenset[str]) -> None:
        self.store, self.device_id, self.org_id = store, device_id, org_id
        self.seq, self.now, self.delivered = seq, now, delivered
        self.actor = f"device:{device_id}"
        self.raced: list[str] = []
        self.gone: list[str] = []
        self.printed = 0
        self.refused: Counter[str] = Counter()

    def _audit(self, action: str, subject: str, detail: str) -> None:
        self.store.audit(self.now, self.actor, action, subject, detail[:400],
                         org_id=self.org_id)

    def _user_of_org(self, user_id: str) -> bool:
        if not _ID.fullmatch(user_id):
            return False
        user = self.store.user(user_id)
        return user is not None and user.org_id == self.org_id

    def event(self, event: m.OfflineEvent) -> None:
        when = f"at {event.at:.0f}"
        if event.kind == "login":
            if self._user_of_org(event.user_id):
                self._audit("offline.login", f"user:{event.user_id}",
                            f"{event.detail[:40]} {when}")
                # Signing in offline is signing in here: the "recent" policy counts it.
                self.store.note_device_sign_in(self.device_id, event.user_id,
                                               min(event.at, self.now))
            else:
                self._audit("offline.login", "-", f"a user this org does not know, {when}")
        elif event.kind == "refused":
            self.refused[event.detail[:40] or "refused"] += 1
        elif event.kind == "failed":
            subject = f"job:{event.job_id}" if _ID.fullmatch(event.job_id) else "-"
            self._audit("offline.failed", subject, f"{event.detail[:200]} {when}")
        else:
            self._printed(event)

    def _printed(self, event: m.OfflineEvent) -> None:
        found = self.store.jobs([event.job_id]) if _ID.fullmatch(event.job_id) else []
        job = found[0] if found else None
        if job is None or event.job_id not in self.delivered:
            self._audit("offline.unknown_job", "-", "a job printed offline that this copier "
                        f"was not given ({event.job_id[:64]!r}); nothing changed")
            return
        if job.owner_id is None or event.user_id != job.owner_id:
            self._audit("offline.wrong_user", f"job:{job.id}", "printed offline for a user "
                        "who does not own it; nothing changed")
            return
        if job.state == "HELD":
            release_id = self._release(event, job.owner_id)
            if self.store.set_printed_offline(job.id, release_id, self.device_id, self.now):
                return self._done(job, release_id, event)
            job = self.store.jobs([job.id])[0]  # a racing release won meanwhile
        if job.state == "RELEASING" and job.device_id == self.device_id:
            # Released to this very device online, printed from its bundle when the link went.
            if self.store.set_printed(job.id, self.now):
                return self._done(job, job.release_id or "", event)
            job = self.store.jobs([job.id])[0]
        named = event.release_id[:64]
        if job.state == "PRINTED" and job.device_id == self.device_id \
                and job.release_id in self._offline_ids(event):
            return  # printed here in this offline release, recorded already (a report again)
        if job.state in ("PRINTED", "RELEASING"):
            if job.id not in self.raced:
                self.raced.append(job.id)
            self._audit("offline.raced", f"user:{job.owner_id}", RACED.format(
                job=job.id, here=self.device_id, release=named, state=job.state.lower(),
                there=job.device_id or "another copier"))
            log.warning("job %s printed offline at %s and %s at %s", job.id, self.device_id,
                        job.state, job.device_id)
        elif job.state in ("DELETED", "EXPIRED"):
            if job.id not in self.gone:
                self.gone.append(job.id)
            self._audit("offline.gone", f"job:{job.id}", f"printed offline at {self.device_id} "
                        f"({named!r}) after it was {job.state.lower()}")
        else:
            self._audit("offline.unknown_job", f"job:{job.id}",
                        f"printed offline while {job.state}; nothing changed")

    def _offline_ids(self, event: m.OfflineEvent) -> tuple[str, str]:
        """The ids :meth:`_release` may have recorded this event's offline release under: the
        device's own, and the one derived from it. A job PRINTED at this device under any other
        release (an online one, after the offline printing and before this report) was printed
        twice, not recorded already."""
        given = event.release_id
        return (given if given.startswith(po.OFFLINE_RELEASE_PREFIX) else "",
                self._derived(given))

    def _derived(self, given: str) -> str:
        digest = hashlib.sha256(f"{self.device_id}\n{given}".encode("utf-8", "replace"))
        return po.OFFLINE_RELEASE_PREFIX + digest.hexdigest()[:32]

    def _release(self, event: m.OfflineEvent, owner_id: str) -> str:
        """The offline release's id as the cloud records it: the device's (``off-...``), unless
        it is malformed or another device's, then one derived from it for this device."""
        given = event.release_id
        if given.startswith(po.OFFLINE_RELEASE_PREFIX) and _ID.fullmatch(given) \
                and self.store.add_offline_release(given, self.device_id, owner_id,
                                                   self.now) == self.device_id:
            return given
        derived = self._derived(given)
        self.store.add_offline_release(derived, self.device_id, owner_id, self.now)
        return derived

    def _done(self, job: Job, release_id: str, event: m.OfflineEvent) -> None:
        self.printed += 1
        self._audit("job.printed_offline", f"job:{job.id}",
                    f"user:{job.owner_id}, release {release_id}, at {event.at:.0f}")

    def finish(self, events: int) -> None:
        if self.refused:
            self._audit("offline.refused", "-", f"{sum(self.refused.values())} refused: "
                        + ", ".join(f"{why} x{n}" for why, n in self.refused.most_common(10)))
        self._audit("offline.report", "-", f"bundle {self.seq}: {events} event(s), "
                    f"{self.printed} printed, {len(self.raced)} raced, {len(self.gone)} gone")

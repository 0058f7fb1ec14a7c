"""What the session machine knows: its states, the kinds of request it waits for, its policy, and
the records it keeps while a user is at the copier.

``State`` is what the panel is doing (one value per screen state: what the app, the tests and the
transcript talk about). ``Node`` is the machine's control state, the nodes of its diagram: a
``State``, except that a notice is three nodes, one per place it leads back to, so where a notice
goes is in the state and in the table, not in a field beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from device_app.view import JobProgress
from protocol import messages as m
from protocol.managed import Policy as Policy  # the contract's; the machine reads it


class State(StrEnum):
    IDLE = "idle"
    ENTRY = "entry"  # typing a code, PIN, or username + password
    IDENTIFYING = "identifying"
    LOADING = "loading"
    JOBS = "jobs"
    OPTIONS = "options"
    CONFIRM_DELETE = "confirm_delete"
    DELETING = "deleting"
    RELEASING = "releasing"
    NOTICE = "notice"
    OFFLINE = "offline"
    DIAGNOSTICS = "diagnostics"  # a technician's look at the reader, engine, link, config


class Node(StrEnum):
    """The machine's control state: one node of the diagram (docs/session-states.md)."""

    IDLE = "idle"
    ENTRY = "entry"
    IDENTIFYING = "identifying"
    LOADING = "loading"
    JOBS = "jobs"
    OPTIONS = "options"
    CONFIRM_DELETE = "confirm_delete"
    DELETING = "deleting"
    RELEASING = "releasing"
    # A notice, and where it leads when it ends (a tap on OK or its time up).
    NOTICE_THEN_IDLE = "notice_then_idle"  # nobody is logged in any more
    NOTICE_THEN_JOBS = "notice_then_jobs"  # back to the list as it was
    NOTICE_THEN_LOADING = "notice_then_loading"  # back to the list, fetched again
    OFFLINE = "offline"
    DIAGNOSTICS = "diagnostics"

    @property
    def state(self) -> State:
        return _STATE_OF[self]


_STATE_OF = {node: State.NOTICE if node.value.startswith("notice_") else State(node.value)
             for node in Node}


class Kind(StrEnum):
    """What a pending request is for; an answer is dispatched on it. Most are the request's wire
    type; two are the machine's own, since the same request means two things: a page of jobs
    appended to the list (MORE, not a fresh LIST), and a job's outcome report (CONFIRM)."""

    IDENTIFY = m.Identify.TYPE
    ASSOCIATE = m.Associate.TYPE
    LIST = m.ListJobs.TYPE
    MORE = "more"
    #: The list fetched again behind the list on show (a notice of new jobs, Refresh, the same
    #: badge again): the list stays, its selection kept.
    REFRESH = "refresh"
    RELEASE = m.Release.TYPE
    DELETE = m.DeleteJobs.TYPE
    CONFIRM = "confirm"
    LOGOUT = m.Logout.TYPE


@dataclass(frozen=True, slots=True)
class Notice:
    """Why a notice is shown: an error code (the cloud's or the link's, or one of the machine's
    own below) and the detail that goes with it. The presenter turns it into words."""

    code: str
    detail: str = ""


#: The machine's own notice codes (the others are the protocol's error codes).
ENGINE_REFUSED = "engine_refused"  # detail: the engine's state
DELETE_UNCONFIRMED = "delete_unknown_outcome"
ASSOCIATE_UNCONFIRMED = "associate_unknown_outcome"


@dataclass(frozen=True, slots=True)
class Note:
    """The cloud's own line for the user after logging in (``IdentifyResult.note``)."""

    text: str


@dataclass(frozen=True, slots=True)
class Linked:
    """The badge was linked by self-association: next time, a tap is enough."""


@dataclass(frozen=True, slots=True)
class Deleted:
    count: int


@dataclass(frozen=True, slots=True)
class Printed:
    printed: int
    failed: int
    first_failure: str = ""


#: The one-line message over the job list (what just happened), or None.
Flash = Note | Linked | Deleted | Printed | None


@dataclass(frozen=True, slots=True)
class WhyEmpty:
    """What the cloud said with the list about jobs that are not on it (``JobList``'s optional
    counts), for the panel to say why a list is empty."""

    expired: int = 0
    hold_hours: float = 0.0
    unlinked: int = 0


@dataclass(slots=True)
class Release:
    release_id: str
    progress: dict[str, JobProgress]
    unconfirmed: set[str]  # jobs whose outcome the cloud has not acknowledged yet
    everything: bool = False  # "release all": may end the session, by policy
    #: Whom a release ordered from the portal prints for (nobody is signed in; the panel shows
    #: the name); "" for a release tapped here.
    ordered_by: str = ""

"""The whole device app (DeviceApp: its loop, the session machine, what it sends and prints),
driven by Hypothesis in any order: badges, codes, keys and taps; answers, refusals and timeouts
from a scripted cloud; the link going down and up, and staying down past the outcome bound;
engine faults and outcomes; the clock jumping. Invariants are checked after every step, every
move of the session machine is checked against its table (the machine is strict: a handler that
leads where its entry does not allow raises), and the run as a whole must have visited every
state of the session machine (issue 8, defect 2) and every node of its diagram, the
technician's diagnostics among them (issue 10: a technician's code or badge, answered with the
technician role, opens a screen that names no one and holds no session). The cloud answers
identify as a current cloud (with the user's first page of jobs: straight to the list) or as an
older one (without: the device asks for the list), at random (issue 13).

The link (tests/fakes.ScriptedLink) behaves as the real one does; the printer stand-in hands
each job straight to a scripted engine, so the run is deterministic and needs no thread. The
cloud answers as the reference cloud would, with job ids and user names that name the session
they belong to, so an answer that acts on another session shows on the panel.

The default, 700 derandomized examples of up to 60 steps (about 10 s), reached every state
for each of 20 seeds tried, and found defect 1 (an effect dropped by the loop) from scratch
within 10 to 213 examples for each of 9 seeds with that fix reverted.
``MFD_STATEFUL_EXAMPLES=5000`` (and ``MFD_STATEFUL_STEPS``) runs a bigger search.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Iterable

from fakes import FakeClock, Outstanding, ScriptedLink
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from device_app.app import DeviceApp
from device_app.session import (
    CardPresented,
    CodeEntered,
    JobDone,
    KeyPressed,
    Node,
    PagesPrinted,
    Policy,
    PrintJob,
    State,
)
from device_app.view import Action, Screen
from protocol import messages as m
from protocol.engine import EngineState
from protocol.errors import LinkError, MfdError, RemoteError

EXAMPLES = int(os.environ.get("MFD_STATEFUL_EXAMPLES", "700"))
STEPS = int(os.environ.get("MFD_STATEFUL_STEPS", "60"))

#: Every state any run reached (the test asserts the union is all of them).
VISITED: set[State] = set()
#: Every node of the machine's diagram any run reached (a notice is one per way back).
VISITED_NODES: set[Node] = set()

DOC = b"%PDF-1.4 a page\n"
SHA = hashlib.sha256(DOC).hexdigest()

#: A technician's code and badge: the scripted cloud answers them with the technician role.
TECH_CODE, TECH_BADGE = "8264019375", "777"

REFUSALS = ["busy", "internal", "invalid_session", "wrong_device", "job_not_held",
            "job_not_found", "unknown_card", "unknown_code", "wrong_pin", "invalid_password",
            "locked_out", "not_allowed", "unknown_device", "card_limit"]


Tap = tuple[Action, str | None]

#: What a person would tap on each screen, a tap or a few in a row (``job0``: the first job on
#: the list). Releasing, changing and deleting pick a job first when none is picked.
SCREEN_TAPS: dict[State, list[tuple[Tap, ...]]] = {
    State.IDLE: [((Action.ENTER_CODE, None),), ((Action.ENTER_PASSWORD, None),)],
    State.ENTRY: [((Action.KEY, "4"),), ((Action.KEY, "ENTER"),), ((Action.CANCEL, None),),
                  ((Action.SWITCH_ENTRY, None),), ((Action.FOCUS, "password"),),
                  ((Action.KEY, "a"),)],
    State.JOBS: [((Action.SELECT, "job0"),), ((Action.SELECT, "job1"),),
                 ((Action.RELEASE, None),), ((Action.RELEASE_ALL, None),),
                 ((Action.OPTIONS, None),),
                 ((Action.OPTIONS, None), (Action.TOGGLE_DUPLEX, None), (Action.RELEASE, None)),
                 ((Action.DELETE, None),), ((Action.DELETE, None), (Action.CONFIRM, None)),
                 ((Action.LOAD_MORE, None),), ((Action.LOGOUT, None),), ((Action.RETRY, None),),
                 ((Action.SELECT_ALL, None),), ((Action.REFRESH, None),),
                 ((Action.DISMISS, None),), ((Action.STAY, None),)],
    State.RELEASING: [((Action.WALK_AWAY, None),)],
    State.OPTIONS: [((Action.TOGGLE_GRAYSCALE, None),), ((Action.COPIES_UP, None),),
                    ((Action.RELEASE, None),), ((Action.CANCEL, None),)],
    State.CONFIRM_DELETE: [((Action.CONFIRM, None),), ((Action.CANCEL, None),)],
    State.NOTICE: [((Action.DISMISS, None),)],
    State.OFFLINE: [((Action.LOGOUT, None),), ((Action.DISMISS, None),)],
    State.DIAGNOSTICS: [((Action.DISMISS, None),), ((Action.STAY, None),)],
}


class ScriptedEngine:
    """The print engine: takes jobs while it can print, finishes them when the test says."""

    def __init__(self) -> None:
        self.now = EngineState.READY
        self.handed: list[tuple[str, str]] = []
        self.running: list[PrintJob] = []

    def state(self) -> EngineState:
        return self.now


class HandingPrinter:
    """The printer stand-in: each PrintJob goes to the engine at once (or fails before output
    if the engine cannot print), outcomes come back as JobDone like the real printer's."""

    def __init__(self, engine: ScriptedEngine, report: Callable[[JobDone], None],
                 on_submit: Callable[[PrintJob], None]) -> None:
        self.engine = engine
        self.report = report
        self.on_submit = on_submit
        #: Releases the user walked away from: their outcomes are the printer's to report.
        self.detached: set[str] = set()

    def submit_all(self, effects: Iterable[PrintJob]) -> None:
        for effect in effects:
            self.on_submit(effect)
            if not self.engine.now.can_print:
                self.report(JobDone(effect.release_id, effect.job.job_id, False, "jammed"))
                continue
            self.engine.handed.append((effect.release_id, effect.job.job_id))
            self.engine.running.append(effect)

    def journal_report(self, request: m.Request, reply: Callable[[m.Result | MfdError], None]
                       ) -> tuple[m.Request, Callable[[m.Result | MfdError], None]]:
        return request, reply

    def reconcile(self) -> list[object]:
        return []

    def link_back(self) -> None:
        pass

    def detach(self, release_id: str) -> None:
        self.detached.add(release_id)

    def close(self) -> None:
        pass


class Cloud:
    """Answers as the reference cloud would. Session ``sN`` belongs to "User sN" and owns jobs
    ``sN.j0`` .. ``sN.j2``; release ``rN`` remembers its session. Every other user reads
    Japanese (:func:`language_of`), the rest have no preference (the panel's English)."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.held: dict[str, list[str]] = {}
        self.release_session: dict[str, str] = {}

    def answer(self, request: m.Request, old: bool = False) -> m.Result | RemoteError:
        """The answer to ``request``; ``old``: as a cloud from before the identify answer
        brought the first page of jobs (the device then asks for the list)."""
        if isinstance(request, m.Identify) and request.value in (TECH_CODE, TECH_BADGE):
            return m.IdentifyResult("-", "tech_1", "Technician", 0, role=m.ROLE_TECHNICIAN)
        if isinstance(request, m.Identify | m.Associate):
            token = f"s{next(self.ids)}"
            self.held[token] = [f"{token}.j{i}" for i in range(3)]
            answer = m.IdentifyResult(token, f"u{token}", f"User {token}", 300,
                                      language=language_of(token))
            if old or request.page_size is None:
                return answer
            return answer.with_first_page(self.listed(token, 0, request.page_size))
        if isinstance(request, m.ListJobs):
            return self.listed(request.session, request.offset, request.limit)
        if isinstance(request, m.Release):
            held = self.held.get(request.session, [])
            ids = list(held) if request.all_held else list(request.job_ids)
            if not ids or any(j not in held for j in ids):
                return RemoteError("job_not_held", "a job is not held", "job_ids")
            release = f"r{next(self.ids)}"
            self.release_session[release] = request.session
            for j in ids:
                held.remove(j)
            return m.ReleaseResult(release, tuple(m.ReleasedJob(j, f"Job {j}", len(DOC), SHA)
                                                  for j in ids))
        if isinstance(request, m.DeleteJobs):
            held = self.held.get(request.session, [])
            if any(j not in held for j in request.job_ids):
                return RemoteError("job_not_held", "a job is not held", "job_ids")
            for j in request.job_ids:
                held.remove(j)
            return m.Ack(of=request.TYPE)
        if isinstance(request, m.JobFailed):
            session = self.release_session.get(request.release_id)
            if session is not None:
                self.held[session].append(request.job_id)
            return m.Ack(of=request.TYPE)
        return m.Ack(of=request.TYPE)  # jobs.printed, logout

    def listed(self, session: str, offset: int, limit: int) -> m.JobList:
        held = self.held.get(session, [])
        page = held[offset:offset + limit]
        return m.JobList(tuple(m.JobSummary(j, f"Job {j}", 1, False, False, 1, len(DOC), 1.0)
                               for j in page), len(held), offset)


def language_of(token: str) -> str:
    """The language the cloud knows for session ``token``'s user: "ja" for even sessions."""
    return "ja" if int(token.removeprefix("s")) % 2 == 0 else ""


class AppMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.link = ScriptedLink()
        self.clock = FakeClock()
        self.engine = ScriptedEngine()
        self.cloud = Cloud()
        self.wrong: list[str] = []  # what a check inside a callback found
        ids = itertools.count(1)

        def make_printer(_link: object, _engine: object, report: Callable[[JobDone], None],
                         _journal: object) -> HandingPrinter:
            def counted(done: JobDone) -> None:
                # A job the printer fails before output (the engine could not print when it
                # came) is an outcome the diagnostics count as the engine's are.
                self.outcomes[0 if done.ok else 1] += 1
                report(done)

            return HandingPrinter(self.engine, counted, self._check_print)

        self.app = DeviceApp(self.link, self.engine, policy=Policy(), clock=self.clock,
                             new_id=lambda: f"req-{next(ids)}",
                             make_printer=make_printer).start()
        # Every step's move is checked against the table: one it does not declare raises.
        self.app.machine.strict = True
        send = self.app._send

        def tagged_send(effect: object) -> None:
            # Which of the machine's tags each request carries: "every pending request was
            # sent" is checked against what reached the link.
            self.link.next_tag = effect.tag  # type: ignore[attr-defined]
            send(effect)  # type: ignore[arg-type]

        self.app._send = tagged_send  # type: ignore[method-assign]
        self.sessions_of: dict[int, str | None] = {}
        self.outcomes = [0, 0]  # JobDone events put on the queue: printed, failed
        VISITED.add(self.app.machine.state)
        VISITED_NODES.add(self.app.machine.node)

    # ------------------------------------------------------------ helpers

    def drain(self) -> None:
        for _ in range(1000):
            if self.app.events.empty():
                break
            self.app.step(0)
        VISITED.add(self.app.machine.state)
        VISITED_NODES.add(self.app.machine.node)

    def _check_print(self, effect: PrintJob) -> None:
        owner = self.cloud.release_session.get(effect.release_id)
        if owner != self.app.machine.session_token:
            self.wrong.append(f"{effect.job.job_id} of {owner}'s release printed in session "
                              f"{self.app.machine.session_token}")
        if not effect.job.job_id.startswith(f"{owner}."):
            self.wrong.append(f"{effect.job.job_id} printed for {owner}")

    def _pick(self, index: int, keep: Callable[[Outstanding], bool] = lambda o: True
              ) -> Outstanding | None:
        items = [o for o in self.link.outstanding if keep(o)]
        return items[index % len(items)] if items else None

    def _answer(self, item: Outstanding, outcome: m.Result | MfdError) -> None:
        self.link.answer(item, outcome)
        self.drain()

    # ------------------------------------------------------------ the person at the copier

    @initialize(logged_in=st.booleans(), old=st.booleans())
    def start(self, logged_in: bool, old: bool) -> None:
        # Half the runs start with someone on the job list (the way there is as random as the
        # rest in the other half), so that runs go deep into releasing and deleting too.
        if logged_in:
            self.badge("111")
            self.cloud_answers(0, old)  # identify, with the first page or without ...
            if old:
                self.cloud_answers(0, old)  # ... and then jobs.list
            assert self.app.machine.state is State.JOBS

    # Few rules, some with a choice inside: each rule is drawn as often as any other, so the
    # rules a run needs to get deep (answers, the screen's taps) are not drowned out.

    @rule(card=st.sampled_from(["111", "222", "999", "code", "tech code", TECH_BADGE]))
    def badge(self, card: str) -> None:
        codes = {"code": "482916", "tech code": TECH_CODE}
        self.app.events.put(CodeEntered(codes[card]) if card in codes else CardPresented(card))
        self.drain()

    @rule(action=st.sampled_from(list(Action)),
          about=st.sampled_from([None, "job0", "job1", "code", "password", "username", "ENTER",
                                 "7", "BACKSPACE"]))
    def tap(self, action: Action, about: str | None) -> None:
        if about in ("job0", "job1"):
            jobs = self.app.view().jobs
            about = jobs[int(about[-1]) % len(jobs)].job_id if jobs else None
        self.app.tap(action, about)
        self.drain()

    @rule(data=st.data())
    def tap_what_the_screen_offers(self, data: st.DataObject) -> None:
        # Any tap in any state is the rule above; this one taps what a person would, so that
        # runs get past the job list as often as they stop at it.
        offered = SCREEN_TAPS.get(self.app.machine.state, [])
        if not offered:
            return
        taps = data.draw(st.sampled_from(offered))
        if taps[0][0] in (Action.RELEASE, Action.OPTIONS, Action.DELETE) \
                and self.app.machine.state is State.JOBS and not self.app.view().selected:
            self.tap(Action.SELECT, "job0")  # a person picks a job first
        for action, about in taps:
            self.tap(action, about)

    @rule(key=st.sampled_from(["4", "a", "@", "ENTER", "BACKSPACE", "TAB", "CLEAR"]))
    def key(self, key: str) -> None:
        # A key of a hardware keyboard (the panel's own keys are taps).
        self.app.events.put(KeyPressed(key))
        self.drain()

    # ------------------------------------------------------------ the cloud and the network

    @rule(index=st.integers(0, 7), old=st.booleans())
    def cloud_answers(self, index: int, old: bool) -> None:
        # ``old``: a cloud from before the identify answer brought the first page of jobs
        # (LOADING is then on the way to the list, as it is after a delete or a retry).
        item = self._pick(index)
        if item is not None:
            self._answer(item, self.cloud.answer(item.request, old))

    @rule(index=st.integers(0, 7), code=st.sampled_from([*REFUSALS, "timeout"]))
    def cloud_refuses(self, index: int, code: str) -> None:
        if code == "timeout":
            # Only reads time out; a mutating request is kept until answered or the bound.
            item = self._pick(index, lambda o: not m.is_mutating(o.request))
            if item is not None:
                self._answer(item, LinkError("no answer in time", code="timeout"))
            return
        item = self._pick(index)
        if item is not None:
            self._answer(item, RemoteError(code, f"refused: {code}",
                                           retry_after=1 if code == "busy" else None))

    @rule(what=st.sampled_from(["down", "up", "down past the bound"]))
    def network(self, what: str) -> None:
        if what == "down":
            self.link.go_down()
        elif what == "up":
            self.link.go_up()
        else:
            self.link.bound_passes()
        self.drain()

    @rule(what=st.sampled_from(["jobs.changed", "garbage"]), extra=st.booleans())
    def cloud_notifies(self, what: str, extra: bool) -> None:
        # A job arrived for whoever is signed in (it names nobody), or a notice that does not
        # decode (dropped with a log line). Sometimes the cloud did add a job meanwhile.
        token = self.app.machine.session_token
        if extra and token in self.cloud.held:
            # "n", not "j": the first jobs are j0-j2, and the shared counter may be at 2.
            self.cloud.held[token].insert(0, f"{token}.n{next(self.cloud.ids)}")
        self.app.notified(m.encode(m.JobsChanged()) if what == "jobs.changed"
                          else b'{"v":1,"type":"jobs.changed","x":\xff}')
        self.drain()

    # ------------------------------------------------------------ the engine and the clock

    @rule(index=st.integers(0, 7),
          what=st.sampled_from(["printed", "failed", "a page", EngineState.READY,
                                EngineState.JAM, EngineState.NO_PAPER, EngineState.OFFLINE]))
    def engine(self, index: int, what: str | EngineState) -> None:
        if isinstance(what, EngineState):
            self.engine.now = what  # seen at the loop's next engine poll
            return
        if what == "a page" and self.engine.running:
            effect = self.engine.running[index % len(self.engine.running)]
            self.app.events.put(PagesPrinted(effect.release_id, effect.job.job_id, index))
            self.drain()
            return
        ok = what == "printed"
        if self.engine.running:
            self.outcomes[0 if ok else 1] += 1
            effect = self.engine.running.pop(index % len(self.engine.running))
            self.app.events.put(JobDone(effect.release_id, effect.job.job_id, ok,
                                        "" if ok else "paper jam"))
            self.drain()

    @rule(seconds=st.sampled_from([0.0, 0.2, 0.6, 3.0, 6.0, 31.0, 61.0, 1000.0]),
          tick=st.booleans())
    def time_passes(self, seconds: float, tick: bool) -> None:
        # Without a tick, the next event meets the timers that ran out (the catch-up tick).
        self.clock.now += seconds
        if tick:
            self.app.step(0)
            self.drain()

    # ------------------------------------------------------------ invariants

    @invariant()
    def nothing_wrong_was_printed(self) -> None:
        assert self.wrong == []

    @invariant()
    def every_pending_request_was_sent(self) -> None:
        sent = {o.tag for o in self.link.outstanding}
        unsent = set(self.app.machine._pending) - sent
        assert not unsent, f"pending but never sent: {unsent} in {self.app.machine.state}"

    @invariant()
    def a_waiting_screen_has_something_that_ends_it(self) -> None:
        sm = self.app.machine
        kinds = {kind for kind, _ in sm._pending.values()}
        state = sm.state
        if state is State.IDENTIFYING:
            assert kinds & {m.Identify.TYPE, m.Associate.TYPE}, kinds
        elif state is State.LOADING:
            assert m.ListJobs.TYPE in kinds, kinds
        elif state is State.DELETING:
            assert m.DeleteJobs.TYPE in kinds, kinds
        elif state is State.RELEASING:
            rel = sm.release
            assert rel is not None
            if m.Release.TYPE not in kinds:
                running = {e.job.job_id for e in self.engine.running
                           if e.release_id == rel.release_id}
                confirming = {job for kind, job in sm._pending.values() if kind == "confirm"}
                waiting = rel.unconfirmed - running - confirming
                assert rel.unconfirmed and not waiting, (rel.unconfirmed, running, confirming)

    @invariant()
    def no_job_is_handed_to_the_engine_twice(self) -> None:
        assert len(self.engine.handed) == len(set(self.engine.handed)), self.engine.handed

    @invariant()
    def only_a_signed_in_user_is_counted_down_or_told_what_happened(self) -> None:
        view = self.app.view()
        if self.app.machine.session_token is None and view.screen is not Screen.DIAGNOSTICS:
            assert view.countdown == "", view
            assert view.screen is not Screen.IDLE or view.message == "", view

    @invariant()
    def idle_means_no_session(self) -> None:
        if self.app.machine.state is State.IDLE:
            assert self.app.machine.session_token is None

    @invariant()
    def the_panel_shows_only_the_current_sessions_user_and_jobs(self) -> None:
        token = self.app.machine.session_token
        view = self.app.view()
        if token is None:
            assert view.jobs == () and view.user_name == ""
            return
        assert view.user_name == f"User {token}"
        assert all(j.job_id.startswith(f"{token}.") for j in view.jobs), (token, view.jobs)

    @invariant()
    def the_panel_speaks_the_signed_in_users_language_else_the_devices(self) -> None:
        # While a user is signed in, their language (where the cloud knows one); before,
        # after, and on a technician's diagnostics, the device's (English here).
        token = self.app.machine.session_token
        view = self.app.view()
        wanted = language_of(token) if token is not None else ""
        if view.screen is Screen.DIAGNOSTICS:
            wanted = ""
        assert view.language == (wanted or "en"), (token, view.screen, view.language)

    @invariant()
    def diagnostics_name_no_one_and_count_what_the_engine_did(self) -> None:
        if self.app.machine.state is not State.DIAGNOSTICS:
            return
        sm = self.app.machine
        view = self.app.view()
        assert sm.session_token is None and view.user_name == "" and view.jobs == ()
        assert m.ListJobs.TYPE not in {kind for kind, _ in sm._pending.values()}
        shown = " ".join(f"{r.label} {r.value}" for r in view.rows)
        assert "User s" not in shown and "Technician" not in shown, shown
        rows = {r.label: r.value for r in view.rows}
        assert rows["Printed since start"] == str(self.outcomes[0]), (rows, self.outcomes)
        assert rows["Failed since start"] == str(self.outcomes[1]), (rows, self.outcomes)

    def teardown(self) -> None:
        self.app.stop()


def test_the_device_app_keeps_its_invariants_in_any_order_and_visits_every_state() -> None:
    VISITED.clear()
    VISITED_NODES.clear()
    run_state_machine_as_test(AppMachine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, derandomize=True, database=None,
        deadline=None, suppress_health_check=[HealthCheck.too_slow]))
    assert VISITED == set(State), f"never reached: {sorted(set(State) - VISITED)}"
    assert VISITED_NODES == set(Node), f"never reached: {sorted(set(Node) - VISITED_NODES)}"

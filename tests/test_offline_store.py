"""The offline store (device_app/offline/store.py) on disk, damaged on purpose: a truncated or
altered sealed chunk, rows changed under the desk, a file that is not a store. Each is
refused for what it touches (that job is not offered, that bundle not used), never a crash;
and the report of offline events keeps its request id across a restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from test_offline_desk import DEVICE, T0, Cloud, deliver, standard_cloud

from device_app.offline.desk import Desk
from device_app.offline.store import OfflineStore
from protocol import messages as m
from protocol.errors import LinkError, RemoteError, StoreError
from protocol.offline import OfflineError

ADA_CARD = "04A1B2C3D4"


def _desk(path: Path, cloud: Cloud) -> Desk:
    return Desk(OfflineStore.open(path), cloud.public(), DEVICE)  # type: ignore[arg-type]


def _sql(path: Path, sql: str, *args: object) -> None:
    db = sqlite3.connect(path)
    with db:
        db.execute(sql, args)
    db.close()


def _signed_in(desk: Desk) -> m.IdentifyResult:
    who = desk.answer(m.Identify(method="card", value=ADA_CARD, page_size=10), T0 + 1)
    assert isinstance(who, m.IdentifyResult)
    return who


def _ready(tmp_path: Path) -> tuple[Path, Cloud]:
    cloud = standard_cloud()
    path = tmp_path / "offline.db"
    desk = _desk(path, cloud)
    desk.accept(*cloud.bundle(), now=T0)
    deliver(desk, cloud)
    assert {j.job_id for j in _signed_in(desk).jobs or ()} == {"job-a1", "job-a2"}
    assert isinstance(desk.store, OfflineStore)
    desk.store.close()
    return path, cloud


def test_a_truncated_sealed_chunk_is_not_offered_and_is_fetched_again(tmp_path: Path) -> None:
    path, cloud = _ready(tmp_path)
    _sql(path, "UPDATE chunks SET data = substr(data, 1, 100) WHERE job_id = 'job-a2' AND "
               "offset = 0")
    desk = _desk(path, cloud)
    assert {j.job_id for j in _signed_in(desk).jobs or ()} == {"job-a1"}
    assert ("job-a2", 0) in desk.wanted()


def test_a_chunk_of_the_wrong_total_or_type_is_not_offered(tmp_path: Path) -> None:
    path, cloud = _ready(tmp_path)
    _sql(path, "UPDATE chunks SET total = 5 WHERE job_id = 'job-a1'")
    _sql(path, "UPDATE chunks SET data = 'text' WHERE job_id = 'job-a2' AND offset > 0")
    desk = _desk(path, cloud)
    assert _signed_in(desk).jobs == ()


def test_an_altered_chunk_fails_the_job_and_its_copy_goes(tmp_path: Path) -> None:
    path, cloud = _ready(tmp_path)
    _sql(path, "UPDATE chunks SET data = zeroblob(length(data)) WHERE job_id = 'job-a1'")
    desk = _desk(path, cloud)
    who = _signed_in(desk)
    rel = desk.answer(m.Release(request_id="r", session=who.session, job_ids=("job-a1",)),
                      T0 + 2)
    assert isinstance(rel, m.ReleaseResult)
    with pytest.raises(RemoteError) as refused:
        desk.answer(m.FetchDocument(release_id=rel.release_id, job_id="job-a1"), T0 + 3)
    assert refused.value.code == "job_not_found"
    # The printer reports it failed: it is held again, but not offered until fetched anew.
    desk.answer(m.JobFailed(request_id="f", release_id=rel.release_id, job_id="job-a1",
                            reason="document damaged"), T0 + 4)
    assert "job-a1" not in {j.job_id for j in _signed_in(desk).jobs or ()}
    assert ("job-a1", 0) in desk.wanted()


def test_a_bundle_row_changed_on_disk_signs_nobody_in(tmp_path: Path) -> None:
    path, cloud = _ready(tmp_path)
    _sql(path, "UPDATE meta SET value = CAST(replace(CAST(value AS TEXT), 'Ada', 'Eve') AS "
               "BLOB) WHERE key = 'body'")
    desk = _desk(path, cloud)
    assert desk.bundle is None
    with pytest.raises(LinkError) as refused:
        desk.answer(m.Identify(method="card", value=ADA_CARD), T0 + 1)
    assert refused.value.code == "unreachable"
    # And an older bundle cannot come in instead: the highest seq is kept apart.
    with pytest.raises(OfflineError) as replay:
        desk.accept(*cloud.bundle(seq=1), now=T0)
    assert replay.value.code == "replayed"


def test_garbage_in_the_small_rows_is_survived(tmp_path: Path) -> None:
    path, cloud = _ready(tmp_path)
    for key, value in (("high_water", "soon"), ("failures", "[not json"),
                       ("lock_left", "never"), ("badge_ahead", "x"), ("report", "{")):
        _sql(path, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", key, value)
    _sql(path, "UPDATE events SET kind = 'bogus'")
    desk = _desk(path, cloud)
    assert _signed_in(desk).jobs
    report = desk.pending_report(lambda: "rep-1")
    assert report is not None and [e.kind for e in report.events] == ["login"]


def test_a_file_that_is_not_a_store_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "offline.db"
    path.write_bytes(b"this is not SQLite at all" * 100)
    store = OfflineStore.open(path)
    assert store.bundle() is None and store.last_seq() == 0
    aside = list(tmp_path.glob("offline.db.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not SQLite")
    # Damaged again: set aside under another name, the first one kept.
    store.close()
    path.write_bytes(b"still not SQLite" * 100)
    (tmp_path / "offline.db-wal").write_bytes(b"a stale log")
    OfflineStore.open(path).close()
    mains = [p for p in tmp_path.glob("offline.db.damaged-*") if p.name[-4:] not in ("-wal",
                                                                                      "-shm")]
    assert len(mains) == 2


def test_a_store_locked_by_another_process_is_kept_and_open_raises(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from device_app.offline import store as module

    path, _ = _ready(tmp_path)
    store = OfflineStore.open(path)
    store.save_lockout((T0,), 0.0)
    store.close()
    # The exiting old process still holds the file (a journal mode change must wait for it).
    _sql(path, "PRAGMA journal_mode=DELETE")
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(module, "BUSY_TIMEOUT_S", 0.05)
    with pytest.raises(StoreError):
        OfflineStore.open(path)
    assert not list(tmp_path.glob("offline.db.damaged*"))
    old.execute("ROLLBACK")
    old.close()
    store = OfflineStore.open(path)  # the next start: everything is still there
    assert store.lockout()[0] == (T0,) and store.last_seq() == 1 and store.events()
    assert store.bundle() is not None
    store.close()


def test_a_failed_guess_is_counted_even_if_its_journal_cannot_be_written(
        tmp_path: Path) -> None:
    path, cloud = _ready(tmp_path)

    class NoJournal(OfflineStore):
        def journal(self, event: m.OfflineEvent, seq: int) -> None:
            raise StoreError("disk full")

    store = OfflineStore.open(path)
    desk = Desk(NoJournal(store._db, store.path), cloud.public(), DEVICE)  # type: ignore
    with pytest.raises(StoreError):
        desk.answer(m.Identify(method="code", value="999999"), T0 + 1)
    assert len(store.lockout()[0]) == 1
    store.close()


def _big(kind: str, i: int) -> m.OfflineEvent:
    # Every field at its bound: the largest events a report can carry.
    return m.OfflineEvent(kind=kind, at=T0 + i, user_id=f"u{i:063d}", job_id=f"j{i:063d}",
                          detail="d" * 200, release_id=f"off-{i:060d}")


def test_a_report_stays_under_the_request_bound_and_nothing_printed_is_dropped(
        tmp_path: Path) -> None:
    store = OfflineStore.open(tmp_path / "offline.db", durable=False)
    for i in range(250):
        store.journal(_big("login", i), seq=1)
        store.journal(_big("printed", i), seq=1)
    sent: list[m.OfflineEvent] = []
    n = 0
    while (report := store.pending_report(f"rep-{n}")) is not None:
        n += 1
        size = len(m.encode(m.OfflineReport(request_id=report.request_id, seq=report.seq,
                                            events=report.events)))
        assert size <= m.MAX_REQUEST_BYTES - module_margin()
        if n == 1:
            # The cloud says too large anyway (a smaller bound): nothing was done, fewer
            # events go under a new id.
            store.report_refused(report.request_id, "too_large")
            smaller = store.pending_report("rep-smaller")
            assert smaller is not None and smaller.request_id == "rep-smaller"
            assert 0 < len(smaller.events) < len(report.events)
            assert smaller.events == report.events[:len(smaller.events)]
            report = smaller
        sent.extend(report.events)
        store.report_answered(report.request_id)
    assert n >= 3 and sent == [_big(k, i) for i in range(250) for k in ("login", "printed")]


def module_margin() -> int:
    from device_app.offline import store as module

    return module.REPORT_MARGIN


def test_a_refused_report_keeps_its_printed_events(tmp_path: Path) -> None:
    store = OfflineStore.open(tmp_path / "offline.db", durable=False)
    for i in range(3):
        store.journal(_big("login", i), seq=1)
        store.journal(_big("printed", i), seq=1)
    report = store.pending_report("rep-1")
    assert report is not None and len(report.events) == 6
    store.report_refused("rep-1", "invalid_field")
    assert [e.kind for e in store.events()] == ["printed"] * 3
    assert store.unreported_prints() == {_big("printed", i).job_id for i in range(3)}
    # Not sent again by this process (it would be refused again) ...
    assert store.pending_report("rep-2") is None
    store.journal(_big("login", 9), seq=1)
    later = store.pending_report("rep-3")
    assert later is not None and [e.kind for e in later.events] == ["login"]
    store.report_answered("rep-3")
    store.close()
    # ... but kept, and tried again after a restart (a later version may take them).
    store = OfflineStore.open(tmp_path / "offline.db")
    again = store.pending_report("rep-4")
    assert again is not None and [e.kind for e in again.events] == ["printed"] * 3
    store.close()


def test_dropping_the_bundle_keeps_what_must_stay(tmp_path: Path) -> None:
    path, cloud = _ready(tmp_path)
    desk = _desk(path, cloud)
    who = _signed_in(desk)
    release = desk.answer(m.Release(request_id="r", session=who.session,
                                    job_ids=("job-a1",)), T0 + 2)
    assert isinstance(release, m.ReleaseResult)
    desk.answer(m.JobPrinted(request_id="p", release_id=release.release_id, job_id="job-a1"),
                T0 + 3)
    store = desk.store
    assert isinstance(store, OfflineStore)
    store.save_lockout((T0,), 30.0)
    high, seq, events = store.high_water(), store.last_seq(), store.events()
    # A print under way (job-a2) keeps its copy until it ends.
    printing = desk.answer(m.Release(request_id="r2", session=who.session,
                                     job_ids=("job-a2",)), T0 + 3)
    assert isinstance(printing, m.ReleaseResult)
    desk.drop()
    assert desk.bundle is None and store.bundle() is None
    assert set(store.chunk_sizes()) == {"job-a2"} and store.released() == {"job-a2": "released"}
    assert isinstance(desk.answer(m.FetchDocument(release_id=printing.release_id,
                                                  job_id="job-a2", offset=0, length=10),
                                  T0 + 4), m.DocumentChunk)
    assert (store.high_water(), store.last_seq(), store.events()) == (high, seq, events)
    assert store.lockout() == ((T0,), 30.0) and store.unreported_prints() == {"job-a1"}
    assert desk.usable(T0 + 4) is False
    store.close()


def test_a_report_keeps_its_id_and_events_until_answered(tmp_path: Path) -> None:
    store = OfflineStore.open(tmp_path / "offline.db")
    for i in range(700):
        store.journal(m.OfflineEvent(kind="refused", at=T0 + i, detail="unknown_card"),
                      seq=1 if i < 650 else 2)
    first = store.pending_report("rep-a")
    assert first is not None and len(first.events) == 500 and first.seq == 1
    store.close()
    store = OfflineStore.open(tmp_path / "offline.db")
    again = store.pending_report("rep-b")
    assert again == first
    store.report_answered("rep-a")
    second = store.pending_report("rep-c")
    assert second is not None and second.request_id == "rep-c"
    assert len(second.events) == 150 and second.seq == 1  # one bundle's events a report
    store.report_answered("rep-c")
    third = store.pending_report("rep-d")
    assert third is not None and len(third.events) == 50 and third.seq == 2
    store.report_answered("rep-d")
    assert store.pending_report("rep-e") is None
    store.close()


def test_refusals_stop_being_journalled_past_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from device_app.offline import store as module

    monkeypatch.setattr(module, "MAX_EVENTS", 3)
    store = OfflineStore.memory()
    for kind in ("refused", "refused", "refused", "refused", "login"):
        store.journal(m.OfflineEvent(kind=kind, at=T0, user_id="u" if kind == "login" else ""),
                      seq=1)
    assert [e.kind for e in store.events()] == ["refused", "refused", "refused", "login"]


def test_damaged_journal_rows_go_with_the_report_around_them(tmp_path: Path) -> None:
    store = OfflineStore.open(tmp_path / "offline.db", durable=False)
    for i in range(600):
        store.journal(m.OfflineEvent(kind="login", at=T0 + i, user_id="u"), seq=1)
    store.close()
    _sql(tmp_path / "offline.db", "UPDATE events SET kind = 'bogus' WHERE id <= 550")
    store = OfflineStore.open(tmp_path / "offline.db")
    reported = 0
    while (report := store.pending_report(f"rep-{reported}")) is not None:
        reported += len(report.events)
        store.report_answered(report.request_id)
    assert reported == 50 and store.events() == []
    store.close()

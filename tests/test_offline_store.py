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
from protocol.errors import LinkError, RemoteError
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
                       ("locked_until", "never"), ("report", "{")):
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
    assert (tmp_path / "offline.db.damaged").exists()
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

"""The release journal: its transitions, the double hand-over guard, durability across a reopen,
and refusal of a file it cannot trust."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from device_app.printing import journal as journal_module
from device_app.printing.journal import (
    TRANSITIONS,
    AlreadyHanded,
    IllegalTransition,
    Journal,
    JournalError,
    JournalState,
    set_aside,
)
from protocol import messages as m

S = JournalState
DOC = b"%PDF-1.4 journal test\n"


def job(job_id: str = "job-1") -> m.ReleasedJob:
    return m.ReleasedJob(job_id=job_id, name=f"{job_id}.pdf", size=len(DOC),
                         sha256=hashlib.sha256(DOC).hexdigest())


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal.open(tmp_path / "journal.db")


def test_a_job_walks_received_fetched_handed_printed_confirmed(journal: Journal) -> None:
    entry, new = journal.receive("rel-1", job())
    assert new and entry.state is S.RECEIVED
    assert entry.printed_request_id != entry.failed_request_id
    assert journal.fetched("rel-1", "job-1").state is S.FETCHED
    handed = journal.hand_over("rel-1", "job-1", "rel-1/job-1")
    assert handed.state is S.HANDED and handed.engine_id == "rel-1/job-1"
    assert handed.handed_at is not None
    printed = journal.printed("rel-1", "job-1")
    assert printed.result == "printed"
    report = printed.report()
    assert report == m.JobPrinted(request_id=entry.printed_request_id, release_id="rel-1",
                                  job_id="job-1")
    assert [e.key for e in journal.unconfirmed()] == [("rel-1", "job-1")]
    done = journal.confirmed("rel-1", "job-1")
    assert done.state is S.CONFIRMED and done.answer == "ack"
    assert journal.unconfirmed() == []
    # The outcome stays readable after confirmation.
    assert done.report() == report


def test_a_failure_before_hand_over_reports_failed_with_its_own_request_id(
        journal: Journal) -> None:
    entry, _ = journal.receive("rel-1", job())
    failed = journal.failed("rel-1", "job-1", "Paper jam: clear the jam and try again.")
    assert failed.state is S.FAILED
    assert failed.report() == m.JobFailed(request_id=entry.failed_request_id, release_id="rel-1",
                                          job_id="job-1",
                                          reason="Paper jam: clear the jam and try again.")


def test_the_same_job_is_never_handed_over_twice(journal: Journal) -> None:
    journal.receive("rel-1", job())
    journal.fetched("rel-1", "job-1")
    journal.hand_over("rel-1", "job-1", "rel-1/job-1")
    with pytest.raises(AlreadyHanded):
        journal.hand_over("rel-1", "job-1", "rel-1/job-1")
    journal.printed("rel-1", "job-1")
    with pytest.raises(AlreadyHanded):
        journal.hand_over("rel-1", "job-1", "rel-1/job-1")
    # The same job in another release (it failed and was released again) is another row.
    entry, new = journal.receive("rel-2", job())
    assert new and entry.state is S.RECEIVED


def test_receiving_a_job_again_returns_the_existing_row(journal: Journal) -> None:
    first, new = journal.receive("rel-1", job())
    journal.fetched("rel-1", "job-1")
    again, new_again = journal.receive("rel-1", job())
    assert new and not new_again
    assert again.state is S.FETCHED
    assert again.printed_request_id == first.printed_request_id


@pytest.mark.parametrize("source", list(S))
def test_every_transition_outside_the_table_is_refused(tmp_path: Path,
                                                       source: JournalState) -> None:
    moves = {S.FETCHED: lambda j: j.fetched("r", "job-1"),
             S.HANDED: lambda j: j.hand_over("r", "job-1", "r/job-1"),
             S.PRINTED: lambda j: j.printed("r", "job-1"),
             S.FAILED: lambda j: j.failed("r", "job-1", "x"),
             S.CONFIRMED: lambda j: j.confirmed("r", "job-1")}
    path_to = {S.RECEIVED: [], S.FETCHED: [S.FETCHED], S.HANDED: [S.FETCHED, S.HANDED],
               S.PRINTED: [S.FETCHED, S.HANDED, S.PRINTED],
               S.FAILED: [S.FAILED], S.CONFIRMED: [S.FAILED, S.CONFIRMED]}
    for target in moves:
        j = Journal.open(tmp_path / f"{source}-{target}.db")
        j.receive("r", job())
        for step in path_to[source]:
            moves[step](j)
        if target in TRANSITIONS[source]:
            assert moves[target](j).state is target
        else:
            with pytest.raises(IllegalTransition):
                moves[target](j)
            assert j.get("r", "job-1").state is source  # type: ignore[union-attr]
        j.close()


def test_a_job_not_in_the_journal_cannot_move(journal: Journal) -> None:
    with pytest.raises(IllegalTransition):
        journal.hand_over("rel-9", "job-9", "rel-9/job-9")


def test_rows_survive_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    j = Journal.open(path)
    entry, _ = j.receive("rel-1", job())
    j.fetched("rel-1", "job-1")
    j.hand_over("rel-1", "job-1", "rel-1/job-1")
    j.close()
    again = Journal.open(path)
    row = again.get("rel-1", "job-1")
    assert row is not None and row.state is S.HANDED
    assert row.printed_request_id == entry.printed_request_id
    assert again.by_request(entry.failed_request_id) == row


def test_the_journal_is_wal_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    j = Journal.open(path)
    assert j._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert j._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_file_that_is_not_a_journal_is_refused_with_the_technicians_way_out(
        tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    path.write_bytes(b"this is not SQLite at all" * 100)
    with pytest.raises(JournalError) as info:
        Journal.open(path)
    assert info.value.code == "journal_unreadable"
    assert "set-aside" in info.value.message and str(path) in info.value.message


def test_a_damaged_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    j = Journal.open(path)
    for i in range(200):
        j.receive("rel-1", job(f"job-{i}"))
    j._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    j.close()
    raw = bytearray(path.read_bytes())
    # Scribble over the middle pages (the table's b-tree), keep the header valid.
    for i in range(4096, len(raw) - 4096, 97):
        raw[i] = 0xA5
    path.write_bytes(bytes(raw))
    with pytest.raises(JournalError) as info:
        j2 = Journal.open(path)
        j2.unconfirmed()
    assert info.value.code == "journal_unreadable"


def test_another_database_or_a_newer_schema_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE jobs (id TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="not a release journal"):
        Journal.open(other)
    newer = tmp_path / "newer.db"
    Journal.open(newer).close()
    conn = sqlite3.connect(newer)
    conn.execute("PRAGMA user_version=99")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="newer app"):
        Journal.open(newer)


def test_set_aside_keeps_the_file_and_makes_room_for_a_new_one(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    path.write_bytes(b"garbage" * 1000)
    kept = set_aside(path, clock=lambda: 0.0)
    assert kept.read_bytes().startswith(b"garbage") and not path.exists()
    assert Journal.open(path).unconfirmed() == []


def test_the_technicians_show_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "journal.db"
    j = Journal.open(path)
    j.receive("rel-1", job())
    j.close()
    assert journal_module.main(["show", str(path)]) == 0
    assert "RECEIVED" in capsys.readouterr().out
    (tmp_path / "bad.db").write_bytes(b"x" * 5000)
    assert journal_module.main(["show", str(tmp_path / "bad.db")]) == 2
    assert "journal_unreadable" in capsys.readouterr().out


def test_purge_drops_only_old_confirmed_rows(tmp_path: Path) -> None:
    now = [1000.0]
    j = Journal.open(tmp_path / "journal.db", clock=lambda: now[0])
    j.receive("rel-1", job("a"))
    j.failed("rel-1", "a", "x")
    j.confirmed("rel-1", "a")
    j.receive("rel-1", job("b"))
    now[0] = 1000.0 + journal_module.RETENTION_S + 1
    assert j.purge() == 1
    assert [e.job_id for e in j.entries()] == ["b"]


def test_fetched_and_handed_in_one_commit(journal: Journal) -> None:
    journal.receive("rel-1", job())
    row = journal.hand_over("rel-1", "job-1", "rel-1/job-1", fetched=True)
    assert row.state is S.HANDED and row.fetched_at is not None and row.handed_at is not None
    with pytest.raises(AlreadyHanded):
        journal.hand_over("rel-1", "job-1", "rel-1/job-1", fetched=True)


def test_a_batch_is_one_commit_and_a_refused_step_inside_it_writes_nothing(
        tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    j = Journal.open(path)
    for n in (1, 2):
        j.receive("rel-1", job(f"job-{n}"))
    with j.batch():
        j.failed("rel-1", "job-1", "x")
        with pytest.raises(IllegalTransition):
            j.printed("rel-1", "job-2")  # not handed: refused, the batch goes on
        j.failed("rel-1", "job-2", "y")
        # Not visible to another connection before the batch ends.
        other = sqlite3.connect(path)
        assert other.execute("SELECT count(*) FROM journal WHERE state='FAILED'"
                             ).fetchone()[0] == 0
        other.close()
    assert {e.job_id: e.state for e in j.entries()} == {"job-1": S.FAILED, "job-2": S.FAILED}


def test_a_batch_that_raises_is_rolled_back(journal: Journal) -> None:
    journal.receive("rel-1", job())
    with pytest.raises(RuntimeError), journal.batch():
        journal.failed("rel-1", "job-1", "x")
        raise RuntimeError("boom")
    row = journal.get("rel-1", "job-1")
    assert row is not None and row.state is S.RECEIVED

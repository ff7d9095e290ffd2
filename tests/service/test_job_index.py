"""The job index (``index/owners``, ``index/active``): submits, sweeps and listings read only
the records they need, and the index stays true through crashes and old data folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from worker.jobs import JobRecord, JobState, Store


def _job(store: Store, owner: str, state: str = "queued") -> JobRecord:
    return store.create_job(JobRecord(id=store.new_job_id(), owner=owner, dataset_id="0" * 64,
                                      state=JobState(state)))


def _finish(store: Store, job_id: str, state: JobState = JobState.succeeded) -> None:
    def change(record: JobRecord) -> None:
        if record.state == JobState.queued:
            record.move_to(JobState.running)
        record.move_to(state)

    store.update_job(job_id, change)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data")


@pytest.fixture
def reads(store: Store, monkeypatch) -> list[str]:
    """The ids of the records read from now on."""
    seen: list[str] = []
    read = store.read_job

    def counting(job_id: str):
        seen.append(job_id)
        return read(job_id)

    monkeypatch.setattr(store, "read_job", counting)
    return seen


def test_active_jobs_and_listings_read_only_their_records(store: Store, reads: list[str]) -> None:
    assert list(store.active_jobs()) == [] and store.list_jobs("alice", None, 10, 0) == []  # no index folders yet
    mine = [_job(store, "alice") for _ in range(3)]
    others = [_job(store, "bob") for _ in range(20)]
    for record in others[:15] + mine[:1]:
        _finish(store, record.id)
    _finish(store, mine[1].id, JobState.cancelled)
    reads.clear()
    assert [r.id for r in store.active_jobs("alice")] == [mine[2].id]
    assert reads == [mine[2].id]  # not one of bob's 20, nor alice's finished ones
    assert {r.id for r in store.active_jobs()} == {mine[2].id} | {r.id for r in others[15:]}
    reads.clear()
    listed = store.list_jobs("alice", None, 10, 0)
    assert [r.id for r in listed] == [r.id for r in reversed(mine)]  # newest first
    assert sorted(reads) == sorted(r.id for r in mine)
    assert [r.id for r in store.list_jobs("alice", JobState.cancelled, 10, 0)] == [mine[1].id]
    assert [r.id for r in store.list_jobs("bob", None, 2, 1)] == [others[18].id, others[17].id]


def test_a_running_job_stays_active_until_it_finishes(store: Store) -> None:
    record = _job(store, "alice")
    store.update_job(record.id, lambda r: r.move_to(JobState.running))
    assert [r.state for r in store.active_jobs("alice")] == [JobState.running]
    store.update_job(record.id, lambda r: r.move_to(JobState.queued))  # requeued by the sweep
    assert [r.state for r in store.active_jobs("alice")] == [JobState.queued]
    _finish(store, record.id, JobState.failed)
    assert list(store.active_jobs("alice")) == []
    assert not (store.root / "index" / "active" / "alice" / record.id).exists()


def test_stale_and_early_markers(store: Store) -> None:
    """A crash after a record was finished but before its active marker went: the next
    reader drops the marker. A marker whose record is not written yet (a create in flight)
    is skipped and kept."""
    record = _job(store, "alice")
    marker = store.root / "index" / "active" / "alice" / record.id
    _finish(store, record.id)
    marker.touch()  # the crash left it
    assert list(store.active_jobs()) == []
    assert not marker.exists()
    early = store.root / "index" / "active" / "alice" / ("f" * 32)
    early.touch()
    assert list(store.active_jobs("alice")) == []
    assert early.exists()


def test_a_data_folder_from_before_the_index_is_indexed_once(store: Store, reads: list[str]) -> None:
    active = _job(store, "alice", "running")
    done = _job(store, "alice")
    _finish(store, done.id)
    shutil.rmtree(store.root / "index")
    before = Store(store.root)  # indexes what is there
    assert before.indexed
    assert [r.id for r in before.active_jobs("alice")] == [active.id]
    assert [r.id for r in before.list_jobs("alice", None, 10, 0)] == [done.id, active.id]
    assert (store.root / "index" / "complete").exists()


def test_until_indexed_readers_scan_every_record(store: Store) -> None:
    record = _job(store, "alice")
    (store.root / "index" / "complete").unlink()
    shutil.rmtree(store.root / "index" / "active")
    assert not store.indexed
    assert [r.id for r in store.active_jobs("alice")] == [record.id]
    assert [r.id for r in store.list_jobs("alice", None, 10, 0)] == [record.id]


@pytest.mark.parametrize("owner", ["", ".hidden", "a/b"])
def test_an_owner_that_cannot_name_a_folder_is_refused(store: Store, owner: str) -> None:
    with pytest.raises(ValueError, match="owner"):
        _job(store, owner)


def test_snapshot_parses_only_records_written_since_the_last(store: Store, reads: list[str]) -> None:
    """What /metrics reads: every record, parsed again only when its file was replaced."""
    jobs = [_job(store, "alice") for _ in range(5)]
    assert sorted(r.id for r in store.snapshot()) == sorted(r.id for r in jobs)
    assert len(reads) == 5
    reads.clear()
    assert len(store.snapshot()) == 5 and reads == []
    _finish(store, jobs[2].id)
    reads.clear()
    states = {r.id: r.state for r in store.snapshot()}
    assert reads == [jobs[2].id] and states[jobs[2].id] == JobState.succeeded
    shutil.rmtree(store.job_dir(jobs[0].id))
    assert len(store.snapshot()) == 4

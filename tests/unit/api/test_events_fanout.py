"""The shared read of the event log behind `/v1/events` streams (app.events.fanout), on the
embedded database with jobs moved by the same state functions a worker calls."""

import asyncio

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.config import Settings
from app.events import fanout
from app.events import log as event_log
from app.events.fanout import RecentEvents
from app.models import JobStatus
from tests.factories import job_request
from tests.job_moves import claim, epoch


def submit(client: TestClient, dataset_id: str, name: str) -> str:
    response = client.post("/v1/jobs", json=job_request(dataset_id, name=name))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def floor_of(recent: RecentEvents) -> int:
    """Where the window starts: the position of a stream that began "from now"."""
    floor = recent._floor
    assert floor is not None
    return floor


def test_it_serves_what_follows_its_first_read_and_sends_older_positions_to_the_table(
    client: TestClient, settings: Settings, dataset_id: str
) -> None:
    recent = RecentEvents(settings.sqlalchemy_url)
    before = submit(client, dataset_id, "before")  # an event (queued) before the first read
    assert asyncio.run(recent.after(0)) is None  # older than the window: read the table
    start = floor_of(recent)

    job_id = submit(client, dataset_id, "after")
    epoch(settings, job_id, claim(settings, job_id), 1)
    events = asyncio.run(recent.after(start))

    assert events is not None
    assert [(e.row.kind, e.row.job_id) for e in events] == [("status", job_id), ("status", job_id), ("epoch", job_id)]
    assert before not in {e.row.job_id for e in events}
    assert [e.job_name for e in events] == ["after"] * 3 and {e.project for e in events} == {"default"}
    # The filters of the table read, in memory.
    assert [e.row.kind for e in events if e.matches(JobStatus.RUNNING, None, None)] == ["status", "epoch"]
    assert [e for e in events if e.matches(None, "before", None)] == []
    assert [e for e in events if e.matches(None, None, "elsewhere")] == []
    assert asyncio.run(recent.after(events[-1].row.id)) == []


def test_a_window_past_its_size_moves_its_floor(client: TestClient, settings: Settings, dataset_id: str) -> None:
    recent = RecentEvents(settings.sqlalchemy_url, keep=2)
    asyncio.run(recent.after(0))
    start = floor_of(recent)
    ids = [submit(client, dataset_id, f"job-{n}") for n in range(3)]

    assert asyncio.run(recent.after(start)) is None  # the first of the three fell out
    kept = asyncio.run(recent.after(floor_of(recent)))
    assert kept is not None and [e.row.job_id for e in kept] == ids[1:]


def test_streams_woken_together_share_one_or_two_reads(
    client: TestClient, settings: Settings, dataset_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    real = event_log.with_jobs_after

    def counted(session: Session, after: int, limit: int = event_log.READ_BATCH) -> list:  # type: ignore[type-arg]
        reads.append(after)
        return real(session, after, limit)

    monkeypatch.setattr(fanout.event_log, "with_jobs_after", counted)
    recent = RecentEvents(settings.sqlalchemy_url)
    asyncio.run(recent.after(0))
    start = floor_of(recent)
    job_id = submit(client, dataset_id, "shared")
    reads.clear()

    async def twenty_streams() -> list[list[fanout.LoggedEvent] | None]:
        return await asyncio.gather(*(recent.after(start) for _ in range(20)))

    got = asyncio.run(twenty_streams())
    assert all(events is not None and [e.row.job_id for e in events] == [job_id] for events in got)
    assert 1 <= len(reads) <= 2, reads

"""The attempt's watch: a lease it holds is counted from when its renewal was sent."""

import time
from datetime import timedelta
from typing import Any

import pytest

from app.config import Settings
from app.jobs import repository, runner
from app.jobs.repository import Heartbeat
from tests.factories import job_row


class _NoProgress:
    last_batch_at = 0.0
    stop_reason = None


def test_a_renewal_answered_after_a_freeze_does_not_count_as_a_fresh_lease(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    lease = timedelta(seconds=0.4)

    def frozen_after_the_commit(*_: Any) -> Heartbeat:
        time.sleep(lease.total_seconds() + 0.1)  # SIGSTOP between the commit and reading its answer
        return Heartbeat.KEEP_GOING

    monkeypatch.setattr(repository, "renew_lease", frozen_after_the_commit)
    watch = runner._AttemptWatch(settings, job_row(id="j1", attempt=1, runtime_s=0), lease, _NoProgress())  # type: ignore[arg-type]

    assert watch._renew() is Heartbeat.KEEP_GOING
    assert not watch.holds_lease()  # another worker may have claimed the job while this one slept

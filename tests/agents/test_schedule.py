"""Agents on a cron: each occurrence runs once, at its local time on both sides of a DST
change, once however many schedulers look, and once after Herald was down."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from herald.agents import schedule
from herald.agents.models import Agent, AgentRun, RunState
from herald.core.clock import set_clock
from herald.core.db import session_scope
from herald.jobs.models import Job
from tests.conftest import Account

pytestmark = pytest.mark.usefixtures("db_backend")

WARSAW = ZoneInfo("Europe/Warsaw")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Iterator[Clock]:
    c = Clock(datetime(2026, 10, 14, 12, 0, tzinfo=UTC))
    set_clock(c)
    yield c
    set_clock(None)


def _agent(client: TestClient, account: Account, **fields: Any) -> dict[str, Any]:
    body = {"name": "Monday", "topic": "The week ahead", **fields}
    answer = client.post("/api/v1/agents", json=body, headers=account.headers)
    assert answer.status_code == 201, answer.text
    agent: dict[str, Any] = answer.json()
    return agent


def _pass() -> dict[str, Any]:
    with session_scope() as s:
        return schedule.due_pass(s)


def _runs(agent_id: str) -> list[AgentRun]:
    with session_scope() as s:
        runs = list(
            s.scalars(
                select(AgentRun)
                .where(AgentRun.agent_id == uuid.UUID(agent_id))
                .order_by(AgentRun.scheduled_for)
            )
        )
        s.expunge_all()
        return runs


def test_monday_at_nine_in_warsaw_runs_at_nine_local_on_both_sides_of_the_dst_change(
    client: TestClient, account: Account, clock: Clock
) -> None:
    agent = _agent(client, account, schedule_cron="0 9 * * MON", timezone="Europe/Warsaw")
    # Summer time (UTC+2) on 19 October; winter time (UTC+1) from 25 October.
    summer = datetime(2026, 10, 19, 7, 0, tzinfo=UTC)
    winter = datetime(2026, 10, 26, 8, 0, tzinfo=UTC)

    clock.now = summer - timedelta(seconds=1)
    assert _pass()["started"] == 0
    clock.now = summer + timedelta(seconds=2)
    assert _pass()["started"] == 1
    assert _pass()["started"] == 0  # the occurrence is taken
    clock.now = winter - timedelta(seconds=1)
    assert _pass()["started"] == 0
    clock.now = winter + timedelta(seconds=2)
    assert _pass()["started"] == 1

    runs = _runs(agent["id"])
    assert [r.scheduled_for for r in runs] == [summer, winter]
    assert {r.scheduled_for.astimezone(WARSAW).hour for r in runs if r.scheduled_for} == {9}
    assert all(r.job_id for r in runs)
    # No worker ran the summer run here: a week later it was settled as abandoned.
    assert [r.state for r in runs] == [RunState.FAILED, RunState.RESERVED]
    with session_scope() as s:
        row = s.get_one(Agent, uuid.UUID(agent["id"]))
        assert row.next_run_at == datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def test_two_schedulers_at_once_start_one_run(
    client: TestClient, account: Account, clock: Clock
) -> None:
    agent = _agent(client, account, schedule_cron="*/15 * * * *", timezone="UTC")
    clock.now = datetime(2026, 10, 14, 12, 15, 1, tzinfo=UTC)
    started: list[int] = []
    gate = threading.Barrier(2)

    def scheduler() -> None:
        gate.wait()
        started.append(_pass()["started"])

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(started) == [0, 1]
    (run,) = _runs(agent["id"])
    assert run.scheduled_for == datetime(2026, 10, 14, 12, 15, tzinfo=UTC)
    with session_scope() as s:
        assert s.scalar(select(Job.id).where(Job.id == run.job_id)) == run.job_id


def test_occurrences_missed_while_down_run_once_at_start(
    client: TestClient, account: Account, clock: Clock
) -> None:
    agent = _agent(client, account, schedule_cron="0 * * * *", timezone="UTC")
    # Down from 12:00 to 17:30: five hourly occurrences passed.
    clock.now = datetime(2026, 10, 14, 17, 30, tzinfo=UTC)

    assert _pass()["started"] == 1
    assert _pass()["started"] == 0

    (run,) = _runs(agent["id"])
    assert run.scheduled_for == datetime(2026, 10, 14, 13, 0, tzinfo=UTC)
    with session_scope() as s:
        row = s.get_one(Agent, uuid.UUID(agent["id"]))
        assert row.next_run_at == datetime(2026, 10, 14, 18, 0, tzinfo=UTC)


def test_an_occurrence_over_quota_is_recorded_as_refused_and_calls_nothing(
    client: TestClient, account: Account, clock: Clock
) -> None:
    agent = _agent(
        client,
        account,
        schedule_cron="0 * * * *",
        timezone="UTC",
        quota={"drafts_per_month": 1},
    )
    clock.now = datetime(2026, 10, 14, 13, 0, 1, tzinfo=UTC)
    assert _pass()["started"] == 1
    clock.now = datetime(2026, 10, 14, 14, 0, 1, tzinfo=UTC)
    assert _pass() == {"started": 0, "refused": 1, "abandoned_settled": 0}

    first, second = _runs(agent["id"])
    assert first.state == RunState.RESERVED
    assert second.state == RunState.REFUSED and second.job_id is None
    assert "drafts" in (second.error or "") and "resets on 2026-11-01" in (second.error or "")


def test_a_run_whose_worker_died_is_settled_and_frees_its_reservation(
    client: TestClient, account: Account, clock: Clock
) -> None:
    agent = _agent(client, account, schedule_cron="0 * * * *", timezone="UTC")
    clock.now = datetime(2026, 10, 14, 13, 0, 1, tzinfo=UTC)
    _pass()
    clock.now += timedelta(hours=3)

    assert _pass()["abandoned_settled"] == 1

    runs = _runs(agent["id"])
    assert runs[0].state == RunState.FAILED and "stopped" in (runs[0].error or "")

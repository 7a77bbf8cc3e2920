"""GET /api/v1/tasks/active?live=true: the workers' own view, cut down to the caller's
workspace (it showed every workspace's running tasks: ids, publication ids, pids)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from herald.core.db import session_scope, transaction_open
from herald.core.settings import get_settings
from herald.jobs.service import create_job
from herald.worker import app
from tests.conftest import Account
from tests.fakes.webhook_receiver import Receiver
from tests.workers import running_worker, wait_for

LOOPBACK = "127.0.0.0/8"


def _start_delivery(client: TestClient, account: Account, receiver: Receiver) -> dict[str, Any]:
    channel = client.post(
        "/api/v1/channels",
        json={"platform": "webhook", "name": "hook", "credentials": receiver.credentials()},
        headers=account.headers,
    )
    assert channel.status_code == 201, channel.text
    post = client.post("/api/v1/posts", json={"title": "Hi"}, headers=account.headers).json()
    accepted = client.post(
        f"/api/v1/posts/{post['id']}/publish",
        json={"channel_ids": [channel.json()["id"]]},
        headers=account.headers,
    )
    assert accepted.status_code == 202, accepted.text
    publication: dict[str, Any]
    (publication,) = accepted.json()["publications"]
    return publication


def _running_task_ids() -> set[str]:
    # One worker runs here: back at its reply, not at the end of the timeout.
    active = app.control.inspect(timeout=1.0, limit=1).active() or {}
    return {task["id"] for tasks in active.values() for task in tasks}


@pytest.mark.integration
def test_live_view_shows_only_the_callers_running_tasks(
    client: TestClient,
    make_account: Any,
    redis_broker: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(get_settings(), "allowed_private_networks", [LOOPBACK])
    ann = make_account("ann@example.com", workspace="ann-co")
    bob = make_account("bob@example.com", workspace="bob-co")
    # The receiver holds each delivery, so both stay running while we look.
    receiver = Receiver(hold_seconds=60).start()
    worker = None
    try:
        with running_worker({"HERALD_ALLOWED_PRIVATE_NETWORKS": LOOPBACK}) as worker:
            mine = _start_delivery(client, ann, receiver)
            theirs = _start_delivery(client, bob, receiver)
            wait_for(lambda: {mine["task_id"], theirs["task_id"]} <= _running_task_ids())

            for me, own, other in ((ann, mine, theirs), (bob, theirs, mine)):
                response = client.get("/api/v1/tasks/active?live=true", headers=me.headers)
                assert response.status_code == 200, response.text
                answer = response.json()
                running = [t for tasks in answer["workers"]["active"].values() for t in tasks]
                assert [t["id"] for t in running] == [own["task_id"]]
                assert running[0]["args"] == [own["id"]]
                text = json.dumps(answer)
                assert other["task_id"] not in text
                assert other["id"] not in text
            worker.kill()  # the held deliveries would otherwise keep a warm shutdown waiting
    finally:
        if worker is not None:
            worker.kill()
        receiver.stop()


class _Inspector:
    """Celery's inspect answer for two workspaces' tasks, and whether a database
    transaction was open while the workers were asked."""

    def __init__(self, tasks: list[dict[str, Any]]) -> None:
        self.tasks = tasks
        self.transaction_open_while_asking: list[bool] = []

    def _asked(self) -> None:
        self.transaction_open_while_asking.append(transaction_open())

    def active(self) -> dict[str, list[dict[str, Any]]]:
        self._asked()
        return {"celery@a": self.tasks[:1], "celery@b": self.tasks[1:]}

    def reserved(self) -> dict[str, list[dict[str, Any]]]:
        self._asked()
        return {"celery@a": list(self.tasks)}


def test_live_view_asks_the_workers_outside_any_transaction(
    client: TestClient, make_account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = make_account("ann@example.com", workspace="ann-co")
    bob = make_account("bob@example.com", workspace="bob-co")
    with session_scope() as session:
        ann_job = create_job(session, workspace_id=ann.workspace_id, kind="verify", params={})
        bob_job = create_job(session, workspace_id=bob.workspace_id, kind="verify", params={})
        ids = (ann_job.id, bob_job.id)
    tasks = [
        {"id": ids[0], "name": "herald.channels.verify", "args": [ids[0]], "worker_pid": 11},
        {"id": ids[1], "name": "herald.channels.verify", "args": [ids[1]], "worker_pid": 12},
        {"id": "periodic", "name": "herald.maintenance.reconcile", "args": [], "worker_pid": 13},
    ]
    inspector = _Inspector(tasks)
    monkeypatch.setattr(app.control, "inspect", lambda **_: inspector)

    answer = client.get("/api/v1/tasks/active?live=true", headers=ann.headers).json()
    assert answer["workers"] == {
        "active": {"celery@a": [tasks[0]], "celery@b": []},
        "reserved": {"celery@a": [tasks[0]]},
    }
    assert inspector.transaction_open_while_asking == [False, False]

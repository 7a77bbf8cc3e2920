"""`herald webhook` as a user runs it (real processes; few of them: each one starts
Python). SQLite only: the command line is a thin layer over the webhooks service, tested
on both databases in tests/webhooks/."""

from __future__ import annotations

import json

import pytest

from herald.webhooks.delivery import deliver
from herald.webhooks.models import DeliveryState
from tests.cli.runner import given_user, herald
from tests.fakes.event_receiver import EventReceiver
from tests.webhooks import due_ids

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True),
]


# Eight `herald` processes: each start costs seconds on a loaded machine.
@pytest.mark.timeout(300)
def test_add_test_log_redeliver_disable_enable_and_remove(
    db_backend: str, redis_broker: str
) -> None:
    given_user("ann@example.com", admin=True)
    with EventReceiver() as receiver:
        added = herald("webhook", "add", receiver.url, "--event", "*", "--json")
        assert added.returncode == 0, added.stderr
        made = json.loads(added.stdout)
        receiver.secret = made["secret"]
        short = made["id"][:8]

        assert herald("webhook", "test", short).returncode == 0
        (delivery_id,) = due_ids()
        assert deliver(delivery_id) == DeliveryState.DELIVERED  # the worker's part
        log = json.loads(herald("webhook", "deliveries", short, "--json").stdout)
        assert [(d["event_type"], d["state"], d["last_status"]) for d in log] == [
            ("webhook.test", "delivered", 200)
        ]
        again = herald("webhook", "redeliver", short, log[0]["id"][:8])
        assert again.returncode == 0, again.stderr
        assert deliver(delivery_id) == DeliveryState.DELIVERED
        assert receiver.duplicates == 1 and receiver.bad_signatures == 0

        assert herald("webhook", "disable", short).returncode == 0
        refused = herald("webhook", "test", short)
        assert refused.returncode == 1 and "enable it first" in refused.stderr
        listed = herald("webhook", "list", "--json")
        assert made["secret"] not in listed.stdout
        ((row),) = json.loads(listed.stdout)
        assert (row["id"], row["state"]) == (made["id"], "disabled")
        assert row["disabled_reason"] == "disabled by a person"
        assert herald("webhook", "remove", short).returncode == 0
        missing = herald("webhook", "enable", short)
        assert missing.returncode == 1 and "No webhook with an id starting" in missing.stderr

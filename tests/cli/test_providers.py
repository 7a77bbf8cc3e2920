"""`herald provider` as a user runs it: real processes, a local OpenAI-compatible fake.

`test` follows its job until it is done; the test runs the job's task body in-process as
a worker would. On SQLite only: the command line is a thin layer over the providers
service, tested on both databases in tests/agents/."""

from __future__ import annotations

import json

import pytest

from herald.agents.provider_tasks import test_provider as run_test_job
from tests.cli.runner import follow, given_user, herald, herald_env
from tests.fakes.openai import OpenAIServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True),
]


def test_add_list_test_and_remove_a_provider_from_the_command_line(
    db_backend: str,
    redis_broker: str,
    openai_server: OpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    given_user("ann@example.com", admin=True)
    openai_server.api_key = "sk-from-env"

    bad = herald("provider", "add", "openai", "Bad", "--model", "gpt-4o-mini")
    assert bad.returncode == 1
    assert bad.stderr == "herald: error: An openai provider needs a base_url.\n"
    both = herald("provider", "add", "openai", "X", "--api-key-stdin", "--api-key-env", "K")
    assert both.returncode == 1 and "not both" in both.stderr
    unset = herald("provider", "add", "openai", "X", "--api-key-env", "HERALD_TEST_NO_SUCH")
    assert unset.returncode == 1 and "HERALD_TEST_NO_SUCH is not set" in unset.stderr

    monkeypatch.setenv("HERALD_TEST_KEY", "sk-from-env")
    added = herald(
        "provider", "add", "openai", "Fake",
        "--base-url", openai_server.base_url, "--model", "gpt-4o-mini",
        "--api-key-env", "HERALD_TEST_KEY", "--input-price", "1", "--timeout", "20", "--json",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    provider = json.loads(added.stdout)
    assert provider["has_api_key"] is True and "sk-from-env" not in added.stdout
    assert (provider["input_price_per_million"], provider["output_price_per_million"]) == (1, 0.6)
    assert provider["timeout_seconds"] == 20

    local = herald(
        "provider", "add", "openai", "Local", "--base-url", "http://127.0.0.1:11434/v1",
        "--model", "llama3.2", "--api-key-stdin", stdin="sk-typed\n",
    )  # fmt: skip
    assert local.returncode == 0 and "Added openai provider 'Local'" in local.stdout
    offline = herald("provider", "add", "digest", "Offline")
    assert offline.returncode == 0, offline.stderr

    table = herald("provider", "list")
    assert table.returncode == 0, table.stderr
    for shown in ("Fake", "Local", "Offline", "gpt-4o-mini", "1 / 0.6", "unknown (0)"):
        assert shown in table.stdout
    assert "sk-" not in table.stdout

    tested = follow("provider_test", run_test_job, "provider", "test", "Fake")
    assert tested.returncode == 0, tested.stderr
    assert "Fake (gpt-4o-mini) answered: 'OK'" in tested.stdout
    assert "tokens: " in tested.stdout and "1 out; cost: $0.00" in tested.stdout
    assert "latency: " in tested.stdout
    assert openai_server.headers[-1]["authorization"] == "Bearer sk-from-env"

    openai_server.api_key = "sk-rotated"
    refused = follow("provider_test", run_test_job, "provider", "test", provider["id"][:8])
    assert refused.returncode == 1
    assert refused.stderr.startswith("herald: error: the test of Fake failed: Fake answered 401")
    listed = json.loads(herald("provider", "list", "--json").stdout)
    assert {p["name"]: p["state"] for p in listed}["Fake"] == "needs_reconnect"

    removed = herald("provider", "remove", "Fake")
    assert removed.returncode == 0 and "Removed 'Fake'" in removed.stdout
    assert herald("provider", "remove", "Fake").returncode == 1
    assert herald_env()["HERALD_TEST_KEY"] == "sk-from-env"

"""The OpenAI-compatible provider against a local fake of the API, and the fake itself:
each class of error, usage read or estimated, Retry-After, the address guard."""

from __future__ import annotations

import email.utils
import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from herald.agents.prompt import messages_for
from herald.agents.providers.base import (
    ErrorKind,
    GenerationRequest,
    ProviderConfig,
    ProviderError,
    SourceText,
)
from herald.agents.providers.openai import OpenAIProvider
from herald.agents.providers.registry import provider_for
from herald.agents.tokens import estimate_messages, estimate_tokens
from tests.adapters.contract import private_networks_refused
from tests.fakes.openai import OpenAIServer, article

ITEMS = [
    SourceText(
        id=uuid.uuid4(),
        title="Rust 1.90 released",
        text="The Rust team has published a new version with faster builds.",
        link="https://blog.rust-lang.org/2026/11/20/rust-1.90.html",
        source_name="Rust Blog",
        author="The Rust Release Team",
    ),
    SourceText(
        id=uuid.uuid4(),
        title="Cargo gets a new resolver",
        text="Cargo resolves features differently now.",
        link="https://example.org/cargo",
        source_name="Example News",
    ),
]
REQUEST = GenerationRequest(
    topic="Rust this month", keywords=["rust", "cargo"], items=ITEMS, max_output_tokens=400
)


def config(server: OpenAIServer, **changes: object) -> ProviderConfig:
    fields: dict[str, object] = {
        "kind": "openai",
        "name": "fake",
        "id": uuid.uuid4(),
        "base_url": server.base_url,
        "model": "gpt-4o-mini",
        "timeout_seconds": 10.0,
        **changes,
    }
    return ProviderConfig(**fields)  # type: ignore[arg-type]


def failure(server: OpenAIServer, **changes: object) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        OpenAIProvider(config(server, **changes)).generate(REQUEST)
    error = caught.value
    # Every failure carries the record of its call, for the ledger.
    assert error.call.outcome == str(error.kind)
    assert error.call.error == error.message
    assert error.call.model == changes.get("model", "gpt-4o-mini")
    return error


# -- the fake itself --------------------------------------------------------------------


def _post(server: OpenAIServer, body: object) -> httpx.Response:
    return httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=10)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, 400, "model"),
        ({"model": "gpt-4o-mini", "messages": []}, 400, "messages"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "bot", "content": "hi"}]}, 400,
         "messages[0].role"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 3}]}, 400,
         "messages[0].content"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
          "max_tokens": 0}, 400, "max_tokens"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
          "temperature": 3}, 400, "temperature"),
        ({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}, 404, None),
    ],
)  # fmt: skip
def test_the_fake_refuses_what_the_api_refuses_in_its_shape(
    openai_server: OpenAIServer, body: object, status: int, param: str | None
) -> None:
    answer = _post(openai_server, body)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["message"]


def test_the_fake_answers_a_chat_completion_within_max_tokens(
    openai_server: OpenAIServer,
) -> None:
    messages = messages_for(REQUEST)
    full = _post(openai_server, {"model": "gpt-4o-mini", "messages": messages}).json()
    assert full["object"] == "chat.completion" and full["model"] == "gpt-4o-mini"
    (choice,) = full["choices"]
    text = choice["message"]["content"]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    assert text.startswith("# Rust this month\n")
    assert all(item.link and item.link in text for item in ITEMS)
    usage = full["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    cut = _post(openai_server, {"model": "gpt-4o-mini", "messages": messages, "max_tokens": 5})
    assert cut.json()["usage"]["completion_tokens"] == 5
    assert cut.json()["choices"][0]["finish_reason"] == "length"
    models = httpx.get(f"{openai_server.base_url}/models", timeout=10).json()
    assert "gpt-4o-mini" in [m["id"] for m in models["data"]]
    assert openai_server.calls == 2


# -- the provider -----------------------------------------------------------------------


def test_a_draft_is_made_from_the_answer_with_its_usage(openai_server: OpenAIServer) -> None:
    generation = OpenAIProvider(config(openai_server)).generate(REQUEST)
    draft, call = generation.draft, generation.call
    assert draft.title == "Rust this month"
    assert "## Sources" not in draft.body  # the answer linked every item itself
    assert draft.short_text.endswith(str(ITEMS[0].link))
    (sent,) = openai_server.requests
    assert sent["model"] == "gpt-4o-mini" and sent["max_tokens"] == 400
    assert sent["messages"] == messages_for(REQUEST)
    assert 0 <= sent["temperature"] <= 2
    assert "authorization" not in openai_server.headers[0]  # no key, no header

    assert call.outcome == "ok" and call.status == 200 and call.error is None
    assert not call.usage.estimated
    assert call.usage.output_tokens == len(article(messages_for(REQUEST)).split())
    assert call.usage.input_tokens > 0 and call.latency_ms >= 0


def test_the_key_is_sent_as_a_bearer_token(openai_server: OpenAIServer) -> None:
    openai_server.api_key = "sk-test-123"
    OpenAIProvider(config(openai_server, api_key="sk-test-123")).generate(REQUEST)
    assert openai_server.headers[0]["authorization"] == "Bearer sk-test-123"


def test_an_answer_without_usage_is_counted_by_estimate(openai_server: OpenAIServer) -> None:
    openai_server.omit_usage()
    call = OpenAIProvider(config(openai_server)).generate(REQUEST).call
    assert call.usage.estimated
    assert call.usage.input_tokens == estimate_messages(messages_for(REQUEST))
    assert call.usage.output_tokens == estimate_tokens(article(messages_for(REQUEST)))


def test_the_estimate_counts_the_answers_text(openai_server: OpenAIServer) -> None:
    openai_server.omit_usage()
    text, call = OpenAIProvider(config(openai_server)).complete(
        [{"role": "user", "content": "Reply with the word OK."}], 5
    )
    assert text == "OK"
    assert call.usage.output_tokens == estimate_tokens("OK") == 1


def test_429_is_retryable_after_the_seconds_the_server_says(openai_server: OpenAIServer) -> None:
    openai_server.fail_next(429, retry_after="7")
    error = failure(openai_server)
    assert error.kind == ErrorKind.RETRYABLE and error.retry_after == 7
    assert error.call.status == 429 and "Rate limit reached" in error.message


def test_retry_after_as_an_http_date(openai_server: OpenAIServer) -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    openai_server.fail_next(429, retry_after=when)
    error = failure(openai_server)
    assert error.kind == ErrorKind.RETRYABLE
    assert error.retry_after is not None and 60 < error.retry_after <= 120


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retryable(openai_server: OpenAIServer, status: int) -> None:
    openai_server.fail_next(status)
    error = failure(openai_server)
    assert error.kind == ErrorKind.RETRYABLE and error.retry_after is None
    assert f"answered {status}" in error.message


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_is_auth(openai_server: OpenAIServer, status: int) -> None:
    openai_server.fail_next(status)
    error = failure(openai_server)
    assert error.kind == ErrorKind.AUTH and "API key" in error.message


def test_a_wrong_key_is_auth(openai_server: OpenAIServer) -> None:
    openai_server.api_key = "sk-right"
    error = failure(openai_server, api_key="sk-wrong")
    assert error.kind == ErrorKind.AUTH and "Incorrect API key provided" in error.message


def test_a_refused_request_is_permanent_with_the_servers_words(
    openai_server: OpenAIServer,
) -> None:
    error = failure(openai_server, model="gpt-9")
    assert error.kind == ErrorKind.PERMANENT and error.call.status == 404
    assert error.message == (
        "fake answered 404: The model `gpt-9` does not exist or you do not have access to it."
    )
    openai_server.fail_next(400, body={"error": {"message": "context too long", "type": "x"}})
    error = failure(openai_server)
    assert error.kind == ErrorKind.PERMANENT and error.message.endswith("context too long")


def test_an_answer_that_is_not_a_chat_completion_is_permanent(
    openai_server: OpenAIServer,
) -> None:
    openai_server.malformed_next()
    error = failure(openai_server)
    assert error.kind == ErrorKind.PERMANENT
    assert error.message.startswith("the server's answer is not a chat completion: <html>")
    openai_server.fail_next(200, body={"choices": []})
    assert "not a chat completion" in failure(openai_server).message


def test_a_slow_server_is_retryable(openai_server: OpenAIServer) -> None:
    openai_server.slow(30)
    error = failure(openai_server, timeout_seconds=0.3)
    assert error.kind == ErrorKind.RETRYABLE and "did not answer within 0.3 s" in error.message


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]  # bound, not listening: connections are refused


def test_a_server_that_is_not_there_is_retryable(
    openai_server: OpenAIServer, closed_port: int
) -> None:
    error = failure(openai_server, base_url=f"http://127.0.0.1:{closed_port}/v1")
    assert error.kind == ErrorKind.RETRYABLE and "could not reach fake" in error.message


def test_a_refused_address_is_permanent_and_says_which_setting(
    openai_server: OpenAIServer,
) -> None:
    with private_networks_refused():
        error = failure(openai_server)
    assert error.kind == ErrorKind.PERMANENT
    assert "HERALD_ALLOWED_PRIVATE_NETWORKS" in error.message
    assert openai_server.calls == 0


def test_the_registry_gives_the_openai_provider(openai_server: OpenAIServer) -> None:
    assert isinstance(provider_for(config(openai_server)), OpenAIProvider)
    with pytest.raises(ValueError, match="no provider of kind 'bard'"):
        provider_for(ProviderConfig(kind="bard", name="x"))
    assert openai_server.calls == 0

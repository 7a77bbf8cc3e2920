"""Any OpenAI-compatible chat-completions endpoint: OpenAI itself and other hosted APIs,
and local servers (Ollama at ``http://localhost:11434/v1``, llama.cpp's server at
``http://localhost:8080/v1``, vLLM), which need ``HERALD_ALLOWED_PRIVATE_NETWORKS``.

One ``POST {base_url}/chat/completions`` per :meth:`OpenAIProvider.generate`, through the
guarded client, classified as the adapters classify (``herald.adapters.http``): 429, 5xx,
timeouts and dropped connections are retryable (with ``Retry-After``), 401/403 mean the
key is wrong, anything else the server refuses is permanent with the server's own words.
Nothing is ambiguous here: a chat completion posts nothing, so asking again is harmless.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from herald.adapters.http import error_message, is_retryable_status, retry_after_seconds
from herald.agents.compose import draft_from_markdown
from herald.agents.prompt import messages_for
from herald.agents.providers.base import (
    CallRecord,
    ErrorKind,
    Generation,
    GenerationRequest,
    ProviderConfig,
    ProviderError,
    Usage,
)
from herald.agents.tokens import estimate_messages, estimate_tokens
from herald.core.http import AddressNotAllowed, OutgoingRequestRefused, shared_client

TEMPERATURE = 0.7
CONNECT_TIMEOUT = 10.0


class OpenAIProvider:
    def __init__(self, config: ProviderConfig, *, temperature: float = TEMPERATURE) -> None:
        if not config.base_url or not config.model:
            raise ValueError("an openai provider needs a base_url and a model")
        self.config = config
        self.model: str = config.model
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        self.temperature = temperature

    def generate(self, request: GenerationRequest) -> Generation:
        """Ask for the article ``request`` describes; the draft made from the answer."""
        text, call = self.complete(messages_for(request), request.max_output_tokens)
        return Generation(draft=draft_from_markdown(text, request), call=call)

    def complete(self, messages: list[dict[str, str]], max_tokens: int) -> tuple[str, CallRecord]:
        """One chat completion: the answer's text and the record of the call. Raises
        :class:`ProviderError` (with its record) when the call fails."""
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": self.temperature,
        }
        headers = {"Accept": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        timeout = httpx.Timeout(
            self.config.timeout_seconds, connect=min(CONNECT_TIMEOUT, self.config.timeout_seconds)
        )
        client = shared_client()
        started = time.perf_counter()
        try:
            request = client.build_request(
                "POST", self.url, json=body, headers=headers, timeout=timeout
            )
            response = client.send(request)
            response.read()
        except AddressNotAllowed as exc:
            raise self._error(
                f"{exc.message}; a model server on this machine or network needs its "
                "address in HERALD_ALLOWED_PRIVATE_NETWORKS (e.g. 127.0.0.0/8,::1/128)",
                ErrorKind.PERMANENT,
                started,
            ) from exc
        except OutgoingRequestRefused as exc:  # an answer past the size cap
            raise self._error(exc.message, ErrorKind.PERMANENT, started) from exc
        except httpx.TimeoutException as exc:
            raise self._error(
                f"{self.config.name} did not answer within {self.config.timeout_seconds:g} s "
                f"({type(exc).__name__})",
                ErrorKind.RETRYABLE,
                started,
            ) from exc
        except httpx.HTTPError as exc:
            raise self._error(
                f"could not reach {self.config.name} at {self.url}: {exc!s}",
                ErrorKind.RETRYABLE,
                started,
            ) from exc
        latency = _ms(started)
        status = response.status_code
        if status >= 300:
            words = f"{self.config.name} answered {status}: {error_message(response)}"
            if status in (401, 403):
                kind = ErrorKind.AUTH
                words += " (check the provider's API key)"
            elif is_retryable_status(status):
                kind = ErrorKind.RETRYABLE
            else:
                kind = ErrorKind.PERMANENT
            raise ProviderError(
                words,
                kind=kind,
                call=self._record(latency, kind, words, status),
                retry_after=retry_after_seconds(response) if kind == ErrorKind.RETRYABLE else None,
            )
        text, usage = self._read(response, messages, latency)
        return text, CallRecord(model=self.model, usage=usage, latency_ms=latency, status=status)

    def _read(
        self, response: httpx.Response, messages: list[dict[str, str]], latency: int
    ) -> tuple[str, Usage]:
        try:
            data: Any = response.json()
            text = data["choices"][0]["message"]["content"]
        except (ValueError, LookupError, TypeError) as exc:
            snippet = " ".join(response.text[:200].split()) or "(an empty body)"
            message = f"the server's answer is not a chat completion: {snippet}"
            raise ProviderError(
                message,
                kind=ErrorKind.PERMANENT,
                call=self._record(latency, ErrorKind.PERMANENT, message, response.status_code),
            ) from exc
        if not isinstance(text, str):
            text = ""  # a refusal or a tool call: nothing to draft from
        return text, _usage(data.get("usage"), messages, text)

    def _record(
        self, latency: int, kind: ErrorKind, message: str, status: int | None = None
    ) -> CallRecord:
        return CallRecord(
            model=self.model,
            usage=Usage(),
            latency_ms=latency,
            outcome=str(kind),
            error=message,
            status=status,
        )

    def _error(self, message: str, kind: ErrorKind, started: float) -> ProviderError:
        return ProviderError(message, kind=kind, call=self._record(_ms(started), kind, message))


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _usage(raw: Any, messages: list[dict[str, str]], text: str) -> Usage:
    """The answer's own counts, or an estimate (marked) when it has none."""
    if isinstance(raw, dict):
        prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(completion, int):
            return Usage(input_tokens=prompt, output_tokens=completion)
    return Usage(
        input_tokens=estimate_messages(messages),
        output_tokens=estimate_tokens(text),
        estimated=True,
    )

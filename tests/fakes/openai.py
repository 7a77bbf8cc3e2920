"""A local OpenAI-compatible chat-completions server, as the API documents it.

``POST /v1/chat/completions`` validates the request (``model`` a known model's name,
``messages`` a non-empty list of ``{role: system|user|assistant, content: string}``,
``max_tokens`` a positive integer, ``temperature`` 0 to 2) and answers a refusal in the
API's own shape, ``{"error": {"message", "type", "param", "code"}}`` (400, or 404 for an
unknown model, 401 for a wrong key when the server has one). It answers a chat
completion whose text is a deterministic Markdown article built from the request: a
'# ' title from the topic and one paragraph per item, linking the item's link. The
completion never uses more than ``max_tokens`` tokens (one token a word here; cut, it
ends with ``finish_reason: "length"``). ``GET /v1/models`` lists the models.

Scriptable per test, thread-safe::

    server.fail_next(429, retry_after="7")      # then 500, 401... in turn, one per request
    server.fail_next(400, body={"error": ...})   # a body of one's own (bytes: sent as is)
    server.slow(5)                               # the next answer waits 5 s (stop() ends it)
    server.malformed_next()                      # the next answer is not JSON
    server.omit_usage()                          # answers carry no usage from now on
    server.latency = 0.01                        # every answer waits this long
    server.requests, server.calls                # what it received (JSON bodies), how many
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from tests.fakes.loopback import LoopbackServer, TrackedHandler

MODELS = ("gpt-4o-mini", "gpt-4.1-nano", "llama3.2")
ROLES = frozenset({"system", "user", "assistant"})

_DEFAULT_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Bad request.", "invalid_request_error", None),
    401: (
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    ),
    403: ("You are not allowed to use this model.", "invalid_request_error", None),
    429: (
        "Rate limit reached for requests. Please try again in 7s.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: ("The server had an error while processing your request.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


def error_body(status: int, message: str | None = None, param: str | None = None) -> bytes:
    default, kind, code = _DEFAULT_ERRORS.get(status, (f"HTTP {status}", "server_error", None))
    error = {"message": message or default, "type": kind, "param": param, "code": code}
    return json.dumps({"error": error}).encode()


@dataclass(frozen=True)
class _Fault:
    status: int | None = None
    retry_after: str | None = None
    body: bytes | None = None
    delay: float = 0.0
    malformed: bool = False


def _words(text: str) -> int:
    return len(text.split())


def check_request(body: Any, models: tuple[str, ...]) -> tuple[int, str, str | None] | None:
    """What the API refuses in a chat-completion request: (status, message, param)."""
    if not isinstance(body, dict):
        return 400, "We could not parse the JSON body of your request.", None
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return 400, "you must provide a model parameter", "model"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return 400, "'messages' must be a non-empty array.", "messages"
    for n, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return 400, f"Invalid value for 'messages[{n}].role'.", f"messages[{n}].role"
        if not isinstance(message.get("content"), str):
            return 400, f"Invalid type for 'messages[{n}].content'.", f"messages[{n}].content"
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        return 400, "Invalid 'max_tokens': must be a positive integer.", "max_tokens"
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float) or not 0 <= temperature <= 2
    ):
        return 400, "Invalid 'temperature': must be between 0 and 2.", "temperature"
    if model not in models:
        return 404, f"The model `{model}` does not exist or you do not have access to it.", None
    return None


def article(messages: list[dict[str, str]]) -> str:
    """The deterministic answer: a title from the topic, a paragraph per linked item."""
    user = "\n".join(m["content"] for m in messages if m["role"] == "user")
    topic = re.search(r"^Topic: (.+)$", user, re.M)
    titles = re.findall(r"^## Item \d+: (.+)$", user, re.M)
    links = re.findall(r"^Link: (\S+)$", user, re.M)
    title = topic.group(1).strip() if topic else "A short note"
    if not links and "OK" in user:
        return "OK"
    lines = [f"# {title}", "", f"This article looks at {title.lower()} through recent items."]
    for item_title, link in zip(titles, links, strict=False):
        lines += ["", f"According to [{item_title}]({link}), there is news worth reading."]
    return "\n".join(lines)


class OpenAIServer(LoopbackServer):
    """See the module docstring."""

    def __init__(self, *, api_key: str | None = None, models: tuple[str, ...] = MODELS) -> None:
        super().__init__()
        self.api_key = api_key
        self.models = models
        self.latency = 0.0
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._usage = True
        self._faults: deque[_Fault] = deque()

    # -- control surface -----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.requests)

    def fail_next(
        self,
        status: int,
        retry_after: str | None = None,
        body: bytes | dict[str, Any] | None = None,
    ) -> None:
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        with self._lock:
            self._faults.append(_Fault(status=status, retry_after=retry_after, body=raw))

    def slow(self, seconds: float) -> None:
        with self._lock:
            self._faults.append(_Fault(delay=seconds))

    def malformed_next(self) -> None:
        with self._lock:
            self._faults.append(_Fault(malformed=True))

    def omit_usage(self, omit: bool = True) -> None:
        with self._lock:
            self._usage = not omit

    # -- answers -------------------------------------------------------------------------

    def _take(self, body: Any, headers: dict[str, str]) -> tuple[_Fault | None, bool]:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            return (self._faults.popleft() if self._faults else None), self._usage

    def _complete(self, body: Any, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        fault, with_usage = self._take(body, headers)
        wait = self.latency + (fault.delay if fault else 0.0)
        if wait and self._stopping.wait(wait):
            return 503, error_body(503), {}
        if fault is not None and fault.status is not None:
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return fault.status, fault.body or error_body(fault.status), extra
        if fault is not None and fault.malformed:
            return 200, b"<html><body>502 Bad Gateway</body></html>", {}
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, error_body(401), {}
        refused = check_request(body, self.models)
        if refused is not None:
            status, message, param = refused
            return status, error_body(status, message, param), {}
        text = article(body["messages"])
        limit = body.get("max_tokens")
        finish = "stop"
        if limit is not None and _words(text) > limit:
            ends = [m.end() for m in re.finditer(r"\S+", text)]
            text, finish = text[: ends[limit - 1]], "length"  # cut after the limit-th word
        prompt = sum(4 + _words(m["content"]) for m in body["messages"]) + 3
        answer: dict[str, Any] = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ],
        }
        if with_usage:
            completion = _words(text)
            answer["usage"] = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
        return 200, json.dumps(answer).encode(), {}

    def _models(self) -> bytes:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return json.dumps({"object": "list", "data": data}).encode()

    # -- lifecycle -----------------------------------------------------------------------

    def _handler(self) -> type[TrackedHandler]:
        fake = self

        class Handler(TrackedHandler):
            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._answer(200, fake._models(), {})
                else:
                    self._answer(404, error_body(404, f"Unknown path {self.path}"), {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._answer(404, error_body(404, f"Unknown path {self.path}"), {})
                    return
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = None
                headers = {name.lower(): value for name, value in self.headers.items()}
                self._answer(*fake._complete(body, headers))

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                try:
                    self.send_response(status)
                    is_json = body[:1] in (b"{", b"[")
                    self.send_header("Content-Type", "application/json" if is_json else "text/html")
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        return Handler

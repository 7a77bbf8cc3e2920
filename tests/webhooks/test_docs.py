"""docs/webhooks.md: its events table and examples are events.py's, and its verification
code, Python and JavaScript, accepts a real delivery's signature (and refuses a forged
one). The JavaScript runs under `node`: skipped where it is missing, failed in CI."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from herald.webhooks.events import EVENT_TYPES
from tests.conftest import Account
from tests.fakes.event_receiver import EventReceiver
from tests.services import service_missing
from tests.webhooks import add_webhook, run_due

DOC = Path(__file__).parents[2] / "docs" / "webhooks.md"


def _block(language: str) -> str:
    found = re.search(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)
    assert found, f"no {language} block in {DOC.name}"
    return found.group(1)


def test_the_events_table_and_examples_are_the_code_s() -> None:
    text = DOC.read_text()
    for event in EVENT_TYPES:
        assert f"| `{event.name}` | {event.description} |" in text, event.name
        example = re.search(rf"#### `{re.escape(event.name)}`\n\n```json\n(.*?)```", text, re.S)
        assert example, f"no example for {event.name}"
        assert json.loads(example.group(1)) == event.example, event.name
    listed = re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", text, re.M)
    assert listed == [event.name for event in EVENT_TYPES]


def _a_real_delivery(
    client: TestClient, account: Account, receiver: EventReceiver
) -> tuple[dict[str, str], bytes]:
    hook = add_webhook(client, account, receiver)
    client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=account.headers)
    run_due()
    (request,) = receiver.requests
    return request["headers"], request["body"]


def test_the_python_snippet_verifies_a_real_delivery(
    client: TestClient, account: Account, event_receiver: EventReceiver
) -> None:
    headers, body = _a_real_delivery(client, account, event_receiver)
    namespace: dict[str, Any] = {}
    exec(_block("python"), namespace)  # noqa: S102 - the documentation's own code
    verify = namespace["verify"]
    assert verify(event_receiver.secret, headers, body) is True
    assert verify("whsec_not-the-secret", headers, body) is False
    assert verify(event_receiver.secret, headers, body + b" ") is False
    stale = headers | {"herald-timestamp": str(int(headers["herald-timestamp"]) - 301)}
    assert verify(event_receiver.secret, stale, body) is False


def test_the_javascript_snippet_verifies_a_real_delivery(
    client: TestClient, account: Account, event_receiver: EventReceiver, tmp_path: Path
) -> None:
    node = shutil.which("node")
    if node is None:
        service_missing("node", "the `node` command is not on PATH")
    headers, body = _a_real_delivery(client, account, event_receiver)
    (tmp_path / "verify.js").write_text(_block("javascript"))
    (tmp_path / "check.js").write_text(
        """
const { verify } = require("./verify.js");
const input = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const body = Buffer.from(input.body, "base64");
const results = input.cases.map(([secret, extra]) =>
  verify(secret, input.headers, Buffer.concat([body, Buffer.from(extra)])));
console.log(JSON.stringify(results));
"""
    )
    cases = [
        [event_receiver.secret, ""],
        ["whsec_not-the-secret", ""],
        [event_receiver.secret, " "],
    ]
    payload = {"headers": headers, "body": base64.b64encode(body).decode(), "cases": cases}
    ran = subprocess.run(
        [str(node), str(tmp_path / "check.js")],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == [True, False, False]

"""Slack: a post becomes a message in a channel, through an incoming webhook or a bot.

Two ways in, one adapter (the credentials say which):

- **Incoming webhook** (``webhook_url``): ``POST {"text": ...}``. Slack answers ``ok`` as
  plain text and errors as plain-text codes with an HTTP status (``invalid_payload`` 400,
  ``action_prohibited``/``invalid_token`` 403, ``no_service``/``channel_not_found`` 404,
  ``channel_is_archived`` 410). No message id comes back and nothing can be read, so a
  resend after a timeout cannot be checked: ``find_existing`` knows only what this
  adapter recorded itself.
- **Bot token** (``bot_token`` + ``channel``): ``chat.postMessage``. Slack answers 200 with
  ``{"ok": false, "error": "<code>"}`` for most failures. Each message carries metadata
  ``{"event_type": "herald_post", "event_payload": {"key": ..., "part": ...}}``, so
  ``find_existing`` can find a message sent just before a timeout in
  ``conversations.history``. Parts after the first go into the first message's thread.

Text is Slack's own mrkdwn (``*bold*``, ``_italic_``, ``<url|text>``, ``&amp;`` ``&lt;``
``&gt;`` escaped); :class:`ChatMarkup` turns Markdown into it. Slack truncates a message's
text past 40,000 characters, so longer posts are split.

"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import Field, model_validator

from herald.adapters import base
from herald.adapters.http import (
    HttpAdapter,
    HttpSettings,
    error_message,
    raise_for_status,
    retry_after_seconds,
)
from herald.adapters.markup import ChatMarkup
from herald.adapters.registry import register
from herald.adapters.text import split_thread

PLATFORM = "slack"
# chat.postMessage: "Slack will truncate messages containing more than 40,000 characters".
MAX_TEXT = 40_000
METADATA_EVENT = "herald_post"
# conversations.history is read newest first; a message sent a moment ago is near the top.
LOOKUP_DEPTH = 20

# Web API error codes (https://api.slack.com/methods/chat.postMessage#errors) that mean
# the token or the channel needs attention rather than the post.
_AUTH_CODES = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "team_access_not_granted",
        "missing_scope",
        "not_in_channel",
        "channel_not_found",
        "is_archived",
    }
)
# "It's possible some aspect of the operation succeeded before the error was raised."
_MAYBE_DONE_CODES = frozenset({"internal_error", "fatal_error"})
_RETRY_CODES = frozenset({"ratelimited", "rate_limited", "service_unavailable"})
# Incoming webhooks: the hook is gone (404) or its channel archived (410).
_WEBHOOK_GONE = frozenset({404, 410})


# -- shared by the chat adapters ---------------------------------------------------------


def _url_for_slack(url: str) -> str:
    """A URL inside ``<…>``: the three control characters escaped, ``|`` kept out."""
    safe = url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    return safe.replace("&", "&amp;")


class SlackMarkup(ChatMarkup):
    """Slack's mrkdwn: ``*bold*``, ``_italic_``, ``~strike~``, ``<url|text>``."""

    def escape_text(self, text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def bare_url(self, url: str) -> str:
        return f"<{_url_for_slack(url)}>"

    def link(self, label: str, href: str) -> str:
        if not label or label == self.escape_text(href):
            return f"<{_url_for_slack(href)}>"
        return f"<{_url_for_slack(href)}|{label}>"


def slack_text(post: base.PostContent) -> str:
    """The whole post as one mrkdwn text: the title (linked to the canonical URL) in bold,
    then the body."""
    markup = SlackMarkup()
    body = markup.render(post.body)
    title = markup.escape_text(post.title.strip())
    if title and post.canonical_url:
        head = f"*<{_url_for_slack(post.canonical_url)}|{title}>*"
    elif title:
        head = f"*{title}*"
    else:
        head = ""
    tail = f"<{_url_for_slack(post.canonical_url)}>" if post.canonical_url and not title else ""
    return "\n\n".join(piece for piece in (head, body, tail) if piece)


class SlackCredentials(base.StrictModel):
    webhook_url: str | None = Field(
        None,
        description="Incoming webhook URL (https://hooks.slack.com/services/T…/B…/…). "
        "Give this, or bot_token and channel.",
    )
    bot_token: str | None = Field(
        None, description="Bot User OAuth Token (xoxb-…) with the chat:write scope."
    )
    channel: str | None = Field(
        None, description="Channel ID the bot posts to (C0123ABCDEF); with bot_token."
    )
    api_url: str = Field(
        "https://slack.com/api", description="Slack Web API base URL (change only for testing)."
    )

    @model_validator(mode="after")
    def _one_way_in(self) -> SlackCredentials:
        if bool(self.webhook_url) == bool(self.bot_token):
            raise ValueError("give either webhook_url, or bot_token and channel")
        if self.bot_token and not self.channel:
            raise ValueError("channel (its ID, e.g. C0123ABCDEF) is required with bot_token")
        if self.webhook_url and urlsplit(self.webhook_url).scheme not in ("http", "https"):
            raise ValueError("webhook_url must be an https URL")
        return self


class SlackSettings(HttpSettings):
    """Only the timeouts."""


@register
class SlackAdapter(HttpAdapter[SlackCredentials, SlackSettings]):
    platform = "slack"
    display_name = "Slack"
    credentials_model = SlackCredentials
    settings_model = SlackSettings
    # Slack: chat.postMessage allows "1 message per second per channel" (short bursts
    # tolerated); incoming webhooks the same. Images are not sent.
    limits = base.Limits(
        max_length=MAX_TEXT,
        max_media=0,
        requests_per_minute=60,
        buckets=(
            base.Bucket(
                "channel",
                1,
                1,
                base.Scope.CHAT,
                corrected_by=("chat.postMessage", "/services/"),
                source="docs.slack.dev/apis/web-api/rate-limits "
                "(chat.postMessage and incoming webhooks: 1 per second per channel)",
            ),
        ),
    )

    def budget_scope(self, scope: base.Scope) -> str | None:
        credentials = self.credentials
        if credentials.webhook_url:
            return credentials.webhook_url
        return f"{credentials.api_url}|{credentials.bot_token}|{credentials.channel}"

    # -- HTTP --------------------------------------------------------------------------

    def _api(
        self, method: str, name: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> tuple[dict[str, Any], httpx.Response]:
        """Call a Web API method; the answer when ``ok``, else the error it means."""
        headers = {"Authorization": f"Bearer {self.credentials.bot_token}"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
            content = json.dumps(body).encode()
        request = self.build_request(
            method,
            f"{self.credentials.api_url.rstrip('/')}/{name}",
            params=params,
            content=content,
            headers=headers,
        )
        response = self.transmit(request)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise_for_status(response, platform=PLATFORM)
            message = f"slack answered {name} with something that is not JSON"
            if method == "GET":
                raise base.PermanentError(message)
            raise base.AmbiguousError(f"{message}; the message may or may not have been posted")
        if response.status_code < 300 and data.get("ok") is True:
            return data, response
        raise _api_error(name, data, response)

    def _hook(self, payload: dict[str, Any]) -> httpx.Response:
        assert self.credentials.webhook_url is not None
        request = self.build_request(
            "POST",
            self.credentials.webhook_url,
            content=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        return self.transmit(request)

    # -- verify ------------------------------------------------------------------------

    def verify(self) -> base.Identity:
        if self.credentials.webhook_url:
            return self._verify_webhook()
        auth, response = self._api("GET", "auth.test")
        scopes = {s.strip() for s in response.headers.get("x-oauth-scopes", "").split(",")}
        scopes.discard("")
        if scopes and "chat:write" not in scopes:
            raise base.AuthError("the Slack token lacks the chat:write scope")
        detail: dict[str, Any] = {
            "team": auth.get("team"),
            "team_url": auth.get("url"),
            "bot_user_id": auth.get("user_id"),
            "channel_id": self.credentials.channel,
            # conversations.history needs it: without it a post sent just before a
            # timeout cannot be found, and the delivery is marked unconfirmed.
            "can_look_up_posts": not scopes
            or bool({"channels:history", "groups:history"} & scopes),
        }
        try:
            info, _ = self._api("GET", "conversations.info", params={"channel": self.channel})
        except base.AuthError as exc:
            if "missing_scope" not in exc.message:
                raise
            detail["channel_checked"] = False  # channels:read not granted: cannot tell
        else:
            channel = info.get("channel") or {}
            detail |= {"channel": channel.get("name"), "channel_checked": True}
            if channel.get("is_archived"):
                raise base.AuthError(f"the Slack channel {self.channel} is archived")
            if channel.get("is_member") is False and "chat:write.public" not in scopes:
                raise base.AuthError(
                    f"the bot is not in the Slack channel {self.channel}: "
                    "invite it there (/invite @your-app)"
                )
        self.store.save_session({"team_url": auth.get("url")})
        return base.Identity(name=f"{auth.get('user')} in {auth.get('team')}", detail=detail)

    def _verify_webhook(self) -> base.Identity:
        # An incoming webhook has no read call. An empty message is refused (400
        # no_text) by a hook that exists, and nothing is posted; a deleted or revoked
        # hook answers 403/404/410 first.
        response = self._hook({})
        if response.status_code == 400:
            parts = urlsplit(self.credentials.webhook_url or "").path.strip("/").split("/")
            hook = "/".join(parts[1:3]) if len(parts) >= 3 else "hook"
            return base.Identity(name=f"Slack incoming webhook {hook}", detail={"mode": "webhook"})
        if response.status_code < 300:
            return base.Identity(name="Slack incoming webhook", detail={"mode": "webhook"})
        raise _webhook_error(response)

    @property
    def channel(self) -> str:
        assert self.credentials.channel is not None
        return self.credentials.channel

    # -- render / publish --------------------------------------------------------------

    def render(self, post: base.PostContent) -> base.Rendition:
        parts = split_thread(slack_text(post), MAX_TEXT, numbering=False)
        if not parts:
            raise base.PermanentError("the post has nothing to send: no title or text")
        return base.Rendition(format="mrkdwn", parts=tuple(parts), title=post.title or None)

    def publish(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt:
        done = self.store.progress(idempotency_key) or {}
        kept = base.receipt_in(done)
        if kept is not None:
            return kept
        if self.credentials.webhook_url:
            return self._publish_webhook(rendition, idempotency_key, int(done.get("sent", 0)))
        sent: list[str] = list(done.get("ts", []))
        for index, part in enumerate(rendition.parts):
            if index < len(sent):
                continue  # posted by an earlier attempt
            payload: dict[str, Any] = {
                "channel": self.channel,
                "text": part,
                "metadata": {
                    "event_type": METADATA_EVENT,
                    "event_payload": {"key": idempotency_key, "part": index},
                },
            }
            if sent:
                payload["thread_ts"] = sent[0]
            data, _ = self._api("POST", "chat.postMessage", body=payload)
            sent.append(str(data["ts"]))
            self.store.save_progress(idempotency_key, {"ts": sent})
        return self._finish(idempotency_key, sent)

    def _publish_webhook(self, rendition: base.Rendition, key: str, sent: int) -> base.Receipt:
        for index, part in enumerate(rendition.parts):
            if index < sent:
                continue
            response = self._hook({"text": part})
            if response.status_code >= 300:
                raise _webhook_error(response)
            sent = index + 1
            self.store.save_progress(key, {"sent": sent})
        # Slack gives a webhook message no id; the key stands in for one.
        receipt = base.Receipt(external_id=key, data={"mode": "webhook", "parts": sent})
        self.store.save_receipt(key, receipt, {"sent": sent})
        return receipt

    def _finish(self, key: str, sent: list[str]) -> base.Receipt:
        receipt = base.Receipt(
            external_id=sent[0],
            url=self._permalink(sent[0]),
            data={"channel": self.channel, "ts": sent},
        )
        self.store.save_receipt(key, receipt, {"ts": sent})
        return receipt

    def _permalink(self, ts: str) -> str | None:
        team_url = (self.store.session() or {}).get("team_url")
        if not team_url:
            return None  # known once verify() has run
        return f"{team_url.rstrip('/')}/archives/{self.channel}/p{ts.replace('.', '')}"

    def find_existing(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt | None:
        done = self.store.progress(idempotency_key) or {}
        kept = base.receipt_in(done)
        if kept is not None:
            return kept
        if self.credentials.webhook_url or len(rendition.parts) != 1 or done.get("ts"):
            # Webhooks cannot read; a longer post carries on from its progress instead.
            return None
        history, _ = self._api(
            "GET",
            "conversations.history",
            params={
                "channel": self.channel,
                "limit": LOOKUP_DEPTH,
                "include_all_metadata": "true",
            },
        )
        for message in history.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if (
                metadata.get("event_type") == METADATA_EVENT
                and payload.get("key") == idempotency_key
                and payload.get("part") == 0
            ):
                return self._finish(idempotency_key, [str(message["ts"])])
        return None


def _api_error(name: str, data: dict[str, Any], response: httpx.Response) -> base.AdapterError:
    code = str(data.get("error") or "")
    if not code:
        raise_for_status(response, platform=PLATFORM)
        return base.PermanentError(f"slack answered {name} without ok: true")
    details = (data.get("response_metadata") or {}).get("messages") or []
    message = f"slack refused {name}: {code}"
    if data.get("needed"):
        message += f" (needs the {data['needed']} scope)"
    if details:
        message += " — " + "; ".join(str(d) for d in details)[:500]
    if code in _AUTH_CODES or response.status_code in (401, 403):
        return base.AuthError(message)
    if code in _RETRY_CODES or response.status_code == 429 or response.status_code >= 500:
        return base.RetryableError(message, retry_after=retry_after_seconds(response))
    if code in _MAYBE_DONE_CODES:
        return base.AmbiguousError(f"{message}; the message may or may not have been posted")
    return base.PermanentError(message)


def _webhook_error(response: httpx.Response) -> base.AdapterError:
    code = error_message(response)
    if response.status_code in _WEBHOOK_GONE:
        return base.AuthError(
            f"slack answered {response.status_code}: {code} (the webhook is gone)"
        )
    try:
        raise_for_status(response, platform=PLATFORM)
    except base.AdapterError as exc:
        return exc
    return base.PermanentError(f"slack answered {response.status_code}: {code}")

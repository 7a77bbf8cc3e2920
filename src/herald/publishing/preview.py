"""Exactly what a channel would be sent for a post, without sending anything."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from herald.adapters.base import AdapterError
from herald.channels.service import adapter_for, get_channel
from herald.core.errors import InvalidInput
from herald.posts.service import get_post
from herald.publishing.delivery import post_content
from herald.users.principal import Principal


class PreviewPart(BaseModel):
    index: int = Field(description="1-based position in the thread.")
    text: str
    length: int = Field(description="In the platform's own unit (see `unit`).")


class PreviewMedia(BaseModel):
    id: uuid.UUID
    content_type: str
    size: int
    alt_text: str


class Preview(BaseModel):
    post_id: uuid.UUID
    channel_id: uuid.UUID
    platform: str
    format: str = Field(description="html, markdown, text or json.")
    title: str | None
    parts: list[PreviewPart]
    thread: bool = Field(description="True when the post goes out as several parts.")
    limit: int | None = Field(description="Most a part may hold, in `unit`; null: no limit.")
    unit: str
    media: list[PreviewMedia] = Field(description="Images that will be attached.")
    warnings: list[str] = Field(description="What will not go out as written, and why.")


def preview(
    session: Session, principal: Principal, post_id: uuid.UUID, channel_id: uuid.UUID
) -> Preview:
    post = get_post(session, principal, post_id)
    channel = get_channel(session, principal, channel_id)
    adapter = adapter_for(channel)
    content = post_content(session, post)
    try:
        rendition = adapter.render(content)
    except AdapterError as exc:
        raise InvalidInput(
            f"{channel.platform} cannot take this post as written: {exc.message}"
        ) from exc
    warnings: list[str] = []
    sent = {m.id for m in rendition.media}
    for item in content.media:
        if item.id in sent:
            continue
        if adapter.limits.max_media == 0:
            reason = f"{adapter.display_name} posts take no images here"
        elif adapter.limits.max_media_bytes and item.size > adapter.limits.max_media_bytes:
            reason = f"it is larger than {adapter.limits.max_media_bytes:,} bytes"
        else:
            reason = f"at most {adapter.limits.max_media} image(s) go out per post"
        warnings.append(f"Image {item.filename} ({item.id}) will not be sent: {reason}.")
    return Preview(
        post_id=post.id,
        channel_id=channel.id,
        platform=channel.platform,
        format=rendition.format,
        title=rendition.title,
        parts=[
            PreviewPart(index=i, text=part, length=adapter.measure(part))
            for i, part in enumerate(rendition.parts, start=1)
        ],
        thread=len(rendition.parts) > 1,
        limit=adapter.limits.max_length,
        unit=adapter.length_unit,
        media=[
            PreviewMedia(id=m.id, content_type=m.content_type, size=m.size, alt_text=m.alt_text)
            for m in rendition.media
        ],
        warnings=warnings,
    )

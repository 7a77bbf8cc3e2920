"""What an upload of a post's image is called: blog platforms (WordPress, Ghost) keep the
file under the name it was sent with and check its extension against its type."""

from __future__ import annotations

import re

from herald.adapters.base import MediaItem

_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/svg+xml": ".svg",
}


def upload_filename(media: MediaItem) -> str:
    """An ASCII file name with the extension of the content type (servers check it)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", media.filename.rsplit(".", 1)[0]).strip("-.")
    return (stem or "image")[:80] + _EXTENSIONS.get(media.content_type, "")

"""Images attached to posts: checked on upload, stored in the data directory.

An upload is read in chunks up to ``HERALD_MEDIA_MAX_BYTES``, identified by its content
(never by its name or the client's Content-Type), decoded once by Pillow to prove it is a
whole image and to learn its size, then written to a temporary file and renamed into
place. The row refers to the file by a path relative to the media directory, so the data
directory can move.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import uuid
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, Protocol

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from herald.adapters.base import MediaItem
from herald.core.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from herald.core.errors import UnsupportedMediaType as UnsupportedType
from herald.core.settings import get_settings
from herald.media.models import Media, PostMedia
from herald.users.principal import Principal

# Pillow format name → (MIME type, file extension). What every image platform takes.
FORMATS = {
    "PNG": ("image/png", ".png"),
    "JPEG": ("image/jpeg", ".jpg"),
    "GIF": ("image/gif", ".gif"),
    "WEBP": ("image/webp", ".webp"),
}
MAX_PIXELS = 50_000_000  # larger is a decompression bomb, not a photo
MAX_ALT_TEXT = 1500  # Mastodon's limit, the largest common one
MAX_MEDIA_PER_POST = 10
CHUNK = 64 * 1024


def _read_limited(stream: BinaryIO, limit: int) -> bytes:
    buffer = io.BytesIO()
    while chunk := stream.read(CHUNK):
        buffer.write(chunk)
        if buffer.tell() > limit:
            raise PayloadTooLarge(
                f"The image is larger than {limit:,} bytes (HERALD_MEDIA_MAX_BYTES). "
                "Resize or compress it and upload again."
            )
    return buffer.getvalue()


def inspect_image(data: bytes) -> tuple[str, str, int, int]:
    """``(content type, extension, width, height)``; raises if it is not a whole image."""
    # Pillow loads here: posts.service imports this module, and `herald post list` never
    # looks at an image.
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415 - start-up

    accepted = ", ".join(sorted(mime for mime, _ in FORMATS.values()))
    if not data:
        raise InvalidInput("The upload is empty.", field="file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind = image.format or ""
                width, height = image.size
                if kind not in FORMATS:
                    raise UnsupportedType(
                        f"{kind or 'This'} images are not accepted; use one of {accepted}."
                    )
                if width * height > MAX_PIXELS:
                    raise InvalidInput(
                        f"The image is {width}x{height} pixels; at most {MAX_PIXELS:,} "
                        "pixels are accepted.",
                        field="file",
                    )
                image.verify()  # reads the whole file: a truncated upload fails here
    except (UnidentifiedImageError, Image.DecompressionBombWarning) as exc:
        raise UnsupportedType(
            f"The file is not an image Herald can use; use one of {accepted}."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(f"The image is damaged or truncated ({exc}).", field="file") from exc
    mime, extension = FORMATS[kind]
    return mime, extension, width, height


def _clean_filename(name: str | None, extension: str) -> str:
    base = Path(name or "").name
    base = re.sub(r"[\x00-\x1f/\\\\]", "", base).strip()[:200]
    stem = Path(base).stem or "image"
    return f"{stem}{extension}"


def _check_alt(alt_text: str) -> str:
    alt_text = alt_text.strip()
    if len(alt_text) > MAX_ALT_TEXT:
        raise InvalidInput(
            f"Alt text is at most {MAX_ALT_TEXT} characters (it has {len(alt_text)}).",
            field="alt_text",
        )
    return alt_text


def store_upload(
    session: Session,
    principal: Principal,
    stream: BinaryIO,
    *,
    filename: str | None,
    alt_text: str = "",
) -> Media:
    settings = get_settings()
    alt_text = _check_alt(alt_text)
    data = _read_limited(stream, settings.media_max_bytes)
    content_type, extension, width, height = inspect_image(data)
    media_id = uuid.uuid4()
    relative = Path(str(principal.workspace_id)) / f"{media_id}{extension}"
    target = settings.media_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.part")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
    media = Media(
        id=media_id,
        workspace_id=principal.workspace_id,
        uploaded_by=principal.user_id,
        filename=_clean_filename(filename, extension),
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        alt_text=alt_text,
        storage_path=relative.as_posix(),
    )
    session.add(media)
    try:
        session.flush()
    except Exception:
        target.unlink(missing_ok=True)
        raise
    return media


def get_media(session: Session, principal: Principal, media_id: uuid.UUID) -> Media:
    media = session.get(Media, media_id)
    if media is None or media.workspace_id != principal.workspace_id:
        raise NotFound(f"No image {media_id} in this workspace.")
    return media


def list_media(session: Session, principal: Principal, limit: int = 100) -> list[Media]:
    return list(
        session.scalars(
            select(Media)
            .where(Media.workspace_id == principal.workspace_id)
            .order_by(Media.created_at.desc(), Media.id)
            .limit(limit)
        )
    )


def update_alt_text(
    session: Session, principal: Principal, media_id: uuid.UUID, alt_text: str
) -> Media:
    media = get_media(session, principal, media_id)
    media.alt_text = _check_alt(alt_text)
    session.flush()
    return media


class _Stored(Protocol):
    @property
    def storage_path(self) -> str: ...


def file_path(media: _Stored) -> Path:
    """Where an image's file is: from a :class:`Media` or a row with its storage_path."""
    return get_settings().media_dir / media.storage_path


def delete_media(session: Session, principal: Principal, media_id: uuid.UUID) -> None:
    media = get_media(session, principal, media_id)
    used = session.scalar(select(func.count()).where(PostMedia.media_id == media_id)) or 0
    if used:
        raise Conflict(
            f"The image is attached to {used} post(s); remove it from them first "
            "(PATCH the post's media_ids)."
        )
    path = file_path(media)
    session.delete(media)
    session.flush()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def attachments(
    session: Session, principal: Principal, media_ids: Iterable[uuid.UUID]
) -> list[PostMedia]:
    """The rows that make ``media_ids`` a post's images, in that order, once each is known
    to be an image of the caller's workspace (posts own the list; media knows no post)."""
    wanted = list(dict.fromkeys(media_ids))
    if len(wanted) > MAX_MEDIA_PER_POST:
        raise InvalidInput(
            f"A post carries at most {MAX_MEDIA_PER_POST} images.", field="media_ids"
        )
    found = set(
        session.scalars(
            select(Media.id).where(
                Media.id.in_(wanted), Media.workspace_id == principal.workspace_id
            )
        )
    )
    missing = [str(m) for m in wanted if m not in found]
    if missing:
        raise InvalidInput(
            f"No such image(s) in this workspace: {', '.join(missing)}.", field="media_ids"
        )
    return [PostMedia(media_id=media_id, position=i) for i, media_id in enumerate(wanted)]


def media_ids_of(session: Session, post_id: uuid.UUID) -> list[uuid.UUID]:
    return list(
        session.scalars(
            select(PostMedia.media_id)
            .where(PostMedia.post_id == post_id)
            .order_by(PostMedia.position)
        )
    )


def media_items(connection: Connection, post_id: uuid.UUID) -> tuple[MediaItem, ...]:
    """What an adapter sees of a post's images (plain column reads: a delivery runs this
    in a transaction without a Session, see herald.core.tx.core_scope)."""
    rows = connection.execute(
        select(
            Media.id,
            Media.storage_path,
            Media.content_type,
            Media.size,
            Media.filename,
            Media.alt_text,
            Media.width,
            Media.height,
        )
        .join(PostMedia, PostMedia.media_id == Media.id)
        .where(PostMedia.post_id == post_id)
        .order_by(PostMedia.position)
    )
    return tuple(
        MediaItem(
            id=m.id,
            path=file_path(m),
            content_type=m.content_type,
            size=m.size,
            filename=m.filename,
            alt_text=m.alt_text,
            width=m.width,
            height=m.height,
        )
        for m in rows
    )

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile, status
from fastapi.responses import FileResponse

from herald.core.deps import SessionDep
from herald.core.errors import NotFound, problem_responses
from herald.media import service
from herald.media.models import Media
from herald.media.schemas import MediaRead, MediaUpdate
from herald.users.deps import PrincipalDep

router = APIRouter(prefix="/media", tags=["media"], responses=problem_responses(401))


def _read(media: Media) -> MediaRead:
    return MediaRead.model_validate(media).model_copy(
        update={"url": f"/api/v1/media/{media.id}/content"}
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(413, 415, 422),
)
def upload_media(
    principal: PrincipalDep,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="PNG, JPEG, GIF or WebP.")],
    alt_text: Annotated[
        str, Form(max_length=1500, description="What the image shows, for screen readers.")
    ] = "",
) -> MediaRead:
    """Upload an image (multipart form: ``file``, optional ``alt_text``); attach it to a
    post with the post's ``media_ids``."""
    media = service.store_upload(
        session, principal, file.file, filename=file.filename, alt_text=alt_text
    )
    return _read(media)


@router.get("")
def list_media(principal: PrincipalDep, session: SessionDep) -> list[MediaRead]:
    return [_read(m) for m in service.list_media(session, principal)]


@router.get("/{media_id}", responses=problem_responses(404))
def get_media(media_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> MediaRead:
    return _read(service.get_media(session, principal, media_id))


@router.get(
    "/{media_id}/content",
    response_class=FileResponse,
    responses=problem_responses(404),
)
def media_content(
    media_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> FileResponse:
    media = service.get_media(session, principal, media_id)
    path = service.file_path(media)
    if not path.is_file():
        raise NotFound(f"The file of image {media_id} is missing from the data directory.")
    return FileResponse(
        path,
        media_type=media.content_type,
        filename=media.filename,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"},
    )


@router.patch("/{media_id}", responses=problem_responses(404, 422))
def update_media(
    media_id: uuid.UUID, body: MediaUpdate, principal: PrincipalDep, session: SessionDep
) -> MediaRead:
    return _read(service.update_alt_text(session, principal, media_id, body.alt_text))


@router.delete(
    "/{media_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404, 409),
)
def delete_media(media_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> None:
    service.delete_media(session, principal, media_id)

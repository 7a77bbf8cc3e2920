from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from herald.adapters.registry import platforms
from herald.channels import reads, service
from herald.channels.schemas import (
    BucketRead,
    ChannelCreate,
    ChannelDetail,
    ChannelRead,
    ChannelUpdate,
    JobStarted,
    PlatformRead,
)
from herald.core.deps import SessionDep
from herald.core.errors import problem_responses
from herald.users.deps import PrincipalDep

router = APIRouter(prefix="/channels", tags=["channels"], responses=problem_responses(401))
platforms_router = APIRouter(prefix="/platforms", tags=["channels"])


@platforms_router.get("")
def list_platforms() -> list[PlatformRead]:
    """Platforms Herald can publish to, with the credentials each one needs."""
    return [
        PlatformRead(
            platform=key,
            display_name=cls.display_name,
            credentials_schema=cls.credentials_model.model_json_schema(),
            settings_schema=cls.settings_model.model_json_schema(),
        )
        for key, cls in platforms().items()
    ]


@router.get("")
def list_channels(principal: PrincipalDep, session: SessionDep) -> list[ChannelRead]:
    return [ChannelRead.model_validate(c) for c in reads.list_channels(session, principal)]


@router.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(403, 409, 422))
def create_channel(
    body: ChannelCreate, principal: PrincipalDep, session: SessionDep
) -> ChannelRead:
    return ChannelRead.model_validate(service.create_channel(session, principal, body))


@router.get("/{channel_id}", responses=problem_responses(404))
def get_channel(
    channel_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> ChannelDetail:
    """The channel, with its rate budget (remaining, capacity, resets_at per bucket)."""
    channel = service.get_channel(session, principal, channel_id)
    read = ChannelRead.model_validate(channel).model_dump()
    adapter = service.budget_adapter(channel)
    # The budget is in Redis: read it with the (read) transaction ended, never inside one.
    session.commit()
    found = None if adapter is None else service.channel_budget(adapter, channel_id)
    return ChannelDetail.model_validate(
        {
            **read,
            "budget": None
            if found is None
            else [BucketRead.model_validate(state, from_attributes=True) for state in found],
        }
    )


@router.patch("/{channel_id}", responses=problem_responses(403, 404, 409, 422))
def update_channel(
    channel_id: uuid.UUID, body: ChannelUpdate, principal: PrincipalDep, session: SessionDep
) -> ChannelRead:
    return ChannelRead.model_validate(service.update_channel(session, principal, channel_id, body))


@router.delete(
    "/{channel_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(403, 404),
)
def delete_channel(channel_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> None:
    service.delete_channel(session, principal, channel_id)


@router.post(
    "/{channel_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(403, 404),
)
def test_channel(channel_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> JobStarted:
    """Check the channel's credentials in the background; poll GET /api/v1/jobs/{job_id}."""
    job = service.start_verify(session, principal, channel_id)
    return JobStarted(job_id=job.id, message="Checking the channel's credentials.")

"""``/api/v1/backups``: make, list, download and delete backup archives (admins of the
first workspace only: an archive holds every workspace's data and the keys that decrypt
channel credentials)."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import FileResponse

from herald.backups import service
from herald.backups.schemas import BackupRead
from herald.channels.schemas import JobStarted
from herald.core.deps import SessionDep
from herald.core.errors import problem_responses
from herald.users.deps import PrincipalDep

router = APIRouter(prefix="/backups", tags=["backups"], responses=problem_responses(401, 403))


@router.post("", status_code=status.HTTP_202_ACCEPTED)
def create_backup(principal: PrincipalDep, session: SessionDep) -> JobStarted:
    """Write a backup in the background; follow it at GET /api/v1/jobs/{job_id}."""
    job = service.start_backup(session, principal)
    return JobStarted(job_id=job.id, message="Backing up the database and media.")


@router.get("")
def list_backups(principal: PrincipalDep, session: SessionDep) -> list[BackupRead]:
    """Backups, newest first, with their checksum state."""
    return service.list_backups(session, principal)


@router.get(
    "/{name}/download",
    response_class=FileResponse,
    responses={**problem_responses(404, 422), 200: {"content": {"application/gzip": {}}}},
)
def download_backup(name: str, principal: PrincipalDep, session: SessionDep) -> FileResponse:
    """The archive, streamed from disk."""
    path = service.download_path(session, principal, name)
    return FileResponse(path, media_type="application/gzip", filename=path.name)


@router.delete(
    "/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(404, 422)
)
def delete_backup(name: str, principal: PrincipalDep, session: SessionDep) -> None:
    service.delete_backup(session, principal, name)

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from herald.adapters.base import AdapterError, AuthError
from herald.channels.models import Channel, ChannelState
from herald.core.http import network_in_transaction_waived
from herald.jobs.models import Job
from herald.jobs.runner import JobFailed, run_job
from herald.worker import app


def verify_body(session: Session, job: Job) -> dict[str, Any]:
    from herald.channels.service import adapter_for

    channel = session.get(Channel, uuid.UUID(job.params["channel_id"]))
    if channel is None or channel.workspace_id != job.workspace_id:
        raise JobFailed("the channel was deleted")
    try:
        # TEMPORARY (issue 16, item 2): the test still runs in the job's transaction.
        with network_in_transaction_waived("the channel test (channels.tasks.verify_body)"):
            identity = adapter_for(channel).verify()
    except AuthError as exc:
        channel.state, channel.state_reason = ChannelState.NEEDS_RECONNECT, exc.message
        raise JobFailed(exc.message) from exc
    except AdapterError as exc:
        raise JobFailed(exc.message) from exc
    if channel.state == ChannelState.NEEDS_RECONNECT:
        channel.state, channel.state_reason = ChannelState.ACTIVE, None
    return {"ok": True, "identity": identity.name, "platform": channel.platform}


@app.task(name="herald.channels.verify")
def verify_channel(job_id: str) -> dict[str, Any]:
    return run_job(job_id, verify_body)
